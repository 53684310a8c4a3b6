//! From a descriptor in any blob source to an [`Image`] or an [`Artifact`]: read the index
//! or manifest and the config (small JSON documents, verified against their digests) and
//! reference the layers where they are. Shared by layouts, archives and registries.

use std::io::Read;
use std::sync::Arc;

use teu_oci::{media_type, Descriptor, Digest, ImageConfig, Index, Manifest, Platform, Raw};

use crate::blob::BlobSource;
use crate::image::{Artifact, Image, ImageIndex, Layer};
use crate::{invalid, io_err, ImageError};

/// JSON documents larger than this are refused: no manifest or config is near it, and it
/// bounds what a hostile source can make teu hold in memory.
const MAX_JSON: u64 = 16 * 1024 * 1024;

fn kind_of(mt: &str) -> &'static str {
    if media_type::is_index(mt) {
        "index"
    } else if media_type::is_manifest(mt) {
        "manifest"
    } else {
        "blob"
    }
}

/// Read a small JSON blob and check it against its descriptor.
pub fn read_verified(source: &dyn BlobSource, desc: &Descriptor) -> Result<Vec<u8>, ImageError> {
    let name = format!(
        "{} {} in {}",
        kind_of(&desc.media_type),
        desc.digest,
        source.name()
    );
    if desc.size > MAX_JSON {
        return Err(invalid(
            name,
            format!(
                "is {} bytes; manifests and configs over 16 MiB are refused",
                desc.size
            ),
        ));
    }
    let opened =
        if media_type::is_index(&desc.media_type) || media_type::is_manifest(&desc.media_type) {
            source.open_manifest(&desc.digest)
        } else {
            source.open(&desc.digest)
        };
    let reader = opened.map_err(|e| invalid(&name, format!("cannot be read: {e}")))?;
    let mut bytes = Vec::with_capacity(desc.size as usize);
    reader
        .take(desc.size + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err(&name))?;
    let actual = Digest::of(&bytes);
    if actual != desc.digest || bytes.len() as u64 != desc.size {
        return Err(ImageError::Corrupt {
            digest: desc.digest.clone(),
            actual,
            size: bytes.len() as u64,
            source_name: source.name(),
        });
    }
    Ok(bytes)
}

fn parse<T: serde::de::DeserializeOwned>(bytes: Vec<u8>, name: &str) -> Result<Raw<T>, ImageError> {
    Raw::parse(bytes, name).map_err(|e| invalid(name, e.source.to_string()))
}

/// The image for `platform` that `desc` (a manifest, or an index) points at.
pub fn image_for(
    source: Arc<dyn BlobSource>,
    desc: &Descriptor,
    platform: &Platform,
) -> Result<Image, ImageError> {
    let mut desc = desc.clone();
    for _ in 0..3 {
        if !media_type::is_index(&desc.media_type) {
            return image(source, &desc);
        }
        let name = format!("index {} in {}", desc.digest, source.name());
        let index: Raw<Index> = parse(read_verified(source.as_ref(), &desc)?, &name)?;
        let available: Vec<String> = index
            .value
            .manifests
            .iter()
            .filter_map(|d| d.platform.as_ref().map(|p| p.to_string()))
            .collect();
        desc = index
            .value
            .manifests
            .iter()
            .find(|d| {
                (media_type::is_manifest(&d.media_type) || media_type::is_index(&d.media_type))
                    && d.platform.as_ref().is_some_and(|p| p.satisfies(platform))
            })
            .ok_or_else(|| {
                invalid(
                    &name,
                    format!(
                        "index has no image for {platform} (it has: {})",
                        available.join(", ")
                    ),
                )
            })?
            .clone();
    }
    Err(invalid(
        format!("{} in {}", desc.digest, source.name()),
        "indexes nest too deep",
    ))
}

/// The image or index `desc` points at, with every image of an index (entries that are not
/// images, such as attestations, are left out).
pub fn artifact(source: Arc<dyn BlobSource>, desc: &Descriptor) -> Result<Artifact, ImageError> {
    if !media_type::is_index(&desc.media_type) {
        return Ok(Artifact::Image(image(source, desc)?));
    }
    let name = format!("index {} in {}", desc.digest, source.name());
    let index: Raw<Index> = parse(read_verified(source.as_ref(), desc)?, &name)?;
    let mut images = Vec::new();
    for d in &index.value.manifests {
        if media_type::is_manifest(&d.media_type) {
            images.push(image(Arc::clone(&source), d)?);
        }
    }
    Ok(Artifact::Index(ImageIndex { index, images }))
}

/// The image whose manifest `desc` describes.
pub fn image(source: Arc<dyn BlobSource>, desc: &Descriptor) -> Result<Image, ImageError> {
    let name = format!("manifest {} in {}", desc.digest, source.name());
    if !media_type::is_manifest(&desc.media_type) {
        return Err(invalid(
            name,
            format!(
                "media type {:?} is neither an image manifest nor an index",
                desc.media_type
            ),
        ));
    }
    let manifest: Raw<Manifest> = parse(read_verified(source.as_ref(), desc)?, &name)?;
    let cfg_name = format!(
        "config {} in {}",
        manifest.value.config.digest,
        source.name()
    );
    let config: Raw<ImageConfig> = parse(
        read_verified(source.as_ref(), &manifest.value.config)?,
        &cfg_name,
    )?;
    let diff_ids = &config.value.rootfs.diff_ids;
    if diff_ids.len() != manifest.value.layers.len() {
        return Err(invalid(
            cfg_name,
            format!(
                "rootfs.diff_ids has {} entries but the manifest lists {} layers",
                diff_ids.len(),
                manifest.value.layers.len()
            ),
        ));
    }
    let mut layers = Vec::new();
    for (d, diff_id) in manifest.value.layers.iter().zip(diff_ids) {
        // A local source can say now that a layer is missing, rather than at output time.
        if let Some(p) = source.local_path(&d.digest) {
            if !p.is_file() {
                return Err(invalid(
                    source.name(),
                    format!(
                        "layer {} of manifest {} is missing ({})",
                        d.digest,
                        desc.digest,
                        p.display()
                    ),
                ));
            }
        }
        layers.push(Layer {
            descriptor: d.clone(),
            diff_id: diff_id.clone(),
            source: Arc::clone(&source),
        });
    }
    Ok(Image {
        manifest,
        config,
        layers,
    })
}
