//! `teu inspect`, `teu digest` and `teu tags`: reading what a registry (or layout) holds.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use serde::Serialize;
use teu_image::registry::{fetch_top, pick_platform, resolve, Resolved};
use teu_oci::{Descriptor, Digest, Reference};

use super::{parse_ref, parse_registry_ref, platform_arg, read_image, RegistryArgs};
use crate::report::bytes;

#[derive(Args)]
#[command(after_help = "Examples:\n  \
teu inspect alpine:3.20                       # the platforms of an index, or an image's layers\n  \
teu inspect localhost:5000/app:1 --raw        # the manifest exactly as served\n  \
teu inspect localhost:5000/app:1 --config     # the image config JSON\n  \
teu inspect oci:./out:v1 --json\n  \
teu inspect alpine:3.20 --platform linux/arm64 --raw")]
pub struct InspectArgs {
    /// HOST/REPO[:TAG|@DIGEST], docker://…, or oci:DIR[:TAG]
    reference: String,
    /// Print the manifest (or index) bytes exactly as stored
    #[arg(long, conflicts_with = "config")]
    raw: bool,
    /// Print the image config JSON
    #[arg(long)]
    config: bool,
    /// Pick this platform from an index (default: show the index, or the host's for --config)
    #[arg(long)]
    platform: Option<String>,
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
teu digest oci:./out:v1")]
pub struct DigestArgs {
    /// HOST/REPO[:TAG|@DIGEST], docker://…, or oci:DIR[:TAG]
    reference: String,
    /// The digest of this platform's manifest rather than the index's
    #[arg(long)]
    platform: Option<String>,
    #[command(flatten)]
    registry: RegistryArgs,
}

#[derive(Args)]
#[command(after_help = "Examples:\n  \
teu tags localhost:5000/app\n  \
teu tags alpine --json")]
pub struct TagsArgs {
    /// HOST/REPO (a tag or digest in it is ignored)
    repository: String,
    /// Print a JSON array
    #[arg(long)]
    json: bool,
    /// Tags asked for per request (the registry may send fewer and a link to the rest)
    #[arg(long, default_value_t = 1000, hide = true)]
    page_size: usize,
    #[command(flatten)]
    registry: RegistryArgs,
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
    #[serde(skip_serializing_if = "Vec::is_empty")]
    layers: Vec<Descriptor>,
}

pub fn inspect(args: InspectArgs) -> Result<ExitCode> {
    let reference = parse_ref("REF", &args.reference)?;
    let client = args.registry.client()?;
    let out = std::io::stdout();
    let mut out = out.lock();
    if args.config {
        let platform = platform_arg(args.platform.as_deref())?;
        let image = read_image(&client, &reference, &platform)?;
        out.write_all(&image.config.bytes)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    let Reference::Registry(r) = &reference else {
        // Layouts: one image, for the requested (or host) platform.
        let platform = platform_arg(args.platform.as_deref())?;
        let image = read_image(&client, &reference, &platform)?;
        if args.raw {
            out.write_all(&image.manifest.bytes)?;
            writeln!(out)?;
            return Ok(ExitCode::SUCCESS);
        }
        let s = Summary {
            reference: reference.to_string(),
            digest: image.digest(),
            media_type: image.manifest_media_type().to_string(),
            size: image.manifest.bytes.len() as u64,
            manifests: vec![],
            platform: Some(image.config.value.platform().to_string()),
            config: Some(image.manifest.value.config.clone()),
            layers: image.manifest.value.layers.clone(),
        };
        return print_summary(&s, args.json);
    };
    let mut top = fetch_top(&client, r)?;
    if let Some(p) = &args.platform {
        let platform = platform_arg(Some(p))?;
        if let Resolved::Index { index, .. } = resolve(&client, r, top.clone())? {
            let d = pick_platform(&index.value, &platform, &r.to_string())?;
            top = client.get_manifest(&r.registry, &r.repository, &d.to_string())?;
        }
    }
    if args.raw {
        out.write_all(&top.bytes)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut s = Summary {
        reference: r.to_string(),
        digest: top.digest.clone(),
        media_type: top.media_type.clone(),
        size: top.bytes.len() as u64,
        manifests: vec![],
        platform: None,
        config: None,
        layers: vec![],
    };
    match resolve(&client, r, top)? {
        Resolved::Index { index, .. } => s.manifests = index.value.manifests,
        Resolved::Image(image) => {
            s.platform = Some(image.config.value.platform().to_string());
            s.config = Some(image.manifest.value.config.clone());
            s.layers = image.manifest.value.layers.clone();
        }
    }
    print_summary(&s, args.json)
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
    let total: u64 = s.layers.iter().map(|l| l.size).sum();
    if !s.layers.is_empty() {
        println!(
            "  layers:     {} ({} compressed)",
            s.layers.len(),
            bytes(total)
        );
    }
    for l in &s.layers {
        println!("    {} {} ({})", l.digest, l.media_type, bytes(l.size));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn digest(args: DigestArgs) -> Result<ExitCode> {
    let reference = parse_ref("REF", &args.reference)?;
    let client = args.registry.client()?;
    let d = match (&reference, &args.platform) {
        (Reference::Registry(r), None) => fetch_top(&client, r)?.digest,
        (Reference::Registry(r), Some(p)) => {
            let platform = platform_arg(Some(p))?;
            match resolve(&client, r, fetch_top(&client, r)?)? {
                Resolved::Index { index, .. } => {
                    pick_platform(&index.value, &platform, &r.to_string())?
                }
                Resolved::Image(image) => image.digest(),
            }
        }
        // Without --platform, what the reference names: an index's digest for an index.
        (other, None) => teu_image::source::read_artifact(other, Some(&client))?.digest(),
        (other, Some(p)) => read_image(&client, other, &platform_arg(Some(p))?)?.digest(),
    };
    println!("{d}");
    Ok(ExitCode::SUCCESS)
}

pub fn tags(args: TagsArgs) -> Result<ExitCode> {
    let r = parse_registry_ref("REPO", &args.repository)?;
    let client = args.registry.client()?;
    let tags = client.tags(&r.registry, &r.repository, args.page_size)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&tags)?);
    } else {
        for t in tags {
            println!("{t}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
