//! `teu diff` golden outputs and `teu build --verify`.
//!
//! Golden files live in tests/it/golden/. To accept a deliberate change of output, run the
//! tests with TEU_UPDATE_GOLDEN=1 and review the diff of the golden files.

use crate::common::*;
use std::fs;
use std::path::Path;

const BASE_SPEC: &str = r#"[image]
platform = "linux/amd64"  # pinned, so the golden digests hold on any host

[config]
entrypoint = ["/app/run"]
env = { MODE = "prod" }

[[layer]]
name = "app"
copy = [
  { src = "src/run", dest = "/app/run", mode = "0755" },
  { src = "src/data/", dest = "/app/data/" },
]
"#;

fn setup(dir: &Path) {
    write(&dir.join("src/run"), b"#!/bin/sh\necho run\n");
    write(&dir.join("src/data/a.txt"), b"alpha\n");
    write(&dir.join("src/data/b.txt"), b"beta\n");
}

fn build(dir: &Path, spec: &str, tag: &str) {
    write(&dir.join("teu.toml"), spec.as_bytes());
    ok(teu(&dir.join("home")).current_dir(dir).args([
        "build",
        "-q",
        "-o",
        &format!("oci:images:{tag}"),
    ]));
}

fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/it/golden")
        .join(name);
    if std::env::var_os("TEU_UPDATE_GOLDEN").is_some() {
        fs::write(&path, actual).unwrap();
        return;
    }
    let expected = fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "golden file {} is missing; run with TEU_UPDATE_GOLDEN=1 to create it",
            path.display()
        )
    });
    assert_eq!(actual, expected, "output differs from {}", path.display());
}

/// Run `teu diff images:base images:<tag>`; check the exit code and the golden output.
fn diff_case(dir: &Path, tag: &str, want_code: i32) {
    let out = teu(&dir.join("home"))
        .current_dir(dir)
        .args(["diff", "oci:images:base", &format!("oci:images:{tag}")])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(want_code),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    golden(
        &format!("diff-{tag}.txt"),
        &String::from_utf8(out.stdout).unwrap(),
    );
}

#[test]
fn diff_golden_outputs() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    setup(d);
    build(d, BASE_SPEC, "base");
    build(d, BASE_SPEC, "identical");
    diff_case(d, "identical", 0);

    write(&d.join("src/data/b.txt"), b"beta, edited\n");
    build(d, BASE_SPEC, "changed-file");
    diff_case(d, "changed-file", 1);
    write(&d.join("src/data/b.txt"), b"beta\n");

    build(
        d,
        &BASE_SPEC.replace("mode = \"0755\"", "mode = \"0750\""),
        "changed-mode",
    );
    diff_case(d, "changed-mode", 1);

    build(
        d,
        &BASE_SPEC.replace("MODE = \"prod\"", "MODE = \"debug\", TRACE = \"1\""),
        "changed-env",
    );
    diff_case(d, "changed-env", 1);

    let extra = format!("{BASE_SPEC}\n[[layer]]\nname = \"extra\"\ndirs = [{{ path = \"/var/log/app\", mode = \"0700\" }}]\n");
    build(d, &extra, "extra-layer");
    diff_case(d, "extra-layer", 1);

    // --json carries the same facts for machines.
    let out = teu(&d.join("home"))
        .current_dir(d)
        .args([
            "diff",
            "oci:images:base",
            "oci:images:changed-file",
            "--json",
        ])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["identical"], false);
    let entries = &v["images"][0]["layers"][0]["entries"];
    assert_eq!(entries[0]["change"], "changed");
    assert_eq!(entries[0]["path"], "/app/data/b.txt");
}

#[test]
fn diff_errors_exit_2() {
    let t = tempfile::tempdir().unwrap();
    let out = teu(&t.path().join("home"))
        .current_dir(t.path())
        .args(["diff", "oci:missing", "oci:missing2"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing"));
}

#[test]
fn verify_passes_on_the_example() {
    let t = tempfile::tempdir().unwrap();
    let out = ok(teu(&t.path().join("home")).current_dir(t.path()).args([
        "build",
        example_dir().to_str().unwrap(),
        "--verify",
    ]));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("verified: a second build from scratch gave the same digest"),
        "{stderr}"
    );
    // The scratch store is gone afterwards.
    assert_eq!(count_entries(&t.path().join("home/tmp")), 0);
}

/// The leak hook exists only in debug builds (the ones `cargo test` makes by default).
#[cfg(debug_assertions)]
#[test]
fn verify_fails_naming_the_entry_when_an_mtime_leaks() {
    let t = tempfile::tempdir().unwrap();
    let (code, stderr) = fails(
        teu(&t.path().join("home"))
            .current_dir(t.path())
            .env("TEU_TEST_LEAK_MTIME", "/app/static/index.html")
            .args([
                "build",
                example_dir().to_str().unwrap(),
                "--verify",
                "-o",
                "oci:out",
            ]),
    );
    assert_eq!(code, 1);
    assert!(
        stderr.contains("~ /app/static/index.html: mtime 1 -> 2"),
        "{stderr}"
    );
    assert!(stderr.contains("the build is not reproducible"), "{stderr}");
    assert_eq!(
        stderr.matches("    ~ ").count(),
        1,
        "only the leaking entry differs: {stderr}"
    );
    assert!(
        !t.path().join("out").exists(),
        "nothing is written when verification fails"
    );
}

/// teu reads its own archives and skopeo's docker archives (layers stored uncompressed
/// under Docker's legacy names) without unpacking them.
#[test]
fn diff_reads_every_archive_kind() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    ok(teu(&d.join("home")).current_dir(d).args([
        "build",
        example_dir().to_str().unwrap(),
        "-q",
        "-o",
        "oci:lay:v1",
        "-o",
        "oci-archive:img.oci.tar:v1",
        "-o",
        "docker-archive:img.docker.tar:hello:v1",
    ]));
    for other in [
        "oci-archive:img.oci.tar:v1",
        "docker-archive:img.docker.tar",
    ] {
        let out = teu(&d.join("home"))
            .current_dir(d)
            .args(["diff", "oci:lay:v1", other])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{other}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    ok(std::process::Command::new(tool("skopeo"))
        .current_dir(d)
        .args([
            "copy",
            "--quiet",
            "oci:lay:v1",
            "docker-archive:skopeo.tar:hello:v1",
        ]));
    let out = teu(&d.join("home"))
        .current_dir(d)
        .args(["diff", "oci:lay:v1", "docker-archive:skopeo.tar"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Same files, different layer bytes (skopeo stores the layer uncompressed).
    assert!(text.contains("same entries, different bytes"), "{text}");
    assert!(
        !text.contains("    ~ /") && !text.contains("    + /") && !text.contains("    - /"),
        "{text}"
    );
}
