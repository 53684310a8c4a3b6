//! `teu cache du | gc | verify`: look after the store under $TEU_HOME.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use teu_image::gc::{self, GcOptions};
use teu_store::Store;

use crate::args::UsageError;
use crate::output::bytes;

#[derive(Args)]
#[command(
    about = "Inspect, clean and verify the store (blobs, layer cache, segments, stat caches)",
    long_about = "The store under $TEU_HOME (default ~/.cache/teu) holds every blob teu built or \
read, the layer cache (records of built layers, by input key), cached compressed segments \
(so a changed file recompresses only its segment) and the stat caches (file content hashes \
by stat data). Builds only ever add to it; these commands look after it. See docs/layers.md.",
    after_help = "Examples:\n  \
teu cache du                          # what the store holds\n  \
teu cache gc --max-age 7d             # forget blobs unused for a week\n  \
teu cache gc --max-size 10G --dry-run # what would go to fit in 10 GiB\n  \
teu cache verify --json               # re-hash every blob, remove corrupt ones\n\n\
gc never removes a blob an output written by teu build still holds (its root), nor \
anything written in the last 10 minutes."
)]
pub struct CacheArgs {
    #[command(subcommand)]
    command: CacheCommand,
}

#[derive(Subcommand)]
enum CacheCommand {
    /// Show what the store holds
    Du {
        /// Print a JSON report
        #[arg(long)]
        json: bool,
    },
    /// Remove blobs by age and total size, keeping what outputs reference
    #[command(after_help = "Examples:\n  \
teu cache gc --max-age 30d\n  \
teu cache gc --max-size 20G\n  \
teu cache gc --max-age 12h --max-size 5G --dry-run --json\n\n\
Blobs are removed least recently used first (a cache hit counts as a use). Blobs listed \
by a root (every local output teu build writes records one, under $TEU_HOME/roots) are \
kept while that output exists. Layer records whose blob is gone are removed, so the next \
build rebuilds those layers.")]
    Gc {
        /// Remove unpinned blobs not used for this long (e.g. 30d, 12h, 90m, 3600s)
        #[arg(long, value_name = "AGE", value_parser = parse_age)]
        max_age: Option<Duration>,
        /// Then remove unpinned blobs, oldest first, until the blobs fit (e.g. 10G, 500M)
        #[arg(long, value_name = "SIZE", value_parser = parse_size)]
        max_size: Option<u64>,
        /// Only report what would be removed
        #[arg(long)]
        dry_run: bool,
        /// Print a JSON report
        #[arg(long)]
        json: bool,
    },
    /// Re-hash every blob; report and remove those whose bytes do not match their digest
    #[command(after_help = "Examples:\n  \
teu cache verify\n  \
teu cache verify --dry-run --json\n\n\
Exit code 1 when a corrupt blob was found (it is removed unless --dry-run); the layers \
it held are rebuilt by the next build.")]
    Verify {
        /// Only report corrupt blobs, do not remove them
        #[arg(long)]
        dry_run: bool,
        /// Print a JSON report
        #[arg(long)]
        json: bool,
        /// Hashing threads (default: the number of CPUs)
        #[arg(short, long, env = "TEU_JOBS")]
        jobs: Option<usize>,
    },
}

fn parse_age(s: &str) -> Result<Duration, String> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not an age like 30d, 12h, 90m or 3600s"))?;
    let secs = match unit {
        "s" | "" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (s, m, h, d or w)")),
    };
    Ok(Duration::from_secs(n.saturating_mul(secs)))
}

fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim_end_matches(['B', 'b', 'i']);
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size like 10G, 500M or 1048576"))?;
    let mult: u64 = match unit.to_ascii_uppercase().as_str() {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (K, M, G or T)")),
    };
    Ok(n.saturating_mul(mult))
}

pub fn run(args: CacheArgs) -> Result<ExitCode> {
    let root = Store::default_root();
    let store =
        Store::open(&root).with_context(|| format!("opening the store at {}", root.display()))?;
    match args.command {
        CacheCommand::Du { json } => {
            let u = gc::du(&store)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&u)?);
            } else {
                println!("store        {}", u.root.display());
                println!(
                    "blobs        {} ({}), {} pinned by outputs ({})",
                    u.blobs,
                    bytes(u.blob_bytes),
                    u.pinned_blobs,
                    bytes(u.pinned_bytes)
                );
                println!("layer cache  {} records", u.layer_records);
                println!("segments     {} ({})", u.segments, bytes(u.segment_bytes));
                println!(
                    "stat caches  {} ({})",
                    u.stat_caches,
                    bytes(u.stat_cache_bytes)
                );
                println!("roots        {}", u.roots);
                println!(
                    "tmp          {} files ({})",
                    u.tmp_files,
                    bytes(u.tmp_bytes)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        CacheCommand::Gc {
            max_age,
            max_size,
            dry_run,
            json,
        } => {
            if max_age.is_none() && max_size.is_none() {
                return Err(UsageError(
                    "teu cache gc: give --max-age, --max-size or both".to_string(),
                )
                .into());
            }
            let r = gc::gc(
                &store,
                &GcOptions {
                    max_age,
                    max_size,
                    dry_run,
                },
            )?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                let verb = if dry_run { "would remove" } else { "removed" };
                println!(
                    "teu cache gc: {verb} {} blobs and {} segments ({}), {} layer records, {} stat caches, {} temporary files; kept {} blobs ({}), {} pinned",
                    r.removed_blobs,
                    r.removed_segments,
                    bytes(r.removed_bytes),
                    r.removed_layer_records,
                    r.removed_stat_caches,
                    r.removed_tmp_files,
                    r.kept_blobs,
                    bytes(r.kept_bytes),
                    r.pinned_blobs
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        CacheCommand::Verify {
            dry_run,
            json,
            jobs,
        } => {
            let jobs =
                jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            let r = gc::verify(&store, jobs, dry_run)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                for c in &r.corrupt {
                    let what = if dry_run {
                        "corrupt"
                    } else {
                        "corrupt, removed"
                    };
                    println!("{c}: {what}");
                }
                println!(
                    "teu cache verify: {} blobs ({}) checked, {} corrupt",
                    r.checked,
                    bytes(r.bytes),
                    r.corrupt.len()
                );
            }
            Ok(if r.corrupt.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}
