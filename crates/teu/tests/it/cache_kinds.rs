//! Every kind of source is a layer cache hit when nothing changed, and after each kind of
//! change the cached build gives exactly the digest of a `--no-cache` build in a fresh
//! store. Kinds: a copied file, a copied directory (with a symlink inside), `symlinks`,
//! `dirs`, tarballs (.tar, .tar.gz, .tar.zst), normalized and verbatim, and `remove`.
//!
//! Tarball layers once never hit: the normalized import's spool file was guarded as if
//! it were a source, and it is always written in the build's first second ("racy").

use crate::common::*;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime};

fn build(home: &Path, dir: &Path, extra: &[&str]) -> (String, bool) {
    let out = ok(teu(home)
        .current_dir(dir)
        .args(["build", "-o", "oci:out"])
        .args(extra));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (digest(&out), stderr.contains("(cached)"))
}

fn reference(dir: &Path) -> String {
    let fresh = tempfile::tempdir().unwrap();
    build(fresh.path(), dir, &["--no-cache"]).0
}

#[derive(Clone, Copy)]
enum Tz {
    None,
    Gzip,
    Zstd,
}

/// A tarball of `files` (path, body, mode), compressed as `tz`.
fn make_tar(path: &Path, files: &[(&str, &[u8], u32)], tz: Tz) {
    let mut raw = Vec::new();
    {
        let mut b = tar::Builder::new(&mut raw);
        for (name, body, mode) in files {
            let mut h = tar::Header::new_ustar();
            h.set_path(name).unwrap();
            h.set_size(body.len() as u64);
            h.set_mode(*mode);
            h.set_mtime(1_600_000_000);
            h.set_cksum();
            b.append(&h, *body).unwrap();
        }
        b.finish().unwrap();
    }
    let bytes = match tz {
        Tz::None => raw,
        Tz::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&raw).unwrap();
            e.finish().unwrap()
        }
        Tz::Zstd => zstd::encode_all(&raw[..], 3).unwrap(),
    };
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
}

type Change = (&'static str, Box<dyn Fn(&Path)>);

struct Case {
    name: &'static str,
    spec: String,
    setup: Box<dyn Fn(&Path)>,
    changes: Vec<Change>,
}

fn spec_layer(items: &str) -> String {
    format!("[image]\ncompression = \"gzip\"\n\n[[layer]]\nname = \"l\"\n{items}\n")
}

fn touch(p: &Path) {
    fs::File::options()
        .write(true)
        .open(p)
        .unwrap()
        .set_modified(SystemTime::now())
        .unwrap();
}

fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

fn cases() -> Vec<Case> {
    let tarball = |name: &'static str, tz: Tz, normalize: bool| -> Case {
        let file = match tz {
            Tz::None => "v.tar",
            Tz::Gzip => "v.tar.gz",
            Tz::Zstd => "v.tar.zst",
        };
        let item = if normalize {
            format!("tars = [{{ src = \"{file}\", dest = \"/opt/\" }}]")
        } else {
            format!("tars = [{{ src = \"{file}\", normalize = false }}]")
        };
        let path = move |d: &Path| d.join(file);
        let v1: &[(&str, &[u8], u32)] = &[("a.txt", b"alpha\n", 0o644), ("bin/x", b"x", 0o755)];
        Case {
            name,
            spec: spec_layer(&item),
            setup: Box::new(move |d| make_tar(&path(d), v1, tz)),
            changes: vec![
                ("touch", Box::new(move |d| touch(&path(d)))),
                (
                    "content",
                    Box::new(move |d| {
                        make_tar(
                            &path(d),
                            &[("a.txt", b"ALPHA\n", 0o644), ("bin/x", b"x", 0o755)],
                            tz,
                        )
                    }),
                ),
                (
                    "mode",
                    Box::new(move |d| {
                        make_tar(
                            &path(d),
                            &[("a.txt", b"ALPHA\n", 0o755), ("bin/x", b"x", 0o755)],
                            tz,
                        )
                    }),
                ),
                (
                    "rename, add and delete",
                    Box::new(move |d| {
                        make_tar(
                            &path(d),
                            &[("b.txt", b"ALPHA\n", 0o755), ("new", b"n", 0o644)],
                            tz,
                        )
                    }),
                ),
            ],
        }
    };
    vec![
        Case {
            name: "a copied file",
            spec: spec_layer("copy = [{ src = \"f.txt\", dest = \"/f.txt\" }]"),
            setup: Box::new(|d| write(&d.join("f.txt"), b"one\n")),
            changes: vec![
                ("touch", Box::new(|d| touch(&d.join("f.txt")))),
                (
                    "content",
                    Box::new(|d| write(&d.join("f.txt"), b"two, longer\n")),
                ),
                (
                    "same-size content",
                    Box::new(|d| write(&d.join("f.txt"), b"TWO, LONGER\n")),
                ),
                ("mode", Box::new(|d| chmod(&d.join("f.txt"), 0o755))),
            ],
        },
        Case {
            name: "a copied directory",
            spec: spec_layer("copy = [{ src = \"app\", dest = \"/app/\" }]"),
            setup: Box::new(|d| {
                write(&d.join("app/a.txt"), b"a\n");
                write(&d.join("app/sub/b.txt"), b"b\n");
                symlink("a.txt", d.join("app/link")).unwrap();
            }),
            changes: vec![
                ("touch", Box::new(|d| touch(&d.join("app/a.txt")))),
                (
                    "content",
                    Box::new(|d| write(&d.join("app/sub/b.txt"), b"B!\n")),
                ),
                ("mode", Box::new(|d| chmod(&d.join("app/a.txt"), 0o700))),
                (
                    "rename",
                    Box::new(|d| fs::rename(d.join("app/a.txt"), d.join("app/c.txt")).unwrap()),
                ),
                ("add", Box::new(|d| write(&d.join("app/sub/new"), b"n"))),
                (
                    "delete",
                    Box::new(|d| fs::remove_file(d.join("app/sub/b.txt")).unwrap()),
                ),
                (
                    "symlink retargeted",
                    Box::new(|d| {
                        fs::remove_file(d.join("app/link")).unwrap();
                        symlink("sub", d.join("app/link")).unwrap();
                    }),
                ),
                (
                    "touch: directory mode (normalized to 0755)",
                    Box::new(|d| chmod(&d.join("app/sub"), 0o700)),
                ),
            ],
        },
        Case {
            name: "symlinks",
            spec: spec_layer("symlinks = [{ path = \"/usr/bin/x\", target = \"/opt/x\" }]"),
            setup: Box::new(|_| {}),
            changes: vec![(
                "target",
                Box::new(|d| {
                    fs::write(
                        d.join("teu.toml"),
                        spec_layer("symlinks = [{ path = \"/usr/bin/x\", target = \"/opt/y\" }]"),
                    )
                    .unwrap()
                }),
            )],
        },
        Case {
            name: "dirs",
            spec: spec_layer("dirs = [{ path = \"/data\", mode = \"0700\", uid = 7 }]"),
            setup: Box::new(|_| {}),
            changes: vec![(
                "mode",
                Box::new(|d| {
                    fs::write(
                        d.join("teu.toml"),
                        spec_layer("dirs = [{ path = \"/data\", mode = \"0750\", uid = 7 }]"),
                    )
                    .unwrap()
                }),
            )],
        },
        Case {
            name: "remove",
            spec: spec_layer("remove = [\"/etc/motd\"]"),
            setup: Box::new(|_| {}),
            changes: vec![(
                "another path",
                Box::new(|d| {
                    fs::write(
                        d.join("teu.toml"),
                        spec_layer("remove = [\"/etc/motd\", \"/etc/issue\"]"),
                    )
                    .unwrap()
                }),
            )],
        },
        tarball("a .tar, normalized", Tz::None, true),
        tarball("a .tar.gz, normalized", Tz::Gzip, true),
        tarball("a .tar.zst, normalized", Tz::Zstd, true),
        tarball("a .tar, verbatim", Tz::None, false),
        tarball("a .tar.gz, verbatim", Tz::Gzip, false),
        tarball("a .tar.zst, verbatim", Tz::Zstd, false),
    ]
}

#[test]
fn every_source_kind_is_a_cache_hit_and_every_change_matches_no_cache() {
    let t = tempfile::tempdir().unwrap();
    let cases = cases();
    let dirs: Vec<_> = cases
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let d = t.path().join(format!("case{i}"));
            fs::create_dir_all(&d).unwrap();
            fs::write(d.join("teu.toml"), &c.spec).unwrap();
            (c.setup)(&d);
            d
        })
        .collect();
    // Sources written in the build's first second are "racy" and not recorded (a
    // same-tick rewrite could go unseen): let the clock move on once for all cases.
    std::thread::sleep(Duration::from_millis(1100));
    for (case, dir) in cases.iter().zip(&dirs) {
        let home = dir.join("home");
        let (first, hit) = build(&home, dir, &[]);
        assert!(!hit, "{}: the first build cannot be a hit", case.name);
        assert_eq!(first, reference(dir), "{}: first build", case.name);
        let (again, hit) = build(&home, dir, &[]);
        assert!(hit, "{}: nothing changed, expected a cache hit", case.name);
        assert_eq!(again, first, "{}", case.name);
        let mut previous = first;
        for (what, change) in &case.changes {
            change(dir);
            let (got, _) = build(&home, dir, &[]);
            assert_eq!(got, reference(dir), "{}: after {what}", case.name);
            // "touch" steps change the sources but nothing that reaches the layer.
            if what.starts_with("touch") {
                assert_eq!(got, previous, "{}: {what} changes nothing", case.name);
            } else {
                assert_ne!(got, previous, "{}: {what} must change the layer", case.name);
            }
            previous = got;
        }
    }
}

/// A change within the same timestamp tick as the build that recorded the tarball: the
/// rewrite keeps size and mtime, and must still be seen.
#[test]
fn a_tarball_rewritten_within_the_same_second_is_seen() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("home");
    let dir = t.path().join("src");
    fs::create_dir_all(&dir).unwrap();
    for (file, tz, item) in [
        (
            "v.tar.gz",
            Tz::Gzip,
            "tars = [{ src = \"v.tar.gz\", dest = \"/\" }]",
        ),
        (
            "v.tar",
            Tz::None,
            "tars = [{ src = \"v.tar\", normalize = false }]",
        ),
    ] {
        fs::write(dir.join("teu.toml"), spec_layer(item)).unwrap();
        let p = dir.join(file);
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let tick = SystemTime::UNIX_EPOCH + Duration::from_secs(now);
        make_tar(&p, &[("a", b"1111", 0o644)], tz);
        fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(tick)
            .unwrap();
        build(&home, &dir, &[]);
        make_tar(&p, &[("a", b"2222", 0o644)], tz); // same size
        fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(tick)
            .unwrap();
        let (got, _) = build(&home, &dir, &[]);
        assert_eq!(got, reference(&dir), "{file}");
    }
}
