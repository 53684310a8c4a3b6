//! `teu tags`: the tags a repository holds, or a layout's or archive's `ref.name`s.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use teu_image::transport::open_source;

use crate::args::{parse_ref, RegistryArgs};

#[derive(Args)]
#[command(after_help = "Examples:\n  \
teu tags localhost:5000/app\n  \
teu tags alpine --json\n  \
teu tags oci:./out                 # the tags (ref.name) of an OCI layout")]
pub struct TagsArgs {
    /// HOST/REPO (a tag or digest in it is ignored), oci:DIR, oci-archive:FILE or docker-archive:FILE
    repository: String,
    /// Print a JSON array
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    registry: RegistryArgs,
}

pub fn run(args: TagsArgs) -> Result<ExitCode> {
    let r = parse_ref("REPO", &args.repository)?;
    let cx = args.registry.context()?;
    let tags = open_source(&r, &cx)?.tags()?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&tags)?);
    } else {
        for t in tags {
            println!("{t}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
