//! Blob sources: anything that can open a blob by digest.

use std::fmt::Debug;
use std::io::Read;
use std::path::PathBuf;

use teu_oci::Digest;
use teu_store::Store;

use crate::error::ImageError;

/// Where blobs can be read. Readers return the blob's bytes as stored; callers that copy
/// a blob verify it against its digest on the way.
pub trait BlobSource: Send + Sync + Debug {
    fn open(&self, digest: &Digest) -> Result<Box<dyn Read + Send>, ImageError>;
    /// Open a manifest or index by digest. Registries serve those from another endpoint
    /// than blobs; everywhere else they are blobs like any other.
    fn open_manifest(&self, digest: &Digest) -> Result<Box<dyn Read + Send>, ImageError> {
        self.open(digest)
    }
    /// The local file holding the blob, when there is one (lets sinks hard-link or copy).
    fn local_path(&self, _digest: &Digest) -> Option<PathBuf> {
        None
    }
    /// For messages: `teu store`, `oci:base`.
    fn name(&self) -> String;
    /// The registry and repository holding the blob, when the source is one: a push to
    /// the same registry mounts it instead of moving bytes.
    fn registry_repository(&self) -> Option<(&str, &str)> {
        None
    }
    /// A local file holding the blob that was verified against its digest when it was
    /// written and is never modified, so a local sink may hard-link it instead of copying
    /// and re-hashing it (teu's store; never a user's directory).
    fn linkable_path(&self, _digest: &Digest) -> Option<PathBuf> {
        None
    }
}

/// teu's content-addressed store.
#[derive(Debug, Clone)]
pub struct StoreSource(pub Store);

impl BlobSource for StoreSource {
    fn open(&self, digest: &Digest) -> Result<Box<dyn Read + Send>, ImageError> {
        Ok(Box::new(self.0.open_blob(digest)?))
    }
    fn local_path(&self, digest: &Digest) -> Option<PathBuf> {
        Some(self.0.blob_path(digest))
    }
    fn name(&self) -> String {
        format!("teu store {}", self.0.root().display())
    }
    fn linkable_path(&self, digest: &Digest) -> Option<PathBuf> {
        Some(self.0.blob_path(digest))
    }
}

/// Stream a blob into `out`, failing if its bytes do not match `desc`: every sink copies
/// through here, so a corrupt source blob never reaches an output.
pub(crate) fn copy_verified(
    blob: &crate::image::BlobRef,
    desc: &teu_oci::Descriptor,
    out: &mut dyn std::io::Write,
) -> Result<u64, ImageError> {
    let name = || crate::transport::from_name(blob);
    let what = || format!("{} from {}", desc.digest, name());
    let mut reader = blob.open(&desc.digest)?;
    let mut w = teu_oci::Sha256Writer::new(out);
    std::io::copy(&mut reader.by_ref().take(desc.size), &mut w)
        .map_err(crate::error::io_err(what()))?;
    let extra = reader
        .read(&mut [0u8; 1])
        .map_err(crate::error::io_err(what()))?;
    let (actual, n, _) = w.finish();
    if actual != desc.digest || n != desc.size || extra != 0 {
        return Err(ImageError::Corrupt {
            digest: desc.digest.clone(),
            actual,
            size: n + extra as u64,
            expected_size: desc.size,
            source_name: name(),
        });
    }
    Ok(n)
}
