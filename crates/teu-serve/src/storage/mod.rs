//! The one storage trait the registry runs on, and its two backends.
//!
//! The registry's whole state is objects under string keys (see `registry.rs` for the
//! layout) plus upload sessions. Every fact is its own object (one per tag, per manifest
//! link, per referrer), so nothing is ever read, modified and written back: two servers on
//! one bucket need no lock and no server-local state to agree.

pub mod fs;
pub mod s3;

use std::ops::Range;
use std::pin::Pin;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::Stream;

use crate::digest::Digest;

/// A body streamed from or to storage, in chunks, never whole in memory.
pub type ByteStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage I/O on {key}: {source}")]
    Io {
        key: String,
        #[source]
        source: std::io::Error,
    },
    #[error("object store on {key}: {source}")]
    Object {
        key: String,
        #[source]
        source: object_store::Error,
    },
    #[error("{0}")]
    Config(String),
    /// The client sent data at `expected` bytes into the session, which holds `actual`.
    #[error("upload offset {expected} does not match the session's {actual} bytes")]
    Offset { expected: u64, actual: u64 },
    #[error("upload content has digest {actual}, not {expected}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("{0} not found")]
    NotFound(String),
}

impl StorageError {
    pub fn io(key: &str) -> impl FnOnce(std::io::Error) -> StorageError + '_ {
        move |source| StorageError::Io {
            key: key.to_string(),
            source,
        }
    }
}

pub type StorageResult<T> = Result<T, StorageError>;

/// An object's key (relative to the store's root), size and last modification.
#[derive(Clone, Debug)]
pub struct Entry {
    pub key: String,
    pub size: u64,
    pub modified: SystemTime,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteMode {
    Overwrite,
    /// Write only if the key does not exist (a conditional create on object storage).
    CreateOnly,
}

/// Where a blob's bytes live: `blobs/<alg>/<hex>`.
pub fn blob_key(d: &Digest) -> String {
    format!("blobs/{}/{}", d.algorithm().name(), d.hex())
}

#[async_trait]
pub trait Storage: Send + Sync + 'static {
    /// A small object whole (manifests, links, tags).
    async fn get(&self, key: &str) -> StorageResult<Option<Bytes>>;
    /// Write a small object atomically. `CreateOnly` returns `Ok(false)` if it existed.
    async fn put(&self, key: &str, bytes: Bytes, mode: WriteMode) -> StorageResult<bool>;
    async fn head(&self, key: &str) -> StorageResult<Option<Entry>>;
    /// Remove an object; a missing one is not an error.
    async fn delete(&self, key: &str) -> StorageResult<()>;
    /// Every object under `prefix` (which ends with `/`), at any depth, in any order.
    async fn list(&self, prefix: &str) -> StorageResult<Vec<Entry>>;
    /// Whether any object is under `prefix`: stops at the first, where [`Storage::list`]
    /// would read a whole repository.
    async fn any_under(&self, prefix: &str) -> StorageResult<bool>;
    /// Stream an object or a byte range of it (`NotFound` if it is missing).
    async fn read(&self, key: &str, range: Option<Range<u64>>) -> StorageResult<ByteStream>;

    /// Start an upload session with a small description (which repository, when).
    async fn upload_create(&self, id: &str, info: Bytes) -> StorageResult<()>;
    async fn upload_info(&self, id: &str) -> StorageResult<Option<Bytes>>;
    /// Bytes received so far (`None`: no such session).
    async fn upload_size(&self, id: &str) -> StorageResult<Option<u64>>;
    /// Append `body` at `offset`, which must be the session's size (`Offset` otherwise).
    /// Returns the new size. Data acknowledged here survives a restart.
    async fn upload_append(&self, id: &str, offset: u64, body: ByteStream) -> StorageResult<u64>;
    /// Verify the session's bytes against `expected` and make them the blob
    /// `blob_key(expected)`; the blob is never visible before it is verified. `known` is
    /// the digest already computed while the bytes streamed in, if the caller has it.
    /// Removes the session on success and on a digest mismatch.
    async fn upload_commit(
        &self,
        id: &str,
        expected: &Digest,
        known: Option<Digest>,
    ) -> StorageResult<u64>;
    async fn upload_delete(&self, id: &str) -> StorageResult<()>;
    /// Every session id with its start time (for gc of abandoned uploads).
    async fn upload_list(&self) -> StorageResult<Vec<(String, SystemTime)>>;
}

/// Hash a stream to the end.
pub async fn hash_stream(
    mut s: ByteStream,
    alg: crate::digest::Algorithm,
) -> std::io::Result<(Digest, u64)> {
    use futures_util::StreamExt;
    let mut h = crate::digest::Hasher::new(alg);
    let mut n = 0u64;
    while let Some(chunk) = s.next().await {
        let chunk = chunk?;
        n += chunk.len() as u64;
        h.update(&chunk);
    }
    Ok((h.finish(), n))
}
