//! `teu build` end to end: the bundled example, its golden digest, the stdout/stderr and
//! `--json` contract, flag-only builds, and layouts that keep other images.

use crate::common::*;
use std::fs;

/// The bundled example's digest with SOURCE_DATE_EPOCH unset. A change here means a change
/// in what teu writes for the same inputs (or in the example itself): it must be deliberate.
const EXAMPLE_DIGEST: &str =
    "sha256:59517ce1f7c0cabf364ca87f4ef37576d39d270bcf7056d9224176dbdc824468";

#[test]
fn example_builds_to_the_golden_digest() {
    let t = tempfile::tempdir().unwrap();
    let out = ok(teu(&t.path().join("home"))
        .current_dir(t.path())
        .args(["build", example_dir().to_str().unwrap()]));
    assert_eq!(digest(&out), EXAMPLE_DIGEST);
    // Default output: an OCI layout in ./teu-out tagged latest.
    let index = fs::read_to_string(t.path().join("teu-out/index.json")).unwrap();
    assert!(
        index.contains(EXAMPLE_DIGEST.trim_start_matches("sha256:")),
        "{index}"
    );
    assert!(
        index.contains("\"org.opencontainers.image.ref.name\":\"latest\""),
        "{index}"
    );
    assert_eq!(
        fs::read_to_string(t.path().join("teu-out/oci-layout")).unwrap(),
        r#"{"imageLayoutVersion":"1.0.0"}"#
    );
    // stdout holds the digest alone; the summary is on stderr.
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("{EXAMPLE_DIGEST}\n")
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("layer \"app\""), "{stderr}");
}

#[test]
fn json_report_and_digest_file() {
    let t = tempfile::tempdir().unwrap();
    let out = ok(teu(&t.path().join("home")).current_dir(t.path()).args([
        "build",
        example_dir().to_str().unwrap(),
        "--json",
        "--digest-file",
        "d.txt",
        "-o",
        "oci:a",
        "-o",
        "oci-archive:a.tar",
    ]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["digest"], EXAMPLE_DIGEST);
    let layers = v["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    for key in ["digest", "diff_id", "size", "media_type"] {
        assert!(!layers[0][key].is_null(), "layer lacks {key}: {v}");
    }
    assert_eq!(
        layers[0]["media_type"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    let written: u64 = v["bytes_written"].as_u64().unwrap();
    let archive_len = fs::metadata(t.path().join("a.tar")).unwrap().len();
    assert!(
        written >= archive_len,
        "bytes_written {written} < archive {archive_len}"
    );
    assert_eq!(
        fs::read_to_string(t.path().join("d.txt")).unwrap().trim(),
        EXAMPLE_DIGEST
    );
}

#[test]
fn source_date_epoch_sets_timestamps() {
    let t = tempfile::tempdir().unwrap();
    let build = |sde: &str, out: &str| {
        digest(&ok(teu(&t.path().join("home"))
            .current_dir(t.path())
            .env("SOURCE_DATE_EPOCH", sde)
            .args(["build", example_dir().to_str().unwrap(), "-o", out])))
    };
    let a = build("1700000000", "oci:x");
    let b = build("1700000000", "oci:y");
    assert_eq!(a, b);
    assert_ne!(a, EXAMPLE_DIGEST);
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(t.path().join("x/index.json")).unwrap()).unwrap();
    let m = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(t.path().join("x/blobs/sha256").join(m)).unwrap())
            .unwrap();
    let c = manifest["config"]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let config: serde_json::Value =
        serde_json::from_slice(&fs::read(t.path().join("x/blobs/sha256").join(c)).unwrap())
            .unwrap();
    assert_eq!(config["created"], "2023-11-14T22:13:20Z");
}

#[test]
fn flags_build_without_a_spec() {
    let t = tempfile::tempdir().unwrap();
    write(&t.path().join("src/app.txt"), b"hello");
    let out = ok(teu(&t.path().join("home")).current_dir(t.path()).args([
        "build",
        "--copy",
        "src/app.txt:/srv/app.txt",
        "--entrypoint",
        r#"["/bin/cat","/srv/app.txt"]"#,
        "--env",
        "A=1",
        "--label",
        "team=core",
        "--expose",
        "80",
        "--platform",
        "linux/arm64",
        "--compression",
        "zstd",
        "-o",
        "oci:out:v1",
        "--json",
    ]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["platforms"][0]["platform"], "linux/arm64");
    assert_eq!(
        v["layers"][0]["media_type"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    let index = fs::read_to_string(t.path().join("out/index.json")).unwrap();
    assert!(index.contains("\"v1\""), "{index}");
}

#[test]
fn a_layout_keeps_its_other_images() {
    let t = tempfile::tempdir().unwrap();
    write(&t.path().join("a.txt"), b"a");
    let home = t.path().join("home");
    let a = digest(&ok(teu(&home).current_dir(t.path()).args([
        "build",
        "--copy",
        "a.txt:/a",
        "-o",
        "oci:lay:one",
    ])));
    let b = digest(&ok(teu(&home).current_dir(t.path()).args([
        "build",
        "--copy",
        "a.txt:/b",
        "-o",
        "oci:lay:two",
    ])));
    assert_ne!(a, b);
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(t.path().join("lay/index.json")).unwrap()).unwrap();
    let tags: Vec<(String, String)> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["annotations"]["org.opencontainers.image.ref.name"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                m["digest"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        tags,
        [("one".to_string(), a.clone()), ("two".to_string(), b)]
    );
    // Re-tagging replaces only that tag.
    let a2 = digest(&ok(teu(&home).current_dir(t.path()).args([
        "build",
        "--copy",
        "a.txt:/a",
        "-o",
        "oci:lay:two",
    ])));
    assert_eq!(a2, a);
    let index = fs::read_to_string(t.path().join("lay/index.json")).unwrap();
    assert_eq!(index.matches("ref.name").count(), 2, "{index}");
}

#[test]
fn help_shows_examples_and_version_works() {
    let t = tempfile::tempdir().unwrap();
    let help = ok(teu(t.path()).args(["build", "--help"]));
    let help = String::from_utf8(help.stdout).unwrap();
    assert!(
        help.contains("Examples:") && help.contains("--copy"),
        "{help}"
    );
    let v = ok(teu(t.path()).arg("--version"));
    assert!(String::from_utf8(v.stdout).unwrap().starts_with("teu "));
}
