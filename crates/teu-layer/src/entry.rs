//! The entry model and [`LayerTree`], which merges entries from every source of one layer.
//!
//! Merging rules, chosen so a spec can never produce two different layers silently:
//! - the same path twice with the same content and metadata is one entry;
//! - a directory stated in the spec (`dirs`, or any entry with explicit metadata) wins over
//!   a directory that only exists as a parent or inside a copied tree;
//! - anything else claiming one path twice is an error naming both origins.

use std::collections::btree_map::Entry as Slot;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::path::{self, PathError};

/// Where an entry came from, for error messages: the spec file, line and key.
pub type Origin = Arc<str>;

/// Metadata stored in the tar header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meta {
    /// Permission and special bits (`0o7777`).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
}

/// The bytes of a regular file.
#[derive(Clone, Debug)]
pub enum Content {
    /// A file on disk, expected to have `size` bytes when read. `stat` is what `stat`
    /// said when the file was listed (the layer cache looks content hashes up by it, so
    /// a no-op build stats each file once).
    Path {
        path: PathBuf,
        size: u64,
        stat: Option<crate::cache::stat::FileStat>,
    },
    /// A range of a spooled or uncompressed tarball.
    Range {
        file: Arc<File>,
        offset: u64,
        size: u64,
        /// The tarball the bytes come from, as it was read.
        tarball: Arc<Tarball>,
    },
    /// Bytes in memory (small generated files, tests).
    Bytes(Arc<[u8]>),
}

impl Content {
    pub fn size(&self) -> u64 {
        match self {
            Content::Path { size, .. } | Content::Range { size, .. } => *size,
            Content::Bytes(b) => b.len() as u64,
        }
    }

    /// Where the bytes are, for messages.
    pub fn describe(&self) -> String {
        match self {
            Content::Path { path, .. } => path.display().to_string(),
            Content::Range {
                tarball, offset, ..
            } => format!("{} at offset {offset}", tarball.path.display()),
            Content::Bytes(_) => "generated content".to_string(),
        }
    }

    /// Open a reader over exactly `size()` bytes. Reading more or fewer bytes than promised
    /// is an error at the reader (a file changed while the layer was built).
    pub fn open(&self) -> io::Result<Box<dyn Read + Send + '_>> {
        self.open_at(0)
    }

    /// [`Content::open`], from byte `skip` on (a segment that starts inside a big file).
    pub fn open_at(&self, skip: u64) -> io::Result<Box<dyn Read + Send + '_>> {
        Ok(match self {
            Content::Path { path, size, stat } => {
                let mut f = teu_store::lock::open_regular(path)?;
                if skip > 0 {
                    io::Seek::seek(&mut f, io::SeekFrom::Start(skip))?;
                }
                match stat {
                    Some(st) => Box::new(Unchanged::new(f, path, *st, skip, *size)),
                    None => Box::new(f),
                }
            }
            Content::Range {
                file, offset, size, ..
            } => Box::new(RangeReader::new(
                &**file,
                offset + skip.min(*size),
                size - skip.min(*size),
            )),
            Content::Bytes(b) => Box::new(&b[(skip as usize).min(b.len())..]),
        })
    }

    fn same_bytes(&self, other: &Content) -> io::Result<bool> {
        if self.size() != other.size() {
            return Ok(false);
        }
        if let (Content::Path { path: a, .. }, Content::Path { path: b, .. }) = (self, other) {
            if a == b {
                return Ok(true);
            }
        }
        let (mut a, mut b) = (self.open()?, other.open()?);
        let (mut ba, mut bb) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
        loop {
            let n = read_full(&mut a, &mut ba)?;
            let m = read_full(&mut b, &mut bb)?;
            if n != m || ba[..n] != bb[..m] {
                return Ok(false);
            }
            if n == 0 {
                return Ok(true);
            }
        }
    }
}

/// A source file read for a layer, checked against what `stat` said when it was listed:
/// once its last byte is read, the file must still have the same size, mtime and ctime,
/// or the read fails naming it. A file rewritten while teu reads it (even at the same
/// size) can never become a layer holding half of each version.
struct Unchanged {
    file: File,
    path: PathBuf,
    listed: crate::cache::stat::FileStat,
    read: u64,
    size: u64,
    #[cfg(debug_assertions)]
    rewrite_for_tests: bool,
}

impl Unchanged {
    fn new(
        file: File,
        path: &std::path::Path,
        listed: crate::cache::stat::FileStat,
        skip: u64,
        size: u64,
    ) -> Unchanged {
        Unchanged {
            file,
            path: path.to_path_buf(),
            listed,
            read: skip,
            size,
            #[cfg(debug_assertions)]
            rewrite_for_tests: std::env::var_os("TEU_TEST_REWRITE_WHILE_READING")
                .is_some_and(|p| std::fs::canonicalize(p).ok() == std::fs::canonicalize(path).ok()),
        }
    }

    fn check(&self) -> io::Result<()> {
        let now = crate::cache::stat::FileStat::from_metadata(&self.file.metadata()?);
        let same = now.size == self.listed.size
            && now.mtime == self.listed.mtime
            && now.mtime_ns == self.listed.mtime_ns
            && now.ctime == self.listed.ctime
            && now.ctime_ns == self.listed.ctime_ns;
        if same {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "{} changed while teu read it (size, mtime or ctime differ from when it was listed); nothing was written: run the build again once it is stable",
                self.path.display()
            )))
        }
    }

    /// Test-only (debug builds): `TEU_TEST_REWRITE_WHILE_READING=PATH` rewrites that file
    /// in place, at the same size, after its first bytes are read: the race a concurrent
    /// writer makes, made deterministic.
    #[cfg(debug_assertions)]
    fn rewrite_once(&mut self) {
        if std::mem::take(&mut self.rewrite_for_tests) {
            if let Ok(f) = std::fs::OpenOptions::new().write(true).open(&self.path) {
                let junk = vec![b'#'; self.size.min(1 << 20) as usize];
                let _ = f.write_all_at(&junk, 0);
                let _ = f.sync_all();
            }
        }
    }
}

impl Read for Unchanged {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read(buf)?;
        #[cfg(debug_assertions)]
        if n > 0 {
            self.rewrite_once();
        }
        self.read += n as u64;
        if n == 0 || self.read >= self.size {
            self.check()?;
        }
        Ok(n)
    }
}

/// A tarball on disk as `add_tar` read it: what the layer cache needs to key the entries
/// taken from it without reading them again, and to notice that it changed since.
///
/// The entries' bytes are a function of the tarball's bytes (a range of them, or of their
/// decompression), so `(sha256, offset, size)` identifies an entry's content. `stat` and
/// `read_at` are the tarball's, not the spool's: the spool is teu's own anonymous file and
/// never changes, but it was always written within the build's first second, and guarding
/// it as a source (as teu once did) made every compressed tarball's layer "racy", never
/// recorded, never a cache hit.
#[derive(Debug)]
pub struct Tarball {
    pub path: PathBuf,
    /// `fstat` of the tarball when it was opened, before any byte was read.
    pub stat: crate::cache::stat::FileStat,
    /// When reading began, in whole seconds (the racy-timestamp guard's reference).
    pub read_at: i64,
    /// SHA-256 of the tarball's bytes as read (compressed, when it is).
    pub sha256: [u8; 32],
}

fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Reads `[offset, offset + size)` of a file with positioned reads, so many readers can
/// share one handle (tarball entries, blobs inside an archive). `F` is a `File` or a
/// reference to one.
pub struct RangeReader<F> {
    file: F,
    pos: u64,
    end: u64,
}

impl<F: std::borrow::Borrow<File>> RangeReader<F> {
    pub fn new(file: F, offset: u64, size: u64) -> RangeReader<F> {
        RangeReader {
            file,
            pos: offset,
            end: offset + size,
        }
    }
}

impl<F: std::borrow::Borrow<File>> Read for RangeReader<F> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf.len().min((self.end - self.pos) as usize);
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.borrow().read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// What an entry is.
#[derive(Clone, Debug)]
pub enum Kind {
    File(Content),
    Dir,
    Symlink(Vec<u8>),
    /// A hard link to another path of the same layer.
    Hardlink(Vec<u8>),
    CharDevice {
        major: u32,
        minor: u32,
    },
    BlockDevice {
        major: u32,
        minor: u32,
    },
    Fifo,
}

impl Kind {
    fn name(&self) -> &'static str {
        match self {
            Kind::File(_) => "file",
            Kind::Dir => "directory",
            Kind::Symlink(_) => "symlink",
            Kind::Hardlink(_) => "hard link",
            Kind::CharDevice { .. } => "character device",
            Kind::BlockDevice { .. } => "block device",
            Kind::Fifo => "fifo",
        }
    }
}

/// How strongly an entry's metadata was asked for; decides merges of directories.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    /// A parent directory added because a child exists.
    Parent,
    /// A directory found inside a copied tree or a tarball.
    Tree,
    /// An entry the spec names itself.
    Explicit,
}

#[derive(Clone, Debug)]
pub struct Entry {
    /// Layer path (see [`crate::path`]).
    pub path: Vec<u8>,
    pub kind: Kind,
    pub meta: Meta,
    pub priority: Priority,
    pub origin: Origin,
    /// `(device, inode)` of the source file when it has more than one link, so that later
    /// paths of the same inode become hard links to the first.
    pub inode: Option<(u64, u64)>,
    /// Extended attributes (name, value), sorted by name; only a converted layer's
    /// entries carry them (teu does not read them from directories), and the header
    /// encoder writes them as PAX `SCHILY.xattr.NAME` records.
    pub xattrs: Vec<(String, Vec<u8>)>,
}

impl Entry {
    /// A regular file of `bytes` owned by root, mode 0644: what teu itself adds to a
    /// layer (whiteouts, eStargz landmarks and TOC), and what tests build from.
    pub fn in_memory(path: &[u8], bytes: &[u8], mtime: u64, origin: Origin) -> Entry {
        Entry {
            path: path.to_vec(),
            kind: Kind::File(Content::Bytes(Arc::from(bytes))),
            meta: Meta {
                mode: 0o644,
                uid: 0,
                gid: 0,
                mtime,
            },
            priority: Priority::Explicit,
            origin,
            inode: None,
            xattrs: Vec::new(),
        }
    }

    /// Bytes of file content (0 for anything but a file).
    pub fn kind_size(&self) -> u64 {
        match &self.kind {
            Kind::File(c) => c.size(),
            _ => 0,
        }
    }
}

/// Defaults for metadata the spec does not set.
#[derive(Clone, Debug)]
pub struct Defaults {
    pub mtime: u64,
}

impl Defaults {
    /// `SOURCE_DATE_EPOCH` when set (and valid), else 0.
    pub fn from_env() -> Result<Defaults, String> {
        match std::env::var("SOURCE_DATE_EPOCH") {
            Ok(v) if !v.trim().is_empty() => v
                .trim()
                .parse::<u64>()
                .map(|mtime| Defaults { mtime })
                .map_err(|_| format!("SOURCE_DATE_EPOCH={v:?} is not a whole number of seconds")),
            _ => Ok(Defaults { mtime: 0 }),
        }
    }

    pub fn dir(&self) -> Meta {
        Meta {
            mode: 0o755,
            uid: 0,
            gid: 0,
            mtime: self.mtime,
        }
    }
}

/// Normalized permission bits: files 0644, or 0755 when the owner may execute; directories
/// 0755; symlinks 0777. Special bits are dropped; only an explicit mode sets them.
pub fn normalized_mode(kind: &Kind, source_mode: u32) -> u32 {
    match kind {
        Kind::Dir => 0o755,
        Kind::Symlink(_) => 0o777,
        _ if source_mode & 0o100 != 0 => 0o755,
        _ => 0o644,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("{origin}: {source}")]
    Path {
        origin: Origin,
        #[source]
        source: PathError,
    },
    #[error("{path} is claimed twice with different content or metadata: as a {first_kind} by {first} and as a {second_kind} by {second}")]
    Conflict {
        path: String,
        first: Origin,
        first_kind: &'static str,
        second: Origin,
        second_kind: &'static str,
    },
    #[error(
        "{origin}: {path} must be a directory, because {child} is inside it, but it is a {kind}"
    )]
    NotADirectory {
        origin: Origin,
        path: String,
        child: String,
        kind: &'static str,
    },
    #[error("{origin}: {message}")]
    Source { origin: Origin, message: String },
    #[error("{origin}: {path}: {source}")]
    Io {
        origin: Origin,
        path: String,
        #[source]
        source: io::Error,
    },
}

/// The entries of one layer, keyed and sorted by path bytes.
#[derive(Default)]
pub struct LayerTree {
    entries: BTreeMap<Vec<u8>, Entry>,
}

impl LayerTree {
    pub fn new() -> LayerTree {
        LayerTree::default()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Add an entry, merging with an existing one at the same path (see the module doc).
    pub fn insert(&mut self, entry: Entry) -> Result<(), LayerError> {
        match self.entries.entry(entry.path.clone()) {
            Slot::Vacant(v) => {
                v.insert(entry);
                Ok(())
            }
            Slot::Occupied(mut o) => {
                let old = o.get();
                if let (Kind::Dir, Kind::Dir) = (&old.kind, &entry.kind) {
                    if old.meta == entry.meta || entry.priority < old.priority {
                        return Ok(());
                    }
                    if entry.priority > old.priority {
                        o.insert(entry);
                        return Ok(());
                    }
                } else if same_entry(old, &entry).map_err(|source| LayerError::Io {
                    origin: entry.origin.clone(),
                    path: path::display(&entry.path),
                    source,
                })? {
                    return Ok(());
                }
                Err(LayerError::Conflict {
                    path: path::display(&entry.path),
                    first: old.origin.clone(),
                    first_kind: old.kind.name(),
                    second: entry.origin,
                    second_kind: entry.kind.name(),
                })
            }
        }
    }

    /// Add a whiteout that deletes `target` (a path of a lower layer).
    pub fn whiteout(
        &mut self,
        target: &[u8],
        defaults: &Defaults,
        origin: Origin,
    ) -> Result<(), LayerError> {
        let target = path::normalize(target).map_err(|source| LayerError::Path {
            origin: origin.clone(),
            source,
        })?;
        let mut name = b".wh.".to_vec();
        name.extend_from_slice(path::file_name(&target));
        let wh = match path::parent(&target) {
            Some(dir) => path::join(dir, &name),
            None => name,
        };
        self.insert(Entry::in_memory(&wh, b"", defaults.mtime, origin))
    }

    /// Add missing parent directories, turn repeated inodes into hard links, and return the
    /// entries in path-byte order.
    pub fn finish(mut self, defaults: &Defaults) -> Result<Vec<Entry>, LayerError> {
        let mut parents: Vec<(Vec<u8>, Origin)> = Vec::new();
        for (p, e) in &self.entries {
            let mut cur = path::parent(p);
            while let Some(dir) = cur {
                parents.push((dir.to_vec(), e.origin.clone()));
                cur = path::parent(dir);
            }
        }
        for (dir, origin) in parents {
            match self.entries.get(&dir) {
                Some(Entry {
                    kind: Kind::Dir, ..
                }) => {}
                Some(other) => {
                    return Err(LayerError::NotADirectory {
                        origin: other.origin.clone(),
                        path: path::display(&dir),
                        child: format!("an entry from {origin}"),
                        kind: other.kind.name(),
                    })
                }
                None => {
                    self.entries.insert(
                        dir.clone(),
                        Entry {
                            path: dir,
                            kind: Kind::Dir,
                            meta: defaults.dir(),
                            priority: Priority::Parent,
                            origin,
                            inode: None,
                            xattrs: Vec::new(),
                        },
                    );
                }
            }
        }
        // Hard links of a tarball name their target by path; copied trees share inodes.
        // Either way the first path of a group in layer order must hold the content, and
        // the others link to it, or extractors meet a link before its target.
        let mut group_of: HashMap<Vec<u8>, Vec<u8>> = HashMap::new(); // path -> group key
        for (p, e) in &self.entries {
            if let Kind::Hardlink(target) = &e.kind {
                match self.entries.get(target) {
                    Some(Entry {
                        kind: Kind::File(_),
                        ..
                    }) => {}
                    Some(Entry {
                        kind: Kind::Hardlink(_),
                        ..
                    }) => {}
                    _ => {
                        return Err(LayerError::Source {
                            origin: e.origin.clone(),
                            message: format!(
                                "hard link {} points to {}, which is not a file in this layer",
                                path::display(p),
                                path::display(target)
                            ),
                        })
                    }
                }
                // Follow a chain of links to the file it ends at; a cycle has no file.
                let mut root = target.clone();
                let mut seen = std::collections::HashSet::from([p.clone()]);
                while let Some(Entry {
                    kind: Kind::Hardlink(t),
                    ..
                }) = self.entries.get(&root)
                {
                    if !seen.insert(root.clone()) {
                        return Err(LayerError::Source {
                            origin: e.origin.clone(),
                            message: format!(
                                "hard link {} is part of a cycle of hard links with no file",
                                path::display(p)
                            ),
                        });
                    }
                    root = t.clone();
                }
                group_of.insert(p.clone(), root.clone());
                group_of.insert(root.clone(), root);
            }
        }
        let mut first_of_inode: HashMap<(u64, u64), Vec<u8>> = HashMap::new();
        let mut first_of_group: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
        // The file a group's links end at: its content and its metadata go to the first path.
        let content_of: HashMap<Vec<u8>, (Kind, Meta)> = group_of
            .values()
            .filter_map(|root| {
                self.entries
                    .get(root)
                    .map(|e| (root.clone(), (e.kind.clone(), e.meta.clone())))
            })
            .collect();
        let mut out = Vec::with_capacity(self.entries.len());
        for (p, mut e) in self.entries {
            if let Some(root) = group_of.get(&p) {
                match first_of_group.get(root) {
                    Some(first) => e.kind = Kind::Hardlink(first.clone()),
                    None => {
                        first_of_group.insert(root.clone(), p.clone());
                        if let Some((k @ Kind::File(_), meta)) = content_of.get(root) {
                            e.kind = k.clone();
                            e.meta = meta.clone();
                        }
                    }
                }
            } else if let (Some(ino), Kind::File(_)) = (e.inode, &e.kind) {
                match first_of_inode.get(&ino) {
                    Some(first) => e.kind = Kind::Hardlink(first.clone()),
                    None => {
                        first_of_inode.insert(ino, p.clone());
                    }
                }
            }
            out.push(e);
        }
        Ok(out)
    }
}

fn same_entry(a: &Entry, b: &Entry) -> io::Result<bool> {
    if a.meta != b.meta || a.xattrs != b.xattrs {
        return Ok(false);
    }
    Ok(match (&a.kind, &b.kind) {
        (Kind::File(x), Kind::File(y)) => x.same_bytes(y)?,
        (Kind::Symlink(x), Kind::Symlink(y)) | (Kind::Hardlink(x), Kind::Hardlink(y)) => x == y,
        (Kind::Fifo, Kind::Fifo) => true,
        (
            Kind::CharDevice { major, minor },
            Kind::CharDevice {
                major: m2,
                minor: n2,
            },
        )
        | (
            Kind::BlockDevice { major, minor },
            Kind::BlockDevice {
                major: m2,
                minor: n2,
            },
        ) => major == m2 && minor == n2,
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, bytes: &[u8], origin: &str) -> Entry {
        Entry::in_memory(path.as_bytes(), bytes, 0, Arc::from(origin))
    }

    #[test]
    fn parents_are_added_once_and_sorted() {
        let mut t = LayerTree::new();
        t.insert(file("a/b/c", b"1", "x")).unwrap();
        t.insert(file("a/b.txt", b"2", "x")).unwrap();
        let paths: Vec<String> = t
            .finish(&Defaults { mtime: 0 })
            .unwrap()
            .iter()
            .map(|e| String::from_utf8(e.path.clone()).unwrap())
            .collect();
        assert_eq!(paths, ["a", "a/b", "a/b.txt", "a/b/c"]);
    }

    #[test]
    fn same_content_twice_is_fine_different_content_is_a_conflict() {
        let mut t = LayerTree::new();
        t.insert(file("a", b"same", "first")).unwrap();
        t.insert(file("a", b"same", "second")).unwrap();
        let err = t
            .insert(file("a", b"other", "third"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/a") && err.contains("first") && err.contains("third"),
            "{err}"
        );
    }

    #[test]
    fn explicit_directory_wins_over_parent() {
        let mut t = LayerTree::new();
        t.insert(file("d/f", b"", "f")).unwrap();
        let mut d = file("d", b"", "dirs");
        d.kind = Kind::Dir;
        d.meta.mode = 0o700;
        t.insert(d).unwrap();
        let out = t.finish(&Defaults { mtime: 0 }).unwrap();
        assert_eq!(out[0].meta.mode, 0o700);
    }

    #[test]
    fn a_file_cannot_be_a_parent() {
        let mut t = LayerTree::new();
        t.insert(file("a", b"", "f1")).unwrap();
        t.insert(file("a/b", b"", "f2")).unwrap();
        let err = t.finish(&Defaults { mtime: 0 }).unwrap_err().to_string();
        assert!(err.contains("must be a directory"), "{err}");
    }

    #[test]
    fn repeated_inodes_become_hard_links_to_the_first_path() {
        let mut t = LayerTree::new();
        let mut a = file("z", b"x", "o");
        a.inode = Some((1, 2));
        let mut b = file("b", b"x", "o");
        b.inode = Some((1, 2));
        t.insert(a).unwrap();
        t.insert(b).unwrap();
        let out = t.finish(&Defaults { mtime: 0 }).unwrap();
        assert!(matches!(out[0].kind, Kind::File(_)));
        assert!(matches!(&out[1].kind, Kind::Hardlink(t) if t == b"b"));
    }

    #[test]
    fn a_hard_link_sorting_before_its_target_gets_the_content() {
        let mut t = LayerTree::new();
        let mut target = file("z/target", b"data", "o");
        target.meta.mode = 0o755;
        t.insert(target).unwrap();
        let mut link = file("a/link", b"", "o");
        link.kind = Kind::Hardlink(b"z/target".to_vec());
        t.insert(link).unwrap();
        let out = t.finish(&Defaults { mtime: 0 }).unwrap();
        let a = out.iter().find(|e| e.path == b"a/link").unwrap();
        let z = out.iter().find(|e| e.path == b"z/target").unwrap();
        assert!(matches!(&a.kind, Kind::File(c) if c.size() == 4));
        assert_eq!(a.meta.mode, 0o755, "the content keeps its file's metadata");
        assert!(matches!(&z.kind, Kind::Hardlink(t) if t == b"a/link"));

        let mut t = LayerTree::new();
        for (from, to) in [("a", "b"), ("b", "c"), ("c", "b")] {
            let mut l = file(from, b"", "tarball");
            l.kind = Kind::Hardlink(to.as_bytes().to_vec());
            t.insert(l).unwrap();
        }
        let err = t.finish(&Defaults { mtime: 0 }).unwrap_err().to_string();
        assert!(err.contains("cycle"), "{err}");

        let mut t = LayerTree::new();
        let mut dangling = file("l", b"", "tarball");
        dangling.kind = Kind::Hardlink(b"missing".to_vec());
        t.insert(dangling).unwrap();
        let err = t.finish(&Defaults { mtime: 0 }).unwrap_err().to_string();
        assert!(err.contains("not a file in this layer"), "{err}");
    }

    #[test]
    fn whiteouts_are_named_for_their_target() {
        let mut t = LayerTree::new();
        t.whiteout(b"/etc/motd", &Defaults { mtime: 0 }, Arc::from("r"))
            .unwrap();
        let out = t.finish(&Defaults { mtime: 0 }).unwrap();
        assert_eq!(out[1].path, b"etc/.wh.motd");
    }
}
