//! Keeping the store healthy: what it holds (`du`), what it may forget (`gc`), and
//! whether its blobs are intact (`verify`).
//!
//! Roots: every local output `teu build` writes records a root, `roots/<hash of the
//! output path>`, listing the blobs of the image it received. `gc` never removes a blob
//! a root lists while the root's output still exists (a root whose output is gone is
//! dropped), so the next build of that output stays a cache hit. Any file in `roots/` in
//! the same format pins its blobs, so a user or a CI job can pin a set by hand.
//!
//! `gc` removes unpinned blobs last used before `max_age`, then, oldest first, more
//! unpinned blobs until the store fits `max_size`; blobs written in the last
//! [`GRACE`] are never removed, because a build running now may be about to name them.
//! Cached compressed segments are aged and counted the same way (they are never pinned:
//! losing one costs a recompression). Layer records whose blob is gone, stat caches
//! unused for `max_age` and temporary files older than [`GRACE`] go too.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use teu_oci::{Digest, Sha256Writer};
use teu_store::Store;

use crate::error::{io_err, ImageError};
use crate::image::Artifact;

/// Nothing younger than this is collected: a concurrent build may be using it.
pub const GRACE: Duration = Duration::from_secs(10 * 60);

const ROOT_MAGIC: &str = "teu-root 1";

fn roots_dir(store: &Store) -> PathBuf {
    store.root().join("roots")
}

/// Record that the local output at `path` (named `output`, as in `oci:DIR:TAG`) now holds
/// `artifact`, so `gc` keeps its blobs. Called by the local sinks after a write.
pub fn record_root(
    store: &Store,
    path: &Path,
    output: &str,
    artifact: &Artifact,
) -> Result<(), ImageError> {
    let abs = std::path::absolute(path).map_err(io_err(path.display()))?;
    // One root per output path and tag: the same layout under two tags keeps both images.
    let name = Digest::of(format!("{}\0{output}", abs.display()).as_bytes());
    let mut text = format!("{ROOT_MAGIC}\noutput {output}\npath {}\n", abs.display());
    for (desc, _) in artifact.blobs() {
        text.push_str(&format!("blob {}\n", desc.digest));
    }
    let dir = roots_dir(store);
    fs::create_dir_all(&dir).map_err(io_err(dir.display()))?;
    let file = dir.join(name.hex());
    if fs::read_to_string(&file).is_ok_and(|old| old == text) {
        return Ok(());
    }
    // A root is a promise to gc: written atomically, and fsynced like blobs are.
    teu_store::atomic::write_file(&file, text.as_bytes()).map_err(io_err(file.display()))
}

/// The blobs pinned by live roots; roots whose output is gone are removed.
fn pinned(store: &Store, dry_run: bool) -> Result<BTreeSet<Digest>, ImageError> {
    let mut keep = BTreeSet::new();
    let dir = roots_dir(store);
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(keep),
        Err(e) => return Err(io_err(dir.display())(e)),
    };
    for entry in entries {
        let path = entry.map_err(io_err(dir.display()))?.path();
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        let mut lines = text.lines();
        if lines.next() != Some(ROOT_MAGIC) {
            continue;
        }
        let mut live = true;
        let mut blobs = Vec::new();
        for line in lines {
            if let Some(p) = line.strip_prefix("path ") {
                live = Path::new(p).exists();
            } else if let Some(d) = line.strip_prefix("blob ") {
                if let Ok(d) = d.parse::<Digest>() {
                    blobs.push(d);
                }
            }
        }
        if live {
            keep.extend(blobs);
        } else if !dry_run {
            let _ = fs::remove_file(&path);
        }
    }
    Ok(keep)
}

struct BlobFile {
    digest: Option<Digest>,
    path: PathBuf,
    size: u64,
    used: SystemTime,
}

fn blobs(store: &Store) -> Result<Vec<BlobFile>, ImageError> {
    let dir = store.root().join("blobs/sha256");
    let mut out = Vec::new();
    for entry in fs::read_dir(&dir).map_err(io_err(dir.display()))? {
        let entry = entry.map_err(io_err(dir.display()))?;
        let meta = entry.metadata().map_err(io_err(entry.path().display()))?;
        if !meta.is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        out.push(BlobFile {
            digest: format!("sha256:{name}").parse().ok(),
            path: entry.path(),
            size: meta.len(),
            used: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        });
    }
    Ok(out)
}

/// Files (count, bytes) directly in `dir`, and their paths with mtimes.
fn files_in(dir: &Path) -> Vec<(PathBuf, u64, SystemTime)> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            m.is_file().then(|| {
                (
                    e.path(),
                    m.len(),
                    m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                )
            })
        })
        .collect()
}

/// What `teu cache du` reports.
#[derive(Debug, Serialize)]
pub struct Usage {
    pub root: PathBuf,
    pub blobs: u64,
    pub blob_bytes: u64,
    pub pinned_blobs: u64,
    pub pinned_bytes: u64,
    pub layer_records: u64,
    pub segments: u64,
    pub segment_bytes: u64,
    pub stat_caches: u64,
    pub stat_cache_bytes: u64,
    pub roots: u64,
    pub tmp_files: u64,
    pub tmp_bytes: u64,
}

pub fn du(store: &Store) -> Result<Usage, ImageError> {
    let keep = pinned(store, true)?;
    let blobs = blobs(store)?;
    let pinned: Vec<_> = blobs
        .iter()
        .filter(|b| b.digest.as_ref().is_some_and(|d| keep.contains(d)))
        .collect();
    let cache = teu_layer::cache::cache_dir(store);
    let stat = files_in(&cache.join("stat"));
    let segments = files_in(&cache.join("segments"));
    let tmp = files_in(&store.tmp_dir());
    Ok(Usage {
        root: store.root().to_path_buf(),
        blobs: blobs.len() as u64,
        blob_bytes: blobs.iter().map(|b| b.size).sum(),
        pinned_blobs: pinned.len() as u64,
        pinned_bytes: pinned.iter().map(|b| b.size).sum(),
        layer_records: files_in(&cache.join("layers")).len() as u64,
        segments: segments.len() as u64,
        segment_bytes: segments.iter().map(|f| f.1).sum(),
        stat_caches: stat.len() as u64,
        stat_cache_bytes: stat.iter().map(|f| f.1).sum(),
        roots: files_in(&roots_dir(store)).len() as u64,
        tmp_files: tmp.len() as u64,
        tmp_bytes: tmp.iter().map(|f| f.1).sum(),
    })
}

#[derive(Clone, Debug, Default)]
pub struct GcOptions {
    /// Remove unpinned blobs not used for this long.
    pub max_age: Option<Duration>,
    /// Then remove unpinned blobs, least recently used first, until the blobs fit.
    pub max_size: Option<u64>,
    pub dry_run: bool,
}

#[derive(Debug, Default, Serialize)]
pub struct GcReport {
    pub removed_blobs: u64,
    pub removed_bytes: u64,
    pub kept_blobs: u64,
    pub kept_bytes: u64,
    pub pinned_blobs: u64,
    pub removed_segments: u64,
    pub kept_segments: u64,
    pub removed_layer_records: u64,
    pub removed_stat_caches: u64,
    pub removed_tmp_files: u64,
    pub dry_run: bool,
    pub removed: Vec<String>,
}

pub fn gc(store: &Store, opts: &GcOptions) -> Result<GcReport, ImageError> {
    let now = SystemTime::now();
    let age = |t: SystemTime| now.duration_since(t).unwrap_or_default();
    let keep = pinned(store, opts.dry_run)?;
    let mut all = blobs(store)?;
    // Cached segments age and count toward the size like blobs, but nothing pins them.
    let segment_dir = teu_layer::cache::cache_dir(store).join("segments");
    let segments: Vec<BlobFile> = files_in(&segment_dir)
        .into_iter()
        .map(|(path, size, used)| BlobFile {
            digest: None,
            path,
            size,
            used,
        })
        .collect();
    let segment_count = segments.len();
    all.extend(segments);
    // Least recently used first.
    all.sort_by_key(|b| b.used);
    let mut report = GcReport {
        dry_run: opts.dry_run,
        ..GcReport::default()
    };
    let mut total: u64 = all.iter().map(|b| b.size).sum();
    let remove = |b: &BlobFile, report: &mut GcReport| -> Result<(), ImageError> {
        if !opts.dry_run {
            fs::remove_file(&b.path).map_err(io_err(b.path.display()))?;
        }
        report.removed_blobs += 1;
        report.removed_bytes += b.size;
        report.removed.push(
            b.digest
                .as_ref()
                .map_or_else(|| b.path.display().to_string(), |d| d.to_string()),
        );
        Ok(())
    };
    for b in &all {
        let is_pinned = b.digest.as_ref().is_some_and(|d| keep.contains(d));
        let is_segment = b.path.starts_with(&segment_dir);
        let collectable = !is_pinned && age(b.used) >= GRACE;
        let too_old = opts.max_age.is_some_and(|m| age(b.used) >= m);
        let too_big = opts.max_size.is_some_and(|m| total > m);
        if collectable && (too_old || too_big) {
            if is_segment {
                if !opts.dry_run {
                    let _ = fs::remove_file(&b.path);
                }
                report.removed_segments += 1;
                report.removed_bytes += b.size;
            } else {
                remove(b, &mut report)?;
            }
            total -= b.size;
        } else if is_segment {
            report.kept_segments += 1;
        } else {
            if is_pinned {
                report.pinned_blobs += 1;
            }
            report.kept_blobs += 1;
            report.kept_bytes += b.size;
        }
    }

    debug_assert_eq!(
        report.removed_segments + report.kept_segments,
        segment_count as u64
    );
    let cache = teu_layer::cache::cache_dir(store);
    for (path, _, _) in files_in(&cache.join("layers")) {
        let stale = match teu_layer::cache::read_record(&path) {
            None => true,
            Some(l) if opts.dry_run => report.removed.contains(&l.digest.to_string()),
            Some(l) => !store.has(&l.digest),
        };
        if stale {
            report.removed_layer_records += 1;
            if !opts.dry_run {
                let _ = fs::remove_file(&path);
            }
        }
    }
    if let Some(max_age) = opts.max_age {
        // Layer maps (what a rebuild continues) are small per-layer state like stat
        // caches, and age the same way; they are counted with them.
        let per_layer = [cache.join("stat"), cache.join("maps")];
        for (path, _, used) in per_layer.iter().flat_map(|d| files_in(d)) {
            if age(used) >= max_age {
                report.removed_stat_caches += 1;
                if !opts.dry_run {
                    let _ = fs::remove_file(&path);
                }
            }
        }
    }
    for (path, _, used) in files_in(&store.tmp_dir()) {
        if age(used) >= GRACE {
            report.removed_tmp_files += 1;
            if !opts.dry_run {
                let _ = fs::remove_file(&path);
            }
        }
    }
    Ok(report)
}

#[derive(Debug, Default, Serialize)]
pub struct VerifyReport {
    pub checked: u64,
    pub bytes: u64,
    /// Blobs whose bytes do not hash to their name (removed unless a dry run).
    pub corrupt: Vec<String>,
    pub dry_run: bool,
}

/// Re-hash every blob on up to `jobs` threads; remove those whose content does not match
/// their name (unless `dry_run`). Layer records naming a removed blob are then misses,
/// so the next build rebuilds those layers.
pub fn verify(store: &Store, jobs: usize, dry_run: bool) -> Result<VerifyReport, ImageError> {
    let all = blobs(store)?;
    let jobs = jobs.clamp(1, all.len().max(1));
    type Share = Result<Vec<(usize, bool)>, ImageError>;
    let shares: Vec<Share> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..jobs)
            .map(|t| {
                let all = &all;
                s.spawn(move || {
                    let mut out = Vec::new();
                    for (i, b) in all.iter().enumerate().skip(t).step_by(jobs) {
                        out.push((i, intact(b)?));
                    }
                    Ok(out)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("verify thread"))
            .collect()
    });
    let mut report = VerifyReport {
        dry_run,
        ..VerifyReport::default()
    };
    let mut bad = Vec::new();
    for share in shares {
        for (i, ok) in share? {
            report.checked += 1;
            report.bytes += all[i].size;
            if !ok {
                bad.push(i);
            }
        }
    }
    bad.sort();
    for i in bad {
        let b = &all[i];
        if !dry_run {
            fs::remove_file(&b.path).map_err(io_err(b.path.display()))?;
        }
        report.corrupt.push(b.path.display().to_string());
    }
    Ok(report)
}

fn intact(b: &BlobFile) -> Result<bool, ImageError> {
    let Some(digest) = &b.digest else {
        return Ok(false); // not a digest name: nothing can vouch for it
    };
    let mut f = fs::File::open(&b.path).map_err(io_err(b.path.display()))?;
    let mut w = Sha256Writer::new(io::sink());
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf).map_err(io_err(b.path.display()))?;
        if n == 0 {
            break;
        }
        w.update(&buf[..n]);
    }
    Ok(w.finish().0 == *digest)
}
