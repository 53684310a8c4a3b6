//! Nothing lost, nothing trusted: concurrent writers to one layout, archives checked blob
//! by blob, non-regular files refused without blocking, thread counts clamped, a killed
//! build's leftovers cleaned, an interrupted push's sessions closed, and every bad value
//! refused when parsed, in words a user can act on. One test per finding of the hostile
//! review.

use std::fs;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::registry::{Auth, FaultKind, Proxy, Registry};
use crate::common::*;
use crate::errors::{check, Case};

fn tags_of(layout: &Path) -> Vec<String> {
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let mut tags: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["annotations"]["org.opencontainers.image.ref.name"].as_str())
        .map(str::to_string)
        .collect();
    tags.sort();
    tags
}

#[test]
fn concurrent_builds_into_one_layout_keep_every_tag() {
    let t = tempfile::tempdir().unwrap();
    let (d, home) = (t.path(), t.path().join("home"));
    for k in 1..=6 {
        write(&d.join(format!("f{k}")), format!("{k}\n").as_bytes());
    }
    for round in 0..20 {
        let layout = d.join(format!("lay{round}"));
        // Every other round the layout does not exist yet: six processes create it at once.
        if round % 2 == 0 {
            ok(teu(&home).current_dir(d).args([
                "build",
                "--copy",
                "f1:/f",
                "-q",
                "-o",
                &format!("oci:{}:seed", layout.display()),
            ]));
        }
        let children: Vec<_> = (1..=6)
            .map(|k| {
                teu(&home)
                    .current_dir(d)
                    .args([
                        "build",
                        "--copy",
                        &format!("f{k}:/f"),
                        "-q",
                        "-o",
                        &format!("oci:{}:t{k}", layout.display()),
                    ])
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for c in children {
            let out = c.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "round {round}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let mut want: Vec<String> = (1..=6).map(|k| format!("t{k}")).collect();
        if round % 2 == 0 {
            want.insert(0, "seed".into());
        }
        assert_eq!(tags_of(&layout), want, "round {round}");
        // Nothing half-made beside it.
        let stray: Vec<_> = fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp-") || n.starts_with(".#"))
            .collect();
        assert!(stray.is_empty(), "round {round}: {stray:?}");
    }
}

/// Rewrite the tar at `path` through `edit(name, bytes) -> Option<bytes>` (None drops
/// the member).
fn rewrite_tar(path: &Path, mut edit: impl FnMut(&str, Vec<u8>) -> Option<Vec<u8>>) {
    let data = fs::read(path).unwrap();
    let mut ar = tar::Archive::new(&data[..]);
    let mut out = tar::Builder::new(Vec::new());
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut header = e.header().clone();
        let mut body = Vec::new();
        e.read_to_end(&mut body).unwrap();
        if let Some(body) = edit(&name, body) {
            header.set_size(body.len() as u64);
            header.set_cksum();
            out.append(&header, &body[..]).unwrap();
        }
    }
    fs::write(path, out.into_inner().unwrap()).unwrap();
}

#[test]
fn corrupt_archives_are_refused_naming_the_blob() {
    let t = tempfile::tempdir().unwrap();
    let (d, home) = (t.path(), t.path().join("home"));
    // Incompressible, so the layer is the archive's largest blob.
    let mut noise = vec![0u8; 64 << 10];
    let mut x = 0x2545f4914f6cdd1du64;
    for b in noise.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    write(&d.join("f"), &noise);
    ok(teu(&home).current_dir(d).args([
        "build",
        "--copy",
        "f:/f",
        "-o",
        "docker-archive:good.tar:app:1",
        "-o",
        "oci-archive:good-oci.tar",
    ]));
    let layer_of = |name: &str| {
        // The layer: the largest blob.
        let data = fs::read(d.join(name)).unwrap();
        let mut ar = tar::Archive::new(&data[..]);
        let mut best = (0, String::new());
        for e in ar.entries().unwrap() {
            let e = e.unwrap();
            let n = e.path().unwrap().to_string_lossy().into_owned();
            if n.starts_with("blobs/") && e.size() > best.0 {
                best = (e.size(), n);
            }
        }
        best.1
    };
    let flip = |name: &str, target: String| {
        rewrite_tar(&d.join(name), |n, mut b| {
            if n == target {
                let mid = b.len() / 2;
                b[mid] ^= 0x40;
            }
            Some(b)
        })
    };
    // Without its OCI part, a docker archive is read from manifest.json: a flipped layer
    // byte no longer hides there.
    fs::copy(d.join("good.tar"), d.join("bad.tar")).unwrap();
    rewrite_tar(&d.join("bad.tar"), |n, b| (n != "index.json").then_some(b));
    flip("bad.tar", layer_of("bad.tar"));
    for cmd in [
        vec!["copy", "docker-archive:bad.tar", "oci:out"],
        vec!["inspect", "docker-archive:bad.tar"],
    ] {
        let (code, err) = fails(teu(&home).current_dir(d).args(&cmd));
        assert_eq!(code, 1, "{cmd:?}: {err}");
        assert!(
            err.contains(&layer_of("good.tar")["blobs/sha256/".len()..]) || err.contains("diff_id"),
            "{cmd:?}: {err}"
        );
        assert!(!d.join("out").exists());
    }
    // Only the config edited (another platform, say): refused, not reported as another image.
    fs::copy(d.join("good.tar"), d.join("cfg.tar")).unwrap();
    rewrite_tar(&d.join("cfg.tar"), |n, b| {
        if n == "index.json" {
            return None;
        }
        let text = String::from_utf8_lossy(&b);
        if text.contains("\"architecture\"") {
            return Some(
                text.replace("\"os\":\"linux\"", "\"os\":\"plan9\"")
                    .into_bytes(),
            );
        }
        Some(b)
    });
    let (code, err) = fails(
        teu(&home)
            .current_dir(d)
            .args(["inspect", "docker-archive:cfg.tar"]),
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("does not match"), "{err}");
    // An OCI archive with a flipped layer byte is refused before anything is reported.
    flip("good-oci.tar", layer_of("good-oci.tar"));
    let (code, err) = fails(
        teu(&home)
            .current_dir(d)
            .args(["inspect", "oci-archive:good-oci.tar"]),
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("does not match its digest"), "{err}");
}

fn mkfifo(p: &Path) {
    ok(Command::new("mkfifo").arg(p));
}

#[test]
fn a_fifo_where_a_file_is_expected_is_refused_at_once() {
    let t = tempfile::tempdir().unwrap();
    let (d, home) = (t.path(), t.path().join("home"));
    mkfifo(&d.join("a.tar"));
    fs::create_dir(d.join("lay")).unwrap();
    write(
        &d.join("lay/oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    );
    mkfifo(&d.join("lay/index.json"));
    fs::create_dir(d.join("spec")).unwrap();
    mkfifo(&d.join("spec/teu.toml"));
    for args in [
        vec!["inspect", "oci-archive:a.tar"],
        vec!["inspect", "docker-archive:a.tar"],
        vec!["inspect", "oci:lay"],
        vec!["build", "spec"],
    ] {
        let started = Instant::now();
        let mut child = teu(&home)
            .current_dir(d)
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Never wait forever, even if teu hangs: kill it after the deadline.
        let deadline = started + Duration::from_secs(5);
        while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            panic!("{args:?} hung on a fifo");
        }
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains("not a regular file") || err.contains("fifo"),
            "{args:?}: {err}"
        );
        assert!(started.elapsed() < Duration::from_secs(1), "{args:?}");
    }
}

#[test]
fn a_huge_thread_count_is_clamped_with_a_warning() {
    let t = tempfile::tempdir().unwrap();
    let (d, home) = (t.path(), t.path().join("home"));
    write(&d.join("f"), b"f");
    let out = ok(teu(&home).current_dir(d).args([
        "build",
        "--no-cache",
        "-j",
        "100000",
        "--copy",
        "f:/f",
        "-o",
        "oci:o",
    ]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("warning: --jobs 100000"), "{err}");
    let (code, err) = fails(
        teu(&home)
            .current_dir(d)
            .args(["build", "--jobs", "-1", "--copy", "f:/f"]),
    );
    assert_eq!(code, 2);
    assert!(err.contains("--jobs"), "{err}");
}

#[test]
fn a_killed_build_leaves_nothing_the_next_build_does_not_remove() {
    let t = tempfile::tempdir().unwrap();
    let (d, home) = (t.path(), t.path().join("home"));
    // Incompressible, so the layer takes long enough to kill mid-way.
    let mut big = vec![0u8; 96 << 20];
    let mut x = 0x9e3779b97f4a7c15u64;
    for b in big.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    write(&d.join("big"), &big);
    let tmp = home.join("tmp");
    let partial = |dir: &Path, prefix: &str| -> usize {
        fs::read_dir(dir)
            .map(|r| {
                r.filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .file_name()
                        .to_string_lossy()
                        .starts_with(prefix)
                })
                .count()
            })
            .unwrap_or(0)
    };
    let mut killed = false;
    for _ in 0..5 {
        let mut child = teu(&home)
            .current_dir(d)
            .args([
                "build",
                "--no-cache",
                "-j",
                "1",
                "--copy",
                "big:/big",
                "-o",
                "docker-archive:out.tar",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Kill it once a partial blob or a partial archive exists.
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
            if partial(&tmp, "blob-") > 0 || partial(d, ".out.tar.tmp-") > 0 {
                child.kill().unwrap();
                killed = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = child.wait();
        if killed {
            break;
        }
    }
    assert!(killed, "no build was caught mid-way to kill");
    assert!(partial(&tmp, "blob-") + partial(d, ".out.tar.tmp-") > 0);
    write(&d.join("small"), b"small");
    ok(teu(&home).current_dir(d).args([
        "build",
        "--copy",
        "small:/s",
        "-o",
        "docker-archive:out.tar",
    ]));
    assert_eq!(
        partial(&tmp, "blob-"),
        0,
        "partial blobs left in {}",
        tmp.display()
    );
    assert_eq!(
        partial(d, ".out.tar.tmp-"),
        0,
        "a partial archive left beside out.tar"
    );
}

/// Upload sessions the registry still holds open: distribution keeps a `startedat` file
/// per live session (a DELETE removes it, and GET on the session is then 404; the
/// session's hash state directory may stay behind).
fn open_sessions(reg: &Registry) -> usize {
    fn walk(p: &Path, n: &mut usize) {
        if let Ok(rd) = fs::read_dir(p) {
            for e in rd.flatten() {
                let path = e.path();
                if e.file_name() == "startedat" && p.to_string_lossy().contains("_uploads") {
                    *n += 1;
                } else if path.is_dir() {
                    walk(&path, n);
                }
            }
        }
    }
    let mut n = 0;
    walk(&reg.data_dir(), &mut n);
    n
}

#[test]
fn sigterm_during_a_push_closes_its_upload_sessions() {
    let reg = Registry::start(Auth::None);
    let proxy = Proxy::start(&reg.addr);
    let t = tempfile::tempdir().unwrap();
    let (d, home) = (t.path(), t.path().join("home"));
    let mut big = vec![0u8; 8 << 20];
    for (i, b) in big.iter_mut().enumerate() {
        *b = (i * 7919 % 251) as u8;
    }
    write(&d.join("big"), &big);
    ok(teu(&home).current_dir(d).args([
        "build",
        "--compression",
        "none",
        "--copy",
        "big:/big",
        "-o",
        "oci:lay",
    ]));
    // Every blob upload is slow: the push is interrupted while its sessions are open.
    proxy.fault(
        "PUT",
        "/blobs/uploads/",
        FaultKind::Slow(Duration::from_secs(20)),
        100,
    );
    let mut child = teu(&home)
        .current_dir(d)
        .args(["push", "oci:lay", &format!("{}/app:1", proxy.addr)])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while open_sessions(&reg) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(open_sessions(&reg) > 0, "the push opened no session");
    std::thread::sleep(Duration::from_millis(200));
    ok(Command::new("kill").args(["-TERM", &child.id().to_string()]));
    let out = {
        let deadline = Instant::now() + Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
        }
        child.wait_with_output().unwrap()
    };
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{err}");
    assert!(err.contains("closed"), "{err}");
    assert_eq!(open_sessions(&reg), 0, "upload sessions left open: {err}");
}

#[test]
fn bad_references_and_ports_are_refused_before_any_work() {
    let t = tempfile::tempdir().unwrap();
    let (d, home) = (t.path(), t.path().join("home"));
    write(&d.join("f"), b"f");
    for (output, says) in [
        ("127.0.0.1:99999/repo:tag", "1 to 65535"),
        ("127.0.0.1:abc/repo:tag", "1 to 65535"),
        ("127.0.0.1:0/repo:tag", "1 to 65535"),
        ("127.0.0.1:5000/re..po:tag", "repository"),
    ] {
        let started = Instant::now();
        let (code, err) = fails(
            teu(&home)
                .current_dir(d)
                .args(["build", "--copy", "f:/f", "-o", output]),
        );
        assert_eq!(code, 2, "{output}: {err}");
        assert!(err.contains(says), "{output}: {err}");
        assert!(started.elapsed() < Duration::from_secs(2), "{output}");
    }
    assert_eq!(
        count_entries(&home.join("blobs/sha256")),
        0,
        "something was built"
    );
}

#[test]
fn bad_spec_values_are_refused_with_file_line_and_key() {
    check(
        "empty src",
        Case {
            spec: "[[layer]]\ncopy = [{ src = \"\", dest = \"/a\" }]\n",
            expect: &["teu.toml:2:17: layer[0].copy[0].src", "may not be empty"],
        },
        |_| {},
    );
    check(
        "empty dest",
        Case {
            spec: "[[layer]]\ncopy = [{ src = \"hello.txt\", dest = \"\" }]\n",
            expect: &["layer[0].copy[0].dest", "may not be empty"],
        },
        |_| {},
    );
    check(
        "NUL in an env name",
        Case {
            spec: "[config]\nenv = { \"A\\u0000B\" = \"x\" }\n[[layer]]\ncopy = [{ src = \"hello.txt\", dest = \"/a\" }]\n",
            expect: &["teu.toml:2:", "config.env", "NUL"],
        },
        |_| {},
    );
    check(
        "a verbatim tar of zero blocks",
        Case {
            spec: "[[layer]]\ntars = [{ src = \"zero.tar\", normalize = false }]\n",
            expect: &["zero.tar is not a tar archive", "no entries"],
        },
        |d| write(&d.join("zero.tar"), &[0u8; 1024]),
    );
    // A spec that is not UTF-8 is named at its line and column.
    let t = tempfile::tempdir().unwrap();
    fs::write(
        t.path().join("teu.toml"),
        b"[image]\nbase = \"scr\xffatch\"\n",
    )
    .unwrap();
    let (code, err) = fails(
        teu(&t.path().join("home"))
            .current_dir(t.path())
            .arg("build"),
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("teu.toml:2:12") && err.contains("not UTF-8"),
        "{err}"
    );
}

/// A layout holding one image whose documents `edit` may change (a fresh digest is
/// computed for what it returns, so only the intended defect remains).
fn layout_with(
    d: &Path,
    home: &Path,
    name: &str,
    edit: impl Fn(&mut serde_json::Value, &mut serde_json::Value),
) -> String {
    write(&d.join("f"), b"f");
    let lay = d.join(name);
    ok(teu(home)
        .current_dir(d)
        .args(["build", "--copy", "f:/f", "-o", &format!("oci:{name}")]));
    let mut index: serde_json::Value =
        serde_json::from_slice(&fs::read(lay.join("index.json")).unwrap()).unwrap();
    let mdesc = index["manifests"][0].clone();
    let mpath = lay
        .join("blobs/sha256")
        .join(&mdesc["digest"].as_str().unwrap()[7..]);
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(&mpath).unwrap()).unwrap();
    edit(&mut manifest, &mut index);
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let digest = teu_oci::Digest::of(&bytes);
    fs::write(lay.join("blobs/sha256").join(digest.hex()), &bytes).unwrap();
    index["manifests"][0]["digest"] = digest.to_string().into();
    index["manifests"][0]["size"] = bytes.len().into();
    fs::write(lay.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    format!("oci:{name}")
}

#[test]
fn layouts_teu_cannot_read_correctly_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let (d, home) = (t.path(), t.path().join("home"));
    let v9 = layout_with(d, &home, "v9", |_, _| {});
    fs::write(
        d.join("v9/oci-layout"),
        br#"{"imageLayoutVersion":"9.9.9"}"#,
    )
    .unwrap();
    let s1 = layout_with(d, &home, "s1", |m, _| m["schemaVersion"] = 1.into());
    let mt = layout_with(d, &home, "mt", |m, _| {
        m["mediaType"] = "application/vnd.docker.distribution.manifest.v2+json".into()
    });
    let arr = layout_with(d, &home, "arr", |_, _| {});
    fs::write(d.join("arr/index.json"), b"[]").unwrap();
    for (r, says) in [
        (v9.as_str(), "imageLayoutVersion is \"9.9.9\""),
        (s1.as_str(), "schemaVersion is 1"),
        (mt.as_str(), "but the descriptor that names it says"),
        (arr.as_str(), "is not a JSON object"),
    ] {
        let (code, err) = fails(teu(&home).current_dir(d).args(["inspect", r]));
        assert_eq!(code, 1, "{r}: {err}");
        assert!(err.contains(says), "{r}: {err}");
        assert!(!err.contains("6 elements"), "{r}: {err}");
    }
}

#[test]
fn messages_say_what_is_wrong() {
    let t = tempfile::tempdir().unwrap();
    let (d, home) = (t.path(), t.path().join("home"));
    // A size mismatch says sizes, not "got <the same digest>".
    let lay = layout_with(d, &home, "size", |_, _| {});
    let mut index: serde_json::Value =
        serde_json::from_slice(&fs::read(d.join("size/index.json")).unwrap()).unwrap();
    index["manifests"][0]["size"] = (index["manifests"][0]["size"].as_u64().unwrap() + 7).into();
    fs::write(
        d.join("size/index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    let (_, err) = fails(teu(&home).current_dir(d).args(["inspect", &lay]));
    assert!(
        err.contains("bytes where its descriptor says") || err.contains("expected"),
        "{err}"
    );
    // Random bytes where an archive is expected: a message without raw binary.
    let mut junk = vec![0u8; 4096];
    for (i, b) in junk.iter_mut().enumerate() {
        *b = (i * 131 % 256) as u8;
    }
    fs::write(d.join("junk.tar"), &junk).unwrap();
    let (code, err) = fails(
        teu(&home)
            .current_dir(d)
            .args(["inspect", "oci-archive:junk.tar"]),
    );
    assert_eq!(code, 1);
    assert!(err.chars().all(|c| !c.is_control() || c == '\n'), "{err:?}");
    // Archive members that are not files say what they are.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    h.set_link_name("elsewhere").unwrap();
    b.append_data(&mut h, "index.json", &[][..]).unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_size(30);
    h.set_mode(0o644);
    b.append_data(
        &mut h,
        "oci-layout",
        &br#"{"imageLayoutVersion":"1.0.0"}"#[..],
    )
    .unwrap();
    fs::write(d.join("links.tar"), b.into_inner().unwrap()).unwrap();
    let (_, err) = fails(
        teu(&home)
            .current_dir(d)
            .args(["inspect", "oci-archive:links.tar"]),
    );
    assert!(err.contains("index.json, but it is a symlink"), "{err}");
}

#[test]
fn a_pax_sparse_tarball_is_refused_by_name() {
    let t = tempfile::tempdir().unwrap();
    let (d, home) = (t.path(), t.path().join("home"));
    // A 10 MiB file that is mostly a hole, archived the way the review did.
    let f = fs::File::create(d.join("sparse.img")).unwrap();
    f.set_len(10 << 20).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, b"data at the end", (10 << 20) - 64).unwrap();
    drop(f);
    ok(Command::new("tar").current_dir(d).args([
        "--sparse",
        "--format=pax",
        "-cf",
        "s.tar",
        "sparse.img",
    ]));
    write(
        &d.join("s.toml"),
        b"[[layer]]\ntars = [{ src = \"s.tar\", dest = \"/\" }]\n",
    );
    let (code, err) = fails(
        teu(&home)
            .current_dir(d)
            .args(["build", "s.toml", "-o", "oci:out"]),
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("sparse.img") && err.contains("sparse file"),
        "{err}"
    );
    assert!(
        !err.contains("GNUSparseFile"),
        "the real name, not tar's placeholder: {err}"
    );
    assert!(!d.join("out").exists());
}

#[test]
fn a_file_rewritten_at_the_same_size_while_read_fails_the_build() {
    let t = tempfile::tempdir().unwrap();
    let (d, home) = (t.path(), t.path().join("home"));
    let victim = d.join("src/data.bin");
    write(&victim, &vec![b'a'; 3 << 20]);
    write(&d.join("src/other"), b"other");
    let (code, err) = fails(
        teu(&home)
            .current_dir(d)
            .env("TEU_TEST_REWRITE_WHILE_READING", &victim)
            .args(["build", "--no-cache", "--copy", "src:/src", "-o", "oci:out"]),
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("data.bin") && err.contains("changed while teu read it"),
        "{err}"
    );
    assert!(!d.join("out").exists(), "an output holds a torn file");
    // Once it is stable, the build goes through and holds the new content whole.
    ok(teu(&home)
        .current_dir(d)
        .args(["build", "--copy", "src:/src", "-o", "oci:out"]));
}

#[test]
fn a_fifo_as_a_tarball_source_is_refused_at_once() {
    let t = tempfile::tempdir().unwrap();
    let (d, home) = (t.path(), t.path().join("home"));
    mkfifo(&d.join("a.tar"));
    write(
        &d.join("teu.toml"),
        b"[[layer]]\ntars = [{ src = \"a.tar\", dest = \"/\" }]\n",
    );
    let started = Instant::now();
    let mut child = teu(&home)
        .current_dir(d)
        .arg("build")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    while child.try_wait().unwrap().is_none() && started.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    if child.try_wait().unwrap().is_none() {
        child.kill().unwrap();
        panic!("teu build hung on a fifo tarball");
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("a.tar") && err.contains("fifo"), "{err}");
}
