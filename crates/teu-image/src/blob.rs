//! Blob sources: anything that can open a blob by digest.

use std::fmt::Debug;
use std::fs::File;
use std::io::Read;
use std::path::PathBuf;

use teu_oci::Digest;
use teu_store::Store;

use crate::{io_err, ImageError};

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
}

/// The `blobs/` directory of an OCI layout.
#[derive(Debug, Clone)]
pub struct LayoutSource {
    pub dir: PathBuf,
}

impl LayoutSource {
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.dir
            .join("blobs")
            .join(digest.algorithm())
            .join(digest.hex())
    }
}

impl BlobSource for LayoutSource {
    fn open(&self, digest: &Digest) -> Result<Box<dyn Read + Send>, ImageError> {
        let p = self.path(digest);
        Ok(Box::new(File::open(&p).map_err(io_err(p.display()))?))
    }
    fn local_path(&self, digest: &Digest) -> Option<PathBuf> {
        Some(self.path(digest))
    }
    fn name(&self) -> String {
        format!("oci:{}", self.dir.display())
    }
}
