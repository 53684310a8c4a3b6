//! An existing layer's tar stream as entries, for `teu convert` to lay out as eStargz.
//!
//! Unlike [`crate::source::add_tar`], nothing is normalized and nothing is sorted: a
//! converted layer keeps every entry's path, order, mode, owner, mtime and link target,
//! because it is someone's base and its files must stay theirs. What teu's header
//! encoder cannot carry is refused rather than silently dropped: extended attributes
//! (PAX `SCHILY.xattr.*`), sparse files and vendor entry types. User and group names are
//! not kept (teu writes numeric owners only; runtimes use the numbers).
//!
//! An eStargz source's own TOC entry is left out (a new one is written); its landmark
//! stays where it is, so the files it prioritized stay first, and converting eStargz to
//! gzip (which keeps the tar stream verbatim) and back gives the same layer.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

use crate::entry::{Content, Entry, Kind, Meta, Priority, Tarball};

use super::{EstargzError, NO_PREFETCH_LANDMARK, PREFETCH_LANDMARK, TOC_TAR_NAME};

fn bad(origin: &str, message: String) -> EstargzError {
    EstargzError::NotEstargz(format!("{origin}: {message}"))
}

/// The entries of the uncompressed tar in `file`, in stream order; `tarball` names it
/// (its hash keys the entries' content).
pub fn entries_of_tar(
    file: Arc<File>,
    tarball: Arc<Tarball>,
    origin: &str,
) -> Result<Vec<Entry>, EstargzError> {
    let mut reader: &File = &file;
    // Offsets of file data are from the start of the stream.
    reader.seek(SeekFrom::Start(0))?;
    let mut archive = tar::Archive::new(&mut reader as &mut dyn Read);
    let from: crate::entry::Origin = Arc::from(origin);
    let mut out = Vec::new();
    for item in archive.entries()? {
        let mut item = item.map_err(|e| bad(origin, format!("not a valid tar stream: {e}")))?;
        let raw_path = item.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw_path).into_owned();
        if let Some(ext) = item
            .pax_extensions()
            .map_err(|e| bad(origin, format!("entry {shown:?}: {e}")))?
        {
            for x in ext.flatten() {
                let key = x.key_bytes();
                if key.starts_with(b"SCHILY.xattr.") || key.starts_with(b"GNU.sparse.") {
                    return Err(bad(origin, format!(
                        "entry {shown:?} has PAX record {}, which teu's eStargz writer does not carry (extended attributes and sparse files are not supported yet)",
                        String::from_utf8_lossy(key)
                    )));
                }
            }
        }
        let header = item.header();
        let et = header.entry_type();
        // Layer paths have no leading "./" or "/" and no trailing "/".
        let mut p: &[u8] = &raw_path;
        while let Some(rest) = p.strip_prefix(b"./").or_else(|| p.strip_prefix(b"/")) {
            p = rest;
        }
        while let Some(rest) = p.strip_suffix(b"/") {
            p = rest;
        }
        if p.is_empty() || p == b"." {
            continue; // the root directory itself
        }
        let path = p.to_vec();
        if path == TOC_TAR_NAME.as_bytes() {
            continue;
        }
        let dev = || {
            (
                header.device_major().ok().flatten().unwrap_or(0),
                header.device_minor().ok().flatten().unwrap_or(0),
            )
        };
        let link = || {
            item.link_name_bytes()
                .map(|l| l.into_owned())
                .ok_or_else(|| bad(origin, format!("link {shown:?} has no target")))
        };
        let kind = match et {
            tar::EntryType::Regular | tar::EntryType::Continuous => Kind::File(Content::Range {
                file: Arc::clone(&file),
                offset: item.raw_file_position(),
                size: item.size(),
                tarball: Arc::clone(&tarball),
            }),
            tar::EntryType::Directory => Kind::Dir,
            tar::EntryType::Symlink => Kind::Symlink(link()?),
            tar::EntryType::Link => {
                let t = link()?;
                let mut s: &[u8] = &t;
                while let Some(r) = s.strip_prefix(b"./").or_else(|| s.strip_prefix(b"/")) {
                    s = r;
                }
                Kind::Hardlink(s.to_vec())
            }
            tar::EntryType::Char => {
                let (major, minor) = dev();
                Kind::CharDevice { major, minor }
            }
            tar::EntryType::Block => {
                let (major, minor) = dev();
                Kind::BlockDevice { major, minor }
            }
            tar::EntryType::Fifo => Kind::Fifo,
            tar::EntryType::XGlobalHeader => continue,
            other => {
                return Err(bad(
                    origin,
                    format!("entry {shown:?} has type {other:?}, which teu does not convert"),
                ))
            }
        };
        let num = |r: std::io::Result<u64>, what: &str| {
            r.map_err(|e| bad(origin, format!("entry {shown:?}: bad {what}: {e}")))
        };
        let meta = Meta {
            mode: header
                .mode()
                .map_err(|e| bad(origin, format!("entry {shown:?}: bad mode: {e}")))?
                & 0o7777,
            uid: num(header.uid(), "uid")?,
            gid: num(header.gid(), "gid")?,
            mtime: num(header.mtime(), "mtime")?,
        };
        out.push(Entry {
            path,
            kind,
            meta,
            priority: Priority::Explicit,
            origin: Arc::clone(&from),
            inode: None,
        });
    }
    Ok(out)
}

/// A converted layer's order: as it was, with `.no.prefetch.landmark` first unless the
/// source already has a landmark (an eStargz source keeps its prefetch order).
pub fn arrange_converted(mut entries: Vec<Entry>) -> Vec<Entry> {
    let has_landmark = entries.iter().any(|e| {
        e.path == PREFETCH_LANDMARK.as_bytes() || e.path == NO_PREFETCH_LANDMARK.as_bytes()
    });
    if !has_landmark {
        entries.insert(0, super::landmark(NO_PREFETCH_LANDMARK));
    }
    entries
}
