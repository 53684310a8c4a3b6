//! Where a layer's tar stream is cut into segments, computed from the entries alone.
//!
//! Every tar header's length and every file's size are known before a byte of content is
//! read, and [`crate::SegmentPolicy`] cuts by lengths and paths only, so the segments are
//! a plan: a list of `[start, end)` positions in the stream. The pipeline writes exactly
//! this plan (it is the only place cuts are decided), and the layer cache keys each
//! segment by what is in it ([`segment_keys`]): its headers and its files' content hashes,
//! so a segment whose entries did not change is known to be the same without reading it.

use sha2::{Digest as _, Sha256};

use crate::compress::{Compression, SegmentPolicy};
use crate::entry::{Entry, Kind};
use crate::tar_writer::{self, BLOCK};

/// A position in the tar stream: byte `offset` of entry `entry`'s serialization (header,
/// data, padding). `entry == entries.len()` is the end-of-archive trailer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    pub entry: usize,
    pub offset: u64,
}

/// One segment: `[start, end)`, `len` bytes of tar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seg {
    pub start: Pos,
    pub end: Pos,
    pub len: u64,
}

pub const TRAILER: u64 = 2 * BLOCK as u64;

/// Bytes of entry `i`'s serialization: header, data, padding.
pub fn entry_len(header: &[u8], e: &Entry) -> u64 {
    header.len() as u64 + data_len(e) + tar_writer::padding(data_len(e)) as u64
}

pub fn data_len(e: &Entry) -> u64 {
    match &e.kind {
        Kind::File(c) => c.size(),
        _ => 0,
    }
}

/// The segments of a layer of `entries` compressed with `compression`.
pub fn plan_for(entries: &[Entry], headers: &[Vec<u8>], compression: &Compression) -> Vec<Seg> {
    match compression.estargz_chunk() {
        Some(chunk) => plan_estargz(entries, headers, chunk),
        None => plan(entries, headers, compression.segment_policy()),
    }
}

/// eStargz's gzip members as segments: the first starts at the stream's start, then one
/// at each `chunk` bytes of every non-empty file's data, from its first byte (the tar
/// padding and the headers that follow stay in the member of the chunk before them, as
/// the reference writer has them). The stream ends before the end-of-archive: the TOC
/// entry and the trailer follow in a member of their own ([`crate::estargz`]).
fn plan_estargz(entries: &[Entry], headers: &[Vec<u8>], chunk: u64) -> Vec<Seg> {
    let mut segs = Vec::new();
    let mut start = Pos {
        entry: 0,
        offset: 0,
    };
    let mut len = 0u64;
    for (i, (e, header)) in entries.iter().zip(headers).enumerate() {
        let hl = header.len() as u64;
        let size = data_len(e);
        len += hl;
        let mut done = 0;
        while done < size {
            let at = Pos {
                entry: i,
                offset: hl + done,
            };
            segs.push(Seg {
                start,
                end: at,
                len,
            });
            start = at;
            let n = chunk.min(size - done);
            len = n;
            done += n;
        }
        len += tar_writer::padding(size) as u64;
    }
    let end = Pos {
        entry: entries.len(),
        offset: 0,
    };
    if len > 0 {
        segs.push(Seg { start, end, len });
    }
    segs
}

/// The segments of the tar of `entries` (whose headers are `headers`). Without a policy
/// the whole stream is one segment.
pub fn plan(entries: &[Entry], headers: &[Vec<u8>], policy: Option<SegmentPolicy>) -> Vec<Seg> {
    let n = entries.len();
    let mut segs = Vec::new();
    let mut start = Pos {
        entry: 0,
        offset: 0,
    };
    let mut len = 0u64;
    let mut cut = |at: Pos, len: &mut u64, segs: &mut Vec<Seg>| {
        if *len > 0 {
            segs.push(Seg {
                start,
                end: at,
                len: *len,
            });
            start = at;
            *len = 0;
        }
    };
    for (i, (e, header)) in entries.iter().zip(headers).enumerate() {
        let size = data_len(e);
        let hl = header.len() as u64;
        let Some(p) = policy else {
            len += entry_len(header, e);
            continue;
        };
        // A big file starts a segment, and its data is cut every `big_file` bytes from
        // its own start.
        let big = matches!(e.kind, Kind::File(_)) && size >= p.big_file;
        if big {
            cut(
                Pos {
                    entry: i,
                    offset: 0,
                },
                &mut len,
                &mut segs,
            );
        }
        len += hl;
        if big {
            let mut done = 0;
            while size - done >= p.big_file {
                done += p.big_file;
                len += p.big_file;
                let at = Pos {
                    entry: i,
                    offset: hl + done,
                };
                cut(at, &mut len, &mut segs);
            }
            len += size - done;
        } else {
            len += size;
        }
        len += tar_writer::padding(size) as u64;
        if p.cut_after(len as usize, &e.path) {
            cut(
                Pos {
                    entry: i + 1,
                    offset: 0,
                },
                &mut len,
                &mut segs,
            );
        }
    }
    len += TRAILER;
    cut(
        Pos {
            entry: n,
            offset: TRAILER,
        },
        &mut len,
        &mut segs,
    );
    segs
}

/// A key per segment that determines its bytes: for every entry it touches, the header,
/// the content hash (files) and the part of the entry it holds; the trailer by name.
/// `hashes[i]` is entry `i`'s content hash when it is a file.
pub fn segment_keys(
    entries: &[Entry],
    headers: &[Vec<u8>],
    hashes: &[Option<[u8; 32]>],
    segs: &[Seg],
) -> Vec<[u8; 32]> {
    segs.iter()
        .map(|s| {
            let mut h = Sha256::new();
            let mut part = |b: &[u8]| {
                h.update((b.len() as u64).to_le_bytes());
                h.update(b);
            };
            part(b"teu segment by entries");
            part(&s.len.to_le_bytes());
            let last = if s.end.offset == 0 {
                s.end.entry
            } else {
                s.end.entry + 1
            };
            for i in s.start.entry..last {
                let from = if i == s.start.entry {
                    s.start.offset
                } else {
                    0
                };
                if i == entries.len() {
                    part(b"trailer");
                    part(&from.to_le_bytes());
                    continue;
                }
                let to = if i == s.end.entry {
                    s.end.offset
                } else {
                    entry_len(&headers[i], &entries[i])
                };
                part(&headers[i]);
                if let Some(hash) = &hashes[i] {
                    part(hash);
                }
                part(&from.to_le_bytes());
                part(&to.to_le_bytes());
            }
            h.finalize().into()
        })
        .collect()
}
