//! The pull-through cache against the real `docker-registry` behind the fault-injecting
//! proxy, which counts every request and byte the upstream sends.

use std::io::Read;
use std::time::{Duration, Instant};

use sha2::Digest as _;
use teu_testkit::registry::{Auth, FaultKind, Proxy, Registry};

use crate::harness::*;

/// A real registry and the fault proxy in front of it.
pub struct Up {
    pub reg: Registry,
    pub proxy: Proxy,
}

impl Up {
    pub fn start() -> Up {
        let reg = Registry::start(Auth::None);
        let proxy = Proxy::start(&reg.addr);
        Up { reg, proxy }
    }

    /// The registry itself, for pushes the counts should not see.
    pub fn base(&self) -> String {
        format!("http://{}", self.reg.addr)
    }

    /// `[[upstream]]` for this upstream, through the fault proxy.
    /// `extra` may set `tag_ttl` (default 1s here) and other keys of the entry.
    pub fn toml(&self, name: &str, extra: &str) -> String {
        let ttl = if extra.contains("tag_ttl") {
            ""
        } else {
            "tag_ttl = \"1s\"\n"
        };
        format!(
            "[[upstream]]\nname = \"{name}\"\nurl = \"http://{}\"\n{ttl}timeout = \"5s\"\n{extra}\n",
            self.proxy.addr
        )
    }

    /// Upstream requests (method, path) since the last call. The fault proxy logs a
    /// forwarded exchange after its last write, a moment after the cache (and so our
    /// client) may have the answer: give it that moment.
    pub fn requests(&self) -> Vec<(String, String, u16)> {
        std::thread::sleep(Duration::from_millis(100));
        self.proxy
            .take_log()
            .into_iter()
            .map(|e| (e.method, e.path, e.status))
            .collect()
    }
}

/// Deterministic incompressible bytes.
pub fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(n);
    out
}

pub fn push_blob_to(base: &str, repo: &str, bytes: &[u8]) -> String {
    push_blob_with(&client(), base, repo, bytes)
}

fn push_blob_with(c: &reqwest::blocking::Client, base: &str, repo: &str, bytes: &[u8]) -> String {
    let d = sha256(bytes);
    let r = c
        .post(format!("{base}/v2/{repo}/blobs/uploads/"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
    let loc = hdr(&r, "location");
    let sep = if loc.contains('?') { '&' } else { '?' };
    let url = if loc.starts_with("http") {
        format!("{loc}{sep}digest={d}")
    } else {
        format!("{base}{loc}{sep}digest={d}")
    };
    let r = c.put(url).body(bytes.to_vec()).send().unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().unwrap());
    d
}

/// Push an OCI image to the upstream registry directly; returns the manifest digest.
pub fn push_up(up: &Up, repo: &str, tag: &str, config: &[u8], layers: &[&[u8]]) -> String {
    let base = up.base();
    push_blob_to(&base, repo, config);
    for l in layers {
        push_blob_to(&base, repo, l);
    }
    let m = manifest(config, layers, serde_json::json!({}));
    let r = client()
        .put(format!("{base}/v2/{repo}/manifests/{tag}"))
        .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        .body(m.clone())
        .send()
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().unwrap());
    sha256(&m)
}

fn get(s: &Server, path: &str) -> Resp {
    client()
        .get(s.url(path))
        .header(
            "Accept",
            "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json",
        )
        .send()
        .unwrap()
}

/// Stream a response into sha256 without holding it.
fn hash_body(mut r: Resp) -> std::io::Result<(String, u64)> {
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = r.read(&mut buf)?;
        if k == 0 {
            break;
        }
        n += k as u64;
        h.update(&buf[..k]);
    }
    Ok((format!("sha256:{}", hex::encode(h.finalize())), n))
}

pub fn metric(s: &Server, name: &str) -> u64 {
    let text = client()
        .get(s.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Body bytes the upstream sent for blob `d`. The fault proxy logs an exchange after its
/// last write, which may be a moment after our client has the bytes: wait for `want`,
/// then a little longer so that more than `want` would show.
fn blob_bytes_up(up: &Up, d: &str, want: u64) -> u64 {
    let path = format!("/blobs/{d}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while up.proxy.bytes_down(&path) < want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    up.proxy.bytes_down(&path)
}

/// Wait until no fill is in progress (its blob is in storage or it failed).
pub fn fills_done(s: &Server) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(s, "teu_serve_proxy_fills_in_progress") > 0 {
        assert!(Instant::now() < deadline, "fills did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn cold_blob_fetched_once(b: Backend) {
    let up = Up::start();
    let st = Storage::new(b);
    let s = Server::start_with(&st, &up.toml("docker.io", ""));
    let size = 100 << 20;
    let one = noise(size, 1);
    let eight = noise(size, 2);
    let (d1, d8) = (sha256(&one), sha256(&eight));
    push_up(&up, "library/big", "v1", b"{}", &[&one, &eight]);
    drop((one, eight));
    up.requests();
    // The upstream is throttled so the eight clients below surely overlap one fill.
    up.proxy.set_throttle(Some(100 << 20));

    let (got, n) = hash_body(get(&s, &format!("/v2/docker.io/library/big/blobs/{d1}"))).unwrap();
    assert_eq!((got.as_str(), n), (d1.as_str(), size as u64));
    assert_eq!(
        blob_bytes_up(&up, &d1, size as u64),
        size as u64,
        "one client: the blob came up once"
    );

    let before = metric(&s, "teu_serve_proxy_coalesced_total");
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let url = s.url(&format!("/v2/docker.io/library/big/blobs/{d8}"));
            std::thread::spawn(move || hash_body(client().get(url).send().unwrap()).unwrap())
        })
        .collect();
    for c in clients {
        let (got, n) = c.join().unwrap();
        assert_eq!((got.as_str(), n), (d8.as_str(), size as u64));
    }
    assert_eq!(
        blob_bytes_up(&up, &d8, size as u64),
        size as u64,
        "eight clients: the blob came up once"
    );
    let gets: Vec<_> = up
        .requests()
        .into_iter()
        .filter(|(m, p, _)| m == "GET" && p.contains("/blobs/"))
        .collect();
    assert_eq!(gets.len(), 2, "one upstream GET per blob: {gets:?}");
    assert!(
        metric(&s, "teu_serve_proxy_coalesced_total") > before,
        "the eight clients joined one fill"
    );
    // Warm: served from the cache, nothing upstream.
    up.proxy.set_throttle(None);
    fills_done(&s);
    let (got, _) = hash_body(get(&s, &format!("/v2/docker.io/library/big/blobs/{d8}"))).unwrap();
    assert_eq!(got, d8);
    assert!(up.requests().is_empty());
    assert!(metric(&s, "teu_serve_upstream_received_bytes_total") >= 2 * size as u64);
    if b == Backend::Fs {
        assert_fs_blobs_intact(&st.data_dir());
    }
}

#[test]
fn proxy_cold_blob_fetched_once_for_1_and_8_clients_fs() {
    cold_blob_fetched_once(Backend::Fs);
}

#[test]
fn proxy_cold_blob_fetched_once_for_1_and_8_clients_s3() {
    cold_blob_fetched_once(Backend::S3);
}

fn tags_ttl_then_one_head(b: Backend) {
    let up = Up::start();
    let st = Storage::new(b);
    let s = Server::start_with(&st, &up.toml("docker.io", ""));
    let m1 = push_up(&up, "library/app", "v1", b"{\"a\":1}", &[b"layer one"]);
    up.requests();
    let path = "/v2/docker.io/library/app/manifests/v1";
    let r = get(&s, path);
    assert_eq!(r.status(), 200);
    assert_eq!(hdr(&r, "docker-content-digest"), m1);
    let cold = up.requests();
    assert_eq!(cold.len(), 1, "a cold tag is one GET: {cold:?}");
    assert_eq!(cold[0].0, "GET");
    // Warm, within the TTL: no upstream request at all.
    let r = get(&s, path);
    assert_eq!(hdr(&r, "docker-content-digest"), m1);
    assert_eq!(up.requests(), vec![]);
    // After the TTL: one HEAD. docker-registry 2.8 refuses a HEAD of an OCI manifest
    // whose Accept lacks the OCI types, so a 200 shows the Accept is complete.
    std::thread::sleep(Duration::from_millis(1100));
    let r = get(&s, path);
    assert_eq!(hdr(&r, "docker-content-digest"), m1);
    let after = up.requests();
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(
        (after[0].0.as_str(), after[0].2),
        ("HEAD", 200),
        "{after:?}"
    );
    // The tag moves upstream: after the TTL one HEAD and one GET of the new digest.
    let m2 = push_up(&up, "library/app", "v1", b"{\"a\":2}", &[b"layer two"]);
    up.requests();
    std::thread::sleep(Duration::from_millis(1100));
    let r = get(&s, path);
    assert_eq!(hdr(&r, "docker-content-digest"), m2);
    let moved = up.requests();
    let kinds: Vec<_> = moved
        .iter()
        .map(|(m, p, _)| (m.as_str(), p.rsplit('/').next().unwrap()))
        .collect();
    assert_eq!(kinds, vec![("HEAD", "v1"), ("GET", m2.as_str())]);
    // Manifests by digest are fetched once and kept.
    let r = get(&s, &format!("/v2/docker.io/library/app/manifests/{m1}"));
    assert_eq!(r.status(), 200);
    let r = get(&s, &format!("/v2/docker.io/library/app/manifests/{m2}"));
    assert_eq!(r.status(), 200);
    assert_eq!(up.requests(), vec![]);
}

#[test]
fn proxy_tag_ttl_then_one_head_fs() {
    tags_ttl_then_one_head(Backend::Fs);
}

#[test]
fn proxy_tag_ttl_then_one_head_s3() {
    tags_ttl_then_one_head(Backend::S3);
}

#[test]
fn proxy_routes_ns_prefix_mirror_and_local_pushes() {
    let up = Up::start();
    let st = Storage::new(Backend::Fs);
    let cfg = format!("{}{}", up.toml("docker.io", ""), up.toml("ghcr.io", ""));
    let s = Server::start_with(&st, &cfg);
    let m = push_up(&up, "library/app", "v1", b"{}", &[b"layer"]);
    let layer = sha256(b"layer");
    up.requests();
    for path in [
        "/v2/docker.io/library/app/manifests/v1",
        "/v2/docker.io/app/manifests/v1",
        "/v2/library/app/manifests/v1?ns=docker.io",
        "/v2/app/manifests/v1?ns=docker.io",
        "/v2/library/app/manifests/v1?ns=registry-1.docker.io",
        "/v2/library/app/manifests/v1",
    ] {
        let r = get(&s, path);
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(hdr(&r, "docker-content-digest"), m, "{path}");
    }
    for path in [
        format!("/v2/library/app/blobs/{layer}?ns=docker.io"),
        format!("/v2/library/app/blobs/{layer}"),
        format!("/v2/docker.io/app/blobs/{layer}"),
    ] {
        let r = get(&s, &path);
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.bytes().unwrap().as_ref(), b"layer");
    }
    let seen = up.requests();
    assert_eq!(seen.len(), 2, "one cache for every way of asking: {seen:?}");
    // A HEAD of an uncached blob asks the upstream's HEAD and fetches nothing.
    let config = sha256(b"{}");
    let r = client()
        .head(s.url(&format!("/v2/docker.io/library/app/blobs/{config}")))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(hdr(&r, "content-length"), "2");
    let seen = up.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].0, "HEAD");
    // Eight clients asking for one cold tag at once share one upstream request (the
    // first is held up so the others surely arrive while it is under way).
    push_up(&up, "library/many", "v1", b"{\"m\":1}", &[b"many"]);
    up.requests();
    up.proxy.fault(
        "GET",
        "/many/manifests/",
        FaultKind::Slow(Duration::from_millis(300)),
        1,
    );
    let lookups: Vec<_> = (0..8)
        .map(|_| {
            let url = s.url("/v2/docker.io/library/many/manifests/v1");
            std::thread::spawn(move || client().get(url).send().unwrap().status().as_u16())
        })
        .collect();
    for l in lookups {
        assert_eq!(l.join().unwrap(), 200);
    }
    let seen = up.requests();
    assert_eq!(
        seen.len(),
        1,
        "one upstream request for eight clients: {seen:?}"
    );
    // Tags lists come from the upstream, by prefix and for registry-mirrors alike.
    for path in [
        "/v2/docker.io/library/app/tags/list",
        "/v2/library/app/tags/list",
    ] {
        let r = get(&s, path);
        assert_eq!(r.status(), 200, "{path}");
        let v: serde_json::Value = r.json().unwrap();
        assert_eq!(v["tags"], serde_json::json!(["v1"]), "{path}");
    }
    up.requests();
    // Only docker.io expands short names.
    let r = get(&s, "/v2/ghcr.io/app/manifests/v1");
    assert_eq!(r.status(), 404);
    assert_eq!(up.requests()[0].1, "/v2/app/manifests/v1");
    // Local pushes to other names keep working and never ask the upstream...
    let local = push_image(&s, "mine/app", "v1", b"{\"local\":1}", &[b"mine"]);
    let r = get(&s, "/v2/mine/app/manifests/v1");
    assert_eq!(hdr(&r, "docker-content-digest"), local);
    assert!(up.requests().is_empty());
    // ...and the cache's repositories take no pushes.
    let r = client()
        .post(s.url("/v2/docker.io/library/app/blobs/uploads/"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 405);
    let r = put_manifest(&s, "docker.io/library/app", "v2", b"{}");
    assert_eq!(r.status(), 405);
}

fn down_429_and_hung_serve_the_cache(b: Backend) {
    let up = Up::start();
    let st = Storage::new(b);
    let s = Server::start_with(
        &st,
        &format!(
            "[[upstream]]\nname = \"docker.io\"\nurl = \"http://{}\"\ntag_ttl = \"1s\"\ntimeout = \"600ms\"\n",
            up.proxy.addr
        ),
    );
    let m = push_up(&up, "library/app", "v1", b"{}", &[b"cached layer"]);
    push_up(&up, "library/other", "v1", b"{\"o\":1}", &[b"other layer"]);
    push_up(&up, "library/third", "v1", b"{\"t\":1}", &[b"third layer"]);
    let layer = sha256(b"cached layer");
    let uncached_blob = sha256(b"other layer");
    assert_eq!(
        get(&s, "/v2/docker.io/library/app/manifests/v1").status(),
        200
    );
    assert_eq!(
        get(&s, &format!("/v2/docker.io/library/app/blobs/{layer}")).status(),
        200
    );
    std::thread::sleep(Duration::from_millis(1100));
    up.requests();

    // 429 with Retry-After: the cached tag is served stale after one HEAD, no GET.
    up.proxy
        .fault("HEAD", "/manifests/", FaultKind::Status(429, Some(7)), 1);
    let t = Instant::now();
    let r = get(&s, "/v2/docker.io/library/app/manifests/v1");
    assert!(t.elapsed() < Duration::from_secs(1));
    assert_eq!(r.status(), 200);
    assert_eq!(hdr(&r, "docker-content-digest"), m);
    assert!(hdr(&r, "warning").starts_with("110 "), "{:?}", r.headers());
    let seen = up.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    // Uncached: 429 with the upstream's Retry-After, never 404.
    up.proxy
        .fault("GET", "/manifests/", FaultKind::Status(429, Some(7)), 1);
    let r = get(&s, "/v2/docker.io/library/other/manifests/v1");
    assert_eq!(r.status(), 429);
    assert_eq!(hdr(&r, "retry-after"), "7");
    up.proxy
        .fault("GET", "/blobs/", FaultKind::Status(503, None), 1);
    let r = get(
        &s,
        &format!("/v2/docker.io/library/other/blobs/{uncached_blob}"),
    );
    assert_eq!(r.status(), 503);
    assert!(!hdr(&r, "retry-after").is_empty());
    assert!(s.log().contains("serving a stale tag"));

    // Hung upstream: the response timeout ends the wait; cached content within a second.
    std::thread::sleep(Duration::from_millis(1100));
    up.proxy.fault(
        "HEAD",
        "/app/manifests/",
        FaultKind::Slow(Duration::from_secs(5)),
        1,
    );
    up.proxy.fault(
        "GET",
        "/other/manifests/",
        FaultKind::Slow(Duration::from_secs(5)),
        1,
    );
    let hung = {
        let url = s.url("/v2/docker.io/library/other/manifests/v1");
        std::thread::spawn(move || {
            let t = Instant::now();
            let r = client().get(url).send().unwrap();
            (r.status().as_u16(), hdr(&r, "retry-after"), t.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    // While that lookup hangs, another proxied one is not queued behind it.
    let t = Instant::now();
    let r = get(&s, "/v2/docker.io/library/third/manifests/v1");
    assert_eq!(r.status(), 200);
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    let t = Instant::now();
    let r = get(&s, "/v2/docker.io/library/app/manifests/v1");
    assert_eq!(r.status(), 200);
    assert_eq!(hdr(&r, "docker-content-digest"), m);
    assert!(!hdr(&r, "warning").is_empty());
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    let (status, retry, took) = hung.join().unwrap();
    assert_eq!(status, 503);
    assert!(!retry.is_empty());
    assert!(took < Duration::from_secs(2), "{took:?}");

    // Down (connections refused): cached served, uncached 503.
    up.proxy.set_down(true);
    std::thread::sleep(Duration::from_millis(1100));
    let t = Instant::now();
    assert_eq!(
        get(&s, "/v2/docker.io/library/app/manifests/v1").status(),
        200
    );
    assert_eq!(
        get(&s, &format!("/v2/docker.io/library/app/blobs/{layer}")).status(),
        200
    );
    assert!(t.elapsed() < Duration::from_secs(1));
    let r = get(
        &s,
        &format!("/v2/docker.io/library/other/blobs/{uncached_blob}"),
    );
    assert_eq!(r.status(), 503);
    let r = get(&s, "/v2/docker.io/library/nothere/manifests/v1");
    assert_eq!(r.status(), 503);
    assert!(!hdr(&r, "retry-after").is_empty());
    let text = client()
        .get(s.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(text.contains("teu_serve_upstream_requests_total{upstream=\"docker.io\",method=\"HEAD\",status=\"429\"} 1"), "{text}");
    assert!(metric(&s, "teu_serve_proxy_stale_total") >= 3);
}

#[test]
fn proxy_upstream_down_429_and_hung_serve_the_cache_fs() {
    down_429_and_hung_serve_the_cache(Backend::Fs);
}

#[test]
fn proxy_upstream_down_429_and_hung_serve_the_cache_s3() {
    down_429_and_hung_serve_the_cache(Backend::S3);
}

fn corrupt_upstream_byte_is_never_cached(b: Backend) {
    let up = Up::start();
    let st = Storage::new(b);
    let s = Server::start_with(&st, &up.toml("docker.io", ""));
    let blob = noise(3 << 20, 7);
    let d = sha256(&blob);
    push_up(&up, "library/app", "v1", b"{}", &[&blob]);
    up.requests();
    up.proxy.fault("GET", "/blobs/", FaultKind::CorruptByte, 1);
    let path = format!("/v2/docker.io/library/app/blobs/{d}");
    let r = get(&s, &path);
    assert_eq!(r.status(), 200);
    let body = r.bytes();
    assert!(
        body.is_err(),
        "the client's connection is cut, never given the wrong blob"
    );
    // Nothing was stored: the next request fetches again and gets the right bytes.
    let (got, n) = hash_body(get(&s, &path)).unwrap();
    assert_eq!((got.as_str(), n), (d.as_str(), blob.len() as u64));
    let gets = up
        .requests()
        .into_iter()
        .filter(|(m, p, _)| m == "GET" && p.contains("/blobs/"))
        .count();
    assert_eq!(gets, 2);
    let (got, _) = hash_body(get(&s, &path)).unwrap();
    assert_eq!(got, d);
    assert!(up.requests().is_empty());
    if b == Backend::Fs {
        assert_fs_blobs_intact(&st.data_dir());
    }
    assert!(s.log().contains("corrupt"));
}

#[test]
fn proxy_corrupt_upstream_byte_is_never_cached_fs() {
    corrupt_upstream_byte_is_never_cached(Backend::Fs);
}

#[test]
fn proxy_corrupt_upstream_byte_is_never_cached_s3() {
    corrupt_upstream_byte_is_never_cached(Backend::S3);
}

#[test]
fn proxy_range_during_fill_and_a_client_that_hangs_up() {
    let up = Up::start();
    let st = Storage::new(Backend::Fs);
    let s = Server::start_with(&st, &up.toml("docker.io", ""));
    let blob = noise(20 << 20, 9);
    let d = sha256(&blob);
    push_up(&up, "library/app", "v1", b"{}", &[&blob]);
    up.requests();
    up.proxy.set_throttle(Some(10 << 20));
    let path = format!("/v2/docker.io/library/app/blobs/{d}");
    // The first client reads a little and goes away.
    let mut first = get(&s, &path);
    let mut buf = vec![0u8; 64 << 10];
    first.read_exact(&mut buf).unwrap();
    drop(first);
    // A range request is answered from the bytes that have arrived.
    let r = client()
        .get(s.url(&path))
        .header("Range", "bytes=100-199")
        .send()
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(
        hdr(&r, "content-range"),
        format!("bytes 100-199/{}", blob.len())
    );
    assert_eq!(r.bytes().unwrap().as_ref(), &blob[100..200]);
    // The fill went on for the others.
    let (got, _) = hash_body(get(&s, &path)).unwrap();
    assert_eq!(got, d);
    let n = blob.len() as u64;
    assert_eq!(blob_bytes_up(&up, &d, n), n);
}

fn restart_with_upstream_down(b: Backend) {
    let up = Up::start();
    let st = Storage::new(b);
    let mut s = Server::start_with(&st, &up.toml("docker.io", ""));
    let m = push_up(&up, "library/app", "v1", b"{}", &[b"kept layer"]);
    let layer = sha256(b"kept layer");
    assert_eq!(
        get(&s, "/v2/docker.io/library/app/manifests/v1").status(),
        200
    );
    assert_eq!(
        get(&s, &format!("/v2/docker.io/library/app/blobs/{layer}")).status(),
        200
    );
    fills_done(&s);
    up.proxy.set_down(true);
    s.restart();
    let t = Instant::now();
    let r = get(&s, "/v2/docker.io/library/app/manifests/v1");
    assert_eq!(r.status(), 200);
    assert_eq!(hdr(&r, "docker-content-digest"), m);
    assert!(!hdr(&r, "warning").is_empty());
    let r = get(&s, &format!("/v2/docker.io/library/app/blobs/{layer}"));
    assert_eq!(r.bytes().unwrap().as_ref(), b"kept layer");
    assert!(t.elapsed() < Duration::from_secs(1));
    assert_eq!(
        get(&s, "/v2/docker.io/library/new/manifests/v1").status(),
        503
    );
    // A server that has never reached its upstream starts too.
    let fresh = Storage::new(b);
    let s2 = Server::start_with(&fresh, &up.toml("docker.io", ""));
    assert_eq!(
        get(&s2, "/v2/docker.io/library/app/manifests/v1").status(),
        503
    );
    assert_eq!(get(&s2, "/v2/").status(), 200);
}

#[test]
fn proxy_restart_with_upstream_down_serves_the_cache_fs() {
    restart_with_upstream_down(Backend::Fs);
}

#[test]
fn proxy_restart_with_upstream_down_serves_the_cache_s3() {
    restart_with_upstream_down(Backend::S3);
}

/// Storage as the server sees it, opened by the test for looking (and `teu serve gc`).
struct Look {
    rt: tokio::runtime::Runtime,
    storage: std::sync::Arc<dyn teu_serve::storage::Storage>,
}

impl Look {
    fn new(st: &Storage) -> Look {
        let rt = teu_serve::runtime().unwrap();
        let storage = rt
            .block_on(teu_serve::open_storage(
                &toml::from_str(&st.config()).unwrap(),
            ))
            .unwrap();
        Look { rt, storage }
    }

    /// Whether blob `d` is in storage.
    fn has(&self, d: &str) -> bool {
        self.has_key(&format!("blobs/sha256/{}", &d[7..]))
    }

    fn has_key(&self, key: &str) -> bool {
        self.rt.block_on(self.storage.head(key)).unwrap().is_some()
    }

    fn delete(&self, key: &str) {
        self.rt.block_on(self.storage.delete(key)).unwrap();
    }
}

fn cache_bound_evicts_least_recently_used_never_pushed(b: Backend) {
    let up = Up::start();
    let st = Storage::new(b);
    let cfg = format!("{}[cache]\nmax_size = \"3MB\"\n", up.toml("docker.io", ""));
    let s = Server::start_with(&st, &cfg);
    let look = Look::new(&st);
    let blobs: Vec<Vec<u8>> = (0..5).map(|i| noise(1_000_000, 100 + i)).collect();
    let refs: Vec<&[u8]> = blobs.iter().map(|b| b.as_slice()).collect();
    push_up(&up, "library/app", "v1", b"{}", &refs);
    let ds: Vec<String> = blobs.iter().map(|b| sha256(b)).collect();
    let on_disk = |d: &str| look.has(d);
    let pull = |i: usize| {
        let (got, _) = hash_body(get(
            &s,
            &format!("/v2/docker.io/library/app/blobs/{}", ds[i]),
        ))
        .unwrap();
        assert_eq!(got, ds[i]);
        fills_done(&s);
    };
    for i in 0..3 {
        pull(i);
    }
    assert!(ds[..3].iter().all(|d| on_disk(d)), "3 MB fit the bound");
    // Blob 0 is used again, so blob 1 is now the least recently used; no pause: the
    // order is the markers' stamps, not storage's (on S3, one-second) timestamps.
    pull(0);
    up.requests();
    pull(3);
    assert!(!on_disk(&ds[1]), "the least recently used blob went");
    assert!(on_disk(&ds[0]) && on_disk(&ds[2]) && on_disk(&ds[3]));
    assert_eq!(metric(&s, "teu_serve_proxy_evicted_blobs_total"), 1);
    // Pushed content is never evicted, even when it is also the oldest proxied blob.
    push_blob(&s, "mine/app", &blobs[2]);
    pull(4);
    // Blob 2 leaves the cache's accounting instead of the disk, which is room enough.
    assert!(ds[..5].iter().filter(|d| *d != &ds[1]).all(|d| on_disk(d)));
    assert_eq!(metric(&s, "teu_serve_proxy_evicted_blobs_total"), 1);
    let r = get(&s, &format!("/v2/mine/app/blobs/{}", ds[2]));
    assert_eq!(r.status(), 200);
    // An evicted blob is fetched again when asked for.
    up.requests();
    pull(1);
    assert_eq!(
        up.requests()
            .iter()
            .filter(|(m, p, _)| m == "GET" && p.contains(&ds[1]))
            .count(),
        1
    );
    if b == Backend::Fs {
        assert_fs_blobs_intact(&st.data_dir());
    }

    // `teu serve gc` applies the same bound (here a tighter one) to the stored order.
    drop(s);
    let opts = teu_serve::gc::GcOptions {
        grace: Duration::from_secs(3600),
        dry_run: false,
        cache: Some(teu_serve::gc::CacheBound {
            max_bytes: 1_000_000,
            upstreams: vec!["docker.io".into()],
        }),
    };
    let report = look
        .rt
        .block_on(teu_serve::gc::collect(look.storage.as_ref(), &opts))
        .unwrap();
    assert!(report.proxied_evicted >= 1, "{report:?}");
    let left: Vec<_> = ds.iter().filter(|d| on_disk(d)).collect();
    assert!(left.contains(&&ds[2]), "gc keeps pushed content too");
    assert!(
        left.contains(&&ds[1]),
        "the most recently used proxied blob stays"
    );
    assert_eq!(left.len(), 2, "{left:?}");
}

#[test]
fn proxy_cache_bound_evicts_least_recently_used_never_pushed_fs() {
    cache_bound_evicts_least_recently_used_never_pushed(Backend::Fs);
}

#[test]
fn proxy_cache_bound_evicts_least_recently_used_never_pushed_s3() {
    cache_bound_evicts_least_recently_used_never_pushed(Backend::S3);
}

fn cache_bound_spares_a_blob_being_served(b: Backend) {
    let up = Up::start();
    let st = Storage::new(b);
    let cfg = format!("{}[cache]\nmax_size = \"19MB\"\n", up.toml("docker.io", ""));
    let s = Server::start_with(&st, &cfg);
    let look = Look::new(&st);
    // Big enough that its response cannot sit whole in socket buffers while held.
    let big = noise(16_000_000, 1);
    let small: Vec<Vec<u8>> = (0..3).map(|i| noise(2_000_000, 10 + i)).collect();
    push_up(
        &up,
        "library/app",
        "v1",
        b"{}",
        &[&big, &small[0], &small[1], &small[2]],
    );
    let db = sha256(&big);
    let ds: Vec<String> = small.iter().map(|b| sha256(b)).collect();
    let path = |d: &str| format!("/v2/docker.io/library/app/blobs/{d}");
    let pull = |d: &str| {
        let (got, _) = hash_body(get(&s, &path(d))).unwrap();
        assert_eq!(got, d);
        fills_done(&s);
    };
    pull(&db);
    // A client starts reading the big blob from the cache and stalls.
    let mut held = get(&s, &path(&db));
    let mut got = vec![0u8; 64 << 10];
    held.read_exact(&mut got).unwrap();
    pull(&ds[0]);
    // Over the bound: the big blob is the least recently used, but it is being served,
    // so the next one goes instead.
    pull(&ds[1]);
    assert!(look.has(&db), "a blob being served is not evicted");
    assert!(!look.has(&ds[0]));
    assert!(look.has(&ds[1]));
    assert_eq!(metric(&s, "teu_serve_proxy_evicted_blobs_total"), 1);
    // The held client gets every byte.
    held.read_to_end(&mut got).unwrap();
    assert_eq!(sha256(&got), db);
    drop(held);
    // The server drops a body's stream just after its last write: give it that moment.
    std::thread::sleep(Duration::from_millis(200));
    pull(&ds[2]);
    assert!(
        !look.has(&db),
        "once nobody reads it, it goes in the next round"
    );
    assert!(look.has(&ds[1]) && look.has(&ds[2]));
    assert_eq!(metric(&s, "teu_serve_proxy_evicted_blobs_total"), 2);
}

#[test]
fn proxy_cache_bound_spares_a_blob_being_served_fs() {
    cache_bound_spares_a_blob_being_served(Backend::Fs);
}

#[test]
fn proxy_cache_bound_spares_a_blob_being_served_s3() {
    cache_bound_spares_a_blob_being_served(Backend::S3);
}

/// A store from before push pins: a pushed blob that is also the oldest proxied one is
/// pinned when a server with a bound starts, so the rounds (which ask only for pins, not
/// for every repository's links) still never evict it.
fn cache_bound_pins_pushes_from_before_pins(b: Backend) {
    let up = Up::start();
    let st = Storage::new(b);
    let cfg = format!("{}[cache]\nmax_size = \"2MB\"\n", up.toml("docker.io", ""));
    let mut s = Server::start_with(&st, &cfg);
    let look = Look::new(&st);
    let blobs: Vec<Vec<u8>> = (0..3).map(|i| noise(1_000_000, 200 + i)).collect();
    let refs: Vec<&[u8]> = blobs.iter().map(|b| b.as_slice()).collect();
    push_up(&up, "library/app", "v1", b"{}", &refs);
    let ds: Vec<String> = blobs.iter().map(|b| sha256(b)).collect();
    let pull = |s: &Server, i: usize| {
        let path = format!("/v2/docker.io/library/app/blobs/{}", ds[i]);
        let (got, _) = hash_body(get(s, &path)).unwrap();
        assert_eq!(got, ds[i]);
        fills_done(s);
    };
    pull(&s, 0);
    push_blob(&s, "mine/app", &blobs[0]);
    let pin = format!("pushed/sha256/{}", &ds[0][7..]);
    assert!(look.has_key(&pin), "a push pins its blob");
    // As if the push had come from a server that wrote no pins.
    look.delete(&pin);
    look.delete("proxy/pins-indexed");
    s.restart();
    assert!(look.has_key(&pin), "the start indexed the pushed link");
    pull(&s, 1);
    pull(&s, 2);
    assert!(look.has(&ds[0]), "pushed content is never evicted");
    assert!(look.has(&ds[1]) && look.has(&ds[2]));
    assert_eq!(metric(&s, "teu_serve_proxy_evicted_blobs_total"), 0);
    let r = get(&s, &format!("/v2/mine/app/blobs/{}", ds[0]));
    assert_eq!(r.bytes().unwrap().as_ref(), blobs[0].as_slice());
}

#[test]
fn proxy_cache_bound_pins_pushes_from_before_pins_fs() {
    cache_bound_pins_pushes_from_before_pins(Backend::Fs);
}

#[test]
fn proxy_cache_bound_pins_pushes_from_before_pins_s3() {
    cache_bound_pins_pushes_from_before_pins(Backend::S3);
}

#[test]
fn proxy_upstream_basic_auth_from_the_config_and_the_keychain() {
    let reg = Registry::start(Auth::Basic("ci".into(), "s3cret".into()));
    let proxy = Proxy::start(&reg.addr);
    let up = Up { reg, proxy };
    // Push with credentials (a client whose every request carries them).
    let mut h = reqwest::header::HeaderMap::new();
    h.insert(
        "Authorization",
        "Basic Y2k6czNjcmV0".parse().unwrap(), // ci:s3cret
    );
    let authed = reqwest::blocking::Client::builder()
        .default_headers(h)
        .build()
        .unwrap();
    let base = up.base();
    let blob = b"private layer";
    let d = sha256(blob);
    push_blob_with(&authed, &base, "team/app", blob);
    push_blob_with(&authed, &base, "team/app", b"{}");
    let m = manifest(b"{}", &[blob], serde_json::json!({}));
    let r = authed
        .put(format!("{base}/v2/team/app/manifests/v1"))
        .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        .body(m.clone())
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);

    // Credentials named in the config, the password from the environment.
    let st = Storage::new(Backend::Fs);
    let s = Server::start_with_env(
        &st,
        &up.toml(
            "corp.io",
            "username = \"ci\"\npassword_env = \"TEU_TEST_UPSTREAM_PASSWORD\"",
        ),
        &[("TEU_TEST_UPSTREAM_PASSWORD", "s3cret")],
    );
    let r = get(&s, "/v2/corp.io/team/app/manifests/v1");
    assert_eq!(r.status(), 200);
    assert_eq!(hdr(&r, "docker-content-digest"), sha256(&m));
    assert_eq!(
        get(&s, &format!("/v2/corp.io/team/app/blobs/{d}"))
            .bytes()
            .unwrap()
            .as_ref(),
        blob
    );
    assert!(!s.log().contains("s3cret"));

    // The keychain: a Docker config.json for the upstream's host.
    let cfg_dir = st.dir.path().join("docker");
    std::fs::create_dir_all(&cfg_dir).unwrap();
    std::fs::write(
        cfg_dir.join("config.json"),
        format!(
            "{{\"auths\":{{\"{}\":{{\"auth\":\"Y2k6czNjcmV0\"}}}}}}",
            up.proxy.addr
        ),
    )
    .unwrap();
    let st2 = Storage::new(Backend::Fs);
    let home = st2.dir.path().to_str().unwrap().to_string();
    let s2 = Server::start_with_env(
        &st2,
        &up.toml("corp.io", ""),
        &[
            ("DOCKER_CONFIG", cfg_dir.to_str().unwrap()),
            ("HOME", &home),
        ],
    );
    assert_eq!(get(&s2, "/v2/corp.io/team/app/manifests/v1").status(), 200);

    // Without credentials the upstream refuses: an error that says so, not a 404.
    let st3 = Storage::new(Backend::Fs);
    let s3 = Server::start_with_env(
        &st3,
        &up.toml("corp.io", "keychain = false"),
        &[("HOME", &home)],
    );
    let r = get(&s3, "/v2/corp.io/team/app/manifests/v1");
    assert_eq!(r.status(), 502);
    assert!(r.text().unwrap().contains("credentials"));
}

#[test]
fn proxy_upstream_bearer_tokens_cached_per_scope() {
    let st = Storage::new(Backend::Fs);
    let ts = teu_testkit::token_server::TokenServer::start(st.dir.path(), "bob", "tokenpass");
    let reg = Registry::start(Auth::Token {
        realm: ts.realm.clone(),
        cert: ts.cert.clone(),
    });
    let proxy = Proxy::start(&reg.addr);
    let up = Up { reg, proxy };
    let tok: serde_json::Value = client()
        .get(format!(
            "{}?service=teu-test-registry&scope=repository:team/app:pull,push",
            ts.realm
        ))
        .basic_auth("bob", Some("tokenpass"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let mut h = reqwest::header::HeaderMap::new();
    h.insert(
        "Authorization",
        format!("Bearer {}", tok["token"].as_str().unwrap())
            .parse()
            .unwrap(),
    );
    let authed = reqwest::blocking::Client::builder()
        .default_headers(h)
        .build()
        .unwrap();
    let base = up.base();
    let blob = b"token-guarded layer";
    let d = push_blob_with(&authed, &base, "team/app", blob);
    push_blob_with(&authed, &base, "team/app", b"{}");
    let m = manifest(b"{}", &[blob], serde_json::json!({}));
    let r = authed
        .put(format!("{base}/v2/team/app/manifests/v1"))
        .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        .body(m.clone())
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);

    let s = Server::start_with_env(
        &st,
        &up.toml(
            "corp.io",
            "username = \"bob\"\npassword_env = \"TEU_TEST_TOKEN_PASSWORD\"",
        ),
        &[("TEU_TEST_TOKEN_PASSWORD", "tokenpass")],
    );
    let r = get(&s, "/v2/corp.io/team/app/manifests/v1");
    assert_eq!(r.status(), 200);
    assert_eq!(hdr(&r, "docker-content-digest"), sha256(&m));
    let r = get(&s, &format!("/v2/corp.io/team/app/blobs/{d}"));
    assert_eq!(r.bytes().unwrap().as_ref(), blob);
    // One token for the repository's pull scope, reused for the manifest and the blob.
    let pulls = ts
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|(who, scopes)| who == "bob" && scopes == &["repository:team/app:pull"])
        .count();
    assert_eq!(pulls, 1);
}

/// A client of one upstream that joins a fill started for another upstream, which does
/// not have the blob, gets the blob from its own upstream.
#[test]
fn proxy_joined_fill_of_another_upstream_that_lacks_the_blob() {
    let a = Up::start();
    let b = Up::start();
    let st = Storage::new(Backend::Fs);
    let cfg = format!("{}{}", a.toml("docker.io", ""), b.toml("ghcr.io", ""));
    let s = Server::start_with(&st, &cfg);
    let blob = noise(1 << 20, 11);
    let d = sha256(&blob);
    push_blob_to(&b.base(), "y/app", &blob);
    // Docker Hub takes its time to say it has no such blob, long enough to be joined.
    a.proxy.fault(
        "GET",
        "/blobs/",
        FaultKind::Slow(Duration::from_millis(1500)),
        1,
    );
    let first = {
        let url = s.url(&format!("/v2/docker.io/library/x/blobs/{d}"));
        std::thread::spawn(move || client().get(url).send().unwrap().status())
    };
    std::thread::sleep(Duration::from_millis(500));
    let r = get(&s, &format!("/v2/ghcr.io/y/app/blobs/{d}"));
    assert_eq!(r.status(), 200);
    let (got, n) = hash_body(r).unwrap();
    assert_eq!((got.as_str(), n), (d.as_str(), blob.len() as u64));
    assert_eq!(first.join().unwrap(), 404, "docker.io has no such blob");
    assert!(
        metric(&s, "teu_serve_proxy_coalesced") >= 1,
        "the ghcr.io client joined the docker.io fill"
    );
    fills_done(&s);
    let (got, _) = hash_body(get(&s, &format!("/v2/ghcr.io/y/app/blobs/{d}"))).unwrap();
    assert_eq!(got, d, "and it was cached");
}

/// Cached tags stand in for an unavailable upstream, never for one that refuses; the
/// client's `ns=` is not sent upstream, and the stale list is paged and named as asked.
#[test]
fn proxy_tags_list_stale_only_when_unavailable() {
    let up = Up::start();
    let st = Storage::new(Backend::Fs);
    let s = Server::start_with(&st, &up.toml("docker.io", ""));
    for (i, t) in ["v1", "v2", "v3"].iter().enumerate() {
        push_up(
            &up,
            "library/app",
            t,
            format!("{{\"n\":{i}}}").as_bytes(),
            &[],
        );
        assert_eq!(
            get(&s, &format!("/v2/library/app/manifests/{t}?ns=docker.io")).status(),
            200
        );
    }
    up.requests();
    let r = get(&s, "/v2/library/app/tags/list?ns=docker.io&n=10");
    assert_eq!(r.status(), 200);
    let paths: Vec<String> = up.requests().into_iter().map(|(_, p, _)| p).collect();
    assert_eq!(paths, vec!["/v2/library/app/tags/list?n=10".to_string()]);
    // 403: the upstream's answer, not an outage.
    up.proxy
        .fault("GET", "/tags/list", FaultKind::Status(403, None), 1);
    let r = get(&s, "/v2/library/app/tags/list?ns=docker.io");
    assert_eq!(
        r.status(),
        502,
        "a refusal is not covered up with the cache"
    );
    assert!(r.headers().get("warning").is_none());
    up.proxy.set_down(true);
    let r = get(&s, "/v2/library/app/tags/list?ns=docker.io&n=1&last=v1");
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("warning").is_some());
    let link = r.headers()["link"].to_str().unwrap().to_string();
    assert!(
        link.contains("last=v2") && link.contains("ns=docker.io"),
        "{link}"
    );
    let v: serde_json::Value = r.json().unwrap();
    assert_eq!(
        v,
        serde_json::json!({"name": "library/app", "tags": ["v2"]})
    );
    let r = get(&s, "/v2/docker.io/library/app/tags/list");
    let v: serde_json::Value = r.json().unwrap();
    assert_eq!(v["name"], "docker.io/library/app");
    assert_eq!(v["tags"], serde_json::json!(["v1", "v2", "v3"]));
    up.proxy.set_down(false);
    // The upstream's own answer is named as asked too.
    let r = get(&s, "/v2/docker.io/library/app/tags/list");
    assert!(r.headers().get("warning").is_none());
    let v: serde_json::Value = r.json().unwrap();
    assert_eq!(v["name"], "docker.io/library/app");
    assert_eq!(v["tags"], serde_json::json!(["v1", "v2", "v3"]));
}

/// An upstream body without Content-Length is read only up to its limit.
#[test]
fn proxy_unsized_manifest_and_tags_list_are_bounded() {
    let up = Up::start();
    let st = Storage::new(Backend::Fs);
    let s = Server::start_with(&st, &up.toml("docker.io", ""));
    let huge = vec![b' '; 5 << 20];
    up.proxy
        .fault("GET", "/manifests/", FaultKind::Unsized(huge.clone()), 1);
    let r = get(&s, "/v2/docker.io/library/app/manifests/v1");
    assert_eq!(r.status(), 502);
    let text = r.text().unwrap();
    assert!(text.contains("4194304-byte limit"), "{text}");
    up.proxy
        .fault("GET", "/tags/list", FaultKind::Unsized(huge), 1);
    let r = get(&s, "/v2/docker.io/library/app/tags/list");
    assert_eq!(r.status(), 502);
    let text = r.text().unwrap();
    assert!(text.contains("-byte limit"), "{text}");
    assert_eq!(up.proxy.faults_left(), 0);
}

fn blob_gets_up(up: &Up) -> usize {
    up.requests()
        .into_iter()
        .filter(|(m, p, _)| m == "GET" && p.contains("/blobs/"))
        .count()
}

/// A blob the upstream sends without Content-Length: its size is known only at the end,
/// and it is still checked before it is cached or its last byte reaches the client.
fn unsized_upstream_blob(b: Backend) {
    let up = Up::start();
    let st = Storage::new(b);
    let s = Server::start_with(&st, &up.toml("docker.io", ""));
    let blob = noise(3 << 20, 21);
    let d = sha256(&blob);
    push_up(&up, "library/app", "v1", b"{}", &[&blob]);
    up.requests();
    let path = format!("/v2/docker.io/library/app/blobs/{d}");
    up.proxy.fault(
        "GET",
        "/blobs/",
        FaultKind::NoContentLength { corrupt: true },
        1,
    );
    let r = get(&s, &path);
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("content-length").is_none());
    assert!(
        r.bytes().is_err(),
        "a corrupt unsized blob is never complete"
    );
    fills_done(&s);
    assert_eq!(blob_gets_up(&up), 1);
    // Nothing was cached: this fetches again, unsized but intact, and caches it.
    up.proxy.fault(
        "GET",
        "/blobs/",
        FaultKind::NoContentLength { corrupt: false },
        1,
    );
    let (got, n) = hash_body(get(&s, &path)).unwrap();
    assert_eq!((got.as_str(), n), (d.as_str(), blob.len() as u64));
    assert_eq!(blob_gets_up(&up), 1);
    assert_eq!(up.proxy.faults_left(), 0);
    fills_done(&s);
    let r = get(&s, &path);
    assert_eq!(
        r.headers()["content-length"].to_str().unwrap(),
        blob.len().to_string()
    );
    let (got, _) = hash_body(r).unwrap();
    assert_eq!(got, d);
    assert_eq!(blob_gets_up(&up), 0, "served from the cache");
}

#[test]
fn proxy_unsized_upstream_blob_fs() {
    unsized_upstream_blob(Backend::Fs);
}

#[test]
fn proxy_unsized_upstream_blob_s3() {
    unsized_upstream_blob(Backend::S3);
}

/// A fill cut mid-body fails its client, stores nothing, and the next request fills again.
fn fill_cut_mid_body(b: Backend) {
    let up = Up::start();
    let st = Storage::new(b);
    let s = Server::start_with(&st, &up.toml("docker.io", ""));
    let blob = noise(3 << 20, 31);
    let d = sha256(&blob);
    push_up(&up, "library/app", "v1", b"{}", &[&blob]);
    up.requests();
    let path = format!("/v2/docker.io/library/app/blobs/{d}");
    for kind in [FaultKind::Truncate, FaultKind::ResetMidBody] {
        up.proxy.fault("GET", "/blobs/", kind.clone(), 1);
        let r = get(&s, &path);
        assert_eq!(r.status(), 200);
        assert!(r.bytes().is_err(), "{kind:?}: the client sees the cut");
        fills_done(&s);
        assert_eq!(blob_gets_up(&up), 1);
    }
    let (got, n) = hash_body(get(&s, &path)).unwrap();
    assert_eq!((got.as_str(), n), (d.as_str(), blob.len() as u64));
    assert_eq!(blob_gets_up(&up), 1);
    fills_done(&s);
    let (got, _) = hash_body(get(&s, &path)).unwrap();
    assert_eq!(got, d);
    assert_eq!(blob_gets_up(&up), 0, "the re-fill was cached");
}

#[test]
fn proxy_fill_cut_mid_body_then_refilled_fs() {
    fill_cut_mid_body(Backend::Fs);
}

#[test]
fn proxy_fill_cut_mid_body_then_refilled_s3() {
    fill_cut_mid_body(Backend::S3);
}
