//! `teu build`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;
use teu_build::{build, BaseOptions, BuildOptions, LayerReport, PlatformReport};
use teu_image::transport::{self, WriteOptions, WriteReport};
use teu_layer::{Compression, Defaults};
use teu_oci::{Digest, Platform, Reference};
use teu_spec::lock::Lockfile;
use teu_spec::{check_dest, Format, Item, LayerSpec, MetaOverride, Spec};
use teu_store::Store;

use crate::args::{jobs_arg, parse_output, parse_ref, usage, RegistryArgs};
use crate::output::{bytes, print_engine, print_write};
use crate::progress::{self, ProgressArgs};

/// The output used when no --output is given.
pub const DEFAULT_OUTPUT: &str = "oci:teu-out";

#[derive(Args)]
#[command(
    about = "Build an image from a teu.toml spec or from flags",
    long_about = "Build an image from a teu.toml spec (see docs/spec.md) or, for one-off use, from flags. \
Layers are built deterministically: the same inputs give the same digest on any machine, in any \
directory, under any umask, clock, locale or thread count.\n\n\
The image digest is printed alone on the last line of stdout; a summary goes to stderr.",
    after_help = "Examples:\n  \
teu build                                  # ./teu.toml, written to oci:teu-out:latest\n  \
teu build examples/hello -o oci:out:v1     # a spec directory, to a layout tagged v1\n  \
teu build app/teu.toml -o oci-archive:app.tar -o docker-archive:app-docker.tar:app:1\n  \
teu build --no-cache                       # rebuild every layer from scratch (same digest)\n  \
teu build --compression estargz            # lazily pullable layers (prefetch: see docs/spec.md)\n  \
teu build --base alpine:3.20 --copy ./app:/app -o registry.example.com/me/app:1 --tag latest\n  \
teu build --base oci:base:3.20 --copy ./bin/app:/usr/local/bin/app --entrypoint /usr/local/bin/app -o oci:out\n  \
SOURCE_DATE_EPOCH=1700000000 teu build --json\n\n\
Bases: scratch, oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:NAME:TAG], \
HOST/REPO[:TAG|@DIGEST] (only the base's index, manifest and config are read).\n\
Outputs: HOST/REPO[:TAG] or docker://HOST/REPO[:TAG] (pushed: only missing blobs move, base \
layers are mounted), oci:DIR[:TAG] (default tag latest; other images in the layout are kept), \
oci-archive:FILE[:TAG], docker-archive:FILE[:NAME:TAG] (for docker load / podman load).\n\
Without --output the image goes to oci:teu-out:latest in the current directory.\n\n\
Environment: SOURCE_DATE_EPOCH sets every timestamp (default 0); TEU_HOME sets the store \
(default ~/.cache/teu); TEU_JOBS the compression threads."
)]
pub struct BuildArgs {
    /// A teu.toml file, or a directory holding one (default: ./teu.toml, unless --copy is given)
    spec: Option<PathBuf>,

    /// Base image: scratch, oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:NAME:TAG] or HOST/REPO[:TAG|@DIGEST] (overrides the spec's image.base)
    #[arg(long, value_name = "REF")]
    base: Option<String>,

    /// Add SRC (file or directory) at DEST in an extra layer, with Dockerfile COPY semantics; repeatable
    #[arg(long = "copy", value_name = "SRC:DEST")]
    copies: Vec<String>,

    /// Entrypoint: a JSON array (["/app","--flag"]) or a single program path
    #[arg(long, value_name = "ARGS")]
    entrypoint: Option<String>,

    /// Default arguments: a JSON array or a single argument
    #[arg(long, value_name = "ARGS")]
    cmd: Option<String>,

    /// Environment variable KEY=VALUE; repeatable
    #[arg(long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,

    /// Working directory
    #[arg(long)]
    workdir: Option<String>,

    /// User (name, uid or uid:gid)
    #[arg(long)]
    user: Option<String>,

    /// Config label KEY=VALUE; repeatable
    #[arg(long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,

    /// Manifest annotation KEY=VALUE; repeatable
    #[arg(long = "annotation", value_name = "KEY=VALUE")]
    annotations: Vec<String>,

    /// Exposed port PORT[/tcp|udp|sctp]; repeatable
    #[arg(long = "expose", value_name = "PORT")]
    expose: Vec<String>,

    /// Volume path; repeatable
    #[arg(long = "volume", value_name = "PATH")]
    volumes: Vec<String>,

    /// Layer compression: gzip, zstd, estargz (lazily pullable gzip) or none, optionally with a level (zstd:9)
    #[arg(long, value_name = "ALGO[:LEVEL]")]
    compression: Option<String>,

    /// Platform os/arch[/variant]; repeatable, several give an index (default: the spec's, else the host's)
    #[arg(long = "platform", value_name = "OS/ARCH[/VARIANT]")]
    platforms: Vec<String>,

    /// Manifest format: oci (default) or docker (Docker v2 schema 2 and manifest lists)
    #[arg(long, value_name = "FORMAT", value_parser = ["oci", "docker"])]
    format: Option<String>,

    /// Where to write the image; repeatable (default: oci:teu-out:latest)
    #[arg(short, long = "output", value_name = "REF")]
    outputs: Vec<String>,

    /// Also write the image digest to FILE
    #[arg(long, value_name = "FILE")]
    digest_file: Option<PathBuf>,

    /// Print a JSON report on stdout instead of the digest
    #[arg(long)]
    json: bool,

    /// Compression threads (default: the number of CPUs); the output does not depend on it
    #[arg(short, long, env = "TEU_JOBS", allow_negative_numbers = true)]
    jobs: Option<usize>,

    /// Build every layer from scratch, without reading or writing the layer cache
    #[arg(long)]
    no_cache: bool,

    /// Fail if a base would resolve to anything other than what teu.lock records
    #[arg(long)]
    locked: bool,

    /// Prove the build reproducible: build a second time from scratch (a fresh, empty store,
    /// no caches) and compare digests; on a mismatch, show the differing entries and fail
    #[arg(long)]
    verify: bool,

    /// Print only warnings and errors on stderr
    #[arg(short, long)]
    quiet: bool,

    /// Also tag a registry output TAG; repeatable
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,

    /// Plan the outputs (what each would skip, link, copy, mount or upload) and write nothing
    #[arg(long)]
    dry_run: bool,

    #[command(flatten)]
    registry: RegistryArgs,

    #[command(flatten)]
    progress: ProgressArgs,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    /// The image's digest: its manifest's, or its index's for several platforms.
    digest: Digest,
    media_type: &'a str,
    size: u64,
    platforms: &'a [PlatformReport],
    /// Every layer teu built, once each.
    layers: Vec<&'a LayerReport>,
    outputs: &'a [WriteReport],
    bytes_written: u64,
}

fn key_value(flag: &str, s: &str) -> Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(usage(format!("{flag} {s:?}: expected KEY=VALUE"))),
    }
}

fn args_list(flag: &str, s: &str) -> Result<Vec<String>> {
    if s.trim_start().starts_with('[') {
        serde_json::from_str(s)
            .map_err(|e| usage(format!("{flag} {s:?}: not a JSON array of strings: {e}")))
    } else {
        Ok(vec![s.to_string()])
    }
}

/// Find and load the spec the arguments name; `None` for a flags-only build.
pub fn spec_file(spec: Option<&Path>, flags_only: bool) -> Option<PathBuf> {
    match spec {
        Some(p) if p.is_dir() => Some(p.join("teu.toml")),
        Some(p) => Some(p.to_path_buf()),
        None if !flags_only => Some(PathBuf::from("teu.toml")),
        None => None,
    }
}

/// Load the spec at `spec` (a file or its directory; default ./teu.toml), or an empty
/// one for a flags-only build.
pub fn load_spec(spec: Option<&Path>, flags_only: bool) -> Result<Spec> {
    match spec_file(spec, flags_only) {
        Some(f) => {
            if !f.exists() {
                return Err(usage(format!(
                    "no spec at {} (give a teu.toml or its directory, or build from flags with --copy SRC:DEST)",
                    f.display()
                )));
            }
            Ok(Spec::load(&f)?)
        }
        None => Ok(Spec::empty(Path::new("."), "command line")),
    }
}

/// Apply flags on top of the spec: flags win.
fn apply_flags(spec: &mut Spec, args: &BuildArgs) -> Result<()> {
    if let Some(b) = &args.base {
        // Paths on the command line are relative to where teu runs, like --copy's.
        let r = parse_ref("--base", b)?.relative_to(&std::env::current_dir()?);
        spec.base = Some((r, spec_origin("--base")));
    }
    if let Some(c) = &args.compression {
        spec.compression = c
            .parse::<Compression>()
            .map_err(|e| usage(format!("--compression: {e}")))?;
        for l in &mut spec.layers {
            l.compression = None;
        }
    }
    if !args.platforms.is_empty() {
        let mut list = Vec::new();
        for p in &args.platforms {
            let p = p
                .parse::<Platform>()
                .map_err(|e| usage(format!("--platform: {e}")))?;
            if !list.contains(&p) {
                list.push(p);
            }
        }
        spec.multi_platform |= list.len() > 1;
        spec.platforms = list;
    }
    match args.format.as_deref() {
        Some("docker") => spec.format = Format::Docker,
        Some(_) => spec.format = Format::Oci,
        None => {}
    }
    let c = &mut spec.config;
    if let Some(e) = &args.entrypoint {
        c.entrypoint = Some(args_list("--entrypoint", e)?);
    }
    if let Some(e) = &args.cmd {
        c.cmd = Some(args_list("--cmd", e)?);
    }
    for e in &args.env {
        let (k, v) = key_value("--env", e)?;
        c.env.insert(k, v);
    }
    if let Some(w) = &args.workdir {
        c.workdir = Some(w.clone());
    }
    if let Some(u) = &args.user {
        c.user = Some(u.clone());
    }
    for l in &args.labels {
        let (k, v) = key_value("--label", l)?;
        c.labels.insert(k, v);
    }
    for a in &args.annotations {
        let (k, v) = key_value("--annotation", a)?;
        spec.annotations.insert(k, v);
    }
    for p in &args.expose {
        teu_spec::check_port(p).map_err(|e| usage(format!("--expose: {e}")))?;
        c.exposed_ports.push(p.clone());
    }
    c.volumes.extend(args.volumes.iter().cloned());

    if !args.copies.is_empty() {
        let mut items = Vec::new();
        for cp in &args.copies {
            let (src, dest) = cp
                .rsplit_once(':')
                .filter(|(s, d)| !s.is_empty() && !d.is_empty())
                .ok_or_else(|| usage(format!("--copy {cp:?}: expected SRC:DEST")))?;
            check_dest(dest, true).map_err(|e| usage(format!("--copy {cp:?}: {e}")))?;
            items.push(Item::Copy {
                src: PathBuf::from(src),
                dest: dest.to_string(),
                meta: MetaOverride::default(),
                exclude: None,
                follow_symlinks: false,
                origin: spec_origin(&format!("--copy {cp}")),
            });
        }
        spec.layers.push(LayerSpec {
            name: "files".to_string(),
            compression: None,
            prefetch: Vec::new(),
            items,
            per_platform: Default::default(),
            origin: spec_origin("--copy"),
        });
    }
    Ok(())
}

/// Build again into an empty temporary store and compare.
fn verify(
    spec: &Spec,
    opts: &BuildOptions,
    first: &teu_image::Artifact,
    say: &dyn Fn(String),
) -> Result<()> {
    let scratch = tempfile::Builder::new()
        .prefix("verify-")
        .tempdir_in(opts.store.tmp_dir())
        .context("creating a scratch store for --verify")?;
    let again = BuildOptions {
        store: Store::open(scratch.path())?,
        jobs: opts.jobs,
        defaults: opts.defaults.clone(),
        no_cache: true,
        bases: opts.bases.clone(),
        progress: opts.progress.clone(),
    };
    let second = build(spec, &again).context("the --verify rebuild")?;
    if second.artifact.digest() == first.digest() {
        say(format!(
            "teu: verified: a second build from scratch gave the same digest {}",
            first.digest()
        ));
        return Ok(());
    }
    let d = teu_image::diff::diff(first, &second.artifact)?;
    eprint!("{}", super::diff::render(&d));
    anyhow::bail!(
        "the build is not reproducible: {} the first time, {} from scratch (differences above; A is the first build, B the second)",
        first.digest(),
        second.artifact.digest()
    )
}

fn spec_origin(what: &str) -> teu_layer::Origin {
    std::sync::Arc::from(format!("command line: {what}"))
}

pub fn run(args: BuildArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let outputs: Vec<Reference> = if args.outputs.is_empty() {
        vec![DEFAULT_OUTPUT.parse().expect("valid default")]
    } else {
        args.outputs
            .iter()
            .map(|o| parse_output("--output", o))
            .collect::<Result<_>>()?
    };
    let jobs = match args.jobs {
        Some(j) => jobs_arg(j)?,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let mut spec = load_spec(args.spec.as_deref(), !args.copies.is_empty())?;
    apply_flags(&mut spec, &args)?;

    let defaults = Defaults::from_env().map_err(anyhow::Error::msg)?;
    let store_root = Store::default_root();
    let store = Store::open(&store_root)
        .with_context(|| format!("opening the store at {}", store_root.display()))?;
    let mut cx = args.registry.context()?;
    cx.store = Some(store.clone());
    // Every output is opened (and so checked) before anything is built.
    let write_opts = WriteOptions {
        tags: args.tags.clone(),
        dry_run: args.dry_run,
        ..WriteOptions::default()
    };
    let extra_tags_somewhere = !args.tags.is_empty();
    let sinks = outputs
        .iter()
        .map(|o| {
            let local = transport::open_sink(o, &WriteOptions::default(), &cx)
                .map_err(|e| usage(format!("--output: {e}")))?;
            if local.is_local() {
                Ok(local)
            } else {
                transport::open_sink(o, &write_opts, &cx)
                    .map_err(|e| usage(format!("--output: {e}")))
            }
        })
        .collect::<Result<Vec<_>>>()?;
    if extra_tags_somewhere && sinks.iter().all(|s| s.is_local()) {
        return Err(usage(
            "--tag applies to registry outputs; add -o REGISTRY/REPO:TAG, or tag layouts with oci:DIR:TAG",
        ));
    }
    let lock = match spec_file(args.spec.as_deref(), !args.copies.is_empty()) {
        Some(f) if f.exists() => Lockfile::load(&Lockfile::path_in(&spec.dir))?,
        _ => None,
    };
    if args.locked && lock.is_none() && spec.base.as_ref().is_some_and(|(r, _)| !r.is_scratch()) {
        return Err(anyhow::anyhow!(
            "--locked: there is no teu.lock beside the spec; run teu lock first"
        ));
    }
    // Progress goes to stderr as the layers are built; with `--progress json` stderr holds
    // JSON lines only, so the human summary below is left out.
    let mode = args.progress.mode(args.quiet);
    let json_progress = mode == progress::Mode::Json;
    let opts = BuildOptions {
        progress: args.progress.reporter(args.quiet),
        store,
        jobs,
        defaults,
        no_cache: args.no_cache,
        bases: BaseOptions {
            platforms: Vec::new(),
            lock,
            locked: args.locked,
            transport: cx.clone(),
        },
    };
    let say = |line: String| {
        if !args.quiet && !json_progress {
            eprintln!("{line}");
        }
    };
    let built = build(&spec, &opts)?;
    for w in &built.warnings {
        if json_progress {
            progress::json_warning(w);
        } else {
            eprintln!("teu: warning: {w}");
        }
    }
    // Outputs that read blobs (a registry push, an archive) report each one.
    let watched = progress::watch_blobs(built.artifact.clone(), &opts.progress);
    let artifact = &watched;
    if args.verify {
        verify(&spec, &opts, artifact, &say)?;
    }
    let mut seen = std::collections::HashSet::new();
    let mut layers = Vec::new();
    for p in &built.platforms {
        let base = match &spec.base {
            Some((r, _)) if !r.is_scratch() => {
                format!(
                    " on {r} ({})",
                    p.base.as_ref().map(|d| d.short()).unwrap_or_default()
                )
            }
            _ => String::new(),
        };
        say(format!("teu: {}{base}", p.platform));
        for l in &p.layers {
            let fresh = seen.insert(l.digest.clone());
            if fresh {
                layers.push(l);
            }
            say(format!(
                "teu:   layer {:?}: {} entries, {} tar -> {} {}{}",
                l.name,
                l.entries,
                bytes(l.uncompressed_size),
                bytes(l.size),
                l.digest.short(),
                match (fresh, l.cached) {
                    (false, _) => " (shared)",
                    (true, true) => " (cached)",
                    (true, false) => "",
                }
            ));
        }
    }
    let mut reports = Vec::new();
    for (out, sink) in outputs.iter().zip(&sinks) {
        let r = transport::write_to(sink.as_ref(), artifact, args.dry_run, &cx)
            .with_context(|| format!("writing {out}"))?;
        if r.engine.is_some() {
            print_write(&r, &say);
            print_engine(&r, &say);
        } else if sink.is_local() {
            say(format!(
                "teu: {} {} ({} new)",
                if r.dry_run { "would write" } else { "wrote" },
                r.destination,
                bytes(r.bytes_written)
            ));
        } else {
            print_write(&r, &say);
        }
        reports.push(r);
    }
    let digest = artifact.digest();
    if let Some(f) = &args.digest_file {
        teu_store::atomic::write_file(f, format!("{digest}\n").as_bytes())
            .with_context(|| format!("writing the digest file {}", f.display()))?;
    }
    let what = match built.platforms.as_slice() {
        [one] if matches!(artifact, teu_image::Artifact::Image(_)) => one.platform.clone(),
        many => format!("index of {} platforms", many.len()),
    };
    say(format!(
        "teu: image {digest} ({what}) in {:.2}s",
        started.elapsed().as_secs_f64()
    ));
    if args.json {
        let report = JsonReport {
            digest: digest.clone(),
            media_type: artifact.media_type(),
            size: artifact.root_bytes().len() as u64,
            platforms: &built.platforms,
            layers,
            outputs: &reports,
            bytes_written: reports.iter().map(|r| r.bytes_written).sum(),
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{digest}");
    }
    Ok(ExitCode::SUCCESS)
}
