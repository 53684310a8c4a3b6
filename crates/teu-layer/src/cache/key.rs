//! Layer cache keys: SHA-256 over everything a layer's bytes depend on.
//!
//! Each part is length-prefixed so no two different inputs can hash the same stream. For
//! entries, the hashed bytes are the tar headers teu writes ([`crate::tar_writer`]),
//! followed by the file's content hash: whatever a header encodes is in the key without
//! having to be listed here, and a field added to headers later cannot be forgotten.

use sha2::{Digest as _, Sha256};
use teu_oci::Digest;

use crate::compress::Compression;
use crate::entry::{Entry, Kind};
use crate::tar_writer;
use crate::LAYER_FORMAT_VERSION;

struct KeyHasher(Sha256);

impl KeyHasher {
    fn new(kind: &str, compression: &Compression) -> KeyHasher {
        let mut h = KeyHasher(Sha256::new());
        h.part(b"teu layer cache key");
        h.part(kind.as_bytes());
        h.part(&LAYER_FORMAT_VERSION.to_le_bytes());
        h.part(compression.encoder_id().as_bytes());
        h.part(compression.media_type().as_bytes());
        let policy = compression
            .segment_policy()
            .map(|p| format!("{}/{}/{}", p.min, p.max, p.big_file))
            .unwrap_or_default();
        h.part(policy.as_bytes());
        h
    }

    fn part(&mut self, bytes: &[u8]) {
        self.0.update((bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
    }

    fn finish(self) -> Digest {
        Digest::from_sha256(self.0.finalize().into())
    }
}

/// The key of a layer built from `entries`; `hashes[i]` is the content hash of entry `i`
/// when it is a file.
pub fn layer_key(
    entries: &[Entry],
    hashes: &[Option<[u8; 32]>],
    compression: &Compression,
) -> Digest {
    let headers: Vec<Vec<u8>> = entries.iter().map(tar_writer::encode_header).collect();
    layer_key_with(entries, &headers, hashes, compression)
}

/// [`layer_key`], with the entries' headers already encoded.
pub fn layer_key_with(
    entries: &[Entry],
    headers: &[Vec<u8>],
    hashes: &[Option<[u8; 32]>],
    compression: &Compression,
) -> Digest {
    let mut h = KeyHasher::new("entries", compression);
    h.part(&(entries.len() as u64).to_le_bytes());
    for ((e, hash), header) in entries.iter().zip(hashes).zip(headers) {
        h.part(header);
        if let Kind::File(_) = e.kind {
            h.part(hash.as_ref().expect("every file has a content hash"));
        }
    }
    h.finish()
}

/// Which layer map ([`super::maps`]) a layer of this scope and compression continues.
pub fn map_name(scope: &[u8], compression: &Compression) -> Digest {
    let mut h = KeyHasher::new("layer map", compression);
    h.part(scope);
    h.finish()
}

/// The key of a layer that is a tarball's bytes verbatim.
pub fn tar_key(tarball_hash: &[u8; 32], compression: &Compression) -> Digest {
    let mut h = KeyHasher::new("verbatim tar", compression);
    h.part(tarball_hash);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{Content, Meta, Priority};
    use std::sync::Arc;

    fn file(path: &str, mode: u32, mtime: u64) -> Entry {
        Entry {
            path: path.as_bytes().to_vec(),
            kind: Kind::File(Content::Bytes(Arc::from(&b"x"[..]))),
            meta: Meta {
                mode,
                uid: 0,
                gid: 0,
                mtime,
            },
            priority: Priority::Explicit,
            origin: Arc::from("t"),
            inode: None,
            xattrs: Vec::new(),
        }
    }

    #[test]
    fn every_input_changes_the_key() {
        let gz = Compression::default();
        let base = layer_key(&[file("a", 0o644, 0)], &[Some([1; 32])], &gz);
        let variants = [
            layer_key(&[file("b", 0o644, 0)], &[Some([1; 32])], &gz),
            layer_key(&[file("a", 0o755, 0)], &[Some([1; 32])], &gz),
            layer_key(&[file("a", 0o644, 1)], &[Some([1; 32])], &gz),
            layer_key(&[file("a", 0o644, 0)], &[Some([2; 32])], &gz),
            layer_key(
                &[file("a", 0o644, 0)],
                &[Some([1; 32])],
                &Compression::Gzip { level: 9 },
            ),
            layer_key(
                &[file("a", 0o644, 0)],
                &[Some([1; 32])],
                &"zstd".parse().unwrap(),
            ),
            layer_key(&[], &[], &gz),
        ];
        for (i, v) in variants.iter().enumerate() {
            assert_ne!(&base, v, "variant {i}");
        }
        assert_eq!(
            base,
            layer_key(&[file("a", 0o644, 0)], &[Some([1; 32])], &gz)
        );
    }
}
