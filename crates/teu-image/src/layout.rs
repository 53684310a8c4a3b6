//! OCI image layouts (`oci-layout`, `index.json`, `blobs/sha256/…`), as a source and a sink.
//!
//! Writing keeps the layout's other images: blobs are added (each atomically, verified
//! against its digest, skipped when present), and `index.json` is rewritten atomically with
//! the new descriptor replacing any that had the same tag. A layout that does not exist yet
//! is built under a temporary name and renamed into place when complete.

use std::fs;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;

use teu_oci::{
    media_type, Descriptor, Digest, ImageConfig, Index, Manifest, Platform, Raw, Sha256Writer,
    ANNOTATION_REF_NAME,
};
use teu_store::atomic::{self, AtomicDir, AtomicFile};

use crate::blob::{BlobSource, LayoutSource};
use crate::image::{Artifact, BlobRef, Image, Layer};
use crate::{invalid, io_err, ImageError};

pub const OCI_LAYOUT_FILE: &str = "oci-layout";
pub const OCI_LAYOUT_CONTENT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

fn what(dir: &Path) -> String {
    format!("OCI layout {}", dir.display())
}

/// Read the image tagged `tag` (or the only image) from the layout at `dir`, choosing
/// `platform` from an index. Manifest and config are read and verified; layers are only
/// referenced.
pub fn read_image(dir: &Path, tag: Option<&str>, platform: &Platform) -> Result<Image, ImageError> {
    let layout = fs::read(dir.join(OCI_LAYOUT_FILE)).map_err(|e| {
        invalid(
            what(dir),
            format!("is not an OCI image layout ({OCI_LAYOUT_FILE}: {e})"),
        )
    })?;
    let version: serde_json::Value = serde_json::from_slice(&layout).map_err(|e| {
        invalid(
            format!("{}/{OCI_LAYOUT_FILE}", dir.display()),
            e.to_string(),
        )
    })?;
    if version
        .get("imageLayoutVersion")
        .and_then(|v| v.as_str())
        .is_none()
    {
        return Err(invalid(
            format!("{}/{OCI_LAYOUT_FILE}", dir.display()),
            "field imageLayoutVersion is missing",
        ));
    }
    let index_path = dir.join("index.json");
    let index_bytes = fs::read(&index_path).map_err(io_err(index_path.display()))?;
    let index: Raw<Index> = Raw::parse(index_bytes, index_path.display().to_string())
        .map_err(|e| invalid(index_path.display().to_string(), e.source.to_string()))?;
    let source = LayoutSource {
        dir: dir.to_path_buf(),
    };
    let desc = pick_tag(&index.value, tag, dir)?;
    resolve(&source, desc, platform, 0)
}

fn ref_name(d: &Descriptor) -> Option<&str> {
    d.annotations.get(ANNOTATION_REF_NAME).map(String::as_str)
}

fn pick_tag<'a>(
    index: &'a Index,
    tag: Option<&str>,
    dir: &Path,
) -> Result<&'a Descriptor, ImageError> {
    let tags: Vec<&str> = index.manifests.iter().filter_map(ref_name).collect();
    match tag {
        Some(t) => index
            .manifests
            .iter()
            .find(|d| ref_name(d) == Some(t))
            .ok_or_else(|| {
                invalid(
                    what(dir),
                    format!("has no image tagged {t:?} (tags: {})", list(&tags)),
                )
            }),
        None => match index.manifests.as_slice() {
            [one] => Ok(one),
            [] => Err(invalid(what(dir), "index.json lists no images")),
            _ => Err(invalid(
                what(dir),
                format!(
                    "holds {} images; name one as oci:{}:TAG (tags: {})",
                    index.manifests.len(),
                    dir.display(),
                    list(&tags)
                ),
            )),
        },
    }
}

fn list(tags: &[&str]) -> String {
    if tags.is_empty() {
        "none".to_string()
    } else {
        tags.join(", ")
    }
}

/// Read a small JSON blob and check it against its descriptor.
pub(crate) fn read_verified(
    source: &dyn BlobSource,
    desc: &Descriptor,
) -> Result<Vec<u8>, ImageError> {
    const MAX_JSON: u64 = 16 * 1024 * 1024;
    if desc.size > MAX_JSON {
        return Err(invalid(
            format!("{} in {}", desc.digest, source.name()),
            format!(
                "is {} bytes; manifests and configs over 16 MiB are refused",
                desc.size
            ),
        ));
    }
    let mut bytes = Vec::with_capacity(desc.size as usize);
    let reader = source.open(&desc.digest).map_err(|e| {
        invalid(
            format!(
                "{} {} in {}",
                kind_of(&desc.media_type),
                desc.digest,
                source.name()
            ),
            format!("cannot be read: {e}"),
        )
    })?;
    reader
        .take(desc.size + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err(format!("{} in {}", desc.digest, source.name())))?;
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

fn kind_of(mt: &str) -> &'static str {
    if media_type::is_index(mt) {
        "index"
    } else if media_type::is_manifest(mt) {
        "manifest"
    } else {
        "blob"
    }
}

fn resolve(
    source: &LayoutSource,
    desc: &Descriptor,
    platform: &Platform,
    depth: u32,
) -> Result<Image, ImageError> {
    let bytes = read_verified(source, desc)?;
    let name = format!("{} in {}", desc.digest, source.name());
    if media_type::is_index(&desc.media_type) {
        if depth > 2 {
            return Err(invalid(name, "indexes nest too deep"));
        }
        let index: Raw<Index> =
            Raw::parse(bytes, &name).map_err(|e| invalid(&name, e.source.to_string()))?;
        let available: Vec<String> = index
            .value
            .manifests
            .iter()
            .filter_map(|d| d.platform.as_ref().map(|p| p.to_string()))
            .collect();
        let child = index
            .value
            .manifests
            .iter()
            .find(|d| {
                media_type::is_manifest(&d.media_type)
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
            })?;
        return resolve(source, child, platform, depth + 1);
    }
    if !media_type::is_manifest(&desc.media_type) {
        return Err(invalid(
            name,
            format!(
                "media type {:?} is neither an image manifest nor an index",
                desc.media_type
            ),
        ));
    }
    let manifest: Raw<Manifest> =
        Raw::parse(bytes, &name).map_err(|e| invalid(&name, e.source.to_string()))?;
    let cfg_bytes = read_verified(source, &manifest.value.config)?;
    let cfg_name = format!(
        "config {} in {}",
        manifest.value.config.digest,
        source.name()
    );
    let config: Raw<ImageConfig> =
        Raw::parse(cfg_bytes, &cfg_name).map_err(|e| invalid(&cfg_name, e.source.to_string()))?;
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
    let src: Arc<dyn BlobSource> = Arc::new(source.clone());
    let mut layers = Vec::new();
    for (d, diff_id) in manifest.value.layers.iter().zip(diff_ids) {
        let p = source.path(&d.digest);
        if !p.is_file() {
            return Err(invalid(
                what(&source.dir),
                format!(
                    "layer {} of manifest {} is missing ({})",
                    d.digest,
                    desc.digest,
                    p.display()
                ),
            ));
        }
        layers.push(Layer {
            descriptor: d.clone(),
            diff_id: diff_id.clone(),
            source: Arc::clone(&src),
        });
    }
    Ok(Image {
        manifest,
        config,
        layers,
    })
}

/// Write `artifact` into the layout at `dir` under `tag`. Returns the bytes written.
pub fn write_artifact(
    dir: &Path,
    tag: Option<&str>,
    artifact: &Artifact,
) -> Result<u64, ImageError> {
    let fresh = match fs::read_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => true,
        Err(e) => return Err(io_err(dir.display())(e)),
        Ok(mut entries) => {
            let empty = entries.next().is_none();
            if !empty && !dir.join(OCI_LAYOUT_FILE).is_file() {
                return Err(invalid(
                    dir.display().to_string(),
                    "exists and is not an OCI image layout (no oci-layout file); choose another output",
                ));
            }
            empty
        }
    };
    if fresh {
        let tmp = AtomicDir::create(dir).map_err(io_err(dir.display()))?;
        let written = write_into(tmp.path(), tag, artifact)?;
        tmp.commit().map_err(io_err(dir.display()))?;
        Ok(written)
    } else {
        write_into(dir, tag, artifact)
    }
}

fn write_into(dir: &Path, tag: Option<&str>, artifact: &Artifact) -> Result<u64, ImageError> {
    let blob_dir = dir.join("blobs/sha256");
    fs::create_dir_all(&blob_dir).map_err(io_err(blob_dir.display()))?;
    let mut written = 0;
    for (desc, blob) in artifact.blobs() {
        written += put_blob(&blob_dir, &desc, &blob)?;
    }
    let manifest_desc = artifact.descriptor();
    if !dir.join(OCI_LAYOUT_FILE).is_file() {
        atomic::write_file(&dir.join(OCI_LAYOUT_FILE), OCI_LAYOUT_CONTENT)
            .map_err(io_err(dir.display()))?;
        written += OCI_LAYOUT_CONTENT.len() as u64;
    }
    let index_path = dir.join("index.json");
    let mut index = match fs::read(&index_path) {
        Ok(b) => {
            Raw::<Index>::parse(b, index_path.display().to_string())
                .map_err(|e| invalid(index_path.display().to_string(), e.source.to_string()))?
                .value
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Index::new(),
        Err(e) => return Err(io_err(index_path.display())(e)),
    };
    let mut desc = manifest_desc;
    match tag {
        Some(t) => {
            index.manifests.retain(|d| ref_name(d) != Some(t));
            desc.annotations
                .insert(ANNOTATION_REF_NAME.to_string(), t.to_string());
        }
        None => index
            .manifests
            .retain(|d| !(d.digest == desc.digest && ref_name(d).is_none())),
    }
    index.manifests.push(desc);
    let raw = Raw::encode(index);
    atomic::write_file(&index_path, &raw.bytes).map_err(io_err(index_path.display()))?;
    written += raw.bytes.len() as u64;
    Ok(written)
}

/// Copy one blob into `blob_dir` unless it is there already; verify it on the way.
fn put_blob(blob_dir: &Path, desc: &Descriptor, blob: &BlobRef) -> Result<u64, ImageError> {
    let dest = blob_dir.join(desc.digest.hex());
    if fs::metadata(&dest).is_ok_and(|m| m.len() == desc.size) {
        return Ok(0);
    }
    let mut out = AtomicFile::create(&dest).map_err(io_err(dest.display()))?;
    let n = copy_verified(blob, desc, &mut out)?;
    out.commit().map_err(io_err(dest.display()))?;
    Ok(n)
}

/// Stream a blob into `out`, failing if its bytes do not match `desc`.
pub(crate) fn copy_verified(
    blob: &BlobRef,
    desc: &Descriptor,
    out: &mut dyn Write,
) -> Result<u64, ImageError> {
    let name = || match blob {
        BlobRef::Bytes(_) => "memory".to_string(),
        BlobRef::Source(s) => s.name(),
    };
    let mut reader = blob.open(&desc.digest)?;
    let mut w = Sha256Writer::new(out);
    io::copy(&mut reader.by_ref().take(desc.size), &mut w).map_err(io_err(format!(
        "{} from {}",
        desc.digest,
        name()
    )))?;
    let extra =
        reader
            .read(&mut [0u8; 1])
            .map_err(io_err(format!("{} from {}", desc.digest, name())))?;
    let (actual, n, _) = w.finish();
    if actual != desc.digest || n != desc.size || extra != 0 {
        return Err(ImageError::Corrupt {
            digest: desc.digest.clone(),
            actual,
            size: n,
            source_name: name(),
        });
    }
    Ok(n)
}
