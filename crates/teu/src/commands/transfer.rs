//! `teu push`, `teu copy` and `teu pull`: one image (or an index) from any source to any
//! destination; to a registry through the push planner.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;
use teu_image::push::{push_artifact, Action, PushOptions, PushReport};
use teu_image::{write_output, Artifact};
use teu_oci::{Digest, Reference};

use super::{parse_ref, platform_arg, read_all, read_image, RegistryArgs};
use crate::report::bytes;
use crate::UsageError;

#[derive(Args)]
pub struct TransferArgs {
    /// The image to read: HOST/REPO[:TAG|@DIGEST], docker://…, oci:DIR[:TAG]
    src: String,
    /// Where to write it: HOST/REPO[:TAG], docker://…, oci:DIR[:TAG], oci-archive:FILE, docker-archive:FILE
    dst: String,

    /// Also tag the pushed image TAG in the destination repository; repeatable
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,

    /// Copy every platform of an index, not just one image
    #[arg(long)]
    all_platforms: bool,

    /// The platform to pick from an index (default: the host's)
    #[arg(long)]
    platform: Option<String>,

    /// Print what would be skipped, mounted, streamed and uploaded, and move nothing
    #[arg(long)]
    dry_run: bool,

    /// Blobs moved at the same time
    #[arg(short, long, default_value_t = 4, env = "TEU_PUSH_JOBS")]
    jobs: usize,

    /// Also write the image digest to FILE
    #[arg(long, value_name = "FILE")]
    digest_file: Option<PathBuf>,

    /// Print a JSON report on stdout instead of the digest
    #[arg(long)]
    json: bool,

    /// Print nothing on stderr unless there is an error
    #[arg(short, long)]
    quiet: bool,

    #[command(flatten)]
    registry: RegistryArgs,
}

pub const PUSH_HELP: &str = "Examples:\n  \
teu push oci:out:v1 registry.example.com/team/app:v1\n  \
teu push oci:out localhost:5000/app:1.2 --tag 1 --tag latest\n  \
teu push oci:out ghcr.io/me/app:dev --dry-run      # what would move, and how many bytes\n  \
teu push quay.io/org/app:1 ghcr.io/org/app:1       # streamed, never written to disk\n\n\
Blobs the target has are skipped; blobs in another repository of the same registry are \
mounted; blobs in another registry are streamed from it; local blobs are uploaded. Then \
the manifest, then the tags. A failed push can be run again: done work is skipped.\n\
Credentials come from $REGISTRY_AUTH_FILE, podman's auth.json and Docker's config.json \
(credential helpers included); see `teu login`.";

pub const COPY_HELP: &str = "Examples:\n  \
teu copy docker.io/library/alpine:3.20 localhost:5000/alpine:3.20 --all-platforms\n  \
teu copy localhost:5000/app:1 oci:./app:1\n  \
teu copy oci:./app:1 registry.example.com/app:1\n\n\
Between registries blobs are streamed (verified against their digests, never written to \
disk); within one registry they are mounted.";

pub const PULL_HELP: &str = "Examples:\n  \
teu pull alpine:3.20 oci:./alpine:3.20\n  \
teu pull localhost:5000/app@sha256:… oci:./app --platform linux/arm64\n\n\
Writes the whole image (every layer) into an OCI layout for offline use.";

#[derive(Serialize)]
struct JsonReport<'a> {
    digest: &'a Digest,
    destination: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    push: Option<&'a PushReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes_written: Option<u64>,
}

pub fn run_pull(args: TransferArgs) -> Result<ExitCode> {
    match parse_ref("DST", &args.dst)? {
        Reference::Layout { .. } => run(args),
        other => Err(UsageError(format!(
            "teu pull writes to oci:DIR[:TAG], not {other}; use teu copy for other destinations"
        ))
        .into()),
    }
}

pub fn run(args: TransferArgs) -> Result<ExitCode> {
    let started = Instant::now();
    if args.jobs == 0 {
        return Err(UsageError("--jobs must be at least 1".into()).into());
    }
    let src = parse_ref("SRC", &args.src)?;
    let dst = parse_ref("DST", &args.dst)?;
    let platform = platform_arg(args.platform.as_deref())?;
    let client = args.registry.client()?;
    let say = |line: String| {
        if !args.quiet {
            eprintln!("{line}");
        }
    };
    let opts = PushOptions {
        jobs: args.jobs,
        dry_run: args.dry_run,
    };
    // Every platform of an index with --all-platforms, else the one image for --platform.
    let artifact = if args.all_platforms {
        read_all(&client, &src).with_context(|| format!("reading {src}"))?
    } else {
        Artifact::Image(
            read_image(&client, &src, &platform).with_context(|| format!("reading {src}"))?,
        )
    };
    let digest = artifact.digest();
    let (push, written) = match &dst {
        Reference::Registry(d) => {
            let report = push_artifact(&client, d, &args.tags, &artifact, &opts)
                .with_context(|| format!("pushing to {d}"))?;
            print_push(&report, &say);
            (Some(report), None)
        }
        _ => {
            if args.dry_run || !args.tags.is_empty() {
                return Err(UsageError(
                    "--dry-run and --tag apply to registry destinations".into(),
                )
                .into());
            }
            let r = write_output(&dst, &artifact).with_context(|| format!("writing {dst}"))?;
            say(format!(
                "teu: wrote {} ({} new)",
                r.output,
                bytes(r.bytes_written)
            ));
            (None, Some(r.bytes_written))
        }
    };
    if let Some(f) = &args.digest_file {
        if !args.dry_run {
            teu_store::atomic::write_file(f, format!("{digest}\n").as_bytes())
                .with_context(|| format!("writing the digest file {}", f.display()))?;
        }
    }
    let t = client.traffic();
    say(format!(
        "teu: {} {digest} in {:.2}s ({} requests, {} up, {} down{})",
        if args.dry_run { "planned" } else { "done" },
        started.elapsed().as_secs_f64(),
        t.requests,
        bytes(t.bytes_up),
        bytes(t.bytes_down),
        if t.retries > 0 {
            format!(", {} retries", t.retries)
        } else {
            String::new()
        }
    ));
    if args.json {
        let report = JsonReport {
            digest: &digest,
            destination: dst.to_string(),
            push: push.as_ref(),
            bytes_written: written,
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{digest}");
    }
    Ok(ExitCode::SUCCESS)
}

pub fn print_push(r: &PushReport, say: &dyn Fn(String)) {
    for b in &r.blobs {
        let verb = match (b.action, r.dry_run) {
            (Action::Skip, _) => "exists",
            (Action::Mount, false) => "mounted",
            (Action::Mount, true) => "mount",
            (Action::Stream, false) => "streamed",
            (Action::Stream, true) => "stream",
            (Action::Upload, false) => "uploaded",
            (Action::Upload, true) => "upload",
        };
        let from = match b.action {
            Action::Mount | Action::Stream => format!(" from {}", b.from),
            _ => String::new(),
        };
        say(format!(
            "teu: blob {} {verb} ({}){from}",
            b.digest.short(),
            bytes(b.size)
        ));
    }
    let x = &r.bytes;
    say(format!(
        "teu: {} {}: {} skipped, {} mounted, {} streamed, {} uploaded; tags: {}",
        if r.dry_run { "plan for" } else { "pushed" },
        r.target,
        bytes(x.skipped),
        bytes(x.mounted),
        bytes(x.streamed),
        bytes(x.uploaded),
        if r.tags.is_empty() {
            "none".to_string()
        } else {
            r.tags.join(", ")
        }
    ));
}
