//! `teu lock`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use teu_build::{lock_bases, BaseOptions};
use teu_oci::Platform;
use teu_spec::lock::Lockfile;

use super::build::load_spec;
use crate::args::{usage, RegistryArgs};

#[derive(Args)]
#[command(
    about = "Pin the spec's base images by digest in teu.lock",
    long_about = "Resolve the spec's base for every platform it builds and write teu.lock next to the spec: \
the reference, the digest it resolved to (index or manifest) and each platform's manifest and config \
digests. Commit the file. Builds then use the locked digests even when a tag moves (with a warning); \
`teu build --locked` fails instead. Without --update, bases already in the lock stay where they are.",
    after_help = "Examples:\n  \
teu lock                      # ./teu.toml -> ./teu.lock\n  \
teu lock app/ --update        # move app/teu.lock to what the bases are now\n  \
teu build --locked            # CI: fail if teu.lock is missing or out of date"
)]
pub struct LockArgs {
    /// A teu.toml file, or a directory holding one (default: ./teu.toml)
    spec: Option<PathBuf>,
    /// Re-resolve every base, moving locked digests to what the references name now
    #[arg(long)]
    update: bool,
    /// Platforms to lock (default: the spec's, else the host's); repeatable
    #[arg(long = "platform", value_name = "OS/ARCH[/VARIANT]")]
    platforms: Vec<String>,

    #[command(flatten)]
    registry: RegistryArgs,
}

pub fn run(args: LockArgs) -> Result<ExitCode> {
    let spec = load_spec(args.spec.as_deref(), false)?;
    let platforms = args
        .platforms
        .iter()
        .map(|p| {
            p.parse::<Platform>()
                .map_err(|e| usage(format!("--platform: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let path = Lockfile::path_in(&spec.dir);
    let old = Lockfile::load(&path)?;
    // Resolving bases reads only their index, manifest and config: no store needed.
    let opts = BaseOptions {
        platforms,
        lock: old.clone(),
        locked: false,
        transport: args.registry.context()?,
    };
    let lock = lock_bases(&spec, &opts, args.update)?;
    let text = lock.to_toml();
    let unchanged = old.as_ref().is_some_and(|o| o.to_toml() == text);
    if !unchanged {
        teu_store::atomic::write_file(&path, text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    for b in &lock.bases {
        eprintln!("teu: {} -> {}", b.reference, b.digest);
        for p in &b.platforms {
            eprintln!(
                "teu:   {} manifest {} config {}",
                p.platform,
                p.manifest.short(),
                p.config.short()
            );
        }
    }
    if lock.bases.is_empty() {
        eprintln!("teu: the spec builds on scratch; nothing to lock");
    }
    eprintln!(
        "teu: {} {}",
        if unchanged { "up to date:" } else { "wrote" },
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}
