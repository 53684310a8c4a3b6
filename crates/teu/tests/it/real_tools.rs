//! Outputs checked by the real tools users have: skopeo reads all three outputs, umoci
//! unpacks them to a rootfs equal to the sources, and an image built on a base that umoci
//! made unpacks with the base's files plus the new ones (and without the removed ones).

use crate::common::*;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::Command;

/// A source tree with every kind of thing a rootfs comparison should see.
fn fixture(root: &Path) {
    write(&root.join("bin/tool"), b"#!/bin/sh\necho tool\n");
    fs::set_permissions(root.join("bin/tool"), fs::Permissions::from_mode(0o755)).unwrap();
    write(&root.join("etc/app.conf"), b"key = value\n");
    write(&root.join("share/empty-file"), b"");
    write(&root.join("share/name with spaces.txt"), b"spaces");
    write(
        &root.join("share/caf\u{e9}-\u{1f980}.txt"),
        "unicode".as_bytes(),
    );
    fs::create_dir_all(root.join("share/empty-dir")).unwrap();
    symlink("../etc/app.conf", root.join("share/conf-link")).unwrap();
    symlink("/outside/the/tree", root.join("share/dangling")).unwrap();
    write(&root.join("data/original"), b"linked content");
    fs::hard_link(root.join("data/original"), root.join("data/second-name")).unwrap();
}

fn unpack(layout: &Path, tag: &str, into: &Path) -> std::path::PathBuf {
    ok(Command::new(tool("umoci")).args([
        "unpack",
        "--image",
        &format!("{}:{tag}", layout.display()),
        into.to_str().unwrap(),
    ]));
    into.join("rootfs")
}

fn spec_for(src: &Path) -> String {
    format!(
        "[[layer]]\nname = \"fixture\"\ncopy = [{{ src = \"{}/\", dest = \"/\" }}]\n",
        src.display()
    )
}

#[test]
fn skopeo_and_umoci_accept_all_outputs_and_the_rootfs_matches() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    fixture(&src);
    write(&t.path().join("teu.toml"), spec_for(&src).as_bytes());
    let out = ok(teu(&t.path().join("home")).current_dir(t.path()).args([
        "build",
        "-o",
        "oci:layout:v1",
        "-o",
        "oci-archive:image.oci.tar:v1",
        "-o",
        "docker-archive:image.docker.tar:fixture:v1",
    ]));
    let digest = digest(&out);

    // skopeo reads the three outputs; for the OCI ones it sees our manifest digest.
    for r in ["oci:layout:v1", "oci-archive:image.oci.tar:v1"] {
        let o = ok(Command::new(tool("skopeo"))
            .current_dir(t.path())
            .args(["inspect", r]));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["Digest"], digest.as_str(), "{r}");
    }
    let o = ok(Command::new(tool("skopeo")).current_dir(t.path()).args([
        "inspect",
        "--config",
        "docker-archive:image.docker.tar",
    ]));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["rootfs"]["diff_ids"].as_array().unwrap().len(), 1);

    let expected = describe_tree(&src);
    let rootfs = unpack(&t.path().join("layout"), "v1", &t.path().join("unpacked"));
    assert_eq!(describe_tree(&rootfs), expected);
    assert_eq!(
        link_groups(&rootfs),
        vec![vec![
            b"data/original".to_vec(),
            b"data/second-name".to_vec()
        ]],
        "hard links survive"
    );

    // The docker archive holds the same image: skopeo copies it into a layout that umoci
    // unpacks to the same tree.
    ok(Command::new(tool("skopeo")).current_dir(t.path()).args([
        "copy",
        "--quiet",
        "docker-archive:image.docker.tar",
        "oci:from-docker:v1",
    ]));
    let rootfs2 = unpack(
        &t.path().join("from-docker"),
        "v1",
        &t.path().join("unpacked2"),
    );
    assert_eq!(describe_tree(&rootfs2), expected);
    let manifest: serde_json::Value = {
        let o = ok(Command::new("tar").current_dir(t.path()).args([
            "-xOf",
            "image.docker.tar",
            "manifest.json",
        ]));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    assert_eq!(manifest[0]["RepoTags"][0], "fixture:v1");
}

#[test]
fn an_image_on_an_umoci_base_has_base_files_plus_new_ones() {
    let t = tempfile::tempdir().unwrap();
    let umoci = tool("umoci");
    let base_files = t.path().join("base-files");
    write(&base_files.join("etc/motd"), b"welcome\n");
    write(&base_files.join("etc/os-release"), b"ID=testbase\n");
    write(&base_files.join("usr/lib/libbase.so"), b"\x7fELF base");
    let base = t.path().join("base");
    ok(Command::new(&umoci).args(["init", "--layout", base.to_str().unwrap()]));
    ok(Command::new(&umoci).args(["new", "--image", &format!("{}:3.20", base.display())]));
    ok(Command::new(&umoci).args([
        "insert",
        "--image",
        &format!("{}:3.20", base.display()),
        base_files.to_str().unwrap(),
        "/",
    ]));
    ok(Command::new(&umoci).args([
        "config",
        "--image",
        &format!("{}:3.20", base.display()),
        "--config.env",
        "PATH=/usr/bin",
        "--config.cmd",
        "/bin/base-cmd",
    ]));
    let base_blobs_before = count_entries(&base.join("blobs/sha256"));

    write(&t.path().join("app/hello"), b"new file");
    write(
        &t.path().join("teu.toml"),
        b"[image]\nbase = \"oci:base:3.20\"\n\n[config]\nentrypoint = [\"/app/hello\"]\nenv = { PATH = \"/app:/usr/bin\", MODE = \"prod\" }\n\n[[layer]]\ncopy = [{ src = \"app/\", dest = \"/app/\" }]\nremove = [\"/etc/motd\"]\n",
    );
    let home = t.path().join("home");
    ok(teu(&home)
        .current_dir(t.path())
        .args(["build", "-o", "oci:out:v1"]));
    // The base's layers were referenced, not copied into the store: the store holds only
    // the one new layer.
    assert_eq!(count_entries(&home.join("blobs/sha256")), 1);
    assert_eq!(count_entries(&base.join("blobs/sha256")), base_blobs_before);

    let rootfs = unpack(&t.path().join("out"), "v1", &t.path().join("unpacked"));
    assert_eq!(
        fs::read(rootfs.join("etc/os-release")).unwrap(),
        b"ID=testbase\n"
    );
    assert_eq!(
        fs::read(rootfs.join("usr/lib/libbase.so")).unwrap(),
        b"\x7fELF base"
    );
    assert_eq!(fs::read(rootfs.join("app/hello")).unwrap(), b"new file");
    assert!(
        !rootfs.join("etc/motd").exists(),
        "the whiteout removed /etc/motd"
    );

    let config: serde_json::Value =
        serde_json::from_slice(&fs::read(t.path().join("unpacked/config.json")).unwrap()).unwrap();
    let env: Vec<&str> = config["process"]["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        env.contains(&"PATH=/app:/usr/bin") && env.contains(&"MODE=prod"),
        "{env:?}"
    );
    assert!(
        !env.contains(&"PATH=/usr/bin"),
        "same key replaced: {env:?}"
    );
    let args: Vec<&str> = config["process"]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        args,
        ["/app/hello"],
        "an entrypoint without cmd clears the base's cmd"
    );
}

/// buildah, the third real consumer: it imports each output into its own storage (vfs, in
/// a temporary root) and the mounted rootfs matches the sources.
#[test]
fn buildah_imports_the_layout_and_both_archives() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    fixture(&src);
    write(&t.path().join("teu.toml"), spec_for(&src).as_bytes());
    ok(teu(&t.path().join("home")).current_dir(t.path()).args([
        "build",
        "-q",
        "-o",
        "oci:layout:v1",
        "-o",
        "oci-archive:image.oci.tar:v1",
        "-o",
        "docker-archive:image.docker.tar:fixture:v1",
    ]));
    let buildah = |args: &[&str]| {
        let out = ok(Command::new(tool("buildah"))
            .current_dir(t.path())
            .arg("--storage-driver=vfs")
            .arg(format!("--root={}", t.path().join("broot").display()))
            .arg(format!("--runroot={}", t.path().join("brun").display()))
            .args(args));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let expected = describe_tree(&src);
    for (i, r) in [
        "oci:layout:v1",
        "oci-archive:image.oci.tar:v1",
        "docker-archive:image.docker.tar",
    ]
    .iter()
    .enumerate()
    {
        let name = format!("c{i}");
        buildah(&["from", "--quiet", "--name", &name, r]);
        let mnt = buildah(&["mount", &name]);
        assert_eq!(describe_tree(std::path::Path::new(&mnt)), expected, "{r}");
        buildah(&["umount", &name]);
        buildah(&["rm", &name]);
    }
}
