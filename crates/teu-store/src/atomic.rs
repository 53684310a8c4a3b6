//! Write a file or a directory under a temporary name and rename it into place, so a
//! failure leaves either the old content or the new, never half of it. The temporary is
//! locked by its writer ([`crate::lock`]): what a killed teu left beside an output is
//! removed the next time that output is written.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A file being written next to its final path.
pub struct AtomicFile {
    dest: PathBuf,
    tmp: tempfile::NamedTempFile,
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

impl AtomicFile {
    pub fn create(dest: impl Into<PathBuf>) -> io::Result<AtomicFile> {
        let dest = dest.into();
        let dir = parent_of(&dest);
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let prefix = format!(".{name}.tmp-");
        crate::lock::remove_unowned(dir, &prefix)?;
        // 0644 less the umask, like any new file.
        let tmp = crate::lock::locked_temp_file(dir, &prefix)?;
        Ok(AtomicFile { dest, tmp })
    }

    pub fn file(&mut self) -> &mut fs::File {
        self.tmp.as_file_mut()
    }

    /// Fsync and rename into place, then fsync the directory so the rename is durable.
    pub fn commit(self) -> io::Result<()> {
        self.tmp.as_file().sync_all()?;
        self.tmp.persist(&self.dest).map_err(|e| e.error)?;
        sync_dir(parent_of(&self.dest))
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tmp.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.tmp.flush()
    }
}

/// Fsync a directory, making the renames into it durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// Write `bytes` to `dest` atomically.
pub fn write_file(dest: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = AtomicFile::create(dest)?;
    f.write_all(bytes)?;
    f.commit()
}

/// A directory being built under a temporary name beside `dest`; removed when dropped
/// uncommitted.
pub struct AtomicDir {
    dest: PathBuf,
    tmp: Option<PathBuf>,
    _lock: crate::lock::Lock,
}

impl AtomicDir {
    pub fn create(dest: impl Into<PathBuf>) -> io::Result<AtomicDir> {
        let dest = dest.into();
        let dir = parent_of(&dest);
        fs::create_dir_all(dir)?;
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let prefix = format!(".{name}.tmp-");
        crate::lock::remove_unowned(dir, &prefix)?;
        let (tmp, lock) = crate::lock::locked_temp_dir(dir, &prefix)?;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755))?;
        Ok(AtomicDir {
            dest,
            tmp: Some(tmp),
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        self.tmp.as_ref().expect("not yet committed")
    }

    /// Rename into place. Fails if `dest` appeared meanwhile and is not an empty directory.
    pub fn commit(mut self) -> io::Result<()> {
        let path = self.tmp.take().expect("committed once");
        fs::rename(&path, &self.dest).inspect_err(|_| {
            let _ = fs::remove_dir_all(&path);
        })?;
        sync_dir(parent_of(&self.dest))
    }
}

impl Drop for AtomicDir {
    fn drop(&mut self) {
        if let Some(p) = self.tmp.take() {
            let _ = fs::remove_dir_all(p);
        }
    }
}
