//! `teu push`, `teu copy` and `teu pull`: one "read, then write" over the transports.
//! What is read is the whole index by default (as crane and skopeo copy it), or the one
//! image `--platform` selects; where it goes is any destination, planned first.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use teu_image::transport::{self, Select, WriteOptions};

use crate::args::{jobs_arg, parse_output, parse_ref, select_arg, usage, RegistryArgs};
use crate::output::{bytes, print_write};
use crate::progress::{self, ProgressArgs};

/// Which of the three commands runs: they differ only in what they accept.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Push,
    Copy,
    Pull,
}

#[derive(Args)]
pub struct TransferArgs {
    /// The image to read: HOST/REPO[:TAG|@DIGEST], docker://…, oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:NAME:TAG]
    src: String,
    /// Where to write it: HOST/REPO[:TAG], docker://…, oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:NAME:TAG] (teu pull: local ones only)
    dst: String,

    /// Also tag the pushed image TAG in the destination repository; repeatable
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,

    /// Copy every platform of an index (the default; kept for scripts written for older teu)
    #[arg(long, conflicts_with = "platform", hide = true)]
    all_platforms: bool,

    /// Copy only the image for this platform out of an index (default: the whole index)
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    platform: Option<String>,

    /// Print what would be skipped, linked, copied, mounted, streamed and uploaded, and move nothing
    #[arg(long)]
    dry_run: bool,

    /// Blobs moved at the same time
    #[arg(
        short,
        long,
        default_value_t = 4,
        env = "TEU_PUSH_JOBS",
        allow_negative_numbers = true
    )]
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

    #[command(flatten)]
    progress: ProgressArgs,
}

pub const PUSH_HELP: &str = "Examples:\n  \
teu push oci:out:v1 registry.example.com/team/app:v1\n  \
teu push oci:out localhost:5000/app:1.2 --tag 1 --tag latest\n  \
teu push oci:out ghcr.io/me/app:dev --dry-run      # what would move, and how many bytes\n  \
teu push oci-archive:app.tar localhost:5000/app:1\n  \
teu push quay.io/org/app:1 ghcr.io/org/app:1       # streamed, never written to disk\n\n\
An index is pushed whole (every platform); --platform P pushes one image. Blobs the \
target has are skipped; blobs in another repository of the same registry are mounted; \
blobs in another registry are streamed from it; local blobs are uploaded. Then the \
manifests, then the tags. A failed push can be run again: done work is skipped.\n\
Credentials come from $REGISTRY_AUTH_FILE, podman's auth.json and Docker's config.json \
(credential helpers included); see `teu login`.";

pub const COPY_HELP: &str = "Examples:\n  \
teu copy docker.io/library/alpine:3.20 localhost:5000/alpine:3.20   # every platform\n  \
teu copy alpine:3.20 oci:./alpine:3.20 --platform linux/arm64        # one image\n  \
teu copy localhost:5000/app:1 oci-archive:app.tar\n  \
teu copy docker-archive:app.tar oci:./app:1 --dry-run\n  \
teu copy oci:out containerd:k8s.io/app:1                            # see also teu load\n\n\
Sources and destinations: oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:NAME:TAG], \
HOST/REPO[:TAG|@DIGEST] (docker://… too). An index is copied whole unless --platform \
selects one image. Between registries blobs are streamed (verified against their digests, \
never written to disk); within one registry they are mounted; into a layout, blobs it \
already has are skipped.";

pub const PULL_HELP: &str = "Examples:\n  \
teu pull alpine:3.20 oci:./alpine:3.20\n  \
teu pull localhost:5000/app@sha256:… oci:./app --platform linux/arm64\n  \
teu pull localhost:5000/app:1 docker-archive:app.tar:app:1   # for docker load\n\n\
Writes the whole image (every layer; every platform unless --platform) into a local \
destination for offline use: oci:DIR[:TAG], oci-archive:FILE[:TAG] or \
docker-archive:FILE[:NAME:TAG]. Use teu copy or teu push to write to a registry.";

pub fn run(verb: Verb, args: TransferArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let jobs = jobs_arg(args.jobs)?;
    let src = parse_ref("SRC", &args.src)?;
    let dst = parse_output("DST", &args.dst)?;
    let select = select_arg(args.platform.as_deref())?;
    let cx = args.registry.context()?;
    // With `--progress json`, stderr holds JSON lines only.
    let json_progress = args.progress.mode(args.quiet) == progress::Mode::Json;
    let say = |line: String| {
        if !args.quiet && !json_progress {
            eprintln!("{line}");
        }
    };
    let opts = WriteOptions {
        tags: args.tags.clone(),
        dry_run: args.dry_run,
        jobs,
    };
    let sink = transport::open_sink(&dst, &opts, &cx).map_err(|e| usage(format!("DST: {e}")))?;
    match verb {
        Verb::Pull if !sink.is_local() => {
            return Err(usage(format!(
                "teu pull writes to a local destination (oci:DIR, oci-archive:FILE, docker-archive:FILE), not {dst}; use teu copy or teu push"
            )))
        }
        _ => {}
    }
    let artifact = transport::read(&src, &select, &cx).with_context(|| format!("reading {src}"))?;
    // Every blob read to be moved reports its progress on stderr.
    let artifact = progress::watch_blobs(artifact, &args.progress.reporter(args.quiet));
    if let Select::Platform(p) = &select {
        say(format!(
            "teu: {src}: the image for {p} ({}), not the whole index",
            artifact.digest().short()
        ));
    }
    let digest = artifact.digest();
    let report = transport::write_to(sink.as_ref(), &artifact, args.dry_run, &cx)
        .with_context(|| format!("writing {dst}"))?;
    print_write(&report, &say);
    if let Some(f) = &args.digest_file {
        if !args.dry_run {
            teu_store::atomic::write_file(f, format!("{digest}\n").as_bytes())
                .with_context(|| format!("writing the digest file {}", f.display()))?;
        }
    }
    let wire = match &report.traffic {
        Some(t) => format!(
            " ({} requests, {} up, {} down{})",
            t.requests,
            bytes(t.bytes_up),
            bytes(t.bytes_down),
            if t.retries > 0 {
                format!(", {} retries", t.retries)
            } else {
                String::new()
            }
        ),
        None => format!(" ({} written)", bytes(report.bytes_written)),
    };
    say(format!(
        "teu: {} {digest} in {:.2}s{wire}",
        if args.dry_run { "planned" } else { "done" },
        started.elapsed().as_secs_f64(),
    ));
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{digest}");
    }
    Ok(ExitCode::SUCCESS)
}
