//! The harness teu's test suites share: real servers on loopback, never mocks.
//!
//! - [`registry`]: the CNCF distribution registry (`docker-registry`) on a free port with
//!   private storage and the auth setups teu supports, and a recording, fault-injecting
//!   HTTP proxy to put in front of it (429, 5xx, resets, truncation, slowness).
//! - [`token_server`]: a bearer-token server for the registry's token auth.
//! - [`estargz_verifier`]: the Go program that checks eStargz blobs with the upstream
//!   library (Debian's Go and library package), built on first use.
//! - [`tool`]: the path of a real tool; a missing one fails the test (scripts/test
//!   installs them), so nothing is skipped silently.

use std::path::PathBuf;

pub mod engines;
pub mod registry;
pub mod token_server;

/// The path of a real tool. A missing tool fails the test: nothing is skipped silently.
#[track_caller]
pub fn tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let p = dir.join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!("{name} is not installed: run scripts/test, which installs the tools the tests use");
}

/// The eStargz verifier (`go/estargz-verify`, a small program of teu's own against the
/// upstream Go `estargz` library that Debian packages), built once per process with
/// Debian's Go in GOPATH mode, offline, into `dir`. Missing Go or library sources fail
/// the test, like any missing tool.
#[track_caller]
pub fn estargz_verifier(dir: &std::path::Path) -> PathBuf {
    static BUILT: std::sync::Mutex<Option<PathBuf>> = std::sync::Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = built.as_ref() {
        return p.clone();
    }
    let go = tool("go");
    let lib = std::path::Path::new(
        "/usr/share/gocode/src/github.com/containerd/stargz-snapshotter/estargz",
    );
    assert!(
        lib.is_dir(),
        "{} is missing: run scripts/test, which installs golang-github-containerd-stargz-snapshotter-dev",
        lib.display()
    );
    let gopath = dir.join("estargz-verify-gopath");
    let src = gopath.join("src/estargz-verify");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(
        src.join("main.go"),
        include_str!("../go/estargz-verify/main.go"),
    )
    .unwrap();
    let bin = dir.join("estargz-verify");
    let out = std::process::Command::new(go)
        .current_dir(&src)
        .env("GOPATH", format!("{}:/usr/share/gocode", gopath.display()))
        .env("GO111MODULE", "off")
        .env("GOFLAGS", "")
        .env("GOCACHE", dir.join("estargz-verify-gocache"))
        .env("GOPROXY", "off")
        .args(["build", "-o"])
        .arg(&bin)
        .arg(".")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "building the eStargz verifier failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    *built = Some(bin.clone());
    bin
}
