//! Arguments every command shares: how to reach registries, how references, outputs and
//! platforms are parsed, and the usage error (exit code 2) they raise.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use teu_image::transport::Context;
use teu_image::Select;
use teu_oci::{Platform, Reference};
use teu_registry::{Client, ClientOptions, Keychain, Quirks, RetryPolicy};

/// An error in how teu was called (exit code 2), as opposed to a failure doing the work.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    UsageError(msg.into()).into()
}

/// How to reach registries.
#[derive(Args, Clone, Debug, Default)]
pub struct RegistryArgs {
    /// Trust the CA certificates in this PEM file (on top of the system roots); repeatable
    #[arg(long = "ca-file", value_name = "FILE", global = true)]
    pub ca_files: Vec<PathBuf>,

    /// Talk plain HTTP to this registry (HOST or HOST:PORT); loopback registries always are; repeatable
    #[arg(long = "insecure-registry", value_name = "HOST", global = true)]
    pub insecure: Vec<String>,

    /// Attempts per registry request before giving up (429, 5xx, resets, truncated bodies)
    #[arg(long, value_name = "N", env = "TEU_REGISTRY_RETRIES", global = true)]
    pub retries: Option<u32>,

    /// Treat HOST with the quirks of PROFILE (default, ghcr, ecr, quay, harbor, artifactory, dockerhub); repeatable
    #[arg(
        long = "registry-profile",
        value_name = "HOST=PROFILE",
        env = "TEU_REGISTRY_PROFILE",
        value_delimiter = ',',
        global = true
    )]
    pub profiles: Vec<String>,

    /// Upload blobs larger than this in PATCH chunks (bytes)
    #[arg(
        long,
        value_name = "BYTES",
        env = "TEU_MONOLITHIC_MAX",
        hide = true,
        global = true
    )]
    pub monolithic_max: Option<u64>,

    /// Preferred PATCH chunk size (bytes), bounded by the registry's quirks
    #[arg(
        long,
        value_name = "BYTES",
        env = "TEU_CHUNK_SIZE",
        hide = true,
        global = true
    )]
    pub chunk_size: Option<u64>,

    /// containerd's socket, for containerd:… destinations and Docker's containerd image store [default: /run/containerd/containerd.sock]
    #[arg(long, value_name = "PATH", env = "CONTAINERD_ADDRESS", global = true)]
    pub containerd_address: Option<PathBuf>,

    /// Tags asked for per request when listing (the registry may send fewer and a link)
    #[arg(long, value_name = "N", hide = true, global = true)]
    pub page_size: Option<usize>,
}

impl RegistryArgs {
    pub fn client(&self) -> Result<Client> {
        let mut opts = ClientOptions {
            ca_files: self.ca_files.clone(),
            insecure: self.insecure.clone(),
            keychain: Keychain::from_env(),
            ..ClientOptions::default()
        };
        if let Some(n) = self.retries {
            if n == 0 {
                return Err(usage("--retries must be at least 1"));
            }
            opts.retry = RetryPolicy {
                attempts: n,
                ..RetryPolicy::default()
            };
        }
        for p in &self.profiles {
            let (host, name) = p
                .split_once('=')
                .ok_or_else(|| usage(format!("--registry-profile {p:?}: expected HOST=PROFILE")))?;
            if Quirks::profile(name).is_none() {
                return Err(usage(format!(
                    "--registry-profile {p:?}: unknown profile (known: {})",
                    Quirks::NAMES.join(", ")
                )));
            }
            opts.profiles.push((host.to_string(), name.to_string()));
        }
        if let Some(m) = self.monolithic_max {
            opts.monolithic_max = m;
        }
        if let Some(c) = self.chunk_size {
            opts.chunk_size = c.max(1);
        }
        if let Some(n) = self.page_size {
            opts.tag_page_size = n.max(1);
        }
        Ok(Client::new(opts)?)
    }

    /// What the transports need: a registry client (no store; the build adds its own).
    pub fn context(&self) -> Result<Context> {
        Ok(Context {
            registry: Some(self.client()?),
            store: None,
            containerd_address: self.containerd_address.clone(),
        })
    }
}

/// A reference given as `flag`, or a usage error naming it.
pub fn parse_ref(flag: &str, s: &str) -> Result<Reference> {
    s.parse::<Reference>()
        .map_err(|e| usage(format!("{flag}: {e}")))
}

/// A reference to write to. Beyond [`parse_ref`]: a bare name (no registry host, so
/// Docker Hub) that is also a file or directory here is almost certainly meant as a
/// local path, and is refused with the spelling that says so.
pub fn parse_output(flag: &str, s: &str) -> Result<Reference> {
    let r = parse_ref(flag, s)?;
    let name = s.split([':', '@']).next().unwrap_or(s);
    if teu_oci::is_bare_hub_name(s) && std::path::Path::new(name).exists() {
        return Err(usage(format!(
            "{flag}: {s:?} names an image on Docker Hub (docker.io/library/{s}), but there is a local file or directory {name:?}; write oci:{s} for an OCI layout (or oci-archive:{s}, docker-archive:{s}), or docker://{s} to mean Docker Hub"
        )));
    }
    Ok(r)
}

pub fn platform_arg(p: Option<&str>) -> Result<Platform> {
    match p {
        Some(p) => p
            .parse::<Platform>()
            .map_err(|e| usage(format!("--platform: {e}"))),
        None => Ok(Platform::host()),
    }
}

/// `--platform P` selects one image; without it, the whole index.
pub fn select_arg(p: Option<&str>) -> Result<Select> {
    match p {
        Some(_) => Ok(Select::Platform(platform_arg(p)?)),
        None => Ok(Select::All),
    }
}

/// The most threads a `--jobs` value gets: a few per core (more only queue and cost
/// memory; far more make thread creation fail).
pub fn max_jobs() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores * 4).clamp(16, 256)
}

/// `--jobs` values that make sense: at least one; more than [`max_jobs`] is clamped,
/// with a warning.
pub fn jobs_arg(jobs: usize) -> Result<usize> {
    match jobs {
        0 => Err(usage("--jobs must be at least 1")),
        n if n > max_jobs() => {
            eprintln!(
                "teu: warning: --jobs {n} is more than this machine can use; using {}",
                max_jobs()
            );
            Ok(max_jobs())
        }
        n => Ok(n),
    }
}
