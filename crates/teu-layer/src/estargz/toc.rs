//! The table of contents, `stargz.index.json`: one entry per tar entry, plus one per
//! further chunk of a file split into chunks, in tar order.
//!
//! Field names, order and omissions follow the reference (Go) writer's `TOCEntry`, which
//! is also what the 0.12 reader parses: a zero or empty field is left out, the first
//! chunk of a file is its `reg` entry and later ones are `chunk` entries, `chunkSize` is
//! left out on a file's last chunk, `offset` is the compressed offset of the gzip member
//! holding the chunk's bytes, `digest` (whole file) is on every `reg` entry and
//! `chunkDigest` on every chunk. The JSON is indented with tabs as Go's
//! `json.MarshalIndent(toc, "", "\t")` does; readers do not care, people reading
//! `teu inspect --toc` do.

use base64::prelude::{Engine as _, BASE64_STANDARD};
use serde::{Deserialize, Serialize};

use crate::entry::{Entry, Kind};
use crate::plan::Seg;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Toc {
    pub version: u32,
    pub entries: Vec<TocEntry>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TocEntry {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub size: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub modtime: String,
    #[serde(rename = "linkName", default, skip_serializing_if = "String::is_empty")]
    pub link_name: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub mode: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub uid: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub gid: u64,
    #[serde(rename = "userName", default, skip_serializing_if = "String::is_empty")]
    pub user_name: String,
    #[serde(
        rename = "groupName",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub group_name: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub offset: u64,
    #[serde(rename = "devMajor", default, skip_serializing_if = "is_zero")]
    pub dev_major: u64,
    #[serde(rename = "devMinor", default, skip_serializing_if = "is_zero")]
    pub dev_minor: u64,
    /// Values are base64 in the JSON (Go's `[]byte`, standard alphabet with padding);
    /// teu writes them for a converted layer's extended attributes and keeps them as
    /// read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xattrs: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub digest: String,
    #[serde(rename = "chunkOffset", default, skip_serializing_if = "is_zero")]
    pub chunk_offset: u64,
    #[serde(rename = "chunkSize", default, skip_serializing_if = "is_zero")]
    pub chunk_size: u64,
    #[serde(
        rename = "chunkDigest",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub chunk_digest: String,
}

impl TocEntry {
    /// The chunks of the file an entry names, from the TOC's entries at `i..`: the `reg`
    /// entry and the `chunk` entries after it, with each chunk's real size (the last one
    /// omits it).
    pub fn chunks(entries: &[TocEntry], i: usize) -> Vec<(u64, u64, u64, &str)> {
        let size = entries[i].size;
        let mut out = Vec::new();
        let mut j = i;
        while j < entries.len() && (j == i || entries[j].kind == "chunk") {
            let e = &entries[j];
            let len = if e.chunk_size == 0 {
                size - e.chunk_offset
            } else {
                e.chunk_size
            };
            out.push((e.offset, e.chunk_offset, len, e.chunk_digest.as_str()));
            j += 1;
        }
        out
    }
}

/// A file's SHA-256 and each of its chunks'.
pub(crate) type FileHashes = ([u8; 32], Vec<[u8; 32]>);

/// Content hashes of a layer's files, gathered while their bytes stream through.
#[derive(Debug)]
pub(crate) struct FileDigests {
    pub chunk: u64,
    /// By entry index: the whole file's SHA-256 and each chunk's.
    pub files: Vec<Option<FileHashes>>,
}

fn sha(h: &[u8; 32]) -> String {
    format!("sha256:{}", hex(h))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The TOC of a layer of `entries`, planned as `segs` (each segment but the first starts
/// at a chunk's first byte), whose segments start at `starts` in the blob.
pub(crate) fn build(
    entries: &[Entry],
    headers: &[Vec<u8>],
    segs: &[Seg],
    starts: &[u64],
    digests: &FileDigests,
) -> Result<Toc, super::EstargzError> {
    // Compressed offset of each chunk's member, in stream order.
    let mut members = segs.iter().zip(starts).skip(1).map(|(s, &at)| {
        let hl = headers[s.start.entry].len() as u64;
        (s.start.entry, s.start.offset - hl, at)
    });
    let mut out = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        let name = std::str::from_utf8(&e.path).map_err(|_| super::EstargzError::NotUtf8 {
            path: crate::path::display(&e.path),
        })?;
        let mut t = TocEntry {
            name: name.to_string(),
            mode: u64::from(e.meta.mode & 0o7777),
            uid: e.meta.uid,
            gid: e.meta.gid,
            modtime: if e.meta.mtime == 0 {
                String::new()
            } else {
                teu_oci::time::rfc3339(e.meta.mtime)
            },
            // Go's reader decodes `map[string][]byte`: each value base64, keys in order
            // (a BTreeMap, as Go's encoder sorts map keys).
            xattrs: (!e.xattrs.is_empty()).then(|| {
                e.xattrs
                    .iter()
                    .map(|(k, v)| (k.clone(), BASE64_STANDARD.encode(v)))
                    .collect()
            }),
            ..Default::default()
        };
        let link = |l: &[u8]| {
            std::str::from_utf8(l)
                .map(str::to_string)
                .map_err(|_| super::EstargzError::NotUtf8 {
                    path: crate::path::display(&e.path),
                })
        };
        t.kind = match &e.kind {
            Kind::File(_) => "reg",
            Kind::Dir => "dir",
            Kind::Symlink(_) => "symlink",
            Kind::Hardlink(_) => "hardlink",
            Kind::CharDevice { .. } => "char",
            Kind::BlockDevice { .. } => "block",
            Kind::Fifo => "fifo",
        }
        .to_string();
        match &e.kind {
            Kind::Dir => t.name.push('/'),
            Kind::Symlink(l) | Kind::Hardlink(l) => t.link_name = link(l)?,
            Kind::CharDevice { major, minor } | Kind::BlockDevice { major, minor } => {
                t.dev_major = u64::from(*major);
                t.dev_minor = u64::from(*minor);
            }
            _ => {}
        }
        let Kind::File(content) = &e.kind else {
            out.push(t);
            continue;
        };
        let size = content.size();
        let (whole, chunks) = digests.files[i]
            .as_ref()
            .expect("every file was hashed as it streamed");
        t.size = size;
        t.digest = sha(whole);
        if size == 0 {
            out.push(t);
            continue;
        }
        let name = t.name.clone();
        let mut first = Some(t);
        for (k, d) in chunks.iter().enumerate() {
            let (entry, chunk_offset, at) = members.next().expect("a member per chunk");
            debug_assert_eq!((entry, chunk_offset), (i, k as u64 * digests.chunk));
            let mut c = first.take().unwrap_or_else(|| TocEntry {
                name: name.clone(),
                kind: "chunk".to_string(),
                ..Default::default()
            });
            c.offset = at;
            c.chunk_offset = chunk_offset;
            if size - chunk_offset >= digests.chunk {
                c.chunk_size = digests.chunk;
            }
            c.chunk_digest = sha(d);
            out.push(c);
        }
    }
    Ok(Toc {
        version: 1,
        entries: out,
    })
}

/// The TOC's JSON bytes (their SHA-256 is the TOC digest).
pub fn to_json(toc: &Toc) -> Vec<u8> {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    toc.serialize(&mut ser).expect("a TOC serializes");
    out
}
