//! `teu load` and `teu build -o ENGINE:NAME` against real engines, each started with
//! private state (teu-testkit's `engines`): dockerd 20.10, podman 4.3's service and
//! containerd 1.6 from Debian. The image is a statically linked program compiled here
//! (there is no base image with a shell offline) that prints a line from a file of a
//! second layer; each engine runs it. Loading again after that file changed must move only
//! the changed layer and the config (and, for containerd, the manifest).

use crate::common::*;
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use teu_testkit::engines::{Containerd, CountingProxy, Dockerd, Podman};

const PROGRAM: &str = r#"#include <stdio.h>
int main(void) {
    char line[256] = {0};
    FILE *f = fopen("/msg.txt", "r");
    if (f && fgets(line, sizeof line, f)) {}
    printf("hello from teu: %s", line);
    return 0;
}
"#;

/// A project: the program (one layer, ~750 KiB) and `msg.txt` (another layer).
struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    fn new(msg: &str, platforms: &[&str]) -> Project {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(&d.join("hello.c"), PROGRAM.as_bytes());
        ok(Command::new(tool("cc"))
            .args(["-static", "-O2", "-o"])
            .arg(d.join("hello"))
            .arg(d.join("hello.c")));
        // One platform: a plain image (not an index of one).
        let platforms = match platforms {
            [one] => format!("platform = {one:?}"),
            many => format!(
                "platforms = [{}]",
                many.iter()
                    .map(|p| format!("{p:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        write(
            &d.join("teu.toml"),
            format!(
                "[image]\nbase = \"scratch\"\n{platforms}\n\n[config]\nentrypoint = [\"/hello\"]\n\n\
                 [[layer]]\nname = \"program\"\ncopy = [{{ src = \"hello\", dest = \"/hello\", mode = \"0755\" }}]\n\n\
                 [[layer]]\nname = \"message\"\ncopy = [{{ src = \"msg.txt\", dest = \"/msg.txt\" }}]\n"
            )
            .as_bytes(),
        );
        let p = Project { dir };
        p.message(msg);
        p
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn message(&self, msg: &str) {
        write(&self.path().join("msg.txt"), format!("{msg}\n").as_bytes());
    }

    fn teu(&self) -> Command {
        let mut c = teu(&self.path().join("home"));
        c.current_dir(self.path())
            .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
            .env("CONTAINER_HOST", "unix:///nonexistent/podman.sock")
            .env("CONTAINERD_ADDRESS", "/nonexistent/containerd.sock");
        c
    }

    /// Build into `oci:out:v1`; the digest.
    fn build(&self) -> String {
        digest(&ok(self.teu().args(["build", "-o", "oci:out:v1", "-q"])))
    }

    fn layout(&self) -> String {
        format!("oci:{}:v1", self.path().join("out").display())
    }
}

fn json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

/// (skipped, moved) blob digests of a write report.
fn actions(r: &Value) -> (Vec<String>, Vec<String>) {
    let mut skipped = Vec::new();
    let mut moved = Vec::new();
    for b in r["blobs"].as_array().unwrap() {
        let d = b["digest"].as_str().unwrap().to_string();
        if b["action"] == "skip" {
            skipped.push(d);
        } else {
            moved.push(d);
        }
    }
    (skipped, moved)
}

/// The manifest of a one-platform layout: (config digest, config size, [(layer digest, size)]).
fn manifest_of(layout: &Path) -> (String, u64, Vec<(String, u64)>) {
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let d = index["manifests"][0]["digest"].as_str().unwrap();
    let m: Value =
        serde_json::from_slice(&std::fs::read(layout.join("blobs/sha256").join(&d[7..])).unwrap())
            .unwrap();
    let layers = m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["digest"].as_str().unwrap().to_string(),
                l["size"].as_u64().unwrap(),
            )
        })
        .collect();
    (
        m["config"]["digest"].as_str().unwrap().to_string(),
        m["config"]["size"].as_u64().unwrap(),
        layers,
    )
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn docker_loads_runs_and_then_gets_only_the_changed_layer() {
    let docker = Dockerd::start();
    let p = Project::new("one", &["linux/amd64"]);
    p.build();
    let (config1, _, layers1) = manifest_of(&p.path().join("out"));

    // First load: everything streamed; the classic store keeps the config digest only.
    let r = json(&ok(p.teu().env("DOCKER_HOST", docker.host()).args([
        "load",
        &p.layout(),
        "docker-daemon:teu/app:v1",
        "--json",
    ])));
    assert_eq!(r["engine"]["how"], "loaded", "{r}");
    assert_eq!(r["engine"]["name"], "docker.io/teu/app:v1");
    assert_eq!(r["engine"]["digest"], config1.as_str());
    assert_eq!(r["engine"]["keeps_manifest_digest"], false);
    assert!(
        r["engine"]["warnings"][0]
            .as_str()
            .unwrap()
            .contains("manifest digest"),
        "{r}"
    );
    let run = ok(docker
        .docker()
        .args(["run", "--rm", "--network", "none", "teu/app:v1"]));
    assert_eq!(stdout(&run), "hello from teu: one\n");

    // One file changed: the program's layer is not sent again.
    p.message("two");
    p.build();
    let (config2, config2_size, layers2) = manifest_of(&p.path().join("out"));
    assert_eq!(layers1[0], layers2[0], "the program layer is unchanged");
    // Through a proxy that counts what reaches dockerd, outside teu.
    let proxy = CountingProxy::start(&docker.socket);
    let via = format!("unix://{}", proxy.socket.display());
    let r = json(&ok(p.teu().env("DOCKER_HOST", &via).args([
        "load",
        &p.layout(),
        "docker-daemon:teu/app:v1",
        "--json",
    ])));
    let (skipped, moved) = actions(&r);
    assert_eq!(skipped, vec![layers2[0].0.clone()], "{r}");
    assert_eq!(moved, vec![config2.clone(), layers2[1].0.clone()], "{r}");
    let sent = r["engine"]["bytes_sent"].as_u64().unwrap();
    // What was streamed: the config, the changed layer, manifest.json and tar framing.
    let limit = config2_size + layers2[1].1 + 8 * 1024;
    assert!(
        sent <= limit,
        "sent {sent} bytes, more than config + changed layer + 8 KiB ({limit})"
    );
    assert!(
        sent < layers2[0].1,
        "the program layer was streamed: {sent}"
    );
    // On the wire: that stream plus the questions (info, inspects) and HTTP framing.
    let wire = proxy.sent();
    eprintln!("docker, changed: {sent} bytes streamed, {wire} on the wire, limit {limit}, program layer {}", layers2[0].1);
    assert!(
        wire >= sent && wire <= sent + 16 * 1024,
        "{wire} bytes reached dockerd for a {sent}-byte stream"
    );
    let run = ok(docker
        .docker()
        .args(["run", "--rm", "--network", "none", "teu/app:v1"]));
    assert_eq!(stdout(&run), "hello from teu: two\n");

    // The same image again, under a new name, from a build: only tagged.
    let out = ok(p.teu().env("DOCKER_HOST", docker.host()).args([
        "build",
        "-o",
        "docker-daemon:teu/app:dev",
        "--json",
    ]));
    let b = json(&out);
    let r = &b["outputs"][0];
    assert_eq!(r["engine"]["how"], "tagged", "{r}");
    assert_eq!(r["engine"]["bytes_sent"], 0);
    assert!(actions(r).1.is_empty(), "{r}");
    let id = ok(docker
        .docker()
        .args(["image", "inspect", "-f", "{{.Id}}", "teu/app:dev"]));
    assert_eq!(stdout(&id).trim(), config2);

    // Read back (docker save's stream): the same config; Docker's own layers.
    ok(p.teu().env("DOCKER_HOST", docker.host()).args([
        "copy",
        "docker-daemon:teu/app:dev",
        "oci:back:v1",
    ]));
    let (config_back, _, layers_back) = manifest_of(&p.path().join("back"));
    assert_eq!(config_back, config2);
    assert_eq!(layers_back.len(), 2);

    // teu's docker archive loads under the same name with `docker load`.
    ok(p.teu().args([
        "copy",
        &p.layout(),
        "docker-archive:app.tar:teu/archived:v1",
    ]));
    let loaded = ok(docker
        .docker()
        .arg("load")
        .arg("-i")
        .arg(p.path().join("app.tar")));
    assert!(
        stdout(&loaded).contains("teu/archived:v1"),
        "{}",
        stdout(&loaded)
    );

    // With no engine named, the one on DOCKER_HOST answers; the name comes from the source.
    let r = json(&ok(p.teu().env("DOCKER_HOST", docker.host()).args([
        "load",
        &format!("docker-archive:{}", p.path().join("app.tar").display()),
        "--json",
    ])));
    assert_eq!(r["destination"], "docker-daemon:teu/archived:v1", "{r}");
    assert_eq!(r["engine"]["how"], "tagged", "{r}");

    // A load Docker refuses still answers 200; the error in its stream is teu's error.
    let w = Project::new("windows", &["windows/amd64"]);
    w.build();
    let (code, err) = fails(w.teu().env("DOCKER_HOST", docker.host()).args([
        "load",
        &w.layout(),
        "docker-daemon:teu/windows:1",
    ]));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("load failed: cannot load windows image on linux"),
        "{err}"
    );
}

#[test]
fn podman_loads_runs_and_then_gets_only_the_changed_layer() {
    let podman = Podman::start();
    let p = Project::new("one", &["linux/amd64"]);
    let manifest = p.build();
    let r = json(&ok(p.teu().env("CONTAINER_HOST", podman.host()).args([
        "load",
        &p.layout(),
        "podman:teu/app:v1",
        "--json",
    ])));
    assert_eq!(r["engine"]["how"], "loaded", "{r}");
    assert_eq!(r["engine"]["name"], "docker.io/teu/app:v1");
    assert_eq!(r["engine"]["digest"], manifest.as_str(), "{r}");
    ok(podman
        .podman()
        .args(["image", "exists", "docker.io/teu/app:v1"]));
    let run = ok(podman.podman().args([
        "run",
        "--rm",
        "--network",
        "none",
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1024:1024",
        "docker.io/teu/app:v1",
    ]));
    assert_eq!(stdout(&run), "hello from teu: one\n");

    // Loaded again under another name: tagged, nothing sent.
    let r = json(&ok(p.teu().env("CONTAINER_HOST", podman.host()).args([
        "load",
        &p.layout(),
        "containers-storage:teu/app:again",
        "--json",
    ])));
    assert_eq!(r["engine"]["how"], "tagged", "{r}");
    assert_eq!(r["engine"]["bytes_sent"], 0, "{r}");
    ok(podman
        .podman()
        .args(["image", "exists", "docker.io/teu/app:again"]));

    // Changed: only the config and the changed layer are sent; the new message runs.
    p.message("two");
    let manifest2 = p.build();
    let (config2, config2_size, layers2) = manifest_of(&p.path().join("out"));
    let proxy = CountingProxy::start(&podman.socket);
    let via = format!("unix://{}", proxy.socket.display());
    let r = json(&ok(p.teu().env("CONTAINER_HOST", &via).args([
        "load",
        &p.layout(),
        "podman:teu/app:v1",
        "--json",
    ])));
    assert_eq!(r["engine"]["how"], "loaded", "{r}");
    assert_eq!(r["engine"]["warnings"], serde_json::json!([]), "{r}");
    let (skipped, moved) = actions(&r);
    assert_eq!(skipped, vec![layers2[0].0.clone()], "{r}");
    assert_eq!(moved, vec![config2.clone(), layers2[1].0.clone()], "{r}");
    let sent = r["engine"]["bytes_sent"].as_u64().unwrap();
    // The OCI layout part and manifest.json are a few KiB more than Docker's stream.
    let limit = config2_size + layers2[1].1 + 16 * 1024;
    assert!(sent <= limit, "sent {sent} bytes, limit {limit}");
    let wire = proxy.sent();
    eprintln!("podman, changed: {sent} bytes streamed, {wire} on the wire, limit {limit}");
    assert!(
        wire >= sent && wire <= sent + 16 * 1024,
        "{wire} bytes reached podman for a {sent}-byte stream"
    );
    // podman keeps the manifest digest.
    assert_eq!(r["engine"]["digest"], manifest2.as_str(), "{r}");
    assert_eq!(r["engine"]["keeps_manifest_digest"], true, "{r}");
    let run = ok(podman.podman().args([
        "run",
        "--rm",
        "--network",
        "none",
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1024:1024",
        "docker.io/teu/app:v1",
    ]));
    assert_eq!(stdout(&run), "hello from teu: two\n");

    // Read back through the service: the same config.
    ok(p.teu().env("CONTAINER_HOST", podman.host()).args([
        "copy",
        "podman:teu/app:v1",
        "oci:back:v1",
    ]));
    assert_eq!(manifest_of(&p.path().join("back")).0, config2);

    // With only podman answering, a bare name goes to podman.
    let r = json(&ok(p.teu().env("CONTAINER_HOST", podman.host()).args([
        "load",
        &p.layout(),
        "teu/app:auto",
        "--json",
    ])));
    assert_eq!(r["destination"], "podman:docker.io/teu/app:auto", "{r}");
    assert_eq!(r["engine"]["how"], "tagged", "{r}");

    // teu's docker archive gets the same full name from `podman load`.
    ok(p.teu().args([
        "copy",
        &p.layout(),
        "docker-archive:app.tar:teu/archived:v1",
    ]));
    ok(podman
        .podman()
        .arg("load")
        .arg("-i")
        .arg(p.path().join("app.tar")));
    ok(podman
        .podman()
        .args(["image", "exists", "docker.io/teu/archived:v1"]));
}

fn ctr_out(c: &Containerd, ns: &str, args: &[&str]) -> String {
    stdout(&ok(c.ctr(ns).args(args)))
}

/// `ctr run` of an image whose record was just moved to a new manifest. containerd's
/// garbage collector may then drop the old image's unpacked snapshots while ctr's
/// unpacker is preparing the new layers on top of them ("parent snapshot … does not
/// exist"), as it does after `ctr images import` too. ctr does not retry; one retry here
/// unpacks again from the content store, which still holds every blob. Known gap: teu
/// could carry the old config's snapshot gc labels over to the new one.
fn ctr_run_after_update(c: &Containerd, ns: &str, image: &str, id: &str) -> String {
    let args = ["run", "--snapshotter", "native", "--rm", image, id];
    let first = c.ctr(ns).args(args).output().unwrap();
    if first.status.success() {
        return stdout(&first);
    }
    let err = String::from_utf8_lossy(&first.stderr);
    assert!(
        err.contains("parent snapshot") && err.contains("does not exist"),
        "ctr run failed: {err}"
    );
    ctr_out(c, ns, &args)
}

#[test]
fn containerd_gets_only_missing_blobs_keeps_the_digest_and_runs() {
    let ctrd = Containerd::start();
    let addr = ctrd.socket.display().to_string();
    let p = Project::new("one", &["linux/amd64"]);
    let manifest1 = p.build();
    // A dry run asks and writes nothing.
    let r = json(&ok(p.teu().args([
        "load",
        &p.layout(),
        "containerd:teu/docker.io/teu/app:v1",
        "--containerd-address",
        &addr,
        "--dry-run",
        "--json",
    ])));
    assert_eq!(actions(&r).1.len(), 3, "{r}");
    assert!(r.get("engine").is_none(), "{r}");
    assert_eq!(ctr_out(&ctrd, "teu", &["content", "ls", "-q"]).trim(), "");
    let r = json(&ok(p.teu().args([
        "load",
        &p.layout(),
        "containerd:teu/docker.io/teu/app:v1",
        "--containerd-address",
        &addr,
        "--json",
    ])));
    assert_eq!(r["engine"]["how"], "written", "{r}");
    assert_eq!(r["engine"]["digest"], manifest1.as_str(), "{r}");
    assert_eq!(r["engine"]["keeps_manifest_digest"], true);
    let images = ctr_out(&ctrd, "teu", &["images", "ls"]);
    assert!(
        images.contains("docker.io/teu/app:v1") && images.contains(&manifest1),
        "{images}"
    );
    let run = ctr_out(
        &ctrd,
        "teu",
        &[
            "run",
            "--snapshotter",
            "native",
            "--rm",
            "docker.io/teu/app:v1",
            "t1",
        ],
    );
    assert_eq!(run, "hello from teu: one\n");

    // One file changed: only the changed layer, the config and the manifest are written,
    // counted by teu and, outside it, by a proxy in front of containerd's socket.
    let content = || -> std::collections::BTreeSet<String> {
        ctr_out(&ctrd, "teu", &["content", "ls", "-q"])
            .lines()
            .map(str::to_string)
            .collect()
    };
    let before = content();
    let proxy = CountingProxy::start(&ctrd.socket);
    let via = proxy.socket.display().to_string();
    p.message("two");
    let manifest2 = p.build();
    let (config2, config2_size, layers2) = manifest_of(&p.path().join("out"));
    let r = json(&ok(p.teu().args([
        "load",
        &p.layout(),
        "containerd:teu/docker.io/teu/app:v1",
        "--containerd-address",
        &via,
        "--json",
    ])));
    let (skipped, moved) = actions(&r);
    assert_eq!(skipped, vec![layers2[0].0.clone()], "{r}");
    assert_eq!(moved, vec![config2.clone(), layers2[1].0.clone()], "{r}");
    let manifest_size = std::fs::metadata(p.path().join("out/blobs/sha256").join(&manifest2[7..]))
        .unwrap()
        .len();
    assert_eq!(
        r["engine"]["bytes_sent"].as_u64().unwrap(),
        config2_size + layers2[1].1 + manifest_size,
        "{r}"
    );
    assert_eq!(r["engine"]["digest"], manifest2.as_str());
    let sent = r["engine"]["bytes_sent"].as_u64().unwrap();
    let wire = proxy.sent();
    eprintln!(
        "containerd, changed: {sent} bytes of blobs written, {wire} on the wire, program layer {}",
        layers2[0].1
    );
    assert!(
        wire >= sent && wire <= sent + 16 * 1024,
        "{wire} bytes reached containerd for {sent} bytes of blobs"
    );
    let after = content();
    let new: Vec<&String> = after.difference(&before).collect();
    let mut want = vec![&config2, &layers2[1].0, &manifest2];
    want.sort();
    assert_eq!(new, want, "blobs new in containerd's content store");
    let run = ctr_run_after_update(&ctrd, "teu", "docker.io/teu/app:v1", "t2");
    assert_eq!(run, "hello from teu: two\n");

    // The same again: nothing written.
    let r = json(&ok(p.teu().args([
        "load",
        &p.layout(),
        "containerd:teu/docker.io/teu/app:v1",
        "--containerd-address",
        &addr,
        "--json",
    ])));
    assert_eq!(r["engine"]["bytes_sent"], 0, "{r}");
    assert!(actions(&r).1.is_empty(), "{r}");

    // Read back: the same digest, blob for blob.
    let back = digest(&ok(p.teu().args([
        "copy",
        "containerd:teu/docker.io/teu/app:v1",
        "oci:cback:v1",
        "--containerd-address",
        &addr,
    ])));
    assert_eq!(back, manifest2);
    let tags = stdout(&ok(p.teu().args([
        "tags",
        "containerd:teu/docker.io/teu/app:v1",
        "--containerd-address",
        &addr,
    ])));
    assert_eq!(tags.trim(), "v1");

    // teu's OCI archive imported by ctr gets the same full name (Docker 25's annotations).
    ok(p.teu()
        .args(["copy", &p.layout(), "oci-archive:app.tar:teu/archived:v1"]));
    ok(ctrd
        .ctr("imp")
        .args(["images", "import", "--snapshotter", "native"])
        .arg(p.path().join("app.tar")));
    let images = ctr_out(&ctrd, "imp", &["images", "ls", "-q"]);
    assert_eq!(images.trim(), "docker.io/teu/archived:v1");
    // With only CONTAINERD_ADDRESS answering, teu load finds containerd, and the name
    // comes from the archive.
    let r = json(&ok(p.teu().env("CONTAINERD_ADDRESS", &addr).args([
        "load",
        "oci-archive:app.tar",
        "--json",
    ])));
    assert_eq!(
        r["destination"], "containerd:docker.io/teu/archived:v1",
        "{r}"
    );
    let images = ctr_out(&ctrd, "default", &["images", "ls", "-q"]);
    assert_eq!(images.trim(), "docker.io/teu/archived:v1");
    // And its docker archive too.
    ok(p.teu()
        .args(["copy", &p.layout(), "docker-archive:d.tar:teu/darchived:v1"]));
    ok(ctrd
        .ctr("imp2")
        .args(["images", "import", "--snapshotter", "native"])
        .arg(p.path().join("d.tar")));
    let images = ctr_out(&ctrd, "imp2", &["images", "ls", "-q"]);
    assert_eq!(images.trim(), "docker.io/teu/darchived:v1");
}

#[test]
fn containerd_keeps_every_platform_of_an_index() {
    let ctrd = Containerd::start();
    let addr = ctrd.socket.display().to_string();
    let p = Project::new("multi", &["linux/amd64", "linux/arm64"]);
    let index = p.build();
    let r = json(&ok(p.teu().args([
        "load",
        &p.layout(),
        "containerd:docker.io/teu/multi:v1",
        "--containerd-address",
        &addr,
        "--json",
    ])));
    assert_eq!(r["engine"]["digest"], index.as_str(), "{r}");
    let images = ctr_out(&ctrd, "default", &["images", "ls"]);
    assert!(images.contains(&index), "{images}");
    assert!(
        images.contains("linux/amd64") && images.contains("linux/arm64"),
        "{images}"
    );
    // Every manifest of the index is in the content store.
    let ix: Value =
        serde_json::from_str(&ctr_out(&ctrd, "default", &["content", "get", &index])).unwrap();
    for m in ix["manifests"].as_array().unwrap() {
        ctr_out(
            &ctrd,
            "default",
            &["content", "get", m["digest"].as_str().unwrap()],
        );
    }
    let run = ctr_out(
        &ctrd,
        "default",
        &[
            "run",
            "--snapshotter",
            "native",
            "--rm",
            "docker.io/teu/multi:v1",
            "m1",
        ],
    );
    assert_eq!(run, "hello from teu: multi\n");
    // Read back whole: the index digest and both platforms.
    let back = digest(&ok(p.teu().args([
        "copy",
        "containerd:docker.io/teu/multi:v1",
        "oci:mback:v1",
        "--containerd-address",
        &addr,
    ])));
    assert_eq!(back, index);
}

#[test]
fn podman_reuses_a_layer_it_holds_only_uncompressed() {
    // podman holds the program layer uncompressed (by diff ID); teu's gzip blob of the
    // same layer has another digest and is left out of the stream all the same: podman
    // 4.3 finds the layer by diff ID, and the image runs. (Had it not, the load would
    // fail and teu would send every layer, with a warning; no engine here fails so.)
    let podman = Podman::start();
    let p = Project::new("plain", &["linux/amd64"]);
    ok(p.teu()
        .args(["build", "-q", "-o", "oci:out:v1", "--compression", "none"]));
    ok(p.teu().env("CONTAINER_HOST", podman.host()).args([
        "load",
        &p.layout(),
        "podman:teu/plain:v1",
    ]));
    p.message("gzip");
    p.build();
    let (_, _, layers) = manifest_of(&p.path().join("out"));
    let r = json(&ok(p.teu().env("CONTAINER_HOST", podman.host()).args([
        "load",
        &p.layout(),
        "podman:teu/plain:v2",
        "--json",
    ])));
    assert_eq!(r["engine"]["how"], "loaded", "{r}");
    assert_eq!(actions(&r).0, vec![layers[0].0.clone()], "{r}");
    assert_eq!(r["engine"]["warnings"], serde_json::json!([]), "{r}");
    let run = ok(podman.podman().args([
        "run",
        "--rm",
        "--network",
        "none",
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1024:1024",
        "docker.io/teu/plain:v2",
    ]));
    assert_eq!(stdout(&run), "hello from teu: gzip\n");
}

#[test]
fn with_no_engine_answering_the_error_names_what_was_tried() {
    let p = Project::new("none", &["linux/amd64"]);
    p.build();
    let (code, err) = fails(p.teu().args(["load", &p.layout(), "teu/app:v1"]));
    assert_eq!(code, 1, "{err}");
    for s in [
        "/nonexistent/docker.sock",
        "/nonexistent/podman.sock",
        "/nonexistent/containerd.sock",
    ] {
        assert!(err.contains(s), "{s} not named in: {err}");
    }
}

#[test]
fn named_archives_read_back_by_short_and_full_name() {
    let p = Project::new("names", &["linux/amd64"]);
    let d = p.build();
    ok(p.teu()
        .args(["copy", &p.layout(), "docker-archive:d.tar:teu/app:v1"]));
    ok(p.teu()
        .args(["copy", &p.layout(), "oci-archive:o.tar:teu/app:v1"]));
    for r in [
        "docker-archive:d.tar:teu/app:v1",
        "docker-archive:d.tar:docker.io/teu/app:v1",
        "oci-archive:o.tar:teu/app:v1",
        "oci-archive:o.tar:docker.io/teu/app:v1",
        "oci-archive:o.tar:v1",
    ] {
        assert_eq!(digest(&ok(p.teu().args(["digest", r]))), d, "{r}");
    }
    for r in ["docker-archive:d.tar", "oci-archive:o.tar"] {
        let tags = stdout(&ok(p.teu().args(["tags", r])));
        assert_eq!(tags.trim(), "teu/app:v1", "{r}");
    }
}
