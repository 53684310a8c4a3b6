//! `teu serve [gc]`: run an OCI registry on local disk or S3-compatible storage, and
//! collect its garbage. The server itself is the `teu-serve` crate; this file only turns
//! flags (which win) and the config file into a `teu_serve::Config`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use teu_serve::config::{Anonymous, Config};
use teu_serve::gc::{self, GcOptions};
use teu_serve::ServeError;

use crate::args::UsageError;

#[derive(Args)]
#[command(
    about = "Run an OCI registry on local disk or S3-compatible object storage",
    long_about = "Run an OCI registry (distribution spec v1.1: push, pull, tags, catalog, \
referrers, sha256 and sha512). Storage is a directory (default $TEU_HOME/registry) or an \
S3 bucket; several servers on one bucket are one registry. Without --htpasswd anyone may \
push and pull, which is only allowed on a loopback address. SIGINT or SIGTERM stops the \
server after in-flight requests finish. With [[upstream]] entries in --config it is also a \
pull-through cache of other registries (Docker Hub, ghcr.io, …): one upstream fetch per \
blob, tags cached for tag_ttl, cached content served when the upstream fails. See \
docs/serve.md.",
    after_help = "Examples:\n  \
teu serve &                                    # 127.0.0.1:5000, storage in $TEU_HOME/registry\n  \
teu build examples/hello -o 127.0.0.1:5000/hello:1\n  \
skopeo inspect --tls-verify=false docker://127.0.0.1:5000/hello:1\n  \
teu serve --listen 127.0.0.1:5001 --storage /srv/registry --read-only\n  \
teu serve --listen 0.0.0.0:5000 --htpasswd users.htpasswd --anonymous-read \\\n      \
--tls-cert cert.pem --tls-key key.pem\n  \
AWS_ENDPOINT_URL=http://127.0.0.1:8333 AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=… \\\n      \
teu serve --storage s3://registry/prod\n  \
teu serve --config teu-serve.toml\n  \
printf '[[upstream]]\\nname = \"docker.io\"\\nurl = \"https://registry-1.docker.io\"\\n' > mirror.toml\n  \
teu serve --config mirror.toml     # a pull-through cache of Docker Hub (docs/serve.md)\n  \
skopeo inspect --tls-verify=false docker://127.0.0.1:5000/docker.io/library/alpine:3.20\n  \
teu serve gc --grace 24h --dry-run\n\n\
Exit codes: 0 stopped by a signal, 1 failure (storage, TLS, port in use), 2 usage or config error."
)]
pub struct ServeArgs {
    #[command(subcommand)]
    command: Option<ServeCommand>,
    /// Address to listen on [default: 127.0.0.1:5000]
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<SocketAddr>,
    /// A directory or s3://BUCKET/PREFIX [default: $TEU_HOME/registry]
    #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX", global = true)]
    storage: Option<String>,
    /// A teu-serve.toml with any of these settings (flags win; unknown keys are errors)
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    /// PEM certificate chain for HTTPS (with --tls-key)
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for HTTPS (with --tls-cert)
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Require basic auth from users in this htpasswd file (bcrypt: htpasswd -B)
    #[arg(long, value_name = "FILE")]
    htpasswd: Option<PathBuf>,
    /// With an htpasswd file: let anyone pull; pushing still needs credentials
    #[arg(long)]
    anonymous_read: bool,
    /// Refuse every push and delete
    #[arg(long)]
    read_only: bool,
}

#[derive(Subcommand)]
enum ServeCommand {
    /// Remove blobs no manifest references, and abandoned uploads
    #[command(after_help = "Examples:\n  \
teu serve gc                                  # storage $TEU_HOME/registry, 1h grace\n  \
teu serve gc --storage s3://registry/prod --grace 24h --dry-run --json\n\n\
Only what is older than the grace period goes, so a push in progress (blobs uploaded, \
manifest not yet) is safe. Manifests are never removed by gc: delete them through the \
API. With a pull-through cache bound ([cache] max_size in --config), gc first evicts the \
least recently used proxied blobs above it; pushed content is never evicted. Safe to run \
while servers are running.")]
    Gc {
        /// Keep anything younger than this (e.g. 30m, 1h, 7d)
        #[arg(long, value_name = "AGE", default_value = "1h", value_parser = parse_age)]
        grace: Duration,
        /// Only report what would be removed
        #[arg(long)]
        dry_run: bool,
        /// Print the report as JSON
        #[arg(long)]
        json: bool,
    },
}

fn parse_age(s: &str) -> Result<Duration, String> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid age {s:?} (e.g. 30m, 1h, 7d)"))?;
    let secs = match unit {
        "s" | "" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(format!("invalid age unit in {s:?} (s, m, h or d)")),
    };
    Ok(Duration::from_secs(n * secs))
}

fn config(args: &ServeArgs) -> Result<Config> {
    let mut c = match &args.config {
        Some(p) => Config::load(p).map_err(|e| UsageError(e.to_string()))?,
        None => Config::default(),
    };
    if args.listen.is_some() {
        c.listen = args.listen;
    }
    if args.storage.is_some() {
        c.storage = args.storage.clone();
    }
    if args.tls_cert.is_some() {
        c.tls_cert = args.tls_cert.clone();
        c.tls_key = args.tls_key.clone();
    }
    if args.htpasswd.is_some() {
        c.auth.htpasswd = args.htpasswd.clone();
    }
    if args.anonymous_read {
        c.auth.anonymous = Some(Anonymous::Read);
    }
    c.read_only |= args.read_only;
    Ok(c)
}

fn serve_error(e: ServeError) -> anyhow::Error {
    match e {
        ServeError::Config(c) => UsageError(c.to_string()).into(),
        e => anyhow::Error::new(e),
    }
}

pub fn run(args: ServeArgs) -> Result<ExitCode> {
    let c = config(&args)?;
    match args.command {
        None => {
            teu_serve::init_logging();
            teu_serve::run(c).map_err(serve_error)?;
            Ok(ExitCode::SUCCESS)
        }
        Some(ServeCommand::Gc {
            grace,
            dry_run,
            json,
        }) => {
            let cache = match c.cache_max_bytes().map_err(|e| UsageError(e.to_string()))? {
                Some(max_bytes) => Some(gc::CacheBound {
                    max_bytes,
                    upstreams: c
                        .upstreams()
                        .map_err(|e| UsageError(e.to_string()))?
                        .into_iter()
                        .map(|u| u.name)
                        .collect(),
                }),
                None => None,
            };
            let rt = teu_serve::runtime().map_err(serve_error)?;
            let report = rt.block_on(async {
                let storage = teu_serve::open_storage(&c).await.map_err(serve_error)?;
                let opts = GcOptions {
                    grace,
                    dry_run,
                    cache,
                };
                gc::collect(storage.as_ref(), &opts)
                    .await
                    .context("garbage collection")
            })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                let verb = if dry_run { "would remove" } else { "removed" };
                eprintln!(
                    "{} manifests, {} blobs kept; {verb} {} blobs ({} bytes), {} links, {} uploads",
                    report.manifests,
                    report.blobs_kept,
                    report.blobs_removed,
                    report.bytes_removed,
                    report.links_removed,
                    report.uploads_removed
                );
                if report.proxied_evicted > 0 {
                    let verb = if dry_run { "would evict" } else { "evicted" };
                    eprintln!(
                        "cache bound: {verb} {} least recently used proxied blobs ({} bytes)",
                        report.proxied_evicted, report.proxied_evicted_bytes
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
