//! The segment cache: compressed segments by the hash of their uncompressed bytes, so a
//! layer that changed in one file recompresses only the segment(s) holding that file.
//!
//! Segments are cut where [`crate::SegmentPolicy`] says, which depends only on the
//! entries (paths and sizes), so after a one-file change every other segment has the same
//! bytes as before and is found here. The key is SHA-256 over the encoder id, the layer
//! format version and the segment's bytes; a worker thread hashes its segment before
//! compressing it, so hashing runs on all cores next to compression.
//!
//! `cache/segments/<key>` holds the compressed bytes followed by their CRC-32 and length
//! (8 bytes, little endian). A file whose trailer does not match is ignored (and
//! overwritten), so a damaged cache costs a recompression, never a wrong layer. CRC-32
//! rather than SHA-256 because it guards against damage, not attack (the key already is
//! a SHA-256 of the input), and it runs at memory speed on every hit. Files are written atomically but not
//! fsynced, and a failed write is not an error: the segment is simply compressed again
//! next time. Reading a segment sets its mtime, which `teu cache gc` ages it by.

use std::fs;
use std::io::{Read, Write};
use std::path::PathBuf;

use sha2::{Digest as _, Sha256};
use teu_store::Store;

use crate::compress::Compression;
use crate::LAYER_FORMAT_VERSION;

#[derive(Clone, Debug)]
pub struct SegmentCache {
    dir: PathBuf,
}

impl SegmentCache {
    pub fn new(store: &Store) -> SegmentCache {
        SegmentCache {
            dir: super::cache_dir(store).join("segments"),
        }
    }

    /// The directory holding cached segments.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// `compression.compress_segment_into(data, out)`, from the cache when it has it.
    pub fn compress_into(&self, compression: &Compression, data: &[u8], out: &mut Vec<u8>) {
        let mut h = Sha256::new();
        h.update(b"teu segment\0");
        h.update(LAYER_FORMAT_VERSION.to_le_bytes());
        let id = compression.encoder_id();
        h.update((id.len() as u64).to_le_bytes());
        h.update(id.as_bytes());
        h.update(data);
        let key = hex(&h.finalize());
        let path = self.dir.join(&key);
        if read(&path, out) {
            return;
        }
        compression.compress_segment_into(data, out);
        let _ = write(&self.dir, &path, out);
    }

    /// [`SegmentCache::compress_into`] into a new buffer.
    pub fn compress(&self, compression: &Compression, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        self.compress_into(compression, data, &mut out);
        out
    }
}

const TRAILER: usize = 8;

/// CRC-32 and length of a cached segment's bytes.
fn trailer(data: &[u8]) -> [u8; TRAILER] {
    let mut t = [0u8; TRAILER];
    t[..4].copy_from_slice(&crc32fast::hash(data).to_le_bytes());
    t[4..].copy_from_slice(&(data.len() as u32).to_le_bytes());
    t
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Read a cached segment into `out`; false (and `out` cleared) if it is missing or damaged.
fn read(path: &std::path::Path, out: &mut Vec<u8>) -> bool {
    out.clear();
    let Ok(mut f) = fs::File::open(path) else {
        return false;
    };
    if f.read_to_end(out).is_err() || out.len() < TRAILER {
        out.clear();
        return false;
    }
    let split = out.len() - TRAILER;
    if trailer(&out[..split])[..] != out[split..] {
        out.clear();
        return false;
    }
    let _ = f.set_modified(std::time::SystemTime::now());
    out.truncate(split);
    true
}

fn write(dir: &std::path::Path, path: &std::path::Path, data: &[u8]) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new().prefix(".seg-").tempfile_in(dir)?;
    tmp.write_all(data)?;
    tmp.write_all(&trailer(data))?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_give_the_same_bytes_and_damage_is_ignored() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::open(d.path()).unwrap();
        let cache = SegmentCache::new(&store);
        let data: Vec<u8> = (0..100_000u32).flat_map(|i| i.to_le_bytes()).collect();
        for c in [Compression::default(), "zstd".parse().unwrap()] {
            let fresh = c.compress_segment(&data);
            assert_eq!(cache.compress(&c, &data), fresh, "{c} miss");
            assert_eq!(cache.compress(&c, &data), fresh, "{c} hit");
        }
        assert_eq!(fs::read_dir(cache.dir()).unwrap().count(), 2);
        for f in fs::read_dir(cache.dir()).unwrap() {
            let p = f.unwrap().path();
            let mut b = fs::read(&p).unwrap();
            b[10] ^= 1;
            fs::write(&p, b).unwrap();
        }
        let c = Compression::default();
        assert_eq!(cache.compress(&c, &data), c.compress_segment(&data));
    }
}
