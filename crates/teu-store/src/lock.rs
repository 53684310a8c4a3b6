//! Advisory locks (`flock`) for what several teu processes share, and the cleanup of
//! temporary files no live process owns.
//!
//! - A read-modify-write of a shared file (an OCI layout's `index.json`) holds
//!   [`lock_dir`] on the directory around it, so concurrent builds into one layout keep
//!   every tag.
//! - Every temporary file or directory teu writes next to its destination, or in the
//!   store's `tmp/`, is locked by the process writing it for as long as it lives
//!   ([`lock_file`]). A crashed writer's lock is gone with it, so [`remove_unowned`]
//!   can tell garbage from work in progress by trying the lock: no pid files, no clock,
//!   and it works across pid namespaces that share a file system.

use std::fs::{self, File};
use std::io;
use std::os::unix::io::AsRawFd;
use std::path::Path;

/// A held `flock`; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

fn flock(file: &File, op: libc::c_int) -> io::Result<()> {
    loop {
        // SAFETY: flock on a file descriptor we own for the duration of the call.
        let r = unsafe { libc::flock(file.as_raw_fd(), op) };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Lock `file` exclusively, waiting for other holders.
pub fn lock_file(file: &File) -> io::Result<()> {
    flock(file, libc::LOCK_EX)
}

/// Lock the directory `dir` exclusively (waiting for other holders), for a
/// read-modify-write of a file in it that is replaced by rename (so the file itself
/// cannot carry the lock).
pub fn lock_dir(dir: &Path) -> io::Result<Lock> {
    let file = File::open(dir)?;
    flock(&file, libc::LOCK_EX)?;
    Ok(Lock { _file: file })
}

/// A new temporary file in `dir` named `prefix…`, locked by this process before its name
/// appears there (it is made and locked under a hidden name, then renamed), so
/// [`remove_unowned`] never takes it for garbage; removed when dropped unpersisted.
pub fn locked_temp_file(dir: &Path, prefix: &str) -> io::Result<tempfile::NamedTempFile> {
    use std::os::unix::fs::OpenOptionsExt;
    tempfile::Builder::new()
        .prefix(prefix)
        .make_in(dir, |path| {
            let hidden = hidden_twin(path);
            let file = fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o644)
                .open(&hidden)?;
            lock_file(&file)?;
            fs::rename(&hidden, path).inspect_err(|_| {
                let _ = fs::remove_file(&hidden);
            })?;
            Ok(file)
        })
}

/// A new directory in `dir` named `prefix…`, made and locked the same way; the returned
/// lock must be held while the directory is in use.
pub fn locked_temp_dir(dir: &Path, prefix: &str) -> io::Result<(std::path::PathBuf, Lock)> {
    for _ in 0..100 {
        let name = format!("{prefix}{:016x}", fastrand_u64());
        let path = dir.join(name);
        let hidden = hidden_twin(&path);
        match fs::create_dir(&hidden) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
        let lock = lock_dir(&hidden)?;
        if path.exists() {
            let _ = fs::remove_dir(&hidden);
            continue;
        }
        fs::rename(&hidden, &path).inspect_err(|_| {
            let _ = fs::remove_dir(&hidden);
        })?;
        return Ok((path, lock));
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "no free temporary directory name",
    ))
}

/// `dir/.#name`: where a temporary file is made before it gets its visible name.
fn hidden_twin(path: &Path) -> std::path::PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".#{}", name.unwrap_or_default()))
}

/// A random number for temporary names, from the clock and the process id (the
/// exclusive create retries on a collision).
fn fastrand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    h.finish()
}

/// Whether nobody holds a lock on `path` (true also when it cannot be opened any more).
fn unowned(path: &Path) -> bool {
    match File::open(path) {
        Ok(f) => flock(&f, libc::LOCK_EX | libc::LOCK_NB).is_ok(),
        Err(_) => false,
    }
}

/// Remove the entries of `dir` whose names start with `prefix` and that no live
/// process holds locked: what a killed teu left behind. Returns how many went.
pub fn remove_unowned(dir: &Path, prefix: &str) -> io::Result<usize> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(prefix) {
            continue;
        }
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        // Only files and directories teu makes: never follow a link, never open a fifo.
        if !(kind.is_file() || kind.is_dir()) || !unowned(&path) {
            continue;
        }
        let gone = if kind.is_dir() {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        if gone.is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

/// Open `path` for reading only if it is a regular file: a fifo, a device or a socket
/// where a file is expected is refused at once, without blocking (opening a fifo for
/// reading waits for a writer forever).
pub fn open_regular(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("is a {}, not a regular file", kind_name(&meta.file_type())),
        ));
    }
    // Back to blocking reads (O_NONBLOCK means nothing for regular files, but a reader
    // should not see EAGAIN if the file is replaced by something else later).
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(file.as_raw_fd(), libc::F_GETFL);
        if flags >= 0 {
            libc::fcntl(file.as_raw_fd(), libc::F_SETFL, flags & !libc::O_NONBLOCK);
        }
    }
    Ok(file)
}

/// Read a whole small file that must be a regular file (see [`open_regular`]).
pub fn read_regular(path: &Path) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    io::Read::read_to_end(&mut open_regular(path)?, &mut buf)?;
    Ok(buf)
}

fn kind_name(t: &fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_dir() {
        "directory"
    } else if t.is_fifo() {
        "fifo"
    } else if t.is_socket() {
        "socket"
    } else if t.is_block_device() || t.is_char_device() {
        "device"
    } else if t.is_symlink() {
        "symlink"
    } else {
        "special file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unlocked_leftovers_are_removed() {
        let d = tempfile::tempdir().unwrap();
        let live = d.path().join("blob-live");
        let dead = d.path().join("blob-dead");
        let other = d.path().join("other");
        for p in [&live, &dead, &other] {
            fs::write(p, b"x").unwrap();
        }
        let held = File::open(&live).unwrap();
        lock_file(&held).unwrap();
        assert_eq!(remove_unowned(d.path(), "blob-").unwrap(), 1);
        assert!(live.exists() && other.exists() && !dead.exists());
        drop(held);
        assert_eq!(remove_unowned(d.path(), "blob-").unwrap(), 1);
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("a.tar");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo with a valid C string.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        let e = open_regular(&fifo).unwrap_err();
        assert!(e.to_string().contains("fifo"), "{e}");
        assert!(open_regular(d.path())
            .unwrap_err()
            .to_string()
            .contains("directory"));
    }
}
