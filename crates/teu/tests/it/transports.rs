//! Every command reads and writes references the same way: an index pushed, copied and
//! pulled keeps both platforms (checked with skopeo and teu diff), `--platform` picks
//! one, `inspect` shows the same thing for a layout, an archive and a registry copy,
//! archives are build bases, and the small things a new user met (a closed stdout, path-
//! like outputs, full digests in `diff --json`).

use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::registry::{Auth, Registry};
use crate::common::*;

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap()
}

fn skopeo_raw(dir: &Path, reference: &str) -> serde_json::Value {
    json(
        &ok(Command::new(tool("skopeo")).current_dir(dir).args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            reference,
        ]))
        .stdout,
    )
}

fn platforms_of(index: &serde_json::Value) -> Vec<String> {
    let mut v: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m["platform"]["os"].as_str().unwrap(),
                m["platform"]["architecture"].as_str().unwrap()
            )
        })
        .collect();
    v.sort();
    v
}

/// A two-platform index in `oci:multi:v1`, each platform with its own file.
fn two_platform_layout(dir: &Path, home: &Path) -> String {
    write(&dir.join("src/{arch}.txt"), b"unused");
    for arch in ["amd64", "arm64"] {
        write(&dir.join(format!("src/{arch}/arch")), arch.as_bytes());
    }
    write(
        &dir.join("multi.toml"),
        br#"[image]
platforms = ["linux/amd64", "linux/arm64"]

[[layer]]
name = "arch"
copy = [{ src = "src/{arch}/", dest = "/etc/" }]
"#,
    );
    digest(&ok(teu(home).current_dir(dir).args([
        "build",
        "multi.toml",
        "-o",
        "oci:multi:v1",
    ])))
}

#[test]
fn push_copy_and_pull_keep_every_platform_and_platform_picks_one() {
    let reg = Registry::start(Auth::None);
    let t = tempfile::tempdir().unwrap();
    let (d, home) = (t.path(), t.path().join("home"));
    let index = two_platform_layout(d, &home);
    let pushed = format!("{}/multi:v1", reg.addr);
    // push: the whole index, by default.
    let out = ok(teu(&home)
        .current_dir(d)
        .args(["push", "oci:multi:v1", &pushed]));
    assert_eq!(digest(&out), index);
    let raw = skopeo_raw(d, &format!("docker://{pushed}"));
    assert_eq!(platforms_of(&raw), ["linux/amd64", "linux/arm64"]);
    // copy between registries, and pull back to a layout and to an archive.
    let copied = format!("{}/copy:v1", reg.addr);
    assert_eq!(
        digest(&ok(teu(&home)
            .current_dir(d)
            .args(["copy", &pushed, &copied]))),
        index
    );
    assert_eq!(
        platforms_of(&skopeo_raw(d, &format!("docker://{copied}"))),
        ["linux/amd64", "linux/arm64"]
    );
    for dst in ["oci:pulled:v1", "oci-archive:pulled.tar:v1"] {
        assert_eq!(
            digest(&ok(teu(&home).current_dir(d).args(["pull", &copied, dst]))),
            index,
            "{dst}"
        );
        assert_eq!(
            platforms_of(&skopeo_raw(d, dst)),
            ["linux/amd64", "linux/arm64"],
            "{dst}"
        );
        // teu diff agrees: nothing differs from the built layout.
        let out = ok(teu(&home)
            .current_dir(d)
            .args(["diff", "oci:multi:v1", dst]));
        assert!(
            String::from_utf8_lossy(&out.stdout).starts_with("identical"),
            "{dst}"
        );
    }
    // --platform picks one image, and says so.
    let one = format!("{}/one:v1", reg.addr);
    let out = ok(teu(&home).current_dir(d).args([
        "copy",
        "oci:multi:v1",
        &one,
        "--platform",
        "linux/arm64",
    ]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("the image for linux/arm64"), "{stderr}");
    let raw = skopeo_raw(d, &format!("docker://{one}"));
    assert_eq!(
        raw["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    let arm =
        ok(teu(&home)
            .current_dir(d)
            .args(["digest", "oci:multi:v1", "--platform", "linux/arm64"]));
    assert_eq!(digest(&out), digest(&arm));
    // teu diff of the index and the one image names the platform that went missing.
    let out = teu(&home)
        .current_dir(d)
        .args(["diff", "oci:multi:v1", &one])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("platform linux/amd64 (only in A)"), "{text}");
}

#[test]
fn dry_run_plans_every_destination() {
    let reg = Registry::start(Auth::None);
    let t = tempfile::tempdir().unwrap();
    let (d, home) = (t.path(), t.path().join("home"));
    two_platform_layout(d, &home);
    for dst in [
        "oci:dry:v1".to_string(),
        "oci-archive:dry.tar".to_string(),
        "docker-archive:dry-docker.tar:app:1".to_string(),
        format!("{}/dry:v1", reg.addr),
    ] {
        let out = ok(teu(&home).current_dir(d).args([
            "copy",
            "oci:multi:v1",
            &dst,
            "--dry-run",
            "--json",
        ]));
        let v = json(&out.stdout);
        assert_eq!(v["dry_run"], true, "{dst}");
        let blobs = v["blobs"].as_array().unwrap();
        // Two configs and two layers (one per platform), each with a planned action.
        assert_eq!(blobs.len(), 4, "{dst}: {v:#}");
        assert!(blobs.iter().all(|b| b["action"].is_string()), "{dst}");
        assert_eq!(v["bytes_written"], 0, "{dst}");
        // Nothing was written.
        if let Some(local) = dst.split(':').nth(1) {
            if !dst.contains("127.0.0.1") {
                assert!(!d.join(local).exists(), "{dst}");
            }
        }
    }
    // The registry was not written either.
    let (code, _) = fails(teu(&home).args(["digest", &format!("{}/dry:v1", reg.addr)]));
    assert_eq!(code, 1);
}

/// `teu inspect` without the reference line it starts with.
fn inspect_body(home: &Path, dir: &Path, reference: &str, extra: &[&str]) -> String {
    let out = ok(teu(home)
        .current_dir(dir)
        .arg("inspect")
        .arg(reference)
        .args(extra));
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines().skip(1).collect::<Vec<_>>().join("\n")
}

#[test]
fn inspect_shows_the_same_index_and_image_wherever_it_lives() {
    let reg = Registry::start(Auth::None);
    let t = tempfile::tempdir().unwrap();
    let (d, home) = (t.path(), t.path().join("home"));
    let index = two_platform_layout(d, &home);
    let pushed = format!("{}/multi:v1", reg.addr);
    ok(teu(&home)
        .current_dir(d)
        .args(["push", "oci:multi:v1", &pushed]));
    ok(teu(&home)
        .current_dir(d)
        .args(["copy", "oci:multi:v1", "oci-archive:multi.tar:v1"]));
    let refs = ["oci:multi:v1", "oci-archive:multi.tar:v1", pushed.as_str()];
    for extra in [&[][..], &["--platform", "linux/arm64"][..]] {
        let bodies: Vec<String> = refs
            .iter()
            .map(|r| inspect_body(&home, d, r, extra))
            .collect();
        assert_eq!(bodies[0], bodies[1], "{extra:?}");
        assert_eq!(bodies[0], bodies[2], "{extra:?}");
        if extra.is_empty() {
            // The index by default: its digest and both platforms.
            assert!(bodies[0].contains(&index), "{}", bodies[0]);
            assert!(bodies[0].contains("linux/amd64") && bodies[0].contains("linux/arm64"));
        } else {
            assert!(
                bodies[0].contains("platform:   linux/arm64"),
                "{}",
                bodies[0]
            );
            assert!(bodies[0].contains("created:"), "{}", bodies[0]);
        }
    }
    // --raw and --json agree on the digest with teu digest, for every transport.
    for r in refs {
        let raw = ok(teu(&home).current_dir(d).args(["inspect", r, "--raw"])).stdout;
        let raw = &raw[..raw.len() - 1];
        assert_eq!(teu_oci::Digest::of(raw).to_string(), index, "{r}");
        let v = json(&ok(teu(&home).current_dir(d).args(["inspect", r, "--json"])).stdout);
        assert_eq!(v["digest"], index.as_str(), "{r}");
        assert_eq!(
            digest(&ok(teu(&home).current_dir(d).args(["digest", r]))),
            index
        );
    }
}

#[test]
fn inspect_shows_the_config_users_look_for() {
    let t = tempfile::tempdir().unwrap();
    let (d, home) = (t.path(), t.path().join("home"));
    write(&d.join("app"), b"#!/bin/sh\n");
    ok(teu(&home).current_dir(d).args([
        "build",
        "--copy",
        "app:/app",
        "--entrypoint",
        "/app",
        "--cmd",
        "[\"--port\",\"80\"]",
        "--env",
        "MODE=prod",
        "--user",
        "1000",
        "--workdir",
        "/srv",
        "--label",
        "team=core",
        "--expose",
        "80",
        "-o",
        "oci:cfg",
    ]));
    let body = inspect_body(&home, d, "oci:cfg", &[]);
    for want in [
        "entrypoint: [\"/app\"]",
        "cmd:        [\"--port\",\"80\"]",
        "env:        MODE=prod",
        "user:       1000",
        "workdir:    /srv",
        "ports:      80/tcp",
        "label:      team=core",
    ] {
        assert!(body.contains(want), "{want:?} in\n{body}");
    }
}

#[test]
fn archives_are_build_bases_with_the_digest_of_their_layout() {
    let t = tempfile::tempdir().unwrap();
    let (d, home) = (t.path(), t.path().join("home"));
    write(&d.join("base.txt"), b"base");
    ok(teu(&home).current_dir(d).args([
        "build",
        "--copy",
        "base.txt:/base.txt",
        "-o",
        "oci:base:1",
    ]));
    ok(teu(&home)
        .current_dir(d)
        .args(["copy", "oci:base:1", "oci-archive:base.tar:1"]));
    ok(teu(&home).current_dir(d).args([
        "copy",
        "oci:base:1",
        "docker-archive:base-docker.tar:base:1",
    ]));
    write(&d.join("app.txt"), b"app");
    let built: Vec<String> = [
        "oci:base:1",
        "oci-archive:base.tar:1",
        "docker-archive:base-docker.tar:base:1",
        "docker-archive:base-docker.tar",
    ]
    .iter()
    .map(|base| {
        digest(&ok(teu(&home).current_dir(d).args([
            "build",
            "--base",
            base,
            "--copy",
            "app.txt:/app.txt",
            "-o",
            "oci:app",
        ])))
    })
    .collect();
    assert!(built.iter().all(|b| *b == built[0]), "{built:?}");
}

#[test]
fn a_closed_stdout_ends_teu_quietly() {
    let t = tempfile::tempdir().unwrap();
    let (d, home) = (t.path(), t.path().join("home"));
    // Enough tags that the output outgrows a pipe buffer nobody reads.
    write(&d.join("f"), b"f");
    ok(teu(&home)
        .current_dir(d)
        .args(["build", "--copy", "f:/f", "-o", "oci:many:seed"]));
    for i in 0..40 {
        let tag = format!("oci:many:tag-{i:04}-{}", "x".repeat(100));
        ok(teu(&home)
            .current_dir(d)
            .args(["copy", "oci:many:seed", &tag]));
    }
    let mut child = teu(&home)
        .current_dir(d)
        .args(["tags", "oci:many"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // `| head -0`
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.is_empty(), "stderr: {stderr}");
    // Ended by SIGPIPE as cat would be, not by a panic (exit 101).
    assert_ne!(out.status.code(), Some(101), "{:?}", out.status);
}

#[test]
fn a_local_path_given_as_an_output_gets_the_oci_hint() {
    let t = tempfile::tempdir().unwrap();
    let (d, home) = (t.path(), t.path().join("home"));
    write(&d.join("f"), b"f");
    std::fs::create_dir(d.join("out")).unwrap();
    for output in ["out", "out:v1", "/tmp/x", "./x"] {
        let (code, err) = fails(
            teu(&home)
                .current_dir(d)
                .args(["build", "--copy", "f:/f", "-o", output]),
        );
        assert_eq!(code, 2, "{output}: {err}");
        assert!(err.contains("oci:"), "{output}: {err}");
        assert!(!err.contains("lowercase"), "{output}: {err}");
    }
    let (code, err) = fails(
        teu(&home)
            .current_dir(d)
            .args(["copy", "oci:nothing", "out"]),
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("oci:out"), "{err}");
}

#[test]
fn diff_json_prints_full_digests_everywhere() {
    let t = tempfile::tempdir().unwrap();
    let (d, home) = (t.path(), t.path().join("home"));
    write(&d.join("f"), b"one");
    ok(teu(&home)
        .current_dir(d)
        .args(["build", "--copy", "f:/f", "-o", "oci:a"]));
    write(&d.join("f"), b"two");
    ok(teu(&home)
        .current_dir(d)
        .args(["build", "--copy", "f:/f", "-o", "oci:b"]));
    let out = teu(&home)
        .current_dir(d)
        .args(["diff", "oci:a", "oci:b", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    let v = json(text.as_bytes());
    let content = &v["images"][0]["layers"][0]["entries"][0]["fields"];
    assert!(content.to_string().contains("content"), "{v:#}");
    // Every sha256 digest in the report is whole: 64 hex digits after the prefix.
    let mut rest = text.as_str();
    let mut seen = 0;
    while let Some(i) = rest.find("sha256:") {
        let hex: String = rest[i + 7..]
            .chars()
            .take_while(|c| c.is_ascii_hexdigit())
            .collect();
        assert_eq!(hex.len(), 64, "a short digest in {text}");
        seen += 1;
        rest = &rest[i + 7..];
    }
    assert!(seen >= 6, "{text}");
}
