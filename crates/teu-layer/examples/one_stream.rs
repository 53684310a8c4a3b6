//! Compress a file as ONE segment with teu's pinned encoders and print the sizes, to
//! separate the cost of segmenting from differences between encoders (zlib-rs vs GNU
//! gzip, libzstd vs the zstd CLI). Used by bench/run.sh on the exact tar of a layer:
//!
//!   cargo run --release -p teu-layer --example one_stream -- layer.tar
//!
//! Prints `teu-gzip-1stream BYTES` and `teu-zstd-1stream BYTES`. Holds the file in
//! memory: a measuring tool for the bench corpus, not part of teu.

use teu_layer::Compression;

fn main() {
    let path = std::env::args()
        .nth(1)
        .expect("usage: one_stream FILE (a layer's tar)");
    let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    for (name, c) in [
        ("gzip", Compression::Gzip { level: 6 }),
        ("zstd", Compression::Zstd { level: 3 }),
    ] {
        println!("teu-{name}-1stream {}", c.compress_segment(&data).len());
    }
}
