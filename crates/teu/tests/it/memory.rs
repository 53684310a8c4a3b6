//! Bounded memory: a 2 GiB layer builds with a peak RSS under 100 MiB, for gzip and zstd,
//! through the layer and segment caches (the default path), and a 1.6 GiB eStargz layer
//! builds and converts under the same bound. Measured on the teu child process with
//! `/usr/bin/time -v` (Debian's `time`), so the test's own memory does not count.

use crate::common::*;
use std::fs;
use std::io::Write;
use std::process::Command;

const LIMIT_KIB: u64 = 100 * 1024;

fn peak_rss_kib(stderr: &str) -> u64 {
    stderr
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Maximum resident set size (kbytes): ")
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS in /usr/bin/time output:\n{stderr}"))
}

/// Run `teu ARGS` under `/usr/bin/time -v`; its JSON output and peak RSS in KiB.
fn measured(home: &std::path::Path, args: &[&str]) -> (serde_json::Value, u64) {
    let out = Command::new(tool("time"))
        .arg("-v")
        .arg(env!("CARGO_BIN_EXE_teu"))
        .args(args)
        .env("TEU_HOME", home)
        .env_remove("TEU_JOBS")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "teu {args:?}: {stderr}");
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("teu {args:?}: no JSON ({e}): {stderr}"));
    (v, peak_rss_kib(&stderr))
}

/// Incompressible-ish bytes (half random, half a small alphabet), reproducible.
fn noise(x: &mut u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|k| {
            *x ^= *x << 13;
            *x ^= *x >> 7;
            *x ^= *x << 17;
            if k % 2 == 0 {
                b'a' + (*x % 16) as u8
            } else {
                *x as u8
            }
        })
        .collect()
}

#[test]
#[ignore = "slow: builds and converts a 1.6 GiB eStargz layer; scripts/test runs it"]
fn an_estargz_layer_builds_and_converts_in_under_100_mib() {
    // What eStargz holds beyond gzip grows with the number of files (a TOC entry each,
    // and one per chunk), never with their bytes: so a few big files (sparse, costing no
    // disk, many chunks each), 128 MiB of real data, and 4000 small files.
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    fs::create_dir_all(src.join("app/real")).unwrap();
    for (name, len) in [("a.img", 700u64 << 20), ("b.img", 743u64 << 20)] {
        fs::File::create(src.join("app").join(name))
            .unwrap()
            .set_len(len)
            .unwrap();
    }
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for i in 0..128 {
        fs::write(
            src.join(format!("app/real/{i:03}.bin")),
            noise(&mut x, 1 << 20),
        )
        .unwrap();
    }
    for i in 0..4000 {
        let dir = src.join(format!("app/small/{:02}", i / 200));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(format!("{i}.txt")), noise(&mut x, i % 3000)).unwrap();
    }
    write(
        &src.join("teu.toml"),
        b"[image]\nplatform = \"linux/amd64\"\n[[layer]]\nname = \"big\"\ncopy = [{ src = \"app\", dest = \"/app/\" }]\n",
    );
    let at = |n: &str| format!("oci:{}:v1", t.path().join(n).display());
    let src_arg = src.to_str().unwrap();

    let home = t.path().join("home-build");
    let (v, rss) = measured(
        &home,
        &[
            "build",
            "--json",
            "--compression",
            "estargz",
            "-o",
            &at("es"),
            src_arg,
        ],
    );
    let tar = v["layers"][0]["uncompressed_size"].as_u64().unwrap();
    assert!(tar > 1536 << 20, "the layer is only {tar} bytes");
    assert!(
        rss < LIMIT_KIB,
        "estargz build: peak RSS {rss} KiB for a {tar}-byte layer (limit {LIMIT_KIB} KiB)"
    );
    eprintln!(
        "estargz build: peak RSS {} MiB for {} MiB of tar",
        rss / 1024,
        tar >> 20
    );
    fs::remove_dir_all(&home).unwrap();

    // teu convert spools the decompressed source and reads it as entries: a gzip image
    // built by another home, so nothing is cached for the conversion.
    let home = t.path().join("home-gzip");
    measured(
        &home,
        &[
            "build",
            "--json",
            "--compression",
            "gzip",
            "-o",
            &at("gz"),
            src_arg,
        ],
    );
    fs::remove_dir_all(&home).unwrap();
    let home = t.path().join("home-convert");
    let (_, rss) = measured(
        &home,
        &[
            "convert",
            "--json",
            &at("gz"),
            &at("converted"),
            "--compression",
            "estargz",
        ],
    );
    assert!(
        rss < LIMIT_KIB,
        "teu convert to estargz: peak RSS {rss} KiB for a {tar}-byte layer (limit {LIMIT_KIB} KiB)"
    );
    eprintln!(
        "estargz convert: peak RSS {} MiB for {} MiB of tar",
        rss / 1024,
        tar >> 20
    );
}

#[test]
#[ignore = "slow: builds 2 GiB layers twice; scripts/test runs it"]
fn a_2_gib_layer_builds_in_under_100_mib() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    // 1.8 GiB of sparse files (cost no disk) and 256 MiB of real data in 256 files.
    fs::create_dir_all(src.join("app/real")).unwrap();
    for (name, len) in [("a.img", 900u64 << 20), ("b.img", 943u64 << 20)] {
        fs::File::create(src.join("app").join(name))
            .unwrap()
            .set_len(len)
            .unwrap();
    }
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for i in 0..256 {
        let mut f = fs::File::create(src.join(format!("app/real/{i:03}.bin"))).unwrap();
        let block: Vec<u8> = (0..1 << 20)
            .map(|k| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                if k % 2 == 0 {
                    b'a' + (x % 16) as u8
                } else {
                    x as u8
                }
            })
            .collect();
        f.write_all(&block).unwrap();
    }
    write(
        &src.join("teu.toml"),
        b"[[layer]]\nname = \"big\"\ncopy = [{ src = \"app\", dest = \"/app/\" }]\n",
    );
    let time = tool("time");
    for algo in ["zstd", "gzip"] {
        let home = t.path().join(format!("home-{algo}"));
        let out = Command::new(&time)
            .arg("-v")
            .arg(env!("CARGO_BIN_EXE_teu"))
            .args(["build", "--json", "--compression", algo])
            .args(["-o", &format!("oci:{}", t.path().join(algo).display())])
            .arg(&src)
            .env("TEU_HOME", &home)
            .env_remove("TEU_JOBS")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{algo}: {stderr}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let tar = v["layers"][0]["uncompressed_size"].as_u64().unwrap();
        assert!(tar > 2 << 30, "{algo}: the layer is only {tar} bytes");
        let rss = peak_rss_kib(&stderr);
        assert!(
            rss < LIMIT_KIB,
            "{algo}: peak RSS {rss} KiB for a {tar}-byte layer (limit {LIMIT_KIB} KiB)"
        );
        eprintln!(
            "{algo}: peak RSS {} MiB for {} MiB of tar",
            rss / 1024,
            tar >> 20
        );
        fs::remove_dir_all(&home).unwrap();
    }
}
