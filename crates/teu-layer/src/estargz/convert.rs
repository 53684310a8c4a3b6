//! An existing layer's tar stream as entries, for `teu convert` to lay out as eStargz.
//!
//! Unlike [`crate::source::add_tar`], nothing is normalized and nothing is sorted: a
//! converted layer keeps every entry's path, order, mode, owner, mtime and link target,
//! because it is someone's base and its files must stay theirs. Extended attributes (PAX
//! `SCHILY.xattr.NAME`, e.g. `security.capability` on ping) are kept on the entry, sorted
//! by name so the output does not depend on the source's record order; the header
//! encoder writes them back as PAX records and the TOC lists them. What teu's header
//! encoder cannot carry is refused rather than silently dropped: sparse files, vendor
//! entry types, and xattr names the TOC's JSON cannot hold (not UTF-8) or a PAX key
//! cannot (`=`). User and group names are not kept (teu writes numeric owners only;
//! runtimes use the numbers), nor are other PAX records (atime, ctime, vendor keys).
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
        let mut xattrs: Vec<(String, Vec<u8>)> = Vec::new();
        if let Some(ext) = item
            .pax_extensions()
            .map_err(|e| bad(origin, format!("entry {shown:?}: {e}")))?
        {
            for x in ext {
                let x =
                    x.map_err(|e| bad(origin, format!("entry {shown:?}: bad PAX record: {e}")))?;
                let key = x.key_bytes();
                if key.starts_with(b"GNU.sparse.") {
                    return Err(bad(origin, format!(
                        "entry {shown:?} has PAX record {}, which teu's eStargz writer does not carry (sparse files are not supported)",
                        String::from_utf8_lossy(key)
                    )));
                }
                let Some(name) = key.strip_prefix(b"SCHILY.xattr.") else {
                    continue;
                };
                // The TOC's `xattrs` is a JSON object, so names must be text; '=' would
                // end the PAX key early when the record is written again.
                let name = std::str::from_utf8(name)
                    .ok()
                    .filter(|n| !n.is_empty() && !n.contains(['=', '\0']))
                    .ok_or_else(|| {
                        bad(origin, format!(
                            "entry {shown:?} has an extended attribute whose name {:?} is not UTF-8 text without '=' (the eStargz TOC cannot name it)",
                            String::from_utf8_lossy(name)
                        ))
                    })?;
                xattrs.push((name.to_string(), x.value_bytes().to_vec()));
            }
        }
        // Sorted by name so the headers teu writes do not depend on the source's record
        // order; a name given twice keeps its last value, as tar readers do.
        xattrs.reverse();
        xattrs.sort_by(|a, b| a.0.cmp(&b.0));
        xattrs.dedup_by(|later, first| later.0 == first.0);
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
            xattrs,
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
