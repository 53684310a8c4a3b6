//! Helpers shared by the integration tests: running the teu binary with its own store,
//! finding real tools (a missing tool fails the test: scripts/test installs them), and
//! comparing trees.

#![allow(dead_code)]

pub use teu_testkit::{registry, token_server, tool};

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

pub fn example_dir() -> PathBuf {
    repo_root().join("examples/hello")
}

/// The teu binary with `TEU_HOME` set to `home` and a clean environment for determinism
/// knobs (callers set them explicitly).
pub fn teu(home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_teu"));
    c.env("TEU_HOME", home)
        .env_remove("SOURCE_DATE_EPOCH")
        .env_remove("TEU_JOBS");
    c
}

#[track_caller]
pub fn ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "command failed ({:?}): {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        cmd,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Run a command expected to fail; return (exit code, stderr).
#[track_caller]
pub fn fails(cmd: &mut Command) -> (i32, String) {
    let out = cmd.output().expect("spawn");
    assert!(
        !out.status.success(),
        "command unexpectedly succeeded: {:?}\nstdout:\n{}",
        cmd,
        String::from_utf8_lossy(&out.stdout)
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The digest teu printed: the last line of stdout.
pub fn digest(out: &Output) -> String {
    let s = String::from_utf8(out.stdout.clone()).unwrap();
    let last = s.lines().last().unwrap_or_default().to_string();
    assert!(
        last.starts_with("sha256:") && last.len() == 71,
        "not a digest: {s:?}"
    );
    last
}

/// Copy a tree keeping symlinks, exec bits and hard links, but not mtimes.
pub fn copy_tree(src: &Path, dst: &Path) {
    let mut inodes: BTreeMap<(u64, u64), PathBuf> = BTreeMap::new();
    copy_rec(src, dst, &mut inodes);
}

fn copy_rec(src: &Path, dst: &Path, inodes: &mut BTreeMap<(u64, u64), PathBuf>) {
    fs::create_dir_all(dst).unwrap();
    for e in fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let from = e.path();
        let to = dst.join(e.file_name());
        let m = fs::symlink_metadata(&from).unwrap();
        if m.is_dir() {
            copy_rec(&from, &to, inodes);
        } else if m.file_type().is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&from).unwrap(), &to).unwrap();
        } else if let Some(first) = inodes.get(&(m.dev(), m.ino())) {
            fs::hard_link(first, &to).unwrap();
        } else {
            fs::copy(&from, &to).unwrap();
            if m.nlink() > 1 {
                inodes.insert((m.dev(), m.ino()), to.clone());
            }
        }
    }
}

/// What a tree holds, for comparisons: path -> description (type, content, exec bit,
/// link target). Hard links show as the same content plus a shared inode group.
pub fn describe_tree(root: &Path) -> BTreeMap<Vec<u8>, String> {
    let mut out = BTreeMap::new();
    describe_rec(root, root, &mut out);
    out
}

fn describe_rec(root: &Path, dir: &Path, out: &mut BTreeMap<Vec<u8>, String>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let rel = p
            .strip_prefix(root)
            .unwrap()
            .as_os_str()
            .as_bytes()
            .to_vec();
        let m = fs::symlink_metadata(&p).unwrap();
        let d = if m.file_type().is_symlink() {
            format!("symlink -> {}", fs::read_link(&p).unwrap().display())
        } else if m.is_dir() {
            describe_rec(root, &p, out);
            "dir".to_string()
        } else {
            let exec = m.permissions().mode() & 0o100 != 0;
            let body = fs::read(&p).unwrap();
            format!("file exec={exec} len={} sha={}", body.len(), sha(&body))
        };
        out.insert(rel, d);
    }
}

fn sha(b: &[u8]) -> String {
    // A cheap content fingerprint is enough to compare two trees.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &x in b {
        h ^= x as u64;
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Hard-link groups of a tree: sets of paths sharing an inode (only groups of two or more).
pub fn link_groups(root: &Path) -> Vec<Vec<Vec<u8>>> {
    let mut by_inode: BTreeMap<(u64, u64), Vec<Vec<u8>>> = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p);
            } else if m.is_file() && m.nlink() > 1 {
                let rel = p
                    .strip_prefix(root)
                    .unwrap()
                    .as_os_str()
                    .as_bytes()
                    .to_vec();
                by_inode.entry((m.dev(), m.ino())).or_default().push(rel);
            }
        }
    }
    let mut groups: Vec<Vec<Vec<u8>>> = by_inode
        .into_values()
        .filter(|g| g.len() > 1)
        .map(|mut g| {
            g.sort();
            g
        })
        .collect();
    groups.sort();
    groups
}

/// Files and directories under `dir` (for "nothing partial was left" checks).
pub fn count_entries(dir: &Path) -> usize {
    match fs::read_dir(dir) {
        Ok(rd) => rd.count(),
        Err(_) => 0,
    }
}

pub fn write(path: &Path, body: &[u8]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, body).unwrap();
}

/// Incompressible bytes, reproducible from `seed`.
pub fn random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}
