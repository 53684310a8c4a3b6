//! Real components for the tests: the registry as a child process (`teu-serve-child`),
//! one SeaweedFS per test process on free loopback ports, and a small blocking client.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use sha2::Digest as _;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

pub use teu_testkit::tool;

/// SeaweedFS's `weed`: `$TEU_WEED`, the venv scripts/test makes, or PATH.
fn weed() -> PathBuf {
    if let Some(p) = std::env::var_os("TEU_WEED") {
        return PathBuf::from(p);
    }
    let venv = repo_root().join("target/seaweedfs-venv/bin/weed");
    if venv.is_file() {
        return venv;
    }
    tool("weed")
}

static PORTS: Mutex<Vec<u16>> = Mutex::new(Vec::new());

/// A free loopback port, never handed out twice in one test process. Kept below 50000
/// because SeaweedFS also opens each port + 10000 for gRPC.
pub fn free_port() -> u16 {
    loop {
        let p = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut used = PORTS.lock().unwrap();
        if p < 50000 && !used.contains(&p) && TcpListener::bind(("127.0.0.1", p + 10000)).is_ok() {
            used.push(p);
            return p;
        }
    }
}

pub fn sha256(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(b)))
}

pub fn sha512(b: &[u8]) -> String {
    format!("sha512:{}", hex::encode(sha2::Sha512::digest(b)))
}

fn wait_http(addr: &str, what: &str, log: &Path) {
    wait_listening(addr, what, log, true)
}

/// Wait until `addr` accepts connections (and, with `http`, answers plain HTTP).
fn wait_listening(addr: &str, what: &str, log: &Path, http: bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(mut s) = TcpStream::connect(addr) {
            if !http {
                return;
            }
            let _ = s.write_all(b"GET / HTTP/1.0\r\n\r\n");
            let mut buf = [0u8; 8];
            if s.read_exact(&mut buf).is_ok() && buf.starts_with(b"HTTP/1.") {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "{what} did not start; its log:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

pub const S3_KEY: &str = "teuaccess";
pub const S3_SECRET: &str = "teusecret";
pub const BUCKET: &str = "teu";

/// One SeaweedFS for the whole test process. It runs under a shell that kills it when our
/// end of its stdin closes, which happens when this process exits however it exits.
pub struct Seaweed {
    pub endpoint: String,
    _dir: tempfile::TempDir,
    _guard: Mutex<(Child, ChildStdin)>,
}

pub fn seaweed() -> &'static Seaweed {
    static S: OnceLock<Seaweed> = OnceLock::new();
    S.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("s3.json");
        std::fs::write(
            &cfg,
            format!(
                r#"{{"identities":[{{"name":"teu","credentials":[{{"accessKey":"{S3_KEY}","secretKey":"{S3_SECRET}"}}],"actions":["Admin","Read","Write","List","Tagging"]}}]}}"#
            ),
        )
        .unwrap();
        let [master, volume, filer, s3, admin] = [(); 5].map(|_| free_port());
        let log = dir.path().join("weed.log");
        let cmd = format!(
            "{} mini -dir={} -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.port={master} -volume.port={volume} \
             -filer.port={filer} -s3.port={s3} -admin.port={admin} -s3.port.iceberg=0 -s3.port.lance=0 \
             -webdav=false -admin.ui=false -master.telemetry=false -s3.config={} >{} 2>&1 & pid=$!; \
             read _; kill $pid; wait",
            weed().display(),
            dir.path().join("data").display(),
            cfg.display(),
            log.display()
        );
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        let mut child = Command::new("sh")
            .args(["-c", &cmd])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let endpoint = format!("http://127.0.0.1:{s3}");
        wait_http(&format!("127.0.0.1:{s3}"), "SeaweedFS", &log);
        // Create the bucket (S3 CreateBucket, SigV4-signed by curl); retried while the
        // filer finishes starting.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = Command::new(tool("curl"))
                .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--aws-sigv4", "aws:amz:us-east-1:s3"])
                .arg("--user")
                .arg(format!("{S3_KEY}:{S3_SECRET}"))
                .args(["-X", "PUT"])
                .arg(format!("{endpoint}/{BUCKET}"))
                .output()
                .unwrap();
            if out.stdout == b"200" || out.stdout == b"409" {
                break;
            }
            assert!(Instant::now() < deadline, "creating the bucket failed: {:?}\n{}", out, std::fs::read_to_string(&log).unwrap_or_default());
            std::thread::sleep(Duration::from_millis(200));
        }
        Seaweed {
            endpoint,
            _dir: dir,
            _guard: Mutex::new((child, stdin)),
        }
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Fs,
    S3,
}

/// Where a server keeps its data; shared by servers started from the same `Storage`.
pub struct Storage {
    pub dir: tempfile::TempDir,
    /// The config lines that select the storage: top-level keys, then tables.
    pub toml: String,
    tables: String,
}

impl Storage {
    pub fn new(backend: Backend) -> Storage {
        let dir = tempfile::tempdir().unwrap();
        let (toml, tables) = match backend {
            Backend::Fs => (
                format!(
                    "storage = {:?}\n",
                    dir.path().join("data").display().to_string()
                ),
                String::new(),
            ),
            Backend::S3 => {
                let s = seaweed();
                static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
                let prefix = format!(
                    "t{}-{}",
                    std::process::id(),
                    N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                );
                (
                    format!("storage = \"s3://{BUCKET}/{prefix}\"\n"),
                    format!(
                        "[s3]\nendpoint = {:?}\nregion = \"us-east-1\"\naccess_key_id = \"{S3_KEY}\"\nsecret_access_key = \"{S3_SECRET}\"\n",
                        s.endpoint
                    ),
                )
            }
        };
        Storage { dir, toml, tables }
    }

    /// The whole storage config, as a `teu_serve::Config` reads it.
    pub fn config(&self) -> String {
        format!("{}{}", self.toml, self.tables)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

/// A running registry (child process); killed on drop.
pub struct Server {
    pub addr: String,
    pub base: String,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    tls: bool,
    env: Vec<(String, String)>,
}

impl Server {
    pub fn start(storage: &Storage) -> Server {
        Server::start_with(storage, "")
    }

    /// Start with extra config lines (top-level keys first, then tables of their own).
    pub fn start_with(storage: &Storage, extra: &str) -> Server {
        Server::start_with_env(storage, extra, &[])
    }

    /// Start with extra config lines and environment variables for the server process.
    pub fn start_with_env(storage: &Storage, extra: &str, env: &[(&str, &str)]) -> Server {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let n = std::fs::read_dir(storage.dir.path()).unwrap().count();
        let config = storage.dir.path().join(format!("server{n}.toml"));
        let log = storage.dir.path().join(format!("server{n}.log"));
        std::fs::write(
            &config,
            format!(
                "listen = \"{addr}\"\n{}{extra}\n{}",
                storage.toml, storage.tables
            ),
        )
        .unwrap();
        let mut s = Server {
            base: format!("http://{addr}"),
            addr,
            config,
            log,
            child: None,
            tls: extra.contains("tls_cert"),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_teu-serve-child"))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        wait_listening(&self.addr, "teu serve", &self.log, !self.tls);
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then wait for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        let st = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        c.wait().unwrap()
    }

    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

pub type Resp = reqwest::blocking::Response;

pub fn hdr(r: &Resp, name: &str) -> String {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

/// The first error code of a JSON error body.
pub fn code(r: Resp) -> String {
    let v: serde_json::Value = r.json().unwrap_or_default();
    v["errors"][0]["code"].as_str().unwrap_or("").to_string()
}

/// Push a blob monolithically (POST then PUT); returns its digest.
pub fn push_blob(s: &Server, repo: &str, bytes: &[u8]) -> String {
    let c = client();
    let d = sha256(bytes);
    let r = c
        .post(s.url(&format!("/v2/{repo}/blobs/uploads/")))
        .send()
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().unwrap());
    let loc = hdr(&r, "location");
    let r = c
        .put(s.url(&format!("{loc}?digest={d}")))
        .body(bytes.to_vec())
        .send()
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().unwrap());
    d
}

/// An image manifest over `config` and `layers` (digests and sizes from the bytes).
pub fn manifest(config: &[u8], layers: &[&[u8]], extra: serde_json::Value) -> Vec<u8> {
    let mut m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(config), "size": config.len()},
        "layers": layers.iter().map(|l| serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha256(l), "size": l.len()
        })).collect::<Vec<_>>(),
    });
    if let serde_json::Value::Object(e) = extra {
        m.as_object_mut().unwrap().extend(e);
    }
    serde_json::to_vec(&m).unwrap()
}

pub fn put_manifest(s: &Server, repo: &str, reference: &str, body: &[u8]) -> Resp {
    client()
        .put(s.url(&format!("/v2/{repo}/manifests/{reference}")))
        .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        .body(body.to_vec())
        .send()
        .unwrap()
}

/// Push config + layers + manifest under `tag`; returns the manifest digest.
pub fn push_image(s: &Server, repo: &str, tag: &str, config: &[u8], layers: &[&[u8]]) -> String {
    push_blob(s, repo, config);
    for l in layers {
        push_blob(s, repo, l);
    }
    let m = manifest(config, layers, serde_json::json!({}));
    let r = put_manifest(s, repo, tag, &m);
    assert_eq!(r.status(), 201, "{}", r.text().unwrap());
    sha256(&m)
}

/// Every blob under a filesystem store hashes to its name.
pub fn assert_fs_blobs_intact(data: &Path) {
    for alg in ["sha256", "sha512"] {
        let dir = data.join("blobs").join(alg);
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(".tmp-") {
                continue;
            }
            let bytes = std::fs::read(e.path()).unwrap();
            let got = if alg == "sha256" {
                sha256(&bytes)
            } else {
                sha512(&bytes)
            };
            assert_eq!(
                got,
                format!("{alg}:{name}"),
                "corrupt blob {}",
                e.path().display()
            );
        }
    }
}
