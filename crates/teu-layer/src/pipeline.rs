//! One streaming pass from entries to a stored blob.
//!
//! The calling thread writes the tar stream (headers, file data, padding) and hashes it for
//! the diff_id as it goes. The stream is cut into segments ([`crate::SegmentPolicy`]);
//! worker threads compress segments in parallel; one writer thread takes the compressed
//! segments back in order, hashes them for the digest and writes them to a temporary file
//! in the store, which is fsynced and renamed when the layer is complete. At most a fixed
//! number of segments is in flight, so memory stays bounded whatever the layer size.

use std::io::{self, Read, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

use teu_oci::{Digest, Sha256Writer};
use teu_store::{Store, StoreError};

use crate::compress::{Compression, SegmentPolicy};
use crate::entry::{Entry, Kind};
use crate::path;
use crate::tar_writer::{self, BLOCK};

#[derive(Clone, Debug)]
pub struct LayerOptions {
    pub compression: Compression,
    /// Compression threads; the output does not depend on it.
    pub jobs: usize,
}

/// What a built layer is, once it sits in the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuiltLayer {
    pub digest: Digest,
    pub size: u64,
    pub diff_id: Digest,
    pub uncompressed_size: u64,
    pub media_type: &'static str,
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("{origin}: cannot read {source_path} for {path}: {source}")]
    Read {
        origin: String,
        path: String,
        source_path: String,
        #[source]
        source: io::Error,
    },
    #[error("{origin}: {source_path} changed while the layer was built ({expected} bytes when listed, {actual} when read); build again")]
    Changed {
        origin: String,
        source_path: String,
        expected: u64,
        actual: u64,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("writing the layer: {0}")]
    Write(#[source] io::Error),
}

/// Memory for segments in flight, whatever the thread count.
const IN_FLIGHT_BYTES: usize = 64 * 1024 * 1024;
const READ_CHUNK: usize = 64 * 1024;

/// Build a layer from `entries` (in path order, as [`crate::LayerTree::finish`] returns
/// them) into `store`.
pub fn build_layer(
    entries: &[Entry],
    opts: &LayerOptions,
    store: &Store,
) -> Result<BuiltLayer, PipelineError> {
    let policy = opts.compression.segment_policy();
    run(opts, store, |sink| write_tar(entries, sink, policy))
}

/// Build a layer whose tar stream is `tar`, byte for byte (a tarball imported with
/// `normalize = false`). Segments are cut at fixed offsets of the stream.
pub fn build_layer_from_tar(
    tar: &mut dyn Read,
    origin: &str,
    opts: &LayerOptions,
    store: &Store,
) -> Result<BuiltLayer, PipelineError> {
    let policy = opts.compression.segment_policy();
    run(opts, store, |sink| {
        let mut out = Hashing {
            hash: Sha256Writer::new(()),
            sink,
        };
        let mut chunk = vec![0u8; READ_CHUNK];
        loop {
            // Whole chunks, so cut points depend only on the stream, not on read sizes.
            let n = read_full(tar, &mut chunk).map_err(|source| PipelineError::Read {
                origin: origin.to_string(),
                path: "/".to_string(),
                source_path: "the tarball".to_string(),
                source,
            })?;
            if n == 0 {
                break;
            }
            out.write(&chunk[..n])?;
            if policy.is_some_and(|p| out.hash.len() % p.big_file == 0) {
                out.sink.cut()?;
            }
        }
        let (diff_id, len, ()) = out.hash.finish();
        Ok((diff_id, len))
    })
}

/// Run a producer of tar bytes through segmenting, compression and the store.
fn run(
    opts: &LayerOptions,
    store: &Store,
    produce: impl FnOnce(&mut dyn TarSink) -> Result<(Digest, u64), PipelineError>,
) -> Result<BuiltLayer, PipelineError> {
    let media_type = opts.compression.media_type();
    let Some(policy) = opts.compression.segment_policy() else {
        let mut sink = Direct {
            out: store.writer()?,
        };
        let (diff_id, uncompressed_size) = produce(&mut sink)?;
        let (digest, size) = sink.out.commit(None)?;
        return Ok(BuiltLayer {
            digest,
            size,
            diff_id,
            uncompressed_size,
            media_type,
        });
    };

    let jobs = opts.jobs.max(1);
    let in_flight = (IN_FLIGHT_BYTES / policy.max).clamp(1, jobs + 1);
    let compression = opts.compression;
    std::thread::scope(|scope| {
        type Job = (Vec<u8>, SyncSender<Vec<u8>>);
        let (job_tx, job_rx) = sync_channel::<Job>(in_flight);
        let job_rx = Arc::new(Mutex::new(job_rx));
        for _ in 0..jobs {
            let job_rx = Arc::clone(&job_rx);
            scope.spawn(move || loop {
                let job = job_rx.lock().expect("job queue").recv();
                let Ok((data, done)) = job else { break };
                let _ = done.send(compression.compress_segment(&data));
            });
        }
        let (order_tx, order_rx) = sync_channel::<Receiver<Vec<u8>>>(in_flight);
        // The writer hands back the uncommitted blob: only a complete tar stream is committed.
        let writer = scope.spawn(move || -> Result<teu_store::BlobWriter, PipelineError> {
            let mut out = store.writer()?;
            for result in order_rx {
                let compressed = result.recv().expect("a worker answers every job");
                out.write_all(&compressed).map_err(PipelineError::Write)?;
            }
            Ok(out)
        });

        let mut sink = Segmenter {
            buf: Vec::with_capacity(policy.max + READ_CHUNK),
            policy,
            job_tx,
            order_tx,
        };
        let produced = produce(&mut sink);
        let flushed = sink.cut();
        // Closing the queues lets the workers and the writer finish.
        drop(sink);
        // A writer error (disk full) is the cause of any "writer stopped" the producer saw.
        let out = writer.join().expect("writer thread")?;
        let (diff_id, uncompressed_size) = produced?;
        flushed?;
        let (digest, size) = out.commit(None)?;
        Ok(BuiltLayer {
            digest,
            size,
            diff_id,
            uncompressed_size,
            media_type,
        })
    })
}

/// Where the tar stream goes.
trait TarSink {
    fn write(&mut self, bytes: &[u8]) -> Result<(), PipelineError>;
    /// A possible cut point: nothing of the current entry remains to be written.
    fn entry_done(&mut self, path: &[u8]) -> Result<(), PipelineError>;
    /// Cut now if anything is buffered.
    fn cut(&mut self) -> Result<(), PipelineError>;
}

struct Direct {
    out: teu_store::BlobWriter,
}

impl TarSink for Direct {
    fn write(&mut self, bytes: &[u8]) -> Result<(), PipelineError> {
        self.out.write_all(bytes).map_err(PipelineError::Write)
    }
    fn entry_done(&mut self, _: &[u8]) -> Result<(), PipelineError> {
        Ok(())
    }
    fn cut(&mut self) -> Result<(), PipelineError> {
        Ok(())
    }
}

struct Segmenter {
    buf: Vec<u8>,
    policy: SegmentPolicy,
    job_tx: SyncSender<(Vec<u8>, SyncSender<Vec<u8>>)>,
    order_tx: SyncSender<Receiver<Vec<u8>>>,
}

impl TarSink for Segmenter {
    fn write(&mut self, bytes: &[u8]) -> Result<(), PipelineError> {
        self.buf.extend_from_slice(bytes);
        Ok(())
    }
    fn entry_done(&mut self, path: &[u8]) -> Result<(), PipelineError> {
        if self.policy.cut_after(self.buf.len(), path) {
            self.cut()?;
        }
        Ok(())
    }
    fn cut(&mut self) -> Result<(), PipelineError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let data = std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(self.policy.max + READ_CHUNK),
        );
        let (done_tx, done_rx) = sync_channel(1);
        // A closed queue means the writer failed; its error is reported by the caller.
        let gone = || PipelineError::Write(io::Error::other("layer writer stopped"));
        self.order_tx.send(done_rx).map_err(|_| gone())?;
        self.job_tx.send((data, done_tx)).map_err(|_| gone())?;
        Ok(())
    }
}

/// Write the tar stream of `entries` to `sink`; return the diff_id and the tar's size.
fn write_tar(
    entries: &[Entry],
    sink: &mut dyn TarSink,
    policy: Option<SegmentPolicy>,
) -> Result<(Digest, u64), PipelineError> {
    let mut tar = Hashing {
        hash: Sha256Writer::new(()),
        sink,
    };
    let mut chunk = vec![0u8; READ_CHUNK];
    for entry in entries {
        let big = match (&entry.kind, policy) {
            (Kind::File(c), Some(p)) => c.size() >= p.big_file,
            _ => false,
        };
        if big {
            tar.sink.cut()?;
        }
        tar.write(&tar_writer::encode_header(entry))?;
        if let Kind::File(content) = &entry.kind {
            let read_err = |source| PipelineError::Read {
                origin: entry.origin.to_string(),
                path: path::display(&entry.path),
                source_path: content.describe(),
                source,
            };
            let mut reader = content.open().map_err(read_err)?;
            let expected = content.size();
            let mut done = 0u64;
            loop {
                let n = reader.read(&mut chunk).map_err(read_err)?;
                if n == 0 {
                    break;
                }
                if done + n as u64 > expected {
                    return Err(PipelineError::Changed {
                        origin: entry.origin.to_string(),
                        source_path: content.describe(),
                        expected,
                        actual: done + n as u64,
                    });
                }
                // Cut a big file's data at fixed offsets from its own start.
                let mut piece = &chunk[..n];
                while let Some(p) = policy.filter(|_| big) {
                    let to_boundary = p.big_file - done % p.big_file;
                    if (piece.len() as u64) < to_boundary {
                        break;
                    }
                    let (head, rest) = piece.split_at(to_boundary as usize);
                    tar.write(head)?;
                    done += head.len() as u64;
                    tar.sink.cut()?;
                    piece = rest;
                }
                tar.write(piece)?;
                done += piece.len() as u64;
            }
            if done != expected {
                return Err(PipelineError::Changed {
                    origin: entry.origin.to_string(),
                    source_path: content.describe(),
                    expected,
                    actual: done,
                });
            }
            tar.write(&[0u8; BLOCK][..tar_writer::padding(expected)])?;
        }
        tar.sink.entry_done(&entry.path)?;
    }
    tar.write(&tar_writer::trailer())?;
    let (diff_id, len, ()) = tar.hash.finish();
    Ok((diff_id, len))
}

fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

struct Hashing<'a> {
    hash: Sha256Writer<()>,
    sink: &'a mut dyn TarSink,
}

impl Hashing<'_> {
    fn write(&mut self, bytes: &[u8]) -> Result<(), PipelineError> {
        self.hash.update(bytes);
        self.sink.write(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{Content, Defaults, LayerTree, Meta, Priority};

    fn tree(n: usize, big: usize) -> Vec<Entry> {
        let mut t = LayerTree::new();
        for i in 0..n {
            let body: Vec<u8> = format!("file {i} ").repeat(i * 37 % 5000).into_bytes();
            t.insert(Entry {
                path: format!("dir{}/file{i:05}", i % 7).into_bytes(),
                kind: Kind::File(Content::Bytes(Arc::from(body))),
                meta: Meta {
                    mode: 0o644,
                    uid: 0,
                    gid: 0,
                    mtime: 0,
                },
                priority: Priority::Explicit,
                origin: Arc::from("test"),
                inode: None,
            })
            .unwrap();
        }
        let big_body: Vec<u8> = (0..big).map(|i| (i * 7 % 251) as u8).collect();
        t.insert(Entry {
            path: b"big".to_vec(),
            kind: Kind::File(Content::Bytes(Arc::from(big_body))),
            meta: Meta {
                mode: 0o644,
                uid: 0,
                gid: 0,
                mtime: 0,
            },
            priority: Priority::Explicit,
            origin: Arc::from("test"),
            inode: None,
        })
        .unwrap();
        t.finish(&Defaults { mtime: 0 }).unwrap()
    }

    #[test]
    fn output_does_not_depend_on_thread_count() {
        let entries = tree(600, 5 * 1024 * 1024 + 123);
        for compression in [
            Compression::default(),
            "zstd".parse().unwrap(),
            Compression::None,
        ] {
            let mut seen = Vec::new();
            for jobs in [1, 2, 16] {
                let dir = tempfile::tempdir().unwrap();
                let store = Store::open(dir.path()).unwrap();
                let built =
                    build_layer(&entries, &LayerOptions { compression, jobs }, &store).unwrap();
                assert!(store.has(&built.digest));
                seen.push(built);
            }
            assert_eq!(seen[0], seen[1], "{compression}");
            assert_eq!(seen[0], seen[2], "{compression}");
        }
    }

    #[test]
    fn diff_id_is_the_hash_of_the_decompressed_blob() {
        let entries = tree(300, 3 * 1024 * 1024);
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let opts = LayerOptions {
            compression: Compression::default(),
            jobs: 2,
        };
        let built = build_layer(&entries, &opts, &store).unwrap();
        let mut tar = Vec::new();
        flate2::read::MultiGzDecoder::new(store.open_blob(&built.digest).unwrap())
            .read_to_end(&mut tar)
            .unwrap();
        assert_eq!(Digest::of(&tar), built.diff_id);
        assert_eq!(tar.len() as u64, built.uncompressed_size);
        let none = build_layer(
            &entries,
            &LayerOptions {
                compression: Compression::None,
                jobs: 1,
            },
            &store,
        )
        .unwrap();
        assert_eq!(none.digest, built.diff_id);
    }

    #[test]
    fn a_file_that_changed_size_is_an_error_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("f");
        std::fs::write(&src, b"12345").unwrap();
        let entries = vec![Entry {
            path: b"f".to_vec(),
            kind: Kind::File(Content::Path { path: src, size: 3 }),
            meta: Meta {
                mode: 0o644,
                uid: 0,
                gid: 0,
                mtime: 0,
            },
            priority: Priority::Explicit,
            origin: Arc::from("test"),
            inode: None,
        }];
        let store = Store::open(dir.path().join("store")).unwrap();
        let err = build_layer(
            &entries,
            &LayerOptions {
                compression: Compression::default(),
                jobs: 2,
            },
            &store,
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("changed while the layer was built"),
            "{err}"
        );
        assert_eq!(
            std::fs::read_dir(dir.path().join("store/blobs/sha256"))
                .unwrap()
                .count(),
            0
        );
        assert_eq!(
            std::fs::read_dir(dir.path().join("store/tmp"))
                .unwrap()
                .count(),
            0
        );
    }
}
