//! Real clients through the pull-through cache: containerd's `ctr` with the `hosts.toml`
//! mirror from docs/serve.md (the `?ns=` path), dockerd with the `daemon.json` from
//! docs/serve.md (`registry-mirrors`, Docker Hub names without a prefix), and skopeo by
//! path prefix. The upstream is the real registry behind the fault proxy.

use std::process::Command;

use serde_json::json;
use teu_testkit::engines::{Containerd, Dockerd};
use teu_testkit::registry::FaultKind;

use crate::clients::{layer, run_ok};
use crate::harness::*;
use crate::proxy::{fills_done, push_up, Up};

/// A fenced block of docs/serve.md, after `<!-- snippet: NAME -->`, with the documented
/// address replaced by the test server's.
fn doc_snippet(name: &str, addr: &str) -> String {
    let doc = std::fs::read_to_string(repo_root().join("docs/serve.md")).unwrap();
    let marker = format!("<!-- snippet: {name} -->");
    let after = doc
        .split_once(&marker)
        .unwrap_or_else(|| panic!("docs/serve.md has no {marker}"))
        .1;
    let body = after.split_once("```").unwrap().1;
    let body = body.split_once('\n').unwrap().1;
    let block = body.split_once("```").unwrap().0;
    assert!(block.contains("127.0.0.1:5000"), "{name}: {block}");
    block.replace("127.0.0.1:5000", addr)
}

/// A runnable single-layer amd64 image pushed upstream; returns the manifest digest.
fn push_runnable(up: &Up, repo: &str, tag: &str) -> String {
    let l = layer("hello.txt", b"hello through the cache\n");
    let diff_id = {
        let mut d = flate2::read::GzDecoder::new(&l[..]);
        let mut raw = Vec::new();
        std::io::Read::read_to_end(&mut d, &mut raw).unwrap();
        sha256(&raw)
    };
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "config": {},
    }))
    .unwrap();
    push_up(up, repo, tag, &config, &[&l])
}

fn upstream_gets(up: &Up) -> Vec<String> {
    up.requests()
        .into_iter()
        .filter(|(m, _, _)| m == "GET" || m == "HEAD")
        .map(|(m, p, _)| format!("{m} {p}"))
        .collect()
}

#[test]
fn proxy_containerd_hosts_toml_mirror_and_skopeo_prefix() {
    let up = Up::start();
    let st = Storage::new(Backend::Fs);
    let s = Server::start_with(&st, &up.toml("docker.io", "tag_ttl = \"1m\""));
    let m = push_runnable(&up, "library/app", "v1");
    up.requests();
    let hosts = st.dir.path().join("hosts");
    std::fs::create_dir_all(hosts.join("docker.io")).unwrap();
    std::fs::write(
        hosts.join("docker.io/hosts.toml"),
        doc_snippet("hosts.toml", &s.addr),
    )
    .unwrap();
    let cd = Containerd::start();
    let pull = || {
        run_ok(
            cd.ctr("teu")
                .arg("images")
                .arg("pull")
                .arg("--hosts-dir")
                .arg(&hosts)
                .args([
                    "--snapshotter",
                    "native",
                    "--platform",
                    "linux/amd64",
                    "docker.io/library/app:v1",
                ]),
        )
    };
    pull();
    let listed = run_ok(cd.ctr("teu").args(["images", "ls"]));
    assert!(listed.contains(&m), "{listed}");
    assert!(
        s.log()
            .contains("/v2/library/app/manifests/v1?ns=docker.io"),
        "containerd came through the mirror with ?ns="
    );
    let cold = upstream_gets(&up);
    assert_eq!(
        cold.len(),
        3,
        "a manifest and two blobs, each once: {cold:?}"
    );
    // Warm, within the TTL: containerd pulls again (content removed first) and the
    // upstream sees nothing.
    fills_done(&s);
    run_ok(
        cd.ctr("teu")
            .args(["images", "rm", "docker.io/library/app:v1"]),
    );
    run_ok(cd.ctr("teu").args(["content", "prune", "references"]));
    let blob_gets = |log: String| log.matches("/blobs/sha256:").count();
    let before = blob_gets(s.log());
    pull();
    assert!(
        blob_gets(s.log()) > before,
        "the warm pull read blobs from the cache"
    );
    assert_eq!(upstream_gets(&up), Vec::<String>::new());
    // skopeo by path prefix reads the same cache.
    let out = st.dir.path().join("out");
    run_ok(
        Command::new(tool("skopeo"))
            .args(["copy", "--src-tls-verify=false"])
            .arg(format!("docker://{}/docker.io/library/app:v1", s.addr))
            .arg(format!("oci:{}:v1", out.display())),
    );
    assert!(out.join("blobs/sha256").join(&m[7..]).exists());
    assert_eq!(upstream_gets(&up), Vec::<String>::new());
}

#[test]
fn proxy_dockerd_registry_mirrors() {
    let up = Up::start();
    let st = Storage::new(Backend::Fs);
    let s = Server::start_with(&st, &up.toml("docker.io", "tag_ttl = \"1m\""));
    let m = push_runnable(&up, "library/app", "v1");
    up.requests();
    let daemon_json = st.dir.path().join("daemon.json");
    std::fs::write(&daemon_json, doc_snippet("daemon.json", &s.addr)).unwrap();
    let d = Dockerd::start_with(&["--config-file".as_ref(), daemon_json.as_os_str()]);
    // Docker Hub is unreachable here: the pull of library/app succeeds only through the
    // mirror, which is the upstream named docker.io.
    run_ok(d.docker().args(["pull", "app:v1"]));
    let inspect = run_ok(d.docker().args([
        "image",
        "inspect",
        "app:v1",
        "--format",
        "{{json .RepoDigests}}",
    ]));
    assert!(inspect.contains(&m), "{inspect}");
    assert!(s.log().contains("/v2/library/app/manifests/v1"));
    let cold = upstream_gets(&up);
    assert!(
        cold.iter().filter(|r| r.contains("/blobs/")).count() == 2,
        "each blob once: {cold:?}"
    );
}

/// A push to an unprefixed local name, with an upstream named `docker.io` configured:
/// skopeo HEADs every blob before uploading it, and those 404s must stay local. Docker
/// Hub answers 401 for names it does not have, and may be down: neither may reach a push.
#[test]
fn proxy_push_to_local_name_never_asks_docker_hub() {
    let up = Up::start();
    let st = Storage::new(Backend::Fs);
    let s = Server::start_with(&st, &up.toml("docker.io", ""));
    let m = push_runnable(&up, "library/pulled", "v1");
    up.requests();
    // Hub's answer to a name it does not know.
    up.proxy
        .fault("HEAD", "/myteam/", FaultKind::Status(401, None), 100);
    up.proxy
        .fault("GET", "/myteam/", FaultKind::Status(401, None), 100);
    let layout = st.dir.path().join("in");
    crate::clients::make_layout(&layout);
    let skopeo = tool("skopeo");
    run_ok(
        Command::new(&skopeo)
            .args(["copy", "--all", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:latest", layout.display()))
            .arg(format!("docker://{}/myteam/app:1", s.addr)),
    );
    assert!(
        s.log().contains("HEAD") && s.log().contains("/v2/myteam/app/blobs/sha256:"),
        "skopeo checked its blobs first"
    );
    assert_eq!(up.requests(), Vec::new(), "the push asked no upstream");
    // A tag missing from the local repository is a local 404, not Hub's image.
    let c = client();
    let r = c
        .get(format!("http://{}/v2/myteam/app/manifests/2", s.addr))
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        up.requests(),
        Vec::new(),
        "a local repository's miss stays local"
    );
    // A name with no local content that Hub refuses is a 404 too, not a 502.
    let r = c
        .get(format!("http://{}/v2/myteam/other/manifests/1", s.addr))
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);
    let v: serde_json::Value = r.json().unwrap();
    assert_eq!(v["errors"][0]["code"], "MANIFEST_UNKNOWN", "{v}");
    assert_eq!(up.requests().len(), 1, "Hub was asked for the unknown name");
    // With Hub down, the push of another tag still succeeds and asks nothing.
    up.proxy.set_down(true);
    run_ok(
        Command::new(&skopeo)
            .args(["copy", "--all", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:latest", layout.display()))
            .arg(format!("docker://{}/myteam/app2:1", s.addr)),
    );
    up.proxy.set_down(false);
    // A missing unprefixed name still goes to the mirror.
    let r = c
        .get(format!("http://{}/v2/library/pulled/manifests/v1", s.addr))
        .header("Accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["docker-content-digest"], m.as_str());
    let asked = up.requests();
    assert!(
        asked
            .iter()
            .any(|(_, p, _)| p.contains("/library/pulled/manifests/v1")),
        "{asked:?}"
    );
}
