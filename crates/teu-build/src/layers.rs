//! The builder's hook into the layer cache ([`teu_layer::cache`]): which stat cache a
//! layer uses, `--no-cache`, and building several layers at once.

use std::path::Path;

use teu_layer::cache::{build_layer_cached, build_tar_layer_cached, Cached};
use teu_layer::{build_layer, Entry, LayerOptions, PipelineError};
use teu_spec::Item;

use crate::build::BuildOptions;

/// The stat cache scope of a layer: the absolute paths of its sources. Two specs copying
/// the same directories share hashes; unrelated layers load nothing of each other's.
fn scope(items: &[Item]) -> Vec<u8> {
    let mut s = b"teu stat scope".to_vec();
    for item in items {
        if let Item::Copy { src, .. } | Item::Tar { src, .. } = item {
            s.push(0);
            let abs = std::path::absolute(src).unwrap_or_else(|_| src.clone());
            s.extend_from_slice(abs.as_os_str().as_encoded_bytes());
        }
    }
    s
}

/// Build a layer from its entries, through the cache unless `--no-cache`.
pub(crate) fn entries_layer(
    entries: &[Entry],
    lopts: &LayerOptions,
    opts: &BuildOptions,
    items: &[Item],
) -> Result<Cached, PipelineError> {
    if opts.no_cache {
        let layer = build_layer(entries, lopts, &opts.store)?;
        return Ok(Cached { layer, hit: false });
    }
    build_layer_cached(entries, lopts, &opts.store, &scope(items))
}

/// Build a layer that is the tarball `src` verbatim, through the cache (the caller
/// handles `--no-cache` and has checked that `src` is a tar).
pub(crate) fn tar_layer(
    src: &Path,
    origin: &str,
    lopts: &LayerOptions,
    opts: &BuildOptions,
    items: &[Item],
) -> Result<Cached, PipelineError> {
    build_tar_layer_cached(src, origin, lopts, &opts.store, &scope(items))
}

/// Layers built at once. Each layer already compresses on every core; running a few side
/// by side overlaps one layer's file reading and hashing with another's compression, and
/// keeps memory to a few times one layer's bound.
const LAYERS_AT_ONCE: usize = 3;

/// `f` over `items` on up to [`LAYERS_AT_ONCE`] threads; results in `items` order.
pub(crate) fn in_parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    if items.len() <= 1 {
        return items.iter().map(f).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<R>>> =
        items.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..items.len().min(LAYERS_AT_ONCE) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let r = f(item);
                *results[i].lock().expect("result slot") = Some(r);
            });
        }
    });
    results
        .into_iter()
        .map(|r| {
            r.into_inner()
                .expect("result slot")
                .expect("every layer ran")
        })
        .collect()
}
