//! Bad input gets a clear error naming the file, line and key, exits 1 (2 for usage), and
//! leaves nothing partial in the store or the output.

use crate::common::*;
use std::fs;
use std::path::Path;

pub(crate) struct Case {
    pub spec: &'static str,
    /// Fragments the error message must contain.
    pub expect: &'static [&'static str],
}

/// Build `case.spec` in a fresh directory with a few source files; assert it fails with
/// exit code 1, the expected message, an untouched store and no output.
pub(crate) fn check(name: &str, case: Case, setup: impl FnOnce(&Path)) {
    let t = tempfile::tempdir().unwrap();
    write(&t.path().join("hello.txt"), b"hello");
    write(&t.path().join("other.txt"), b"other");
    write(&t.path().join("dir/inner.txt"), b"inner");
    setup(t.path());
    write(&t.path().join("teu.toml"), case.spec.as_bytes());
    let home = t.path().join("home");
    let (code, stderr) = fails(teu(&home).current_dir(t.path()).args([
        "build",
        "-o",
        "oci:out",
        "-o",
        "oci-archive:out.tar",
    ]));
    assert_eq!(code, 1, "{name}: exit code; stderr: {stderr}");
    for e in case.expect {
        assert!(stderr.contains(e), "{name}: expected {e:?} in:\n{stderr}");
    }
    assert!(stderr.starts_with("teu: error: "), "{name}: {stderr}");
    assert_eq!(
        count_entries(&home.join("blobs/sha256")),
        0,
        "{name}: a blob was left in the store"
    );
    assert_eq!(
        count_entries(&home.join("tmp")),
        0,
        "{name}: a temporary file was left in the store"
    );
    assert!(
        !t.path().join("out").exists() && !t.path().join("out.tar").exists(),
        "{name}: output was written"
    );
    let leftovers: Vec<_> = fs::read_dir(t.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "{name}: temporary outputs left: {leftovers:?}"
    );
}

#[test]
fn missing_source() {
    check(
        "missing source",
        Case {
            spec: "[[layer]]\ncopy = [\n  { src = \"hello.txt\", dest = \"/a\" },\n  { src = \"nope/missing.bin\", dest = \"/b\" },\n]\n",
            expect: &["teu.toml:4:11: layer[0].copy[1].src (\"nope/missing.bin\")", "missing.bin cannot be read", "No such file"],
        },
        |_| {},
    );
}

#[test]
fn unreadable_source() {
    check(
        "unreadable source",
        Case {
            spec: "[[layer]]\ncopy = [{ src = \"dangling\", dest = \"/a\", follow_symlinks = true }]\n",
            expect: &["teu.toml:2:17: layer[0].copy[0].src", "dangling", "No such file"],
        },
        |d| std::os::unix::fs::symlink("does-not-exist", d.join("dangling")).unwrap(),
    );
    check(
        "source below a file",
        Case {
            spec: "[[layer]]\ncopy = [{ src = \"hello.txt/inner\", dest = \"/a\" }]\n",
            expect: &[
                "teu.toml:2:17: layer[0].copy[0].src",
                "hello.txt/inner cannot be read",
                "Not a directory",
            ],
        },
        |_| {},
    );
}

#[test]
fn destination_escaping_the_root() {
    check(
        "escaping dest",
        Case {
            spec: "[[layer]]\ncopy = [{ src = \"hello.txt\", dest = \"/app/../../etc/passwd\" }]\n",
            expect: &[
                "teu.toml:2:37: layer[0].copy[0].dest",
                "escapes the image root",
            ],
        },
        |_| {},
    );
    check(
        "escaping symlink path",
        Case {
            spec: "[[layer]]\nsymlinks = [{ path = \"../x\", target = \"/y\" }]\n",
            expect: &["teu.toml:2:22: layer[0].symlinks[0].path", "escapes"],
        },
        |_| {},
    );
}

#[test]
fn two_entries_claiming_one_path() {
    check(
        "conflict",
        Case {
            spec: "[[layer]]\ncopy = [\n  { src = \"hello.txt\", dest = \"/app/f\" },\n  { src = \"other.txt\", dest = \"/app/f\" },\n]\n",
            expect: &["/app/f is claimed twice", "teu.toml:3:11: layer[0].copy[0].src", "teu.toml:4:11: layer[0].copy[1].src"],
        },
        |_| {},
    );
    check(
        "file where a directory must be",
        Case {
            spec: "[[layer]]\ncopy = [\n  { src = \"hello.txt\", dest = \"/app\" },\n  { src = \"other.txt\", dest = \"/app/f\" },\n]\n",
            expect: &["/app must be a directory", "teu.toml:3:11"],
        },
        |_| {},
    );
}

#[test]
fn bad_mode() {
    check(
        "bad mode",
        Case {
            spec: "[[layer]]\ndirs = [{ path = \"/data\", mode = \"rwxr-x\" }]\n",
            expect: &[
                "teu.toml:2:34: layer[0].dirs[0].mode",
                "\"rwxr-x\" is not an octal permission",
            ],
        },
        |_| {},
    );
}

#[test]
fn bad_reference() {
    check(
        "bad base reference",
        Case {
            spec: "[image]\nbase = \"oci-archive:\"\n",
            expect: &["teu.toml:2:8: image.base", "oci-archive:"],
        },
        |_| {},
    );
    check(
        "bad registry reference",
        Case {
            spec: "[image]\nbase = \"Registry.Example/UPPER:tag\"\n",
            expect: &["teu.toml:2:8: image.base", "lowercase"],
        },
        |_| {},
    );
}

#[test]
fn malformed_base_layouts() {
    let spec = "[image]\nbase = \"oci:base\"\n[[layer]]\ncopy = [{ src = \"hello.txt\", dest = \"/a\" }]\n";
    check(
        "not a layout",
        Case {
            spec,
            expect: &[
                "teu.toml:2:8: image.base",
                "is not an OCI image layout",
                "oci-layout",
            ],
        },
        |d| fs::create_dir_all(d.join("base")).unwrap(),
    );
    check(
        "index.json is not JSON",
        Case {
            spec,
            expect: &[
                "teu.toml:2:8: image.base",
                "base/index.json",
                "key must be a string at line 1 column 3",
            ],
        },
        |d| {
            write(
                &d.join("base/oci-layout"),
                br#"{"imageLayoutVersion":"1.0.0"}"#,
            );
            write(&d.join("base/index.json"), b"{ not json");
        },
    );
    check(
        "manifest blob missing",
        Case {
            spec,
            expect: &[
                "teu.toml:2:8: image.base",
                "sha256:0000000000000000000000000000000000000000000000000000000000000000",
            ],
        },
        |d| {
            write(
                &d.join("base/oci-layout"),
                br#"{"imageLayoutVersion":"1.0.0"}"#,
            );
            write(
                &d.join("base/index.json"),
                br#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":10}]}"#,
            );
        },
    );
    check(
        "manifest blob corrupt",
        Case {
            spec,
            expect: &["teu.toml:2:8: image.base", "does not match its digest"],
        },
        |d| {
            let body = b"{\"schemaVersion\":2}";
            let digest = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"; // of "", not of body
            write(
                &d.join("base/oci-layout"),
                br#"{"imageLayoutVersion":"1.0.0"}"#,
            );
            write(&d.join("base/blobs/sha256").join(digest), body);
            write(
                &d.join("base/index.json"),
                format!(r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:{digest}","size":{}}}]}}"#, body.len()).as_bytes(),
            );
        },
    );
}

#[test]
fn unknown_key() {
    check(
        "unknown key",
        Case {
            spec: "[image]\nbase = \"scratch\"\n\n[config]\nentrypont = [\"/x\"]\n",
            expect: &["teu.toml:5:1: ", "unknown field `entrypont`", "entrypoint"],
        },
        |_| {},
    );
}

#[test]
fn usage_errors_exit_2() {
    let t = tempfile::tempdir().unwrap();
    for args in [
        vec!["build", "--copy", "no-colon-here"],
        vec!["build", "--copy", "a:/b", "--env", "NOEQUALS"],
        vec!["build", "--copy", "a:/b", "--jobs", "0"],
        vec!["build", "--copy", "a:/b", "-o", "nonsense:thing/x"],
        vec!["build", "--no-such-flag"],
        vec!["build", "--copy", "a:/b", "--tag", "v2", "-o", "oci:out"],
        vec!["build"], // no teu.toml here
    ] {
        let (code, stderr) = fails(
            teu(&t.path().join("home"))
                .current_dir(t.path())
                .args(&args),
        );
        assert_eq!(code, 2, "{args:?}: {stderr}");
    }
    assert_eq!(count_entries(&t.path().join("home/blobs/sha256")), 0);
}

#[test]
fn a_single_platform_base_cannot_serve_another_platform() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("home");
    write(&t.path().join("f"), b"f");
    ok(teu(&home).current_dir(t.path()).args([
        "build",
        "-q",
        "--copy",
        "f:/f",
        "--platform",
        "linux/amd64",
        "-o",
        "oci:base:1",
    ]));
    write(
        &t.path().join("teu.toml"),
        b"[image]\nbase = \"oci:base:1\"\nplatform = \"linux/arm64\"\n",
    );
    let (code, err) = fails(
        teu(&home)
            .current_dir(t.path())
            .args(["build", "-o", "oci:out"]),
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("teu.toml:2:8: image.base")
            && err.contains("single image for linux/amd64")
            && err.contains("linux/arm64"),
        "{err}"
    );
    // Without an explicit platform the image follows its base.
    write(
        &t.path().join("teu.toml"),
        b"[image]\nbase = \"oci:base:1\"\n",
    );
    ok(teu(&home)
        .current_dir(t.path())
        .args(["build", "-o", "oci:out"]));
}

#[test]
fn bad_outputs_and_ports_fail_before_any_work() {
    let t = tempfile::tempdir().unwrap();
    write(&t.path().join("f"), b"f");
    for args in [
        vec!["build", "--copy", "f:/f", "--expose", "http"],
        vec!["build", "--copy", "f:/f", "-o", "oci:fine", "-o", "scratch"],
    ] {
        let (code, err) = fails(
            teu(&t.path().join("home"))
                .current_dir(t.path())
                .args(&args),
        );
        assert_eq!(code, 2, "{args:?}: {err}");
    }
    assert_eq!(count_entries(&t.path().join("home/blobs/sha256")), 0);
    assert!(!t.path().join("fine").exists());
}
