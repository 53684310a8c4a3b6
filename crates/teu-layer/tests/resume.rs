//! A rebuild after a one-file change reads only from the changed file's segment on (the
//! segments before it are copied from the previous blob and both hashes resume), and
//! the layer is byte for byte the layer a build without any cache makes.
//!
//! One test in this binary: it reads a process-wide byte counter.

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use teu_layer::cache::build_layer_cached;
use teu_layer::pipeline::{content_bytes_read, segments_compressed};
use teu_layer::source::{add_copy, CopyOptions};
use teu_layer::{build_layer, Compression, Defaults, Entry, LayerOptions, LayerTree};
use teu_store::Store;

fn entries(src: &Path) -> Vec<Entry> {
    let defaults = Defaults { mtime: 0 };
    let mut t = LayerTree::new();
    let opts = CopyOptions {
        mode: None,
        uid: None,
        gid: None,
        mtime: None,
        exclude: None,
        follow_symlinks: false,
        defaults: &defaults,
        origin: Arc::from("test"),
    };
    add_copy(&mut t, src, "/app/", &opts).unwrap();
    t.finish(&defaults).unwrap()
}

fn text(i: usize, n: usize) -> Vec<u8> {
    let mut x = (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (0..n)
        .map(|j| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if j % 9 == 8 {
                b'\n'
            } else {
                b'a' + (x % 16) as u8
            }
        })
        .collect()
}

/// The layer a build with no cache, in a store that has seen nothing, makes.
fn reference(src: &Path, opts: &LayerOptions) -> Vec<u8> {
    let d = tempfile::tempdir().unwrap();
    let store = Store::open(d.path()).unwrap();
    let built = build_layer(&entries(src), opts, &store).unwrap();
    fs::read(store.blob_path(&built.digest)).unwrap()
}

#[test]
fn a_one_file_rebuild_reads_from_that_file_on_and_equals_a_fresh_build() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    // 300 files of 40 KB (12 MB, many gzip segments, one zstd segment) and a 20 MiB file
    // (two more zstd segments).
    for i in 0..300 {
        let p = src.join(format!("d{}/f{i:04}", i % 5));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, text(i, 40_000)).unwrap();
    }
    fs::write(src.join("big"), text(9999, 20 << 20)).unwrap();
    // Not racy when built: the build records its layer map only for settled sources.
    std::thread::sleep(Duration::from_millis(1100));

    for (round, compression) in [Compression::default(), "zstd".parse().unwrap()]
        .into_iter()
        .enumerate()
    {
        // Every change below is new content in each round, and the cold build of each
        // round sees settled sources.
        let seed = 10 * (round + 1);
        std::thread::sleep(Duration::from_millis(1100));
        let opts = LayerOptions {
            compression,
            jobs: 2,
            ..Default::default()
        };
        let policy = compression.segment_policy().unwrap();
        let home = t.path().join(format!(
            "home-{}",
            compression.encoder_id().replace('/', "-")
        ));
        let store = Store::open(&home).unwrap();
        let scope = b"test scope";
        let total: u64 = entries(&src).iter().map(Entry::kind_size).sum();
        let before = content_bytes_read();
        let cold = build_layer_cached(&entries(&src), &opts, &store, scope).unwrap();
        assert!(!cold.hit);
        // Cold: every file is read once, hashed for the key as the pipeline reads it.
        assert_eq!(content_bytes_read() - before, total, "{compression}: cold");
        let again = build_layer_cached(&entries(&src), &opts, &store, scope).unwrap();
        assert!(again.hit, "{compression}: the cold build was recorded");

        // The last file in layer order: only its segment is read again.
        let last = src.join("d4/f0299");
        fs::write(&last, text(seed + 1, 40_000)).unwrap();
        let before = content_bytes_read();
        let got = build_layer_cached(&entries(&src), &opts, &store, scope).unwrap();
        let read = content_bytes_read() - before;
        assert!(!got.hit);
        eprintln!("{compression}: read {read} bytes after a change in the last segment");
        assert!(
            read <= 40_000 + policy.max as u64 + policy.big_file,
            "{compression}: a change in the last segment read {read} bytes"
        );
        let blob = fs::read(store.blob_path(&got.layer.digest)).unwrap();
        assert!(blob == reference(&src, &opts), "{compression}: last file");

        // Settle, then change a file in the middle: about the second half is read.
        std::thread::sleep(Duration::from_millis(1100));
        build_layer_cached(&entries(&src), &opts, &store, scope).unwrap();
        fs::write(src.join("d2/f0152"), text(seed + 2, 39_000)).unwrap();
        let before = content_bytes_read();
        let compressed = segments_compressed();
        let got = build_layer_cached(&entries(&src), &opts, &store, scope).unwrap();
        let read = content_bytes_read() - before;
        let compressed = segments_compressed() - compressed;
        assert!(!got.hit);
        eprintln!("{compression}: read {read} of {total} bytes after a change in the middle, compressed {compressed} segment(s)");
        // The segments after the change are copied from the earlier blob.
        assert!((1..=2).contains(&compressed), "{compression}: {compressed}");
        assert!(
            read < total * 3 / 4,
            "{compression}: a change in the middle read {read} of {total} bytes"
        );
        let blob = fs::read(store.blob_path(&got.layer.digest)).unwrap();
        assert!(blob == reference(&src, &opts), "{compression}: middle file");
        let _ = fs::remove_file(src.join("d2/f0152"));
        let got = build_layer_cached(&entries(&src), &opts, &store, scope).unwrap();
        let blob = fs::read(store.blob_path(&got.layer.digest)).unwrap();
        assert!(
            blob == reference(&src, &opts),
            "{compression}: a file deleted"
        );
        fs::write(src.join("d2/f0152"), text(seed + 3, 39_000)).unwrap();
    }
}
