//! `teu serve` from the command line: a real server on a free loopback port, pushed to by
//! `teu build` and read by skopeo; SIGTERM stops it cleanly; gc and config errors.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::registry::free_port;
use crate::common::{digest, example_dir, fails, ok, teu, tool};

struct Serve {
    child: Child,
    addr: String,
}

impl Serve {
    fn start(home: &std::path::Path, extra: &[&str]) -> Serve {
        let addr = format!("127.0.0.1:{}", free_port());
        let log = std::fs::File::create(home.with_extension("log")).unwrap();
        let child = teu(home)
            .args(["serve", "--listen", &addr])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "teu serve did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Serve { child, addr }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn build_pushes_to_teu_serve_and_skopeo_reads_it() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let mut s = Serve::start(&home, &[]);
    let out = ok(teu(&home)
        .env("DOCKER_CONFIG", tmp.path())
        .arg("build")
        .arg(example_dir())
        .arg("-o")
        .arg(format!("{}/hello:1", s.addr)));
    let d = digest(&out);
    let inspect = ok(Command::new(tool("skopeo"))
        .args(["inspect", "--tls-verify=false"])
        .arg(format!("docker://{}/hello:1", s.addr)));
    let v: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(v["Digest"], d);
    assert_eq!(v["Architecture"], "amd64");
    // The default storage is $TEU_HOME/registry.
    assert!(home.join("registry/blobs/sha256").join(&d[7..]).is_file());
    let tags = ok(teu(&home).args(["tags", &format!("{}/hello", s.addr)]));
    assert!(String::from_utf8_lossy(&tags.stdout).contains('1'));

    // SIGTERM: a clean stop, exit 0.
    ok(Command::new("kill").args(["-TERM", &s.child.id().to_string()]));
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = s.child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "teu serve ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");

    // gc on the stopped store: the image's blobs are all referenced.
    let out = ok(teu(&home).args(["serve", "gc", "--grace", "0s", "--json"]));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["blobs_removed"], 0, "{r}");
    assert_eq!(r["manifests"], 1, "{r}");
}

#[test]
fn config_errors_are_usage_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("teu-serve.toml");
    std::fs::write(&cfg, "listen = \"127.0.0.1:0\"\nstorag = \"/tmp/x\"\n").unwrap();
    let (code, err) = fails(teu(tmp.path()).args(["serve", "--config"]).arg(&cfg));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("unknown field"), "{err}");
    // Refused while the settings are checked, before anything is bound.
    let (code, err) = fails(
        teu(tmp.path())
            .args(["serve", "--listen", "0.0.0.0:0", "--storage"])
            .arg(tmp.path()),
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("non-loopback"), "{err}");
    let help = ok(teu(tmp.path()).args(["serve", "--help"]));
    assert!(String::from_utf8_lossy(&help.stdout).contains("teu serve gc"));
}

// ---- The pull-through cache (issue 11) ----

#[test]
fn serve_proxies_an_upstream_for_teu_pull() {
    use crate::common::registry::{Auth, Proxy, Registry};
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let reg = Registry::start(Auth::None);
    let proxy = Proxy::start(&reg.addr);
    let out = ok(teu(&home)
        .env("DOCKER_CONFIG", tmp.path())
        .arg("build")
        .arg(example_dir())
        .arg("-o")
        .arg(format!("{}/library/hello:1", reg.addr)));
    let d = digest(&out);
    let cfg = tmp.path().join("teu-serve.toml");
    std::fs::write(
        &cfg,
        format!(
            "storage = {:?}\n[[upstream]]\nname = \"docker.io\"\nurl = \"http://{}\"\ntag_ttl = \"1m\"\n",
            tmp.path().join("cache").display().to_string(),
            proxy.addr
        ),
    )
    .unwrap();
    let s = Serve::start(&home, &["--config", cfg.to_str().unwrap()]);
    proxy.take_log();
    // teu reads through the cache by path prefix, Docker Hub short name included.
    let image = format!("{}/docker.io/hello:1", s.addr);
    assert_eq!(digest(&ok(teu(&home).args(["digest", &image]))), d);
    let layout = tmp.path().join("out");
    ok(teu(&home)
        .args(["pull", &image])
        .arg(format!("oci:{}:1", layout.display())));
    assert!(layout.join("index.json").exists());
    // The proxy logs an exchange just after its last write: let it.
    std::thread::sleep(Duration::from_millis(200));
    let cold = proxy.take_log();
    assert!(!cold.is_empty());
    // Warm, within the TTL: the upstream sees nothing.
    ok(teu(&home)
        .args(["pull", &image])
        .arg(format!("oci:{}:1", tmp.path().join("again").display())));
    std::thread::sleep(Duration::from_millis(200));
    let warm = proxy.take_log();
    assert!(warm.is_empty(), "{warm:#?}");
}

#[test]
fn serve_upstream_config_errors_name_the_field() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("teu-serve.toml");
    for (entry, field) in [
        ("name = \"docker.io\"\nurl = \"ftp://x\"", "upstream[0].url"),
        (
            "name = \"docker.io\"\nurl = \"http://x\"\ntag_ttl = \"soon\"",
            "upstream[0].tag_ttl",
        ),
        (
            "name = \"ghcr.io\"\nurl = \"http://x\"\nusername = \"u\"\npassword_env = \"TEU_TEST_SERVE_PASSWORD_NEVER_SET\"",
            "upstream[0].password_env",
        ),
        (
            "name = \"docker.io\"\nurl = \"http://x\"\ntimeout = \"0s\"",
            "upstream[0].timeout",
        ),
        (
            "name = \"index.docker.io\"\nurl = \"http://x\"",
            "upstream[0].name",
        ),
    ] {
        std::fs::write(
            &cfg,
            format!(
                "storage = {:?}\n[[upstream]]\n{entry}\n",
                tmp.path().join("s").display().to_string()
            ),
        )
        .unwrap();
        let (code, err) = fails(
            teu(tmp.path())
                .args(["serve", "--listen", "127.0.0.1:0", "--config"])
                .arg(&cfg),
        );
        assert_eq!(code, 2, "{err}");
        assert!(err.contains(field), "{err}");
    }
}
