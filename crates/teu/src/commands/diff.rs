//! `teu diff`.

use std::process::ExitCode;

use std::fmt::Write as _;

use anyhow::{Context, Result};
use clap::Args;
use serde_json::Value;
use teu_image::diff::{diff, ArtifactDiff, EntryChange, EntryInfo, LayerDiff};
use teu_image::transport::{read, Select};

use crate::args::{parse_ref, RegistryArgs};

#[derive(Args)]
#[command(
    about = "Compare two images: manifests, config fields, layers and the entries inside them",
    long_about = "Compare two images from any source (oci:, oci-archive:, docker-archive:, a registry). Shows the index \
and manifest digests, config fields that differ, and for each layer that differs the entries added (+), \
removed (-) or changed (~) in content or metadata (mode, owner, mtime, link target, xattrs). Layers are \
streamed, never unpacked to disk.",
    after_help = "Examples:\n  \
teu diff oci:out:v1 oci:out:v2\n  \
teu diff oci-archive:old.tar oci:new --json\n  \
teu diff localhost:5000/app:1 oci:out:v1\n\n\
Exit codes, like diff(1): 0 identical, 1 different, 2 error."
)]
pub struct DiffArgs {
    /// The first image
    a: String,
    /// The second image
    b: String,
    /// Print the differences as JSON
    #[arg(long)]
    json: bool,

    #[command(flatten)]
    registry: RegistryArgs,
}

pub fn run(args: DiffArgs) -> Result<ExitCode> {
    // Like diff(1), trouble is exit code 2, whatever kind it is.
    match compare(&args) {
        Ok(code) => Ok(code),
        Err(e) => {
            crate::print_error(&e);
            Ok(ExitCode::from(2))
        }
    }
}

fn compare(args: &DiffArgs) -> Result<ExitCode> {
    let (ra, rb) = (parse_ref("A", &args.a)?, parse_ref("B", &args.b)?);
    let cx = args.registry.context()?;
    let a = read(&ra, &Select::All, &cx).with_context(|| format!("reading {}", args.a))?;
    let b = read(&rb, &Select::All, &cx).with_context(|| format!("reading {}", args.b))?;
    let d = diff(&a, &b)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&d)?);
    } else {
        print!("{}", render(&d));
    }
    Ok(if d.identical {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn show(v: &Option<Value>) -> String {
    match v {
        Some(v) => v.to_string(),
        None => "(none)".to_string(),
    }
}

fn describe_entry(e: &EntryInfo) -> String {
    match (e.kind, &e.link) {
        ("file", _) => format!("file, {} bytes, mode {}", e.size, e.mode),
        (k, Some(l)) => format!("{k} -> {l}"),
        (k, None) => format!("{k}, mode {}", e.mode),
    }
}

/// A digest as `sha256:0123456789ab`, for the human form.
fn short(digest: &str) -> String {
    match digest.parse::<teu_oci::Digest>() {
        Ok(d) => d.short(),
        Err(_) => digest.to_string(),
    }
}

/// The human form of a diff: one line per difference, `~` changed, `+` only in B, `-` only
/// in A; digests shortened (`--json` has them in full).
pub fn render(this: &ArtifactDiff) -> String {
    let mut s = String::new();
    {
        if this.identical {
            let _ = writeln!(s, "identical: {}", this.a);
            return s;
        }
        let _ = writeln!(s, "A: {} ({})", this.a, this.a_media_type);
        let _ = writeln!(s, "B: {} ({})", this.b, this.b_media_type);
        for p in &this.only_in_a {
            let _ = writeln!(s, "- platform {p} (only in A)");
        }
        for p in &this.only_in_b {
            let _ = writeln!(s, "+ platform {p} (only in B)");
        }
        for img in &this.images {
            if img.a == img.b {
                let _ = writeln!(s, "image {}: same ({})", img.platform, img.a.short());
                continue;
            }
            let _ = writeln!(
                s,
                "image {}: {} -> {}",
                img.platform,
                img.a.short(),
                img.b.short()
            );
            for (title, changes) in [("manifest", &img.manifest), ("config", &img.config)] {
                for c in changes {
                    let sign = match (&c.a, &c.b) {
                        (None, _) => '+',
                        (_, None) => '-',
                        _ => '~',
                    };
                    let _ = writeln!(
                        s,
                        "  {sign} {title} {}: {} -> {}",
                        c.field,
                        show(&c.a),
                        show(&c.b)
                    );
                }
            }
            for l in &img.layers {
                match l {
                    LayerDiff::Same { .. } => {}
                    LayerDiff::OnlyInA { index, digest } => {
                        let _ = writeln!(s, "  - layer {index}: {} (only in A)", digest.short());
                    }
                    LayerDiff::OnlyInB { index, digest } => {
                        let _ = writeln!(s, "  + layer {index}: {} (only in B)", digest.short());
                    }
                    LayerDiff::Changed {
                        index,
                        a,
                        b,
                        entries,
                    } => {
                        let _ = writeln!(s, "  ~ layer {index}: {} -> {}", a.short(), b.short());
                        if entries.is_empty() {
                            let _ = writeln!(
                                s,
                                "      same entries, different bytes (compression or entry order)"
                            );
                        }
                        for e in entries {
                            match e {
                                EntryChange::Added { path, entry } => {
                                    let _ = writeln!(s, "    + {path} ({})", describe_entry(entry));
                                }
                                EntryChange::Removed { path, entry } => {
                                    let _ = writeln!(s, "    - {path} ({})", describe_entry(entry));
                                }
                                EntryChange::Changed { path, fields } => {
                                    let what: Vec<String> = fields
                                        .iter()
                                        .map(|f| match f.field.as_str() {
                                            "content" => format!(
                                                "content {} -> {}",
                                                short(&f.a),
                                                short(&f.b)
                                            ),
                                            _ => format!("{} {} -> {}", f.field, f.a, f.b),
                                        })
                                        .collect();
                                    let _ = writeln!(s, "    ~ {path}: {}", what.join(", "));
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    s
}
