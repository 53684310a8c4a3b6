//! Multi-platform images and locks against the real distribution registry: a two-platform
//! image on a two-platform registry base, `--format docker` pushed and read back by
//! skopeo, and `teu lock` on a registry base.

use std::process::Command;

use crate::common::registry::{blob_gets, Auth, Proxy, Registry};
use crate::common::{digest, fails, ok, teu, tool, write};

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap()
}

fn skopeo(dir: &std::path::Path) -> Command {
    let mut c = Command::new(tool("skopeo"));
    c.current_dir(dir);
    c
}

/// A two-platform base with a file naming its architecture, pushed to `target`.
fn push_two_platform_base(
    dir: &std::path::Path,
    home: &std::path::Path,
    target: &str,
    version: &str,
) -> String {
    for arch in ["amd64", "arm64"] {
        write(
            &dir.join(format!("base/{arch}/etc/arch")),
            format!("{arch} {version}").as_bytes(),
        );
    }
    write(
        &dir.join("base/teu.toml"),
        br#"[image]
platforms = ["linux/amd64", "linux/arm64"]
[[layer]]
copy = [{ src = "{arch}/", dest = "/" }]
"#,
    );
    digest(&ok(teu(home)
        .current_dir(dir)
        .args(["build", "base", "-q", "-o", target])))
}

#[test]
fn two_platform_image_on_a_two_platform_registry_base() {
    let reg = Registry::start(Auth::None);
    let proxy = Proxy::start(&reg.addr);
    let t = tempfile::tempdir().unwrap();
    let (d, home) = (t.path(), t.path().join("home"));
    push_two_platform_base(d, &home, &format!("{}/base:1", reg.addr), "v1");

    write(&d.join("app/bin/amd64/app"), b"x86 app");
    write(&d.join("app/bin/arm64/app"), b"arm app");
    write(
        &d.join("app/teu.toml"),
        format!(
            "[image]\nbase = \"{}/base:1\"\nplatforms = [\"linux/amd64\", \"linux/arm64\"]\n[[layer]]\ncopy = [{{ src = \"bin/{{arch}}/app\", dest = \"/app\", mode = \"0755\" }}]\n",
            proxy.addr
        )
        .as_bytes(),
    );
    proxy.take_log();
    let index_digest = digest(&ok(teu(&home).current_dir(d).args([
        "build",
        "app",
        "-o",
        &format!("{}/app:1", proxy.addr),
    ])));
    // Shallow: the two base configs are the only blobs read (no base layer).
    let log = proxy.take_log();
    assert_eq!(blob_gets(&log).len(), 2, "{log:#?}");

    let raw = json(
        &ok(skopeo(d).args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{}/app:1", reg.addr),
        ]))
        .stdout,
    );
    assert_eq!(raw["mediaType"], "application/vnd.oci.image.index.v1+json");
    let arches: Vec<&str> = raw["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(arches, ["amd64", "arm64"]);

    ok(skopeo(d).args([
        "copy",
        "--quiet",
        "--all",
        "--src-tls-verify=false",
        &format!("docker://{}/app:1", reg.addr),
        "oci:all:v1",
    ]));
    let copied: serde_json::Value = json(&std::fs::read(d.join("all/index.json")).unwrap());
    assert_eq!(copied["manifests"][0]["digest"], index_digest.as_str());
    for arch in ["amd64", "arm64"] {
        ok(skopeo(d).args([
            "copy",
            "--quiet",
            "--override-arch",
            arch,
            "--src-tls-verify=false",
            &format!("docker://{}/app:1", reg.addr),
            &format!("oci:one-{arch}:v1"),
        ]));
        ok(Command::new(tool("umoci")).current_dir(d).args([
            "unpack",
            "--image",
            &format!("one-{arch}:v1"),
            &format!("root-{arch}"),
        ]));
        let root = d.join(format!("root-{arch}/rootfs"));
        assert_eq!(
            std::fs::read_to_string(root.join("etc/arch")).unwrap(),
            format!("{arch} v1")
        );
        let app = if arch == "amd64" {
            "x86 app"
        } else {
            "arm app"
        };
        assert_eq!(std::fs::read_to_string(root.join("app")).unwrap(), app);
    }
    // teu reads it back and finds nothing to change.
    let out = teu(&home)
        .current_dir(d)
        .args(["diff", &format!("{}/app:1", reg.addr), "oci:all:v1"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn docker_format_is_accepted_by_the_registry_and_skopeo() {
    let reg = Registry::start(Auth::None);
    let t = tempfile::tempdir().unwrap();
    let (d, home) = (t.path(), t.path().join("home"));
    write(&d.join("f.txt"), b"docker format");
    let pushed = digest(&ok(teu(&home).current_dir(d).args([
        "build",
        "--copy",
        "f.txt:/f.txt",
        "--platform",
        "linux/amd64",
        "--platform",
        "linux/arm64",
        "--format",
        "docker",
        "-o",
        &format!("{}/dockerfmt:1", reg.addr),
    ])));
    let raw = json(
        &ok(skopeo(d).args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{}/dockerfmt:1", reg.addr),
        ]))
        .stdout,
    );
    assert_eq!(
        raw["mediaType"],
        "application/vnd.docker.distribution.manifest.list.v2+json"
    );
    let one = json(
        &ok(skopeo(d).args([
            "inspect",
            "--tls-verify=false",
            "--override-arch",
            "arm64",
            &format!("docker://{}/dockerfmt:1", reg.addr),
        ]))
        .stdout,
    );
    assert_eq!(one["Architecture"], "arm64");
    ok(skopeo(d).args([
        "copy",
        "--quiet",
        "--all",
        "--preserve-digests",
        "--src-tls-verify=false",
        &format!("docker://{}/dockerfmt:1", reg.addr),
        "dir:copied",
    ]));
    assert!(d.join("copied/manifest.json").is_file());
    assert_eq!(
        digest(&ok(teu(&home)
            .current_dir(d)
            .args(["digest", &format!("{}/dockerfmt:1", reg.addr)]))),
        pushed
    );
}

#[test]
fn lock_pins_a_registry_base() {
    let reg = Registry::start(Auth::None);
    let t = tempfile::tempdir().unwrap();
    let (d, home) = (t.path(), t.path().join("home"));
    let v1 = push_two_platform_base(d, &home, &format!("{}/base:1", reg.addr), "v1");
    write(&d.join("app/a.txt"), b"a");
    write(
        &d.join("app/teu.toml"),
        format!("[image]\nbase = \"{}/base:1\"\nplatforms = [\"linux/amd64\", \"linux/arm64\"]\n[[layer]]\ncopy = [{{ src = \"a.txt\", dest = \"/a.txt\" }}]\n", reg.addr).as_bytes(),
    );
    ok(teu(&home).current_dir(d).args(["lock", "app"]));
    let lock = std::fs::read_to_string(d.join("app/teu.lock")).unwrap();
    assert!(lock.contains(&v1), "{lock}");
    let first = digest(&ok(teu(&home).current_dir(d).args([
        "build",
        "app",
        "--locked",
        "-o",
        "oci:out:a",
    ])));

    let v2 = push_two_platform_base(d, &home, &format!("{}/base:1", reg.addr), "v2");
    assert_ne!(v1, v2);
    let (code, err) =
        fails(
            teu(&home)
                .current_dir(d)
                .args(["build", "app", "--locked", "-o", "oci:out:b"]),
        );
    assert_eq!(code, 1);
    assert!(err.contains("teu.lock pins") && err.contains(&v2), "{err}");
    // Without --locked the build stays on v1, read by digest from the registry.
    assert_eq!(
        digest(&ok(teu(&home).current_dir(d).args([
            "build",
            "app",
            "-o",
            "oci:out:c"
        ]))),
        first
    );
}
