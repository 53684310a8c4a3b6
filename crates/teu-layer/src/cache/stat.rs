//! The stat cache: the SHA-256 of a file's content, remembered under what `stat` says
//! about the file, so an unchanged file is never read again to learn its hash.
//!
//! A record is trusted only when every field matches the file as it is now: path, size,
//! mtime and ctime (to the nanosecond), inode, device and mode. ctime matters because
//! tools that restore an mtime (`touch -d`, `tar -x`, `rsync -t`) cannot restore it.
//!
//! The racy-timestamp guard is git's: a file changed within the same timestamp tick as the
//! moment it was hashed can change again without its mtime moving (file systems with
//! one-second or coarser clocks). So a record whose mtime or ctime is not strictly older
//! (in whole seconds) than the cache file itself is not trusted; the file is hashed again
//! and the record settles once a later build saves the cache in a later second.
//!
//! File format (all integers little endian): `teu-stat-cache\0`, a u32 version, a u64
//! record count, the records (u32 path length, path bytes, then size, mtime s, mtime ns,
//! ctime s, ctime ns, inode, device, mode as u64/i64, then the 32-byte hash), and finally
//! the SHA-256 of everything before it. A file that does not parse is ignored (it is a
//! cache); it is written atomically (temporary file, rename) but not fsynced: losing it
//! costs a re-hash, never a wrong answer, because the trailing hash must match.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

const MAGIC: &[u8] = b"teu-stat-cache\0";
const VERSION: u32 = 1;

/// What `stat` says about a file, as compared by the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStat {
    pub size: u64,
    pub mtime: i64,
    pub mtime_ns: i64,
    pub ctime: i64,
    pub ctime_ns: i64,
    pub ino: u64,
    pub dev: u64,
    pub mode: u32,
}

impl FileStat {
    pub fn of(path: &Path) -> io::Result<FileStat> {
        Ok(FileStat::from_metadata(&fs::metadata(path)?))
    }

    pub fn from_metadata(m: &fs::Metadata) -> FileStat {
        FileStat {
            size: m.len(),
            mtime: m.mtime(),
            mtime_ns: m.mtime_nsec(),
            ctime: m.ctime(),
            ctime_ns: m.ctime_nsec(),
            ino: m.ino(),
            dev: m.dev(),
            mode: m.mode(),
        }
    }

    /// Changed within the tick of `stamp` (seconds) or later: not to be trusted.
    pub(crate) fn racy(&self, stamp: i64) -> bool {
        self.mtime >= stamp || self.ctime >= stamp
    }
}

#[derive(Clone, Copy, Debug)]
struct Record {
    stat: FileStat,
    hash: [u8; 32],
}

/// The stat cache of one scope (one layer's sources), loaded from and saved to one file.
#[derive(Debug)]
pub struct StatCache {
    file: PathBuf,
    /// The cache file's mtime in whole seconds when it was loaded (git's index timestamp).
    stamp: i64,
    loaded: HashMap<PathBuf, Record>,
    /// Records seen by this build: what is saved, so paths that left the layer drop out.
    used: HashMap<PathBuf, Record>,
    dirty: bool,
}

impl StatCache {
    /// Load the cache at `file`; a missing or unreadable file is an empty cache.
    pub fn load(file: PathBuf) -> StatCache {
        let (stamp, loaded) = match read(&file) {
            Some(v) => v,
            None => (i64::MIN, HashMap::new()),
        };
        StatCache {
            file,
            stamp,
            loaded,
            used: HashMap::new(),
            dirty: false,
        }
    }

    /// An empty cache that is never saved.
    pub fn disabled() -> StatCache {
        StatCache {
            file: PathBuf::new(),
            stamp: i64::MIN,
            loaded: HashMap::new(),
            used: HashMap::new(),
            dirty: false,
        }
    }

    /// The hash remembered for `path` if `stat` still describes it and is not racy.
    pub fn get(&mut self, path: &Path, stat: &FileStat) -> Option<[u8; 32]> {
        let r = self.loaded.get(path)?;
        if r.stat != *stat || stat.racy(self.stamp) {
            return None;
        }
        let r = *r;
        self.used.insert(path.to_path_buf(), r);
        Some(r.hash)
    }

    /// Remember that `path`, as described by `stat`, hashes to `hash`. Callers skip files
    /// that are racy against the moment hashing started (see [`crate::cache`]).
    pub fn insert(&mut self, path: &Path, stat: FileStat, hash: [u8; 32]) {
        self.used.insert(path.to_path_buf(), Record { stat, hash });
        self.dirty = true;
    }

    /// Write the records this build used, if anything changed.
    pub fn save(&self) -> io::Result<()> {
        let dropped = self.loaded.keys().any(|p| !self.used.contains_key(p));
        if self.file.as_os_str().is_empty() || !(self.dirty || dropped) {
            return Ok(());
        }
        let mut out = Vec::with_capacity(64 + self.used.len() * 128);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(self.used.len() as u64).to_le_bytes());
        let mut paths: Vec<_> = self.used.iter().collect();
        paths.sort_by(|a, b| a.0.cmp(b.0));
        for (path, r) in paths {
            let p = path.as_os_str().as_bytes();
            out.extend_from_slice(&(p.len() as u32).to_le_bytes());
            out.extend_from_slice(p);
            let s = &r.stat;
            for v in [s.size, s.mtime as u64, s.mtime_ns as u64, s.ctime as u64] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            for v in [s.ctime_ns as u64, s.ino, s.dev, s.mode as u64] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            out.extend_from_slice(&r.hash);
        }
        let sum = sha256(&out);
        out.extend_from_slice(&sum);
        let dir = self.file.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir)?;
        let mut tmp = tempfile::Builder::new().prefix(".stat-").tempfile_in(dir)?;
        tmp.write_all(&out)?;
        tmp.persist(&self.file).map_err(|e| e.error)?;
        Ok(())
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn read(file: &Path) -> Option<(i64, HashMap<PathBuf, Record>)> {
    let bytes = fs::read(file).ok()?;
    let stamp = fs::metadata(file).ok()?.mtime();
    let (body, sum) = bytes.split_at(bytes.len().checked_sub(32)?);
    if sha256(body) != sum {
        return None;
    }
    let mut r = Reader(body);
    if r.take(MAGIC.len())? != MAGIC || r.u32()? != VERSION {
        return None;
    }
    let n = r.u64()?;
    let mut map = HashMap::with_capacity(n.min(1 << 20) as usize);
    for _ in 0..n {
        let len = r.u32()? as usize;
        let path = PathBuf::from(std::ffi::OsString::from_vec(r.take(len)?.to_vec()));
        let stat = FileStat {
            size: r.u64()?,
            mtime: r.u64()? as i64,
            mtime_ns: r.u64()? as i64,
            ctime: r.u64()? as i64,
            ctime_ns: r.u64()? as i64,
            ino: r.u64()?,
            dev: r.u64()?,
            mode: r.u64()? as u32,
        };
        let hash: [u8; 32] = r.take(32)?.try_into().ok()?;
        map.insert(path, Record { stat, hash });
    }
    Some((stamp, map))
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(mtime: i64, ctime: i64) -> FileStat {
        FileStat {
            size: 5,
            mtime,
            mtime_ns: 1,
            ctime,
            ctime_ns: 2,
            ino: 3,
            dev: 4,
            mode: 0o100644,
        }
    }

    #[test]
    fn records_round_trip_and_mismatches_miss() {
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("c");
        let mut c = StatCache::load(file.clone());
        c.insert(Path::new("/a"), stat(100, 100), [7; 32]);
        c.save().unwrap();
        let mut c = StatCache::load(file);
        assert_eq!(c.get(Path::new("/a"), &stat(100, 100)), Some([7; 32]));
        assert_eq!(c.get(Path::new("/a"), &stat(100, 101)), None, "ctime");
        let mut other = stat(100, 100);
        other.ino = 9;
        assert_eq!(c.get(Path::new("/a"), &other), None, "inode");
        assert_eq!(c.get(Path::new("/b"), &stat(100, 100)), None);
    }

    /// A file whose mtime or ctime is in the same second as the cache file (or later) is
    /// hashed again: it may have changed again within the same tick.
    #[test]
    fn racy_records_are_not_trusted() {
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("c");
        let mut c = StatCache::load(file.clone());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        c.insert(Path::new("/now"), stat(now, now - 10), [1; 32]);
        c.insert(Path::new("/ctime-now"), stat(now - 10, now), [2; 32]);
        c.insert(Path::new("/old"), stat(now - 10, now - 10), [3; 32]);
        c.save().unwrap();
        let mut c = StatCache::load(file);
        assert_eq!(c.get(Path::new("/now"), &stat(now, now - 10)), None);
        assert_eq!(c.get(Path::new("/ctime-now"), &stat(now - 10, now)), None);
        assert_eq!(
            c.get(Path::new("/old"), &stat(now - 10, now - 10)),
            Some([3; 32])
        );
    }

    #[test]
    fn a_damaged_file_is_an_empty_cache() {
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("c");
        let mut c = StatCache::load(file.clone());
        c.insert(Path::new("/a"), stat(1, 1), [7; 32]);
        c.save().unwrap();
        let mut bytes = fs::read(&file).unwrap();
        bytes[20] ^= 1;
        fs::write(&file, bytes).unwrap();
        let mut c = StatCache::load(file);
        assert_eq!(c.get(Path::new("/a"), &stat(1, 1)), None);
    }
}
