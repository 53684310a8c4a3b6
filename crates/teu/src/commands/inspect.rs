//! `teu inspect` and `teu digest`: what a reference names, shown the same way wherever the
//! image lives (a layout, an archive, a registry): the index by default, one image with
//! `--platform`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use serde::Serialize;
use teu_image::select::{image_for, read_verified};
use teu_image::transport::{open_source, Top};
use teu_image::{select, Image};
use teu_oci::{media_type, Descriptor, Digest, Index, Raw};

use crate::args::{parse_ref, platform_arg, RegistryArgs};
use crate::output::bytes;

#[derive(Args)]
#[command(after_help = "Examples:\n  \
teu inspect alpine:3.20                       # an index: its platforms; an image: config and layers\n  \
teu inspect alpine:3.20 --platform linux/arm64   # one image of the index\n  \
teu inspect localhost:5000/app:1 --raw        # the manifest or index exactly as stored\n  \
teu inspect oci-archive:app.tar --config      # the image config JSON (the host's platform)\n  \
teu inspect oci:./out:v1 --json\n  \
teu inspect oci:./out:v1 --toc sha256:…       # an eStargz layer's table of contents (--json: as JSON)\n\n\
Layers marked eStargz carry the containerd.io/snapshot/stargz/toc.digest annotation; --toc \
reads a local layer's footer and TOC in place (a registry's layer is downloaded first, \
verified against its digest) and checks the TOC against the annotation.\n\n\
REF: oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:NAME:TAG], \
HOST/REPO[:TAG|@DIGEST] or docker://…; the output is the same for the same image wherever \
it lives.")]
pub struct InspectArgs {
    /// The image: oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:NAME:TAG], HOST/REPO[:TAG|@DIGEST]
    reference: String,
    /// Print the index or manifest bytes exactly as stored (with --platform, that image's manifest)
    #[arg(long, conflicts_with = "config")]
    raw: bool,
    /// Print the image config JSON (of --platform's image, default the host's)
    #[arg(long)]
    config: bool,
    /// Show the image for this platform out of an index (default: the index itself)
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    platform: Option<String>,
    /// Print the table of contents of this eStargz layer of the image (or index)
    #[arg(long, value_name = "LAYER-DIGEST", conflicts_with_all = ["raw", "config"])]
    toc: Option<String>,
    /// Print a JSON summary
    #[arg(long, conflicts_with_all = ["raw", "config"])]
    json: bool,
    #[command(flatten)]
    registry: RegistryArgs,
}

#[derive(Args)]
#[command(after_help = "Examples:\n  \
teu digest localhost:5000/app:1               # what the tag points at (an index or a manifest)\n  \
teu digest alpine:3.20 --platform linux/amd64 # the manifest of one platform\n  \
teu digest oci:./out:v1\n  \
teu digest docker-archive:app.tar")]
pub struct DigestArgs {
    /// The image: oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:NAME:TAG], HOST/REPO[:TAG|@DIGEST]
    reference: String,
    /// The digest of this platform's manifest rather than the index's
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    platform: Option<String>,
    #[command(flatten)]
    registry: RegistryArgs,
}

/// The settings of an image's config users look for, as `skopeo inspect` shows them.
#[derive(Serialize, Default)]
struct Settings {
    #[serde(skip_serializing_if = "Option::is_none")]
    created: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    entrypoint: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cmd: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    env: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    working_dir: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    exposed_ports: Vec<String>,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    labels: std::collections::BTreeMap<String, String>,
}

#[derive(Serialize)]
struct Summary {
    reference: String,
    digest: Digest,
    media_type: String,
    size: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    manifests: Vec<Descriptor>,
    #[serde(skip_serializing_if = "Option::is_none")]
    platform: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    config: Option<Descriptor>,
    #[serde(skip_serializing_if = "Option::is_none")]
    settings: Option<Settings>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    layers: Vec<Descriptor>,
}

impl Summary {
    fn of_image(reference: String, image: &Image) -> Summary {
        let c = &image.config.value;
        let cc = &c.config;
        Summary {
            reference,
            digest: image.digest(),
            media_type: image.manifest_media_type().to_string(),
            size: image.manifest.bytes.len() as u64,
            manifests: vec![],
            platform: Some(c.platform().to_string()),
            config: Some(image.manifest.value.config.clone()),
            settings: Some(Settings {
                created: c.created.clone(),
                entrypoint: cc.entrypoint.clone(),
                cmd: cc.cmd.clone(),
                env: cc.env.clone().unwrap_or_default(),
                user: cc.user.clone().filter(|u| !u.is_empty()),
                working_dir: cc.working_dir.clone().filter(|w| !w.is_empty()),
                exposed_ports: cc
                    .exposed_ports
                    .iter()
                    .flat_map(|p| p.keys().cloned())
                    .collect(),
                labels: cc.labels.clone().unwrap_or_default(),
            }),
            layers: image.manifest.value.layers.clone(),
        }
    }
}

/// What `reference` names now, from its transport.
fn open(reference: &str, registry: &RegistryArgs) -> Result<(String, Top)> {
    let r = parse_ref("REF", reference)?;
    let cx = registry.context()?;
    let source = open_source(&r, &cx)?;
    Ok((source.name(), source.open()?))
}

pub fn inspect(args: InspectArgs) -> Result<ExitCode> {
    let (name, top) = open(&args.reference, &args.registry)?;
    if let Some(layer) = &args.toc {
        return print_toc(&name, top, layer, args.platform.as_deref(), args.json);
    }
    let out = std::io::stdout();
    let mut out = out.lock();
    if args.config {
        let platform = platform_arg(args.platform.as_deref())?;
        let image = image_for(top.blobs, &top.descriptor, &platform)?;
        out.write_all(&image.config.bytes)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    let summary = match &args.platform {
        Some(p) => {
            let image = image_for(top.blobs, &top.descriptor, &platform_arg(Some(p))?)?;
            if args.raw {
                out.write_all(&image.manifest.bytes)?;
                writeln!(out)?;
                return Ok(ExitCode::SUCCESS);
            }
            Summary::of_image(name, &image)
        }
        None if args.raw => {
            out.write_all(&read_verified(top.blobs.as_ref(), &top.descriptor)?)?;
            writeln!(out)?;
            return Ok(ExitCode::SUCCESS);
        }
        None if media_type::is_index(&top.descriptor.media_type) => {
            let bytes = read_verified(top.blobs.as_ref(), &top.descriptor)?;
            let index: Raw<Index> = Raw::parse(bytes, &name)?;
            Summary {
                reference: name,
                digest: top.descriptor.digest.clone(),
                media_type: top.descriptor.media_type.clone(),
                size: top.descriptor.size,
                manifests: index.value.manifests,
                platform: None,
                config: None,
                settings: None,
                layers: vec![],
            }
        }
        None => Summary::of_image(name, &select::image(top.blobs, &top.descriptor)?),
    };
    drop(out);
    print_summary(&summary, args.json)
}

fn print_summary(s: &Summary, json: bool) -> Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(s)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}", s.reference);
    println!("  digest:     {}", s.digest);
    println!("  media type: {} ({})", s.media_type, bytes(s.size));
    for m in &s.manifests {
        let p = m
            .platform
            .as_ref()
            .map(|p| p.to_string())
            .unwrap_or_else(|| "-".into());
        println!("  manifest:   {} {p} ({})", m.digest, bytes(m.size));
    }
    if let Some(p) = &s.platform {
        println!("  platform:   {p}");
    }
    if let Some(c) = &s.config {
        println!("  config:     {} ({})", c.digest, bytes(c.size));
    }
    if let Some(x) = &s.settings {
        let list = |v: &[String]| serde_json::to_string(v).expect("strings");
        if let Some(c) = &x.created {
            println!("  created:    {c}");
        }
        if let Some(e) = &x.entrypoint {
            println!("  entrypoint: {}", list(e));
        }
        if let Some(c) = &x.cmd {
            println!("  cmd:        {}", list(c));
        }
        for e in &x.env {
            println!("  env:        {e}");
        }
        if let Some(u) = &x.user {
            println!("  user:       {u}");
        }
        if let Some(w) = &x.working_dir {
            println!("  workdir:    {w}");
        }
        if !x.exposed_ports.is_empty() {
            println!("  ports:      {}", x.exposed_ports.join(", "));
        }
        for (k, v) in &x.labels {
            println!("  label:      {k}={v}");
        }
    }
    let total: u64 = s.layers.iter().map(|l| l.size).sum();
    if !s.layers.is_empty() {
        println!(
            "  layers:     {} ({} compressed)",
            s.layers.len(),
            bytes(total)
        );
    }
    for l in &s.layers {
        let lazy = match l.annotations.get(teu_layer::estargz::TOC_DIGEST_ANNOTATION) {
            Some(toc) => format!(" eStargz, TOC {toc}"),
            None => String::new(),
        };
        println!(
            "    {} {} ({}){lazy}",
            l.digest,
            l.media_type,
            bytes(l.size)
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn digest(args: DigestArgs) -> Result<ExitCode> {
    let (_, top) = open(&args.reference, &args.registry)?;
    let d = match &args.platform {
        None => top.descriptor.digest,
        Some(p) => image_for(top.blobs, &top.descriptor, &platform_arg(Some(p))?)?.digest(),
    };
    println!("{d}");
    Ok(ExitCode::SUCCESS)
}

/// `--toc`: find the layer in the image (or any image of the index) and print its TOC,
/// checked against the descriptor's annotation.
fn print_toc(
    name: &str,
    top: Top,
    layer: &str,
    platform: Option<&str>,
    json: bool,
) -> Result<ExitCode> {
    let want: Digest = layer
        .parse()
        .map_err(|e| crate::args::usage(format!("--toc: {e}")))?;
    let which = crate::args::select_arg(platform)?;
    let artifact = select::select(top.blobs, &top.descriptor, &which)?;
    let found = artifact
        .images()
        .into_iter()
        .flat_map(|i| i.layers.iter())
        .find(|l| l.descriptor.digest == want)
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("{name} has no layer {want}"))?;
    // A local blob (a layout, the store) is read in place, footer and TOC only, as a
    // lazy reader would, so the blob's own digest is not checked (the TOC's is, against
    // the annotation); any other is copied first, verified against its digest.
    let local = found
        .source
        .local_path(&want)
        .and_then(|p| std::fs::File::open(p).ok());
    let mut file = match local {
        Some(f) => f,
        None => {
            let mut file = tempfile::tempfile()?;
            let mut w = teu_oci::Sha256Writer::new(&mut file);
            std::io::copy(&mut found.source.open(&want)?, &mut w)?;
            let (actual, n, _) = w.finish();
            if actual != want || n != found.descriptor.size {
                anyhow::bail!("layer {want} read from {name} is {actual} ({n} bytes): corrupt");
            }
            file
        }
    };
    let read = teu_layer::estargz::read_toc(&mut file)
        .map_err(|e| anyhow::anyhow!("layer {want}: {e}"))?;
    let annotated = found
        .descriptor
        .annotations
        .get(teu_layer::estargz::TOC_DIGEST_ANNOTATION);
    if let Some(a) = annotated {
        if *a != read.digest.to_string() {
            anyhow::bail!(
                "layer {want}: its TOC is {} but the descriptor's annotation says {a}",
                read.digest
            );
        }
    }
    if json {
        let v = serde_json::json!({
            "layer": want,
            "toc_digest": read.digest,
            "toc_offset": read.toc_offset,
            "annotated": annotated.is_some(),
            "toc": read.toc,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("layer {want}");
    println!(
        "  toc digest: {}{}",
        read.digest,
        if annotated.is_some() {
            " (matches the annotation)"
        } else {
            " (no annotation)"
        }
    );
    println!("  toc offset: {}", read.toc_offset);
    println!("  entries:    {}", read.toc.entries.len());
    let entries = &read.toc.entries;
    for (i, e) in entries.iter().enumerate() {
        let what = match e.kind.as_str() {
            "reg" => format!("{:>10}", e.size),
            // Printed under their file, with the size the last one leaves out.
            "chunk" => continue,
            "symlink" | "hardlink" => format!("-> {}", e.link_name),
            _ => String::new(),
        };
        println!("    {:<8} {} {what}", e.kind, e.name);
        if e.kind == "reg" && e.size > 0 {
            for (offset, chunk_offset, len, _) in teu_layer::estargz::TocEntry::chunks(entries, i) {
                println!("             chunk +{chunk_offset} {len} bytes, member @{offset}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
