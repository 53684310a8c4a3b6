//! The one rule for reading images: from a descriptor in any blob source to an [`Image`]
//! or a whole [`Artifact`]. The index, manifest and config (small JSON documents) are
//! read and verified against their digests; layers are only referenced where they are.
//! Every transport, the builder's bases and every command choose images through here.
//!
//! Choosing a platform ([`Select::Platform`]) follows nested indexes, compares platforms
//! the way containerd does ([`Platform::match_rank`]: `arm64` is `arm64/v8`, an `arm/v7`
//! request takes an `arm/v6` image when there is nothing better), and, for index entries
//! that carry no platform, asks their configs.

use std::io::Read;
use std::sync::Arc;

use teu_oci::{media_type, Descriptor, Digest, ImageConfig, Index, Manifest, Platform, Raw};

use crate::blob::BlobSource;
use crate::error::{io_err, malformed, not_found, unsupported, ImageError};
use crate::image::{Artifact, Image, ImageIndex, Layer};

/// Which image(s) of what a reference names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Select {
    /// The whole index (or the one image): what a copy keeps.
    All,
    /// The one image for a platform.
    Platform(Platform),
}

/// JSON documents larger than this are refused: no manifest or config is near it, and it
/// bounds what a hostile source can make teu hold in memory.
const MAX_JSON: u64 = 16 * 1024 * 1024;

/// Indexes nested deeper than this are refused (real images nest one level at most).
pub const MAX_DEPTH: usize = 4;

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
        return Err(unsupported(
            name,
            format!(
                "is {} bytes; manifests and configs over 16 MiB are refused",
                desc.size
            ),
        ));
    }
    let reader =
        if media_type::is_index(&desc.media_type) || media_type::is_manifest(&desc.media_type) {
            source.open_manifest(&desc.digest)
        } else {
            source.open(&desc.digest)
        }?;
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
            expected_size: desc.size,
            source_name: source.name(),
        });
    }
    Ok(bytes)
}

/// Parse a JSON document teu did not write. Serde would read a struct from an array
/// (`[]` as an index "with 6 elements"), so anything but an object is refused first,
/// in words.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(
    bytes: Vec<u8>,
    name: &str,
) -> Result<Raw<T>, ImageError> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => Ok(Raw::parse(bytes, name)?),
        Some(&b) => Err(malformed(
            name,
            format!(
                "is not a JSON object (it starts with {:?}); an OCI document is {{ \"schemaVersion\": 2, … }}",
                b as char
            ),
        )),
        None => Err(malformed(name, "is empty")),
    }
}

/// What every index and manifest must say of itself: schema version 2, and (when it
/// names one) the media type its descriptor names.
fn check_document(
    name: &str,
    schema_version: u32,
    media_type: Option<&str>,
    desc: &Descriptor,
) -> Result<(), ImageError> {
    if schema_version != 2 {
        return Err(unsupported(
            name,
            format!(
                "schemaVersion is {schema_version}; teu reads schemaVersion 2 (Docker's v2 schema 1 and others are not supported)"
            ),
        ));
    }
    match media_type {
        Some(mt) if mt != desc.media_type => Err(malformed(
            name,
            format!(
                "its mediaType is {mt:?}, but the descriptor that names it says {:?}",
                desc.media_type
            ),
        )),
        _ => Ok(()),
    }
}

fn read_index(source: &dyn BlobSource, desc: &Descriptor) -> Result<Raw<Index>, ImageError> {
    let name = format!("index {} in {}", desc.digest, source.name());
    let index: Raw<Index> = parse(read_verified(source, desc)?, &name)?;
    let v = &index.value;
    check_document(&name, v.schema_version, v.media_type.as_deref(), desc)?;
    Ok(index)
}

/// What `desc` names, chosen by `select`: the whole index or image, or one image.
pub fn select(
    source: Arc<dyn BlobSource>,
    desc: &Descriptor,
    select: &Select,
) -> Result<Artifact, ImageError> {
    match select {
        Select::All => artifact(source, desc),
        Select::Platform(p) => image_for(source, desc, p).map(Artifact::Image),
    }
}

/// The image for `platform` that `desc` (a manifest, or an index) points at. A single
/// manifest is returned whatever its platform: a caller that must refuse a mismatch
/// (the builder) compares the config's platform itself.
pub fn image_for(
    source: Arc<dyn BlobSource>,
    desc: &Descriptor,
    platform: &Platform,
) -> Result<Image, ImageError> {
    if !media_type::is_index(&desc.media_type) {
        return image(source, desc);
    }
    let mut available = Vec::new();
    match find(&source, desc, platform, 0, &mut available)? {
        Some(img) => Ok(img),
        None => Err(ImageError::NoPlatform {
            what: format!("index {} in {}", desc.digest, source.name()),
            wanted: platform.to_string(),
            available,
        }),
    }
}

/// Depth-first search of an index for the best image for `platform`, collecting the
/// platforms seen on the way for the error message.
fn find(
    source: &Arc<dyn BlobSource>,
    desc: &Descriptor,
    platform: &Platform,
    depth: usize,
    available: &mut Vec<String>,
) -> Result<Option<Image>, ImageError> {
    if depth >= MAX_DEPTH {
        return Err(unsupported(
            format!("index {} in {}", desc.digest, source.name()),
            format!("indexes nest more than {MAX_DEPTH} deep; teu follows {MAX_DEPTH} levels"),
        ));
    }
    let index = read_index(source.as_ref(), desc)?;
    let entries: Vec<&Descriptor> = index
        .value
        .manifests
        .iter()
        .filter(|d| media_type::is_manifest(&d.media_type) || media_type::is_index(&d.media_type))
        .collect();
    // Entries that say their platform, best match first (a stable sort keeps index order
    // among equals, so the first of two equal images wins, as everywhere else).
    let mut ranked: Vec<(u32, &Descriptor)> = Vec::new();
    for d in &entries {
        if let Some(p) = &d.platform {
            if media_type::is_manifest(&d.media_type) {
                available.push(p.to_string());
            }
            if let Some(rank) = p.match_rank(platform) {
                ranked.push((rank, d));
            }
        }
    }
    ranked.sort_by_key(|(rank, _)| *rank);
    for (_, d) in ranked {
        if media_type::is_index(&d.media_type) {
            if let Some(img) = find(source, d, platform, depth + 1, available)? {
                return Ok(Some(img));
            }
        } else {
            return image(Arc::clone(source), d).map(Some);
        }
    }
    // Entries without a platform: nested indexes are searched, manifests are asked
    // through their configs (the platform is the config's, whatever the index says).
    let mut best: Option<(u32, Image)> = None;
    for d in entries.iter().filter(|d| d.platform.is_none()) {
        if media_type::is_index(&d.media_type) {
            if let Some(img) = find(source, d, platform, depth + 1, available)? {
                return Ok(Some(img));
            }
            continue;
        }
        let img = image(Arc::clone(source), d)?;
        let has = img.config.value.platform();
        available.push(has.to_string());
        if let Some(rank) = has.match_rank(platform) {
            if best.as_ref().is_none_or(|(r, _)| rank < *r) {
                best = Some((rank, img));
            }
        }
    }
    Ok(best.map(|(_, img)| img))
}

/// The image or index `desc` points at, whole: every image of an index and every index
/// nested in it. Entries that are neither (which the image spec does not allow) are
/// refused, since a copy without them would name blobs it does not carry.
pub fn artifact(source: Arc<dyn BlobSource>, desc: &Descriptor) -> Result<Artifact, ImageError> {
    if !media_type::is_index(&desc.media_type) {
        return Ok(Artifact::Image(image(source, desc)?));
    }
    Ok(Artifact::Index(index_tree(&source, desc, 0)?))
}

fn index_tree(
    source: &Arc<dyn BlobSource>,
    desc: &Descriptor,
    depth: usize,
) -> Result<ImageIndex, ImageError> {
    let name = format!("index {} in {}", desc.digest, source.name());
    if depth >= MAX_DEPTH {
        return Err(unsupported(
            name,
            format!("indexes nest more than {MAX_DEPTH} deep; teu follows {MAX_DEPTH} levels"),
        ));
    }
    let index = read_index(source.as_ref(), desc)?;
    let mut images = Vec::new();
    let mut indexes = Vec::new();
    for d in &index.value.manifests {
        if media_type::is_manifest(&d.media_type) {
            images.push(image(Arc::clone(source), d)?);
        } else if media_type::is_index(&d.media_type) {
            indexes.push(index_tree(source, d, depth + 1)?);
        } else {
            return Err(unsupported(
                name,
                format!(
                    "entry {} has media type {:?}, neither a manifest nor an index",
                    d.digest, d.media_type
                ),
            ));
        }
    }
    Ok(ImageIndex {
        index,
        images,
        indexes,
    })
}

/// The image whose manifest `desc` describes.
pub fn image(source: Arc<dyn BlobSource>, desc: &Descriptor) -> Result<Image, ImageError> {
    let name = format!("manifest {} in {}", desc.digest, source.name());
    if !media_type::is_manifest(&desc.media_type) {
        return Err(unsupported(
            name,
            format!(
                "media type {:?} is neither an image manifest nor an index",
                desc.media_type
            ),
        ));
    }
    let manifest: Raw<Manifest> = parse(read_verified(source.as_ref(), desc)?, &name)?;
    let m = &manifest.value;
    check_document(&name, m.schema_version, m.media_type.as_deref(), desc)?;
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
        return Err(malformed(
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
                return Err(not_found(
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
