//! A real CNCF distribution registry on a free loopback port, and a recording,
//! fault-injecting HTTP proxy to put in front of it. The proxy speaks just enough
//! HTTP/1.1 for registry clients: one request per connection (it answers
//! `Connection: close`), bodies by Content-Length.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::tool;

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub enum Auth {
    None,
    /// htpasswd basic auth with this user and password.
    Basic(String, String),
    /// Token auth: the registry trusts `cert`; the token server at `realm` signs with its key.
    Token {
        realm: String,
        cert: PathBuf,
    },
}

/// A running `docker-registry`; killed on drop.
pub struct Registry {
    pub addr: String,
    pub dir: tempfile::TempDir,
    child: Child,
}

impl Registry {
    pub fn start(auth: Auth) -> Registry {
        let bin = tool("docker-registry");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let auth_yaml = match &auth {
            Auth::None => String::new(),
            Auth::Basic(user, pass) => {
                let out = Command::new(tool("htpasswd"))
                    .args(["-Bbn", user, pass])
                    .output()
                    .unwrap();
                assert!(out.status.success());
                let f = dir.path().join("htpasswd");
                std::fs::write(&f, &out.stdout).unwrap();
                format!(
                    "auth:\n  htpasswd:\n    realm: teu-test\n    path: {}\n",
                    f.display()
                )
            }
            Auth::Token { realm, cert } => format!(
                "auth:\n  token:\n    realm: {realm}\n    service: teu-test-registry\n    issuer: teu-test-issuer\n    rootcertbundle: {}\n",
                cert.display()
            ),
        };
        let config = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n{auth_yaml}",
            dir.path().join("data").display()
        );
        let cfg = dir.path().join("config.yml");
        std::fs::write(&cfg, config).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new(bin)
            .arg("serve")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let r = Registry { addr, dir, child };
        r.wait_ready();
        r
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(mut s) = TcpStream::connect(&self.addr) {
                let _ = s.write_all(b"GET /v2/ HTTP/1.0\r\n\r\n");
                let mut buf = [0u8; 12];
                if s.read_exact(&mut buf).is_ok() && buf.starts_with(b"HTTP/1.") {
                    return;
                }
            }
            thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "the registry did not start; its log:\n{}",
            std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
        );
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request the proxy saw.
#[derive(Clone, Debug)]
pub struct Exchange {
    pub method: String,
    pub path: String,
    pub status: u16,
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub fault: Option<String>,
}

/// What the proxy does to a request that matches.
#[derive(Clone, Debug)]
pub enum FaultKind {
    /// Answer this status without asking the registry, with an optional Retry-After.
    Status(u16, Option<u64>),
    /// Forward, then send the response head and a quarter of the body and drop the
    /// connection (std has no stable SO_LINGER, so this is an abrupt close, not an RST).
    ResetMidBody,
    /// Forward, then send the head (with the full Content-Length) and half the body, and close.
    Truncate,
    /// 429 with Docker Hub's rate-limit headers and no Retry-After.
    RateLimited,
    /// Forward, but report this status instead of the registry's (ECR's 201 on PATCH).
    RewriteStatus(u16),
    /// Forward, then close the connection without answering.
    DropResponse,
    /// Wait this long before forwarding (a long wait is a hung upstream).
    Slow(Duration),
    /// Forward, but flip one byte in the middle of the body.
    CorruptByte,
    /// Forward, but send the body without Content-Length (it ends when the connection
    /// closes), with one byte flipped in the middle if `corrupt`.
    NoContentLength { corrupt: bool },
    /// Answer 200 with this body, no Content-Length, without asking the registry.
    Unsized(Vec<u8>),
}

#[derive(Clone, Debug)]
pub struct Fault {
    pub method: &'static str,
    /// A substring of the path (`/blobs/uploads/`, `/manifests/`).
    pub path: String,
    pub kind: FaultKind,
    /// How many matching requests to hit; each hit decrements.
    pub times: u32,
}

pub struct Proxy {
    pub addr: String,
    pub log: Arc<Mutex<Vec<Exchange>>>,
    pub faults: Arc<Mutex<Vec<Fault>>>,
    /// Response bodies go out at most this many bytes per second per connection.
    pub throttle: Arc<Mutex<Option<u64>>>,
    /// While set, every request is answered by closing the connection: the upstream is down.
    pub down: Arc<std::sync::atomic::AtomicBool>,
}

impl Proxy {
    pub fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let log = Arc::new(Mutex::new(Vec::new()));
        let faults: Arc<Mutex<Vec<Fault>>> = Arc::new(Mutex::new(Vec::new()));
        let throttle: Arc<Mutex<Option<u64>>> = Arc::new(Mutex::new(None));
        let down = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (l, f, up) = (log.clone(), faults.clone(), upstream.to_string());
        let (t, dn) = (throttle.clone(), down.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                if dn.load(std::sync::atomic::Ordering::SeqCst) {
                    drop(conn);
                    continue;
                }
                let (l, f, up) = (l.clone(), f.clone(), up.clone());
                let rate = *t.lock().unwrap();
                thread::spawn(move || {
                    let _ = handle(conn, &up, &l, &f, rate);
                });
            }
        });
        Proxy {
            addr,
            log,
            faults,
            throttle,
            down,
        }
    }

    /// Limit each response body to `bytes_per_sec` (None: full speed).
    pub fn set_throttle(&self, bytes_per_sec: Option<u64>) {
        *self.throttle.lock().unwrap() = bytes_per_sec;
    }

    /// Refuse (close) every connection while `down`.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, std::sync::atomic::Ordering::SeqCst);
    }

    /// Response body bytes sent for requests whose path contains `path`.
    pub fn bytes_down(&self, path: &str) -> u64 {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.path.contains(path))
            .map(|e| e.bytes_down)
            .sum()
    }

    pub fn fault(&self, method: &'static str, path: &str, kind: FaultKind, times: u32) {
        self.faults.lock().unwrap().push(Fault {
            method,
            path: path.to_string(),
            kind,
            times,
        });
    }

    pub fn take_log(&self) -> Vec<Exchange> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }

    pub fn faults_left(&self) -> u32 {
        self.faults.lock().unwrap().iter().map(|f| f.times).sum()
    }
}

fn read_head(r: &mut impl BufRead) -> std::io::Result<Vec<String>> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let line = line.trim_end_matches(['\r', '\n']).to_string();
        if line.is_empty() {
            return Ok(lines);
        }
        lines.push(line);
    }
}

fn content_length(head: &[String]) -> Option<u64> {
    head.iter().skip(1).find_map(|h| {
        let (k, v) = h.split_once(':')?;
        k.eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse().ok())
            .flatten()
    })
}

fn handle(
    client: TcpStream,
    upstream: &str,
    log: &Mutex<Vec<Exchange>>,
    faults: &Mutex<Vec<Fault>>,
    rate: Option<u64>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut client_w = client;
    let head = read_head(&mut reader)?;
    let mut parts = head[0].split(' ');
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut body = Vec::new();
    if let Some(n) = content_length(&head) {
        (&mut reader).take(n).read_to_end(&mut body)?;
    }
    let fault = {
        let mut fs = faults.lock().unwrap();
        let hit = fs
            .iter_mut()
            .find(|f| f.times > 0 && f.method == method && path.contains(&f.path));
        hit.map(|f| {
            f.times -= 1;
            f.kind.clone()
        })
    };
    let mut record = Exchange {
        method: method.clone(),
        path: path.clone(),
        status: 0,
        bytes_up: body.len() as u64,
        bytes_down: 0,
        fault: fault.as_ref().map(|f| format!("{f:?}")),
    };
    let status = match &fault {
        Some(FaultKind::Status(code, ra)) => Some((
            *code,
            ra.map(|s| format!("Retry-After: {s}\r\n")).unwrap_or_default(),
        )),
        Some(FaultKind::RateLimited) => Some((
            429,
            "ratelimit-limit: 100;w=21600\r\nratelimit-remaining: 0;w=21600\r\ndocker-ratelimit-source: 127.0.0.1\r\n".to_string(),
        )),
        _ => None,
    };
    if let Some(FaultKind::Unsized(b)) = &fault {
        record.status = 200;
        record.bytes_down = b.len() as u64;
        log.lock().unwrap().push(record);
        write!(
            client_w,
            "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nConnection: close\r\n\r\n"
        )?;
        client_w.write_all(b)?;
        let _ = client_w.shutdown(std::net::Shutdown::Both);
        return Ok(());
    }
    if let Some((code, ra)) = status {
        let msg =
            br#"{"errors":[{"code":"TOOMANYREQUESTS","message":"injected by the test proxy"}]}"#;
        // Logged before answering, so a test that reads the log after its client has the
        // answer always finds it.
        record.status = code;
        log.lock().unwrap().push(record);
        write!(
            client_w,
            "HTTP/1.1 {code} Injected\r\n{ra}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            msg.len()
        )?;
        client_w.write_all(msg)?;
        return Ok(());
    }
    if let Some(FaultKind::Slow(d)) = &fault {
        thread::sleep(*d);
    }
    let mut up = TcpStream::connect(upstream)?;
    let mut req = format!("{}\r\n", head[0]);
    for h in head.iter().skip(1) {
        let k = h.split(':').next().unwrap_or("");
        if !k.eq_ignore_ascii_case("connection") {
            req.push_str(h);
            req.push_str("\r\n");
        }
    }
    req.push_str("Connection: close\r\n\r\n");
    up.write_all(req.as_bytes())?;
    up.write_all(&body)?;
    if let Some(FaultKind::DropResponse) = &fault {
        // Let the registry finish the request, then hang up on the client.
        let mut sink = Vec::new();
        let _ = up.read_to_end(&mut sink);
        record.status = 0;
        log.lock().unwrap().push(record);
        return Ok(());
    }
    let mut up_reader = BufReader::new(up);
    let rhead = read_head(&mut up_reader)?;
    let mut rbody = Vec::new();
    match content_length(&rhead) {
        Some(n) if method != "HEAD" => {
            (&mut up_reader).take(n).read_to_end(&mut rbody)?;
        }
        Some(_) => {}
        None => {
            up_reader.read_to_end(&mut rbody)?;
        }
    }
    record.status = rhead[0]
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let status_line = match &fault {
        Some(FaultKind::RewriteStatus(code)) => format!("HTTP/1.1 {code} Rewritten"),
        _ => rhead[0].clone(),
    };
    let no_length = matches!(&fault, Some(FaultKind::NoContentLength { .. }));
    let mut out = format!("{status_line}\r\n");
    for h in rhead.iter().skip(1) {
        let k = h.split(':').next().unwrap_or("");
        if no_length && k.eq_ignore_ascii_case("content-length") {
            continue;
        }
        if !k.eq_ignore_ascii_case("connection") && !k.eq_ignore_ascii_case("transfer-encoding") {
            out.push_str(h);
            out.push_str("\r\n");
        }
    }
    if content_length(&rhead).is_none() && !no_length {
        out.push_str(&format!("Content-Length: {}\r\n", rbody.len()));
    }
    out.push_str("Connection: close\r\n\r\n");
    client_w.write_all(out.as_bytes())?;
    if let Some(FaultKind::CorruptByte | FaultKind::NoContentLength { corrupt: true }) = &fault {
        if !rbody.is_empty() {
            let mid = rbody.len() / 2;
            rbody[mid] ^= 0x5a;
        }
    }
    let send = match &fault {
        Some(FaultKind::ResetMidBody) => &rbody[..rbody.len() / 4],
        Some(FaultKind::Truncate) => &rbody[..rbody.len() / 2],
        _ => &rbody[..],
    };
    // Counted as it goes, so a client that hangs up mid-body is still accounted for.
    let mut sent = 0usize;
    let started = Instant::now();
    let piece = rate.map_or(send.len().max(1), |r| (r / 20).max(1) as usize);
    let mut result = Ok(());
    for chunk in send.chunks(piece) {
        if let Err(e) = client_w.write_all(chunk) {
            result = Err(e);
            break;
        }
        sent += chunk.len();
        if let Some(r) = rate {
            let due = Duration::from_secs_f64(sent as f64 / r as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                thread::sleep(wait);
            }
        }
    }
    record.bytes_down = sent as u64;
    if let Err(e) = result {
        log.lock().unwrap().push(record);
        return Err(e);
    }
    log.lock().unwrap().push(record);
    client_w.flush()?;
    let _ = client_w.shutdown(std::net::Shutdown::Both);
    Ok(())
}

/// Blob uploads in a log: `(digest or "chunk", bytes)` of every PUT/PATCH that carried bytes.
pub fn uploads(log: &[Exchange]) -> Vec<&Exchange> {
    log.iter()
        .filter(|e| {
            (e.method == "PUT" || e.method == "PATCH")
                && e.path.contains("/blobs/uploads/")
                && e.bytes_up > 0
        })
        .collect()
}

/// Completed mounts (201 to a POST with mount=).
pub fn mounts(log: &[Exchange]) -> Vec<&Exchange> {
    log.iter()
        .filter(|e| e.method == "POST" && e.path.contains("mount=") && e.status == 201)
        .collect()
}

/// Blob downloads (GETs of /blobs/sha256:…), with their digests.
pub fn blob_gets(log: &[Exchange]) -> Vec<String> {
    log.iter()
        .filter(|e| e.method == "GET" && e.path.contains("/blobs/sha256:"))
        .map(|e| e.path.rsplit('/').next().unwrap_or("").to_string())
        .collect()
}

pub fn teu_home(dir: &Path) -> PathBuf {
    dir.join("teu-home")
}
