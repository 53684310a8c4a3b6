//! The content-addressed store under `$TEU_HOME` (default: the platform cache directory,
//! `~/.cache/teu` on Linux).
//!
//! Layout: `blobs/sha256/<hex>` for blobs and `tmp/` for blobs being written. Every write
//! goes to a temporary file in `tmp/`, is hashed while it is written, fsynced, checked
//! against the digest the caller expects (if any) and only then renamed into place, so a
//! crash or an error never leaves a half-written blob under a digest name. A reader of
//! `blobs/` can therefore trust that a present blob is complete.
//!
//! [`atomic`] holds the same discipline for files that are not blobs (outputs, index
//! files), because every sink needs it. [`lock`] is what makes several teu processes
//! safe on one store and one output: `flock` around a shared read-modify-write,
//! temporaries locked by their writer for life (so a killed writer's are removed by the
//! next teu, and a live one's never), and opening only regular files (never blocking on
//! a fifo).

pub mod atomic;
mod error;
pub mod lock;

pub use error::StoreError;

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use teu_oci::{Digest, Sha256Writer};

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Partial blobs in `tmp/`: each is locked by its writer while it lives.
const BLOB_TMP_PREFIX: &str = "blob-";

/// A content-addressed blob store rooted at one directory.
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// `$TEU_HOME`, else the platform cache directory's `teu`, else `./.teu`.
    pub fn default_root() -> PathBuf {
        if let Some(home) = std::env::var_os("TEU_HOME").filter(|h| !h.is_empty()) {
            return PathBuf::from(home);
        }
        dirs::cache_dir()
            .map(|d| d.join("teu"))
            .unwrap_or_else(|| PathBuf::from(".teu"))
    }

    /// Open (creating if needed) the store at `root`.
    /// Partial blobs that no live process owns (a killed build's) are removed.
    pub fn open(root: impl Into<PathBuf>) -> Result<Store, StoreError> {
        let root = root.into();
        for dir in [root.join("blobs/sha256"), root.join("tmp")] {
            fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        }
        let store = Store { root };
        let tmp = store.tmp_dir();
        lock::remove_unowned(&tmp, BLOB_TMP_PREFIX).map_err(io_err(&tmp))?;
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where partial files live until they are complete (on the store's file system, so
    /// the final rename is atomic).
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    pub fn has(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    pub fn open_blob(&self, digest: &Digest) -> Result<File, StoreError> {
        let path = self.blob_path(digest);
        File::open(&path).map_err(io_err(&path))
    }

    /// A writer for a new blob. Nothing is visible under `blobs/` until [`BlobWriter::commit`].
    pub fn writer(&self) -> Result<BlobWriter, StoreError> {
        Ok(BlobWriter {
            store: self.clone(),
            out: Sha256Writer::new(io::BufWriter::with_capacity(256 * 1024, self.temp_file()?)),
        })
    }

    /// A temporary file for a blob whose writer hashes it itself (a layer pipeline that
    /// resumes a saved hash state); deleted if dropped, see [`Store::commit_temp`].
    pub fn temp_file(&self) -> Result<tempfile::NamedTempFile, StoreError> {
        let dir = self.tmp_dir();
        lock::locked_temp_file(&dir, BLOB_TMP_PREFIX).map_err(io_err(&dir))
    }

    /// Make `tmp` the blob `digest`, which the caller computed over exactly its bytes:
    /// fsync, rename into place (replacing a blob already there, see
    /// [`BlobWriter::commit`]), fsync the directory.
    pub fn commit_temp(
        &self,
        tmp: tempfile::NamedTempFile,
        digest: &Digest,
    ) -> Result<(), StoreError> {
        let dest = self.blob_path(digest);
        tmp.as_file().sync_all().map_err(io_err(tmp.path()))?;
        tmp.persist(&dest).map_err(|e| io_err(&dest)(e.error))?;
        let dir = self.root.join("blobs/sha256");
        atomic::sync_dir(&dir).map_err(io_err(&dir))
    }

    /// Store `bytes` and return their digest.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<Digest, StoreError> {
        let digest = Digest::of(bytes);
        if self.has(&digest) {
            return Ok(digest);
        }
        let mut w = self.writer()?;
        w.write_all(bytes).map_err(io_err(&self.root))?;
        w.commit(Some(&digest)).map(|(d, _)| d)
    }

    /// Copy a blob from `reader` into the store, checking it against `digest` and `size`.
    pub fn put_verified(
        &self,
        reader: &mut dyn Read,
        digest: &Digest,
        size: Option<u64>,
    ) -> Result<(), StoreError> {
        if self.has(digest) {
            return Ok(());
        }
        let mut w = self.writer()?;
        io::copy(reader, &mut w).map_err(io_err(&self.root))?;
        if let Some(expected) = size {
            if w.len() != expected {
                return Err(StoreError::SizeMismatch {
                    digest: digest.clone(),
                    expected,
                    actual: w.len(),
                });
            }
        }
        w.commit(Some(digest)).map(|_| ())
    }
}

/// A blob being written: hashed as it goes, renamed into the store on commit, deleted if
/// dropped uncommitted.
pub struct BlobWriter {
    store: Store,
    out: Sha256Writer<io::BufWriter<tempfile::NamedTempFile>>,
}

impl BlobWriter {
    pub fn len(&self) -> u64 {
        self.out.len()
    }

    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    /// Fsync, verify against `expected` (when given) and rename into place, replacing a
    /// blob of the same digest that is already there.
    pub fn commit(self, expected: Option<&Digest>) -> Result<(Digest, u64), StoreError> {
        let root = self.store.root.clone();
        let (digest, size, buf) = self.out.finish();
        let tmp = buf
            .into_inner()
            .map_err(|e| io_err(&root)(e.into_error()))?;
        if let Some(expected) = expected {
            if *expected != digest {
                return Err(StoreError::DigestMismatch {
                    expected: expected.clone(),
                    actual: digest,
                    size,
                });
            }
        }
        // A blob already there is replaced, not trusted: the new file has fresh times (so a
        // concurrent `teu cache gc` sees it as in use), and a stored copy damaged in place
        // (outputs may hard-link store blobs) is repaired by any build that writes it.
        self.store.commit_temp(tmp, &digest)?;
        Ok((digest, size))
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let d = store.put_bytes(b"hello").unwrap();
        assert_eq!(d, Digest::of(b"hello"));
        let mut s = String::new();
        store.open_blob(&d).unwrap().read_to_string(&mut s).unwrap();
        assert_eq!(s, "hello");
    }

    #[test]
    fn a_mismatched_blob_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let wrong = Digest::of(b"something else");
        let err = store
            .put_verified(&mut &b"hello"[..], &wrong, None)
            .unwrap_err();
        assert!(matches!(err, StoreError::DigestMismatch { .. }), "{err}");
        assert!(!store.has(&wrong));
        assert!(!store.has(&Digest::of(b"hello")));
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn a_dropped_writer_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut w = store.writer().unwrap();
        w.write_all(b"partial").unwrap();
        drop(w);
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
        assert_eq!(
            fs::read_dir(dir.path().join("blobs/sha256"))
                .unwrap()
                .count(),
            0
        );
    }
}
