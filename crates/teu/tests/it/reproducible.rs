//! The determinism promise: the same inputs give the same digest from another directory,
//! under another umask, with other file mtimes and permissions, another TZ and locale,
//! another thread count and an empty store.

use crate::common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// Make a copy look as if it had been checked out elsewhere: umask 077 permissions
/// (0600 files, 0700 dirs and executables) and scattered mtimes.
pub(crate) fn roughen(dir: &Path, seed: u64) {
    for (i, e) in walk(dir).into_iter().enumerate() {
        let m = fs::symlink_metadata(&e).unwrap();
        if m.file_type().is_symlink() {
            continue;
        }
        let mode = if m.is_dir() || m.permissions().mode() & 0o100 != 0 {
            0o700
        } else {
            0o600
        };
        fs::set_permissions(&e, fs::Permissions::from_mode(mode)).unwrap();
        let t = SystemTime::UNIX_EPOCH
            + Duration::from_secs(1_000_000_000 + seed * 7919 + i as u64 * 104_729);
        let f = fs::File::options().read(true).open(&e).unwrap();
        f.set_modified(t).unwrap();
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v = vec![];
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if fs::symlink_metadata(&p).unwrap().is_dir() {
            v.extend(walk(&p));
        }
        v.push(p);
    }
    v
}

#[test]
fn same_digest_across_directories_umask_mtimes_locale_and_threads() {
    let t = tempfile::tempdir().unwrap();
    let a = t.path().join("first/checkout");
    let b = t.path().join("another/place/entirely");
    copy_tree(&example_dir(), &a);
    copy_tree(&example_dir(), &b);
    roughen(&b, 42);

    let out_a = ok(teu(&t.path().join("home-a"))
        .current_dir(t.path())
        .env("TZ", "UTC")
        .env("LC_ALL", "C")
        .args([
            "build",
            a.to_str().unwrap(),
            "--jobs",
            "1",
            "-o",
            "oci:out-a",
        ]));
    // The second build runs under umask 077, in another time zone and locale, with many
    // threads and a fresh store.
    let out_b = ok(std::process::Command::new("sh")
        .arg("-c")
        .arg("umask 077 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_teu"))
        .args([
            "build",
            b.to_str().unwrap(),
            "--jobs",
            "16",
            "-o",
            "oci:out-b",
        ])
        .current_dir(t.path())
        .env("TEU_HOME", t.path().join("home-b"))
        .env_remove("SOURCE_DATE_EPOCH")
        .env("TZ", "Asia/Kolkata")
        .env("LC_ALL", "de_DE.UTF-8")
        .env("LANG", "tr_TR.UTF-8"));
    assert_eq!(digest(&out_a), digest(&out_b));
    // And the layouts hold the same bytes.
    for f in ["index.json", "oci-layout"] {
        assert_eq!(
            fs::read(t.path().join("out-a").join(f)).unwrap(),
            fs::read(t.path().join("out-b").join(f)).unwrap()
        );
    }
}

#[test]
fn archives_are_deterministic_too() {
    let t = tempfile::tempdir().unwrap();
    let build = |home: &str, name: &str, jobs: &str| {
        ok(teu(&t.path().join(home)).current_dir(t.path()).args([
            "build",
            example_dir().to_str().unwrap(),
            "--jobs",
            jobs,
            "-o",
            &format!("oci-archive:{name}.oci.tar"),
            "-o",
            &format!("docker-archive:{name}.docker.tar:hello:1"),
        ]));
    };
    build("h1", "one", "1");
    build("h2", "two", "3");
    for kind in ["oci", "docker"] {
        let a = fs::read(t.path().join(format!("one.{kind}.tar"))).unwrap();
        let b = fs::read(t.path().join(format!("two.{kind}.tar"))).unwrap();
        assert!(a == b, "{kind} archives differ");
    }
}
