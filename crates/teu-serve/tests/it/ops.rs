//! Operations: auth, read-only, metrics, gc, several servers on one bucket, and a server
//! killed with SIGKILL in the middle of uploads.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::*;

fn htpasswd(dir: &std::path::Path, user: &str, pass: &str) -> std::path::PathBuf {
    let out = Command::new(tool("htpasswd"))
        .args(["-Bbn", user, pass])
        .output()
        .unwrap();
    assert!(out.status.success());
    let f = dir.join("users.htpasswd");
    std::fs::write(&f, &out.stdout).unwrap();
    f
}

#[test]
fn basic_auth_and_anonymous_read() {
    let st = Storage::new(Backend::Fs);
    let users = htpasswd(st.dir.path(), "alice", "s3cret");
    let c = client();

    let s = Server::start_with(
        &st,
        &format!("[auth]\nhtpasswd = {:?}\n", users.display().to_string()),
    );
    let r = c.get(s.url("/v2/")).send().unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(hdr(&r, "www-authenticate"), "Basic realm=\"teu\"");
    assert_eq!(code(r), "UNAUTHORIZED");
    assert_eq!(
        c.get(s.url("/v2/"))
            .basic_auth("alice", Some("wrong"))
            .send()
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        c.get(s.url("/v2/"))
            .basic_auth("bob", Some("s3cret"))
            .send()
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        c.get(s.url("/v2/"))
            .basic_auth("alice", Some("s3cret"))
            .send()
            .unwrap()
            .status(),
        200
    );
    let r = c
        .post(s.url("/v2/p/blobs/uploads/"))
        .basic_auth("alice", Some("s3cret"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
    let loc = hdr(&r, "location");
    let d = sha256(b"authed");
    let r = c
        .put(s.url(&format!("{loc}?digest={d}")))
        .basic_auth("alice", Some("s3cret"))
        .body(&b"authed"[..])
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(
        c.get(s.url(&format!("/v2/p/blobs/{d}")))
            .send()
            .unwrap()
            .status(),
        401
    );
    // The password never reaches the log.
    assert!(!s.log().contains("s3cret"));
    drop(s);

    // Pull open, push authenticated.
    let s = Server::start_with(
        &st,
        &format!(
            "[auth]\nhtpasswd = {:?}\nanonymous = \"read\"\n",
            users.display().to_string()
        ),
    );
    assert_eq!(
        c.get(s.url(&format!("/v2/p/blobs/{d}")))
            .send()
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        c.post(s.url("/v2/p/blobs/uploads/"))
            .send()
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        c.post(s.url("/v2/p/blobs/uploads/"))
            .basic_auth("alice", Some("s3cret"))
            .send()
            .unwrap()
            .status(),
        202
    );
}

#[test]
fn read_only_and_metrics() {
    let st = Storage::new(Backend::Fs);
    let s = Server::start(&st);
    let d = push_blob(&s, "ro", b"before read-only");
    drop(s);
    let s = Server::start_with(&st, "read_only = true");
    let c = client();
    assert_eq!(
        c.get(s.url(&format!("/v2/ro/blobs/{d}")))
            .send()
            .unwrap()
            .status(),
        200
    );
    let r = c.post(s.url("/v2/ro/blobs/uploads/")).send().unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(code(r), "UNSUPPORTED");
    assert_eq!(
        c.delete(s.url(&format!("/v2/ro/blobs/{d}")))
            .send()
            .unwrap()
            .status(),
        405
    );
    let text = c.get(s.url("/metrics")).send().unwrap().text().unwrap();
    assert!(
        text.contains("teu_serve_requests_total{method=\"GET\",status=\"200\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("teu_serve_requests_total{method=\"POST\",status=\"405\"} 1"),
        "{text}"
    );
    let sent: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("teu_serve_sent_bytes_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        sent >= 16,
        "the blob and the error bodies were sent: {text}"
    );
    assert!(text.contains("teu_serve_storage_bytes 16"), "{text}");
}

#[test]
fn gc_sweeps_unreferenced_blobs_and_abandoned_uploads() {
    let st = Storage::new(Backend::Fs);
    let s = Server::start(&st);
    let c = client();
    push_image(&s, "g", "keep", b"{\"keep\":1}", &[b"kept layer"]);
    let orphan = push_blob(&s, "g", b"orphan blob");
    let r = c.post(s.url("/v2/g/blobs/uploads/")).send().unwrap();
    let session = hdr(&r, "location");
    drop(s);
    let rt = teu_serve::runtime().unwrap();
    let storage = rt
        .block_on(teu_serve::open_storage(
            &toml::from_str(&st.config()).unwrap(),
        ))
        .unwrap();
    let opts = |grace| teu_serve::gc::GcOptions {
        grace,
        dry_run: false,
        cache: None,
    };
    // Within the grace period nothing goes.
    let r = rt
        .block_on(teu_serve::gc::collect(
            storage.as_ref(),
            &opts(Duration::from_secs(3600)),
        ))
        .unwrap();
    assert_eq!((r.blobs_removed, r.uploads_removed), (0, 0));
    let r = rt
        .block_on(teu_serve::gc::collect(
            storage.as_ref(),
            &opts(Duration::ZERO),
        ))
        .unwrap();
    assert_eq!(
        (
            r.manifests,
            r.blobs_kept,
            r.blobs_removed,
            r.uploads_removed
        ),
        (1, 3, 1, 1)
    );
    let s = Server::start(&st);
    assert_eq!(
        c.get(s.url(&format!("/v2/g/blobs/{orphan}")))
            .send()
            .unwrap()
            .status(),
        404
    );
    assert_eq!(c.get(s.url(&session)).send().unwrap().status(), 404);
    let r = c.get(s.url("/v2/g/manifests/keep")).send().unwrap();
    assert_eq!(r.status(), 200);
    let m: Value = r.json().unwrap();
    let layer = m["layers"][0]["digest"].as_str().unwrap().to_string();
    assert_eq!(
        c.get(s.url(&format!("/v2/g/blobs/{layer}")))
            .send()
            .unwrap()
            .bytes()
            .unwrap(),
        &b"kept layer"[..]
    );
}

#[test]
fn two_servers_on_one_bucket_are_one_registry() {
    let st = Storage::new(Backend::S3);
    let a = Server::start(&st);
    let b = Server::start(&st);
    let c = client();
    let d = push_image(&a, "shared/app", "v1", b"{\"a\":1}", &[b"pushed through a"]);
    let r = c.get(b.url("/v2/shared/app/manifests/v1")).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(hdr(&r, "docker-content-digest"), d);
    let m: Value = r.json().unwrap();
    let layer = m["layers"][0]["digest"].as_str().unwrap().to_string();
    assert_eq!(
        c.get(b.url(&format!("/v2/shared/app/blobs/{layer}")))
            .send()
            .unwrap()
            .bytes()
            .unwrap(),
        &b"pushed through a"[..]
    );
    // An upload started on b, continued on a, finished on b.
    let data: Vec<u8> = (0..50_000u32).map(|i| (i * 7) as u8).collect();
    let r = c
        .post(b.url("/v2/shared/app/blobs/uploads/"))
        .send()
        .unwrap();
    let loc = hdr(&r, "location");
    let r = c
        .patch(a.url(&loc))
        .header("Content-Range", "0-24999")
        .body(data[..25_000].to_vec())
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
    let r = c.get(b.url(&loc)).send().unwrap();
    assert_eq!(hdr(&r, "range"), "0-24999");
    let r = c
        .put(b.url(&format!("{loc}?digest={}", sha256(&data))))
        .body(data[25_000..].to_vec())
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(
        c.get(a.url(&format!("/v2/shared/app/blobs/{}", sha256(&data))))
            .send()
            .unwrap()
            .bytes()
            .unwrap()
            .as_ref(),
        &data[..]
    );
    // Tags pushed through b are listed by a.
    assert_eq!(
        put_manifest(
            &b,
            "shared/app",
            "v2",
            &manifest(b"{\"a\":1}", &[b"pushed through a"], json!({}))
        )
        .status(),
        201
    );
    let v: Value = c
        .get(a.url("/v2/shared/app/tags/list"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(v["tags"], json!(["v1", "v2"]));
}

/// Start a PATCH with a declared length, send part of the body, and leave it hanging.
fn hanging_patch(addr: &str, path: &str, declared: usize, sent: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "PATCH {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/octet-stream\r\nContent-Length: {declared}\r\n\r\n"
    )
    .unwrap();
    s.write_all(sent).unwrap();
    s.flush().unwrap();
    s
}

fn killed_mid_upload(b: Backend) {
    let st = Storage::new(b);
    let mut s = Server::start(&st);
    let c = client();
    // Completed pushes before the crash.
    let done: Vec<(String, Vec<u8>)> = (0..5u8)
        .map(|i| {
            let data = vec![i; 100_000 + i as usize];
            (push_blob(&s, "crash", &data), data)
        })
        .collect();
    let image = push_image(&s, "crash", "v1", b"{\"crash\":1}", &[&done[0].1]);
    // A session with one acknowledged chunk, and then a PATCH cut off by the kill.
    let big: Vec<u8> = (0..2_000_000u32).map(|i| (i % 253) as u8).collect();
    let r = c.post(s.url("/v2/crash/blobs/uploads/")).send().unwrap();
    let loc = hdr(&r, "location");
    let r = c
        .patch(s.url(&loc))
        .header("Content-Range", "0-999999")
        .body(big[..1_000_000].to_vec())
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
    let _hanging = hanging_patch(&s.addr, &loc, 1_000_000, &big[1_000_000..1_400_000]);
    // A monolithic PUT cut off too: its blob must never appear.
    let r = c.post(s.url("/v2/crash/blobs/uploads/")).send().unwrap();
    let loc2 = hdr(&r, "location");
    let partial = vec![9u8; 300_000];
    let _hanging2 = hanging_patch(
        &s.addr,
        &format!("{loc2}?digest={}", sha256(&partial)),
        300_000,
        &partial[..100_000],
    );
    std::thread::sleep(Duration::from_millis(500));
    s.kill();
    if b == Backend::Fs {
        assert_fs_blobs_intact(&st.data_dir());
    }
    s.restart();
    for (d, data) in &done {
        let got = c
            .get(s.url(&format!("/v2/crash/blobs/{d}")))
            .send()
            .unwrap()
            .bytes()
            .unwrap();
        assert_eq!(&sha256(&got), d);
        assert_eq!(got.as_ref(), &data[..]);
    }
    assert_eq!(
        c.get(s.url("/v2/crash/manifests/v1"))
            .send()
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        hdr(
            &c.get(s.url("/v2/crash/manifests/v1")).send().unwrap(),
            "docker-content-digest"
        ),
        image
    );
    assert_eq!(
        c.head(s.url(&format!("/v2/crash/blobs/{}", sha256(&partial))))
            .send()
            .unwrap()
            .status(),
        404
    );
    // The session survived: resume where the server says it is.
    let r = c.get(s.url(&loc)).send().unwrap();
    assert_eq!(r.status(), 204, "upload session lost in the restart");
    let range = hdr(&r, "range");
    let have: usize = range.split('-').nth(1).unwrap().parse::<usize>().unwrap() + 1;
    assert!((1_000_000..=1_400_000).contains(&have), "{range}");
    let r = c
        .patch(s.url(&loc))
        .header("Content-Range", format!("{have}-{}", big.len() - 1))
        .body(big[have..].to_vec())
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
    let r = c
        .put(s.url(&format!("{loc}?digest={}", sha256(&big))))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let got = c
        .get(s.url(&format!("/v2/crash/blobs/{}", sha256(&big))))
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    assert_eq!(got.as_ref(), &big[..]);
    if b == Backend::Fs {
        assert_fs_blobs_intact(&st.data_dir());
    }
}

#[test]
fn fs_server_killed_mid_upload_restarts_intact() {
    killed_mid_upload(Backend::Fs);
}

#[test]
fn s3_server_killed_mid_upload_restarts_intact() {
    killed_mid_upload(Backend::S3);
}

#[test]
fn tls_with_a_self_signed_certificate() {
    let st = Storage::new(Backend::Fs);
    let (cert, key) = (
        st.dir.path().join("cert.pem"),
        st.dir.path().join("key.pem"),
    );
    let out = Command::new(tool("openssl"))
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = Server::start_with(
        &st,
        &format!(
            "tls_cert = {:?}\ntls_key = {:?}\n",
            cert.display().to_string(),
            key.display().to_string()
        ),
    );
    let curl = |url: String| {
        let out = Command::new(tool("curl"))
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
            .arg(&cert)
            .arg(url)
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(curl(format!("https://{}/v2/", s.addr)), "200");
    assert_eq!(curl(format!("https://{}/v2/x/tags/list", s.addr)), "404");
}

#[test]
fn sigterm_lets_a_download_in_flight_finish() {
    let st = Storage::new(Backend::Fs);
    let mut s = Server::start(&st);
    let data: Vec<u8> = (0..24_000_000u32).map(|i| (i % 241) as u8).collect();
    let d = push_blob(&s, "drain", &data);
    let mut conn = TcpStream::connect(&s.addr).unwrap();
    write!(
        conn,
        "GET /v2/drain/blobs/{d} HTTP/1.1\r\nHost: {}\r\n\r\n",
        s.addr
    )
    .unwrap();
    let mut first = vec![0u8; 65536];
    conn.read_exact(&mut first).unwrap();
    // The server is still writing (the socket buffers hold a few MB of 24) when it is told to stop.
    let status = std::thread::scope(|sc| {
        let stopping = sc.spawn(|| s.terminate());
        std::thread::sleep(Duration::from_millis(300));
        let mut rest = Vec::new();
        conn.read_to_end(&mut rest).unwrap();
        first.extend_from_slice(&rest);
        stopping.join().unwrap()
    });
    assert!(status.success(), "{status:?}");
    let text = String::from_utf8_lossy(&first[..200]).into_owned();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let body_at = first.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(
        sha256(&first[body_at..]),
        d,
        "the whole blob arrived after SIGTERM"
    );
}
