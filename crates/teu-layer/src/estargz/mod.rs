//! eStargz layers: `tar+gzip` blobs that a lazy snapshotter can read file by file, and
//! that every other runtime reads as the plain gzip layer they are.
//!
//! The layout (containerd/stargz-snapshotter's docs/estargz.md): gzip members start at
//! the blob's start, at each non-empty regular file's payload and at each further chunk
//! of it; the last tar entry, `stargz.index.json`, is the TOC ([`toc`]), in a member of
//! its own with the tar end-of-archive; then a 51-byte footer ([`footer`]) naming the
//! TOC's offset. A landmark file says where the prefetched files end ([`arrange`]).
//!
//! teu's own writer, because the reference one cannot give teu's promise: its output
//! depends on how many goroutines compress unless that is pinned, and no crate writes the
//! format. Here member boundaries come from the entries alone ([`crate::plan::plan_for`]),
//! so the members are the pipeline's segments: compressed in parallel by the same gzip
//! encoder as gzip layers, written in order, and cached and reused like them. The TOC
//! needs each member's compressed offset, so it is built once the last member is
//! written (offsets are the running blob length) and appended with the footer
//! ([`tail`]). Not written: `innerOffset` (readers before 0.13, Debian's 0.12
//! included, do not know it). `xattrs` is written only for converted layers' entries
//! that have extended attributes (layers built from directories have none).

pub mod convert;
pub mod footer;
pub mod toc;

use std::io::{self, Read, Seek, SeekFrom};

use globset::GlobBuilder;
use teu_oci::Digest;

use crate::compress::Compression;
use crate::entry::{Entry, Kind};
use crate::plan::Seg;
use crate::tar_writer::{self, BLOCK};

pub use footer::{footer, parse_footer, FOOTER_SIZE};
pub use toc::{Toc, TocEntry};

/// Bumped when the bytes of teu's eStargz layers change for the same inputs (part of the
/// encoder id, hence of every cache key).
pub const WRITER_VERSION: u32 = 1;
pub const TOC_TAR_NAME: &str = "stargz.index.json";
pub const PREFETCH_LANDMARK: &str = ".prefetch.landmark";
pub const NO_PREFETCH_LANDMARK: &str = ".no.prefetch.landmark";
pub const LANDMARK_CONTENTS: u8 = 0x0f;
/// Layer descriptor annotations a lazy snapshotter looks for.
pub const TOC_DIGEST_ANNOTATION: &str = "containerd.io/snapshot/stargz/toc.digest";
pub const UNCOMPRESSED_SIZE_ANNOTATION: &str = "io.containers.estargz.uncompressed-size";

#[derive(Debug, thiserror::Error)]
pub enum EstargzError {
    #[error("prefetch pattern {pattern:?} is not a valid glob: {message}")]
    Pattern { pattern: String, message: String },
    #[error("prefetch pattern {pattern:?} matches no file of the layer (patterns are absolute paths in the image, such as \"/app/bin/server\" or \"/app/lib/**\")")]
    NoMatch { pattern: String },
    #[error("{path}: this name is reserved in an eStargz layer")]
    Reserved { path: String },
    #[error(
        "{path}: eStargz's table of contents is JSON, so paths and link targets must be UTF-8"
    )]
    NotUtf8 { path: String },
    #[error("not an eStargz blob: {0}")]
    NotEstargz(String),
    #[error("reading the blob: {0}")]
    Io(#[from] io::Error),
}

fn landmark(name: &str) -> Entry {
    Entry::in_memory(
        name.as_bytes(),
        &[LANDMARK_CONTENTS],
        0,
        std::sync::Arc::from("estargz landmark"),
    )
}

/// Order a layer's entries (in path order, as [`crate::LayerTree::finish`] returns them)
/// for eStargz and add the landmark: the entries `prefetch` names first, with the
/// directories above them and the targets of hard links among them (a reader must meet
/// those first), in path order; then `.prefetch.landmark`; then the rest in path order.
/// Without patterns, `.no.prefetch.landmark` comes first. Patterns are globs over
/// absolute image paths (`*` stays within a path component, `**` crosses them) and match
/// any entry but a directory; a pattern matching nothing is an error, because a typo
/// would otherwise silently cost the prefetch it was written for.
pub fn arrange(entries: Vec<Entry>, prefetch: &[String]) -> Result<Vec<Entry>, EstargzError> {
    for e in &entries {
        let p = e.path.as_slice();
        if p == TOC_TAR_NAME.as_bytes()
            || p == PREFETCH_LANDMARK.as_bytes()
            || p == NO_PREFETCH_LANDMARK.as_bytes()
        {
            return Err(EstargzError::Reserved {
                path: crate::path::display(p),
            });
        }
    }
    if prefetch.is_empty() {
        let mut out = Vec::with_capacity(entries.len() + 1);
        out.push(landmark(NO_PREFETCH_LANDMARK));
        out.extend(entries);
        return Ok(out);
    }
    let mut globs = Vec::new();
    for p in prefetch {
        let g = GlobBuilder::new(p)
            .literal_separator(true)
            .build()
            .map_err(|e| EstargzError::Pattern {
                pattern: p.clone(),
                message: e.kind().to_string(),
            })?
            .compile_matcher();
        globs.push(g);
    }
    let mut first = vec![false; entries.len()];
    let mut used = vec![false; globs.len()];
    for (i, e) in entries.iter().enumerate() {
        if matches!(e.kind, Kind::Dir) {
            continue;
        }
        let abs = format!("/{}", String::from_utf8_lossy(&e.path));
        for (g, u) in globs.iter().zip(&mut used) {
            if g.is_match(&abs) {
                *u = true;
                first[i] = true;
            }
        }
    }
    if let Some(k) = used.iter().position(|u| !u) {
        return Err(EstargzError::NoMatch {
            pattern: prefetch[k].clone(),
        });
    }
    // What a prioritized entry needs before it: its directories and its link target.
    let index: std::collections::HashMap<&[u8], usize> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| (e.path.as_slice(), i))
        .collect();
    let mut pending: Vec<usize> = (0..entries.len()).filter(|&i| first[i]).collect();
    while let Some(i) = pending.pop() {
        let e = &entries[i];
        let mut needs: Vec<&[u8]> = Vec::new();
        if let Kind::Hardlink(t) = &e.kind {
            needs.push(t);
        }
        let mut p = e.path.as_slice();
        while let Some(cut) = p.iter().rposition(|&b| b == b'/') {
            p = &p[..cut];
            needs.push(p);
        }
        for n in needs {
            if let Some(&j) = index.get(n) {
                if !first[j] {
                    first[j] = true;
                    pending.push(j);
                }
            }
        }
    }
    drop(index);
    let (mut out, rest): (Vec<_>, Vec<_>) = entries.into_iter().zip(first).partition(|(_, f)| *f);
    let mut out: Vec<Entry> = out.drain(..).map(|(e, _)| e).collect();
    out.push(landmark(PREFETCH_LANDMARK));
    out.extend(rest.into_iter().map(|(e, _)| e));
    Ok(out)
}

/// What ends an eStargz blob, once its file members are written.
pub(crate) struct Tail {
    /// The uncompressed bytes: the TOC's tar entry and the end-of-archive (diff_id).
    pub tar: Vec<u8>,
    /// The compressed bytes: the TOC member and the footer.
    pub blob: Vec<u8>,
    pub toc_digest: Digest,
}

/// The tail of a layer of `entries` planned as `segs`, whose segments start at `starts`
/// of the blob and end at `end`.
pub(crate) fn tail(
    entries: &[Entry],
    headers: &[Vec<u8>],
    segs: &[Seg],
    starts: &[u64],
    end: u64,
    digests: &toc::FileDigests,
    compression: &Compression,
) -> Result<Tail, EstargzError> {
    let toc = toc::build(entries, headers, segs, starts, digests)?;
    let json = toc::to_json(&toc);
    let mut tar = tar_writer::encode_header(&Entry::in_memory(
        TOC_TAR_NAME.as_bytes(),
        &json,
        0,
        std::sync::Arc::from("estargz"),
    ));
    tar.extend_from_slice(&json);
    tar.extend_from_slice(&[0u8; BLOCK][..tar_writer::padding(json.len() as u64)]);
    tar.extend_from_slice(&tar_writer::trailer());
    let mut blob = compression.compress_segment(&tar);
    blob.extend_from_slice(&footer(end));
    Ok(Tail {
        tar,
        blob,
        toc_digest: Digest::of(&json),
    })
}

/// Read an eStargz blob's TOC by random access, as a lazy reader does: the footer, then
/// the TOC member it names. Returns the TOC, its digest (the annotation's value) and its
/// JSON bytes.
pub fn read_toc<R: Read + Seek>(blob: &mut R) -> Result<ReadToc, EstargzError> {
    let len = blob.seek(SeekFrom::End(0))?;
    if len < FOOTER_SIZE as u64 {
        return Err(EstargzError::NotEstargz(format!(
            "{len} bytes, shorter than the footer"
        )));
    }
    blob.seek(SeekFrom::Start(len - FOOTER_SIZE as u64))?;
    let mut f = [0u8; FOOTER_SIZE];
    blob.read_exact(&mut f)?;
    let at = parse_footer(&f)
        .ok_or_else(|| EstargzError::NotEstargz("no eStargz footer at its end".into()))?;
    if at >= len - FOOTER_SIZE as u64 {
        return Err(EstargzError::NotEstargz(format!(
            "the footer names TOC offset {at}, past the blob's end"
        )));
    }
    blob.seek(SeekFrom::Start(at))?;
    let mut member = Vec::new();
    blob.take(len - FOOTER_SIZE as u64 - at)
        .read_to_end(&mut member)?;
    let (toc, digest, json) = parse_toc_member(&member)?;
    Ok(ReadToc {
        toc,
        digest,
        json,
        toc_offset: at,
    })
}

/// The TOC, its digest and JSON from the bytes of the TOC member (from the offset the
/// footer names to the footer).
pub fn parse_toc_member(member: &[u8]) -> Result<(Toc, Digest, Vec<u8>), EstargzError> {
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(member).read_to_end(&mut tar)?;
    let json = toc_json(&tar)?;
    let toc: Toc = serde_json::from_slice(json)
        .map_err(|e| EstargzError::NotEstargz(format!("the TOC is not valid JSON: {e}")))?;
    Ok((toc, Digest::of(json), json.to_vec()))
}

/// A TOC as read from a blob.
#[derive(Clone, Debug)]
pub struct ReadToc {
    pub toc: Toc,
    /// SHA-256 of the JSON: the `toc.digest` annotation's value.
    pub digest: Digest,
    pub json: Vec<u8>,
    /// Where the TOC member starts (the end of the last file's member).
    pub toc_offset: u64,
}

/// The content of the tar entry `stargz.index.json` that `tar` starts with.
fn toc_json(tar: &[u8]) -> Result<&[u8], EstargzError> {
    let bad = |why: &str| EstargzError::NotEstargz(format!("the TOC member {why}"));
    if tar.len() < BLOCK {
        return Err(bad("is shorter than a tar header"));
    }
    let name_end = tar[..100].iter().position(|&b| b == 0).unwrap_or(100);
    if &tar[..name_end] != TOC_TAR_NAME.as_bytes() {
        return Err(bad(&format!(
            "starts with {:?}, not {TOC_TAR_NAME}",
            String::from_utf8_lossy(&tar[..name_end])
        )));
    }
    let size = std::str::from_utf8(&tar[124..136])
        .ok()
        .map(|s| s.trim_matches(|c: char| c == '\0' || c == ' '))
        .and_then(|s| u64::from_str_radix(s, 8).ok())
        .ok_or_else(|| bad("has a bad size field"))? as usize;
    tar.get(BLOCK..BLOCK + size)
        .ok_or_else(|| bad("is shorter than its TOC"))
}

/// Fetch one file's bytes from an eStargz blob by random access: for each chunk the TOC
/// names, `read_range(offset, len)` reads the compressed member (from the chunk's offset
/// to the next member's, or to `toc_offset`), which is inflated and checked against
/// `chunkDigest`.
pub fn read_file_by_ranges(
    toc: &Toc,
    name: &str,
    toc_offset: u64,
    read_range: &mut dyn FnMut(u64, u64) -> io::Result<Vec<u8>>,
) -> Result<Vec<u8>, EstargzError> {
    let clean = |s: &str| s.trim_start_matches("./").trim_matches('/').to_string();
    let want = clean(name);
    let i = toc
        .entries
        .iter()
        .position(|e| e.kind == "reg" && clean(&e.name) == want)
        .ok_or_else(|| EstargzError::NotEstargz(format!("no regular file {name} in the TOC")))?;
    // A member ends where the next entry with an offset begins, or at the TOC member.
    let mut offsets: Vec<u64> = toc
        .entries
        .iter()
        .filter(|e| e.offset != 0)
        .map(|e| e.offset)
        .collect();
    offsets.push(toc_offset);
    offsets.sort_unstable();
    if toc.entries[i].size == 0 {
        return Ok(Vec::new()); // no member holds an empty file
    }
    let mut out = Vec::with_capacity(toc.entries[i].size as usize);
    for (offset, chunk_offset, len, digest) in TocEntry::chunks(&toc.entries, i) {
        let next = offsets
            .iter()
            .copied()
            .find(|&o| o > offset)
            .unwrap_or(toc_offset);
        let member = read_range(offset, next - offset)?;
        let mut data = Vec::new();
        // The member holds the chunk, then tar padding and headers up to the next file.
        flate2::read::GzDecoder::new(&member[..])
            .take(len)
            .read_to_end(&mut data)?;
        if data.len() as u64 != len || Digest::of(&data).to_string() != digest {
            return Err(EstargzError::NotEstargz(format!(
                "chunk at {chunk_offset} of {name} does not match its chunkDigest"
            )));
        }
        out.extend_from_slice(&data);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{Content, Defaults, LayerTree};
    use crate::pipeline::{build_layer, LayerOptions};
    use std::sync::Arc;
    use teu_store::Store;

    fn file(path: &str, body: Vec<u8>) -> Entry {
        Entry::in_memory(path.as_bytes(), &body, 0, Arc::from("test"))
    }

    fn tree() -> Vec<Entry> {
        let mut t = LayerTree::new();
        for i in 0..200 {
            let body = format!("file {i} ").repeat(i * 13 % 700).into_bytes();
            t.insert(file(&format!("app/lib/f{i:03}"), body)).unwrap();
        }
        let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        t.insert(file("app/bin/server", big)).unwrap();
        t.insert(file("etc/empty", Vec::new())).unwrap();
        t.finish(&Defaults { mtime: 0 }).unwrap()
    }

    fn build(entries: &[Entry], jobs: usize) -> (crate::BuiltLayer, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let compression = Compression::new("estargz", None)
            .unwrap()
            .with_chunk_size(64 * 1024)
            .unwrap();
        let opts = LayerOptions {
            compression,
            jobs,
            ..Default::default()
        };
        let built = build_layer(entries, &opts, &store).unwrap();
        let blob = std::fs::read(store.blob_path(&built.digest)).unwrap();
        (built, blob)
    }

    #[test]
    fn layout_toc_and_ranges_are_right_for_any_thread_count() {
        let entries = arrange(tree(), &["/app/bin/server".to_string()]).unwrap();
        assert_eq!(entries[0].path, b"app");
        assert_eq!(entries[1].path, b"app/bin");
        assert_eq!(entries[2].path, b"app/bin/server");
        assert_eq!(entries[3].path, PREFETCH_LANDMARK.as_bytes());
        let (a, blob) = build(&entries, 1);
        let (b, _) = build(&entries, 3);
        assert_eq!(a, b);
        assert_eq!(a.media_type, teu_oci::media_type::OCI_LAYER_GZIP);

        // A plain gzip tar to everyone else, its diff_id over the whole stream.
        let mut tar = Vec::new();
        flate2::read::MultiGzDecoder::new(&blob[..])
            .read_to_end(&mut tar)
            .unwrap();
        assert_eq!(Digest::of(&tar), a.diff_id);
        let mut names = Vec::new();
        for en in tar::Archive::new(&tar[..]).entries().unwrap() {
            names.push(en.unwrap().path().unwrap().display().to_string());
        }
        assert_eq!(names.last().unwrap(), TOC_TAR_NAME);
        assert_eq!(names.len(), entries.len() + 1);

        let read = read_toc(&mut io::Cursor::new(&blob)).unwrap();
        assert_eq!(Some(read.digest.clone()), a.toc_digest);
        let server = read
            .toc
            .entries
            .iter()
            .filter(|e| e.name == "app/bin/server" || (e.kind == "chunk"))
            .count();
        assert_eq!(server, 5, "300000 bytes in 64 KiB chunks");
        for e in &entries {
            let Kind::File(Content::Bytes(body)) = &e.kind else {
                continue;
            };
            let name = String::from_utf8(e.path.clone()).unwrap();
            let got = read_file_by_ranges(&read.toc, &name, read.toc_offset, &mut |o, l| {
                Ok(blob[o as usize..(o + l) as usize].to_vec())
            })
            .unwrap();
            assert_eq!(&got[..], &body[..], "{name}");
        }
        let empty = read
            .toc
            .entries
            .iter()
            .find(|e| e.name == "etc/empty")
            .unwrap();
        assert_eq!(empty.offset, 0);
        assert_eq!(empty.digest, Digest::of(b"").to_string());
        assert!(read
            .toc
            .entries
            .iter()
            .any(|e| e.name == "app/" && e.kind == "dir"));
    }

    #[test]
    fn no_prefetch_puts_the_no_prefetch_landmark_first() {
        let entries = arrange(tree(), &[]).unwrap();
        assert_eq!(entries[0].path, NO_PREFETCH_LANDMARK.as_bytes());
        assert_eq!(entries[1].path, b"app");
    }

    #[test]
    fn bad_prefetch_patterns_name_the_pattern() {
        let e = arrange(tree(), &["/app/nothing/**".to_string()]).unwrap_err();
        assert!(e.to_string().contains("/app/nothing/**"), "{e}");
        let e = arrange(tree(), &["/app/[".to_string()]).unwrap_err();
        assert!(e.to_string().contains("not a valid glob"), "{e}");
        let mut t = tree();
        t.push(file(TOC_TAR_NAME, vec![1]));
        assert!(arrange(t, &[]).is_err());
    }

    #[test]
    fn glob_prefetch_takes_matching_files_in_path_order() {
        let entries = arrange(tree(), &["/app/lib/f00*".to_string()]).unwrap();
        let names: Vec<_> = entries[..13]
            .iter()
            .map(|e| String::from_utf8_lossy(&e.path).to_string())
            .collect();
        assert_eq!(names[0], "app");
        assert_eq!(names[1], "app/lib");
        assert_eq!(names[2], "app/lib/f000");
        assert_eq!(names[11], "app/lib/f009");
        assert_eq!(names[12], PREFETCH_LANDMARK);
    }
}
