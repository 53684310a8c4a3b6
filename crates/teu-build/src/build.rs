//! From a [`Spec`] to an [`Image`]: resolve the base (reading only its manifest and
//! config), build each layer through the pipeline into the store, then write the config
//! and the manifest.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use teu_layer::{
    build_layer_from_tar,
    cache::Cached,
    path as lpath,
    source::{add_copy, add_tar, open_decompressed, CopyOptions},
    Compression, Defaults, Entry, Kind, LayerError, LayerOptions, LayerTree, Meta, PipelineError,
};
use teu_oci::{
    media_type, Descriptor, Digest, History, ImageConfig, Index, Manifest, Platform, Raw,
    Reference, RootFs,
};
use teu_spec::lock::{LockedBase, LockedPlatform, Lockfile};
use teu_spec::{ConfigSpec, Format, Item, LayerSpec, Spec};
use teu_store::Store;

use crate::blob::{BlobSource, StoreSource};
use crate::image::{Artifact, Image, ImageIndex, Layer};
use crate::{format, layout, resolve, rfc3339, ImageError};

pub struct BuildOptions {
    pub store: Store,
    /// Compression threads per layer (the output does not depend on it).
    pub jobs: usize,
    /// Overrides the spec's platforms.
    pub platforms: Vec<Platform>,
    pub defaults: Defaults,
    /// The spec's `teu.lock`, if it has one: bases resolve to the digests it records.
    pub lock: Option<Lockfile>,
    /// Fail rather than build on a base that differs from the lock (`--locked`).
    pub locked: bool,
    /// For registry bases (only their manifest and config are read).
    pub registry: Option<teu_registry::Client>,
    /// Build every layer from scratch: neither read nor write the layer cache.
    pub no_cache: bool,
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

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("{origin}: base {base}: {source}")]
    Base {
        origin: String,
        base: String,
        #[source]
        source: Box<ImageError>,
    },
    #[error("{origin}: {message}")]
    Unsupported { origin: String, message: String },
    #[error(transparent)]
    Image(Box<ImageError>),
}

impl From<ImageError> for BuildError {
    fn from(e: ImageError) -> Self {
        BuildError::Image(Box::new(e))
    }
}

/// The platforms a build makes: `--platform` flags, else the spec's, else the host's.
pub fn platforms_of(spec: &Spec, opts: &BuildOptions) -> Vec<Platform> {
    if !opts.platforms.is_empty() {
        opts.platforms.clone()
    } else if !spec.platforms.is_empty() {
        spec.platforms.clone()
    } else {
        vec![Platform::host()]
    }
}

/// Build `spec` into `opts.store` and return the image, or the index of per-platform
/// images (not yet written to any output). A layer whose content does not depend on the
/// platform is built once and shared.
pub fn build(spec: &Spec, opts: &BuildOptions) -> Result<BuildReport, BuildError> {
    let platforms = platforms_of(spec, opts);
    if spec.format == Format::Docker {
        for layer in &spec.layers {
            if let Compression::Zstd { .. } = layer.compression.unwrap_or(spec.compression) {
                return Err(BuildError::Unsupported {
                    origin: layer.origin.to_string(),
                    message: "the docker format has no zstd layers; use compression = \"gzip\" (or \"none\") with format = \"docker\"".into(),
                });
            }
        }
    }
    let mut warnings = Vec::new();
    let (base_lock, bases) = resolve_bases(spec, &platforms, opts, &mut warnings)?;
    let store_source: Arc<dyn BlobSource> = Arc::new(StoreSource(opts.store.clone()));
    let mut shared: Vec<Option<(Cached, usize)>> = vec![None; spec.layers.len()];
    let mut images = Vec::new();
    let mut reports = Vec::new();
    for (platform, base) in bases {
        let platform = &platform;
        let mut layers = Vec::new();
        let mut layer_reports = Vec::new();
        // The layers this platform still needs, built side by side (crate::cached).
        let todo: Vec<usize> = (0..spec.layers.len())
            .filter(|&i| shared[i].is_none())
            .collect();
        let fresh = crate::cached::in_parallel(&todo, |&i| {
            let layer = &spec.layers[i];
            let compression = layer.compression.unwrap_or(spec.compression);
            build_one(&layer.items_for(platform), compression, opts)
        });
        let mut mine: Vec<Option<(Cached, usize)>> = shared.clone();
        for (i, done) in todo.into_iter().zip(fresh) {
            let done = done?;
            if !spec.layers[i].depends_on_platform() {
                shared[i] = Some(done.clone());
            }
            mine[i] = Some(done);
        }
        for (i, layer) in spec.layers.iter().enumerate() {
            let (cached, entries) = mine[i].clone().expect("every layer was built");
            let built = cached.layer;
            layer_reports.push(LayerReport {
                name: layer.name.clone(),
                digest: built.digest.clone(),
                diff_id: built.diff_id.clone(),
                size: built.size,
                uncompressed_size: built.uncompressed_size,
                media_type: built.media_type.to_string(),
                entries,
                cached: cached.hit,
            });
            layers.push(Layer {
                descriptor: Descriptor::new(built.media_type, built.digest, built.size),
                diff_id: built.diff_id,
                source: Arc::clone(&store_source),
            });
        }
        let image = assemble(spec, platform, base, layers, opts.defaults.mtime);
        reports.push(PlatformReport {
            platform: image.config.value.platform().to_string(),
            digest: image.digest(),
            base: image
                .manifest
                .value
                .annotations
                .get(BASE_DIGEST)
                .and_then(|d| d.parse().ok()),
            layers: layer_reports,
        });
        images.push(image);
    }
    let artifact = if images.len() == 1 && !spec.multi_platform {
        Artifact::Image(images.pop().expect("one image"))
    } else {
        index_of(images, &spec.annotations)
    };
    let artifact = match spec.format {
        Format::Oci => artifact,
        Format::Docker => {
            format::to_docker(artifact).map_err(|message| BuildError::Unsupported {
                origin: spec.label.clone(),
                message,
            })?
        }
    };
    if let Format::Docker = spec.format {
        for (r, img) in reports.iter_mut().zip(artifact.images()) {
            r.digest = img.digest();
            let base_layers = img.layers.len() - r.layers.len();
            for (l, d) in r
                .layers
                .iter_mut()
                .zip(&img.manifest.value.layers[base_layers..])
            {
                l.media_type = d.media_type.clone();
            }
        }
    }
    Ok(BuildReport {
        artifact,
        platforms: reports,
        base: base_lock,
        warnings,
    })
}

const BASE_DIGEST: &str = "org.opencontainers.image.base.digest";
/// The OCI annotation naming the base image.
pub const BASE_NAME: &str = "org.opencontainers.image.base.name";

/// Config and manifest for one platform's image.
fn assemble(
    spec: &Spec,
    platform: &Platform,
    base: Option<Image>,
    layers: Vec<Layer>,
    mtime: u64,
) -> Image {
    let created = rfc3339(mtime);
    let (mut config, mut all_layers, base_digest) = match base {
        Some(img) => {
            let digest = img.digest();
            (img.config.value, img.layers, Some(digest))
        }
        None => (scratch_config(platform), Vec::new(), None),
    };
    for l in &mut all_layers {
        l.descriptor.media_type = oci_layer_type(&l.descriptor.media_type).to_string();
    }
    apply_config(&mut config.config, &spec.config);
    config.created = Some(created.clone());
    for (layer, spec_layer) in layers.iter().zip(&spec.layers) {
        config.rootfs.diff_ids.push(layer.diff_id.clone());
        config.history.push(History {
            created: Some(created.clone()),
            created_by: Some(describe(spec_layer, &spec_layer.items_for(platform))),
            ..History::default()
        });
    }
    all_layers.extend(layers);
    let config = Raw::encode(config);

    let mut annotations = spec.annotations.clone();
    if let Some(d) = &base_digest {
        annotations
            .entry(BASE_DIGEST.to_string())
            .or_insert_with(|| d.to_string());
        // A registry base is named too (a layout's path would make the digest depend on
        // where the build ran): a later push of this image from a layout can then mount
        // the base's layers from that repository instead of uploading them.
        if let Some((Reference::Registry(r), _)) = &spec.base {
            annotations
                .entry(BASE_NAME.to_string())
                .or_insert_with(|| r.to_string());
        }
    }
    let manifest = Raw::encode(Manifest {
        schema_version: 2,
        media_type: Some(media_type::OCI_MANIFEST.to_string()),
        artifact_type: None,
        config: config.descriptor(media_type::OCI_CONFIG),
        layers: all_layers.iter().map(|l| l.descriptor.clone()).collect(),
        subject: None,
        annotations,
    });
    Image {
        manifest,
        config,
        layers: all_layers,
    }
}

/// An OCI index of `images`, in the order the platforms were given.
pub fn index_of(images: Vec<Image>, annotations: &BTreeMap<String, String>) -> Artifact {
    let mut index = Index::new();
    index.manifests = images.iter().map(Image::descriptor).collect();
    index.annotations = annotations.clone();
    Artifact::Index(ImageIndex {
        index: Raw::encode(index),
        images,
    })
}

type BasesFor = (Option<LockedBase>, Vec<(Platform, Option<Image>)>);

/// Where a base's top document is now: its source and the descriptor its reference names.
struct BaseRoot {
    reference: String,
    origin: String,
    source: Arc<dyn BlobSource>,
    desc: Descriptor,
}

fn base_root(
    spec: &Spec,
    registry: Option<&teu_registry::Client>,
) -> Result<Option<BaseRoot>, BuildError> {
    let Some((reference, origin)) = &spec.base else {
        return Ok(None);
    };
    let base_err = |source| BuildError::Base {
        origin: origin.to_string(),
        base: reference.to_string(),
        source: Box::new(source),
    };
    let (source, desc) = match reference {
        Reference::Scratch => return Ok(None),
        Reference::Layout { path, tag } => {
            let dir = if path.is_absolute() {
                path.clone()
            } else {
                spec.dir.join(path)
            };
            layout::open_layout(&dir, tag.as_deref()).map_err(base_err)?
        }
        Reference::Registry(r) => {
            let client = registry.ok_or_else(|| BuildError::Unsupported {
                origin: origin.to_string(),
                message: format!("base {r}: no registry client was configured"),
            })?;
            crate::registry::open_top(client, r).map_err(base_err)?
        }
        other => {
            return Err(BuildError::Unsupported {
                origin: origin.to_string(),
                message: format!("base {other}: archives are not supported as bases yet"),
            })
        }
    };
    Ok(Some(BaseRoot {
        reference: reference.to_string(),
        origin: origin.to_string(),
        source,
        desc,
    }))
}

/// Resolve the base for every platform, honouring the lock: with a lock entry the base is
/// read at the locked digest (a moved tag is a warning, or an error with `--locked`).
/// Returns the resolution in lock form and, for each platform to build, its base image.
/// When the user named no platform and the base is a single image, the platform is the
/// base's (not the host's), so placeholders and per-platform entries match the base.
fn resolve_bases(
    spec: &Spec,
    platforms: &[Platform],
    opts: &BuildOptions,
    warnings: &mut Vec<String>,
) -> Result<BasesFor, BuildError> {
    let Some(root) = base_root(spec, opts.registry.as_ref())? else {
        return Ok((None, platforms.iter().map(|p| (p.clone(), None)).collect()));
    };
    let locked = opts.lock.as_ref().and_then(|l| l.base(&root.reference));
    let lock_err = |message: String| BuildError::Unsupported {
        origin: root.origin.clone(),
        message,
    };
    let desc = match locked {
        None if opts.locked => {
            return Err(lock_err(format!(
                "teu.lock has no entry for base {}; run teu lock",
                root.reference
            )))
        }
        None => root.desc.clone(),
        Some(l) if l.digest == root.desc.digest => root.desc.clone(),
        Some(l) => {
            let moved = format!(
                "base {} now resolves to {}, but teu.lock pins {}",
                root.reference, root.desc.digest, l.digest
            );
            if opts.locked {
                return Err(lock_err(format!(
                    "{moved}; run teu lock --update to accept it"
                )));
            }
            warnings.push(format!(
                "{moved}; building on the locked digest (teu lock --update moves it)"
            ));
            Descriptor::new(&l.media_type, l.digest.clone(), l.size)
        }
    };
    let mut images = Vec::new();
    let mut entry = LockedBase {
        reference: root.reference.clone(),
        digest: desc.digest.clone(),
        media_type: desc.media_type.clone(),
        size: desc.size,
        platforms: Vec::new(),
    };
    let explicit = !opts.platforms.is_empty() || !spec.platforms.is_empty();
    for platform in platforms {
        let image =
            resolve::image_for(Arc::clone(&root.source), &desc, platform).map_err(|source| {
                BuildError::Base {
                    origin: root.origin.clone(),
                    base: root.reference.clone(),
                    source: Box::new(source),
                }
            })?;
        // A single-platform base serves only its own platform. When the user named none,
        // the image simply takes the base's; when they did, a mismatch is an error.
        let has = image.config.value.platform();
        let platform = if has.satisfies(platform) {
            platform.clone()
        } else if explicit {
            return Err(lock_err(format!(
                "base {} is a single image for {has}, not an index; it has no image for {platform}",
                root.reference
            )));
        } else {
            Platform::new(&has.os, &has.architecture, has.variant.as_deref())
        };
        let platform = &platform;
        let got = LockedPlatform {
            platform: platform.to_string(),
            manifest: image.digest(),
            config: image.config.digest(),
        };
        if opts.locked {
            match locked.and_then(|l| l.platform(&got.platform)) {
                Some(want) if *want == got => {}
                Some(want) => {
                    return Err(lock_err(format!(
                        "base {} for {}: teu.lock pins manifest {}, the base has {}; run teu lock --update",
                        root.reference, got.platform, want.manifest, got.manifest
                    )))
                }
                None => {
                    return Err(lock_err(format!(
                        "teu.lock has no {} entry for base {}; run teu lock",
                        got.platform, root.reference
                    )))
                }
            }
        }
        entry.platforms.push(got);
        images.push((platform.clone(), Some(image)));
    }
    Ok((Some(entry), images))
}

/// Resolve the base without building anything, for `teu lock`. With `update` false, a base
/// already in `lock` stays at its locked digest (missing platforms are added).
pub fn lock_bases(spec: &Spec, opts: &BuildOptions, update: bool) -> Result<Lockfile, BuildError> {
    let platforms = platforms_of(spec, opts);
    let o = BuildOptions {
        store: opts.store.clone(),
        jobs: opts.jobs,
        platforms: opts.platforms.clone(),
        defaults: opts.defaults.clone(),
        lock: if update { None } else { opts.lock.clone() },
        locked: false,
        registry: opts.registry.clone(),
        no_cache: opts.no_cache,
    };
    let (base, _) = resolve_bases(spec, &platforms, &o, &mut Vec::new())?;
    Ok(Lockfile {
        version: teu_spec::lock::LOCK_VERSION,
        bases: base.into_iter().collect(),
    })
}

fn scratch_config(platform: &Platform) -> ImageConfig {
    ImageConfig {
        architecture: platform.architecture.clone(),
        os: platform.os.clone(),
        os_version: platform.os_version.clone(),
        os_features: platform.os_features.clone(),
        variant: platform.variant.clone(),
        rootfs: RootFs {
            kind: "layers".to_string(),
            diff_ids: Vec::new(),
        },
        ..ImageConfig::default()
    }
}

/// Docker layer media types become their OCI twins (same bytes), so that an image built
/// on a Docker base is a consistent OCI image.
fn oci_layer_type(mt: &str) -> &str {
    match mt {
        media_type::DOCKER_LAYER_GZIP => media_type::OCI_LAYER_GZIP,
        "application/vnd.docker.image.rootfs.diff.tar" => media_type::OCI_LAYER_TAR,
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => {
            "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
        }
        other => other,
    }
}

/// Apply the spec's config on top of the base's, as Docker does: env and labels merge
/// (same key replaced), an entrypoint without a cmd clears the inherited cmd.
pub fn apply_config(c: &mut teu_oci::ContainerConfig, s: &ConfigSpec) {
    if let Some(ep) = &s.entrypoint {
        c.entrypoint = Some(ep.clone());
        if s.cmd.is_none() {
            c.cmd = None;
        }
    }
    if let Some(cmd) = &s.cmd {
        c.cmd = Some(cmd.clone());
    }
    if !s.env.is_empty() {
        let env = c.env.get_or_insert_with(Vec::new);
        for (k, v) in &s.env {
            let entry = format!("{k}={v}");
            match env
                .iter_mut()
                .find(|e| e.split_once('=').map_or(e.as_str(), |(n, _)| n) == k)
            {
                Some(e) => *e = entry,
                None => env.push(entry),
            }
        }
    }
    if let Some(w) = &s.workdir {
        c.working_dir = Some(w.clone());
    }
    if let Some(u) = &s.user {
        c.user = Some(u.clone());
    }
    if !s.labels.is_empty() {
        let labels = c.labels.get_or_insert_with(BTreeMap::new);
        labels.extend(s.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    if !s.exposed_ports.is_empty() {
        let ports = c.exposed_ports.get_or_insert_with(BTreeMap::new);
        for p in &s.exposed_ports {
            let key = if p.contains('/') {
                p.clone()
            } else {
                format!("{p}/tcp")
            };
            ports.insert(key, serde_json::json!({}));
        }
    }
    if !s.volumes.is_empty() {
        let vols = c.volumes.get_or_insert_with(BTreeMap::new);
        for v in &s.volumes {
            vols.insert(v.clone(), serde_json::json!({}));
        }
    }
    if let Some(sig) = &s.stop_signal {
        c.stop_signal = Some(sig.clone());
    }
}

/// `created_by` for a layer: what it holds, by image path, never by host path or time.
fn describe(layer: &LayerSpec, items: &[Item]) -> String {
    let parts: Vec<String> = items
        .iter()
        .map(|i| match i {
            Item::Copy { dest, .. } => format!("copy {dest}"),
            Item::Symlink { path, target, .. } => format!("symlink {path} -> {target}"),
            Item::Dir { path, .. } => format!("dir {path}"),
            Item::Tar {
                dest,
                normalize: true,
                ..
            } => format!("tar {dest}"),
            Item::Tar { .. } => "tar (verbatim)".to_string(),
            Item::Remove { path, .. } => format!("remove {path}"),
        })
        .collect();
    if parts.is_empty() {
        return format!("teu build: layer {:?}: empty", layer.name);
    }
    format!("teu build: layer {:?}: {}", layer.name, parts.join(", "))
}

fn build_one(
    items: &[Item],
    compression: Compression,
    opts: &BuildOptions,
) -> Result<(Cached, usize), BuildError> {
    let lopts = LayerOptions {
        compression,
        jobs: opts.jobs,
    };
    if let [Item::Tar {
        src,
        normalize: false,
        origin,
        ..
    }] = items
    {
        let io = |source| LayerError::Io {
            origin: origin.clone(),
            path: src.display().to_string(),
            source,
        };
        let mut reader = open_decompressed(src).map_err(io)?;
        // Used byte for byte, so at least make sure it is a tar: a valid first header, or
        // the zero block that ends an empty archive.
        let mut first = Vec::with_capacity(512);
        (&mut reader)
            .take(512)
            .read_to_end(&mut first)
            .map_err(io)?;
        let not_tar = |why: &str| -> BuildError {
            LayerError::Source {
                origin: origin.clone(),
                message: format!("{} is not a tar archive ({why})", src.display()),
            }
            .into()
        };
        if first.len() < 512 {
            return Err(not_tar(&format!(
                "{} bytes, less than one tar block",
                first.len()
            )));
        }
        if first.iter().any(|&b| b != 0) {
            let stored = tar::Header::from_byte_slice(&first).cksum().ok();
            let sum: u32 = first
                .iter()
                .enumerate()
                .map(|(i, &b)| {
                    if (148..156).contains(&i) {
                        u32::from(b' ')
                    } else {
                        u32::from(b)
                    }
                })
                .sum();
            if stored != Some(sum) {
                return Err(not_tar("its first header's checksum is wrong"));
            }
        }
        if !opts.no_cache {
            drop(reader);
            let built = crate::cached::tar_layer(src, origin, &lopts, opts, items)?;
            return Ok((built, 0));
        }
        let mut reader = std::io::Read::chain(&first[..], reader);
        let layer = build_layer_from_tar(&mut reader, origin, &lopts, &opts.store)?;
        return Ok((Cached { layer, hit: false }, 0));
    }
    let d = &opts.defaults;
    let mut tree = LayerTree::new();
    for item in items {
        match item {
            Item::Copy {
                src,
                dest,
                meta,
                exclude,
                follow_symlinks,
                origin,
            } => {
                require_source(src, origin)?;
                let copy = CopyOptions {
                    mode: meta.mode,
                    uid: meta.uid,
                    gid: meta.gid,
                    mtime: meta.mtime,
                    exclude: exclude.as_ref(),
                    follow_symlinks: *follow_symlinks,
                    defaults: d,
                    origin: origin.clone(),
                };
                add_copy(&mut tree, src, dest, &copy)?;
            }
            Item::Symlink {
                path,
                target,
                meta,
                origin,
            } => tree.insert(explicit_entry(
                path,
                Kind::Symlink(target.as_bytes().to_vec()),
                0o777,
                meta,
                d,
                origin,
            )?)?,
            Item::Dir { path, meta, origin } => tree.insert(explicit_entry(
                path,
                Kind::Dir,
                meta.mode.unwrap_or(0o755),
                meta,
                d,
                origin,
            )?)?,
            Item::Tar {
                src, dest, origin, ..
            } => {
                require_source(src, origin)?;
                add_tar(
                    &mut tree,
                    src,
                    dest,
                    d,
                    &opts.store.root().join("tmp"),
                    origin.clone(),
                )?;
            }
            Item::Remove { path, origin } => tree.whiteout(path.as_bytes(), d, origin.clone())?,
        }
    }
    let mut entries = tree.finish(d)?;
    leak_mtime_for_tests(&mut entries);
    let built = crate::cached::entries_layer(&entries, &lopts, opts, items)?;
    Ok((built, entries.len()))
}

/// An entry the spec states itself (`symlinks`, `dirs`), owner and mtime as overridden.
fn explicit_entry(
    path: &str,
    kind: Kind,
    mode: u32,
    meta: &teu_spec::MetaOverride,
    d: &Defaults,
    origin: &teu_layer::Origin,
) -> Result<Entry, LayerError> {
    Ok(Entry {
        path: norm(path, origin)?,
        kind,
        meta: Meta {
            mode,
            uid: meta.uid.unwrap_or(0),
            gid: meta.gid.unwrap_or(0),
            mtime: meta.mtime.unwrap_or(d.mtime),
        },
        priority: teu_layer::entry::Priority::Explicit,
        origin: origin.clone(),
        inode: None,
    })
}

fn norm(p: &str, origin: &teu_layer::Origin) -> Result<Vec<u8>, LayerError> {
    lpath::normalize(p.as_bytes()).map_err(|source| LayerError::Path {
        origin: origin.clone(),
        source,
    })
}

fn require_source(src: &Path, origin: &teu_layer::Origin) -> Result<(), LayerError> {
    match std::fs::symlink_metadata(src) {
        Ok(_) => Ok(()),
        Err(e) => Err(LayerError::Source {
            origin: origin.clone(),
            message: format!("source {} cannot be read: {e}", src.display()),
        }),
    }
}

/// Test-only: `TEU_TEST_LEAK_MTIME=/path` gives that entry a different mtime on every build
/// in a process, the kind of leak `teu build --verify` exists to catch. Compiled into debug
/// builds only (the ones `cargo test` runs), so a release binary ignores it.
#[cfg(not(debug_assertions))]
fn leak_mtime_for_tests(_: &mut [Entry]) {}

#[cfg(debug_assertions)]
fn leak_mtime_for_tests(entries: &mut [Entry]) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static BUILDS: AtomicU64 = AtomicU64::new(1);
    let Some(target) = std::env::var_os("TEU_TEST_LEAK_MTIME") else {
        return;
    };
    let target = lpath::normalize(std::os::unix::ffi::OsStrExt::as_bytes(target.as_os_str()))
        .unwrap_or_default();
    let n = BUILDS.fetch_add(1, Ordering::Relaxed);
    for e in entries.iter_mut().filter(|e| e.path == target) {
        e.meta.mtime += n;
    }
}
