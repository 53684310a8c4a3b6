//! eStargz layers checked by the readers that matter: plain runtimes (gzip, tar, umoci,
//! skopeo, the registry) see a valid `tar+gzip` layer; the upstream Go `estargz` library
//! (Debian's package, through teu-testkit's small Go program) opens the footer and TOC,
//! verifies the TOC against the annotation and every chunk against its digest;
//! `ctr-remote` finds the TOC digest in a private containerd's content store; and teu's
//! own random-access reader fetches one file by the byte ranges the TOC names, from a
//! file and with HTTP `Range` from the real registry.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use teu_layer::estargz::{self, parse_footer, parse_toc_member, FOOTER_SIZE};

use crate::common::registry::{Auth, Registry};
use crate::common::*;

/// A tree with a file of three 4 MiB chunks (the default size), small files, an empty
/// one, a symlink and a hard link; prefetching the server binary and the libraries.
fn project(root: &Path) -> PathBuf {
    let src = root.join("src");
    write(&src.join("app/bin/server"), &random(9 << 20, 7));
    for i in 0..40 {
        let body = format!("library {i}\n").repeat(i * 31 + 1);
        write(&src.join(format!("app/lib/lib{i:02}.so")), body.as_bytes());
    }
    write(&src.join("etc/app.conf"), b"key = value\n");
    write(&src.join("etc/empty"), b"");
    symlink("../etc/app.conf", src.join("app/conf")).unwrap();
    fs::hard_link(src.join("etc/app.conf"), src.join("etc/app.conf.link")).unwrap();
    fs::write(
        root.join("teu.toml"),
        "[image]\ncompression = \"estargz\"\nplatform = \"linux/amd64\"\n\n\
         [[layer]]\nname = \"app\"\ncopy = [{ src = \"src/\", dest = \"/\" }]\n\
         prefetch = [\"/app/bin/server\", \"/app/lib/**\"]\n",
    )
    .unwrap();
    src
}

/// The layout's only manifest's layers: (digest, blob path, annotations).
fn layers(layout: &Path) -> Vec<(String, PathBuf, Value)> {
    let index: Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let m = index["manifests"][0]["digest"].as_str().unwrap();
    let blob = |d: &str| {
        layout
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let manifest: Value = serde_json::from_slice(&fs::read(blob(m)).unwrap()).unwrap();
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let d = l["digest"].as_str().unwrap().to_string();
            (d.clone(), blob(&d), l["annotations"].clone())
        })
        .collect()
}

fn verifier() -> PathBuf {
    teu_testkit::estargz_verifier(Path::new(env!("CARGO_TARGET_TMPDIR")))
}

#[test]
fn golden_digest_and_same_bytes_across_directories_umask_mtimes_and_threads() {
    let t = tempfile::tempdir().unwrap();
    let a = t.path().join("one/checkout");
    let b = t.path().join("another/place");
    copy_tree(&example_dir(), &a);
    copy_tree(&example_dir(), &b);
    // Checked out elsewhere: umask 077 permissions and scattered mtimes.
    crate::reproducible::roughen(&b, 7);
    let build = |dir: &Path, home: &str, jobs: &str, tz: &str| {
        digest(&ok(teu(&t.path().join(home))
            .current_dir(t.path())
            .env("TZ", tz)
            .args([
                "build",
                dir.to_str().unwrap(),
                "--compression",
                "estargz",
                "--jobs",
                jobs,
                "-q",
                "-o",
                &format!("oci:{}", dir.join("out").display()),
            ])))
    };
    let first = build(&a, "home-a", "1", "UTC");
    let second = build(&b, "home-b", "2", "Asia/Tokyo");
    assert_eq!(
        first, second,
        "same eStargz image from another place and thread count"
    );
    let golden = fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/golden/estargz-hello.digest"),
    )
    .unwrap();
    assert_eq!(
        first,
        golden.trim(),
        "the eStargz bytes of the example changed: an encoder or layout change must be deliberate (bump estargz::WRITER_VERSION and this golden digest)"
    );
    let l = layers(&a.join("out"));
    assert!(
        l[0].2[estargz::TOC_DIGEST_ANNOTATION].is_string(),
        "{:?}",
        l[0].2
    );
}

#[test]
fn plain_tools_and_the_go_estargz_library_read_it() {
    let t = tempfile::tempdir().unwrap();
    let src = project(t.path());
    let layout = t.path().join("out");
    ok(teu(&t.path().join("home")).args([
        "build",
        t.path().to_str().unwrap(),
        "-q",
        "-o",
        &format!("oci:{}:v1", layout.display()),
    ]));
    let l = layers(&layout);
    assert_eq!(l.len(), 1);
    let (_, blob, ann) = &l[0];
    let toc_digest = ann[estargz::TOC_DIGEST_ANNOTATION].as_str().unwrap();

    // gzip and tar: one valid stream, the TOC its last entry, prefetched files first.
    ok(Command::new(tool("gzip")).arg("-t").arg(blob));
    let list =
        String::from_utf8(ok(Command::new(tool("tar")).arg("-tzf").arg(blob)).stdout).unwrap();
    let names: Vec<&str> = list.lines().collect();
    assert_eq!(names.last(), Some(&"stargz.index.json"), "{list}");
    let server = names.iter().position(|n| *n == "app/bin/server").unwrap();
    let mark = names
        .iter()
        .position(|n| *n == ".prefetch.landmark")
        .unwrap();
    let lib = names.iter().position(|n| *n == "app/lib/lib39.so").unwrap();
    let conf = names.iter().position(|n| *n == "etc/app.conf").unwrap();
    assert!(server < mark && lib < mark && mark < conf, "{list}");
    // The uncompressed size annotation and diff_id cover the whole stream.
    let mut tar = Vec::new();
    flate2::read::MultiGzDecoder::new(fs::File::open(blob).unwrap())
        .read_to_end(&mut tar)
        .unwrap();
    assert_eq!(
        ann[estargz::UNCOMPRESSED_SIZE_ANNOTATION].as_str().unwrap(),
        tar.len().to_string()
    );

    // The upstream reader: footer, TOC digest, every chunk and file digest.
    let v = verifier();
    let out = ok(Command::new(&v).arg(blob).arg(toc_digest));
    let report = String::from_utf8_lossy(&out.stdout).to_string();
    // 4 directories, a symlink, 45 files: 43 of the sources, the landmark and the hard
    // link (the library resolves it to its target's file). The server is three chunks,
    // the empty file none.
    assert_eq!(
        report.trim(),
        "ok entries=50 files=45 chunks=46",
        "{report}"
    );
    let cat = ok(Command::new(&v)
        .arg(blob)
        .arg(toc_digest)
        .args(["cat", "app/bin/server"]));
    assert!(
        cat.stdout == random(9 << 20, 7),
        "the library reads the file's bytes"
    );
    // A wrong annotation is refused (the check is real).
    let wrong = Command::new(&v)
        .arg(blob)
        .arg(format!("sha256:{}", "0".repeat(64)))
        .output()
        .unwrap();
    assert!(!wrong.status.success());

    // umoci: the rootfs is the sources plus the landmark and the TOC file.
    let unpacked = t.path().join("unpacked");
    ok(Command::new(tool("umoci")).args([
        "unpack",
        "--rootless",
        "--image",
        &format!("{}:v1", layout.display()),
        unpacked.to_str().unwrap(),
    ]));
    let rootfs = unpacked.join("rootfs");
    assert_eq!(fs::read(rootfs.join(".prefetch.landmark")).unwrap(), [0x0f]);
    fs::remove_file(rootfs.join(".prefetch.landmark")).unwrap();
    fs::remove_file(rootfs.join("stargz.index.json")).unwrap();
    assert_eq!(describe_tree(&rootfs), describe_tree(&src));

    // skopeo copies it like any image.
    ok(Command::new(tool("skopeo")).args([
        "copy",
        &format!("oci:{}:v1", layout.display()),
        &format!("oci:{}:v1", t.path().join("copied").display()),
    ]));
    assert_eq!(layers(&t.path().join("copied"))[0].0, l[0].0);
}

/// Fetch one file by the ranges the TOC names with `range(offset, len)`, having first
/// read the footer and the TOC member the same way; check its bytes.
fn fetch_by_ranges(
    len: u64,
    range: &mut dyn FnMut(u64, u64) -> Vec<u8>,
    toc_digest: &str,
    name: &str,
    want: &[u8],
) -> u64 {
    let mut fetched = 0;
    let mut get = |o: u64, l: u64| {
        fetched += l;
        range(o, l)
    };
    let footer = get(len - FOOTER_SIZE as u64, FOOTER_SIZE as u64);
    let at = parse_footer(&footer).expect("an eStargz footer");
    let member = get(at, len - FOOTER_SIZE as u64 - at);
    let (toc, digest, _) = parse_toc_member(&member).unwrap();
    assert_eq!(digest.to_string(), toc_digest);
    let body = estargz::read_file_by_ranges(&toc, name, at, &mut |o, l| Ok(get(o, l))).unwrap();
    assert!(body == want, "{name} read by ranges");
    fetched
}

#[test]
fn a_file_is_read_by_the_ranges_its_toc_names_from_a_file_and_the_registry() {
    let t = tempfile::tempdir().unwrap();
    let src = project(t.path());
    let layout = t.path().join("out");
    let reg = Registry::start(Auth::None);
    let home = t.path().join("home");
    ok(teu(&home).args([
        "build",
        t.path().to_str().unwrap(),
        "-q",
        "-o",
        &format!("oci:{}", layout.display()),
    ]));
    ok(teu(&home).args([
        "build",
        t.path().to_str().unwrap(),
        "-q",
        "-o",
        &format!("{}/lazy/app:1", reg.addr),
    ]));
    let (digest, blob, ann) = layers(&layout).remove(0);
    let toc_digest = ann[estargz::TOC_DIGEST_ANNOTATION].as_str().unwrap();
    let len = fs::metadata(&blob).unwrap().len();
    let want = fs::read(src.join("app/lib/lib07.so")).unwrap();

    let f = fs::File::open(&blob).unwrap();
    let from_file = fetch_by_ranges(
        len,
        &mut |o, l| {
            let mut b = vec![0; l as usize];
            std::os::unix::fs::FileExt::read_exact_at(&f, &mut b, o).unwrap();
            b
        },
        toc_digest,
        "app/lib/lib07.so",
        &want,
    );
    assert!(from_file < len / 10, "{from_file} of {len} bytes fetched");

    // teu inspect --toc of the registry's copy (downloaded, verified) agrees.
    let toc: Value = serde_json::from_slice(
        &ok(teu(&home).args([
            "inspect",
            &format!("{}/lazy/app:1", reg.addr),
            "--toc",
            &digest,
            "--json",
        ]))
        .stdout,
    )
    .unwrap();
    assert_eq!(toc["toc_digest"], toc_digest);

    let path = format!("/v2/lazy/app/blobs/{digest}");
    let over_http = fetch_by_ranges(
        len,
        &mut |o, l| http_range(&reg.addr, &path, o, l),
        toc_digest,
        "app/lib/lib07.so",
        &want,
    );
    assert_eq!(over_http, from_file);
    // The second chunk of the big file, alone.
    let server = random(9 << 20, 7);
    fetch_by_ranges(
        len,
        &mut |o, l| http_range(&reg.addr, &path, o, l),
        toc_digest,
        "app/bin/server",
        &server,
    );

    // --format docker keeps the layer's annotations, so a lazy puller still finds the
    // TOC digest; the registry took the manifest and skopeo reads and copies it.
    ok(teu(&home).args([
        "build",
        t.path().to_str().unwrap(),
        "-q",
        "--format",
        "docker",
        "-o",
        &format!("{}/lazy/docker:1", reg.addr),
    ]));
    let image = format!("docker://{}/lazy/docker:1", reg.addr);
    let raw: Value = serde_json::from_slice(
        &ok(Command::new(tool("skopeo")).args(["inspect", "--raw", "--tls-verify=false", &image]))
            .stdout,
    )
    .unwrap();
    assert_eq!(
        raw["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    let layer = &raw["layers"][0];
    assert_eq!(
        layer["mediaType"],
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    );
    assert_eq!(layer["digest"], digest.as_str(), "the same blob");
    assert_eq!(
        layer["annotations"][estargz::TOC_DIGEST_ANNOTATION],
        toc_digest
    );
    assert_eq!(
        layer["annotations"][estargz::UNCOMPRESSED_SIZE_ANNOTATION],
        ann[estargz::UNCOMPRESSED_SIZE_ANNOTATION]
    );
    assert!(raw.get("annotations").is_none() && raw["config"].get("annotations").is_none());
    let copied = t.path().join("copied");
    ok(Command::new(tool("skopeo")).args([
        "copy",
        "--quiet",
        "--preserve-digests",
        "--src-tls-verify=false",
        &image,
        &format!("dir:{}", copied.display()),
    ]));
    assert!(copied.join("manifest.json").is_file());
}

/// `GET path` with `Range: bytes=offset-(offset+len-1)`; the body of a 206 answer.
fn http_range(addr: &str, path: &str, offset: u64, len: u64) -> Vec<u8> {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nRange: bytes={offset}-{}\r\nConnection: close\r\n\r\n",
        offset + len - 1
    )
    .unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let end = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&resp[..end]).to_string();
    assert!(head.starts_with("HTTP/1.1 206"), "{head}");
    let body = resp[end + 4..].to_vec();
    assert_eq!(body.len() as u64, len, "{head}");
    body
}

#[test]
fn ctr_remote_finds_the_toc_digest_in_containerd() {
    let ctrd = teu_testkit::engines::Containerd::start();
    let t = tempfile::tempdir().unwrap();
    project(t.path());
    let layout = t.path().join("out");
    let home = t.path().join("home");
    ok(teu(&home).args([
        "build",
        t.path().to_str().unwrap(),
        "-q",
        "-o",
        &format!("oci:{}:v1", layout.display()),
    ]));
    ok(teu(&home).args([
        "load",
        &format!("oci:{}:v1", layout.display()),
        "containerd:teu/docker.io/teu/lazy:v1",
        "--containerd-address",
        ctrd.socket.to_str().unwrap(),
    ]));
    let (digest, _, ann) = layers(&layout).remove(0);
    let out = ok(Command::new(tool("ctr-remote"))
        .arg("--address")
        .arg(&ctrd.socket)
        .args(["-n", "teu", "images", "get-toc-digest", &digest]));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        ann[estargz::TOC_DIGEST_ANNOTATION].as_str().unwrap()
    );
}

#[test]
fn cached_and_one_file_rebuilds_equal_a_clean_build() {
    let t = tempfile::tempdir().unwrap();
    let src = project(t.path());
    let home = t.path().join("home");
    let build = |home: &Path, extra: &[&str]| {
        let out = ok(teu(home)
            .args(["build", t.path().to_str().unwrap(), "--json", "-o"])
            .arg(format!("oci:{}", t.path().join("out").display()))
            .args(extra));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v
    };
    // Sources written within a build's first second are not recorded (racy): wait.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let first = build(&home, &[]);
    let again = build(&home, &[]);
    assert_eq!(first["digest"], again["digest"]);
    assert!(layers(&t.path().join("out"))[0].2[estargz::TOC_DIGEST_ANNOTATION].is_string());
    let hit = again.to_string();
    assert!(hit.contains("\"cached\":true"), "{hit}");
    write(&src.join("app/lib/lib05.so"), b"changed\n");
    let changed = build(&home, &[]);
    assert_ne!(changed["digest"], first["digest"]);
    let clean = build(&t.path().join("fresh-home"), &["--no-cache"]);
    assert_eq!(changed["digest"], clean["digest"]);
    // The blob is still a valid eStargz layer for the library.
    let (_, blob, ann) = layers(&t.path().join("out")).remove(0);
    ok(Command::new(verifier())
        .arg(blob)
        .arg(ann[estargz::TOC_DIGEST_ANNOTATION].as_str().unwrap()));
}

#[test]
fn convert_between_registries_round_trips_and_reuses_converted_layers() {
    let reg = Registry::start(Auth::None);
    let t = tempfile::tempdir().unwrap();
    let src = project(t.path());
    // A gzip index of two platforms sharing the layer, as a base would come.
    fs::write(
        t.path().join("teu.toml"),
        "[image]\nplatforms = [\"linux/amd64\", \"linux/arm64\"]\n\n\
         [[layer]]\nname = \"app\"\ncopy = [{ src = \"src/\", dest = \"/\" }]\n",
    )
    .unwrap();
    let home = t.path().join("home");
    let r = |tag: &str| format!("{}/conv/app:{tag}", reg.addr);
    ok(teu(&home).args(["build", t.path().to_str().unwrap(), "-q", "-o", &r("gz")]));
    let convert = |from: &str, to: &str, c: &str| -> Value {
        let out = ok(teu(&home).args(["convert", from, to, "--compression", c, "--json", "-q"]));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let esgz = convert(&r("gz"), &r("esgz"), "estargz");
    let layers_done = esgz["layers"].as_array().unwrap();
    assert_eq!(
        layers_done.len(),
        1,
        "the shared layer is converted once: {esgz}"
    );
    assert_eq!(layers_done[0]["cached"], false);
    assert!(layers_done[0]["toc_digest"].is_string());

    // The same source layer again: from the conversion cache, same image.
    let layout = t.path().join("esgz");
    let again = convert(&r("gz"), &format!("oci:{}:v1", layout.display()), "estargz");
    assert_eq!(again["layers"][0]["cached"], true, "{again}");
    assert_eq!(again["digest"], esgz["digest"]);

    // eStargz -> gzip -> eStargz gives the same digest; eStargz -> eStargz too.
    let gz2 = convert(&r("esgz"), &r("gz2"), "gzip");
    assert_ne!(gz2["digest"], esgz["digest"]);
    let esgz2 = convert(&r("gz2"), &r("esgz2"), "estargz");
    assert_eq!(esgz2["digest"], esgz["digest"]);
    let same = convert(&r("esgz"), &r("esgz3"), "estargz");
    assert_eq!(same["digest"], esgz["digest"]);
    let zstd = convert(&r("esgz"), &r("zstd"), "zstd");
    assert_eq!(
        zstd["layers"][0]["media_type"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );

    // The converted image is a valid eStargz image: the library verifies the layer, umoci
    // unpacks it (checking the rewritten diff_ids) to the sources.
    let index: Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let top = index["manifests"][0]["digest"].as_str().unwrap();
    let blob = |d: &str| {
        layout
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let inner: Value = serde_json::from_slice(&fs::read(blob(top)).unwrap()).unwrap();
    let amd64 = inner["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["platform"]["architecture"] == "amd64")
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let manifest: Value = serde_json::from_slice(&fs::read(blob(&amd64)).unwrap()).unwrap();
    let layer = &manifest["layers"][0];
    ok(Command::new(verifier())
        .arg(blob(layer["digest"].as_str().unwrap()))
        .arg(
            layer["annotations"][estargz::TOC_DIGEST_ANNOTATION]
                .as_str()
                .unwrap(),
        ));
    let flat = t.path().join("flat");
    ok(teu(&home).args([
        "copy",
        &format!("oci:{}:v1", layout.display()),
        &format!("oci:{}:amd64", flat.display()),
        "--platform",
        "linux/amd64",
        "-q",
    ]));
    let unpacked = t.path().join("unpacked");
    ok(Command::new(tool("umoci")).args([
        "unpack",
        "--rootless",
        "--image",
        &format!("{}:amd64", flat.display()),
        unpacked.to_str().unwrap(),
    ]));
    let rootfs = unpacked.join("rootfs");
    fs::remove_file(rootfs.join(".no.prefetch.landmark")).unwrap();
    fs::remove_file(rootfs.join("stargz.index.json")).unwrap();
    assert_eq!(describe_tree(&rootfs), describe_tree(&src));
}

#[test]
fn inspect_marks_estargz_layers_prints_the_toc_and_diff_reads_them() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("home");
    let out = |name: &str| format!("oci:{}:v1", t.path().join(name).display());
    for (name, c) in [("esgz", "estargz"), ("gz", "gzip")] {
        ok(teu(&home).args([
            "build",
            example_dir().to_str().unwrap(),
            "--compression",
            c,
            "-q",
            "-o",
            &out(name),
        ]));
    }
    let human = String::from_utf8(ok(teu(&home).args(["inspect", &out("esgz")])).stdout).unwrap();
    let (digest, _, ann) = layers(&t.path().join("esgz")).remove(0);
    let toc = ann[estargz::TOC_DIGEST_ANNOTATION].as_str().unwrap();
    assert!(human.contains(&format!("eStargz, TOC {toc}")), "{human}");
    let plain = String::from_utf8(ok(teu(&home).args(["inspect", &out("gz")])).stdout).unwrap();
    assert!(!plain.contains("eStargz"), "{plain}");

    let json: Value = serde_json::from_slice(
        &ok(teu(&home).args(["inspect", &out("esgz"), "--toc", &digest, "--json"])).stdout,
    )
    .unwrap();
    assert_eq!(json["toc_digest"], toc);
    assert_eq!(json["annotated"], true);
    let entries = json["toc"]["entries"].as_array().unwrap();
    assert_eq!(entries[0]["name"], ".no.prefetch.landmark");
    assert!(entries
        .iter()
        .any(|e| e["name"] == "app/bin/hello" && e["type"] == "reg"));
    let text =
        String::from_utf8(ok(teu(&home).args(["inspect", &out("esgz"), "--toc", &digest])).stdout)
            .unwrap();
    assert!(text.contains("(matches the annotation)"), "{text}");
    // A one-chunk file's chunk line has the file's size (the TOC leaves `chunkSize` out).
    let hello = entries
        .iter()
        .find(|e| e["name"] == "app/bin/hello")
        .unwrap();
    let size = hello["size"].as_u64().unwrap();
    let at = text.find("app/bin/hello").unwrap();
    let chunk_line = text[at..].lines().nth(1).unwrap();
    assert!(
        chunk_line.contains(&format!(
            "chunk +0 {size} bytes, member @{}",
            hello["offset"]
        )),
        "{text}"
    );

    let gz_layer = layers(&t.path().join("gz")).remove(0).0;
    let (_, err) = fails(teu(&home).args(["inspect", &out("gz"), "--toc", &gz_layer]));
    assert!(err.contains("not an eStargz blob"), "{err}");

    // diff reads both as tar+gzip: the same files, plus the landmark and the TOC.
    // (exit status 1: the images differ, as diff(1) says)
    let d = teu(&home)
        .args(["diff", &out("gz"), &out("esgz")])
        .output()
        .unwrap();
    assert_eq!(
        d.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&d.stderr)
    );
    let diff = String::from_utf8(d.stdout).unwrap();
    assert!(diff.contains("+ /.no.prefetch.landmark"), "{diff}");
    assert!(diff.contains("+ /stargz.index.json"), "{diff}");
    assert!(
        !diff.contains("app/bin/hello"),
        "same files otherwise: {diff}"
    );
}

#[test]
fn convert_keeps_a_foreign_layers_entries_order_and_metadata() {
    // A layer written by GNU tar (./ prefixes, GNU long names, a hard link, real mtimes),
    // used verbatim, then converted: the rootfs is the same, landmark and TOC aside.
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    let long = format!("{}/{}", "d".repeat(120), "f".repeat(110));
    write(&src.join(&long), b"long\n");
    write(&src.join("a"), b"x\n");
    fs::hard_link(src.join("a"), src.join("hl")).unwrap();
    symlink("a", src.join("sl")).unwrap();
    write(&src.join("big"), &random(5 << 20, 3));
    ok(Command::new(tool("tar")).args([
        "-C",
        src.to_str().unwrap(),
        "-czf",
        t.path().join("layer.tar.gz").to_str().unwrap(),
        "--owner=0",
        "--group=0",
        ".",
    ]));
    fs::write(
        t.path().join("teu.toml"),
        "[image]\nplatform = \"linux/amd64\"\n[[layer]]\ntars = [{ src = \"layer.tar.gz\", normalize = false }]\n",
    )
    .unwrap();
    let home = t.path().join("home");
    let at = |n: &str| format!("oci:{}:v1", t.path().join(n).display());
    ok(teu(&home).args(["build", t.path().to_str().unwrap(), "-q", "-o", &at("gz")]));
    ok(teu(&home).args([
        "convert",
        &at("gz"),
        &at("es"),
        "--compression",
        "estargz",
        "-q",
    ]));
    let (_, blob, ann) = layers(&t.path().join("es")).remove(0);
    let out = ok(Command::new(verifier())
        .arg(&blob)
        .arg(ann[estargz::TOC_DIGEST_ANNOTATION].as_str().unwrap()));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("files=5 chunks=6"),
        "a, its hard link (read through a), the long-named file, big in two chunks, the landmark: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let unpack = |n: &str| {
        let dir = t.path().join(format!("unpacked-{n}"));
        ok(Command::new(tool("umoci")).args([
            "unpack",
            "--rootless",
            "--image",
            &format!("{}:v1", t.path().join(n).display()),
            dir.to_str().unwrap(),
        ]));
        dir.join("rootfs")
    };
    let (gz, es) = (unpack("gz"), unpack("es"));
    fs::remove_file(es.join(".no.prefetch.landmark")).unwrap();
    fs::remove_file(es.join("stargz.index.json")).unwrap();
    assert_eq!(describe_tree(&es), describe_tree(&gz));
    assert_eq!(link_groups(&es), link_groups(&gz));
    let mtime = |p: &Path| fs::symlink_metadata(p).unwrap().modified().unwrap();
    let secs =
        |t: std::time::SystemTime| t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    // GNU tar's headers hold whole seconds.
    assert_eq!(
        secs(mtime(&es.join("a"))),
        secs(mtime(&src.join("a"))),
        "mtimes are kept"
    );
    assert_eq!(mtime(&es.join("a")), mtime(&gz.join("a")));
}

/// `security.capability` as `setcap cap_net_raw+ep` writes it (VFS_CAP_REVISION_2):
/// binary, with NULs, the attribute real bases carry on ping and arping.
const CAP_NET_RAW_EP: [u8; 20] = [
    1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

/// The `SCHILY.xattr.*` records of `path` in an uncompressed tar stream, by name.
fn tar_xattrs(tar: &[u8], path: &str) -> Vec<(String, Vec<u8>)> {
    let mut ar = tar::Archive::new(tar);
    for item in ar.entries().unwrap() {
        let mut item = item.unwrap();
        if item
            .path()
            .unwrap()
            .to_str()
            .unwrap()
            .trim_start_matches("./")
            != path
        {
            continue;
        }
        let Some(ext) = item.pax_extensions().unwrap() else {
            return Vec::new();
        };
        let mut out: Vec<(String, Vec<u8>)> = ext
            .map(|x| x.unwrap())
            .filter_map(|x| {
                let name = x.key().unwrap().strip_prefix("SCHILY.xattr.")?.to_string();
                Some((name, x.value_bytes().to_vec()))
            })
            .collect();
        out.sort();
        return out;
    }
    panic!("{path} is not in the tar stream");
}

#[test]
fn convert_carries_extended_attributes_into_the_tar_and_the_toc() {
    // A base as distributions ship it: ping with security.capability (binary) in a PAX
    // header, written in an order teu does not use, next to a file without any.
    let t = tempfile::tempdir().unwrap();
    // '=' inside a PAX value (not a newline: the tar crate's reader splits records on
    // newlines rather than by their length).
    let note = b"a=b c".to_vec();
    let mut pax = Vec::new();
    for (k, v) in [
        ("SCHILY.xattr.user.note", &note[..]),
        ("SCHILY.xattr.security.capability", &CAP_NET_RAW_EP[..]),
    ] {
        let rest = k.len() + v.len() + 3;
        let mut len = rest + 1;
        while len != rest + len.to_string().len() {
            len = rest + len.to_string().len();
        }
        pax.extend_from_slice(format!("{len} {k}=").as_bytes());
        pax.extend_from_slice(v);
        pax.push(b'\n');
    }
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, kind: tar::EntryType, mode: u32, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_path(name).unwrap();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        h.set_mtime(1_600_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h.set_cksum();
        b.append(&h, data).unwrap();
    };
    add("bin/", tar::EntryType::Directory, 0o755, b"");
    add("bin/PaxHeaders/ping", tar::EntryType::XHeader, 0o644, &pax);
    add(
        "bin/ping",
        tar::EntryType::Regular,
        0o755,
        b"\x7fELF ping\n",
    );
    add("etc/", tar::EntryType::Directory, 0o755, b"");
    add("etc/plain", tar::EntryType::Regular, 0o644, b"no xattrs\n");
    let layer = b.into_inner().unwrap();
    fs::write(t.path().join("layer.tar"), &layer).unwrap();
    let want = vec![
        ("security.capability".to_string(), CAP_NET_RAW_EP.to_vec()),
        ("user.note".to_string(), note.clone()),
    ];
    assert_eq!(tar_xattrs(&layer, "bin/ping"), want, "the fixture itself");
    fs::write(
        t.path().join("teu.toml"),
        "[image]\nplatform = \"linux/amd64\"\n[[layer]]\ntars = [{ src = \"layer.tar\", normalize = false }]\n",
    )
    .unwrap();
    let home = t.path().join("home");
    let at = |n: &str| format!("oci:{}:v1", t.path().join(n).display());
    ok(teu(&home).args(["build", t.path().to_str().unwrap(), "-q", "-o", &at("gz")]));
    for (to, c) in [("es", "estargz"), ("zst", "zstd")] {
        ok(teu(&home).args(["convert", &at("gz"), &at(to), "--compression", c, "-q"]));
    }

    // gzip and zstd keep the tar stream verbatim, xattrs and all.
    let gunzip = |p: &Path| {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(fs::File::open(p).unwrap())
            .read_to_end(&mut out)
            .unwrap();
        out
    };
    let (_, gz_blob, _) = layers(&t.path().join("gz")).remove(0);
    let (_, zst_blob, _) = layers(&t.path().join("zst")).remove(0);
    let gz_tar = gunzip(&gz_blob);
    assert!(
        gz_tar == layer,
        "a normalize = false tarball is kept verbatim"
    );
    assert!(
        zstd::decode_all(fs::File::open(&zst_blob).unwrap()).unwrap() == gz_tar,
        "gzip to zstd keeps the tar stream verbatim"
    );

    // eStargz: the Go library accepts it, the tar stream and the TOC carry the xattrs.
    let (_, blob, ann) = layers(&t.path().join("es")).remove(0);
    let toc_digest = ann[estargz::TOC_DIGEST_ANNOTATION].as_str().unwrap();
    ok(Command::new(verifier()).arg(&blob).arg(toc_digest));
    let es_tar = gunzip(&blob);
    assert_eq!(tar_xattrs(&es_tar, "bin/ping"), want);
    assert_eq!(tar_xattrs(&es_tar, "etc/plain"), []);
    let bytes = fs::read(&blob).unwrap();
    let at_toc = parse_footer(&bytes[bytes.len() - FOOTER_SIZE..]).unwrap();
    let (toc, _, _) = parse_toc_member(&bytes[at_toc as usize..bytes.len() - FOOTER_SIZE]).unwrap();
    let entry = |n: &str| toc.entries.iter().find(|e| e.name == n).unwrap();
    let xattrs = entry("bin/ping")
        .xattrs
        .clone()
        .expect("ping's TOC entry has xattrs");
    use base64::Engine as _;
    let decoded: Vec<(String, Vec<u8>)> = xattrs
        .iter()
        .map(|(k, v)| {
            let v = base64::engine::general_purpose::STANDARD.decode(v).unwrap();
            (k.clone(), v)
        })
        .collect();
    assert_eq!(decoded, want);
    assert_eq!(entry("etc/plain").xattrs, None, "no empty xattrs object");
    assert_eq!(entry("bin/ping").kind, "reg");

    // Converting back to gzip is verbatim too: the eStargz tar stream with its xattrs.
    ok(teu(&home).args([
        "convert",
        &at("es"),
        &at("back"),
        "--compression",
        "gzip",
        "-q",
    ]));
    let (_, back_blob, _) = layers(&t.path().join("back")).remove(0);
    assert!(gunzip(&back_blob) == es_tar);

    // umoci (as root, not rootless) restores them on disk; GNU tar reads them back.
    let rootfs = t.path().join("unpacked");
    ok(Command::new(tool("umoci")).args([
        "unpack",
        "--image",
        &format!("{}:v1", t.path().join("es").display()),
        rootfs.to_str().unwrap(),
    ]));
    let re = t.path().join("re.tar");
    ok(Command::new(tool("tar")).args([
        "--format=posix",
        "--xattrs",
        "--xattrs-include=*",
        "-C",
        rootfs.join("rootfs").to_str().unwrap(),
        "-cf",
        re.to_str().unwrap(),
        "bin/ping",
    ]));
    assert_eq!(tar_xattrs(&fs::read(&re).unwrap(), "bin/ping"), want);
}

#[test]
fn convert_refuses_a_source_layer_that_is_not_its_descriptor() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    write(&src.join("a"), &random(300_000, 3));
    let home = t.path().join("home");
    let layout = t.path().join("gz");
    ok(teu(&home).args([
        "build",
        "--copy",
        &format!("{}:/", src.display()),
        "--no-cache",
        "-q",
        "-o",
        &format!("oci:{}", layout.display()),
    ]));
    let (digest, blob, _) = layers(&layout).remove(0);
    let good = fs::read(&blob).unwrap();
    let run = |home: &Path| {
        fails(teu(home).args([
            "convert",
            &format!("oci:{}", layout.display()),
            &format!("oci:{}", t.path().join("esgz").display()),
            "--compression",
            "estargz",
            "-q",
        ]))
        .1
    };
    // Longer than the descriptor: cut off at its size, whatever follows.
    let mut longer = good.clone();
    longer.extend_from_slice(&random(1 << 20, 4));
    fs::write(&blob, &longer).unwrap();
    let err = run(&t.path().join("home2"));
    assert!(err.contains(&digest) && err.contains("longer"), "{err}");
    // The same length, one byte flipped inside the gzip stream's data.
    let mut flipped = good.clone();
    let at = good.len() / 2;
    flipped[at] ^= 0x55;
    fs::write(&blob, &flipped).unwrap();
    let err = run(&t.path().join("home3"));
    assert!(err.contains(&digest), "{err}");
    assert!(!t.path().join("esgz").join("index.json").exists());
}
