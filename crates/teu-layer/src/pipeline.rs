//! One streaming pass from entries to a stored blob.
//!
//! The segments are planned first, from the entries alone ([`crate::plan`]). The calling
//! thread then writes the tar stream (headers, file data, padding), hashes it for the
//! diff_id as it goes and hands each planned segment to worker threads that compress
//! segments in parallel; one writer thread takes the compressed segments back in order,
//! hashes them for the digest and writes them to a temporary file in the store, which is
//! fsynced and renamed when the layer is complete. At most a fixed number of segments is
//! in flight, so memory stays bounded whatever the layer size. eStargz layers hand a
//! worker several small segments (members) per job; each is still compressed alone.
//! Their TOC, which names every member's offset, is appended once the last one is
//! written ([`crate::estargz`]).
//!
//! A build may resume an earlier one ([`Resume`]): the segments before the first one that
//! changed are copied from the earlier blob (in the kernel, `copy_file_range`), and both
//! hashes continue from the states saved after them ([`crate::sha`]), so unchanged files
//! before the change are neither read nor hashed.

use std::fs::File;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

use teu_oci::Digest;
use teu_store::{Store, StoreError};

use crate::cache::segments::SegmentCache;
use crate::compress::Compression;
use crate::entry::{Entry, Kind};
use crate::path;
use crate::plan::{self, Pos, Seg};
use crate::sha::Sha256State;
use crate::tar_writer::{self, BLOCK};
use teu_progress::{Outcome, Reporter, Task, TaskKind};

#[derive(Clone, Debug, Default)]
pub struct LayerOptions {
    pub compression: Compression,
    /// Compression threads; the output does not depend on it.
    pub jobs: usize,
    /// Where the build reports how far it is (a task per layer, in tar bytes), and the
    /// layer's name there. Nothing that is hashed depends on either.
    pub progress: Reporter,
    pub name: String,
}

/// Tar bytes between two progress reports within a segment (cuts report too).
const REPORT_EVERY: u64 = 1 << 20;

/// What a built layer is, once it sits in the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuiltLayer {
    pub digest: Digest,
    pub size: u64,
    pub diff_id: Digest,
    pub uncompressed_size: u64,
    pub media_type: &'static str,
    /// An eStargz layer's TOC digest.
    pub toc_digest: Option<Digest>,
}

impl BuiltLayer {
    /// The annotations the layer's descriptor carries: an eStargz layer's TOC digest and
    /// uncompressed size, which lazy snapshotters read before fetching anything.
    pub fn annotations(&self) -> std::collections::BTreeMap<String, String> {
        let mut a = std::collections::BTreeMap::new();
        if let Some(toc) = &self.toc_digest {
            a.insert(
                crate::estargz::TOC_DIGEST_ANNOTATION.to_string(),
                toc.to_string(),
            );
            a.insert(
                crate::estargz::UNCOMPRESSED_SIZE_ANNOTATION.to_string(),
                self.uncompressed_size.to_string(),
            );
        }
        a
    }
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
    #[error("eStargz: {0}")]
    Estargz(#[from] crate::estargz::EstargzError),
    #[error("{origin}: a verbatim tarball (normalize = false) cannot be an eStargz layer, whose tar stream teu lays out itself; use normalize = true or another compression")]
    VerbatimEstargz { origin: String },
}

/// Memory for uncompressed segments in flight, whatever the thread count: the segment
/// being filled, those queued and those being compressed all come from one pool of
/// buffers of this total size (at least two, at most one per worker plus one), and
/// buffers are recycled rather than freed, so the allocator never grows the heap with
/// them. Compressed results waiting for the writer are bounded by the same count.
const IN_FLIGHT_BYTES: usize = 32 * 1024 * 1024;
const READ_CHUNK: usize = 64 * 1024;

/// Bytes of file content read by this process to build or key layers (tests and
/// benchmarks check that a rebuild reads only what changed).
static CONTENT_READ: AtomicU64 = AtomicU64::new(0);

pub fn content_bytes_read() -> u64 {
    CONTENT_READ.load(Ordering::Relaxed)
}

pub(crate) fn count_read(n: usize) {
    CONTENT_READ.fetch_add(n as u64, Ordering::Relaxed);
}

/// Segments this process compressed (rather than copied from an earlier blob or the
/// segment cache): what a one-file rebuild should keep to one or two.
static COMPRESSED: AtomicU64 = AtomicU64::new(0);

pub fn segments_compressed() -> u64 {
    COMPRESSED.load(Ordering::Relaxed)
}

/// Build a layer from `entries` (in path order, as [`crate::LayerTree::finish`] returns
/// them) into `store`.
pub fn build_layer(
    entries: &[Entry],
    opts: &LayerOptions,
    store: &Store,
) -> Result<BuiltLayer, PipelineError> {
    let headers: Vec<Vec<u8>> = entries.iter().map(tar_writer::encode_header).collect();
    let segs = plan::plan_for(entries, &headers, &opts.compression);
    let mut task = opts.start_task(&segs);
    let planned = Planned {
        entries,
        headers: &headers,
        segs: &segs,
    };
    let (layer, _) = build_planned(&planned, opts, store, None, None, &mut task)?;
    task.finish(Outcome::Done, "");
    Ok(layer)
}

impl LayerOptions {
    /// The progress task of a layer planned as `segs`.
    pub(crate) fn start_task(&self, segs: &[Seg]) -> Task {
        let total = segs.iter().map(|s| s.len).sum();
        self.progress
            .start(TaskKind::Layer, &self.name, Some(total))
    }
}

/// A layer's entries, their encoded headers and its segment plan.
#[derive(Clone, Copy)]
pub(crate) struct Planned<'a> {
    pub entries: &'a [Entry],
    pub headers: &'a [Vec<u8>],
    pub segs: &'a [Seg],
}

/// An earlier build of the layer, whose blob holds compressed segments of this one.
pub(crate) struct Prior<'a> {
    pub blob: &'a File,
    /// Continue after the segments `..from`, the blob's first `prefix_len` bytes (their
    /// keys matched); `digest` and `diff` are the hash states after them.
    pub resume: Option<Resume>,
    /// For each segment from `from` on: where the blob holds its compressed bytes, if it
    /// does (same key elsewhere in the earlier layer).
    pub reuse: Vec<Option<(u64, u64)>>,
}

pub(crate) struct Resume {
    pub from: usize,
    pub prefix_len: u64,
    pub digest: Sha256State,
    pub diff: Sha256State,
}

/// The hash states after each segment a build wrote (from its first written segment on),
/// and the content hashes of the files it was asked to hash (by entry index).
#[derive(Default)]
pub(crate) struct Trace {
    pub diff_after: Vec<Sha256State>,
    pub digest_after: Vec<Sha256State>,
    pub content: Vec<Option<[u8; 32]>>,
}

/// Build the planned segments `segs` of `entries`, continuing `prior` where it can:
/// its prefix is copied, and segments it holds are copied rather than compressed.
/// The files with `hash[i]` set are also hashed as they are read (a cold build keys the
/// layer afterwards instead of reading every file twice); only without `prior`.
pub(crate) fn build_planned(
    layer: &Planned,
    opts: &LayerOptions,
    store: &Store,
    prior: Option<Prior>,
    hash: Option<&[bool]>,
    task: &mut Task,
) -> Result<(BuiltLayer, Trace), PipelineError> {
    let resume = prior.as_ref().and_then(|p| p.resume.as_ref());
    let from = resume.map_or(0, |r| r.from);
    let diff = resume.map_or_else(Sha256State::new, |r| r.diff);
    let n = if hash.is_some() {
        layer.entries.len()
    } else {
        0
    };
    let mut content = vec![None; n];
    // eStargz: every file's and chunk's hash, for the TOC built after the last member.
    let digests = std::cell::RefCell::new(opts.compression.estargz_chunk().map(|chunk| {
        crate::estargz::toc::FileDigests {
            chunk,
            files: vec![None; layer.entries.len()],
        }
    }));
    let tail = |starts: &[u64], end: u64| -> Result<crate::estargz::Tail, PipelineError> {
        let digests = digests.borrow();
        let digests = digests.as_ref().expect("an eStargz layer");
        Ok(crate::estargz::tail(
            layer.entries,
            layer.headers,
            layer.segs,
            starts,
            end,
            digests,
            &opts.compression,
        )?)
    };
    let estargz = opts.compression.estargz_chunk().is_some();
    if estargz && from > 0 {
        unreachable!("an eStargz layer is never resumed: its TOC needs every file's hash");
    }
    let (built, mut trace) = run(
        opts,
        store,
        None,
        prior,
        |sink| {
            let want = hash.map(|w| (w, &mut content[..]));
            let mut digests = digests.borrow_mut();
            write_tar(layer, from, sink, diff, want, digests.as_mut(), task)
        },
        estargz.then_some(&tail as &TailFn),
    )?;
    trace.content = content;
    Ok((built, trace))
}

/// Build a layer whose tar stream is `tar`, byte for byte (a tarball imported with
/// `normalize = false`). Segments are cut at fixed offsets of the stream.
pub fn build_layer_from_tar(
    tar: &mut dyn Read,
    origin: &str,
    opts: &LayerOptions,
    store: &Store,
) -> Result<BuiltLayer, PipelineError> {
    build_layer_from_tar_with(tar, origin, opts, store, None)
}

/// [`build_layer_from_tar`], taking compressed segments from (and adding them to) `segments`.
pub fn build_layer_from_tar_with(
    tar: &mut dyn Read,
    origin: &str,
    opts: &LayerOptions,
    store: &Store,
    segments: Option<&SegmentCache>,
) -> Result<BuiltLayer, PipelineError> {
    if opts.compression.estargz_chunk().is_some() {
        return Err(PipelineError::VerbatimEstargz {
            origin: origin.to_string(),
        });
    }
    let policy = opts.compression.segment_policy();
    let mut task = opts.progress.start(TaskKind::Layer, &opts.name, None);
    let built = run(
        opts,
        store,
        segments,
        None,
        |sink| {
            let mut hash = Sha256State::new();
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
                hash.update(&chunk[..n]);
                sink.write(&chunk[..n])?;
                if hash.len() - task.done() >= REPORT_EVERY {
                    task.advance_to(hash.len());
                }
                if policy.is_some_and(|p| hash.len() % p.big_file == 0) {
                    sink.cut()?;
                }
            }
            Ok((hash, Vec::new()))
        },
        None,
    )?;
    task.advance_to(built.0.uncompressed_size);
    task.finish(Outcome::Done, "");
    Ok(built.0)
}

type Produced = (Sha256State, Vec<Sha256State>);

/// Makes an eStargz layer's end from the blob offsets where its segments start and the
/// blob's length after them.
type TailFn<'a> = dyn Fn(&[u64], u64) -> Result<crate::estargz::Tail, PipelineError> + 'a;

/// Run a producer of tar bytes through segmenting, compression and the store. The
/// producer returns the diff_id state at the end and after each segment it cut.
fn run(
    opts: &LayerOptions,
    store: &Store,
    segments: Option<&SegmentCache>,
    prior: Option<Prior>,
    produce: impl FnOnce(&mut dyn TarSink) -> Result<Produced, PipelineError>,
    tail: Option<&TailFn>,
) -> Result<(BuiltLayer, Trace), PipelineError> {
    let media_type = opts.compression.media_type();
    let Some(policy) = opts.compression.segment_policy() else {
        let mut sink = Direct {
            out: store.writer()?,
        };
        let (diff, _) = produce(&mut sink)?;
        let (digest, size) = sink.out.commit(None)?;
        let layer = BuiltLayer {
            digest,
            size,
            diff_id: Digest::from_sha256(diff.finish()),
            uncompressed_size: diff.len(),
            media_type,
            toc_digest: None,
        };
        return Ok((layer, Trace::default()));
    };

    let old = prior.as_ref().map(|p| p.blob);
    let (resume, reuse) = match prior {
        Some(p) => (p.resume, p.reuse),
        None => (None, Vec::new()),
    };
    let jobs = opts.jobs.max(1);
    let in_flight = (IN_FLIGHT_BYTES / policy.max).clamp(2, jobs + 1);
    let compression = opts.compression;
    std::thread::scope(|scope| {
        let (job_tx, job_rx) = sync_channel::<Job>(in_flight);
        let job_rx = Arc::new(Mutex::new(job_rx));
        let (pool_tx, pool_rx) = sync_channel::<Vec<u8>>(in_flight);
        for _ in 1..in_flight {
            pool_tx.send(Vec::new()).expect("the pool has room");
        }
        // Output buffers: as many as input buffers, handed back by the writer. A worker
        // takes one together with its job, under the queue's lock, so outputs are handed
        // out in segment order and the writer's next segment always has one.
        let (out_tx, out_rx) = sync_channel::<Vec<u8>>(in_flight);
        for _ in 0..in_flight {
            out_tx.send(Vec::new()).expect("the pool has room");
        }
        let out_rx = Arc::new(Mutex::new(out_rx));
        for _ in 0..jobs {
            let job_rx = Arc::clone(&job_rx);
            let pool_tx = pool_tx.clone();
            let out_rx = Arc::clone(&out_rx);
            scope.spawn(move || loop {
                let next = {
                    let jobs = job_rx.lock().expect("job queue");
                    match jobs.recv() {
                        Ok(job) => out_rx
                            .lock()
                            .expect("output pool")
                            .recv()
                            .ok()
                            .map(|o| (job, o)),
                        Err(_) => None,
                    }
                };
                let Some(((mut data, ends, reuses, done), mut compressed)) = next else {
                    break;
                };
                compressed.clear();
                let mut lens = Vec::with_capacity(ends.len());
                // A job of one segment compresses into the recycled output buffer.
                let single = ends.len() == 1;
                let mut one = Vec::new();
                let mut start = 0;
                for (&end, reuse) in ends.iter().zip(reuses) {
                    let segment = &data[start..end];
                    start = end;
                    // A segment the earlier blob holds is copied from it, not compressed;
                    // if that read fails, compressing gives the same bytes.
                    let dst = if single { &mut compressed } else { &mut one };
                    let copied = match (old, reuse) {
                        (Some(blob), Some((offset, len))) => {
                            dst.resize(len as usize, 0);
                            std::os::unix::fs::FileExt::read_exact_at(blob, dst, offset).is_ok()
                        }
                        _ => false,
                    };
                    if !copied {
                        COMPRESSED.fetch_add(1, Ordering::Relaxed);
                        match segments {
                            Some(cache) => cache.compress_into(&compression, segment, dst),
                            None => compression.compress_segment_into(segment, dst),
                        }
                    }
                    if !single {
                        compressed.extend_from_slice(&one);
                    }
                    lens.push(compressed.len());
                }
                let _ = done.send((compressed, lens));
                data.clear();
                let _ = pool_tx.send(data);
            });
        }
        let (order_tx, order_rx) = sync_channel::<Receiver<Compressed>>(in_flight);
        // The writer hands back the uncommitted blob: only a complete tar stream is committed.
        let writer = scope.spawn(move || -> Result<Written, PipelineError> {
            let tmp = store.temp_file()?;
            let mut digest = Sha256State::new();
            let mut flushed = WriteBack::default();
            if let (Some(r), Some(blob)) = (&resume, old) {
                let copied = io::copy(&mut blob.take(r.prefix_len), &mut tmp.as_file())
                    .map_err(PipelineError::Write)?;
                if copied != r.prefix_len || r.digest.len() != r.prefix_len {
                    return Err(PipelineError::Write(io::Error::other(
                        "the earlier layer blob is shorter than its record",
                    )));
                }
                digest = r.digest;
                flushed.start(tmp.as_file(), r.prefix_len);
            }
            let mut after = Vec::new();
            let mut starts = Vec::new();
            {
                let mut out = io::BufWriter::with_capacity(256 * 1024, tmp.as_file());
                for result in order_rx {
                    let (compressed, ends) = result.recv().expect("a worker answers every job");
                    let mut start = 0;
                    for end in ends {
                        starts.push(digest.len());
                        digest.update(&compressed[start..end]);
                        after.push(digest);
                        start = end;
                    }
                    out.write_all(&compressed).map_err(PipelineError::Write)?;
                    if digest.len() - flushed.0 >= WRITE_BACK_EVERY {
                        out.flush().map_err(PipelineError::Write)?;
                        flushed.start(out.get_ref(), digest.len());
                    }
                    let _ = out_tx.send(compressed);
                }
                out.flush().map_err(PipelineError::Write)?;
            }
            Ok((tmp, digest, after, starts))
        });

        drop(pool_tx);
        let mut sink = Segmenter {
            buf: Vec::with_capacity(policy.max + READ_CHUNK),
            ends: Vec::new(),
            reuses: Vec::new(),
            // eStargz members are mostly a small file each: one job per member would
            // make the hand-offs between threads, not compression, set the pace.
            batch: if opts.compression.estargz_chunk().is_some() {
                BATCH
            } else {
                0
            },
            pool: pool_rx,
            reserve: policy.max + READ_CHUNK,
            reuse: reuse.into_iter(),
            job_tx,
            order_tx,
        };
        let produced = produce(&mut sink);
        let flushed = sink.cut().and_then(|()| sink.dispatch());
        // Closing the queues lets the workers and the writer finish.
        drop(sink);
        // A writer error (disk full) is the cause of any "writer stopped" the producer saw.
        let (tmp, mut digest, digest_after, starts) = writer.join().expect("writer thread")?;
        let (mut diff, diff_after) = produced?;
        flushed?;
        let mut toc_digest = None;
        if let Some(tail) = tail {
            let t = tail(&starts, digest.len())?;
            (&mut tmp.as_file())
                .write_all(&t.blob)
                .map_err(PipelineError::Write)?;
            digest.update(&t.blob);
            diff.update(&t.tar);
            toc_digest = Some(t.toc_digest);
        }
        let size = digest.len();
        let digest = Digest::from_sha256(digest.finish());
        store.commit_temp(tmp, &digest)?;
        let layer = BuiltLayer {
            digest,
            size,
            diff_id: Digest::from_sha256(diff.finish()),
            uncompressed_size: diff.len(),
            media_type,
            toc_digest,
        };
        Ok((
            layer,
            Trace {
                diff_after,
                digest_after,
                content: Vec::new(),
            },
        ))
    })
}

/// Bytes of blob between two early write-back requests.
const WRITE_BACK_EVERY: u64 = 8 << 20;

/// How far a blob being written has been handed to the kernel for write-back. The blob is
/// fsynced when it is committed (it is durable before anything names it); asking the
/// kernel to start writing earlier parts while later ones are still being compressed
/// overlaps the disk with the CPU, so that fsync finds little left to do (on the bench VM
/// the fsync of a 20 MB blob was most of a one-file rebuild's wall time). Only a hint:
/// nothing depends on it succeeding.
#[derive(Default)]
struct WriteBack(u64);

impl WriteBack {
    fn start(&mut self, file: &File, upto: u64) {
        use std::os::fd::AsRawFd;
        if upto <= self.0 {
            return;
        }
        // SAFETY: a plain syscall on a file descriptor we own, with no pointers.
        unsafe {
            libc::sync_file_range(
                file.as_raw_fd(),
                self.0 as libc::off64_t,
                (upto - self.0) as libc::off64_t,
                libc::SYNC_FILE_RANGE_WRITE,
            );
        }
        self.0 = upto;
    }
}

/// A segment to compress, where the earlier blob holds it (if it does), and where the
/// result goes.
/// A job holds one segment, or several small ones (`ends` in its bytes, each compressed
/// alone): the compressed bytes come back with the end of each segment in them.
type Job = (
    Vec<u8>,
    Vec<usize>,
    Vec<Option<(u64, u64)>>,
    SyncSender<Compressed>,
);
type Compressed = (Vec<u8>, Vec<usize>);

/// Bytes of small segments a job gathers before it is sent (eStargz only).
const BATCH: usize = 256 * 1024;
/// The blob, its hash state, the state after each segment and where each segment starts.
type Written = (
    tempfile::NamedTempFile,
    Sha256State,
    Vec<Sha256State>,
    Vec<u64>,
);

/// Where the tar stream goes.
trait TarSink {
    fn write(&mut self, bytes: &[u8]) -> Result<(), PipelineError>;
    /// End the current segment here (nothing happens if nothing is buffered).
    fn cut(&mut self) -> Result<(), PipelineError>;
}

struct Direct {
    out: teu_store::BlobWriter,
}

impl TarSink for Direct {
    fn write(&mut self, bytes: &[u8]) -> Result<(), PipelineError> {
        self.out.write_all(bytes).map_err(PipelineError::Write)
    }
    fn cut(&mut self) -> Result<(), PipelineError> {
        Ok(())
    }
}

struct Segmenter {
    buf: Vec<u8>,
    /// Ends of the segments in `buf` so far, and where the earlier blob holds each.
    ends: Vec<usize>,
    reuses: Vec<Option<(u64, u64)>>,
    /// Send a job once it holds this many bytes (0: each segment alone).
    batch: usize,
    /// Emptied buffers back from the workers.
    pool: Receiver<Vec<u8>>,
    reserve: usize,
    /// Where the earlier blob holds each segment to come, in order.
    reuse: std::vec::IntoIter<Option<(u64, u64)>>,
    job_tx: SyncSender<Job>,
    order_tx: SyncSender<Receiver<Compressed>>,
}

impl Segmenter {
    /// Send the segments gathered so far as one job.
    fn dispatch(&mut self) -> Result<(), PipelineError> {
        if self.ends.is_empty() {
            return Ok(());
        }
        let (done_tx, done_rx) = sync_channel(1);
        // A closed queue means the writer failed; its error is reported by the caller.
        let gone = || PipelineError::Write(io::Error::other("layer writer stopped"));
        self.order_tx.send(done_rx).map_err(|_| gone())?;
        let data = std::mem::take(&mut self.buf);
        let ends = std::mem::take(&mut self.ends);
        let reuses = std::mem::take(&mut self.reuses);
        self.job_tx
            .send((data, ends, reuses, done_tx))
            .map_err(|_| gone())?;
        // Then wait for a free buffer to fill: memory stays bounded, and with two
        // buffers both workers can be compressing while this thread waits.
        let mut next = self.pool.recv().map_err(|_| gone())?;
        next.reserve(self.reserve);
        self.buf = next;
        Ok(())
    }
}

impl TarSink for Segmenter {
    fn write(&mut self, bytes: &[u8]) -> Result<(), PipelineError> {
        self.buf.extend_from_slice(bytes);
        Ok(())
    }
    fn cut(&mut self) -> Result<(), PipelineError> {
        if self.buf.len() == self.ends.last().copied().unwrap_or(0) {
            return Ok(());
        }
        self.ends.push(self.buf.len());
        self.reuses.push(self.reuse.next().flatten());
        if self.buf.len() >= self.batch {
            self.dispatch()?;
        }
        Ok(())
    }
}

/// Writes the stream into `sink` and the diff_id hash, cutting where the plan says.
struct Cutter<'a> {
    sink: &'a mut dyn TarSink,
    task: &'a mut Task,
    diff: Sha256State,
    /// Ends of the segments still to write, in order.
    ends: Vec<Pos>,
    next: usize,
    diff_after: Vec<Sha256State>,
}

impl Cutter<'_> {
    /// Write `bytes`, which sit at `offset` of entry `entry`'s serialization.
    fn put(
        &mut self,
        entry: usize,
        mut offset: u64,
        mut bytes: &[u8],
    ) -> Result<(), PipelineError> {
        while !bytes.is_empty() {
            let end = self.ends[self.next];
            let n = if end.entry == entry {
                ((end.offset - offset) as usize).min(bytes.len())
            } else {
                bytes.len()
            };
            debug_assert!(n > 0, "a planned cut was passed");
            self.diff.update(&bytes[..n]);
            self.sink.write(&bytes[..n])?;
            offset += n as u64;
            bytes = &bytes[n..];
            if end.entry == entry && offset == end.offset {
                self.cut()?;
            } else if self.diff.len() - self.task.done() >= REPORT_EVERY {
                self.task.advance_to(self.diff.len());
            }
        }
        Ok(())
    }

    /// Entry `entry` begins: a segment may end here.
    fn entry_start(&mut self, entry: usize) -> Result<(), PipelineError> {
        let here = Pos { entry, offset: 0 };
        if self.ends.get(self.next) == Some(&here) {
            self.cut()?;
        }
        Ok(())
    }

    fn cut(&mut self) -> Result<(), PipelineError> {
        self.sink.cut()?;
        self.diff_after.push(self.diff);
        self.next += 1;
        self.task.advance_to(self.diff.len());
        Ok(())
    }
}

/// Which files to hash as they are read, and where their hashes go (by entry index).
type HashFiles<'a> = (&'a [bool], &'a mut [Option<[u8; 32]>]);

/// Write segments `segs[from..]` of the tar of `entries` to `sink`, the diff_id hash
/// continuing from `diff`; return its state at the end and after each segment. With
/// `hash`, the files it marks are hashed into its slice as they are read. With
/// `digests` (eStargz), every file and every chunk of it is hashed into it, and the
/// stream stops before the end-of-archive.
fn write_tar(
    layer: &Planned,
    from: usize,
    sink: &mut dyn TarSink,
    diff: Sha256State,
    mut hash: Option<HashFiles>,
    mut digests: Option<&mut crate::estargz::toc::FileDigests>,
    task: &mut Task,
) -> Result<Produced, PipelineError> {
    let Planned {
        entries,
        headers,
        segs,
    } = *layer;
    let Some(first) = segs.get(from) else {
        return Ok((diff, Vec::new()));
    };
    let start = first.start;
    task.advance_to(diff.len());
    let mut w = Cutter {
        sink,
        task,
        diff,
        ends: segs[from..].iter().map(|s| s.end).collect(),
        next: 0,
        diff_after: Vec::new(),
    };
    let mut chunk = vec![0u8; READ_CHUNK];
    for i in start.entry..=entries.len() {
        let skip = if i == start.entry { start.offset } else { 0 };
        w.entry_start(i)?;
        if i == entries.len() {
            if digests.is_none() {
                w.put(i, skip, &tar_writer::trailer()[skip as usize..])?;
            }
            break;
        }
        let entry = &entries[i];
        let header = &headers[i];
        let hl = header.len() as u64;
        // A segment starts at an entry or inside a big file's data, never in a header.
        if skip < hl {
            w.put(i, skip, &header[skip as usize..])?;
        }
        if let Kind::File(content) = &entry.kind {
            let read_err = |source| PipelineError::Read {
                origin: entry.origin.to_string(),
                path: path::display(&entry.path),
                source_path: content.describe(),
                source,
            };
            let expected = content.size();
            let mut done = skip.saturating_sub(hl);
            let mut reader = content.open_at(done).map_err(read_err)?;
            let mut file_hash = match &hash {
                Some((want, _)) if want[i] && done == 0 => Some(Sha256State::new()),
                _ if digests.is_some() => Some(Sha256State::new()),
                _ => None,
            };
            let mut chunks = ChunkHasher::default();
            loop {
                let n = reader.read(&mut chunk).map_err(read_err)?;
                if n == 0 {
                    break;
                }
                count_read(n);
                if done + n as u64 > expected {
                    return Err(PipelineError::Changed {
                        origin: entry.origin.to_string(),
                        source_path: content.describe(),
                        expected,
                        actual: done + n as u64,
                    });
                }
                if let Some(h) = &mut file_hash {
                    h.update(&chunk[..n]);
                }
                // A file of one chunk has the file's digest as its chunk digest.
                if let Some(d) = digests.as_ref().filter(|d| expected > d.chunk) {
                    chunks.update(d.chunk, done, &chunk[..n]);
                }
                w.put(i, hl + done, &chunk[..n])?;
                done += n as u64;
            }
            let file_hash = file_hash.map(Sha256State::finish);
            if let (Some(h), Some((want, out))) = (file_hash, &mut hash) {
                if want[i] {
                    out[i] = Some(h);
                }
            }
            if let (Some(h), Some(d)) = (file_hash, &mut digests) {
                let chunks = if expected > d.chunk {
                    chunks.finish()
                } else if expected > 0 {
                    vec![h]
                } else {
                    Vec::new()
                };
                d.files[i] = Some((h, chunks));
            }
            if done != expected {
                return Err(PipelineError::Changed {
                    origin: entry.origin.to_string(),
                    source_path: content.describe(),
                    expected,
                    actual: done,
                });
            }
            w.put(
                i,
                hl + expected,
                &[0u8; BLOCK][..tar_writer::padding(expected)],
            )?;
        }
    }
    debug_assert_eq!(w.next, w.ends.len(), "every planned segment was written");
    Ok((w.diff, w.diff_after))
}

/// Hashes a file's bytes chunk by chunk (eStargz's `chunkDigest`s).
#[derive(Default)]
struct ChunkHasher {
    current: Option<Sha256State>,
    done: Vec<[u8; 32]>,
}

impl ChunkHasher {
    /// `bytes` sit at `at` of the file; chunks are `chunk` bytes from its start.
    fn update(&mut self, chunk: u64, mut at: u64, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let room = (chunk - at % chunk).min(bytes.len() as u64) as usize;
            self.current
                .get_or_insert_with(Sha256State::new)
                .update(&bytes[..room]);
            at += room as u64;
            bytes = &bytes[room..];
            if at % chunk == 0 {
                self.done
                    .extend(self.current.take().map(Sha256State::finish));
            }
        }
    }

    fn finish(mut self) -> Vec<[u8; 32]> {
        self.done
            .extend(self.current.take().map(Sha256State::finish));
        self.done
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{Content, Defaults, LayerTree, Meta, Priority};

    fn tree(n: usize, big: usize) -> Vec<Entry> {
        let mut t = LayerTree::new();
        for i in 0..n {
            let body: Vec<u8> = format!("file {i} ").repeat(i * 37 % 5000).into_bytes();
            let path = format!("dir{}/file{i:05}", i % 7);
            t.insert(Entry::in_memory(
                path.as_bytes(),
                &body,
                0,
                Arc::from("test"),
            ))
            .unwrap();
        }
        let big_body: Vec<u8> = (0..big).map(|i| (i * 7 % 251) as u8).collect();
        t.insert(Entry::in_memory(b"big", &big_body, 0, Arc::from("test")))
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
            "estargz".parse().unwrap(),
        ] {
            let mut seen = Vec::new();
            for jobs in [1, 2, 16] {
                let dir = tempfile::tempdir().unwrap();
                let store = Store::open(dir.path()).unwrap();
                let built = build_layer(
                    &entries,
                    &LayerOptions {
                        compression,
                        jobs,
                        ..Default::default()
                    },
                    &store,
                )
                .unwrap();
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
            ..Default::default()
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
                ..Default::default()
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
            kind: Kind::File(Content::Path {
                path: src,
                size: 3,
                stat: None,
            }),
            meta: Meta {
                mode: 0o644,
                uid: 0,
                gid: 0,
                mtime: 0,
            },
            priority: Priority::Explicit,
            origin: Arc::from("test"),
            inode: None,
            xattrs: Vec::new(),
        }];
        let store = Store::open(dir.path().join("store")).unwrap();
        let err = build_layer(
            &entries,
            &LayerOptions {
                compression: Compression::default(),
                jobs: 2,
                ..Default::default()
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
