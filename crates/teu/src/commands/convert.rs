//! `teu convert`: read an image or index from any source, write it with every layer in
//! another compression (eStargz included) to any destination.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use teu_build::convert::{convert, ConvertOptions};
use teu_image::transport::{self, WriteOptions};
use teu_layer::Compression;
use teu_store::Store;

use crate::args::{jobs_arg, parse_output, parse_ref, select_arg, usage, RegistryArgs};
use crate::output::{bytes, print_write};
use crate::progress::{self, ProgressArgs};

#[derive(Args)]
pub struct ConvertArgs {
    /// The image to read: HOST/REPO[:TAG|@DIGEST], docker://…, oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:NAME:TAG]
    src: String,
    /// Where to write the converted image (same forms)
    dst: String,

    /// Target layer compression: estargz, gzip, zstd or none, optionally with a level (gzip:9)
    #[arg(long, value_name = "ALGORITHM[:LEVEL]")]
    compression: String,

    /// eStargz chunk size in bytes (default 4194304)
    #[arg(long, value_name = "BYTES")]
    estargz_chunk_size: Option<u64>,

    /// Convert only the image for this platform out of an index (default: the whole index)
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    platform: Option<String>,

    /// Compression threads per layer (default: all cores); the output does not depend on it
    #[arg(long, env = "TEU_JOBS")]
    jobs: Option<usize>,

    /// Convert every layer again instead of reusing earlier conversions
    #[arg(long)]
    no_cache: bool,

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

pub const HELP: &str = "Examples:\n  \
teu convert docker.io/library/alpine:3.20 localhost:5000/alpine:3.20-esgz --compression estargz\n  \
teu convert oci:./app:1 oci:./app:1-esgz --compression estargz --json\n  \
teu convert localhost:5000/app:1-esgz localhost:5000/app:1-gz --compression gzip\n  \
teu convert oci:./app:1 oci-archive:app-zstd.tar --compression zstd:9 --platform linux/arm64\n\n\
Every layer of every platform is decompressed and written again by teu's own pipeline, so \
the result is the same on any machine and thread count; configs (diff_ids), manifests and \
the index are rewritten. Source blobs are streamed and verified against their digests; \
converted layers go to teu's store, which remembers them: converting the same layer \
again reads nothing. gzip, zstd and none keep each tar stream byte for byte; estargz \
lays the files out for lazy pulling (an existing eStargz layer keeps its prefetch order), \
keeping paths, order, modes, owners and mtimes. Converting eStargz to gzip and back gives \
the same digest: the gzip layer keeps the eStargz tar stream, landmark and \
stargz.index.json included (the TOC's offsets then name nothing; plain runtimes ignore it).";

pub fn run(args: ConvertArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let mut compression = args
        .compression
        .parse::<Compression>()
        .map_err(|e| usage(format!("--compression: {e}")))?;
    if let Some(c) = args.estargz_chunk_size {
        if compression.estargz_chunk().is_none() {
            return Err(usage(
                "--estargz-chunk-size applies to --compression estargz",
            ));
        }
        compression = compression
            .with_chunk_size(c)
            .map_err(|e| usage(format!("--estargz-chunk-size: {e}")))?;
    }
    let jobs = match args.jobs {
        Some(j) => jobs_arg(j)?,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let src = parse_ref("SRC", &args.src)?;
    let dst = parse_output("DST", &args.dst)?;
    let select = select_arg(args.platform.as_deref())?;
    let store_root = Store::default_root();
    let store = Store::open(&store_root)
        .with_context(|| format!("opening the store at {}", store_root.display()))?;
    let mut cx = args.registry.context()?;
    cx.store = Some(store.clone());
    let json_progress = args.progress.mode(args.quiet) == progress::Mode::Json;
    let say = |line: String| {
        if !args.quiet && !json_progress {
            eprintln!("{line}");
        }
    };
    let sink = transport::open_sink(&dst, &WriteOptions::default(), &cx)
        .map_err(|e| usage(format!("DST: {e}")))?;
    let artifact = transport::read(&src, &select, &cx).with_context(|| format!("reading {src}"))?;
    let opts = ConvertOptions {
        compression,
        jobs,
        store,
        progress: args.progress.reporter(args.quiet),
        no_cache: args.no_cache,
    };
    let (converted, layers) =
        convert(&artifact, &opts).with_context(|| format!("converting {src}"))?;
    for l in &layers {
        say(format!(
            "teu:   layer {} -> {} {} ({}){}",
            l.from.short(),
            l.digest.short(),
            bytes(l.size),
            compression,
            if l.cached { ", cached" } else { "" }
        ));
    }
    let digest = converted.digest();
    let report = transport::write_to(sink.as_ref(), &converted, false, &cx)
        .with_context(|| format!("writing {dst}"))?;
    print_write(&report, &say);
    say(format!(
        "teu: converted {} to {digest} in {:.2}s",
        artifact.digest().short(),
        started.elapsed().as_secs_f64()
    ));
    if args.json {
        let v = serde_json::json!({
            "source": artifact.digest(),
            "digest": digest,
            "compression": compression.name(),
            "layers": layers,
            "output": report,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("{digest}");
    }
    Ok(ExitCode::SUCCESS)
}
