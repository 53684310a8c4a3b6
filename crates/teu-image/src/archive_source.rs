//! `oci-archive` and `docker-archive` files (as written by teu, skopeo and `docker save`
//! since Docker 25, which all hold an OCI layout) as image sources. The tar is scanned once
//! for where each blob starts; a blob is then read in place (seek + length), never
//! extracted.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use teu_oci::{
    media_type, Descriptor, Digest, ImageConfig, Index, Manifest, Platform, Raw,
    ANNOTATION_REF_NAME,
};

use crate::blob::BlobSource;
use crate::image::{Image, Layer};
use crate::layout::read_verified;
use crate::registry::pick_platform;
use crate::{invalid, io_err, ImageError};

/// Blobs inside a tar archive: digest hex → (offset of the content, length).
#[derive(Debug, Clone)]
pub struct ArchiveSource {
    path: PathBuf,
    blobs: Arc<BTreeMap<String, (u64, u64)>>,
}

impl BlobSource for ArchiveSource {
    fn open(&self, digest: &Digest) -> Result<Box<dyn Read + Send>, ImageError> {
        let (offset, len) = *self
            .blobs
            .get(digest.hex())
            .ok_or_else(|| invalid(self.name(), format!("holds no blob {digest}")))?;
        let mut f = File::open(&self.path).map_err(io_err(self.path.display()))?;
        f.seek(SeekFrom::Start(offset))
            .map_err(io_err(self.path.display()))?;
        Ok(Box::new(f.take(len)))
    }
    fn name(&self) -> String {
        format!("archive {}", self.path.display())
    }
}

/// Read the image tagged `tag` (or the only one) from an archive, for `platform`.
pub fn read_archive(
    path: &Path,
    tag: Option<&str>,
    platform: &Platform,
) -> Result<Image, ImageError> {
    let what = || format!("archive {}", path.display());
    let file = File::open(path).map_err(io_err(path.display()))?;
    let mut archive = tar::Archive::new(file);
    let mut blobs = BTreeMap::new();
    let mut index_bytes = None;
    for entry in archive.entries().map_err(io_err(path.display()))? {
        let mut entry = entry.map_err(io_err(path.display()))?;
        let name = entry
            .path()
            .map_err(io_err(path.display()))?
            .to_string_lossy()
            .into_owned();
        let name = name.trim_start_matches("./");
        if name == "index.json" {
            let mut b = Vec::new();
            entry.read_to_end(&mut b).map_err(io_err(path.display()))?;
            index_bytes = Some(b);
        } else if let Some(hex) = name.strip_prefix("blobs/sha256/") {
            blobs.insert(hex.to_string(), (entry.raw_file_position(), entry.size()));
        }
    }
    let index_bytes = index_bytes.ok_or_else(|| {
        invalid(
            what(),
            "has no index.json (archives from docker save before Docker 25 are not supported)",
        )
    })?;
    let index: Raw<Index> = Raw::parse(index_bytes, format!("{}: index.json", what()))
        .map_err(|e| invalid(what(), e.to_string()))?;
    let desc = pick(&index.value, tag, &what())?;
    let source: Arc<dyn BlobSource> = Arc::new(ArchiveSource {
        path: path.to_path_buf(),
        blobs: Arc::new(blobs),
    });
    resolve(source, desc, platform, &what())
}

fn pick<'a>(index: &'a Index, tag: Option<&str>, what: &str) -> Result<&'a Descriptor, ImageError> {
    let name = |d: &Descriptor| d.annotations.get(ANNOTATION_REF_NAME).cloned();
    match (tag, index.manifests.as_slice()) {
        (Some(t), m) => m
            .iter()
            .find(|d| name(d).as_deref() == Some(t))
            .ok_or_else(|| {
                let tags: Vec<String> = m.iter().filter_map(name).collect();
                invalid(
                    what,
                    format!("has no image tagged {t:?} (tags: {})", tags.join(", ")),
                )
            }),
        (None, [one]) => Ok(one),
        (None, []) => Err(invalid(what, "index.json lists no images")),
        (None, m) => Err(invalid(
            what,
            format!("holds {} images; name one with :TAG", m.len()),
        )),
    }
}

fn resolve(
    source: Arc<dyn BlobSource>,
    desc: &Descriptor,
    platform: &Platform,
    what: &str,
) -> Result<Image, ImageError> {
    let mut desc = desc.clone();
    for _ in 0..3 {
        let bytes = read_verified(source.as_ref(), &desc)?;
        let name = format!("{} in {what}", desc.digest);
        if media_type::is_index(&desc.media_type) {
            let index: Raw<Index> =
                Raw::parse(bytes, &name).map_err(|e| invalid(&name, e.source.to_string()))?;
            let d = pick_platform(&index.value, platform, &name)?;
            desc = index
                .value
                .manifests
                .iter()
                .find(|m| m.digest == d)
                .expect("picked from this index")
                .clone();
            continue;
        }
        let manifest: Raw<Manifest> =
            Raw::parse(bytes, &name).map_err(|e| invalid(&name, e.source.to_string()))?;
        let cfg = read_verified(source.as_ref(), &manifest.value.config)?;
        let cfg_name = format!("config {} in {what}", manifest.value.config.digest);
        let config: Raw<ImageConfig> =
            Raw::parse(cfg, &cfg_name).map_err(|e| invalid(&cfg_name, e.source.to_string()))?;
        if config.value.rootfs.diff_ids.len() != manifest.value.layers.len() {
            return Err(invalid(
                cfg_name,
                "rootfs.diff_ids and the manifest's layers differ in number",
            ));
        }
        let layers = manifest
            .value
            .layers
            .iter()
            .zip(&config.value.rootfs.diff_ids)
            .map(|(d, id)| Layer {
                descriptor: d.clone(),
                diff_id: id.clone(),
                source: Arc::clone(&source),
            })
            .collect();
        return Ok(Image {
            manifest,
            config,
            layers,
        });
    }
    Err(invalid(what, "indexes nest too deep"))
}
