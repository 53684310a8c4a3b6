//! teu against the real CNCF distribution registry on loopback, with a recording and
//! fault-injecting proxy in front: bytes and requests are counted on the wire.

use std::path::Path;
use std::process::Command;

use crate::common::registry::{blob_gets, mounts, uploads, Auth, FaultKind, Proxy, Registry};
use crate::common::{digest, fails, ok, teu, tool};

/// Incompressible bytes, reproducible from `seed`, written to `path`.
fn random_file(path: &Path, len: usize, seed: u64) {
    crate::common::write(path, &crate::common::random(len, seed));
}

struct Env {
    _tmp: tempfile::TempDir,
    dir: std::path::PathBuf,
}

impl Env {
    fn new() -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        std::fs::create_dir_all(dir.join("docker")).unwrap();
        Env { _tmp: tmp, dir }
    }
    /// teu with its own store and an empty Docker config (no stray credentials).
    fn teu(&self) -> Command {
        let mut c = teu(&self.dir.join("home"));
        c.env("DOCKER_CONFIG", self.dir.join("docker"))
            .env_remove("REGISTRY_AUTH_FILE")
            .env("XDG_RUNTIME_DIR", self.dir.join("run"))
            .env("HOME", &self.dir)
            .current_dir(&self.dir);
        c
    }
}

/// A two-layer base (`big` bytes and 64 KiB, uncompressed so it builds fast) pushed to
/// `target`.
fn push_base(env: &Env, target: &str, big: usize) -> String {
    let d = env.dir.join("base");
    random_file(&d.join("big.bin"), big, 1);
    random_file(&d.join("small.bin"), 64 << 10, 2);
    crate::common::write(
        &d.join("teu.toml"),
        br#"[image]
base = "scratch"
compression = "none"
[[layer]]
name = "big"
copy = [{ src = "big.bin", dest = "/big.bin" }]
[[layer]]
name = "small"
copy = [{ src = "small.bin", dest = "/small.bin" }]
"#,
    );
    digest(&ok(env.teu().args(["build", "base", "-q", "-o", target])))
}

/// An app spec with two layers (lib, app) on `base`.
fn app_spec(env: &Env, base: &str, app_text: &str) {
    let d = env.dir.join("app");
    random_file(&d.join("lib.bin"), 256 << 10, 3);
    crate::common::write(&d.join("app.txt"), app_text.as_bytes());
    crate::common::write(
        &d.join("teu.toml"),
        format!(
            r#"[image]
base = "{base}"
[[layer]]
name = "lib"
copy = [{{ src = "lib.bin", dest = "/lib.bin" }}]
[[layer]]
name = "app"
copy = [{{ src = "app.txt", dest = "/app.txt" }}]
"#
        )
        .as_bytes(),
    );
}

fn inspect_json(env: &Env, r: &str) -> serde_json::Value {
    let out = ok(env.teu().args(["inspect", r, "--json"]));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn layer_digests(v: &serde_json::Value) -> Vec<String> {
    v["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn shallow_base_mounted_layers_and_only_changed_blobs_move() {
    let reg = Registry::start(Auth::None);
    let proxy = Proxy::start(&reg.addr);
    let env = Env::new();
    push_base(&env, &format!("{}/base:1", reg.addr), 2 << 20);
    let base = inspect_json(&env, &format!("{}/base:1", reg.addr));
    let base_layers = layer_digests(&base);
    let base_config = base["config"]["digest"].as_str().unwrap().to_string();
    assert_eq!(base_layers.len(), 2);

    // Build on the base through the proxy and push to another repository.
    app_spec(&env, &format!("{}/base:1", proxy.addr), "v1");
    proxy.take_log();
    let out = ok(env
        .teu()
        .args(["build", "app", "-o", &format!("{}/app:1", proxy.addr)]));
    let first = digest(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not pinned by digest"), "{stderr}");
    let log = proxy.take_log();
    let gets = blob_gets(&log);
    assert_eq!(
        gets,
        vec![base_config.clone()],
        "only the base config is read: {log:#?}"
    );
    let mounted: Vec<_> = mounts(&log);
    assert_eq!(mounted.len(), 2, "both base layers are mounted: {log:#?}");
    for l in &base_layers {
        // The mount parameter is URL-encoded (sha256%3A…): match the hex.
        assert!(
            mounted.iter().any(|m| m.path.contains(&l[7..])),
            "{l} not mounted"
        );
    }
    let up = uploads(&log);
    assert_eq!(
        up.len(),
        3,
        "lib, app and config are uploaded, nothing else: {up:#?}"
    );
    let big = (2 << 20) as u64;
    assert!(
        up.iter().all(|e| e.bytes_up < big),
        "a base layer went up: {up:#?}"
    );

    // The same image again: nothing is uploaded or mounted.
    let again = digest(&ok(env.teu().args([
        "build",
        "app",
        "-q",
        "-o",
        &format!("{}/app:1", proxy.addr),
    ])));
    assert_eq!(again, first);
    let log = proxy.take_log();
    assert!(uploads(&log).is_empty(), "{log:#?}");
    assert!(mounts(&log).is_empty(), "{log:#?}");
    assert!(blob_gets(&log).len() <= 1, "{log:#?}");

    // One file changes: its layer and the config go up, nothing else.
    crate::common::write(&env.dir.join("app/app.txt"), b"v2");
    let changed = digest(&ok(env.teu().args([
        "build",
        "app",
        "-q",
        "-o",
        &format!("{}/app:2", proxy.addr),
    ])));
    assert_ne!(changed, first);
    let log = proxy.take_log();
    let up = uploads(&log);
    assert_eq!(up.len(), 2, "{up:#?}");
    assert!(mounts(&log).is_empty());
    let app2 = inspect_json(&env, &format!("{}/app:2", reg.addr));
    let new_layer = layer_digests(&app2).last().unwrap().clone();
    let new_config = app2["config"]["digest"].as_str().unwrap().to_string();
    for d in [&new_layer, &new_config] {
        assert!(
            up.iter().any(|e| e.path.contains(&d[7..])),
            "{d} not uploaded: {up:#?}"
        );
    }

    // A copy to another repository of the same registry mounts every layer.
    let out = ok(env.teu().args([
        "push",
        &format!("{}/app:2", proxy.addr),
        &format!("{}/copy:2", proxy.addr),
        "--json",
    ]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["digest"], changed);
    let log = proxy.take_log();
    assert_eq!(mounts(&log).len(), 5, "4 layers and the config: {log:#?}");
    assert!(uploads(&log).is_empty(), "{log:#?}");
    assert!(blob_gets(&log).iter().all(|g| *g == new_config), "{log:#?}");
    assert_eq!(
        digest(&ok(env
            .teu()
            .args(["digest", &format!("{}/copy:2", reg.addr)]))),
        changed
    );

    // teu diff reads registries too: the changed file is the difference.
    let out = env
        .teu()
        .args([
            "diff",
            &format!("{}/app:1", reg.addr),
            &format!("{}/app:2", reg.addr),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", all_output(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("app.txt"),
        "{}",
        all_output(&out)
    );
}

#[test]
fn dry_run_plans_and_moves_nothing_then_tags_and_digest_file() {
    let reg = Registry::start(Auth::None);
    let env = Env::new();
    let d = push_base(&env, &format!("{}/base:1", reg.addr), 300 << 10);
    let out = ok(env.teu().args([
        "push",
        &format!("{}/base:1", reg.addr),
        &format!("{}/other:x", reg.addr),
        "--dry-run",
        "--json",
    ]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let actions: Vec<&str> = v["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["mount", "mount", "mount"], "{v:#}");
    let layers_size: u64 = inspect_json(&env, &format!("{}/base:1", reg.addr))["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["size"].as_u64().unwrap())
        .sum();
    let config_size = v["blobs"][0]["size"].as_u64().unwrap();
    assert_eq!(v["bytes"]["mounted"], layers_size + config_size, "{v:#}");
    assert_eq!(v["bytes"]["uploaded"], 0, "{v:#}");
    let (_, err) = fails(env.teu().args(["digest", &format!("{}/other:x", reg.addr)]));
    assert!(err.contains("not found"), "{err}");

    let df = env.dir.join("digest.txt");
    ok(env.teu().args([
        "push",
        &format!("{}/base:1", reg.addr),
        &format!("{}/other:x", reg.addr),
        "--tag",
        "y",
        "--tag",
        "z",
        "--digest-file",
        df.to_str().unwrap(),
    ]));
    assert_eq!(std::fs::read_to_string(&df).unwrap().trim(), d);
    let tags = ok(env.teu().args(["tags", &format!("{}/other", reg.addr)]));
    let mut tags: Vec<String> = String::from_utf8(tags.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    tags.sort();
    assert_eq!(tags, ["x", "y", "z"]);
    // Asking for one tag per page still lists every tag. (Distribution 2.8 ignores `n` for
    // tag lists and sends no Link, so following Link headers is only unit-tested.)
    let paged = ok(env.teu().args([
        "tags",
        &format!("{}/other", reg.addr),
        "--page-size",
        "1",
        "--json",
    ]));
    let mut paged: Vec<String> = serde_json::from_slice(&paged.stdout).unwrap();
    paged.sort();
    assert_eq!(paged, tags);
}

/// Build the app into a layout (no registry involved) to know the digest a push must give.
fn app_layout(env: &Env) -> String {
    let d = env.dir.join("plain");
    random_file(&d.join("lib.bin"), 3 << 20, 7);
    crate::common::write(&d.join("app.txt"), b"fault");
    crate::common::write(
        &d.join("teu.toml"),
        br#"[image]
base = "scratch"
compression = "none"
[[layer]]
name = "lib"
copy = [{ src = "lib.bin", dest = "/lib.bin" }]
[[layer]]
name = "app"
copy = [{ src = "app.txt", dest = "/app.txt" }]
"#,
    );
    digest(&ok(env.teu().args([
        "build",
        "plain",
        "-q",
        "-o",
        "oci:layout:v1",
    ])))
}

#[test]
fn pushes_survive_throttling_server_errors_resets_truncation_and_slowness() {
    let reg = Registry::start(Auth::None);
    let proxy = Proxy::start(&reg.addr);
    let env = Env::new();
    let want = app_layout(&env);
    proxy.fault(
        "POST",
        "/blobs/uploads/",
        FaultKind::Status(429, Some(1)),
        1,
    );
    proxy.fault("POST", "/blobs/uploads/", FaultKind::Status(429, None), 1);
    proxy.fault("PUT", "/blobs/uploads/", FaultKind::Status(500, None), 1);
    proxy.fault("HEAD", "/blobs/", FaultKind::Status(502, None), 1);
    proxy.fault("PUT", "/manifests/", FaultKind::Status(503, None), 1);
    proxy.fault(
        "PUT",
        "/blobs/uploads/",
        FaultKind::Slow(std::time::Duration::from_millis(700)),
        1,
    );
    let started = std::time::Instant::now();
    let out = ok(env.teu().args([
        "push",
        "oci:layout:v1",
        &format!("{}/faulty:v1", proxy.addr),
        "--json",
    ]));
    assert_eq!(digest_of_json(&out), want);
    assert_eq!(proxy.faults_left(), 0, "every fault was hit");
    // Retry-After: 1 was honoured.
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["traffic"]["retries"].as_u64().unwrap() >= 5, "{v:#}");

    // Reads: a connection dropped mid-body and a truncated body are resumed, and the
    // result is verified.
    proxy.take_log();
    proxy.fault("GET", "/blobs/sha256:", FaultKind::ResetMidBody, 1);
    proxy.fault("GET", "/blobs/sha256:", FaultKind::Truncate, 1);
    proxy.fault("GET", "/manifests/", FaultKind::Truncate, 1);
    ok(env.teu().args([
        "pull",
        &format!("{}/faulty:v1", proxy.addr),
        "oci:pulled:v1",
    ]));
    assert_eq!(proxy.faults_left(), 0);
    assert_eq!(
        digest(&ok(env.teu().args(["digest", "oci:pulled:v1"]))),
        want
    );
    let log = proxy.take_log();
    assert!(
        log.iter().any(|e| e.method == "GET" && e.status == 206),
        "a resumed read used Range: {log:#?}"
    );
}

fn digest_of_json(out: &std::process::Output) -> String {
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["digest"].as_str().unwrap().to_string()
}

#[test]
fn past_the_retry_budget_a_push_fails_clearly_and_a_rerun_completes() {
    let reg = Registry::start(Auth::None);
    let proxy = Proxy::start(&reg.addr);
    let env = Env::new();
    let want = app_layout(&env);
    proxy.fault("PUT", "/manifests/", FaultKind::Status(503, None), 10);
    let (code, err) = fails(env.teu().args([
        "push",
        "oci:layout:v1",
        &format!("{}/budget:v1", proxy.addr),
        "--retries",
        "3",
    ]));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("gave up after 3 attempts"), "{err}");
    assert!(err.contains("503"), "{err}");
    assert!(err.contains("budget"), "{err}");
    proxy.faults.lock().unwrap().clear();
    proxy.take_log();
    let out = ok(env.teu().args([
        "push",
        "oci:layout:v1",
        &format!("{}/budget:v1", proxy.addr),
    ]));
    assert_eq!(digest(&out), want);
    // The blobs made it the first time: the re-run only writes the manifest.
    assert!(uploads(&proxy.take_log()).is_empty());
}

#[test]
fn rate_limits_are_reported_with_the_registry_numbers() {
    let reg = Registry::start(Auth::None);
    let proxy = Proxy::start(&reg.addr);
    let env = Env::new();
    app_layout(&env);
    proxy.fault("HEAD", "/blobs/", FaultKind::RateLimited, 100);
    let (code, err) = fails(env.teu().args([
        "push",
        "oci:layout:v1",
        &format!("{}/limited:v1", proxy.addr),
        "--retries",
        "2",
        "--registry-profile",
        &format!("{}=dockerhub", proxy.addr),
    ]));
    assert_eq!(code, 1);
    assert!(err.contains("429"), "{err}");
    assert!(
        err.contains("rate limit 100;w=21600, remaining 0;w=21600"),
        "{err}"
    );
}

/// Every output of a command, to check that no secret leaks into it.
fn all_output(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn login(env: &Env, registry: &str, user: &str, password: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = env
        .teu()
        .args(["login", registry, "-u", user, "--password-stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn htpasswd_basic_auth_login_push_pull_logout_and_no_secret_is_printed() {
    const PASSWORD: &str = "s3cret-Basic-pw";
    let reg = Registry::start(Auth::Basic("alice".into(), PASSWORD.into()));
    let env = Env::new();
    let want = app_layout(&env);
    let target = format!("{}/private:v1", reg.addr);

    let out = env
        .teu()
        .args(["push", "oci:layout:v1", &target])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("access denied") && err.contains("teu login"),
        "{err}"
    );

    let bad = login(&env, &reg.addr, "alice", "wrong-password");
    assert_eq!(bad.status.code(), Some(1), "{}", all_output(&bad));
    assert!(!all_output(&bad).contains("wrong-password"));
    assert!(
        !env.dir.join("docker/config.json").exists()
            || !std::fs::read_to_string(env.dir.join("docker/config.json"))
                .unwrap()
                .contains(&reg.addr)
    );

    let good = login(&env, &reg.addr, "alice", PASSWORD);
    assert!(good.status.success(), "{}", all_output(&good));
    let config = std::fs::read_to_string(env.dir.join("docker/config.json")).unwrap();
    assert!(config.contains(&reg.addr), "{config}");

    let mut outputs = Vec::new();
    let out = ok(env.teu().args(["push", "oci:layout:v1", &target, "--json"]));
    assert_eq!(digest_of_json(&out), want);
    outputs.push(out);
    outputs.push(ok(env.teu().args(["inspect", &target, "--json"])));
    outputs.push(ok(env
        .teu()
        .args(["tags", &format!("{}/private", reg.addr)])));
    outputs.push(ok(env.teu().args(["pull", &target, "oci:back:v1"])));
    outputs.push(good);
    for o in &outputs {
        assert!(!all_output(o).contains(PASSWORD), "{}", all_output(o));
    }
    // skopeo reads the image with the credentials teu stored.
    let sk = ok(Command::new(tool("skopeo")).args([
        "inspect",
        "--tls-verify=false",
        "--authfile",
        env.dir.join("docker/config.json").to_str().unwrap(),
        &format!("docker://{target}"),
    ]));
    assert!(String::from_utf8_lossy(&sk.stdout).contains(&want));

    ok(env.teu().args(["logout", &reg.addr]));
    let (code, err) = fails(env.teu().args(["inspect", &target]));
    assert_eq!(code, 1);
    assert!(err.contains("access denied"), "{err}");
}

#[test]
fn skopeo_reads_what_teu_pushed_and_teu_reads_what_skopeo_pushed() {
    let reg = Registry::start(Auth::None);
    let env = Env::new();
    let want = app_layout(&env);
    let target = format!("{}/interop:teu", reg.addr);
    ok(env.teu().args(["push", "oci:layout:v1", &target]));
    // skopeo copies it out completely (every blob verified) and agrees on the digest.
    ok(Command::new(tool("skopeo")).args([
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{target}"),
        &format!("oci:{}:x", env.dir.join("sk-out").display()),
    ]));
    let sk = ok(Command::new(tool("skopeo")).args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{target}"),
    ]));
    assert_eq!(
        format!("sha256:{}", sha256_hex(&sk.stdout)),
        want,
        "skopeo sees the same manifest bytes"
    );

    // skopeo pushes (as a Docker v2s2 image, so teu reads Docker media types too).
    let theirs = format!("{}/interop:skopeo", reg.addr);
    ok(Command::new(tool("skopeo")).args([
        "copy",
        "--dest-tls-verify=false",
        "--format",
        "v2s2",
        &format!("oci:{}:v1", env.dir.join("layout").display()),
        &format!("docker://{theirs}"),
    ]));
    let d = digest(&ok(env.teu().args(["digest", &theirs])));
    let raw = ok(env.teu().args(["inspect", &theirs, "--raw"]));
    assert!(String::from_utf8_lossy(&raw.stdout)
        .contains("application/vnd.docker.distribution.manifest.v2+json"));
    assert_eq!(
        format!(
            "sha256:{}",
            sha256_hex(raw.stdout.strip_suffix(b"\n").unwrap())
        ),
        d
    );
    ok(env.teu().args(["pull", &theirs, "oci:from-skopeo:v1"]));
    assert_eq!(
        digest(&ok(env.teu().args(["digest", "oci:from-skopeo:v1"]))),
        d
    );
    // And teu builds on it.
    app_spec(&env, &theirs, "on skopeo's image");
    ok(env.teu().args([
        "build",
        "app",
        "-q",
        "-o",
        &format!("{}/interop:built", reg.addr),
    ]));
    ok(Command::new(tool("skopeo")).args([
        "inspect",
        "--tls-verify=false",
        &format!("docker://{}/interop:built", reg.addr),
    ]));
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(b))
}

#[test]
fn copy_between_registries_streams_with_bounded_memory_and_no_disk() {
    const LAYER: usize = 96 << 20;
    let a = Registry::start(Auth::None);
    let b = Registry::start(Auth::None);
    let proxy = Proxy::start(&b.addr);
    let env = Env::new();
    let want = push_base(&env, &format!("{}/big:1", a.addr), LAYER);

    // A fresh store, temp dir and working directory, to see that nothing lands on disk.
    let clean = tempfile::tempdir().unwrap();
    for d in ["home", "tmp", "cwd"] {
        std::fs::create_dir(clean.path().join(d)).unwrap();
    }
    let mut cmd = Command::new(tool("time"));
    cmd.args(["-f", "maxrss_kib=%M", env!("CARGO_BIN_EXE_teu")])
        .args([
            "copy",
            &format!("{}/big:1", a.addr),
            &format!("{}/big:1", proxy.addr),
        ])
        .env("TEU_HOME", clean.path().join("home"))
        .env("TMPDIR", clean.path().join("tmp"))
        .env("DOCKER_CONFIG", env.dir.join("docker"))
        .env("HOME", &env.dir)
        .current_dir(clean.path().join("cwd"));
    let out = ok(&mut cmd);
    assert_eq!(digest(&out), want);
    let err = String::from_utf8_lossy(&out.stderr);
    let rss_kib: u64 = err
        .lines()
        .find_map(|l| l.strip_prefix("maxrss_kib="))
        .expect("time printed the peak RSS")
        .trim()
        .parse()
        .unwrap();
    eprintln!(
        "teu copy of a {} MiB layer: peak RSS {rss_kib} KiB",
        LAYER >> 20
    );
    assert!(
        rss_kib < 48 * 1024,
        "peak memory {rss_kib} KiB for a {} MiB layer",
        LAYER >> 20
    );
    for d in ["home", "tmp", "cwd"] {
        assert_eq!(
            crate::common::count_entries(&clean.path().join(d)),
            0,
            "{d} was written to"
        );
    }
    // Every byte of the big layer went up once, through the proxy, as a stream.
    let log = proxy.take_log();
    let up: u64 = uploads(&log).iter().map(|e| e.bytes_up).sum();
    assert!(
        up >= LAYER as u64 && up < LAYER as u64 + (1 << 20),
        "{up} bytes up"
    );
    assert!(err.contains("streamed"), "{err}");
    assert_eq!(
        digest(&ok(env
            .teu()
            .args(["digest", &format!("{}/big:1", b.addr)]))),
        want
    );
}

#[test]
fn token_auth_with_scoped_cached_tokens_and_merged_mount_scopes() {
    const PASSWORD: &str = "tok3n-Pw-xyz";
    let env = Env::new();
    let ts = crate::common::token_server::TokenServer::start(&env.dir, "bob", PASSWORD);
    let reg = Registry::start(Auth::Token {
        realm: ts.realm.clone(),
        cert: ts.cert.clone(),
    });
    let want = app_layout(&env);

    // Anonymous: the token server hands out a token without access; the registry refuses.
    let (code, err) =
        fails(
            env.teu()
                .args(["push", "oci:layout:v1", &format!("{}/base:1", reg.addr)]),
        );
    assert_eq!(code, 1);
    assert!(err.contains("access denied"), "{err}");

    let bad = login(&env, &reg.addr, "bob", "nope");
    assert_eq!(bad.status.code(), Some(1), "{}", all_output(&bad));
    let good = login(&env, &reg.addr, "bob", PASSWORD);
    assert!(good.status.success(), "{}", all_output(&good));

    ts.requests.lock().unwrap().clear();
    let out = ok(env.teu().args([
        "push",
        "oci:layout:v1",
        &format!("{}/base:1", reg.addr),
        "--json",
    ]));
    assert_eq!(digest_of_json(&out), want);
    let reqs = ts.requests.lock().unwrap().clone();
    // Tokens are cached per scope: pull (HEADs) and pull,push (uploads, manifest), not one
    // per request.
    assert!(reqs.len() <= 3, "{reqs:#?}");
    assert!(reqs.iter().all(|(who, _)| who == "bob"), "{reqs:#?}");

    // A push to another repository mounts with one token for both repositories.
    ts.requests.lock().unwrap().clear();
    let out = ok(env.teu().args([
        "push",
        &format!("{}/base:1", reg.addr),
        &format!("{}/team/app:1", reg.addr),
        "--json",
    ]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mounted = v["bytes"]["mounted"].as_u64().unwrap();
    assert!(mounted >= 3 << 20, "{v:#}");
    let reqs = ts.requests.lock().unwrap().clone();
    assert!(
        reqs.iter().any(
            |(_, s)| s.contains(&"repository:team/app:pull,push".to_string())
                && s.contains(&"repository:base:pull".to_string())
        ),
        "{reqs:#?}"
    );
    for o in [&out, &good] {
        assert!(!all_output(o).contains(PASSWORD));
    }
    let sk = ok(Command::new(tool("skopeo")).args([
        "inspect",
        "--tls-verify=false",
        "--authfile",
        env.dir.join("docker/config.json").to_str().unwrap(),
        &format!("docker://{}/team/app:1", reg.addr),
    ]));
    assert!(String::from_utf8_lossy(&sk.stdout).contains(&want));
}

/// PATCH requests for blob uploads, with their sizes.
fn patches(log: &[crate::common::registry::Exchange]) -> Vec<u64> {
    log.iter()
        .filter(|e| e.method == "PATCH")
        .map(|e| e.bytes_up)
        .collect()
}

const MIB: u64 = 1 << 20;

#[test]
fn quirk_ghcr_chunks_are_capped_at_4_mib() {
    let reg = Registry::start(Auth::None);
    let proxy = Proxy::start(&reg.addr);
    let env = Env::new();
    proxy.take_log();
    push_base(&env, &format!("{}/ghcr:1", proxy.addr), 10 << 20);
    // Without the profile the 10 MiB layer goes up in one PUT (monolithic limit 128 MiB).
    let log = proxy.take_log();
    assert!(patches(&log).is_empty(), "{log:#?}");

    let out = ok(env
        .teu()
        .args([
            "build",
            "base",
            "-q",
            "-o",
            &format!("{}/ghcr2:1", proxy.addr),
        ])
        .env("TEU_REGISTRY_PROFILE", format!("{}=ghcr", proxy.addr))
        .env("TEU_MONOLITHIC_MAX", MIB.to_string()));
    let d = digest(&out);
    let p = patches(&proxy.take_log());
    assert!(p.iter().all(|&n| n <= 4 * MIB), "{p:?}");
    assert_eq!(p.iter().filter(|&&n| n == 4 * MIB).count(), 2, "{p:?}");
    ok(env
        .teu()
        .args(["pull", &format!("{}/ghcr2:1", reg.addr), "oci:ghcr-back"]));
    assert_eq!(digest(&ok(env.teu().args(["digest", "oci:ghcr-back"]))), d);
}

#[test]
fn quirk_ecr_201_on_patch_5_mb_minimum_chunks_and_missing_repositories() {
    let reg = Registry::start(Auth::None);
    let proxy = Proxy::start(&reg.addr);
    let env = Env::new();
    let profile = format!("{}=ecr", proxy.addr);
    proxy.fault(
        "PATCH",
        "/blobs/uploads/",
        FaultKind::RewriteStatus(201),
        100,
    );
    let d = push_base(&env, &format!("{}/seed:1", reg.addr), 12 << 20);
    proxy.take_log();
    let out = ok(env
        .teu()
        .args([
            "push",
            &format!("{}/seed:1", reg.addr),
            &format!("{}/ecr:1", proxy.addr),
        ])
        .env("TEU_REGISTRY_PROFILE", &profile)
        .env("TEU_MONOLITHIC_MAX", MIB.to_string())
        .env("TEU_CHUNK_SIZE", MIB.to_string()));
    assert_eq!(digest(&out), d);
    let p = patches(&proxy.take_log());
    // 12 MiB in chunks of at least 5 MiB (but the last), though 1 MiB was asked for.
    assert_eq!(p.len(), 3, "{p:?}");
    assert!(p[..2].iter().all(|&n| n >= 5 * MIB), "{p:?}");

    proxy.faults.lock().unwrap().clear();
    proxy.fault(
        "POST",
        "/v2/absent/blobs/uploads/",
        FaultKind::Status(404, None),
        100,
    );
    app_layout(&env);
    let (code, err) = fails(
        env.teu()
            .args(["push", "oci:layout:v1", &format!("{}/absent:1", proxy.addr)])
            .env("TEU_REGISTRY_PROFILE", &profile),
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("does not create repositories on push"),
        "{err}"
    );
    assert!(
        err.contains("aws ecr create-repository --repository-name absent"),
        "{err}"
    );
}

#[test]
fn quirk_artifactory_has_no_mounts_so_blobs_are_streamed() {
    let reg = Registry::start(Auth::None);
    let proxy = Proxy::start(&reg.addr);
    let env = Env::new();
    let d = push_base(&env, &format!("{}/src:1", proxy.addr), MIB as usize);
    proxy.take_log();
    let out = ok(env
        .teu()
        .args([
            "push",
            &format!("{}/src:1", proxy.addr),
            &format!("{}/dst:1", proxy.addr),
            "--json",
        ])
        .env(
            "TEU_REGISTRY_PROFILE",
            format!("{}=artifactory", proxy.addr),
        ));
    assert_eq!(digest_of_json(&out), d);
    let log = proxy.take_log();
    assert!(!log.iter().any(|e| e.path.contains("mount=")), "{log:#?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["bytes"]["mounted"], 0);
    assert!(v["bytes"]["streamed"].as_u64().unwrap() > MIB, "{v:#}");
}

#[test]
fn quirk_harbor_401_on_mount_falls_back_to_streaming_and_quay_mounts_carry_from() {
    let reg = Registry::start(Auth::None);
    let proxy = Proxy::start(&reg.addr);
    let env = Env::new();
    let d = push_base(&env, &format!("{}/src:1", proxy.addr), MIB as usize);
    proxy.take_log();
    proxy.fault("POST", "mount=", FaultKind::Status(401, None), 100);
    let out = ok(env
        .teu()
        .args([
            "push",
            &format!("{}/src:1", proxy.addr),
            &format!("{}/dst:1", proxy.addr),
            "--json",
        ])
        .env("TEU_REGISTRY_PROFILE", format!("{}=harbor", proxy.addr)));
    assert_eq!(digest_of_json(&out), d);
    let log = proxy.take_log();
    let tried: Vec<_> = log.iter().filter(|e| e.path.contains("mount=")).collect();
    assert_eq!(tried.len(), 3, "two layers and the config: {log:#?}");
    assert!(tried
        .iter()
        .all(|e| e.path.contains("from=src") && e.status == 401));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["bytes"]["mounted"], 0, "{v:#}");
    assert!(v["bytes"]["streamed"].as_u64().unwrap() > MIB, "{v:#}");
}

#[test]
fn copy_all_platforms_keeps_the_index_digest() {
    let a = Registry::start(Auth::None);
    let b = Registry::start(Auth::None);
    let env = Env::new();
    // gzip layers: skopeo would compress uncompressed ones on the way and change digests.
    random_file(&env.dir.join("mp/lib.bin"), 512 << 10, 9);
    crate::common::write(
        &env.dir.join("mp/teu.toml"),
        b"[[layer]]\nname = \"lib\"\ncopy = [{ src = \"lib.bin\", dest = \"/lib.bin\" }]\n",
    );
    let amd = digest(&ok(env.teu().args([
        "build",
        "mp",
        "-q",
        "--platform",
        "linux/amd64",
        "-o",
        "oci:multi:amd",
    ])));
    let arm = digest(&ok(env.teu().args([
        "build",
        "mp",
        "-q",
        "--platform",
        "linux/arm64",
        "-o",
        "oci:multi:arm",
    ])));
    // An index of both, written into the layout by hand.
    let dir = env.dir.join("multi");
    let index_path = dir.join("index.json");
    let mut top: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    let mut children = top["manifests"].as_array().unwrap().clone();
    for c in &mut children {
        c.as_object_mut().unwrap().remove("annotations");
    }
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": children,
    }))
    .unwrap();
    let index_digest = format!("sha256:{}", sha256_hex(&index));
    std::fs::write(dir.join("blobs/sha256").join(&index_digest[7..]), &index).unwrap();
    top["manifests"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": index_digest, "size": index.len(),
            "annotations": {"org.opencontainers.image.ref.name": "all"},
        }));
    std::fs::write(&index_path, serde_json::to_vec(&top).unwrap()).unwrap();
    ok(Command::new(tool("skopeo")).args([
        "copy",
        "--all",
        "--dest-tls-verify=false",
        &format!("oci:{}:all", dir.display()),
        &format!("docker://{}/multi:1", a.addr),
    ]));

    // skopeo may re-encode the index on the way: A's bytes are the reference.
    let in_a = ok(Command::new(tool("skopeo")).args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{}/multi:1", a.addr),
    ]))
    .stdout;
    assert!(String::from_utf8_lossy(&in_a).contains(&arm[7..]));
    let index_digest = format!("sha256:{}", sha256_hex(&in_a));
    let out = ok(env.teu().args([
        "copy",
        "--all-platforms",
        &format!("{}/multi:1", a.addr),
        &format!("{}/multi:1", b.addr),
    ]));
    assert_eq!(digest(&out), index_digest);
    let theirs = ok(Command::new(tool("skopeo")).args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{}/multi:1", b.addr),
    ]));
    assert_eq!(theirs.stdout, in_a);
    let v = inspect_json(&env, &format!("{}/multi:1", b.addr));
    assert_eq!(v["manifests"].as_array().unwrap().len(), 2);
    for (p, d) in [("linux/amd64", &amd), ("linux/arm64", &arm)] {
        let got = digest(&ok(env.teu().args([
            "digest",
            &format!("{}/multi:1", b.addr),
            "--platform",
            p,
        ])));
        assert_eq!(&got, d, "{p}");
        ok(env.teu().args([
            "pull",
            &format!("{}/multi:1", b.addr),
            &format!("oci:pulled-{}", &p[6..]),
            "--platform",
            p,
        ]));
    }
}

#[test]
fn an_interrupted_chunked_upload_resumes_in_the_same_session() {
    let reg = Registry::start(Auth::None);
    let proxy = Proxy::start(&reg.addr);
    let env = Env::new();
    let want = push_base(&env, &format!("{}/seed:1", reg.addr), 10 << 20);
    proxy.take_log();
    // The registry never sees the failing chunk: teu asks the session how far it got and
    // sends the chunk again into the same session.
    proxy.fault("PATCH", "/blobs/uploads/", FaultKind::Status(503, None), 1);
    let out = ok(env
        .teu()
        .args([
            "copy",
            &format!("{}/seed:1", reg.addr),
            &format!("{}/chunked:1", proxy.addr),
        ])
        .env("TEU_REGISTRY_PROFILE", format!("{}=ghcr", proxy.addr))
        .env("TEU_MONOLITHIC_MAX", MIB.to_string()));
    assert_eq!(digest(&out), want);
    assert_eq!(proxy.faults_left(), 0);
    let log = proxy.take_log();
    let sessions = log
        .iter()
        .filter(|e| e.method == "POST" && !e.path.contains("mount="))
        .count();
    // config, small layer, big layer: one session each, none restarted.
    assert_eq!(sessions, 3, "{log:#?}");
    assert!(
        log.iter()
            .any(|e| e.method == "GET" && e.path.contains("/blobs/uploads/") && e.status == 204),
        "the session was asked for its progress: {log:#?}"
    );
    ok(env.teu().args([
        "pull",
        &format!("{}/chunked:1", reg.addr),
        "oci:chunked-back",
    ]));

    // The registry keeps a chunk but the answer is lost: distribution's session state
    // (`_state` in the location) is then stale, so teu starts a new session and completes.
    proxy.fault("PATCH", "/blobs/uploads/", FaultKind::DropResponse, 1);
    let out = ok(env
        .teu()
        .args([
            "copy",
            &format!("{}/seed:1", reg.addr),
            &format!("{}/chunked2:1", proxy.addr),
        ])
        .env("TEU_REGISTRY_PROFILE", format!("{}=ghcr", proxy.addr))
        .env("TEU_MONOLITHIC_MAX", MIB.to_string()));
    assert_eq!(digest(&out), want);
    assert_eq!(proxy.faults_left(), 0);
}

/// A `docker-credential-NAME` helper script answering for one server with fixed credentials,
/// logging each call (without the secret) to `calls.log`.
fn fake_helper(dir: &Path, name: &str, server: &str, user: &str, password: &str) {
    use std::os::unix::fs::PermissionsExt;
    let script = format!(
        "#!/bin/sh\nread server\necho \"$1 $server\" >> {log}\nif [ \"$1\" = get ] && [ \"$server\" = \"{server}\" ]; then\n  printf '{{\"ServerURL\":\"%s\",\"Username\":\"{user}\",\"Secret\":\"{password}\"}}' \"$server\"\n  exit 0\nfi\necho 'credentials not found in native keychain'\nexit 1\n",
        log = dir.join("calls.log").display()
    );
    let p = dir.join(format!("docker-credential-{name}"));
    std::fs::write(&p, script).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn credentials_from_helpers_creds_store_and_podman_auth_files() {
    const PASSWORD: &str = "helper-Pw-42";
    let reg = Registry::start(Auth::Basic("carol".into(), PASSWORD.into()));
    let env = Env::new();
    let want = app_layout(&env);
    let bin = env.dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    fake_helper(&bin, "teutest", &reg.addr, "carol", PASSWORD);
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let config = env.dir.join("docker/config.json");

    // credHelpers names the helper for this registry.
    crate::common::write(
        &config,
        format!(r#"{{"credHelpers":{{"{}":"teutest"}}}}"#, reg.addr).as_bytes(),
    );
    let out = ok(env.teu().env("PATH", &path).args([
        "push",
        "oci:layout:v1",
        &format!("{}/helped:1", reg.addr),
    ]));
    assert_eq!(digest(&out), want);
    assert!(!all_output(&out).contains(PASSWORD));
    let calls = std::fs::read_to_string(bin.join("calls.log")).unwrap();
    assert!(calls.contains(&format!("get {}", reg.addr)), "{calls}");

    // credsStore is asked for every registry.
    crate::common::write(&config, br#"{"credsStore":"teutest"}"#);
    ok(env
        .teu()
        .env("PATH", &path)
        .args(["inspect", &format!("{}/helped:1", reg.addr)]));

    // A helper that does not know the registry means anonymous, which this registry refuses.
    crate::common::write(&config, br#"{"credsStore":"teutest"}"#);
    fake_helper(&bin, "teutest", "other.example", "carol", PASSWORD);
    let (code, err) = fails(
        env.teu()
            .env("PATH", &path)
            .args(["inspect", &format!("{}/helped:1", reg.addr)]),
    );
    assert_eq!(code, 1);
    assert!(err.contains("access denied"), "{err}");

    // podman's auth.json through $REGISTRY_AUTH_FILE wins over Docker's config.
    std::fs::remove_file(&config).unwrap();
    let auth_file = env.dir.join("podman-auth.json");
    use base64::Engine as _;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("carol:{PASSWORD}"));
    crate::common::write(
        &auth_file,
        format!(r#"{{"auths":{{"{}":{{"auth":"{token}"}}}}}}"#, reg.addr).as_bytes(),
    );
    ok(env
        .teu()
        .env("REGISTRY_AUTH_FILE", &auth_file)
        .args(["inspect", &format!("{}/helped:1", reg.addr)]));
    // And the default podman location under $XDG_RUNTIME_DIR.
    crate::common::write(
        &env.dir.join("run/containers/auth.json"),
        &std::fs::read(&auth_file).unwrap(),
    );
    ok(env
        .teu()
        .args(["inspect", &format!("{}/helped:1", reg.addr)]));
}

#[test]
fn archives_are_push_sources_read_in_place() {
    let reg = Registry::start(Auth::None);
    let env = Env::new();
    let want = app_layout(&env);
    ok(env.teu().args([
        "build",
        "plain",
        "-q",
        "-o",
        "oci-archive:img.tar:v1",
        "-o",
        "docker-archive:img-docker.tar:app:v1",
    ]));
    for (src, repo) in [
        ("oci-archive:img.tar:v1", "from-oci-archive"),
        ("docker-archive:img-docker.tar", "from-docker-archive"),
    ] {
        let out = ok(env
            .teu()
            .args(["push", src, &format!("{}/{repo}:1", reg.addr)]));
        assert_eq!(digest(&out), want, "{src}");
        ok(Command::new(tool("skopeo")).args([
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{}/{repo}:1", reg.addr),
            &format!("oci:{}:x", env.dir.join(repo).display()),
        ]));
    }
    let (code, err) = fails(env.teu().args([
        "push",
        "oci-archive:img.tar:nope",
        &format!("{}/x:1", reg.addr),
    ]));
    assert_eq!(code, 1);
    assert!(
        err.contains("no image tagged \"nope\"") && err.contains("img.tar"),
        "{err}"
    );
}

#[test]
fn usage_and_configuration_errors_are_clear() {
    let env = Env::new();
    let (code, err) =
        fails(
            env.teu()
                .args(["inspect", "localhost:1/x:1", "--ca-file", "missing.pem"]),
        );
    assert_eq!(code, 1);
    assert!(err.contains("--ca-file missing.pem"), "{err}");
    crate::common::write(&env.dir.join("junk.pem"), b"not a certificate");
    let (code, err) =
        fails(
            env.teu()
                .args(["inspect", "localhost:1/x:1", "--ca-file", "junk.pem"]),
        );
    assert_eq!(code, 1);
    assert!(err.contains("junk.pem"), "{err}");
    // Tags of a layout are its ref.names; a directory that is none is named.
    let (code, err) = fails(env.teu().args(["tags", "oci:dir"]));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("is not an OCI image layout"), "{err}");
    // teu pull writes to any local destination, and a refused connection is not retried.
    let started = std::time::Instant::now();
    let (code, err) = fails(
        env.teu()
            .args(["pull", "localhost:1/x:1", "oci-archive:x.tar"]),
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not retried"), "{err}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{err}"
    );
    let (code, err) = fails(env.teu().args(["pull", "oci:a", "localhost:1/x:1"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("local destination"), "{err}");
    let (code, err) = fails(env.teu().args([
        "push",
        "oci:a",
        "localhost:1/x",
        "--registry-profile",
        "localhost:1=nope",
    ]));
    assert_eq!(code, 2);
    assert!(err.contains("unknown profile"), "{err}");
    let (code, err) = fails(env.teu().args(["login", "localhost:1", "-u", "a"]));
    assert_eq!(code, 2, "{err}");
    // Nothing listens on port 1: the error names the registry, and a refused connection
    // is not retried (no retry can mend it).
    let (code, err) = fails(
        env.teu()
            .args(["digest", "localhost:1/x:1", "--retries", "5"]),
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("localhost:1/x") && err.contains("not retried"),
        "{err}"
    );
}

#[test]
fn multi_platform_builds_push_an_index_and_lock_pins_a_registry_base() {
    let reg = Registry::start(Auth::None);
    let env = Env::new();
    push_base(&env, &format!("{}/base:1", reg.addr), 256 << 10);
    random_file(&env.dir.join("mp/lib.bin"), 64 << 10, 11);
    crate::common::write(
        &env.dir.join("mp/teu.toml"),
        b"[[layer]]\nname = \"lib\"\ncopy = [{ src = \"lib.bin\", dest = \"/lib.bin\" }]\n",
    );
    let out = ok(env.teu().args([
        "build",
        "mp",
        "-q",
        "--platform",
        "linux/amd64",
        "--platform",
        "linux/arm64",
        "-o",
        &format!("{}/multi:1", reg.addr),
        "-o",
        "oci:multi-local:1",
    ]));
    let d = digest(&out);
    let raw = ok(Command::new(tool("skopeo")).args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{}/multi:1", reg.addr),
    ]));
    assert_eq!(format!("sha256:{}", sha256_hex(&raw.stdout)), d);
    assert!(String::from_utf8_lossy(&raw.stdout).contains("arm64"));
    // Both platforms are complete images skopeo can copy.
    for arch in ["amd64", "arm64"] {
        ok(Command::new(tool("skopeo")).args([
            "copy",
            "--src-tls-verify=false",
            "--override-arch",
            arch,
            &format!("docker://{}/multi:1", reg.addr),
            &format!("oci:{}:x", env.dir.join(format!("sk-{arch}")).display()),
        ]));
    }
    // And a copy of the index to a layout keeps its digest.
    ok(env.teu().args([
        "copy",
        "--all-platforms",
        &format!("{}/multi:1", reg.addr),
        "oci:multi-copy:1",
    ]));
    assert_eq!(
        digest(&ok(env.teu().args(["digest", "oci:multi-copy:1"]))),
        d
    );

    // teu lock pins the registry base; --locked builds on it.
    app_spec(&env, &format!("{}/base:1", reg.addr), "locked");
    ok(env.teu().args(["lock", "app"]));
    let lock = std::fs::read_to_string(env.dir.join("app/teu.lock")).unwrap();
    let base_digest = digest(&ok(env
        .teu()
        .args(["digest", &format!("{}/base:1", reg.addr)])));
    assert!(lock.contains(&base_digest), "{lock}");
    ok(env.teu().args([
        "build",
        "app",
        "-q",
        "--locked",
        "-o",
        &format!("{}/locked:1", reg.addr),
    ]));
}

/// An image built on a registry base and written to a layout names its base
/// (`org.opencontainers.image.base.name`), so pushing the layout to the base's registry
/// mounts the base layers instead of uploading them again.
#[test]
fn pushing_a_layout_mounts_the_base_it_was_built_on() {
    let reg = Registry::start(Auth::None);
    let proxy = Proxy::start(&reg.addr);
    let env = Env::new();
    push_base(&env, &format!("{}/base:1", reg.addr), 1 << 20);
    let base_layers = layer_digests(&inspect_json(&env, &format!("{}/base:1", reg.addr)));
    app_spec(&env, &format!("{}/base:1", proxy.addr), "v1");
    ok(env
        .teu()
        .args(["build", "app", "-q", "-o", "oci:layout:v1"]));
    proxy.take_log();
    ok(env.teu().args([
        "push",
        "oci:layout:v1",
        &format!("{}/elsewhere:1", proxy.addr),
    ]));
    let log = proxy.take_log();
    let mounted = mounts(&log);
    assert_eq!(mounted.len(), 2, "the base layers are mounted: {log:#?}");
    for l in &base_layers {
        assert!(
            mounted.iter().any(|m| m.path.contains(&l[7..])),
            "{l} not mounted"
        );
        assert!(
            !uploads(&log).iter().any(|u| u.path.contains(&l[7..])),
            "{l} uploaded"
        );
    }
    assert_eq!(uploads(&log).len(), 3, "lib, app and config only: {log:#?}");
}
