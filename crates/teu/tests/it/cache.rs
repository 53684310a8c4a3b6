//! The layer cache end to end: every kind of change gives exactly the digest a
//! `--no-cache` build in a fresh store gives, unchanged inputs are cache hits, a missing
//! or corrupt blob is rebuilt, `teu cache verify` removes corrupt blobs and `gc` keeps
//! what outputs reference. Segmented layers are checked with real decompressors.

use crate::common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

/// A small app: text, a binary-ish file, a nested directory.
fn app(dir: &Path) {
    write(&dir.join("app/main.txt"), b"hello\n");
    write(&dir.join("app/lib/data.bin"), &[7u8; 40_000]);
    write(&dir.join("app/lib/other.txt"), b"other\n");
    write(&dir.join("app/static/index.html"), b"<p>hi</p>\n");
    write(
        &dir.join("teu.toml"),
        b"[[layer]]\nname = \"app\"\ncopy = [{ src = \"app\", dest = \"/app/\" }]\n",
    );
}

struct Build {
    digest: String,
    cached: bool,
}

fn build(home: &Path, spec_dir: &Path, extra: &[&str]) -> Build {
    let out = ok(teu(home)
        .current_dir(spec_dir)
        .args(["build", "-o", "oci:out"])
        .args(extra));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    Build {
        digest: digest(&out),
        cached: stderr.contains("(cached)"),
    }
}

/// The truth: a build with no cache, in a store that has never seen anything.
fn reference(spec_dir: &Path) -> String {
    let fresh = tempfile::tempdir().unwrap();
    build(fresh.path(), spec_dir, &["--no-cache"]).digest
}

fn set_mtime(p: &Path, t: SystemTime) {
    fs::File::open(p).unwrap().set_modified(t).unwrap();
}

#[test]
fn every_change_gives_the_no_cache_digest() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("home");
    let src = t.path().join("src");
    app(&src);
    // Sources written within the build's first second are racy (a same-tick rewrite
    // could go unseen), so the build would not record them: let the clock move on.
    std::thread::sleep(Duration::from_millis(1100));
    let first = build(&home, &src, &[]);
    assert!(!first.cached);
    assert_eq!(first.digest, reference(&src));

    // Each step changes the tree, then a cached build must equal a fresh --no-cache build.
    type Step = (&'static str, fn(&Path), bool);
    let steps: Vec<Step> = vec![
        ("nothing", |_| {}, true),
        (
            "touch without change",
            |s| set_mtime(&s.join("app/main.txt"), SystemTime::now()),
            true,
        ),
        (
            "mtime only (not in the layer by default)",
            |s| {
                set_mtime(
                    &s.join("app/lib/other.txt"),
                    SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000),
                )
            },
            true,
        ),
        (
            "content",
            |s| fs::write(s.join("app/main.txt"), b"hello, world\n").unwrap(),
            false,
        ),
        (
            "same size content",
            |s| fs::write(s.join("app/main.txt"), b"HELLO, WORLD\n").unwrap(),
            false,
        ),
        (
            "mode only",
            |s| {
                fs::set_permissions(s.join("app/main.txt"), fs::Permissions::from_mode(0o755))
                    .unwrap()
            },
            false,
        ),
        (
            "rename",
            |s| fs::rename(s.join("app/lib/other.txt"), s.join("app/lib/renamed.txt")).unwrap(),
            false,
        ),
        (
            "add",
            |s| write(&s.join("app/static/new.css"), b"p{}\n"),
            false,
        ),
        (
            "delete",
            |s| fs::remove_file(s.join("app/static/index.html")).unwrap(),
            false,
        ),
    ];
    let mut previous = first.digest.clone();
    for (what, change, same_as_before) in steps {
        change(&src);
        let got = build(&home, &src, &[]);
        assert_eq!(got.digest, reference(&src), "after {what}");
        assert_eq!(got.digest == previous, same_as_before, "after {what}");
        if same_as_before {
            assert!(got.cached, "after {what}: expected a cache hit");
        }
        previous = got.digest;
    }
}

/// git's racy-timestamp case: a file changed again within the same second as the build
/// that hashed it, with the same size and mtime, must not be taken from the stat cache.
/// (On this file system ctime still moves; the guard itself, for clocks that do not, is
/// unit-tested in `teu_layer::cache::stat`.)
#[test]
fn a_change_within_the_same_second_is_seen() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("home");
    let src = t.path().join("src");
    app(&src);
    let file = src.join("app/main.txt");
    // Pin the mtime to a whole second, as a coarse-clock file system would record it.
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let tick = SystemTime::UNIX_EPOCH + Duration::from_secs(now);
    set_mtime(&file, tick);
    build(&home, &src, &[]);
    fs::write(&file, b"HELLO\n").unwrap(); // same size
    set_mtime(&file, tick);
    let got = build(&home, &src, &[]);
    assert_eq!(got.digest, reference(&src));
}

#[test]
fn a_layer_whose_blob_is_gone_or_corrupt_is_rebuilt() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("home");
    let src = t.path().join("src");
    app(&src);
    let first = build(&home, &src, &[]);
    let blobs = home.join("blobs/sha256");
    for e in fs::read_dir(&blobs).unwrap() {
        fs::remove_file(e.unwrap().path()).unwrap();
    }
    let again = build(&home, &src, &[]);
    assert!(
        !again.cached,
        "the blob was gone: the layer must be rebuilt"
    );
    assert_eq!(again.digest, first.digest);

    // Corrupt the layer blob on disk: verify finds it, removes it, and the next build
    // rebuilds the layer.
    let layer = fs::read_dir(&blobs)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = fs::read(&layer).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs::write(&layer, &bytes).unwrap();
    let out = teu(&home)
        .args(["cache", "verify", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "verify must fail on corruption");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["corrupt"].as_array().unwrap().len(), 1, "{v}");
    assert!(!layer.exists(), "the corrupt blob is removed");
    let out = ok(teu(&home).args(["cache", "verify", "--json"]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["corrupt"].as_array().unwrap().len(), 0);
    let rebuilt = build(&home, &src, &[]);
    assert!(!rebuilt.cached);
    assert_eq!(rebuilt.digest, first.digest);
    // The output layout shares blobs with the store (hard links): the damaged copy there
    // was replaced by the rebuilt one, so every blob in it matches its name again.
    for e in fs::read_dir(src.join("out/blobs/sha256")).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        let body = fs::read(&p).unwrap();
        let out = Command::new("sha256sum").arg(&p).output().unwrap();
        let sum = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            sum.starts_with(&name),
            "{} is damaged ({} bytes)",
            p.display(),
            body.len()
        );
    }
}

fn age_everything(dir: &Path, by: Duration) {
    let past = SystemTime::now() - by;
    for e in fs::read_dir(dir).unwrap() {
        set_mtime(&e.unwrap().path(), past);
    }
}

#[test]
fn gc_keeps_what_outputs_reference() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("home");
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    app(&a);
    app(&b);
    write(&b.join("app/only-b.txt"), b"b\n");
    // Not racy when built (see every_change_gives_the_no_cache_digest).
    std::thread::sleep(Duration::from_millis(1100));
    ok(teu(&home)
        .current_dir(&a)
        .args(["build", "-q", "-o", "oci:out"]));
    ok(teu(&home)
        .current_dir(&b)
        .args(["build", "-q", "-o", "oci:out"]));
    let layer_of = |dir: &Path| -> String {
        let out = ok(teu(&home)
            .current_dir(dir)
            .args(["build", "--json", "-o", "oci:out"]));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["layers"][0]["digest"].as_str().unwrap().to_string()
    };
    let (la, lb) = (layer_of(&a), layer_of(&b));
    assert_ne!(la, lb);
    let blob = |d: &str| {
        home.join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    age_everything(&home.join("blobs/sha256"), Duration::from_secs(3 * 86_400));

    // Both outputs exist: nothing they reference goes, however old.
    ok(teu(&home).args(["cache", "gc", "--max-age", "1d"]));
    assert!(blob(&la).is_file() && blob(&lb).is_file());

    // b's output is deleted: its layer may go, a's stays, even under --max-size 0.
    fs::remove_dir_all(b.join("out")).unwrap();
    let out = ok(teu(&home).args(["cache", "gc", "--max-size", "0", "--json"]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(blob(&la).is_file(), "{v}");
    assert!(!blob(&lb).exists(), "{v}");
    assert_eq!(v["removed_layer_records"], 1, "{v}");

    // A removed layer is simply rebuilt, to the same digest.
    let again = build(&home, &b, &[]);
    assert!(!again.cached);
    assert_eq!(again.digest, reference(&b));
}

#[test]
fn gc_spares_recent_blobs_and_dry_run_removes_nothing() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("home");
    let src = t.path().join("src");
    app(&src);
    build(&home, &src, &[]);
    fs::remove_dir_all(src.join("out")).unwrap();
    let count = || fs::read_dir(home.join("blobs/sha256")).unwrap().count();
    let n = count();
    ok(teu(&home).args(["cache", "gc", "--max-size", "0"]));
    assert_eq!(count(), n, "blobs written in the last minutes are kept");
    age_everything(&home.join("blobs/sha256"), Duration::from_secs(3600));
    ok(teu(&home).args(["cache", "gc", "--max-size", "0", "--dry-run"]));
    assert_eq!(count(), n, "--dry-run removes nothing");
    ok(teu(&home).args(["cache", "gc", "--max-size", "0"]));
    assert_eq!(count(), 0);
    let (code, err) = fails(teu(&home).args(["cache", "gc"]));
    assert_eq!(code, 2, "{err}");
}

/// A layer of many segments (several MiB of poorly compressible data) for each
/// algorithm: real tools read it as one stream, and the image round-trips through
/// skopeo and umoci.
#[test]
fn real_tools_read_every_segmented_layer() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    // ~6 MiB over 300 files plus one 20 MiB file: several gzip members and zstd frames.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut noise = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                if i % 3 == 0 {
                    b'a' + (x % 26) as u8
                } else {
                    (x >> 24) as u8
                }
            })
            .collect()
    };
    for i in 0..300 {
        write(&src.join(format!("app/d{}/f{i}", i % 9)), &noise(20_000));
    }
    write(&src.join("app/big.bin"), &noise(20 << 20));
    write(
        &src.join("teu.toml"),
        b"[[layer]]\nname = \"app\"\ncopy = [{ src = \"app\", dest = \"/app/\" }]\n",
    );
    for (algo, test_cmd) in [("gzip", "gzip"), ("zstd", "zstd")] {
        let home = t.path().join(format!("home-{algo}"));
        let out = ok(teu(&home).current_dir(&src).args([
            "build",
            "--json",
            "--compression",
            algo,
            "-o",
            &format!("oci:{algo}-out:v1"),
        ]));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let layer = v["layers"][0]["digest"].as_str().unwrap();
        let blob = src
            .join(format!("{algo}-out/blobs/sha256"))
            .join(layer.trim_start_matches("sha256:"));
        let status = Command::new(tool(test_cmd))
            .arg("-t")
            .arg(&blob)
            .status()
            .unwrap();
        assert!(status.success(), "{test_cmd} -t {}", blob.display());
        // The whole stream (every member or frame) decompresses to the tar.
        let dec = Command::new(tool(test_cmd))
            .args(["-dc"])
            .arg(&blob)
            .output()
            .unwrap();
        assert_eq!(
            dec.stdout.len() as u64,
            v["layers"][0]["uncompressed_size"].as_u64().unwrap()
        );
        let copy = t.path().join(format!("{algo}-copy"));
        ok(Command::new(tool("skopeo")).args([
            "copy",
            "--quiet",
            &format!("oci:{}:v1", src.join(format!("{algo}-out")).display()),
            &format!("oci:{}:v1", copy.display()),
        ]));
        let bundle = t.path().join(format!("{algo}-bundle"));
        let rootfs = if algo == "gzip" {
            ok(Command::new(tool("umoci")).args([
                "unpack",
                "--rootless",
                "--image",
                &format!("{}:v1", copy.display()),
                bundle.to_str().unwrap(),
            ]));
            bundle.join("rootfs")
        } else {
            // Debian's umoci does not read zstd layers; GNU tar does, from the copy.
            let copied = copy
                .join("blobs/sha256")
                .join(layer.trim_start_matches("sha256:"));
            fs::create_dir_all(&bundle).unwrap();
            ok(Command::new(tool("tar"))
                .args(["--zstd", "-xf"])
                .arg(&copied)
                .arg("-C")
                .arg(&bundle));
            bundle
        };
        assert_eq!(
            describe_tree(&rootfs.join("app")),
            describe_tree(&src.join("app")),
            "{algo}"
        );
    }
}

/// Segment boundaries depend only on entries: after a one-file change, or a file added
/// elsewhere in the tree, the layer is still exactly the --no-cache layer. (That only the
/// segment(s) around the change are compressed again, the rest copied from the earlier
/// blob, is counted in `teu-layer`'s `tests/resume.rs`.)
#[test]
fn a_small_change_recompresses_only_its_segments() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("home");
    let src = t.path().join("src");
    // ~9 MiB of text-like files in 12 directories: many 0.5-2 MiB gzip segments.
    for i in 0..450 {
        let body: String = (0..1000)
            .map(|j| format!("{i} {j} {}\n", (i * 7919 + j * 104_729) % 1_000_003))
            .collect();
        write(
            &src.join(format!("app/d{:02}/f{i:04}.txt", i % 12)),
            body.as_bytes(),
        );
    }
    write(
        &src.join("teu.toml"),
        b"[[layer]]\nname = \"app\"\ncopy = [{ src = \"app\", dest = \"/app/\" }]\n",
    );
    build(&home, &src, &[]);
    type Change = (&'static str, fn(&Path));
    let changes: [Change; 2] = [
        ("one file changed", |s| {
            fs::write(s.join("app/d05/f0245.txt"), b"changed\n").unwrap()
        }),
        ("a file added elsewhere", |s| {
            write(&s.join("app/d09/f0009-new.txt"), b"new file\n")
        }),
    ];
    for (what, change) in changes {
        change(&src);
        let got = build(&home, &src, &[]);
        assert!(!got.cached);
        assert_eq!(got.digest, reference(&src), "{what}");
    }
}

/// Several layers (built side by side) and any thread count give the same digest, with
/// and without the cache.
#[test]
fn layers_and_threads_do_not_change_the_digest() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    for i in 0..200 {
        let body = format!("{i}\n").repeat(i * 97 % 4000 + 1);
        write(&src.join(format!("a/f{i}")), body.as_bytes());
        write(&src.join(format!("b/g{i}")), body.repeat(3).as_bytes());
    }
    write(&src.join("c/one"), b"one\n");
    write(
        &src.join("teu.toml"),
        b"[image]\ncompression = \"zstd\"\n\n[[layer]]\nname = \"a\"\ncopy = [{ src = \"a\", dest = \"/a/\" }]\n\n\
[[layer]]\nname = \"b\"\ncompression = \"gzip\"\ncopy = [{ src = \"b\", dest = \"/b/\" }]\n\n\
[[layer]]\nname = \"c\"\ncopy = [{ src = \"c\", dest = \"/c/\" }]\n",
    );
    let want = reference(&src);
    let home = t.path().join("home");
    for jobs in ["1", "2", "16"] {
        let cold = build(
            &t.path().join(format!("home-{jobs}")),
            &src,
            &["--jobs", jobs],
        );
        assert_eq!(cold.digest, want, "--jobs {jobs}, empty store");
        let shared = build(&home, &src, &["--jobs", jobs]);
        assert_eq!(shared.digest, want, "--jobs {jobs}, shared store");
    }
}
