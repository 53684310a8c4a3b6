//! An existing layer's tar stream as entries, for `teu convert` to lay out as eStargz.
//!
//! Unlike [`crate::source::add_tar`], nothing is normalized and nothing is sorted: a
//! converted layer keeps every entry's path, order, mode, owner, mtime and link target,
//! because it is someone's base and its files must stay theirs. Extended attributes (PAX
//! `SCHILY.xattr.NAME`, e.g. `security.capability` on ping) are kept on the entry, sorted
//! by name so the output does not depend on the source's record order; the header
//! encoder writes them back as PAX records and the TOC lists them. What teu's header
//! encoder cannot carry is refused rather than silently dropped: sparse files, vendor
//! entry types, and xattr names the TOC's JSON cannot hold (empty, not UTF-8) or Go's tar
//! reader refuses (NUL). User and group names are not kept (teu writes numeric owners only;
//! runtimes use the numbers), nor are other PAX records (atime, ctime, vendor keys).
//!
//! An eStargz source's own TOC entry is left out (a new one is written); its landmark
//! stays where it is, so the files it prioritized stay first, and converting eStargz to
//! gzip (which keeps the tar stream verbatim) and back gives the same layer.

use std::collections::HashMap;
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
    // Built only if some entry's PAX records need it (see below).
    let mut raw_pax: Option<std::io::Result<HashMap<u64, Vec<u8>>>> = None;
    for item in archive.entries()? {
        let mut item = item.map_err(|e| bad(origin, format!("not a valid tar stream: {e}")))?;
        let raw_path = item.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw_path).into_owned();
        let mut xattrs: Vec<(String, Vec<u8>)> = Vec::new();
        let mut records: PaxRecords = Vec::new();
        if let Some(ext) = item
            .pax_extensions()
            .map_err(|e| bad(origin, format!("entry {shown:?}: {e}")))?
        {
            let parsed: Result<Vec<_>, _> = ext
                .map(|x| x.map(|x| (x.key_bytes().to_vec(), x.value_bytes().to_vec())))
                .collect();
            records = match parsed {
                Ok(r) => r,
                // The tar crate splits PAX records on newlines instead of reading their
                // lengths, so a binary value holding 0x0a (an IMA hash, some capability
                // sets) looks malformed to it: read this entry's PAX data again, raw.
                Err(_) => {
                    let raw = raw_pax
                        .get_or_insert_with(|| raw_pax_data(&file))
                        .as_ref()
                        .map_err(|e| bad(origin, format!("entry {shown:?}: bad PAX data: {e}")))?;
                    let data = raw.get(&item.raw_header_position()).ok_or_else(|| {
                        bad(
                            origin,
                            format!("entry {shown:?}: bad PAX data (not found raw)"),
                        )
                    })?;
                    parse_pax(data).map_err(|e| bad(origin, format!("entry {shown:?}: {e}")))?
                }
            };
        }
        // The tar crate applies PAX `uid`/`gid` to the header it returns, not `mtime`
        // (which a writer uses for times ustar's 11 octal digits cannot hold, teu's own
        // included); whole seconds are kept, as teu's writer has no finer times.
        let mut pax_mtime = None;
        for (key, value) in records {
            if key == b"mtime" {
                let text = String::from_utf8_lossy(&value);
                let secs = text.split('.').next().unwrap_or("");
                pax_mtime = Some(secs.parse::<u64>().map_err(|_| {
                    bad(origin, format!(
                        "entry {shown:?} has PAX mtime {text:?}, which is not a time teu can keep (whole seconds since 1970)"
                    ))
                })?);
                continue;
            }
            if key.starts_with(b"GNU.sparse.") {
                return Err(bad(origin, format!(
                    "entry {shown:?} has PAX record {}, which teu's eStargz writer does not carry (sparse files are not supported)",
                    String::from_utf8_lossy(&key)
                )));
            }
            let Some(name) = key.strip_prefix(b"SCHILY.xattr.") else {
                continue;
            };
            // The TOC's `xattrs` is a JSON object, so names must be text; Go's tar
            // reader rejects a PAX key holding NUL. (A key cannot hold '=': the
            // record's first '=' ends it.)
            let name = std::str::from_utf8(name)
                .ok()
                .filter(|n| !n.is_empty() && !n.contains('\0'))
                .ok_or_else(|| {
                    bad(origin, format!(
                        "entry {shown:?} has an extended attribute whose name {:?} is empty, not UTF-8 or holds NUL (the eStargz TOC cannot name it)",
                        String::from_utf8_lossy(name)
                    ))
                })?;
            xattrs.push((name.to_string(), value));
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
            mtime: match pax_mtime {
                Some(t) => t,
                None => num(header.mtime(), "mtime")?,
            },
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

/// The PAX extended header data of every entry that has one, by the position of the
/// entry's own header: a second walk of the stream in raw mode, where PAX headers are
/// entries of their own.
fn raw_pax_data(file: &File) -> std::io::Result<HashMap<u64, Vec<u8>>> {
    // Positioned reads: the first walk is still reading the same handle, at its offset.
    let reader = crate::entry::RangeReader::new(file, 0, file.metadata()?.len());
    let mut archive = tar::Archive::new(reader);
    let mut out = HashMap::new();
    let mut pending: Option<Vec<u8>> = None;
    for item in archive.entries()?.raw(true) {
        let mut item = item?;
        match item.header().entry_type() {
            tar::EntryType::XHeader => {
                let mut data = Vec::new();
                item.read_to_end(&mut data)?;
                pending = Some(data);
            }
            // GNU long names may sit between a PAX header and its entry.
            tar::EntryType::GNULongName
            | tar::EntryType::GNULongLink
            | tar::EntryType::XGlobalHeader => {}
            _ => {
                if let Some(data) = pending.take() {
                    out.insert(item.raw_header_position(), data);
                }
            }
        }
    }
    Ok(out)
}

/// (key, value) of each PAX record, in order.
type PaxRecords = Vec<(Vec<u8>, Vec<u8>)>;

/// PAX records (`LEN KEY=VALUE\n`, LEN counting the whole record), read by their lengths
/// so values may hold any byte.
fn parse_pax(mut data: &[u8]) -> Result<PaxRecords, String> {
    let mut out = Vec::new();
    while !data.is_empty() && data[0] != 0 {
        let bad = || "malformed PAX record".to_string();
        let space = data.iter().position(|&b| b == b' ').ok_or_else(bad)?;
        let len: usize = std::str::from_utf8(&data[..space])
            .ok()
            .and_then(|n| n.parse().ok())
            .ok_or_else(bad)?;
        if len <= space + 1 || len > data.len() || data[len - 1] != b'\n' {
            return Err(bad());
        }
        let record = &data[space + 1..len - 1];
        let eq = record.iter().position(|&b| b == b'=').ok_or_else(bad)?;
        out.push((record[..eq].to_vec(), record[eq + 1..].to_vec()));
        data = &data[len..];
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A tar of one file whose PAX header holds `records` (in this order).
    fn tar_with_pax(records: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut pax = Vec::new();
        for (k, v) in records {
            let rest = k.len() + v.len() + 3;
            let mut len = rest + 1;
            while len != rest + len.to_string().len() {
                len = rest + len.to_string().len();
            }
            pax.extend_from_slice(format!("{len} ").as_bytes());
            pax.extend_from_slice(k);
            pax.push(b'=');
            pax.extend_from_slice(v);
            pax.push(b'\n');
        }
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, data) in [
            ("PaxHeaders/f", tar::EntryType::XHeader, &pax[..]),
            ("f", tar::EntryType::Regular, &b"data"[..]),
        ] {
            let mut h = tar::Header::new_ustar();
            h.set_path(name).unwrap();
            h.set_entry_type(kind);
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            h.set_size(data.len() as u64);
            h.set_cksum();
            b.append(&h, data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn entries(tar: &[u8]) -> Result<Vec<Entry>, EstargzError> {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(tar).unwrap();
        let tarball = Arc::new(Tarball {
            path: "test.tar".into(),
            stat: crate::cache::stat::FileStat::from_metadata(&f.metadata().unwrap()),
            read_at: 0,
            sha256: [0; 32],
        });
        entries_of_tar(Arc::new(f), tarball, "test")
    }

    #[test]
    fn xattrs_are_kept_sorted_by_name_and_the_last_value_wins() {
        let got = entries(&tar_with_pax(&[
            (b"SCHILY.xattr.user.z", b"1"),
            (b"atime", b"123"),
            (b"SCHILY.xattr.security.capability", b"\x01\x00\x00\x02"),
            (b"SCHILY.xattr.user.z", b"2=3"),
        ]))
        .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(
            got[0].xattrs,
            [
                (
                    "security.capability".to_string(),
                    b"\x01\x00\x00\x02".to_vec()
                ),
                ("user.z".to_string(), b"2=3".to_vec()),
            ]
        );
    }

    #[test]
    fn a_pax_mtime_wins_over_the_ustar_field() {
        // 2^33 s does not fit ustar's 11 octal digits; the header says 0.
        let got = entries(&tar_with_pax(&[(b"mtime", b"8589934592.25")])).unwrap();
        assert_eq!(got[0].meta.mtime, 8_589_934_592);
        let err = entries(&tar_with_pax(&[(b"mtime", b"-5")])).unwrap_err();
        assert!(err.to_string().contains("PAX mtime \"-5\""), "{err}");
    }

    #[test]
    fn xattr_values_holding_newlines_are_read_by_their_lengths() {
        // The tar crate alone splits this record at its newline and sees garbage.
        let hash = b"\x03\x0a\x00\x0a\xff\n".to_vec();
        let tar = tar_with_pax(&[
            (b"path", b"f"),
            (b"SCHILY.xattr.security.ima", &hash),
            (b"SCHILY.xattr.user.a", b"x"),
        ]);
        let mut ar = tar::Archive::new(&tar[..]);
        let mut item = ar.entries().unwrap().next().unwrap().unwrap();
        let by_tar_crate: Result<Vec<_>, _> = item.pax_extensions().unwrap().unwrap().collect();
        assert!(by_tar_crate.is_err(), "the fallback is what this tests");
        let got = entries(&tar).unwrap();
        assert_eq!(
            got[0].xattrs,
            [
                ("security.ima".to_string(), hash),
                ("user.a".to_string(), b"x".to_vec()),
            ]
        );
        assert_eq!(got[0].path, b"f");
        assert!(matches!(&got[0].kind, Kind::File(c) if c.size() == 4));
    }

    #[test]
    fn sparse_files_and_xattr_names_the_toc_cannot_hold_are_refused() {
        let err = entries(&tar_with_pax(&[(b"GNU.sparse.major", b"1")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("GNU.sparse.major") && err.contains("sparse"),
            "{err}"
        );
        for bad_name in [
            &b"SCHILY.xattr.user.\xff"[..],
            b"SCHILY.xattr.a\0b",
            b"SCHILY.xattr.",
        ] {
            let err = entries(&tar_with_pax(&[(bad_name, b"1")]))
                .unwrap_err()
                .to_string();
            assert!(err.contains("extended attribute whose name"), "{err}");
        }
    }
}
