//! The registry commands (`push`, `copy`, `pull`, `inspect`, `digest`, `tags`, `login`,
//! `logout`) and the registry options every command that talks to a registry shares.

pub mod copy;
pub mod inspect;
pub mod login;

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use teu_image::{layout, registry, Artifact, Image};
use teu_oci::{Platform, Reference, RegistryRef};
use teu_registry::{Client, ClientOptions, Keychain, Quirks, RetryPolicy};

use crate::UsageError;

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
                return Err(UsageError("--retries must be at least 1".into()).into());
            }
            opts.retry = RetryPolicy {
                attempts: n,
                ..RetryPolicy::default()
            };
        }
        for p in &self.profiles {
            let (host, name) = p.split_once('=').ok_or_else(|| {
                UsageError(format!("--registry-profile {p:?}: expected HOST=PROFILE"))
            })?;
            if Quirks::profile(name).is_none() {
                return Err(UsageError(format!(
                    "--registry-profile {p:?}: unknown profile (known: {})",
                    Quirks::NAMES.join(", ")
                ))
                .into());
            }
            opts.profiles.push((host.to_string(), name.to_string()));
        }
        if let Some(m) = self.monolithic_max {
            opts.monolithic_max = m;
        }
        if let Some(c) = self.chunk_size {
            opts.chunk_size = c.max(1);
        }
        Ok(Client::new(opts)?)
    }
}

pub fn parse_ref(flag: &str, s: &str) -> Result<Reference> {
    s.parse::<Reference>()
        .map_err(|e| UsageError(format!("{flag}: {e}")).into())
}

/// A registry reference, or a usage error naming the argument.
pub fn parse_registry_ref(flag: &str, s: &str) -> Result<RegistryRef> {
    match parse_ref(flag, s)? {
        Reference::Registry(r) => Ok(r),
        other => Err(UsageError(format!(
            "{flag}: {other} is not a registry reference (expected HOST/REPO[:TAG|@DIGEST] or docker://…)"
        ))
        .into()),
    }
}

/// Read one image (for `platform` when the reference names an index).
pub fn read_image(client: &Client, src: &Reference, platform: &Platform) -> Result<Image> {
    Ok(match src {
        Reference::Registry(r) => registry::read_image(client, r, platform)?,
        Reference::Layout { path, tag } => layout::read_image(path, tag.as_deref(), platform)?,
        Reference::OciArchive { .. } | Reference::DockerArchive { .. } => {
            pick_platform(read_all(client, src)?, platform, src)?
        }
        Reference::Scratch => {
            return Err(UsageError("scratch is an empty base, not an image to read".into()).into())
        }
    })
}

/// Every platform: the index (or single image) `src` names.
pub fn read_all(client: &Client, src: &Reference) -> Result<Artifact> {
    Ok(teu_image::source::read_artifact(src, Some(client))?)
}

/// The image of an index for `platform`.
fn pick_platform(artifact: Artifact, platform: &Platform, src: &Reference) -> Result<Image> {
    match artifact {
        Artifact::Image(i) => Ok(i),
        Artifact::Index(x) => {
            let have: Vec<String> = x
                .images
                .iter()
                .map(|i| i.config.value.platform().to_string())
                .collect();
            x.images
                .into_iter()
                .find(|i| i.config.value.platform().satisfies(platform))
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "{src}: index has no image for {platform} (it has: {})",
                        have.join(", ")
                    )
                })
        }
    }
}

pub fn platform_arg(p: Option<&str>) -> Result<Platform> {
    match p {
        Some(p) => p
            .parse::<Platform>()
            .map_err(|e| UsageError(format!("--platform: {e}")).into()),
        None => Ok(Platform::host()),
    }
}

/// `teu build --output HOST/REPO:TAG`: push, print the plan's outcome, report as an output.
pub fn push_output(
    client: &Client,
    dst: &RegistryRef,
    tags: &[String],
    artifact: &Artifact,
    say: &dyn Fn(String),
) -> Result<teu_image::OutputReport> {
    use anyhow::Context;
    let r = teu_image::push::push_artifact(
        client,
        dst,
        tags,
        artifact,
        &teu_image::push::PushOptions::default(),
    )
    .with_context(|| format!("pushing to {dst}"))?;
    copy::print_push(&r, say);
    Ok(teu_image::OutputReport {
        output: format!("docker://{}", dst),
        bytes_written: r.traffic.bytes_up,
    })
}
