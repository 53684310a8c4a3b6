//! Progress on stderr: bars under a terminal that appear while the build runs, JSON lines
//! that all parse, and a stdout that holds the digest alone whatever the mode.

use crate::common::*;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A layer big enough to take a second or more to build: poorly compressible bytes.
fn big_app(dir: &Path) {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for i in 0..4 {
        let body: Vec<u8> = (0..24 << 20)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect();
        write(&dir.join(format!("app/f{i}")), &body);
    }
}

/// The teu command line as a shell string (for `script -c`).
fn teu_line(home: &Path, args: &str) -> String {
    format!(
        "env TEU_HOME={} {} {args}",
        home.display(),
        env!("CARGO_BIN_EXE_teu")
    )
}

#[test]
fn a_terminal_sees_bars_before_the_build_ends() {
    let t = tempfile::tempdir().unwrap();
    big_app(t.path());
    let home = t.path().join("home");
    // util-linux's script gives the build a pseudo-terminal; its output is the terminal's.
    let mut child = Command::new(tool("script"))
        .current_dir(t.path())
        .args(["-qfec"])
        .arg(teu_line(&home, "build --copy app:/app -o oci:out"))
        .arg("/dev/null")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match out.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    all.extend_from_slice(&buf[..n]);
                    let _ = tx.send((Instant::now(), all.clone()));
                }
            }
        }
        all
    });
    let mut first_bar = None;
    while let Ok((at, seen)) = rx.recv() {
        if first_bar.is_none() && String::from_utf8_lossy(&seen).contains("ETA") {
            first_bar = Some(at);
        }
    }
    let status = child.wait().unwrap();
    let ended = Instant::now();
    let all = String::from_utf8_lossy(&reader.join().unwrap()).into_owned();
    assert!(status.success(), "{all}");
    let first_bar = first_bar.unwrap_or_else(|| panic!("no progress bar was drawn:\n{all}"));
    assert!(
        ended - first_bar > Duration::from_millis(300),
        "the bar came only at the end ({:?} before it):\n{all}",
        ended - first_bar
    );
    assert!(all.contains("layer \"files\""), "{all}");
    assert!(all.contains("sha256:"), "{all}");
}

#[test]
fn json_progress_lines_all_parse_and_stdout_is_the_digest() {
    let t = tempfile::tempdir().unwrap();
    big_app(t.path());
    let home = t.path().join("home");
    // Sources written in the build's first second are racy and not recorded.
    std::thread::sleep(Duration::from_millis(1100));
    for round in ["cold", "cached"] {
        let out = ok(teu(&home).current_dir(t.path()).args([
            "build",
            "--copy",
            "app:/app",
            "-o",
            "oci:out",
            "--progress",
            "json",
        ]));
        let stdout = String::from_utf8(out.stdout.clone()).unwrap();
        assert_eq!(stdout, format!("{}\n", digest(&out)), "{round}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        let events: Vec<serde_json::Value> = stderr
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{round}: {l:?}: {e}")))
            .collect();
        let kinds: Vec<&str> = events
            .iter()
            .map(|e| e["event"].as_str().unwrap())
            .collect();
        assert_eq!(kinds.first(), Some(&"start"), "{round}: {stderr}");
        assert_eq!(kinds.last(), Some(&"finish"), "{round}: {stderr}");
        let finish = events.last().unwrap();
        let want = if round == "cold" { "done" } else { "skipped" };
        assert_eq!(finish["outcome"], want, "{round}: {stderr}");
        assert_eq!(events[0]["kind"], "layer");
        assert_eq!(events[0]["name"], "files");
        if round == "cold" {
            assert!(kinds.contains(&"advance"), "{stderr}");
        }
    }
}

#[test]
fn on_a_pipe_and_with_none_stdout_holds_only_the_digest() {
    let t = tempfile::tempdir().unwrap();
    write(&t.path().join("app/a"), b"a\n");
    let home = t.path().join("home");
    for extra in [&[][..], &["--progress", "none"], &["--progress", "plain"]] {
        let out = ok(teu(&home)
            .current_dir(t.path())
            .args(["build", "--copy", "app:/app", "-o", "oci:out"])
            .args(extra));
        let stdout = String::from_utf8(out.stdout.clone()).unwrap();
        assert_eq!(stdout, format!("{}\n", digest(&out)), "{extra:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("ETA"), "no bars on a pipe: {stderr}");
        if extra.contains(&"none") {
            assert!(!stderr.contains("working"), "{stderr}");
        }
    }
}

/// A push reads each blob it uploads through a source that reports it: one start and one
/// finish per uploaded layer, with its size as the total.
#[test]
fn a_push_reports_each_blob_it_uploads() {
    use crate::common::registry::{Auth, Registry};
    let reg = Registry::start(Auth::None);
    let t = tempfile::tempdir().unwrap();
    write(&t.path().join("app/a"), &[7u8; 300_000]);
    let home = t.path().join("home");
    ok(teu(&home)
        .current_dir(t.path())
        .args(["build", "-q", "--copy", "app:/app", "-o", "oci:out"]));
    let out = ok(teu(&home).current_dir(t.path()).args([
        "push",
        "oci:out",
        &format!("{}/app:1", reg.addr),
        "--progress",
        "json",
    ]));
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    assert_eq!(stdout, format!("{}\n", digest(&out)));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let events: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    let starts: Vec<_> = events.iter().filter(|e| e["event"] == "start").collect();
    assert_eq!(starts.len(), 1, "one layer blob uploaded: {stderr}");
    assert_eq!(starts[0]["kind"], "blob");
    let finish = events
        .iter()
        .find(|e| e["event"] == "finish" && e["id"] == starts[0]["id"])
        .unwrap_or_else(|| panic!("no finish: {stderr}"));
    assert_eq!(finish["outcome"], "done", "{stderr}");
    assert_eq!(finish["done"], starts[0]["total"], "{stderr}");
}
