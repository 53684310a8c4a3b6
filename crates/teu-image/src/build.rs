//! From a [`Spec`] to an [`Image`]: resolve the base (reading only its manifest and
//! config), build each layer through the pipeline into the store, then write the config
//! and the manifest.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use teu_layer::{
    build_layer, build_layer_from_tar, path as lpath,
    source::{add_copy, add_tar, open_decompressed, CopyOptions},
    Compression, Defaults, Entry, Kind, LayerError, LayerOptions, LayerTree, Meta, PipelineError,
};
use teu_oci::{
    media_type, Descriptor, Digest, History, ImageConfig, Manifest, Platform, Raw, Reference,
    RootFs,
};
use teu_spec::{ConfigSpec, Item, LayerSpec, Spec};
use teu_store::Store;

use crate::blob::{BlobSource, StoreSource};
use crate::image::{Image, Layer};
use crate::{layout, rfc3339, ImageError};

pub struct BuildOptions {
    pub store: Store,
    /// Compression threads per layer (the output does not depend on it).
    pub jobs: usize,
    /// Overrides the spec's platform.
    pub platform: Option<Platform>,
    pub defaults: Defaults,
    /// For registry bases (only their manifest and config are read).
    pub registry: Option<teu_registry::Client>,
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
}

pub struct BuildReport {
    pub image: Image,
    pub layers: Vec<LayerReport>,
    pub base: Option<Digest>,
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

/// Build `spec` into `opts.store` and return the image (not yet written to any output).
pub fn build(spec: &Spec, opts: &BuildOptions) -> Result<BuildReport, BuildError> {
    let platform = opts
        .platform
        .clone()
        .or_else(|| spec.platform.clone())
        .unwrap_or_else(Platform::host);
    let base = resolve_base(spec, &platform, opts.registry.as_ref())?;
    let store_source: Arc<dyn BlobSource> = Arc::new(StoreSource(opts.store.clone()));

    let mut layers: Vec<Layer> = Vec::new();
    let mut reports = Vec::new();
    for layer in &spec.layers {
        let compression = layer.compression.unwrap_or(spec.compression);
        let (built, entries) = build_one(layer, compression, opts)?;
        reports.push(LayerReport {
            name: layer.name.clone(),
            digest: built.digest.clone(),
            diff_id: built.diff_id.clone(),
            size: built.size,
            uncompressed_size: built.uncompressed_size,
            media_type: built.media_type.to_string(),
            entries,
        });
        layers.push(Layer {
            descriptor: Descriptor::new(built.media_type, built.digest, built.size),
            diff_id: built.diff_id,
            source: Arc::clone(&store_source),
        });
    }

    let created = rfc3339(opts.defaults.mtime);
    let (mut config, mut all_layers, base_digest) = match base {
        Some(img) => {
            let digest = img.digest();
            (img.config.value, img.layers, Some(digest))
        }
        None => (scratch_config(&platform), Vec::new(), None),
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
            created_by: Some(describe(spec_layer)),
            ..History::default()
        });
    }
    all_layers.extend(layers);
    let config = Raw::encode(config);

    let mut annotations = spec.annotations.clone();
    if let Some(d) = &base_digest {
        annotations
            .entry("org.opencontainers.image.base.digest".to_string())
            .or_insert_with(|| d.to_string());
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
    Ok(BuildReport {
        image: Image {
            manifest,
            config,
            layers: all_layers,
        },
        layers: reports,
        base: base_digest,
    })
}

fn resolve_base(
    spec: &Spec,
    platform: &Platform,
    registry: Option<&teu_registry::Client>,
) -> Result<Option<Image>, BuildError> {
    let Some((reference, origin)) = &spec.base else {
        return Ok(None);
    };
    let base_err = |source| BuildError::Base {
        origin: origin.to_string(),
        base: reference.to_string(),
        source: Box::new(source),
    };
    match reference {
        Reference::Scratch => Ok(None),
        Reference::Layout { path, tag } => {
            let dir = if path.is_absolute() {
                path.clone()
            } else {
                spec.dir.join(path)
            };
            layout::read_image(&dir, tag.as_deref(), platform)
                .map(Some)
                .map_err(base_err)
        }
        Reference::Registry(r) => match registry {
            Some(client) => crate::registry::read_image(client, r, platform)
                .map(Some)
                .map_err(base_err),
            None => Err(BuildError::Unsupported {
                origin: origin.to_string(),
                message: format!("base {r}: no registry client was configured"),
            }),
        },
        other => Err(BuildError::Unsupported {
            origin: origin.to_string(),
            message: format!(
                "base {other}: only scratch, oci:DIR[:TAG] and registry bases are supported so far"
            ),
        }),
    }
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
fn describe(layer: &LayerSpec) -> String {
    let parts: Vec<String> = layer
        .items
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
    format!("teu build: layer {:?}: {}", layer.name, parts.join(", "))
}

fn build_one(
    layer: &LayerSpec,
    compression: Compression,
    opts: &BuildOptions,
) -> Result<(teu_layer::BuiltLayer, usize), BuildError> {
    let lopts = LayerOptions {
        compression,
        jobs: opts.jobs,
    };
    if let [Item::Tar {
        src,
        normalize: false,
        origin,
        ..
    }] = layer.items.as_slice()
    {
        let mut reader = open_decompressed(src).map_err(|source| LayerError::Io {
            origin: origin.clone(),
            path: src.display().to_string(),
            source,
        })?;
        let built = build_layer_from_tar(&mut reader, origin, &lopts, &opts.store)?;
        return Ok((built, 0));
    }
    let d = &opts.defaults;
    let mut tree = LayerTree::new();
    for item in &layer.items {
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
            } => tree.insert(Entry {
                path: norm(path, origin)?,
                kind: Kind::Symlink(target.as_bytes().to_vec()),
                meta: Meta {
                    mode: 0o777,
                    uid: meta.uid.unwrap_or(0),
                    gid: meta.gid.unwrap_or(0),
                    mtime: meta.mtime.unwrap_or(d.mtime),
                },
                priority: teu_layer::entry::Priority::Explicit,
                origin: origin.clone(),
                inode: None,
            })?,
            Item::Dir { path, meta, origin } => tree.insert(Entry {
                path: norm(path, origin)?,
                kind: Kind::Dir,
                meta: Meta {
                    mode: meta.mode.unwrap_or(0o755),
                    uid: meta.uid.unwrap_or(0),
                    gid: meta.gid.unwrap_or(0),
                    mtime: meta.mtime.unwrap_or(d.mtime),
                },
                priority: teu_layer::entry::Priority::Explicit,
                origin: origin.clone(),
                inode: None,
            })?,
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
    let entries = tree.finish(d)?;
    let built = build_layer(&entries, &lopts, &opts.store)?;
    Ok((built, entries.len()))
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
