//! The store's error type.

use std::io;
use std::path::PathBuf;

use teu_oci::Digest;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("blob digest mismatch: expected {expected}, got {actual} ({size} bytes); the blob was discarded")]
    DigestMismatch {
        expected: Digest,
        actual: Digest,
        size: u64,
    },
    #[error("blob {digest}: expected {expected} bytes, got {actual}; the blob was discarded")]
    SizeMismatch {
        digest: Digest,
        expected: u64,
        actual: u64,
    },
}
