//! Layer paths: the bytes of a path inside the image, relative to `/`, components joined by
//! `/`, without `.`, `..`, empty components, or a trailing slash. Paths are bytes, not
//! strings, because file names on Linux are bytes and teu keeps them exactly.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PathError {
    #[error("path {0:?} escapes the image root with '..'")]
    Escapes(String),
    #[error("path {0:?} names the image root itself, not a file in it")]
    Root(String),
    #[error("path {0:?} contains a NUL byte")]
    Nul(String),
}

/// Normalize `raw` (absolute or relative to `/`) into a layer path. `..` is resolved
/// lexically and may not climb above `/`.
pub fn normalize(raw: &[u8]) -> Result<Vec<u8>, PathError> {
    let shown = || String::from_utf8_lossy(raw).into_owned();
    if raw.contains(&0) {
        return Err(PathError::Nul(shown()));
    }
    let mut parts: Vec<&[u8]> = Vec::new();
    for comp in raw.split(|&b| b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => {
                if parts.pop().is_none() {
                    return Err(PathError::Escapes(shown()));
                }
            }
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        return Err(PathError::Root(shown()));
    }
    Ok(parts.join(&b'/'))
}

/// Like [`normalize`], but the root itself is allowed (returns an empty path).
pub fn normalize_dir(raw: &[u8]) -> Result<Vec<u8>, PathError> {
    match normalize(raw) {
        Err(PathError::Root(_)) => Ok(Vec::new()),
        other => other,
    }
}

/// `dir/name`, where `dir` may be the root (empty).
pub fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    if dir.is_empty() {
        name.to_vec()
    } else {
        let mut p = Vec::with_capacity(dir.len() + 1 + name.len());
        p.extend_from_slice(dir);
        p.push(b'/');
        p.extend_from_slice(name);
        p
    }
}

/// The parent of a layer path (`None` for a top-level entry).
pub fn parent(path: &[u8]) -> Option<&[u8]> {
    path.iter().rposition(|&b| b == b'/').map(|i| &path[..i])
}

/// The last component.
pub fn file_name(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => &path[i + 1..],
        None => path,
    }
}

pub fn display(path: &[u8]) -> String {
    format!("/{}", String::from_utf8_lossy(path))
}

pub fn as_os(path: &[u8]) -> &OsStr {
    OsStr::from_bytes(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes() {
        assert_eq!(normalize(b"/app/bin/hello").unwrap(), b"app/bin/hello");
        assert_eq!(normalize(b"app//./bin/").unwrap(), b"app/bin");
        assert_eq!(normalize(b"/app/../etc/x").unwrap(), b"etc/x");
        assert_eq!(
            normalize(b"/../etc"),
            Err(PathError::Escapes("/../etc".into()))
        );
        assert_eq!(
            normalize(b"/a/../../b"),
            Err(PathError::Escapes("/a/../../b".into()))
        );
        assert!(matches!(normalize(b"/"), Err(PathError::Root(_))));
        assert_eq!(normalize_dir(b"/").unwrap(), b"");
    }

    #[test]
    fn parents_and_names() {
        assert_eq!(parent(b"a/b/c"), Some(&b"a/b"[..]));
        assert_eq!(parent(b"a"), None);
        assert_eq!(file_name(b"a/b/c"), b"c");
        assert_eq!(join(b"", b"x"), b"x");
        assert_eq!(join(b"a", b"x"), b"a/x");
    }
}
