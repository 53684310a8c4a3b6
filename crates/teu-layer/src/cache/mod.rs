//! The layer cache: a layer whose inputs did not change is not built again.
//!
//! A layer's bytes are a function of its entries (every tar header teu would write, and
//! the content of every file), the compression algorithm, level and encoder, the segment
//! policy and [`crate::LAYER_FORMAT_VERSION`]. The cache key is the SHA-256 of exactly
//! that ([`key`]): the header bytes themselves are hashed, so anything that reaches a
//! header (path, kind, mode, owner, mtime, size, link target) is in the key by
//! construction. Content hashes come from the [`stat`] cache, so an unchanged file is
//! stat'ed, never read.
//!
//! Under `$TEU_HOME/cache/`:
//! - `layers/<key>`: a small text record of the built layer (digest, size, diff_id, tar
//!   size, media type). A record is used only when its blob is in the store with the
//!   recorded size, so a blob removed by `teu cache gc`/`verify` (or by hand) means a rebuild.
//! - `segments/<hash>`: compressed segments by their uncompressed bytes ([`segments`]), so
//!   a layer that does miss recompresses only the segments whose bytes changed.
//! - `stat/<scope>`: the stat cache of one layer's sources (scope: the hash of the layer's
//!   source paths, chosen by the caller), so each build loads only what it needs.
//!
//! Records are written atomically (temporary file, rename) without fsync: the blob they
//! name is already durable, and a record lost in a crash only costs a rebuild.
//!
//! Correctness guard: after a miss, every source file (and tarball) is stat'ed again, and
//! the record is kept only if none changed while the layer was built, so a record never
//! pairs a key with bytes from other content. Tarball entries are keyed by the tarball's
//! hash and their range ([`crate::entry::Tarball`]), never by reading them again.

pub mod key;
mod maps;
pub mod segments;
pub mod stat;

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest as _, Sha256};
use teu_oci::Digest;
use teu_store::Store;

use crate::entry::{Content, Entry, Kind, Tarball};
use crate::path as lpath;
use crate::pipeline::{
    build_layer_from_tar_with, build_planned, BuiltLayer, LayerOptions, PipelineError, Planned,
    Prior, Resume, Trace,
};
use crate::source::{decompressed, sniff, Tee};
use crate::{plan, tar_writer};
use maps::{LayerMap, MapSeg};
use segments::SegmentCache;
use stat::{FileStat, StatCache};
use teu_progress::{Outcome, TaskKind};

/// The cache directory of a store.
pub fn cache_dir(store: &Store) -> PathBuf {
    store.root().join("cache")
}

/// A built layer, and whether it came from the cache.
#[derive(Clone, Debug)]
pub struct Cached {
    pub layer: BuiltLayer,
    pub hit: bool,
}

/// Build `entries` unless the cache holds a layer with the same key. `scope` names the
/// stat cache to use (any stable bytes identifying the layer's sources).
pub fn build_layer_cached(
    entries: &[Entry],
    opts: &LayerOptions,
    store: &Store,
    scope: &[u8],
) -> Result<Cached, PipelineError> {
    let dir = cache_dir(store);
    let started = now_secs();
    let mut stats = StatCache::load(stat_file(&dir, scope));
    let mut seen = Seen::default();
    let (mut hashes, misses) = known_hashes(entries, &mut stats, &mut seen)?;
    let headers: Vec<Vec<u8>> = entries.iter().map(tar_writer::encode_header).collect();
    let segs = plan::plan_for(entries, &headers, &opts.compression);
    let mut task = opts.start_task(&segs);
    let planned = Planned {
        entries,
        headers: &headers,
        segs: &segs,
    };
    let map_path = dir
        .join("maps")
        .join(key::map_name(scope, &opts.compression).hex());
    // The previous build's map and blob, read only when needed (not for a hit).
    let load_prior = || -> (Option<LayerMap>, Option<fs::File>) {
        let old = opts
            .compression
            .segment_policy()
            .and_then(|_| LayerMap::load(&map_path));
        let blob = old.as_ref().and_then(|m| {
            let f = fs::File::open(store.blob_path(&m.digest)).ok()?;
            (f.metadata().ok()?.len() == m.size).then_some(f)
        });
        (old, blob)
    };
    let unknown: u64 = misses.iter().map(|(i, _)| entries[*i].kind_size()).sum();
    let total: u64 = entries.iter().map(Entry::kind_size).sum();
    let mut loaded = None;
    if unknown > 0 && unknown >= total / 4 {
        loaded = Some(load_prior());
    }
    if loaded.as_ref().is_some_and(|(_, blob)| blob.is_none()) {
        // A cold build: nothing to continue, most content never hashed. Learning the key
        // first would read every file only to miss and read it again; instead build,
        // hashing each file as the pipeline reads it, then key and record what was built.
        let mut want = vec![false; entries.len()];
        for (i, _) in &misses {
            want[*i] = true;
        }
        let (layer, trace) = build_planned(&planned, opts, store, None, Some(&want), &mut task)?;
        for (i, st) in &misses {
            let h = trace.content[*i].expect("the pipeline hashed every file it was asked to");
            hashes[*i] = Some(h);
            remember(&entries[*i], st.as_ref(), h, &mut stats, started);
        }
        let key = key::layer_key_with(entries, &headers, &hashes, &opts.compression);
        if seen.unchanged_since(started) {
            write_record(&dir.join("layers").join(key.hex()), &layer)?;
            let keys = plan::segment_keys(entries, &headers, &hashes, &segs);
            if let Some(map) = next_map(None, 0, &keys, &trace, &layer) {
                let _ = map.save(&map_path);
            }
        }
        save_stats(&stats, &dir)?;
        task.finish(Outcome::Done, "cold");
        return Ok(Cached { layer, hit: false });
    }
    hash_misses(
        entries,
        &misses,
        &mut stats,
        opts.jobs,
        started,
        &mut hashes,
    )?;
    let key = key::layer_key_with(entries, &headers, &hashes, &opts.compression);
    let record = dir.join("layers").join(key.hex());
    if let Some(layer) = lookup(&record, store) {
        save_stats(&stats, &dir)?;
        task.advance_to(layer.uncompressed_size);
        task.finish(Outcome::Skipped, "cached");
        return Ok(Cached { layer, hit: true });
    }
    let keys = plan::segment_keys(entries, &headers, &hashes, &segs);
    let (old, old_blob) = loaded.unwrap_or_else(load_prior);
    // eStargz: the TOC holds every file's digest, so every file is read again (never
    // resumed); unchanged members are still copied from the earlier blob.
    let resumable = opts.compression.estargz_chunk().is_none();
    let prior = match (&old, &old_blob) {
        (Some(map), Some(blob)) => Some(prior(map, blob, &keys, resumable)),
        _ => None,
    };
    let from = prior
        .as_ref()
        .and_then(|p| p.resume.as_ref())
        .map_or(0, |r| r.from);
    let reused = prior
        .as_ref()
        .map_or(0, |p| p.reuse.iter().flatten().count())
        + from;
    let (layer, trace) = build_planned(&planned, opts, store, prior, None, &mut task)?;
    // The key was computed from the sources as they were hashed; the blob from them as
    // the pipeline read them. Record the pair only if nothing can have changed between:
    // no source's stat moved, and none was modified within the build's first second or
    // later (a same-tick rewrite leaves the stat as it was on coarse-clock file systems).
    if seen.unchanged_since(started) {
        write_record(&record, &layer)?;
        if let Some(map) = next_map(old.as_ref(), from, &keys, &trace, &layer) {
            let _ = map.save(&map_path);
        }
    }
    save_stats(&stats, &dir)?;
    let note = format!("{reused} of {} segments reused", segs.len());
    task.finish(Outcome::Done, &note);
    Ok(Cached { layer, hit: false })
}

/// How a rebuild uses the build `map` describes (its blob is `blob`): continue after the
/// segments whose keys still match (at least one segment is always written), and copy
/// any later segment whose key the earlier layer also has (the segments after a changed
/// file are usually the same, just elsewhere in the blob).
fn prior<'a>(map: &LayerMap, blob: &'a fs::File, keys: &[[u8; 32]], resumable: bool) -> Prior<'a> {
    let same = if !resumable {
        0
    } else {
        map.segs
            .iter()
            .zip(keys)
            .take_while(|(m, k)| m.key == **k)
            .count()
    };
    let from = same.min(keys.len().saturating_sub(1));
    let resume = (from > 0).then(|| {
        let last = &map.segs[from - 1];
        Resume {
            from,
            prefix_len: last.digest.len(),
            digest: last.digest,
            diff: last.diff,
        }
    });
    let mut at = std::collections::HashMap::new();
    let mut start = 0;
    for s in &map.segs {
        at.entry(s.key).or_insert((start, s.digest.len() - start));
        start = s.digest.len();
    }
    Prior {
        blob,
        resume,
        reuse: keys[from..].iter().map(|k| at.get(k).copied()).collect(),
    }
}

/// The map of the layer just built: the old map's first `from` segments, then the new.
fn next_map(
    old: Option<&LayerMap>,
    from: usize,
    keys: &[[u8; 32]],
    trace: &Trace,
    layer: &BuiltLayer,
) -> Option<LayerMap> {
    let written = keys.len() - from;
    if trace.diff_after.len() != written || trace.digest_after.len() != written {
        return None; // not a segmented layer
    }
    let mut segs: Vec<MapSeg> = old.map_or_else(Vec::new, |m| m.segs[..from].to_vec());
    for (i, key) in keys.iter().enumerate().skip(from) {
        segs.push(MapSeg {
            key: *key,
            diff: trace.diff_after[i - from],
            digest: trace.digest_after[i - from],
        });
    }
    Some(LayerMap {
        digest: layer.digest.clone(),
        size: layer.size,
        segs,
    })
}

/// Build a layer whose tar stream is the (possibly compressed) tarball `src`, byte for
/// byte, unless the cache has it. The key is the tarball's content hash.
pub fn build_tar_layer_cached(
    src: &Path,
    origin: &str,
    opts: &LayerOptions,
    store: &Store,
    scope: &[u8],
) -> Result<Cached, PipelineError> {
    let dir = cache_dir(store);
    let mut stats = StatCache::load(stat_file(&dir, scope));
    let read_err = |source| PipelineError::Read {
        origin: origin.to_string(),
        path: "/".to_string(),
        source_path: src.display().to_string(),
        source,
    };
    let started = now_secs();
    let before = FileStat::of(src).map_err(read_err)?;
    let known = stats.get(src, &before);
    if let Some(hash) = known {
        let record = dir
            .join("layers")
            .join(key::tar_key(&hash, &opts.compression).hex());
        if let Some(layer) = lookup(&record, store) {
            save_stats(&stats, &dir)?;
            let mut task =
                opts.progress
                    .start(TaskKind::Layer, &opts.name, Some(layer.uncompressed_size));
            task.advance_to(layer.uncompressed_size);
            task.finish(Outcome::Skipped, "cached");
            return Ok(Cached { layer, hit: true });
        }
    }
    // Build, hashing the tarball's bytes as the pipeline reads them: one read, not two.
    let mut file = fs::File::open(src).map_err(read_err)?;
    let compression = sniff(&mut file).map_err(read_err)?;
    let mut raw = Tee::new(file);
    let layer = {
        let mut reader = decompressed(&mut raw, compression).map_err(read_err)?;
        build_layer_from_tar_with(
            &mut reader,
            origin,
            opts,
            store,
            Some(&SegmentCache::new(store)),
        )?
    };
    let hash = raw.finish().map_err(read_err)?;
    // Record the layer under the hash of the bytes it was built from, if the tarball is
    // still what it was when this build began and is not racy (see `build_layer_cached`).
    let steady = FileStat::of(src).ok() == Some(before) && !before.racy(started);
    if steady && known.is_none_or(|k| k == hash) {
        stats.insert(src, before, hash);
        let record = dir
            .join("layers")
            .join(key::tar_key(&hash, &opts.compression).hex());
        write_record(&record, &layer)?;
    }
    save_stats(&stats, &dir)?;
    Ok(Cached { layer, hit: false })
}

fn stat_file(dir: &Path, scope: &[u8]) -> PathBuf {
    dir.join("stat").join(Digest::of(scope).hex())
}

fn save_stats(stats: &StatCache, dir: &Path) -> Result<(), PipelineError> {
    stats.save().map_err(|e| cache_io(&dir.join("stat"), e))
}

fn cache_io(path: &Path, e: io::Error) -> PipelineError {
    PipelineError::Write(io::Error::new(
        e.kind(),
        format!("layer cache {}: {e}", path.display()),
    ))
}

/// Content hashes (`None` for entries that are not files) come from the stat cache where
/// it can be trusted ([`known_hashes`]), else by reading the file ([`hash_misses`], on up
/// to `jobs` threads, or inline by a cold build's pipeline). `seen` collects the stat of
/// every source file (and tarball), to check after the build. A hash is remembered only
/// for a file not modified since the second the build started.
/// Content hashes by entry index (`None`: not a file, or not known yet).
type Hashes = Vec<Option<[u8; 32]>>;

/// Files whose content hash the stat cache does not have: (entry index, stat when listed).
type Misses = Vec<(usize, Option<FileStat>)>;

/// The content hashes known without reading anything, and the files still to hash.
fn known_hashes(
    entries: &[Entry],
    stats: &mut StatCache,
    seen: &mut Seen,
) -> Result<(Hashes, Misses), PipelineError> {
    let mut hashes = vec![None; entries.len()];
    let mut misses: Misses = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let Kind::File(content) = &e.kind else {
            continue;
        };
        match content {
            Content::Path { path, stat, .. } => {
                let st = match stat {
                    Some(st) => *st,
                    None => FileStat::of(path).map_err(|source| read_error(e, content, source))?,
                };
                seen.paths.push((path.clone(), st));
                match stats.get(path, &st) {
                    Some(h) => hashes[i] = Some(h),
                    None => misses.push((i, Some(st))),
                }
            }
            Content::Bytes(b) => hashes[i] = Some(Sha256::digest(b).into()),
            Content::Range {
                offset,
                size,
                tarball,
                ..
            } => {
                // The bytes are a function of the tarball's: key them by its hash and the
                // range, read nothing. The tarball itself is the source to guard.
                if !seen.tarballs.iter().any(|t| Arc::ptr_eq(t, tarball)) {
                    seen.tarballs.push(Arc::clone(tarball));
                }
                hashes[i] = Some(range_hash(tarball, *offset, *size));
            }
        }
    }
    Ok((hashes, misses))
}

/// Hash the `misses` on up to `jobs` threads into `hashes`, remembering them in `stats`.
fn hash_misses(
    entries: &[Entry],
    misses: &Misses,
    stats: &mut StatCache,
    jobs: usize,
    started: i64,
    hashes: &mut [Option<[u8; 32]>],
) -> Result<(), PipelineError> {
    if misses.is_empty() {
        return Ok(());
    }
    // Hash the misses on several threads, in interleaved shares so big and small files
    // spread evenly; results are put back by index, so order never matters.
    let jobs = jobs.clamp(1, misses.len());
    type Share = Result<Vec<(usize, [u8; 32])>, PipelineError>;
    let results: Vec<Share> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..jobs)
            .map(|t| {
                s.spawn(move || {
                    let mut out = Vec::new();
                    for (i, _) in misses.iter().skip(t).step_by(jobs) {
                        let e = &entries[*i];
                        let Kind::File(content) = &e.kind else {
                            unreachable!("only files are hashed")
                        };
                        let h = content
                            .open()
                            .and_then(|mut r| hash_reader(&mut r))
                            .map_err(|source| read_error(e, content, source))?;
                        out.push((*i, h));
                    }
                    Ok(out)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("hashing thread"))
            .collect()
    });
    let stat_of: std::collections::HashMap<usize, FileStat> = misses
        .iter()
        .filter_map(|(i, st)| st.map(|st| (*i, st)))
        .collect();
    for r in results {
        for (i, h) in r? {
            hashes[i] = Some(h);
            remember(&entries[i], stat_of.get(&i), h, stats, started);
        }
    }
    Ok(())
}

/// Put a file's freshly read hash into the stat cache, only if the file did not change
/// while it was read and cannot change within the same timestamp tick unnoticed.
fn remember(
    e: &Entry,
    listed: Option<&FileStat>,
    hash: [u8; 32],
    stats: &mut StatCache,
    started: i64,
) {
    if let (Some(st), Kind::File(Content::Path { path, .. })) = (listed, &e.kind) {
        if FileStat::of(path).ok().as_ref() == Some(st) && !st.racy(started) {
            stats.insert(path, *st, hash);
        }
    }
}

/// The content hash of a tarball entry: SHA-256 over the tarball's hash and the range.
fn range_hash(tarball: &Tarball, offset: u64, size: u64) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"teu tarball range\0");
    h.update(tarball.sha256);
    h.update(offset.to_le_bytes());
    h.update(size.to_le_bytes());
    h.finalize().into()
}

fn read_error(e: &Entry, content: &Content, source: io::Error) -> PipelineError {
    PipelineError::Read {
        origin: e.origin.to_string(),
        path: lpath::display(&e.path),
        source_path: content.describe(),
        source,
    }
}

fn hash_reader(r: &mut dyn Read) -> io::Result<[u8; 32]> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return Ok(h.finalize().into()),
            Ok(n) => {
                crate::pipeline::count_read(n);
                h.update(&buf[..n]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The sources of a layer as they were when their content was hashed.
#[derive(Default)]
struct Seen {
    paths: Vec<(PathBuf, FileStat)>,
    /// Tarballs, as they were when read (their path's stat now must match the stat of the
    /// handle they were read through: a rewrite in place or a rename over both change it).
    tarballs: Vec<Arc<Tarball>>,
}

impl Seen {
    fn unchanged_since(&self, started: i64) -> bool {
        let paths = self
            .paths
            .iter()
            .all(|(p, st)| !st.racy(started) && FileStat::of(p).ok().as_ref() == Some(st));
        // A tarball is judged against the moment it was read, which is before `started`.
        let tarballs = self.tarballs.iter().all(|t| {
            !t.stat.racy(t.read_at) && FileStat::of(&t.path).ok().as_ref() == Some(&t.stat)
        });
        paths && tarballs
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A layer record, if it parses and its blob is in the store with the recorded size.
pub fn lookup(record: &Path, store: &Store) -> Option<BuiltLayer> {
    let layer = read_record(record)?;
    let len = fs::metadata(store.blob_path(&layer.digest)).ok()?.len();
    if len != layer.size {
        return None;
    }
    // Used now: `teu cache gc` goes by these times (least recently used first). Setting
    // a time needs ownership, not write access, so the files are opened read-only.
    let now = std::time::SystemTime::now();
    for p in [record, &store.blob_path(&layer.digest)] {
        if let Ok(f) = fs::File::open(p) {
            let _ = f.set_modified(now);
        }
    }
    Some(layer)
}

const RECORD_MAGIC: &str = "teu-layer-record 1";

/// Parse a layer record (`None` if it is not one).
pub fn read_record(record: &Path) -> Option<BuiltLayer> {
    let text = fs::read_to_string(record).ok()?;
    let mut lines = text.lines();
    if lines.next()? != RECORD_MAGIC {
        return None;
    }
    let mut field = |name: &str| {
        lines
            .next()
            .and_then(|l| l.strip_prefix(name))
            .and_then(|l| l.strip_prefix(' '))
            .map(str::to_string)
    };
    let digest: Digest = field("digest")?.parse().ok()?;
    let size: u64 = field("size")?.parse().ok()?;
    let diff_id: Digest = field("diff_id")?.parse().ok()?;
    let uncompressed_size: u64 = field("uncompressed_size")?.parse().ok()?;
    let media_type = field("media_type")?;
    let toc_digest = match lines.next() {
        Some(l) => Some(l.strip_prefix("toc_digest ")?.parse().ok()?),
        None => None,
    };
    let media_type = [
        teu_oci::media_type::OCI_LAYER_GZIP,
        teu_oci::media_type::OCI_LAYER_ZSTD,
        teu_oci::media_type::OCI_LAYER_TAR,
    ]
    .into_iter()
    .find(|m| *m == media_type)?;
    Some(BuiltLayer {
        digest,
        size,
        diff_id,
        uncompressed_size,
        media_type,
        toc_digest,
    })
}

pub fn write_record(record: &Path, layer: &BuiltLayer) -> Result<(), PipelineError> {
    let mut text = format!(
        "{RECORD_MAGIC}\ndigest {}\nsize {}\ndiff_id {}\nuncompressed_size {}\nmedia_type {}\n",
        layer.digest, layer.size, layer.diff_id, layer.uncompressed_size, layer.media_type
    );
    if let Some(toc) = &layer.toc_digest {
        text.push_str(&format!("toc_digest {toc}\n"));
    }
    let dir = record.parent().expect("records live in a directory");
    let write = || -> io::Result<()> {
        fs::create_dir_all(dir)?;
        let mut tmp = tempfile::Builder::new().prefix(".rec-").tempfile_in(dir)?;
        io::Write::write_all(&mut tmp, text.as_bytes())?;
        tmp.persist(record).map_err(|e| e.error)?;
        Ok(())
    };
    write().map_err(|e| cache_io(record, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, Write};

    /// The guard that decides whether a built layer may be recorded under its key.
    #[test]
    fn sources_changed_or_racy_since_the_start_are_not_recorded() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        fs::write(&p, b"AAAA").unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let st = FileStat::of(&p).unwrap();
        let seen = Seen {
            paths: vec![(p.clone(), st)],
            tarballs: Vec::new(),
        };
        // ctime is now (set_modified changed it): racy against a build started now,
        // fine against one started a second later.
        assert!(!seen.unchanged_since(now_secs()));
        assert!(seen.unchanged_since(now_secs() + 1));

        // A tarball rewritten in place: same inode, new stat. It is judged against the
        // second it was read in, not the build's start.
        let tarball = |read_at| Tarball {
            path: p.clone(),
            stat: FileStat::of(&p).unwrap(),
            read_at,
            sha256: [0; 32],
        };
        let seen = Seen {
            paths: Vec::new(),
            tarballs: vec![Arc::new(tarball(now_secs()))],
        };
        assert!(!seen.unchanged_since(now_secs() + 1), "racy when read");
        let seen = Seen {
            paths: Vec::new(),
            tarballs: vec![Arc::new(tarball(now_secs() + 1))],
        };
        assert!(seen.unchanged_since(now_secs() + 1));
        std::thread::sleep(std::time::Duration::from_millis(20));
        let mut w = fs::File::options().write(true).open(&p).unwrap();
        w.seek(io::SeekFrom::Start(0)).unwrap();
        w.write_all(b"BBBB").unwrap();
        w.sync_all().unwrap();
        assert!(!seen.unchanged_since(now_secs() + 1));
    }
}
