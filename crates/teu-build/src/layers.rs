//! Spec items to a layer: files, directories, tarballs, symlinks, dirs and whiteouts
//! become `teu-layer` entries (or, for a verbatim tarball, its bytes), built through the
//! layer cache ([`teu_layer::cache`]) unless `--no-cache`. Also which stat cache a layer
//! uses.

use std::io::Read as _;
use std::path::Path;

use teu_layer::cache::{build_layer_cached, build_tar_layer_cached, Cached};
use teu_layer::{
    build_layer, build_layer_from_tar, path as lpath,
    source::{add_copy, add_tar, open_decompressed, CopyOptions},
    Compression, Defaults, Entry, Kind, LayerError, LayerOptions, LayerTree, Meta, PipelineError,
};
use teu_spec::Item;

use crate::{BuildError, BuildOptions};

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
fn entries_layer(
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
fn tar_layer(
    src: &Path,
    origin: &str,
    lopts: &LayerOptions,
    opts: &BuildOptions,
    items: &[Item],
) -> Result<Cached, PipelineError> {
    build_tar_layer_cached(src, origin, lopts, &opts.store, &scope(items))
}

pub(crate) fn build_one(
    layer: &teu_spec::LayerSpec,
    items: &[Item],
    compression: Compression,
    opts: &BuildOptions,
) -> Result<(Cached, usize), BuildError> {
    let name = &layer.name;
    let lopts = LayerOptions {
        compression,
        jobs: opts.jobs,
        progress: opts.progress.clone(),
        name: name.to_string(),
    };
    if let [Item::Tar {
        src,
        normalize: false,
        origin,
        ..
    }] = items
    {
        let io = |source| LayerError::Io {
            origin: origin.clone(),
            path: src.display().to_string(),
            source,
        };
        let mut reader = open_decompressed(src).map_err(io)?;
        // Used byte for byte, so at least make sure it is a tar: a valid first header, or
        // the zero block that ends an empty archive.
        let mut first = Vec::with_capacity(512);
        (&mut reader)
            .take(512)
            .read_to_end(&mut first)
            .map_err(io)?;
        let not_tar = |why: &str| -> BuildError {
            LayerError::Source {
                origin: origin.clone(),
                message: format!("{} is not a tar archive ({why})", src.display()),
            }
            .into()
        };
        if first.len() < 512 {
            return Err(not_tar(&format!(
                "{} bytes, less than one tar block",
                first.len()
            )));
        }
        if first.iter().all(|&b| b == 0) {
            return Err(not_tar(
                "it holds no entries: its first block is the end-of-archive marker",
            ));
        }
        {
            let stored = tar::Header::from_byte_slice(&first).cksum().ok();
            let sum: u32 = first
                .iter()
                .enumerate()
                .map(|(i, &b)| {
                    if (148..156).contains(&i) {
                        u32::from(b' ')
                    } else {
                        u32::from(b)
                    }
                })
                .sum();
            if stored != Some(sum) {
                return Err(not_tar("its first header's checksum is wrong"));
            }
        }
        if !opts.no_cache {
            drop(reader);
            let built = tar_layer(src, origin, &lopts, opts, items)?;
            return Ok((built, 0));
        }
        let mut reader = std::io::Read::chain(&first[..], reader);
        let layer = build_layer_from_tar(&mut reader, origin, &lopts, &opts.store)?;
        return Ok((Cached { layer, hit: false }, 0));
    }
    let d = &opts.defaults;
    let mut tree = LayerTree::new();
    for item in items {
        match item {
            Item::Copy {
                src,
                dest,
                meta,
                exclude,
                follow_symlinks,
                origin,
            } => {
                require_source(src, origin)?;
                let copy = CopyOptions {
                    mode: meta.mode,
                    uid: meta.uid,
                    gid: meta.gid,
                    mtime: meta.mtime,
                    exclude: exclude.as_ref(),
                    follow_symlinks: *follow_symlinks,
                    defaults: d,
                    origin: origin.clone(),
                };
                add_copy(&mut tree, src, dest, &copy)?;
            }
            Item::Symlink {
                path,
                target,
                meta,
                origin,
            } => tree.insert(explicit_entry(
                path,
                Kind::Symlink(target.as_bytes().to_vec()),
                0o777,
                meta,
                d,
                origin,
            )?)?,
            Item::Dir { path, meta, origin } => tree.insert(explicit_entry(
                path,
                Kind::Dir,
                meta.mode.unwrap_or(0o755),
                meta,
                d,
                origin,
            )?)?,
            Item::Tar {
                src, dest, origin, ..
            } => {
                require_source(src, origin)?;
                add_tar(
                    &mut tree,
                    src,
                    dest,
                    d,
                    &opts.store.tmp_dir(),
                    origin.clone(),
                )?;
            }
            Item::Remove { path, origin } => tree.whiteout(path.as_bytes(), d, origin.clone())?,
        }
    }
    let mut entries = tree.finish(d)?;
    if compression.estargz_chunk().is_some() {
        // Prefetched files first, and the landmark a lazy snapshotter looks for.
        entries = teu_layer::estargz::arrange(entries, &layer.prefetch).map_err(|e| {
            LayerError::Source {
                origin: layer.origin.clone(),
                message: format!("prefetch: {e}"),
            }
        })?;
    }
    leak_mtime_for_tests(&mut entries);
    let built = entries_layer(&entries, &lopts, opts, items)?;
    Ok((built, entries.len()))
}

/// An entry the spec states itself (`symlinks`, `dirs`), owner and mtime as overridden.
fn explicit_entry(
    path: &str,
    kind: Kind,
    mode: u32,
    meta: &teu_spec::MetaOverride,
    d: &Defaults,
    origin: &teu_layer::Origin,
) -> Result<Entry, LayerError> {
    Ok(Entry {
        path: norm(path, origin)?,
        kind,
        meta: Meta {
            mode,
            uid: meta.uid.unwrap_or(0),
            gid: meta.gid.unwrap_or(0),
            mtime: meta.mtime.unwrap_or(d.mtime),
        },
        priority: teu_layer::entry::Priority::Explicit,
        origin: origin.clone(),
        inode: None,
        xattrs: Vec::new(),
    })
}

fn norm(p: &str, origin: &teu_layer::Origin) -> Result<Vec<u8>, LayerError> {
    lpath::normalize(p.as_bytes()).map_err(|source| LayerError::Path {
        origin: origin.clone(),
        source,
    })
}

fn require_source(src: &Path, origin: &teu_layer::Origin) -> Result<(), LayerError> {
    match std::fs::symlink_metadata(src) {
        Ok(_) => Ok(()),
        Err(e) => Err(LayerError::Source {
            origin: origin.clone(),
            message: format!("source {} cannot be read: {e}", src.display()),
        }),
    }
}

/// Test-only: `TEU_TEST_LEAK_MTIME=/path` gives that entry a different mtime on every build
/// in a process, the kind of leak `teu build --verify` exists to catch. Compiled into debug
/// builds only (the ones `cargo test` runs), so a release binary ignores it.
#[cfg(not(debug_assertions))]
fn leak_mtime_for_tests(_: &mut [Entry]) {}

#[cfg(debug_assertions)]
fn leak_mtime_for_tests(entries: &mut [Entry]) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static BUILDS: AtomicU64 = AtomicU64::new(1);
    let Some(target) = std::env::var_os("TEU_TEST_LEAK_MTIME") else {
        return;
    };
    let target = lpath::normalize(std::os::unix::ffi::OsStrExt::as_bytes(target.as_os_str()))
        .unwrap_or_default();
    let n = BUILDS.fetch_add(1, Ordering::Relaxed);
    for e in entries.iter_mut().filter(|e| e.path == target) {
        e.meta.mtime += n;
    }
}
