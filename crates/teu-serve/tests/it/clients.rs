//! Real clients against the server: skopeo (copy in and out, `--all`) and containerd's
//! `ctr images pull --plain-http` through a private containerd.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::*;

/// A gzip'd tar with one file: a real layer a runtime can unpack.
pub(crate) fn layer(name: &str, content: &[u8]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(content.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_cksum();
    tar.append_data(&mut h, name, content).unwrap();
    let raw = tar.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &raw).unwrap();
    gz.finish().unwrap()
}

fn put_blob(layout: &Path, bytes: &[u8]) -> String {
    let d = sha256(bytes);
    std::fs::write(layout.join("blobs/sha256").join(&d[7..]), bytes).unwrap();
    d
}

/// An OCI layout holding a two-platform index tagged `latest`; returns the index digest.
pub(crate) fn make_layout(layout: &Path) -> String {
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let mut children = Vec::new();
    for arch in ["amd64", "arm64"] {
        let l = layer(
            &format!("hello-{arch}.txt"),
            format!("hello from {arch}\n").as_bytes(),
        );
        let diff_id = {
            let mut d = flate2::read::GzDecoder::new(&l[..]);
            let mut raw = Vec::new();
            std::io::Read::read_to_end(&mut d, &mut raw).unwrap();
            sha256(&raw)
        };
        let config = serde_json::to_vec(&json!({
            "architecture": arch, "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "config": {},
        }))
        .unwrap();
        let ld = put_blob(layout, &l);
        let cd = put_blob(layout, &config);
        let m = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld, "size": l.len()}],
        }))
        .unwrap();
        let md = put_blob(layout, &m);
        children.push(json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": m.len(),
            "platform": {"architecture": arch, "os": "linux"},
        }));
    }
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": children,
    }))
    .unwrap();
    let id = put_blob(layout, &index);
    let top = json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json", "digest": id, "size": index.len(),
                       "annotations": {"org.opencontainers.image.ref.name": "latest"}}],
    });
    std::fs::write(layout.join("index.json"), top.to_string()).unwrap();
    id
}

#[track_caller]
pub(crate) fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn skopeo_round_trip(b: Backend) {
    let st = Storage::new(b);
    let s = Server::start(&st);
    let layout = st.dir.path().join("in");
    let index = make_layout(&layout);
    let skopeo = tool("skopeo");
    run_ok(
        Command::new(&skopeo)
            .args(["copy", "--all", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:latest", layout.display()))
            .arg(format!("docker://{}/sk/app:v1", s.addr)),
    );
    let raw = run_ok(
        Command::new(&skopeo)
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{}/sk/app:v1", s.addr)),
    );
    assert_eq!(
        sha256(raw.as_bytes()),
        index,
        "the index is stored byte for byte"
    );
    let out = st.dir.path().join("out");
    run_ok(
        Command::new(&skopeo)
            .args(["copy", "--all", "--src-tls-verify=false"])
            .arg(format!("docker://{}/sk/app:v1", s.addr))
            .arg(format!("oci:{}:latest", out.display())),
    );
    let top: Value =
        serde_json::from_slice(&std::fs::read(out.join("index.json")).unwrap()).unwrap();
    assert_eq!(top["manifests"][0]["digest"], index);
    // Every blob came back intact.
    for e in std::fs::read_dir(layout.join("blobs/sha256")).unwrap() {
        let e = e.unwrap();
        let back = std::fs::read(out.join("blobs/sha256").join(e.file_name())).unwrap();
        assert_eq!(back, std::fs::read(e.path()).unwrap());
    }
}

#[test]
fn skopeo_copy_all_in_and_out_fs() {
    skopeo_round_trip(Backend::Fs);
}

#[test]
fn skopeo_copy_all_in_and_out_s3() {
    skopeo_round_trip(Backend::S3);
}

/// A private containerd (own root, state and socket); killed on drop.
struct Containerd {
    sock: std::path::PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Containerd {
    fn start() -> Containerd {
        let bin = tool("containerd");
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let sock = d.join("containerd.sock");
        let config = format!(
            "version = 2\nroot = \"{0}/root\"\nstate = \"{0}/state\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{1}\"\n[ttrpc]\n  address = \"{1}.ttrpc\"\n[debug]\n  address = \"{0}/debug.sock\"\n[metrics]\n  address = \"\"\n",
            d.display(),
            sock.display()
        );
        std::fs::write(d.join("config.toml"), config).unwrap();
        let log = std::fs::File::create(d.join("containerd.log")).unwrap();
        let child = Command::new(bin)
            .arg("--config")
            .arg(d.join("config.toml"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !sock.exists() {
            assert!(
                Instant::now() < deadline,
                "containerd did not start:\n{}",
                std::fs::read_to_string(d.join("containerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Containerd {
            sock,
            child,
            _dir: dir,
        }
    }

    fn ctr(&self) -> Command {
        let mut c = Command::new(tool("ctr"));
        c.arg("--address").arg(&self.sock).args(["-n", "teu"]);
        c
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn containerd_pulls_with_plain_http() {
    let st = Storage::new(Backend::Fs);
    let s = Server::start(&st);
    let layout = st.dir.path().join("in");
    let index = make_layout(&layout);
    run_ok(
        Command::new(tool("skopeo"))
            .args(["copy", "--all", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:latest", layout.display()))
            .arg(format!("docker://{}/ctr/app:v1", s.addr)),
    );
    let cd = Containerd::start();
    let image = format!("{}/ctr/app:v1", s.addr);
    run_ok(cd.ctr().args([
        "images",
        "pull",
        "--plain-http",
        "--snapshotter",
        "native",
        "--platform",
        "linux/amd64",
        &image,
    ]));
    let listed = run_ok(cd.ctr().args(["images", "ls"]));
    let line = listed
        .lines()
        .find(|l| l.starts_with(&image))
        .unwrap_or_else(|| panic!("{listed}"));
    assert!(
        line.contains(&index),
        "containerd records the index digest: {line}"
    );
}

#[test]
fn skopeo_pushes_with_credentials_and_pulls_anonymously() {
    let st = Storage::new(Backend::Fs);
    let out = Command::new(tool("htpasswd"))
        .args(["-Bbn", "ci", "pushpass"])
        .output()
        .unwrap();
    let users = st.dir.path().join("users");
    std::fs::write(&users, &out.stdout).unwrap();
    let s = Server::start_with(
        &st,
        &format!(
            "[auth]\nhtpasswd = {:?}\nanonymous = \"read\"\n",
            users.display().to_string()
        ),
    );
    let layout = st.dir.path().join("in");
    let index = make_layout(&layout);
    let auth_file = st.dir.path().join("auth.json");
    std::fs::write(&auth_file, "{}").unwrap();
    let skopeo = || {
        let mut c = Command::new(tool("skopeo"));
        c.env("REGISTRY_AUTH_FILE", &auth_file);
        c
    };
    let src = format!("oci:{}:latest", layout.display());
    let dest = format!("docker://{}/open/app:v1", s.addr);
    // Without credentials the push is refused...
    let out = skopeo()
        .args(["copy", "--all", "--dest-tls-verify=false", &src, &dest])
        .output()
        .unwrap();
    assert!(!out.status.success(), "an anonymous push went through");
    // ...with them it goes through, and anyone can pull.
    run_ok(skopeo().args([
        "copy",
        "--all",
        "--dest-tls-verify=false",
        "--dest-creds",
        "ci:pushpass",
        &src,
        &dest,
    ]));
    let raw = run_ok(skopeo().args(["inspect", "--raw", "--tls-verify=false", &dest]));
    assert_eq!(sha256(raw.as_bytes()), index);
    assert!(!s.log().contains("pushpass"));
}
