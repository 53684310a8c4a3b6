//! The filesystem backend: keys are paths under one root directory.
//!
//! Every object is written to a temporary file beside its final path, fsynced and renamed
//! into place (the same discipline as `teu-store`), so a killed server leaves either the
//! old object or the new one. Upload sessions are directories under `uploads/<id>/` with
//! the received bytes in `data`, fsynced before each PATCH is acknowledged, so they
//! survive a restart. Committing a session renames `data` to the blob's path after
//! verifying it: a half-written or unverified blob never has a digest name.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use super::{blob_key, ByteStream, Entry, Storage, StorageError, StorageResult, WriteMode};
use crate::digest::{Digest, Hasher};

/// Chunk size for streaming reads: large enough that a loopback client gets > 1 GB/s.
const READ_CHUNK: usize = 512 * 1024;

pub struct FsStorage {
    root: PathBuf,
    /// One lock per session being appended to, so two PATCHes to one session queue up
    /// instead of interleaving (the offsets make the second one fail cleanly).
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl FsStorage {
    pub fn open(root: impl Into<PathBuf>) -> StorageResult<FsStorage> {
        let root = root.into();
        for d in ["blobs", "repositories", "uploads"] {
            let p = root.join(d);
            std::fs::create_dir_all(&p).map_err(StorageError::io(d))?;
        }
        Ok(FsStorage {
            root,
            locks: Mutex::new(HashMap::new()),
        })
    }

    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    fn session_dir(&self, id: &str) -> PathBuf {
        self.root.join("uploads").join(id)
    }

    fn lock_for(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut m = self.locks.lock().unwrap();
        m.entry(id.to_string()).or_default().clone()
    }

    fn forget_lock(&self, id: &str) {
        self.locks.lock().unwrap().remove(id);
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("blocking task panicked")
}

/// Write `bytes` to `dest` through a fsynced temporary file; with `create_only` the final
/// step is a hard link, which fails atomically when `dest` exists.
fn write_atomic(dest: &Path, bytes: &[u8], create_only: bool) -> std::io::Result<bool> {
    let dir = dest.parent().expect("keys have a parent");
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    let created = if create_only {
        match tmp.persist_noclobber(dest) {
            Ok(_) => true,
            Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => false,
            Err(e) => return Err(e.error),
        }
    } else {
        tmp.persist(dest).map_err(|e| e.error)?;
        true
    };
    teu_store::atomic::sync_dir(dir)?;
    Ok(created)
}

fn entry_of(key: String, m: &std::fs::Metadata) -> Entry {
    Entry {
        key,
        size: m.len(),
        modified: m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<Entry>) -> std::io::Result<()> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for e in rd {
        let e = e?;
        let name = e.file_name();
        if name.to_string_lossy().starts_with(".tmp-") {
            continue; // a write in progress (or left by a crash): not an object
        }
        let p = e.path();
        let m = e.metadata()?;
        if m.is_dir() {
            walk(root, &p, out)?;
        } else {
            let key = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            out.push(entry_of(key, &m));
        }
    }
    Ok(())
}

/// Whether `dir` holds an object at any depth (what [`walk`] would list first).
fn any_file(dir: &Path) -> std::io::Result<bool> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    for e in rd {
        let e = e?;
        if e.file_name().to_string_lossy().starts_with(".tmp-") {
            continue;
        }
        if !e.metadata()?.is_dir() || any_file(&e.path())? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Stream `range` of `f` from a blocking thread that reads one chunk ahead of the socket:
/// reading from the page cache and writing to the socket overlap, each chunk is read
/// straight into the buffer that is sent (tokio's `File` would copy it once more), and
/// memory per client stays at about three chunks whatever the blob size.
fn read_ahead(f: std::fs::File, range: Range<u64>) -> ByteStream {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(1);
    tokio::task::spawn_blocking(move || {
        let mut pos = range.start;
        while pos < range.end {
            let want = READ_CHUNK.min((range.end - pos) as usize);
            let r = match pread(&f, want, pos) {
                Ok(buf) if buf.is_empty() => Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "blob shrank while read",
                )),
                Ok(buf) => {
                    pos += buf.len() as u64;
                    Ok(buf)
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => Err(e),
            };
            let stop = r.is_err();
            // The receiver is gone when the client went away: stop reading.
            if tx.blocking_send(r).is_err() || stop {
                return;
            }
        }
    });
    Box::pin(tokio_stream_from(rx))
}

/// Read up to `len` bytes at `offset` into a fresh buffer without zeroing it first (at
/// gigabytes per second the memset is a measurable share of the cost).
fn pread(f: &std::fs::File, len: usize, offset: u64) -> std::io::Result<Bytes> {
    use std::os::fd::AsRawFd;
    let mut buf = bytes::BytesMut::with_capacity(len);
    let spare = buf.spare_capacity_mut();
    // SAFETY: pread(2) writes at most `len` bytes into the buffer's spare capacity, which
    // holds at least `len`; only the `n` bytes it reports as written are then marked
    // initialised.
    let n = unsafe {
        libc::pread(
            f.as_raw_fd(),
            spare.as_mut_ptr().cast::<libc::c_void>(),
            len,
            offset as libc::off_t,
        )
    };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: see above; n <= len <= capacity.
    unsafe { buf.set_len(n as usize) };
    Ok(buf.freeze())
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

fn hash_file(path: &Path, alg: crate::digest::Algorithm) -> std::io::Result<Digest> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Hasher::new(alg);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finish())
}

#[async_trait]
impl Storage for FsStorage {
    async fn get(&self, key: &str) -> StorageResult<Option<Bytes>> {
        match tokio::fs::read(self.path(key)).await {
            Ok(b) => Ok(Some(b.into())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StorageError::io(key)(e)),
        }
    }

    async fn put(&self, key: &str, bytes: Bytes, mode: WriteMode) -> StorageResult<bool> {
        let dest = self.path(key);
        blocking(move || write_atomic(&dest, &bytes, mode == WriteMode::CreateOnly))
            .await
            .map_err(StorageError::io(key))
    }

    async fn head(&self, key: &str) -> StorageResult<Option<Entry>> {
        match tokio::fs::metadata(self.path(key)).await {
            Ok(m) if m.is_file() => Ok(Some(entry_of(key.to_string(), &m))),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StorageError::io(key)(e)),
        }
    }

    async fn delete(&self, key: &str) -> StorageResult<()> {
        match tokio::fs::remove_file(self.path(key)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StorageError::io(key)(e)),
        }
    }

    async fn list(&self, prefix: &str) -> StorageResult<Vec<Entry>> {
        let root = self.root.clone();
        let dir = self.path(prefix.trim_end_matches('/'));
        blocking(move || {
            let mut out = Vec::new();
            walk(&root, &dir, &mut out).map(|_| out)
        })
        .await
        .map_err(StorageError::io(prefix))
    }

    async fn any_under(&self, prefix: &str) -> StorageResult<bool> {
        let dir = self.path(prefix.trim_end_matches('/'));
        blocking(move || any_file(&dir))
            .await
            .map_err(StorageError::io(prefix))
    }

    async fn read(&self, key: &str, range: Option<Range<u64>>) -> StorageResult<ByteStream> {
        let f = match std::fs::File::open(self.path(key)) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StorageError::NotFound(key.to_string()))
            }
            Err(e) => return Err(StorageError::io(key)(e)),
        };
        let len = f.metadata().map_err(StorageError::io(key))?.len();
        let range = range.unwrap_or(0..len);
        Ok(read_ahead(f, range))
    }

    async fn upload_create(&self, id: &str, info: Bytes) -> StorageResult<()> {
        let dir = self.session_dir(id);
        blocking(move || -> std::io::Result<()> {
            std::fs::create_dir(&dir)?;
            std::fs::File::create(dir.join("data"))?;
            write_atomic(&dir.join("info"), &info, false)?;
            teu_store::atomic::sync_dir(dir.parent().unwrap())
        })
        .await
        .map_err(StorageError::io(id))
    }

    async fn upload_info(&self, id: &str) -> StorageResult<Option<Bytes>> {
        self.get(&format!("uploads/{id}/info")).await
    }

    async fn upload_size(&self, id: &str) -> StorageResult<Option<u64>> {
        Ok(self
            .head(&format!("uploads/{id}/data"))
            .await?
            .map(|e| e.size))
    }

    async fn upload_append(
        &self,
        id: &str,
        offset: u64,
        mut body: ByteStream,
    ) -> StorageResult<u64> {
        let lock = self.lock_for(id);
        let _held = lock.lock().await;
        let key = format!("uploads/{id}/data");
        let path = self.path(&key);
        let mut f = tokio::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => StorageError::NotFound(key.clone()),
                _ => StorageError::io(&key)(e),
            })?;
        let actual = f.metadata().await.map_err(StorageError::io(&key))?.len();
        if actual != offset {
            return Err(StorageError::Offset {
                expected: offset,
                actual,
            });
        }
        f.set_max_buf_size(4 << 20);
        let mut n = actual;
        // Bytes already received stay in the session even if the client goes away
        // mid-body: a GET on the session tells the client where to resume.
        let mut failure = None;
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(chunk) => {
                    f.write_all(&chunk).await.map_err(StorageError::io(&key))?;
                    n += chunk.len() as u64;
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        f.flush().await.map_err(StorageError::io(&key))?;
        f.sync_data().await.map_err(StorageError::io(&key))?;
        match failure {
            Some(e) => Err(StorageError::io(&key)(e)),
            None => Ok(n),
        }
    }

    async fn upload_commit(
        &self,
        id: &str,
        expected: &Digest,
        known: Option<Digest>,
    ) -> StorageResult<u64> {
        let lock = self.lock_for(id);
        let _held = lock.lock().await;
        let data = self.session_dir(id).join("data");
        let dest = self.path(&blob_key(expected));
        let session = self.session_dir(id);
        let expected = expected.clone();
        let key = format!("uploads/{id}");
        let r = blocking(move || -> StorageResult<u64> {
            let size = std::fs::metadata(&data)
                .map_err(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => StorageError::NotFound(key.clone()),
                    _ => StorageError::io(&key)(e),
                })?
                .len();
            let actual = match known {
                Some(d) if d.algorithm() == expected.algorithm() => d,
                _ => hash_file(&data, expected.algorithm()).map_err(StorageError::io(&key))?,
            };
            if actual != expected {
                let _ = std::fs::remove_dir_all(&session);
                return Err(StorageError::DigestMismatch { expected, actual });
            }
            let io = StorageError::io(&key);
            let dir = dest.parent().unwrap();
            (|| -> std::io::Result<()> {
                std::fs::create_dir_all(dir)?;
                std::fs::File::open(&data)?.sync_all()?;
                std::fs::rename(&data, &dest)?;
                teu_store::atomic::sync_dir(dir)?;
                std::fs::remove_dir_all(&session)
            })()
            .map_err(io)?;
            Ok(size)
        })
        .await;
        self.forget_lock(id);
        r
    }

    async fn upload_delete(&self, id: &str) -> StorageResult<()> {
        let dir = self.session_dir(id);
        self.forget_lock(id);
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StorageError::io(id)(e)),
        }
    }

    async fn upload_list(&self) -> StorageResult<Vec<(String, SystemTime)>> {
        let dir = self.root.join("uploads");
        blocking(move || -> std::io::Result<Vec<(String, SystemTime)>> {
            let mut out = Vec::new();
            for e in std::fs::read_dir(&dir)? {
                let e = e?;
                let m = e.metadata()?;
                let t = std::fs::metadata(e.path().join("info"))
                    .and_then(|m| m.modified())
                    .or_else(|_| m.modified())
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                out.push((e.file_name().to_string_lossy().into_owned(), t));
            }
            Ok(out)
        })
        .await
        .map_err(StorageError::io("uploads"))
    }
}
