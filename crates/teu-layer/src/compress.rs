//! Layer compression as a sequence of independently compressed segments.
//!
//! A gzip layer is a series of gzip members and a zstd layer a series of zstd frames; both
//! are single valid streams for every decompressor (RFC 1952 and RFC 8878 define
//! concatenation; Go's gzip reader, containerd, pigz and zstd all read them). Each segment
//! is compressed alone by a single-threaded encoder, so the bytes depend only on the segment
//! contents and the pinned encoder settings, never on the number of threads: segments are
//! compressed in parallel and written in order.
//!
//! Pinned settings (part of [`crate::LAYER_FORMAT_VERSION`]):
//! - gzip: flate2 with the zlib-rs backend, level 6 by default, input fed in fixed 64 KiB
//!   pieces (zlib output depends on how input is split into calls), header mtime 0, OS 255
//!   ("unknown"), no name or comment;
//! - zstd: the reference library, level 3 by default, one frame per segment, with content
//!   size and without checksum (the digest already covers the bytes);
//! - none: the tar bytes themselves;
//! - estargz: gzip members exactly as gzip's (same encoder and settings), cut where the
//!   eStargz format needs them (see [`crate::estargz`]) rather than by size.

use std::fmt;
use std::io::Write;
use std::str::FromStr;

use flate2::GzBuilder;
use teu_oci::media_type;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Compression {
    Gzip {
        level: u32,
    },
    Zstd {
        level: i32,
    },
    None,
    /// A `tar+gzip` layer in the eStargz layout; files are split into `chunk`-byte chunks.
    Estargz {
        level: u32,
        chunk: u64,
    },
}

pub const DEFAULT_GZIP_LEVEL: u32 = 6;
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;
/// The reference writer's chunk size (stargz-snapshotter's default).
pub const DEFAULT_ESTARGZ_CHUNK: u64 = 4 * 1024 * 1024;
pub const MAX_ESTARGZ_CHUNK: u64 = 64 * 1024 * 1024;
const FEED: usize = 64 * 1024;

impl Default for Compression {
    fn default() -> Self {
        Compression::Gzip {
            level: DEFAULT_GZIP_LEVEL,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CompressionError {
    #[error("unknown compression {0:?} (expected gzip, zstd, estargz or none)")]
    Unknown(String),
    #[error("estargz chunk size {0} is out of range (4096 bytes to 64 MiB)")]
    Chunk(u64),
    #[error("{algorithm} level {level} is out of range ({range})")]
    Level {
        algorithm: &'static str,
        level: i64,
        range: &'static str,
    },
}

impl Compression {
    /// `name` is `gzip`, `zstd`, `estargz` or `none`; `level` overrides the default.
    pub fn new(name: &str, level: Option<i64>) -> Result<Compression, CompressionError> {
        match name {
            "estargz" => match Compression::new("gzip", level)? {
                Compression::Gzip { level } => Ok(Compression::Estargz {
                    level,
                    chunk: DEFAULT_ESTARGZ_CHUNK,
                }),
                _ => unreachable!("gzip is gzip"),
            },
            "gzip" => {
                let level = level.unwrap_or(DEFAULT_GZIP_LEVEL as i64);
                if !(1..=9).contains(&level) {
                    return Err(CompressionError::Level {
                        algorithm: "gzip",
                        level,
                        range: "1 to 9",
                    });
                }
                Ok(Compression::Gzip {
                    level: level as u32,
                })
            }
            "zstd" => {
                let level = level.unwrap_or(DEFAULT_ZSTD_LEVEL as i64);
                if !(1..=19).contains(&level) {
                    return Err(CompressionError::Level {
                        algorithm: "zstd",
                        level,
                        range: "1 to 19",
                    });
                }
                Ok(Compression::Zstd {
                    level: level as i32,
                })
            }
            "none" if level.is_none() => Ok(Compression::None),
            "none" => Err(CompressionError::Level {
                algorithm: "none",
                level: level.unwrap_or_default(),
                range: "no level",
            }),
            other => Err(CompressionError::Unknown(other.to_string())),
        }
    }

    /// The algorithm's name as [`Compression::new`] takes it.
    pub fn name(&self) -> &'static str {
        match self {
            Compression::Gzip { .. } => "gzip",
            Compression::Zstd { .. } => "zstd",
            Compression::None => "none",
            Compression::Estargz { .. } => "estargz",
        }
    }

    /// The same compression with eStargz chunks of `chunk` bytes (other kinds unchanged).
    pub fn with_chunk_size(self, chunk: u64) -> Result<Compression, CompressionError> {
        // The pipeline holds a few members per thread in memory, and a member is up to a
        // chunk: the cap keeps a layer's memory in tens of MiB, not GiB.
        if !(4096..=MAX_ESTARGZ_CHUNK).contains(&chunk) {
            return Err(CompressionError::Chunk(chunk));
        }
        Ok(match self {
            Compression::Estargz { level, .. } => Compression::Estargz { level, chunk },
            other => other,
        })
    }

    /// The chunk size, for an eStargz layer.
    pub fn estargz_chunk(&self) -> Option<u64> {
        match self {
            Compression::Estargz { chunk, .. } => Some(*chunk),
            _ => None,
        }
    }

    pub fn media_type(&self) -> &'static str {
        match self {
            Compression::Gzip { .. } | Compression::Estargz { .. } => media_type::OCI_LAYER_GZIP,
            Compression::Zstd { .. } => media_type::OCI_LAYER_ZSTD,
            Compression::None => media_type::OCI_LAYER_TAR,
        }
    }

    /// Identifies the encoder and its settings, for cache keys and `created_by`.
    pub fn encoder_id(&self) -> String {
        match self {
            Compression::Gzip { level } => format!("gzip/zlib-rs/{level}"),
            Compression::Zstd { level } => {
                format!("zstd/libzstd-{}/{level}", zstd::zstd_safe::VERSION_NUMBER)
            }
            Compression::None => "none".to_string(),
            Compression::Estargz { level, chunk } => {
                format!(
                    "estargz-{}/zlib-rs/{level}/{chunk}",
                    crate::estargz::WRITER_VERSION
                )
            }
        }
    }

    /// How a layer's tar stream is cut into segments.
    pub fn segment_policy(&self) -> Option<SegmentPolicy> {
        match self {
            // gzip's window is 32 KiB: 0.25-1 MiB segments lose 0.05% on the bench app
            // (docs/layers.md) and keep a one-file rebuild to ~1 MiB of recompression.
            Compression::Gzip { .. } => Some(SegmentPolicy {
                min: 256 * 1024,
                max: 1024 * 1024,
                big_file: 1024 * 1024,
            }),
            // zstd matches across files: larger segments keep the ratio.
            Compression::Zstd { .. } => Some(SegmentPolicy {
                min: 8 * 1024 * 1024,
                max: 16 * 1024 * 1024,
                big_file: 16 * 1024 * 1024,
            }),
            // Cut by the eStargz layout ([`crate::plan::plan_for`]), not by size: a
            // segment is one gzip member, at most a chunk plus the headers after it.
            &Compression::Estargz { chunk, .. } => Some(SegmentPolicy {
                min: chunk as usize,
                max: chunk as usize,
                big_file: chunk,
            }),
            Compression::None => None,
        }
    }

    /// Compress one segment.
    pub fn compress_segment(&self, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        self.compress_segment_into(data, &mut out);
        out
    }

    /// Compress one segment into `out` (cleared first), so callers can reuse buffers.
    /// The bytes are those of [`Compression::compress_segment`].
    pub fn compress_segment_into(&self, data: &[u8], out: &mut Vec<u8>) {
        out.clear();
        match *self {
            Compression::Gzip { level } | Compression::Estargz { level, .. } => {
                out.reserve(data.len() / 2 + 64);
                let mut enc = GzBuilder::new()
                    .mtime(0)
                    .operating_system(255)
                    .write(&mut *out, flate2::Compression::new(level));
                for piece in data.chunks(FEED) {
                    enc.write_all(piece).expect("writing to a Vec");
                }
                enc.finish().expect("writing to a Vec");
            }
            Compression::Zstd { level } => {
                let mut c = zstd::bulk::Compressor::new(level).expect("valid zstd level");
                c.include_checksum(false).expect("zstd parameter");
                c.include_contentsize(true).expect("zstd parameter");
                c.include_dictid(false).expect("zstd parameter");
                out.reserve(zstd::zstd_safe::compress_bound(data.len()));
                c.compress_to_buffer(data, out)
                    .expect("zstd compression into a buffer of compress_bound bytes");
            }
            Compression::None => out.extend_from_slice(data),
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Compression::Gzip { level } => write!(f, "gzip level {level}"),
            Compression::Zstd { level } => write!(f, "zstd level {level}"),
            Compression::None => write!(f, "uncompressed"),
            Compression::Estargz { level, chunk } => {
                write!(f, "estargz (gzip level {level}, {chunk}-byte chunks)")
            }
        }
    }
}

impl FromStr for Compression {
    type Err = CompressionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            Some((name, level)) => {
                let level = level
                    .parse::<i64>()
                    .map_err(|_| CompressionError::Unknown(s.to_string()))?;
                Compression::new(name, Some(level))
            }
            None => Compression::new(s, None),
        }
    }
}

/// Where segments are cut. Boundaries depend only on entries (their paths and sizes), so
/// adding a file changes the segments near it and not the whole layer:
/// - an entry whose data is at least `big_file` starts a new segment, and its data is cut
///   every `big_file` bytes from its own start;
/// - after an entry, the segment is cut when it holds `max` bytes, or when it holds `min`
///   and the entry's path hashes to a cut point (one path in eight).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentPolicy {
    pub min: usize,
    pub max: usize,
    pub big_file: u64,
}

impl SegmentPolicy {
    pub fn cut_after(&self, segment_len: usize, path: &[u8]) -> bool {
        segment_len >= self.max || (segment_len >= self.min && fnv1a(path) % 8 == 0)
    }
}

/// FNV-1a, 64 bit: fixed forever, unlike std's hasher.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn sample() -> Vec<u8> {
        (0..300_000u32)
            .flat_map(|i| format!("line {i} {}\n", i % 97).into_bytes())
            .collect()
    }

    /// Golden: the encoder and its settings are pinned. A dependency update that changes
    /// these bytes changes every digest teu produces and must be a deliberate format bump.
    #[test]
    fn golden_encoder_output() {
        let data = sample();
        let gz = Compression::new("gzip", None)
            .unwrap()
            .compress_segment(&data);
        let zs = Compression::new("zstd", None)
            .unwrap()
            .compress_segment(&data);
        assert_eq!(
            teu_oci::Digest::of(&gz).to_string(),
            "sha256:3e9d78763b154385c7430dfb28e4098cd8ffe4806958c86858816fba52a40d3f"
        );
        assert_eq!(
            teu_oci::Digest::of(&zs).to_string(),
            "sha256:59c6727ddd6ffd87fda2459cba415573ab9220ec0d6b677c34f91fbabb793f82"
        );
    }

    #[test]
    fn concatenated_segments_decompress_as_one_stream() {
        let data = sample();
        let (a, b) = data.split_at(data.len() / 3);
        let c = Compression::default();
        let mut gz = c.compress_segment(a);
        gz.extend(c.compress_segment(b));
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&gz[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);

        let z = Compression::new("zstd", None).unwrap();
        let mut zs = z.compress_segment(a);
        zs.extend(z.compress_segment(b));
        assert_eq!(zstd::decode_all(&zs[..]).unwrap(), data);
    }

    #[test]
    fn levels_are_checked() {
        assert!(Compression::new("gzip", Some(0)).is_err());
        assert!(Compression::new("zstd", Some(22)).is_err());
        assert!(Compression::new("lz4", None).is_err());
        assert_eq!(
            "zstd:5".parse::<Compression>().unwrap(),
            Compression::Zstd { level: 5 }
        );
    }
}
