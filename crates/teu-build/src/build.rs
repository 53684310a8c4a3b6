//! The build: bases first, then every platform's layers (shared ones once), then the
//! config and manifest of each image, and the index.

use std::sync::Arc;

use teu_image::{format, map_in_order, Artifact, BlobSource, Layer, StoreSource};
use teu_layer::cache::Cached;
use teu_layer::Compression;
use teu_oci::{Descriptor, Platform, ANNOTATION_BASE_DIGEST};
use teu_spec::{Format, Spec};

use crate::base::resolve_bases;
use crate::options::{BaseOptions, BuildOptions, BuildReport, LayerReport, PlatformReport};
use crate::{assemble, layers, BuildError};

/// Layers built at once. Each layer already compresses on every core; running a few side
/// by side overlaps one layer's file reading and hashing with another's compression, and
/// keeps memory to a few times one layer's bound.
const LAYERS_AT_ONCE: usize = 3;

/// The platforms a build makes: `--platform` flags, else the spec's, else the host's.
pub fn platforms_of(spec: &Spec, opts: &BaseOptions) -> Vec<Platform> {
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
    let platforms = platforms_of(spec, &opts.bases);
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
    let (base_lock, bases) = resolve_bases(spec, &platforms, &opts.bases, &mut warnings)?;
    let store_source: Arc<dyn BlobSource> = Arc::new(StoreSource(opts.store.clone()));
    let mut shared: Vec<Option<(Cached, usize)>> = vec![None; spec.layers.len()];
    let mut images = Vec::new();
    let mut reports = Vec::new();
    for (platform, base) in bases {
        let platform = &platform;
        let mut layers = Vec::new();
        let mut layer_reports = Vec::new();
        // The layers this platform still needs, built side by side (crate::layers).
        let todo: Vec<usize> = (0..spec.layers.len())
            .filter(|&i| shared[i].is_none())
            .collect();
        let fresh = map_in_order(&todo, LAYERS_AT_ONCE, |&i| {
            let layer = &spec.layers[i];
            let compression = layer.compression.unwrap_or(spec.compression);
            layers::build_one(layer, &layer.items_for(platform), compression, opts)
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
            let mut descriptor =
                Descriptor::new(built.media_type, built.digest.clone(), built.size);
            descriptor.annotations = built.annotations();
            layers.push(Layer {
                descriptor,
                diff_id: built.diff_id,
                source: Arc::clone(&store_source),
            });
        }
        let image = assemble::image(spec, platform, base, layers, opts.defaults.mtime);
        reports.push(PlatformReport {
            platform: image.config.value.platform().to_string(),
            digest: image.digest(),
            base: image
                .manifest
                .value
                .annotations
                .get(ANNOTATION_BASE_DIGEST)
                .and_then(|d| d.parse().ok()),
            layers: layer_reports,
        });
        images.push(image);
    }
    let artifact = if images.len() == 1 && !spec.multi_platform {
        Artifact::Image(images.pop().expect("one image"))
    } else {
        assemble::index_of(images, &spec.annotations)
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
