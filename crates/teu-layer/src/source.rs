//! Entries from the outside world: a file or directory tree (`copy`) and a tarball (`tars`).
//!
//! Directory trees are walked in path-byte order (never `read_dir` order), symlinks are
//! stored as links unless the spec asks to follow them, files with several links become
//! hard links to the first path, and fifos, sockets and devices are refused by name: a
//! source tree with them is almost always a mistake (a build directory with a socket in it).
//!
//! Tarballs may be plain, gzip or zstd (told apart by their first bytes, not by their
//! name). A compressed tarball is decompressed once into an anonymous spool file so that
//! entries can be read later in sorted order without holding them in memory. Either way
//! the tarball's own bytes are hashed as they are read, once: entries carry that hash
//! ([`Tarball`]), which is all the layer cache needs to key them.

use std::fs::{self, File, Metadata};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use globset::GlobSet;

use crate::cache::stat::FileStat;
use crate::entry::{
    normalized_mode, Content, Defaults, Entry, Kind, LayerError, LayerTree, Meta, Origin, Priority,
    Tarball,
};
use crate::path;

/// Metadata overrides and switches of one `copy` entry.
pub struct CopyOptions<'a> {
    pub mode: Option<u32>,
    pub uid: Option<u64>,
    pub gid: Option<u64>,
    pub mtime: Option<u64>,
    /// Paths relative to the copied directory to leave out (a directory takes its subtree).
    pub exclude: Option<&'a GlobSet>,
    pub follow_symlinks: bool,
    pub defaults: &'a Defaults,
    pub origin: Origin,
}

impl CopyOptions<'_> {
    /// An explicit `mode` applies to the files copied; directories stay 0755 (a file mode
    /// such as 0644 would make them unsearchable) and symlinks 0777.
    fn meta(&self, kind: &Kind, source_mode: u32) -> Meta {
        let explicit = match kind {
            Kind::File(_) => self.mode,
            _ => None,
        };
        Meta {
            mode: explicit.unwrap_or_else(|| normalized_mode(kind, source_mode)),
            uid: self.uid.unwrap_or(0),
            gid: self.gid.unwrap_or(0),
            mtime: self.mtime.unwrap_or(self.defaults.mtime),
        }
    }

    fn err(&self, message: impl Into<String>) -> LayerError {
        LayerError::Source {
            origin: self.origin.clone(),
            message: message.into(),
        }
    }

    fn io(&self, p: &Path) -> impl FnOnce(io::Error) -> LayerError + '_ {
        let path = p.display().to_string();
        move |source| LayerError::Io {
            origin: self.origin.clone(),
            path,
            source,
        }
    }
}

/// Add `src` at `dest` with Dockerfile `COPY` semantics: a file goes to `dest`, or into
/// it when `dest` ends with `/`; a directory's contents go into `dest`.
pub fn add_copy(
    tree: &mut LayerTree,
    src: &Path,
    dest: &str,
    opts: &CopyOptions,
) -> Result<(), LayerError> {
    let meta = stat(src, opts.follow_symlinks).map_err(opts.io(src))?;
    let into_dir = dest.ends_with('/');
    let dest_bytes = dest.as_bytes();
    let path_err = |source| LayerError::Path {
        origin: opts.origin.clone(),
        source,
    };
    if meta.is_dir() {
        let root = path::normalize_dir(dest_bytes).map_err(path_err)?;
        if !root.is_empty() {
            let kind = Kind::Dir;
            tree.insert(Entry {
                path: root.clone(),
                meta: opts.meta(&kind, meta.mode()),
                kind,
                priority: Priority::Tree,
                origin: opts.origin.clone(),
                inode: None,
                xattrs: Vec::new(),
            })?;
        }
        let mut ancestors = vec![(meta.dev(), meta.ino())];
        walk(tree, src, &root, Path::new(""), opts, &mut ancestors)
    } else {
        if opts.exclude.is_some() {
            return Err(opts.err(format!(
                "exclude applies to directory copies, but {} is not a directory",
                src.display()
            )));
        }
        let target = if into_dir {
            let name = src
                .file_name()
                .ok_or_else(|| opts.err(format!("{} has no file name", src.display())))?;
            let dir = path::normalize_dir(dest_bytes).map_err(path_err)?;
            path::join(&dir, name.as_bytes())
        } else {
            path::normalize(dest_bytes).map_err(path_err)?
        };
        add_one(tree, src, &meta, target, opts)
    }
}

fn stat(p: &Path, follow: bool) -> io::Result<Metadata> {
    if follow {
        fs::metadata(p)
    } else {
        fs::symlink_metadata(p)
    }
}

fn walk(
    tree: &mut LayerTree,
    dir: &Path,
    layer_dir: &[u8],
    rel: &Path,
    opts: &CopyOptions,
    ancestors: &mut Vec<(u64, u64)>,
) -> Result<(), LayerError> {
    let mut names: Vec<_> = fs::read_dir(dir)
        .map_err(opts.io(dir))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .map_err(opts.io(dir))?;
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    for name in names {
        let src = dir.join(&name);
        let rel = rel.join(&name);
        if opts.exclude.is_some_and(|g| g.is_match(&rel)) {
            continue;
        }
        let meta = stat(&src, opts.follow_symlinks).map_err(opts.io(&src))?;
        let target = path::join(layer_dir, name.as_bytes());
        if meta.is_dir() {
            let id = (meta.dev(), meta.ino());
            if ancestors.contains(&id) {
                return Err(opts.err(format!(
                    "{} leads back to one of its own parents (a symlink loop with follow_symlinks = true)",
                    src.display()
                )));
            }
            let kind = Kind::Dir;
            tree.insert(Entry {
                path: target.clone(),
                meta: opts.meta(&kind, meta.mode()),
                kind,
                priority: Priority::Tree,
                origin: opts.origin.clone(),
                inode: None,
                xattrs: Vec::new(),
            })?;
            ancestors.push(id);
            walk(tree, &src, &target, &rel, opts, ancestors)?;
            ancestors.pop();
        } else {
            add_one(tree, &src, &meta, target, opts)?;
        }
    }
    Ok(())
}

fn add_one(
    tree: &mut LayerTree,
    src: &Path,
    meta: &Metadata,
    target: Vec<u8>,
    opts: &CopyOptions,
) -> Result<(), LayerError> {
    let ft = meta.file_type();
    let (kind, inode) = if ft.is_file() {
        (
            Kind::File(Content::Path {
                path: src.to_path_buf(),
                size: meta.len(),
                stat: Some(FileStat::from_metadata(meta)),
            }),
            (meta.nlink() > 1).then(|| (meta.dev(), meta.ino())),
        )
    } else if ft.is_symlink() {
        let link = fs::read_link(src).map_err(opts.io(src))?;
        (Kind::Symlink(link.as_os_str().as_bytes().to_vec()), None)
    } else {
        let what = if ft.is_fifo() {
            "a fifo"
        } else if ft.is_socket() {
            "a socket"
        } else if ft.is_char_device() {
            "a character device"
        } else if ft.is_block_device() {
            "a block device"
        } else {
            "not a file, directory or symlink"
        };
        return Err(opts.err(format!(
            "{} is {what}; teu copies only files, directories and symlinks (exclude it, or remove it from the source tree)",
            src.display()
        )));
    };
    tree.insert(Entry {
        path: target,
        meta: opts.meta(&kind, meta.mode()),
        kind,
        priority: Priority::Explicit,
        origin: opts.origin.clone(),
        inode,
        xattrs: Vec::new(),
    })
}

/// How a tarball is compressed, from its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TarCompression {
    Gzip,
    Zstd,
    None,
}

pub fn sniff(file: &mut File) -> io::Result<TarCompression> {
    let mut magic = [0u8; 4];
    let mut n = 0;
    while n < 4 {
        match file.read(&mut magic[n..])? {
            0 => break,
            k => n += k,
        }
    }
    file.seek(SeekFrom::Start(0))?;
    Ok(match &magic[..n] {
        [0x1f, 0x8b, ..] => TarCompression::Gzip,
        [0x28, 0xb5, 0x2f, 0xfd] => TarCompression::Zstd,
        _ => TarCompression::None,
    })
}

/// The PAX sparse format of an entry (`0.0`, `0.1`, `1.0`), if it is a sparse file.
fn pax_sparse_format<R: Read>(item: &mut tar::Entry<R>) -> Option<String> {
    let exts = item.pax_extensions().ok()??;
    let mut sparse = false;
    let (mut major, mut minor, mut map) = (None, None, false);
    for e in exts.flatten() {
        match e.key().unwrap_or("") {
            "GNU.sparse.major" => major = e.value().ok().map(str::to_string),
            "GNU.sparse.minor" => minor = e.value().ok().map(str::to_string),
            "GNU.sparse.map" => map = true,
            k if k.starts_with("GNU.sparse.") => sparse = true,
            _ => {}
        }
    }
    match (major, minor) {
        (Some(a), Some(b)) => Some(format!("{a}.{b}")),
        _ if map => Some("0.1".into()),
        _ if sparse => Some("0.0".into()),
        _ => None,
    }
}

fn pax_value<R: Read>(item: &mut tar::Entry<R>, key: &str) -> Option<String> {
    let exts = item.pax_extensions().ok()??;
    exts.flatten()
        .find(|e| e.key() == Ok(key))
        .and_then(|e| e.value().ok().map(str::to_string))
}

/// A reader over the uncompressed bytes of a (possibly compressed) tarball.
pub fn open_decompressed(src: &Path) -> io::Result<Box<dyn Read + Send>> {
    let mut f = teu_store::lock::open_regular(src)?;
    let c = sniff(&mut f)?;
    decompressed(f, c)
}

/// `raw`'s bytes decompressed as `c` says.
pub fn decompressed<'a, R: Read + Send + 'a>(
    raw: R,
    c: TarCompression,
) -> io::Result<Box<dyn Read + Send + 'a>> {
    Ok(match c {
        TarCompression::Gzip => {
            Box::new(flate2::read::MultiGzDecoder::new(io::BufReader::new(raw)))
        }
        TarCompression::Zstd => Box::new(zstd::stream::read::Decoder::new(raw)?),
        TarCompression::None => Box::new(raw),
    })
}

/// Add the entries of the tarball `src` under `dest`, normalizing their metadata like
/// copied files (owner 0:0, normalized modes, the default mtime). Compressed tarballs are
/// spooled, decompressed, into an anonymous file in `spool_dir`.
pub fn add_tar(
    tree: &mut LayerTree,
    src: &Path,
    dest: &str,
    defaults: &Defaults,
    spool_dir: &Path,
    origin: Origin,
) -> Result<(), LayerError> {
    let io_err = |p: &Path| {
        let path = p.display().to_string();
        let origin = origin.clone();
        move |source| LayerError::Io {
            origin,
            path,
            source,
        }
    };
    let mut file = teu_store::lock::open_regular(src).map_err(io_err(src))?;
    // The tarball as it is before any byte is read, and when: the layer cache keys the
    // entries by the hash of what is read now, and checks this stat after the build.
    let stat = FileStat::from_metadata(&file.metadata().map_err(io_err(src))?);
    let read_at = now_secs();
    let compression = sniff(&mut file).map_err(io_err(src))?;
    let (file, mut raw) = if compression != TarCompression::None {
        let mut spool = tempfile::tempfile_in(spool_dir).map_err(io_err(spool_dir))?;
        let mut raw = Tee::new(file);
        {
            let mut reader = decompressed(&mut raw, compression).map_err(io_err(src))?;
            io::copy(&mut reader, &mut spool).map_err(io_err(src))?;
        }
        spool.seek(SeekFrom::Start(0)).map_err(io_err(src))?;
        (Arc::new(spool), Some(raw))
    } else {
        (Arc::new(file), None)
    };
    let dest_dir = path::normalize_dir(dest.as_bytes()).map_err(|source| LayerError::Path {
        origin: origin.clone(),
        source,
    })?;
    let bad = |message: String| LayerError::Source {
        origin: origin.clone(),
        message: format!("{}: {message}", src.display()),
    };
    // An uncompressed tarball is read in place: hash it as the entries are listed.
    let mut in_place = match raw {
        Some(_) => None,
        None => Some(Tee::new(&*file)),
    };
    let mut spooled: &File = &file;
    let listing: &mut dyn Read = match &mut in_place {
        Some(tee) => tee,
        None => &mut spooled,
    };
    let mut archive = tar::Archive::new(listing);
    // Entries wait for the tarball's hash, which is complete only once all of it is read.
    // (path, kind or a file's (offset, size), mode, entry type)
    type Pending = (Vec<u8>, Result<Kind, (u64, u64)>, u32, tar::EntryType);
    let mut pending: Vec<Pending> = Vec::new();
    for item in archive.entries().map_err(io_err(src))? {
        let mut item = item.map_err(|e| bad(format!("not a valid tar archive: {e}")))?;
        // PAX sparse files (GNU tar --sparse --format=pax, formats 0.0, 0.1 and 1.0) look
        // like regular files named GNUSparseFile.N/NAME whose data is a sparse map and
        // the non-hole bytes: importing that as a file would be the wrong file.
        if let Some(format) = pax_sparse_format(&mut item) {
            let real = pax_value(&mut item, "GNU.sparse.name")
                .unwrap_or_else(|| String::from_utf8_lossy(&item.path_bytes()).into_owned());
            return Err(bad(format!(
                "entry {real:?} is a sparse file (PAX GNU.sparse format {format}), which teu does not import; make the tarball without --sparse"
            )));
        }
        let header = item.header();
        let raw_path = item.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw_path).into_owned();
        let rel = match path::normalize(&raw_path) {
            Ok(p) => p,
            Err(path::PathError::Root(_)) => continue, // "./"
            Err(e) => return Err(bad(format!("entry {shown:?}: {e}"))),
        };
        let target = path::join(&dest_dir, &rel);
        let et = header.entry_type();
        let dev = || -> Result<(u32, u32), LayerError> {
            let major = header.device_major().ok().flatten().unwrap_or(0);
            let minor = header.device_minor().ok().flatten().unwrap_or(0);
            Ok((major, minor))
        };
        let kind = match et {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                Err((item.raw_file_position(), item.size()))
            }
            tar::EntryType::Directory => Ok(Kind::Dir),
            tar::EntryType::Symlink => Ok(Kind::Symlink(
                item.link_name_bytes()
                    .ok_or_else(|| bad(format!("symlink {shown:?} has no target")))?
                    .into_owned(),
            )),
            tar::EntryType::Link => {
                let link = item
                    .link_name_bytes()
                    .ok_or_else(|| bad(format!("hard link {shown:?} has no target")))?;
                let rel = path::normalize(&link).map_err(|e| bad(format!("hard link {shown:?}: {e}")))?;
                Ok(Kind::Hardlink(path::join(&dest_dir, &rel)))
            }
            tar::EntryType::Char => {
                let (major, minor) = dev()?;
                Ok(Kind::CharDevice { major, minor })
            }
            tar::EntryType::Block => {
                let (major, minor) = dev()?;
                Ok(Kind::BlockDevice { major, minor })
            }
            tar::EntryType::Fifo => Ok(Kind::Fifo),
            // `git archive` writes the commit id in a global header: no file.
            tar::EntryType::XGlobalHeader => continue,
            other => {
                return Err(bad(format!(
                    "entry {shown:?} has type {other:?}, which teu does not import (sparse and vendor entries are not supported)"
                )))
            }
        };
        let mode = header
            .mode()
            .map_err(|e| bad(format!("entry {shown:?}: {e}")))?;
        pending.push((target, kind, mode, et));
    }
    let _ = archive.into_inner();
    // Whatever follows the end-of-archive blocks is part of the tarball's bytes too.
    let sha256 = match (raw.as_mut(), in_place) {
        (Some(tee), _) => tee.finish(),
        (None, Some(mut tee)) => tee.finish(),
        (None, None) => unreachable!("a tarball is spooled or read in place"),
    }
    .map_err(io_err(src))?;
    let tarball = Arc::new(Tarball {
        path: src.to_path_buf(),
        stat,
        read_at,
        sha256,
    });
    for (target, kind, mode, et) in pending {
        let kind = kind.unwrap_or_else(|(offset, size)| {
            Kind::File(Content::Range {
                file: Arc::clone(&file),
                offset,
                size,
                tarball: Arc::clone(&tarball),
            })
        });
        let meta = Meta {
            mode: normalized_mode(&kind, mode),
            uid: 0,
            gid: 0,
            mtime: defaults.mtime,
        };
        tree.insert(Entry {
            path: target,
            kind,
            meta,
            priority: if et == tar::EntryType::Directory {
                Priority::Tree
            } else {
                Priority::Explicit
            },
            origin: origin.clone(),
            inode: None,
            xattrs: Vec::new(),
        })?;
    }
    Ok(())
}

/// Reads through to `inner`, hashing every byte that passes.
pub(crate) struct Tee<R> {
    inner: R,
    hash: sha2::Sha256,
}

impl<R: Read> Tee<R> {
    pub(crate) fn new(inner: R) -> Tee<R> {
        Tee {
            inner,
            hash: sha2::Digest::new(),
        }
    }

    /// Read the rest of `inner` and return the hash of everything read.
    pub(crate) fn finish(&mut self) -> io::Result<[u8; 32]> {
        io::copy(self, &mut io::sink())?;
        Ok(sha2::Digest::finalize_reset(&mut self.hash).into())
    }
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        sha2::Digest::update(&mut self.hash, &buf[..n]);
        Ok(n)
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Resolve `src` relative to `base` (the spec's directory).
pub fn resolve(base: &Path, src: &str) -> PathBuf {
    let p = Path::new(src);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn opts(defaults: &Defaults) -> CopyOptions<'_> {
        CopyOptions {
            mode: None,
            uid: None,
            gid: None,
            mtime: None,
            exclude: None,
            follow_symlinks: false,
            defaults,
            origin: Arc::from("test"),
        }
    }

    fn paths(entries: &[Entry]) -> Vec<String> {
        entries
            .iter()
            .map(|e| String::from_utf8_lossy(&e.path).into_owned())
            .collect()
    }

    #[test]
    fn copy_follows_dockerfile_semantics() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("static/css")).unwrap();
        fs::write(d.path().join("static/index.html"), "hi").unwrap();
        fs::write(d.path().join("static/css/a.css"), "a").unwrap();
        fs::write(d.path().join("static/css/a.css.map"), "m").unwrap();
        fs::write(d.path().join("hello"), "bin").unwrap();
        fs::set_permissions(d.path().join("hello"), fs::Permissions::from_mode(0o700)).unwrap();
        let defaults = Defaults { mtime: 7 };
        let mut t = LayerTree::new();
        let mut glob = globset::GlobSetBuilder::new();
        glob.add(globset::Glob::new("*.map").unwrap());
        let glob = glob.build().unwrap();
        let mut o = opts(&defaults);
        o.exclude = Some(&glob);
        add_copy(&mut t, &d.path().join("static"), "/app/static/", &o).unwrap();
        add_copy(
            &mut t,
            &d.path().join("hello"),
            "/app/bin/",
            &opts(&defaults),
        )
        .unwrap();
        add_copy(
            &mut t,
            &d.path().join("hello"),
            "/usr/bin/hi",
            &opts(&defaults),
        )
        .unwrap();
        let out = t.finish(&defaults).unwrap();
        assert_eq!(
            paths(&out),
            [
                "app",
                "app/bin",
                "app/bin/hello",
                "app/static",
                "app/static/css",
                "app/static/css/a.css",
                "app/static/index.html",
                "usr",
                "usr/bin",
                "usr/bin/hi"
            ]
        );
        let hello = &out[2];
        assert_eq!(
            hello.meta,
            Meta {
                mode: 0o755,
                uid: 0,
                gid: 0,
                mtime: 7
            }
        );
        assert_eq!(out[6].meta.mode, 0o644);
    }

    #[test]
    fn symlinks_are_kept_and_specials_refused() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join("t")).unwrap();
        symlink("/etc/passwd", d.path().join("t/outside")).unwrap();
        let defaults = Defaults { mtime: 0 };
        let mut t = LayerTree::new();
        add_copy(&mut t, &d.path().join("t"), "/x/", &opts(&defaults)).unwrap();
        let out = t.finish(&defaults).unwrap();
        assert!(matches!(&out[1].kind, Kind::Symlink(l) if l == b"/etc/passwd"));
        assert_eq!(out[1].meta.mode, 0o777);

        let sock_path = d.path().join("t/sock");
        let _sock = std::os::unix::net::UnixListener::bind(&sock_path).unwrap();
        let err = add_copy(
            &mut LayerTree::new(),
            &d.path().join("t"),
            "/x/",
            &opts(&defaults),
        )
        .unwrap_err();
        assert!(err.to_string().contains("sock is a socket"), "{err}");
    }

    #[test]
    fn hard_links_in_a_tree_stay_hard_links() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join("t")).unwrap();
        fs::write(d.path().join("t/b"), "same").unwrap();
        fs::hard_link(d.path().join("t/b"), d.path().join("t/a")).unwrap();
        let defaults = Defaults { mtime: 0 };
        let mut t = LayerTree::new();
        add_copy(&mut t, &d.path().join("t"), "/", &opts(&defaults)).unwrap();
        let out = t.finish(&defaults).unwrap();
        assert!(matches!(out[0].kind, Kind::File(_)));
        assert!(matches!(&out[1].kind, Kind::Hardlink(l) if l == b"a"));
    }

    #[test]
    fn tarballs_are_imported_normalized() {
        let d = tempfile::tempdir().unwrap();
        let tar_path = d.path().join("v.tar.gz");
        {
            let gz = flate2::write::GzEncoder::new(
                File::create(&tar_path).unwrap(),
                flate2::Compression::fast(),
            );
            let mut b = tar::Builder::new(gz);
            let mut h = tar::Header::new_gnu();
            h.set_path("lib/x.so").unwrap();
            h.set_size(3);
            h.set_mode(0o775);
            h.set_uid(1000);
            h.set_mtime(123456);
            h.set_cksum();
            b.append(&h, &b"abc"[..]).unwrap();
            b.into_inner().unwrap().finish().unwrap();
        }
        let defaults = Defaults { mtime: 0 };
        let mut t = LayerTree::new();
        add_tar(
            &mut t,
            &tar_path,
            "/opt",
            &defaults,
            d.path(),
            Arc::from("test"),
        )
        .unwrap();
        let out = t.finish(&defaults).unwrap();
        assert_eq!(paths(&out), ["opt", "opt/lib", "opt/lib/x.so"]);
        assert_eq!(
            out[2].meta,
            Meta {
                mode: 0o755,
                uid: 0,
                gid: 0,
                mtime: 0
            }
        );
        let mut data = String::new();
        match &out[2].kind {
            Kind::File(c) => c.open().unwrap().read_to_string(&mut data).unwrap(),
            k => panic!("{k:?}"),
        };
        assert_eq!(data, "abc");
    }
}
