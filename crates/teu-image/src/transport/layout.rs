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

use teu_oci::{Descriptor, Index, Platform, Raw, Sha256Writer, ANNOTATION_REF_NAME};
use teu_store::atomic::{self, AtomicDir, AtomicFile};

use crate::blob::{BlobSource, LayoutSource};
use crate::image::{Artifact, BlobRef, Image};
use crate::resolve;
use crate::{invalid, io_err, ImageError};

pub const OCI_LAYOUT_FILE: &str = "oci-layout";
pub const OCI_LAYOUT_CONTENT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

fn what(dir: &Path) -> String {
    format!("OCI layout {}", dir.display())
}

/// Open the layout at `dir` and find the descriptor tagged `tag` (or the only one).
pub fn open_layout(
    dir: &Path,
    tag: Option<&str>,
) -> Result<(Arc<dyn BlobSource>, Descriptor), ImageError> {
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
    let desc = pick_tag(&index.value, tag, dir)?.clone();
    Ok((
        Arc::new(LayoutSource {
            dir: dir.to_path_buf(),
        }),
        desc,
    ))
}

/// Read the image tagged `tag` (or the only image) from the layout at `dir`, choosing
/// `platform` from an index. Manifest and config are read and verified; layers are only
/// referenced.
pub fn read_image(dir: &Path, tag: Option<&str>, platform: &Platform) -> Result<Image, ImageError> {
    let (source, desc) = open_layout(dir, tag)?;
    resolve::image_for(source, &desc, platform)
}

/// Read the image or index tagged `tag` (or the only one) from the layout at `dir`, with
/// every platform of an index.
pub fn read_artifact(dir: &Path, tag: Option<&str>) -> Result<Artifact, ImageError> {
    let (source, desc) = open_layout(dir, tag)?;
    resolve::artifact(source, &desc)
}

fn ref_name(d: &Descriptor) -> Option<&str> {
    d.annotations.get(ANNOTATION_REF_NAME).map(String::as_str)
}

pub(crate) fn pick_tag<'a>(
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
    // A rebuild that changed nothing leaves index.json alone: no write, no fsync to wait on.
    if fs::read(&index_path).ok().as_deref() != Some(&raw.bytes[..]) {
        atomic::write_file(&index_path, &raw.bytes).map_err(io_err(index_path.display()))?;
        written += raw.bytes.len() as u64;
    }
    Ok(written)
}

/// Copy one blob into `blob_dir` unless it is there already; verify it on the way.
fn put_blob(blob_dir: &Path, desc: &Descriptor, blob: &BlobRef) -> Result<u64, ImageError> {
    let dest = blob_dir.join(desc.digest.hex());
    if let Some(n) = link_from_store(blob_dir, desc, blob, &dest) {
        return Ok(n);
    }
    if fs::metadata(&dest).is_ok_and(|m| m.len() == desc.size) {
        return Ok(0);
    }
    let mut out = AtomicFile::create(&dest).map_err(io_err(dest.display()))?;
    let n = copy_verified(blob, desc, &mut out)?;
    out.commit().map_err(io_err(dest.display()))?;
    Ok(n)
}

/// A blob from teu's store (verified when it was written) is hard-linked into the layout:
/// no bytes are copied, hashed or fsynced a second time (on a 2-core VM, the fsync of a
/// 20 MB layer alone is ~0.1 s). The link is made under a temporary name and renamed over
/// `dest`, so a layout blob that is not the store's inode (an older copy, possibly damaged
/// since) is replaced by the store's verified one. `None`: not a store blob, another file
/// system, or anything else off; the caller copies and verifies as usual.
///
/// Trade-off: the store and the layout share the inode, so editing a layout blob in place
/// changes the store's too (`teu cache verify` finds and removes it; the next build
/// re-links a fresh one). Blobs are content-addressed; nothing should edit them in place.
fn link_from_store(blob_dir: &Path, desc: &Descriptor, blob: &BlobRef, dest: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    let BlobRef::Source(s) = blob else {
        return None;
    };
    let src = s.linkable_path(&desc.digest)?;
    let sm = fs::metadata(&src).ok().filter(|m| m.len() == desc.size)?;
    let existed = match fs::metadata(dest) {
        Ok(dm) if dm.ino() == sm.ino() && dm.dev() == sm.dev() => return Some(0),
        Ok(_) => true,
        Err(_) => false,
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let tmp = blob_dir.join(format!(
        ".{}.link-{}-{nanos}",
        desc.digest.hex(),
        std::process::id()
    ));
    fs::hard_link(&src, &tmp).ok()?;
    if fs::rename(&tmp, dest).is_err() {
        let _ = fs::remove_file(&tmp);
        return None;
    }
    Some(if existed { 0 } else { desc.size })
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
