//! What a build is asked to do, and what it reports.

use serde::Serialize;
use teu_image::transport::Context;
use teu_image::Artifact;
use teu_layer::Defaults;
use teu_oci::{Digest, Platform};
use teu_spec::lock::{LockedBase, Lockfile};
use teu_store::Store;

/// How bases are found: the part of a build `teu lock` needs too (no store).
#[derive(Clone, Debug, Default)]
pub struct BaseOptions {
    /// Overrides the spec's platforms.
    pub platforms: Vec<Platform>,
    /// The spec's `teu.lock`, if it has one: bases resolve to the digests it records.
    pub lock: Option<Lockfile>,
    /// Fail rather than build on a base that differs from the lock (`--locked`).
    pub locked: bool,
    /// Where bases are read from (a registry client for registry bases).
    pub transport: Context,
}

pub struct BuildOptions {
    pub store: Store,
    /// Compression threads per layer (the output does not depend on it).
    pub jobs: usize,
    pub defaults: Defaults,
    /// Build every layer from scratch: neither read nor write the layer cache.
    pub no_cache: bool,
    pub bases: BaseOptions,
    /// Where layer builds report progress (nowhere by default).
    pub progress: teu_progress::Reporter,
}

/// One built layer, for summaries and `--json`.
#[derive(Clone, Debug, Serialize)]
pub struct LayerReport {
    pub name: String,
    pub digest: Digest,
    pub diff_id: Digest,
    pub size: u64,
    pub uncompressed_size: u64,
    pub media_type: String,
    pub entries: usize,
    /// Taken from the layer cache instead of built.
    pub cached: bool,
}

/// One platform's image, for summaries and `--json`.
#[derive(Clone, Debug, Serialize)]
pub struct PlatformReport {
    pub platform: String,
    pub digest: Digest,
    pub base: Option<Digest>,
    pub layers: Vec<LayerReport>,
}

pub struct BuildReport {
    pub artifact: Artifact,
    pub platforms: Vec<PlatformReport>,
    /// What the base resolved to, in lock-file form.
    pub base: Option<LockedBase>,
    /// Things the user should know that did not stop the build.
    pub warnings: Vec<String>,
}
