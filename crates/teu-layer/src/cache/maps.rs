//! Layer maps: what the last build of a layer wrote, segment by segment, so the next build
//! of the same layer can continue it after the last unchanged segment.
//!
//! `cache/maps/<hash>` (hash over the stat scope, the encoder, the segment policy and
//! [`crate::LAYER_FORMAT_VERSION`]) holds the blob's digest and size and, per segment,
//! its key ([`crate::plan::segment_keys`]) and the diff_id and digest hash states after it
//! ([`crate::sha::Sha256State`], whose byte counts are the segment's end in the tar and
//! in the blob). A rebuild whose first `k` segment keys equal the map's copies the first
//! `k` segments' bytes from that blob and resumes both hashes: equal keys mean equal
//! uncompressed bytes, and compression is deterministic, so the result is byte for byte a
//! fresh build's (tests compare with `--no-cache`).
//!
//! The file ends with a SHA-256 of its contents; one that does not check out, or whose
//! blob is not in the store with the recorded size, is ignored. Written atomically, not
//! fsynced, and only when the layer record is (the sources did not change meanwhile).

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use sha2::{Digest as _, Sha256};
use teu_oci::Digest;

use crate::sha::{Sha256State, STATE_BYTES};

const MAGIC: &[u8] = b"teu-layer-map 1\0";

#[derive(Clone, Debug)]
pub(crate) struct MapSeg {
    pub key: [u8; 32],
    pub diff: Sha256State,
    pub digest: Sha256State,
}

#[derive(Clone, Debug)]
pub(crate) struct LayerMap {
    pub digest: Digest,
    pub size: u64,
    pub segs: Vec<MapSeg>,
}

impl LayerMap {
    pub fn load(path: &Path) -> Option<LayerMap> {
        let bytes = fs::read(path).ok()?;
        let (body, sum) = bytes.split_at(bytes.len().checked_sub(32)?);
        if Sha256::digest(body)[..] != *sum {
            return None;
        }
        let body = body.strip_prefix(MAGIC)?;
        let (digest, body) = body.split_at_checked(64)?;
        let (size, body) = body.split_at_checked(8)?;
        let each = 32 + 2 * STATE_BYTES;
        if body.len() % each != 0 {
            return None;
        }
        let segs = body
            .chunks(each)
            .map(|c| {
                Some(MapSeg {
                    key: c[..32].try_into().ok()?,
                    diff: Sha256State::from_bytes(&c[32..32 + STATE_BYTES])?,
                    digest: Sha256State::from_bytes(&c[32 + STATE_BYTES..])?,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(LayerMap {
            digest: format!("sha256:{}", std::str::from_utf8(digest).ok()?)
                .parse()
                .ok()?,
            size: u64::from_le_bytes(size.try_into().ok()?),
            segs,
        })
    }

    pub fn save(&self, path: &Path) -> io::Result<()> {
        let mut out = Vec::with_capacity(64 + self.segs.len() * (32 + 2 * STATE_BYTES));
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(self.digest.hex().as_bytes());
        out.extend_from_slice(&self.size.to_le_bytes());
        for s in &self.segs {
            out.extend_from_slice(&s.key);
            out.extend_from_slice(&s.diff.to_bytes());
            out.extend_from_slice(&s.digest.to_bytes());
        }
        let sum = Sha256::digest(&out);
        out.extend_from_slice(&sum);
        let dir = path.parent().expect("maps live in a directory");
        fs::create_dir_all(dir)?;
        let mut tmp = tempfile::Builder::new().prefix(".map-").tempfile_in(dir)?;
        tmp.write_all(&out)?;
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(())
    }
}
