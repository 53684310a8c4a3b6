//! `teu load SRC [ENGINE:NAME]`: an image into a local container engine (Docker, podman
//! or containerd), moving only what the engine lacks. The short form of
//! `teu copy SRC docker-daemon:NAME`; with no engine named, the one that answers on its
//! usual socket.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use teu_image::transport::{self, WriteOptions};
use teu_oci::{Reference, RegistryRef, Transport};

use crate::args::{parse_ref, select_arg, usage, RegistryArgs};
use crate::output::{bytes, print_engine, print_write};

#[derive(Args)]
pub struct LoadArgs {
    /// The image to load: oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:NAME:TAG], HOST/REPO[:TAG]
    src: String,
    /// Where: docker-daemon:NAME[:TAG], podman:NAME[:TAG], containerd:[NAMESPACE/]NAME[:TAG], or a bare NAME[:TAG] for the engine that answers (default: the name the source carries)
    dst: Option<String>,

    /// Load only the image for this platform out of an index (containerd gets the whole index by default; Docker and podman get one image: this platform's, else the host's)
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    platform: Option<String>,

    /// Ask the engine what it lacks and print the plan; move nothing
    #[arg(long)]
    dry_run: bool,

    /// Print a JSON report on stdout instead of the digest
    #[arg(long)]
    json: bool,

    /// Print nothing on stderr unless there is an error
    #[arg(short, long)]
    quiet: bool,

    #[command(flatten)]
    registry: RegistryArgs,
}

pub const HELP: &str = "Examples:\n  \
teu load oci:out docker-daemon:app:dev          # Docker ($DOCKER_HOST or /var/run/docker.sock)\n  \
teu load oci-archive:app.tar podman:app:1       # podman's service ($CONTAINER_HOST or /run/podman/podman.sock)\n  \
teu load oci:out containerd:k8s.io/app:1        # containerd's k8s.io namespace\n  \
teu load docker-archive:app.tar                 # the name in the archive, the engine that answers\n\n\
Docker: an image it has (same config) is only tagged; otherwise a docker archive of only \
the layers it lacks is streamed into its load API (never written to disk). Docker keeps \
the config digest (image ID), not the manifest digest. podman: the same through its \
service (it keeps the manifest digest). containerd: only the blobs its content store \
lacks are written, under a lease, then the image record; the manifest or index digest \
and every platform are kept.";

/// The engine reference for `dst`, or for the name the source carries.
fn destination(args: &LoadArgs, src: &Reference, cx: &transport::Context) -> Result<Reference> {
    let given = args.dst.as_deref();
    if let Some(d) = given {
        if let Ok(r) = d.parse::<Reference>() {
            match r.transport() {
                Transport::DockerDaemon | Transport::Podman | Transport::Containerd => {
                    return Ok(r)
                }
                Transport::Docker => {}
                _ => {
                    return Err(usage(format!(
                        "DST: teu load writes to an engine (docker-daemon:, podman:, containerd:), not {r}; use teu copy"
                    )))
                }
            }
        }
    }
    let name: RegistryRef = match given {
        Some(d) => d
            .parse()
            .map_err(|e| usage(format!("DST: {e} (expected ENGINE:NAME or NAME)")))?,
        None => name_of(src, cx)?,
    };
    let engine = transport::engine_on_default_socket(cx)?;
    let prefix = match engine {
        Transport::DockerDaemon => "docker-daemon",
        Transport::Podman => "podman",
        _ => "containerd",
    };
    parse_ref("DST", &format!("{prefix}:{}", name.qualified()))
}

/// The image name a source carries: a registry reference's own, an archive's or layout's
/// `io.containerd.image.name` (or a `ref.name` that is a full name).
fn name_of(src: &Reference, cx: &transport::Context) -> Result<RegistryRef> {
    let source = transport::open_source(src, cx)?;
    if let Some(name) = source.image_name().ok().flatten() {
        return Ok(name);
    }
    let tags = source.tags().unwrap_or_default();
    Err(usage(format!(
        "{src} carries no image name (names: {}); name it: teu load {src} NAME[:TAG]",
        if tags.is_empty() {
            "none".to_string()
        } else {
            tags.join(", ")
        }
    )))
}

pub fn run(args: LoadArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let src = parse_ref("SRC", &args.src)?;
    let select = select_arg(args.platform.as_deref())?;
    let cx = args.registry.context()?;
    let say = |line: String| {
        if !args.quiet {
            eprintln!("{line}");
        }
    };
    let dst = destination(&args, &src, &cx)?;
    let opts = WriteOptions {
        dry_run: args.dry_run,
        ..WriteOptions::default()
    };
    let sink = transport::open_sink(&dst, &opts, &cx).map_err(|e| usage(format!("DST: {e}")))?;
    let artifact = transport::read(&src, &select, &cx).with_context(|| format!("reading {src}"))?;
    let report = transport::write_to(sink.as_ref(), &artifact, args.dry_run, &cx)
        .with_context(|| format!("loading into {dst}"))?;
    print_write(&report, &say);
    print_engine(&report, &say);
    say(format!(
        "teu: {} {} in {:.2}s ({} sent)",
        if args.dry_run { "planned" } else { "loaded" },
        artifact.digest(),
        started.elapsed().as_secs_f64(),
        bytes(report.bytes_written)
    ));
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        // The image's digest, as every command prints; what the engine calls it (Docker:
        // the image ID) is on stderr and in --json's `engine.digest`.
        println!("{}", artifact.digest());
    }
    Ok(ExitCode::SUCCESS)
}
