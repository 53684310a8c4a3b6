//! Real container engines with private state, never the machine's default sockets:
//! `dockerd` (vfs storage, no iptables, no bridge), `containerd` (its own root, state and
//! socket; CRI disabled) and podman's service (vfs, private root, runroot and tmpdir).
//! Each is stopped (SIGTERM, then SIGKILL) when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::tool;

fn wait_for(what: &str, child: &mut Child, log: &Path, ready: &mut dyn FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if ready() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{what} exited ({status}) before it was ready:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "{what} was not ready in 60 s:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn log_file(dir: &Path, name: &str) -> (PathBuf, Stdio, Stdio) {
    let p = dir.join(name);
    let f = std::fs::File::create(&p).unwrap();
    (p, Stdio::from(f.try_clone().unwrap()), Stdio::from(f))
}

/// A private dockerd.
pub struct Dockerd {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    child: Child,
}

impl Dockerd {
    pub fn start() -> Dockerd {
        Dockerd::start_with(&[])
    }

    /// Start with extra dockerd arguments (`--config-file`, `--registry-mirror`).
    pub fn start_with(extra: &[&std::ffi::OsStr]) -> Dockerd {
        let dir = tempfile::Builder::new()
            .prefix("teu-dockerd")
            .tempdir()
            .unwrap();
        let d = dir.path();
        let socket = d.join("docker.sock");
        let (log, out, err) = log_file(d, "dockerd.log");
        let mut child = Command::new(tool("dockerd"))
            .arg("--data-root")
            .arg(d.join("root"))
            .arg("--exec-root")
            .arg(d.join("exec"))
            .arg("--pidfile")
            .arg(d.join("docker.pid"))
            .arg("-H")
            .arg(format!("unix://{}", socket.display()))
            .args([
                "--storage-driver",
                "vfs",
                "--iptables=false",
                "--ip6tables=false",
                "--bridge=none",
                "--ip-masq=false",
            ])
            .args(extra)
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap();
        let host = format!("unix://{}", socket.display());
        wait_for("dockerd", &mut child, &log, &mut || {
            socket.exists()
                && Command::new(tool("docker"))
                    .env("DOCKER_HOST", &host)
                    .args(["version", "--format", "{{.Server.Version}}"])
                    .output()
                    .is_ok_and(|o| o.status.success())
        });
        Dockerd { dir, socket, child }
    }

    /// `unix://SOCKET`, for `DOCKER_HOST`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// The docker client, talking to this dockerd.
    pub fn docker(&self) -> Command {
        let mut c = Command::new(tool("docker"));
        c.env("DOCKER_HOST", self.host());
        c
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// A private containerd.
pub struct Containerd {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    child: Child,
}

impl Containerd {
    pub fn start() -> Containerd {
        let dir = tempfile::Builder::new()
            .prefix("teu-ctrd")
            .tempdir()
            .unwrap();
        let d = dir.path();
        let socket = d.join("containerd.sock");
        let config = format!(
            "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{sock}\"\n[ttrpc]\n  address = \"{sock}.ttrpc\"\n\
             [debug]\n  address = \"{debug}\"\n[metrics]\n  address = \"\"\n",
            root = d.join("root").display(),
            state = d.join("state").display(),
            sock = socket.display(),
            debug = d.join("debug.sock").display(),
        );
        std::fs::write(d.join("config.toml"), config).unwrap();
        let (log, out, err) = log_file(d, "containerd.log");
        let mut child = Command::new(tool("containerd"))
            .arg("--config")
            .arg(d.join("config.toml"))
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap();
        wait_for("containerd", &mut child, &log, &mut || {
            socket.exists()
                && Command::new(tool("ctr"))
                    .arg("--address")
                    .arg(&socket)
                    .arg("version")
                    .output()
                    .is_ok_and(|o| o.status.success())
        });
        Containerd { dir, socket, child }
    }

    /// `ctr` in namespace `ns` of this containerd.
    pub fn ctr(&self, ns: &str) -> Command {
        let mut c = Command::new(tool("ctr"));
        c.arg("--address").arg(&self.socket).args(["-n", ns]);
        c
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// podman with private storage, and its service on a private socket.
pub struct Podman {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    child: Child,
}

impl Podman {
    fn global(d: &Path, c: &mut Command) {
        c.args(["--storage-driver", "vfs", "--root"])
            .arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("run"))
            .args(["--cgroup-manager", "cgroupfs", "--events-backend", "file"])
            .arg("--tmpdir")
            .arg(d.join("tmp"));
    }

    pub fn start() -> Podman {
        let dir = tempfile::Builder::new()
            .prefix("teu-podman")
            .tempdir()
            .unwrap();
        let d = dir.path();
        let socket = d.join("podman.sock");
        let (log, out, err) = log_file(d, "podman.log");
        let mut c = Command::new(tool("podman"));
        Self::global(d, &mut c);
        let mut child = c
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", socket.display()))
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap();
        let s = socket.clone();
        wait_for("podman system service", &mut child, &log, &mut || {
            std::os::unix::net::UnixStream::connect(&s).is_ok()
        });
        Podman { dir, socket, child }
    }

    /// `unix://SOCKET`, for `CONTAINER_HOST`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// The podman command on the same storage.
    pub fn podman(&self) -> Command {
        let mut c = Command::new(tool("podman"));
        Self::global(self.dir.path(), &mut c);
        c
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// A unix-socket proxy in front of an engine's socket that counts the bytes clients send
/// (requests and bodies, HTTP or gRPC framing included): what reached the engine,
/// measured outside teu.
pub struct CountingProxy {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    up: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl CountingProxy {
    pub fn start(upstream: &Path) -> CountingProxy {
        use std::os::unix::net::{UnixListener, UnixStream};
        use std::sync::atomic::{AtomicU64, Ordering};
        use std::sync::Arc;
        let dir = tempfile::Builder::new()
            .prefix("teu-count")
            .tempdir()
            .unwrap();
        let socket = dir.path().join("proxy.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let up = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&up);
        let upstream = upstream.to_path_buf();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { break };
                let Ok(server) = UnixStream::connect(&upstream) else {
                    continue;
                };
                let counter = Arc::clone(&counter);
                let (mut c_r, mut s_w) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 1 << 16];
                    loop {
                        use std::io::{Read, Write};
                        match c_r.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                counter.fetch_add(n as u64, Ordering::SeqCst);
                                if s_w.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                            }
                        }
                    }
                    let _ = s_w.shutdown(std::net::Shutdown::Write);
                });
                let (mut s_r, mut c_w) = (server, client);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut s_r, &mut c_w);
                    let _ = c_w.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        CountingProxy { dir, socket, up }
    }

    /// Bytes clients have sent so far.
    pub fn sent(&self) -> u64 {
        self.up.load(std::sync::atomic::Ordering::SeqCst)
    }
}
