//! SHA-256 whose state can be saved and resumed.
//!
//! A rebuild that changed one file keeps every segment before it; to skip hashing them
//! the diff_id (over the tar) and the digest (over the blob) resume from the state after
//! the last unchanged segment. sha2 0.10 offers no serializable state, but it exposes the
//! raw compression function (`compress256`, the `compress` feature, which still uses the
//! SHA-NI code path); the state is then the eight words, the byte count and the partial
//! block, 105 bytes. Finishing is the standard padding, so the result is plain SHA-256
//! (tested against `sha2::Sha256`).

use sha2::digest::generic_array::GenericArray;
use sha2::digest::typenum::U64;

const IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// Bytes of [`Sha256State::to_bytes`].
pub const STATE_BYTES: usize = 32 + 8 + 1 + 64;

#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Sha256State {
    h: [u32; 8],
    len: u64,
    buf: [u8; 64],
    buf_len: u8,
}

impl Default for Sha256State {
    fn default() -> Self {
        Sha256State::new()
    }
}

impl std::fmt::Debug for Sha256State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sha256State({} bytes)", self.len)
    }
}

fn compress(h: &mut [u32; 8], blocks: &[u8]) {
    debug_assert_eq!(blocks.len() % 64, 0);
    // SAFETY: GenericArray<u8, U64> is [u8; 64] (repr(transparent)), alignment 1.
    let blocks: &[GenericArray<u8, U64>] =
        unsafe { std::slice::from_raw_parts(blocks.as_ptr().cast(), blocks.len() / 64) };
    sha2::compress256(h, blocks);
}

impl Sha256State {
    pub fn new() -> Sha256State {
        Sha256State {
            h: IV,
            len: 0,
            buf: [0; 64],
            buf_len: 0,
        }
    }

    /// Bytes hashed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if self.buf_len > 0 {
            let used = self.buf_len as usize;
            let take = (64 - used).min(data.len());
            self.buf[used..used + take].copy_from_slice(&data[..take]);
            self.buf_len += take as u8;
            data = &data[take..];
            if self.buf_len < 64 {
                return;
            }
            let block = self.buf;
            compress(&mut self.h, &block);
            self.buf_len = 0;
        }
        let whole = data.len() / 64 * 64;
        if whole > 0 {
            compress(&mut self.h, &data[..whole]);
        }
        let rest = &data[whole..];
        self.buf[..rest.len()].copy_from_slice(rest);
        self.buf_len = rest.len() as u8;
    }

    pub fn finish(mut self) -> [u8; 32] {
        let bits = self.len.wrapping_mul(8);
        let mut pad = [0u8; 128];
        pad[0] = 0x80;
        let used = self.buf_len as usize;
        let pad_len = if used < 56 { 56 - used } else { 120 - used };
        self.update(&pad[..pad_len]);
        self.update(&bits.to_be_bytes());
        debug_assert_eq!(self.buf_len, 0);
        let mut out = [0u8; 32];
        for (o, w) in out.chunks_mut(4).zip(self.h) {
            o.copy_from_slice(&w.to_be_bytes());
        }
        out
    }

    pub fn to_bytes(&self) -> [u8; STATE_BYTES] {
        let mut out = [0u8; STATE_BYTES];
        for (o, w) in out[..32].chunks_mut(4).zip(self.h) {
            o.copy_from_slice(&w.to_le_bytes());
        }
        out[32..40].copy_from_slice(&self.len.to_le_bytes());
        out[40] = self.buf_len;
        out[41..].copy_from_slice(&self.buf);
        out
    }

    /// The inverse of [`Sha256State::to_bytes`]; `None` for bytes no state gives.
    pub fn from_bytes(b: &[u8]) -> Option<Sha256State> {
        if b.len() != STATE_BYTES || b[40] >= 64 {
            return None;
        }
        let mut h = [0u32; 8];
        for (w, c) in h.iter_mut().zip(b[..32].chunks(4)) {
            *w = u32::from_le_bytes(c.try_into().ok()?);
        }
        let len = u64::from_le_bytes(b[32..40].try_into().ok()?);
        if len % 64 != u64::from(b[40]) {
            return None;
        }
        Some(Sha256State {
            h,
            len,
            buf_len: b[40],
            buf: b[41..].try_into().ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest as _;

    #[test]
    fn equals_sha256_for_any_split_and_survives_a_round_trip() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 31 % 251) as u8).collect();
        for len in [0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 1000, 10_000] {
            let want: [u8; 32] = sha2::Sha256::digest(&data[..len]).into();
            for split in [0, 1, 7, 63, 64, 100, len / 2, len] {
                let split = split.min(len);
                let mut s = Sha256State::new();
                s.update(&data[..split]);
                let s = Sha256State::from_bytes(&s.to_bytes()).unwrap();
                let mut s2 = s;
                s2.update(&data[split..len]);
                assert_eq!(s2.finish(), want, "len {len} split {split}");
                assert_eq!(s.len(), split as u64);
            }
        }
        assert!(Sha256State::from_bytes(&[0; STATE_BYTES - 1]).is_none());
    }
}
