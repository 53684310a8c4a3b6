//! OCI image layouts (`oci-layout`, `index.json`, `blobs/sha256/…`), as a source and a sink.
//!
//! Writing keeps the layout's other images: blobs are added (each atomically, verified
//! against its digest, skipped when present, hard-linked when they come from teu's
//! store), and `index.json` is rewritten atomically with the new descriptor replacing any
//! that had the same tag. A layout that does not exist yet is built under a temporary
//! name and renamed into place when complete.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use teu_oci::{layout_blob_path, Descriptor, Digest, Index, Raw, ANNOTATION_REF_NAME};
use teu_store::atomic::{self, AtomicDir, AtomicFile};
use teu_store::lock::{lock_dir, open_regular, read_regular};
use teu_store::Store;

use super::{from_name, Action, BlobPlan, Sink, Source, Top};
use crate::blob::{copy_verified, BlobSource};
use crate::error::{io_err, malformed, not_found, unsupported, ImageError};
use crate::image::{Artifact, BlobRef};

pub const OCI_LAYOUT_FILE: &str = "oci-layout";
pub const OCI_LAYOUT_CONTENT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
/// The tag a layout or OCI archive output gets when the reference names none.
pub const DEFAULT_TAG: &str = "latest";

fn what(dir: &Path) -> String {
    format!("OCI layout {}", dir.display())
}

/// The `blobs/` directory of an OCI layout, as a blob source.
#[derive(Debug, Clone)]
pub struct LayoutBlobs {
    pub dir: PathBuf,
}

impl LayoutBlobs {
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(layout_blob_path(digest))
    }
}

impl BlobSource for LayoutBlobs {
    fn open(&self, digest: &Digest) -> Result<Box<dyn Read + Send>, ImageError> {
        let p = self.path(digest);
        match open_regular(&p) {
            Ok(f) => Ok(Box::new(f)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(not_found(
                self.name(),
                format!("has no blob {digest} ({})", p.display()),
            )),
            Err(e) => Err(io_err(p.display())(e)),
        }
    }
    fn local_path(&self, digest: &Digest) -> Option<PathBuf> {
        Some(self.path(digest))
    }
    fn name(&self) -> String {
        format!("oci:{}", self.dir.display())
    }
}

/// `oci:DIR[:TAG]` as a source.
pub struct LayoutSource {
    dir: PathBuf,
    tag: Option<String>,
}

impl LayoutSource {
    pub fn new(dir: &Path, tag: Option<String>) -> LayoutSource {
        LayoutSource {
            dir: dir.to_path_buf(),
            tag,
        }
    }
}

impl Source for LayoutSource {
    fn name(&self) -> String {
        match &self.tag {
            Some(t) => format!("oci:{}:{t}", self.dir.display()),
            None => format!("oci:{}", self.dir.display()),
        }
    }
    fn open(&self) -> Result<Top, ImageError> {
        let index = read_index(&self.dir)?;
        let descriptor = pick_tag(&index.value, self.tag.as_deref(), &self.dir)?.clone();
        Ok(Top {
            blobs: Arc::new(LayoutBlobs {
                dir: self.dir.clone(),
            }),
            descriptor,
        })
    }
    fn tags(&self) -> Result<Vec<String>, ImageError> {
        let index = read_index(&self.dir)?;
        Ok(tags_of(&index.value))
    }
}

/// The layout's `index.json`, after checking `oci-layout`.
fn read_index(dir: &Path) -> Result<Raw<Index>, ImageError> {
    let version_file = dir.join(OCI_LAYOUT_FILE);
    let layout = read_regular(&version_file).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => not_found(
            what(dir),
            format!("is not an OCI image layout (no {OCI_LAYOUT_FILE} file)"),
        ),
        _ => io_err(version_file.display())(e),
    })?;
    check_layout_version(&layout, &version_file.display().to_string())?;
    let index_path = dir.join("index.json");
    let index_bytes = read_regular(&index_path).map_err(io_err(index_path.display()))?;
    let name = index_path.display().to_string();
    let index: Raw<Index> = crate::select::parse(index_bytes, &name)?;
    if index.value.schema_version != 2 {
        return Err(unsupported(
            name,
            format!(
                "schemaVersion is {}; an OCI layout's index.json has schemaVersion 2",
                index.value.schema_version
            ),
        ));
    }
    Ok(index)
}

/// `oci-layout` must say `imageLayoutVersion` 1.x: a later major version may lay blobs
/// out differently, and reading it as 1.0 could read the wrong bytes.
pub(crate) fn check_layout_version(bytes: &[u8], name: &str) -> Result<(), ImageError> {
    let version: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| malformed(name, e.to_string()))?;
    match version.get("imageLayoutVersion").and_then(|v| v.as_str()) {
        None => Err(malformed(name, "field imageLayoutVersion is missing")),
        Some(v) if v == "1" || v.starts_with("1.") => Ok(()),
        Some(v) => Err(unsupported(
            name,
            format!("imageLayoutVersion is {v:?}; teu reads OCI layouts of version 1.x"),
        )),
    }
}

fn ref_name(d: &Descriptor) -> Option<&str> {
    d.annotations.get(ANNOTATION_REF_NAME).map(String::as_str)
}

/// The `ref.name`s of an index, in index order.
pub(crate) fn tags_of(index: &Index) -> Vec<String> {
    index
        .manifests
        .iter()
        .filter_map(ref_name)
        .map(str::to_string)
        .collect()
}

/// The descriptor tagged `tag` in a layout's (or an archive's) index, or its only one.
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
                not_found(
                    what(dir),
                    format!("has no image tagged {t:?} (tags: {})", list(&tags)),
                )
            }),
        None => match index.manifests.as_slice() {
            [one] => Ok(one),
            [] => Err(not_found(what(dir), "index.json lists no images")),
            _ => Err(unsupported(
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

/// `oci:DIR[:TAG]` as a sink.
pub struct LayoutSink {
    dir: PathBuf,
    tag: String,
    /// teu's store, when the command has one: the output's blobs are pinned against gc.
    store: Option<Store>,
}

impl LayoutSink {
    pub fn new(dir: &Path, tag: Option<String>, store: Option<Store>) -> LayoutSink {
        LayoutSink {
            dir: dir.to_path_buf(),
            tag: tag.unwrap_or_else(|| DEFAULT_TAG.to_string()),
            store,
        }
    }

    /// Whether the destination is a fresh layout (absent or an empty directory); refuses
    /// a directory that is something else.
    fn fresh(&self) -> Result<bool, ImageError> {
        match fs::read_dir(&self.dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
            Err(e) => Err(io_err(self.dir.display())(e)),
            Ok(mut entries) => {
                let empty = entries.next().is_none();
                if !empty && !self.dir.join(OCI_LAYOUT_FILE).is_file() {
                    return Err(unsupported(
                        self.dir.display().to_string(),
                        "exists and is not an OCI image layout (no oci-layout file); choose another output",
                    ));
                }
                Ok(empty)
            }
        }
    }
}

impl Sink for LayoutSink {
    fn name(&self) -> String {
        format!("oci:{}:{}", self.dir.display(), self.tag)
    }
    fn is_local(&self) -> bool {
        true
    }
    fn tags(&self) -> Vec<String> {
        vec![self.tag.clone()]
    }
    fn plan(&self, artifact: &Artifact) -> Result<Vec<BlobPlan>, ImageError> {
        let fresh = self.fresh()?;
        let blob_dir = self.dir.join("blobs/sha256");
        Ok(artifact
            .content_blobs()
            .into_iter()
            .map(|(desc, blob)| {
                let dest = blob_dir.join(desc.digest.hex());
                let linkable = match &blob {
                    BlobRef::Source(s) => s.linkable_path(&desc.digest),
                    BlobRef::Bytes(_) => None,
                };
                let action = match linkable {
                    _ if fresh => linkable.map_or(Action::Copy, |_| Action::Link),
                    Some(src) if same_file(&src, &dest) => Action::Skip,
                    Some(_) => Action::Link,
                    None if fs::metadata(&dest).is_ok_and(|m| m.len() == desc.size) => Action::Skip,
                    None => Action::Copy,
                };
                BlobPlan {
                    digest: desc.digest.clone(),
                    size: desc.size,
                    action,
                    from: from_name(&blob),
                    mount_from: None,
                }
            })
            .collect())
    }
    fn write(&self, artifact: &Artifact, plan: &mut [BlobPlan]) -> Result<u64, ImageError> {
        let written = if self.fresh()? {
            let tmp = AtomicDir::create(&self.dir).map_err(io_err(self.dir.display()))?;
            // The temporary directory is this process's alone (AtomicDir holds its lock).
            let written = write_into(tmp.path(), &self.tag, artifact, plan, Shared::No)?;
            match tmp.commit() {
                Ok(()) => written,
                // Another teu created the layout first: add to it like to any layout.
                Err(_) if self.dir.join(OCI_LAYOUT_FILE).is_file() => {
                    write_into(&self.dir, &self.tag, artifact, plan, Shared::Yes)?
                }
                Err(e) => return Err(io_err(self.dir.display())(e)),
            }
        } else {
            write_into(&self.dir, &self.tag, artifact, plan, Shared::Yes)?
        };
        if let Some(store) = &self.store {
            crate::gc::record_root(store, &self.dir, &self.name(), artifact)?;
        }
        Ok(written)
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.ino() == y.ino() && x.dev() == y.dev(),
        _ => false,
    }
}

/// Whether other processes may be writing the same layout.
#[derive(PartialEq)]
enum Shared {
    Yes,
    No,
}

fn write_into(
    dir: &Path,
    tag: &str,
    artifact: &Artifact,
    plan: &mut [BlobPlan],
    shared: Shared,
) -> Result<u64, ImageError> {
    let blob_dir = dir.join("blobs/sha256");
    fs::create_dir_all(&blob_dir).map_err(io_err(blob_dir.display()))?;
    let mut written = 0;
    let content = artifact.content_blobs();
    for (p, (desc, blob)) in plan.iter_mut().zip(&content) {
        debug_assert_eq!(p.digest, desc.digest);
        written += put_blob(&blob_dir, desc, blob, p)?;
    }
    // The documents (manifests, nested indexes, the top index) follow their blobs.
    for (desc, blob) in artifact.blobs().iter().skip(content.len()) {
        let dest = blob_dir.join(desc.digest.hex());
        if !fs::metadata(&dest).is_ok_and(|m| m.len() == desc.size) {
            let mut out = AtomicFile::create(&dest).map_err(io_err(dest.display()))?;
            written += copy_verified(blob, desc, &mut out)?;
            out.commit().map_err(io_err(dest.display()))?;
        }
    }
    // Blobs go in without a lock (each is atomic and content-addressed); the
    // read-modify-write of index.json holds the layout's lock, so concurrent writers to
    // one layout keep each other's tags.
    let _lock = match shared {
        Shared::Yes => Some(lock_dir(dir).map_err(io_err(dir.display()))?),
        Shared::No => None,
    };
    if !dir.join(OCI_LAYOUT_FILE).is_file() {
        atomic::write_file(&dir.join(OCI_LAYOUT_FILE), OCI_LAYOUT_CONTENT)
            .map_err(io_err(dir.display()))?;
        written += OCI_LAYOUT_CONTENT.len() as u64;
    }
    let index_path = dir.join("index.json");
    let mut index = match fs::read(&index_path) {
        Ok(b) => Raw::<Index>::parse(b, index_path.display().to_string())?.value,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Index::new(),
        Err(e) => return Err(io_err(index_path.display())(e)),
    };
    let mut desc = artifact.descriptor();
    index.manifests.retain(|d| ref_name(d) != Some(tag));
    desc.annotations
        .insert(ANNOTATION_REF_NAME.to_string(), tag.to_string());
    index.manifests.push(desc);
    let raw = Raw::encode(index);
    // A rebuild that changed nothing leaves index.json alone: no write, no fsync to wait on.
    if fs::read(&index_path).ok().as_deref() != Some(&raw.bytes[..]) {
        atomic::write_file(&index_path, &raw.bytes).map_err(io_err(index_path.display()))?;
        written += raw.bytes.len() as u64;
    }
    Ok(written)
}

/// Carry out one blob's plan; a link that cannot be made (another file system) becomes a
/// verified copy, and the plan says so.
fn put_blob(
    blob_dir: &Path,
    desc: &Descriptor,
    blob: &BlobRef,
    plan: &mut BlobPlan,
) -> Result<u64, ImageError> {
    let dest = blob_dir.join(desc.digest.hex());
    match plan.action {
        Action::Skip => return Ok(0),
        Action::Link => {
            if let Some(n) = link_from_store(blob_dir, desc, blob, &dest) {
                return Ok(n);
            }
            plan.action = Action::Copy;
        }
        _ => {}
    }
    if fs::metadata(&dest).is_ok_and(|m| m.len() == desc.size) {
        plan.action = Action::Skip;
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
    let BlobRef::Source(s) = blob else {
        return None;
    };
    let src = s.linkable_path(&desc.digest)?;
    fs::metadata(&src).ok().filter(|m| m.len() == desc.size)?;
    if same_file(&src, dest) {
        return Some(0);
    }
    let existed = dest.exists();
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
