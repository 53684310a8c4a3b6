//! `teu diff`.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use teu_image::diff::diff;
use teu_image::source::read_artifact;
use teu_oci::Reference;

use crate::UsageError;

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
    registry: crate::registry::RegistryArgs,
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
    let parse = |s: &str| {
        s.parse::<Reference>()
            .map_err(|e| anyhow::Error::new(UsageError(e.to_string())))
    };
    let (ra, rb) = (parse(&args.a)?, parse(&args.b)?);
    let client = args.registry.client()?;
    let a = read_artifact(&ra, Some(&client)).with_context(|| format!("reading {}", args.a))?;
    let b = read_artifact(&rb, Some(&client)).with_context(|| format!("reading {}", args.b))?;
    let d = diff(&a, &b)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&d)?);
    } else {
        print!("{}", d.render());
    }
    Ok(if d.identical {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
