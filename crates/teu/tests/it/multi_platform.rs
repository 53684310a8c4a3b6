//! Multi-platform images: an index with one image per platform, per-platform inputs,
//! a two-platform base, shared layers stored once, and `--format docker`, checked with
//! skopeo and umoci.

use crate::common::*;
use std::fs;
use std::path::Path;
use std::process::Command;

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap()
}

fn skopeo_raw(dir: &Path, reference: &str) -> serde_json::Value {
    json(
        &ok(Command::new(tool("skopeo"))
            .current_dir(dir)
            .args(["inspect", "--raw", reference]))
        .stdout,
    )
}

/// A two-platform base built by teu, with a file that says which platform it is.
fn two_platform_base(t: &Path, home: &Path) {
    for arch in ["amd64", "arm64"] {
        write(
            &t.join(format!("base-src/{arch}/etc/arch")),
            arch.as_bytes(),
        );
    }
    write(&t.join("base-src/common/etc/os-release"), b"ID=teubase\n");
    write(
        &t.join("base.toml"),
        br#"[image]
platforms = ["linux/amd64", "linux/arm64"]

[[layer]]
name = "common"
copy = [{ src = "base-src/common/", dest = "/" }]

[[layer]]
name = "arch"
copy = [{ src = "base-src/{arch}/", dest = "/" }]
"#,
    );
    ok(teu(home)
        .current_dir(t)
        .args(["build", "base.toml", "-o", "oci:base:1"]));
}

#[test]
fn two_platform_image_on_a_two_platform_base() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("home");
    two_platform_base(t.path(), &home);
    let base_index = skopeo_raw(t.path(), "oci:base:1");
    assert_eq!(
        base_index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );

    write(&t.path().join("app/amd64/bin/app"), b"x86 binary");
    write(&t.path().join("app/arm64/bin/app"), b"arm binary");
    write(&t.path().join("shared/config.yaml"), b"shared: true\n");
    write(
        &t.path().join("teu.toml"),
        br#"[image]
base = "oci:base:1"
platforms = ["linux/amd64", "linux/arm64"]

[config]
entrypoint = ["/bin/app"]

[[layer]]
name = "shared"
copy = [{ src = "shared/config.yaml", dest = "/etc/app/config.yaml" }]

[[layer]]
name = "binary"
copy = [{ src = "app/{arch}/bin/app", dest = "/bin/app", mode = "0755" }]

[[layer]]
name = "extras"
[layer.per_platform."linux/arm64"]
dirs = [{ path = "/opt/arm-only" }]
"#,
    );
    let out = ok(teu(&home)
        .current_dir(t.path())
        .args(["build", "-o", "oci:out:v1", "--json"]));
    let report = json(&out.stdout);
    assert_eq!(
        report["media_type"],
        "application/vnd.oci.image.index.v1+json"
    );
    let platforms = report["platforms"].as_array().unwrap();
    assert_eq!(platforms.len(), 2);
    // The shared layer is built once: the same digest in both images, one blob.
    let shared: Vec<&str> = platforms
        .iter()
        .map(|p| p["layers"][0]["digest"].as_str().unwrap())
        .collect();
    assert_eq!(shared[0], shared[1]);
    let binary: Vec<&str> = platforms
        .iter()
        .map(|p| p["layers"][1]["digest"].as_str().unwrap())
        .collect();
    assert_ne!(binary[0], binary[1]);
    assert_eq!(
        report["layers"].as_array().unwrap().len(),
        5,
        "1 shared + 2 binary + 2 extras layers"
    );

    // skopeo sees an index with both platforms, and the right digest.
    let index = skopeo_raw(t.path(), "oci:out:v1");
    let listed: Vec<String> = index["manifests"]
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
    assert_eq!(listed, ["linux/amd64", "linux/arm64"]);

    // Each platform, taken out by skopeo, unpacks with umoci to its own files on its
    // own base.
    for (arch, binary, arm_only) in [
        ("amd64", "x86 binary", false),
        ("arm64", "arm binary", true),
    ] {
        ok(Command::new(tool("skopeo")).current_dir(t.path()).args([
            "copy",
            "--quiet",
            "--override-arch",
            arch,
            "oci:out:v1",
            &format!("oci:single-{arch}:v1"),
        ]));
        ok(Command::new(tool("umoci")).current_dir(t.path()).args([
            "unpack",
            "--image",
            &format!("single-{arch}:v1"),
            &format!("unpacked-{arch}"),
        ]));
        let rootfs = t.path().join(format!("unpacked-{arch}/rootfs"));
        assert_eq!(fs::read_to_string(rootfs.join("bin/app")).unwrap(), binary);
        assert_eq!(
            fs::read_to_string(rootfs.join("etc/arch")).unwrap(),
            arch,
            "base layer of the right platform"
        );
        assert_eq!(
            fs::read_to_string(rootfs.join("etc/os-release")).unwrap(),
            "ID=teubase\n"
        );
        assert_eq!(rootfs.join("opt/arm-only").is_dir(), arm_only);
    }

    // skopeo copies the whole index.
    ok(Command::new(tool("skopeo")).current_dir(t.path()).args([
        "copy",
        "--quiet",
        "--all",
        "oci:out:v1",
        "oci:copied:v1",
    ]));
    assert_eq!(skopeo_raw(t.path(), "oci:copied:v1"), index);

    // Every blob is stored once in the layout: the base's 3 layers (its configs and
    // manifests are not part of our image), our 5 layers, 2 configs, 2 manifests, 1 index.
    assert_eq!(count_entries(&t.path().join("out/blobs/sha256")), 13);
}

#[test]
fn a_platform_the_base_lacks_is_named() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("home");
    two_platform_base(t.path(), &home);
    write(
        &t.path().join("teu.toml"),
        b"[image]\nbase = \"oci:base:1\"\nplatforms = [\"linux/amd64\", \"linux/s390x\"]\n",
    );
    let (code, err) = fails(
        teu(&home)
            .current_dir(t.path())
            .args(["build", "-o", "oci:out"]),
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("teu.toml:2:8: image.base")
            && err.contains("no image for linux/s390x")
            && err.contains("linux/amd64, linux/arm64"),
        "{err}"
    );
}

#[test]
fn unknown_placeholders_and_foreign_platform_tables_are_errors() {
    let t = tempfile::tempdir().unwrap();
    write(
        &t.path().join("teu.toml"),
        b"[[layer]]\ncopy = [{ src = \"bin/{cpu}/app\", dest = \"/app\" }]\n",
    );
    let (_, err) = fails(
        teu(&t.path().join("home"))
            .current_dir(t.path())
            .args(["build"]),
    );
    assert!(
        err.contains("teu.toml:2:17: layer[0].copy[0].src") && err.contains("unknown placeholder"),
        "{err}"
    );
    write(
        &t.path().join("teu.toml"),
        b"[image]\nplatforms = [\"linux/amd64\"]\n[[layer]]\n[layer.per_platform.\"linux/riscv64\"]\ndirs = [{ path = \"/x\" }]\n",
    );
    let (_, err) = fails(
        teu(&t.path().join("home"))
            .current_dir(t.path())
            .args(["build"]),
    );
    assert!(
        err.contains("teu.toml:4:21")
            && err.contains("linux/riscv64 is not one of image.platforms"),
        "{err}"
    );
}

/// skopeo's `oci:` transport only looks at OCI media types in a layout, so the Docker
/// format is checked here by reading the layout itself; the registry tests check that
/// skopeo and the distribution registry accept it.
#[test]
fn docker_format_uses_docker_media_types() {
    let t = tempfile::tempdir().unwrap();
    write(&t.path().join("f.txt"), b"docker format");
    let out = ok(teu(&t.path().join("home")).current_dir(t.path()).args([
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
        "oci:out:v1",
    ]));
    let digest = digest(&out);
    let blob = |d: &str| json(&fs::read(t.path().join("out/blobs/sha256").join(&d[7..])).unwrap());
    let index = json(&fs::read(t.path().join("out/index.json")).unwrap());
    assert_eq!(index["manifests"][0]["digest"], digest.as_str());
    let list = blob(&digest);
    assert_eq!(
        list["mediaType"],
        "application/vnd.docker.distribution.manifest.list.v2+json"
    );
    for m in list["manifests"].as_array().unwrap() {
        assert_eq!(
            m["mediaType"],
            "application/vnd.docker.distribution.manifest.v2+json"
        );
        let manifest = blob(m["digest"].as_str().unwrap());
        assert_eq!(
            manifest["mediaType"],
            "application/vnd.docker.distribution.manifest.v2+json"
        );
        assert_eq!(
            manifest["config"]["mediaType"],
            "application/vnd.docker.container.image.v1+json"
        );
        assert_eq!(
            manifest["layers"][0]["mediaType"],
            "application/vnd.docker.image.rootfs.diff.tar.gzip"
        );
        assert!(manifest.get("annotations").is_none());
    }

    // zstd has no Docker media type: refused with a clear message.
    let (code, err) = fails(teu(&t.path().join("home")).current_dir(t.path()).args([
        "build",
        "--copy",
        "f.txt:/f.txt",
        "--format",
        "docker",
        "--compression",
        "zstd",
        "-o",
        "oci:z",
    ]));
    assert_eq!(code, 1);
    assert!(err.contains("no zstd layers"), "{err}");
}

/// With no platform named, an image on a single-platform base is built for the base's
/// platform, placeholders included, whatever the host is.
#[test]
fn without_a_platform_the_image_follows_a_single_platform_base() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("home");
    write(&t.path().join("b"), b"base");
    ok(teu(&home).current_dir(t.path()).args([
        "build",
        "-q",
        "--copy",
        "b:/b",
        "--platform",
        "linux/riscv64",
        "-o",
        "oci:base:1",
    ]));
    write(&t.path().join("bin/riscv64/app"), b"riscv app");
    write(&t.path().join("bin/amd64/app"), b"amd64 app");
    write(&t.path().join("teu.toml"), b"[image]\nbase = \"oci:base:1\"\n[[layer]]\ncopy = [{ src = \"bin/{arch}/app\", dest = \"/app\" }]\n");
    let out = ok(teu(&home)
        .current_dir(t.path())
        .args(["build", "-o", "oci:out:v1", "--json"]));
    let v = json(&out.stdout);
    assert_eq!(v["platforms"][0]["platform"], "linux/riscv64");
    ok(teu(&home).current_dir(t.path()).args(["lock"]));
    let lock = fs::read_to_string(t.path().join("teu.lock")).unwrap();
    assert!(lock.contains("platform = \"linux/riscv64\""), "{lock}");
    ok(Command::new(tool("umoci"))
        .current_dir(t.path())
        .args(["unpack", "--image", "out:v1", "unpacked"]));
    assert_eq!(
        fs::read_to_string(t.path().join("unpacked/rootfs/app")).unwrap(),
        "riscv app"
    );
}
