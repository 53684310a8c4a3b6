//! A ustar header encoder with PAX extended headers only where ustar cannot hold a value.
//!
//! Fixed choices, all part of [`crate::LAYER_FORMAT_VERSION`]:
//! - numeric fields are zero-padded octal with a trailing NUL, uname/gname empty, no
//!   atime/ctime, magic `ustar\0` version `00`;
//! - names never use the ustar `prefix` field: a name over 100 bytes or with any non-ASCII
//!   byte goes into a PAX `path` record (likewise `linkpath`); sizes and mtimes over 11
//!   octal digits and ids over 7 go into `size`, `mtime`, `uid`, `gid` records;
//! - PAX records are written in one fixed order (`hdrcharset`, `path`, `linkpath`, `size`,
//!   `mtime`, `uid`, `gid`, then `SCHILY.xattr.NAME` for each extended attribute in name
//!   order); `hdrcharset=BINARY` marks a name that is not UTF-8. Only converted layers
//!   have extended attributes, so an entry without any gets the same bytes as before
//!   they were carried;
//! - the PAX header's own name is `@PaxHeader`, its mode 0644 and its mtime the entry's;
//! - directories are written with a trailing `/`;
//! - the archive ends with two zero blocks and is not padded to a record size.

use crate::entry::{Entry, Kind};

pub const BLOCK: usize = 512;
const MAX_OCTAL_11: u64 = 0o777_7777_7777;
const MAX_OCTAL_7: u64 = 0o777_7777;

/// The header block(s) for `entry`: a PAX header and its records when needed, then the
/// ustar header. File data (padded to 512 bytes) follows separately.
pub fn encode_header(entry: &Entry) -> Vec<u8> {
    let mut name = entry.path.clone();
    if matches!(entry.kind, Kind::Dir) {
        name.push(b'/');
    }
    let (typeflag, link, size, dev) = match &entry.kind {
        Kind::File(c) => (b'0', &[][..], c.size(), (0, 0)),
        Kind::Hardlink(t) => (b'1', &t[..], 0, (0, 0)),
        Kind::Symlink(t) => (b'2', &t[..], 0, (0, 0)),
        Kind::CharDevice { major, minor } => (b'3', &[][..], 0, (*major, *minor)),
        Kind::BlockDevice { major, minor } => (b'4', &[][..], 0, (*major, *minor)),
        Kind::Dir => (b'5', &[][..], 0, (0, 0)),
        Kind::Fifo => (b'6', &[][..], 0, (0, 0)),
    };
    let meta = &entry.meta;

    let needs_pax_name = |b: &[u8]| b.len() > 100 || !b.is_ascii();
    let mut records: Vec<(std::borrow::Cow<str>, Vec<u8>)> = Vec::new();
    if std::str::from_utf8(&name).is_err() || std::str::from_utf8(link).is_err() {
        records.push(("hdrcharset".into(), b"BINARY".to_vec()));
    }
    if needs_pax_name(&name) {
        records.push(("path".into(), name.clone()));
    }
    if needs_pax_name(link) {
        records.push(("linkpath".into(), link.to_vec()));
    }
    if size > MAX_OCTAL_11 {
        records.push(("size".into(), size.to_string().into_bytes()));
    }
    if meta.mtime > MAX_OCTAL_11 {
        records.push(("mtime".into(), meta.mtime.to_string().into_bytes()));
    }
    if meta.uid > MAX_OCTAL_7 {
        records.push(("uid".into(), meta.uid.to_string().into_bytes()));
    }
    if meta.gid > MAX_OCTAL_7 {
        records.push(("gid".into(), meta.gid.to_string().into_bytes()));
    }
    // Sorted by name where they are read (convert.rs); sorting again here would hide a
    // caller that forgot, and the order is part of the bytes.
    debug_assert!(entry.xattrs.windows(2).all(|w| w[0].0 < w[1].0));
    for (name, value) in &entry.xattrs {
        records.push((format!("SCHILY.xattr.{name}").into(), value.clone()));
    }

    let mut out = Vec::with_capacity(BLOCK * 3);
    if !records.is_empty() {
        let body = pax_records(&records);
        out.extend_from_slice(&ustar_block(
            b"@PaxHeader",
            0o644,
            0,
            0,
            body.len() as u64,
            meta.mtime.min(MAX_OCTAL_11),
            b'x',
            b"",
            (0, 0),
        ));
        out.extend_from_slice(&body);
        pad(&mut out);
    }
    out.extend_from_slice(&ustar_block(
        &ascii_truncated(&name),
        meta.mode & 0o7777,
        meta.uid.min(MAX_OCTAL_7),
        meta.gid.min(MAX_OCTAL_7),
        size.min(MAX_OCTAL_11),
        meta.mtime.min(MAX_OCTAL_11),
        typeflag,
        &ascii_truncated(link),
        dev,
    ));
    out
}

/// The header of a plain file for archives teu writes around images (OCI and docker
/// archives): owner 0:0, the given mode and mtime, PAX only when the name needs it.
pub fn file_header(name: &[u8], size: u64, mode: u32, mtime: u64) -> Vec<u8> {
    dir_or_file_header(name, Some(size), mode, mtime)
}

/// The header of a directory (`name` without trailing slash) for such archives.
pub fn dir_header(name: &[u8], mode: u32, mtime: u64) -> Vec<u8> {
    dir_or_file_header(name, None, mode, mtime)
}

fn dir_or_file_header(name: &[u8], size: Option<u64>, mode: u32, mtime: u64) -> Vec<u8> {
    use crate::entry::{Content, Meta, Priority};
    // Content::Path is only asked for its size here; it is never opened.
    let kind = match size {
        Some(size) => Kind::File(Content::Path {
            path: std::path::PathBuf::new(),
            size,
            stat: None,
        }),
        None => Kind::Dir,
    };
    encode_header(&Entry {
        path: name.to_vec(),
        kind,
        meta: Meta {
            mode,
            uid: 0,
            gid: 0,
            mtime,
        },
        priority: Priority::Explicit,
        origin: std::sync::Arc::from(""),
        inode: None,
        xattrs: Vec::new(),
    })
}

/// The two zero blocks that end an archive.
pub fn trailer() -> [u8; BLOCK * 2] {
    [0; BLOCK * 2]
}

/// Zero bytes needed after `len` bytes of data to reach a block boundary.
pub fn padding(len: u64) -> usize {
    (BLOCK - (len % BLOCK as u64) as usize) % BLOCK
}

fn pad(out: &mut Vec<u8>) {
    let n = padding(out.len() as u64);
    out.resize(out.len() + n, 0);
}

/// ustar fields hold ASCII; a name that needs PAX keeps a readable ASCII stand-in here.
fn ascii_truncated(b: &[u8]) -> Vec<u8> {
    b.iter()
        .take(100)
        .map(|&c| if c.is_ascii() && c != 0 { c } else { b'_' })
        .collect()
}

fn pax_records(records: &[(std::borrow::Cow<str>, Vec<u8>)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (key, value) in records {
        // "LEN KEY=VALUE\n", where LEN counts its own digits.
        let rest = key.len() + value.len() + 3; // ' ', '=', '\n'
        let mut len = rest + 1;
        while len != rest + len.to_string().len() {
            len = rest + len.to_string().len();
        }
        body.extend_from_slice(len.to_string().as_bytes());
        body.push(b' ');
        body.extend_from_slice(key.as_bytes());
        body.push(b'=');
        body.extend_from_slice(value);
        body.push(b'\n');
    }
    body
}

#[allow(clippy::too_many_arguments)]
fn ustar_block(
    name: &[u8],
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: u64,
    typeflag: u8,
    link: &[u8],
    dev: (u32, u32),
) -> [u8; BLOCK] {
    let mut h = [0u8; BLOCK];
    h[..name.len()].copy_from_slice(name);
    octal(&mut h[100..108], mode as u64);
    octal(&mut h[108..116], uid);
    octal(&mut h[116..124], gid);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], mtime);
    h[156] = typeflag;
    h[157..157 + link.len()].copy_from_slice(link);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    octal(&mut h[329..337], dev.0 as u64);
    octal(&mut h[337..345], dev.1 as u64);
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|&b| b as u32).sum();
    let cks = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(cks.as_bytes());
    h
}

/// Zero-padded octal filling all but the last byte, which is NUL.
fn octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let s = format!("{value:0digits$o}");
    debug_assert_eq!(s.len(), digits, "caller clamps values to the field");
    field[..digits].copy_from_slice(s.as_bytes());
    field[digits] = 0;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{Content, Meta, Priority};
    use std::io::Read;
    use std::sync::Arc;

    fn e(path: &[u8], kind: Kind, mode: u32) -> Entry {
        Entry {
            path: path.to_vec(),
            kind,
            meta: Meta {
                mode,
                uid: 0,
                gid: 0,
                mtime: 0,
            },
            priority: Priority::Explicit,
            origin: Arc::from("test"),
            inode: None,
            xattrs: Vec::new(),
        }
    }

    fn bytes(b: &[u8]) -> Kind {
        Kind::File(Content::Bytes(Arc::from(b)))
    }

    /// A fixture covering every header shape teu writes.
    fn fixture() -> Vec<Entry> {
        let long = [b"app/".to_vec(), vec![b'x'; 120]].concat();
        let longer = [b"deep/".to_vec(), vec![b'y'; 300]].concat();
        let mut big_ids = e(b"ids", bytes(b""), 0o644);
        big_ids.meta.uid = 3_000_000;
        big_ids.meta.gid = 65532;
        big_ids.meta.mtime = 1_700_000_000;
        vec![
            e(b"app", Kind::Dir, 0o755),
            e(b"app/hello", bytes(b"#!/bin/sh\necho hi\n"), 0o755),
            e(b"app/link", Kind::Symlink(b"/app/hello".to_vec()), 0o777),
            e(b"app/hard", Kind::Hardlink(b"app/hello".to_vec()), 0o755),
            e(&long, bytes(b"long"), 0o644),
            e(&longer, Kind::Symlink(longer.clone()), 0o777),
            e("caf\u{e9} \u{1f980}".as_bytes(), bytes(b"unicode"), 0o644),
            e(b"raw\xff\xfe", bytes(b"not utf-8"), 0o644),
            e(b"dev/null", Kind::CharDevice { major: 1, minor: 3 }, 0o666),
            e(b"fifo", Kind::Fifo, 0o600),
            e(b"suid", bytes(b""), 0o4755),
            big_ids,
        ]
    }

    fn archive(entries: &[Entry]) -> Vec<u8> {
        let mut out = Vec::new();
        for en in entries {
            out.extend_from_slice(&encode_header(en));
            if let Kind::File(c) = &en.kind {
                let mut r = c.open().unwrap();
                let mut data = Vec::new();
                r.read_to_end(&mut data).unwrap();
                out.extend_from_slice(&data);
                pad(&mut out);
            }
        }
        out.extend_from_slice(&trailer());
        out
    }

    /// Golden: any change to the header bytes teu writes must be deliberate (bump
    /// LAYER_FORMAT_VERSION and this digest together).
    #[test]
    fn golden_headers() {
        let tar = archive(&fixture());
        assert_eq!(
            teu_oci::Digest::of(&tar).to_string(),
            "sha256:46544cf9156e23f206fa27eb9d8b2c572bef27eccc36aff337731c8226870b7c",
            "tar header bytes changed"
        );
    }

    #[test]
    fn plain_header_fields() {
        let h = encode_header(&e(b"app/hello", bytes(b"12345"), 0o755));
        assert_eq!(h.len(), 512);
        assert_eq!(&h[..10], b"app/hello\0");
        assert_eq!(&h[100..108], b"0000755\0");
        assert_eq!(&h[124..136], b"00000000005\0");
        assert_eq!(&h[265..297], &[0u8; 32][..], "uname is empty");
    }

    #[test]
    fn a_reader_sees_what_was_written() {
        let entries = fixture();
        let tar = archive(&entries);
        let mut ar = tar::Archive::new(&tar[..]);
        let mut seen = Vec::new();
        for en in ar.entries().unwrap() {
            let mut en = en.unwrap();
            let path = en.path_bytes().into_owned();
            let link = en.link_name_bytes().map(|l| l.into_owned());
            let mode = en.header().mode().unwrap();
            let uid = en.header().uid().unwrap();
            let mut data = Vec::new();
            en.read_to_end(&mut data).unwrap();
            seen.push((path, link, mode, uid, data));
        }
        assert_eq!(seen.len(), entries.len());
        assert_eq!(seen[0].0, b"app/");
        assert_eq!(seen[1].4, b"#!/bin/sh\necho hi\n");
        assert_eq!(seen[4].0.len(), 124, "long name via PAX");
        assert_eq!(
            seen[5].1.as_ref().unwrap().len(),
            305,
            "long link target via PAX"
        );
        assert_eq!(seen[6].0, "caf\u{e9} \u{1f980}".as_bytes());
        assert_eq!(seen[7].0, b"raw\xff\xfe");
        assert_eq!(seen[10].2, 0o4755);
        assert_eq!(seen[11].3, 3_000_000, "uid via PAX");
    }

    #[test]
    fn xattrs_are_schily_records_in_name_order_after_the_others() {
        let mut en = e(b"bin/ping", bytes(b"elf"), 0o755);
        en.meta.uid = 3_000_000;
        // security.capability values are binary, with NULs.
        let cap = vec![1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0];
        en.xattrs = vec![
            ("security.capability".to_string(), cap.clone()),
            ("user.note".to_string(), b"hi".to_vec()),
        ];
        let h = encode_header(&en);
        let body = String::from_utf8_lossy(&h[BLOCK..2 * BLOCK]).into_owned();
        let uid = body.find(" uid=3000000\n").expect("uid record");
        let capr = body
            .find(" SCHILY.xattr.security.capability=")
            .expect("cap");
        let note = body.find(" SCHILY.xattr.user.note=hi\n").expect("note");
        assert!(uid < capr && capr < note, "{body:?}");

        let tar = archive(&[en]);
        let mut ar = tar::Archive::new(&tar[..]);
        let mut item = ar.entries().unwrap().next().unwrap().unwrap();
        let seen: Vec<(String, Vec<u8>)> = item
            .pax_extensions()
            .unwrap()
            .unwrap()
            .map(|x| x.unwrap())
            .filter_map(|x| {
                let k = x.key().unwrap().strip_prefix("SCHILY.xattr.")?.to_string();
                Some((k, x.value_bytes().to_vec()))
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("security.capability".to_string(), cap),
                ("user.note".to_string(), b"hi".to_vec())
            ]
        );
        let mut data = Vec::new();
        item.read_to_end(&mut data).unwrap();
        assert_eq!(data, b"elf");
    }

    #[test]
    fn pax_record_lengths_count_themselves() {
        let body = pax_records(&[("path".into(), vec![b'a'; 5])]);
        assert_eq!(body, b"14 path=aaaaa\n");
        let body = pax_records(&[("path".into(), vec![b'a'; 93])]);
        assert!(
            body.starts_with(b"103 path="),
            "{:?}",
            String::from_utf8_lossy(&body)
        );
        assert_eq!(body.len(), 103);
    }
}
