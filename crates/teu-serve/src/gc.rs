//! `teu serve gc`: mark and sweep.
//!
//! Mark: every manifest linked in any repository, and every config, layer and child
//! manifest those manifests name. Sweep: blobs nobody marked, repository blob links whose
//! blob is unmarked, and upload sessions, each only when older than the grace period, so a
//! push in progress (blobs uploaded, manifest not yet) is never cut short. Manifests are
//! never removed by gc (delete them through the API); untagged ones keep their blobs.
//!
//! With a pull-through cache bound (`[cache] max_size`), gc first evicts the least
//! recently used proxied blobs above it, exactly as a running server does (see
//! [`crate::proxy::lru`]); pushed content is never evicted.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::digest::Digest;
use crate::storage::{Storage, StorageResult};

#[derive(Clone, Debug)]
pub struct GcOptions {
    pub grace: Duration,
    pub dry_run: bool,
    /// The cache's size bound and the upstream names whose repositories are the cache.
    pub cache: Option<CacheBound>,
}

#[derive(Clone, Debug)]
pub struct CacheBound {
    pub max_bytes: u64,
    pub upstreams: Vec<String>,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct GcReport {
    pub manifests: usize,
    pub blobs_kept: usize,
    pub blobs_removed: usize,
    pub bytes_removed: u64,
    pub links_removed: usize,
    pub uploads_removed: usize,
    /// Proxied blobs evicted by the cache's size bound, and their bytes.
    pub proxied_evicted: usize,
    pub proxied_evicted_bytes: u64,
}

fn old(modified: SystemTime, grace: Duration) -> bool {
    SystemTime::now()
        .duration_since(modified)
        .is_ok_and(|age| age >= grace)
}

fn digest_key(d: &str) -> Option<String> {
    let (alg, hex) = d.split_once(':')?;
    Some(format!("blobs/{alg}/{hex}"))
}

pub async fn collect(storage: &dyn Storage, opts: &GcOptions) -> StorageResult<GcReport> {
    let mut report = GcReport::default();
    // Listed once, before the cache's eviction, for both. The eviction only removes cache
    // links of blobs it evicts; the sweep below deletes a link at most, and deleting a
    // key that is already gone is no error.
    let repo_entries = storage.list("repositories/").await?;
    if let Some(c) = &opts.cache {
        let is_cache = |repo: &str| {
            repo.split_once('/')
                .is_some_and(|(first, _)| c.upstreams.iter().any(|u| u == first))
        };
        // gc lists every repository anyway: it knows each blob's links without asking,
        // and treats a pushed link as a pin even where a push from before pins left none.
        let mut pinned: HashSet<Digest> = HashSet::new();
        let mut links: HashMap<Digest, Vec<String>> = HashMap::new();
        for e in &repo_entries {
            let Some((repo, d)) = crate::proxy::lru::blob_link_of(&e.key) else {
                continue;
            };
            if is_cache(&repo) {
                links.entry(d).or_default().push(e.key.clone());
            } else {
                pinned.insert(d);
            }
        }
        let ev = crate::proxy::lru::evict(
            storage,
            c.max_bytes,
            |d| pinned.contains(d),
            |d| links.get(d).cloned().unwrap_or_default(),
            |_| false,
            opts.dry_run,
        )
        .await?;
        report.proxied_evicted = ev.blobs;
        report.proxied_evicted_bytes = ev.bytes;
    }
    let mut marked: HashSet<String> = HashSet::new();
    for e in &repo_entries {
        let Some((_, rest)) = e.key.split_once("/_manifests/") else {
            continue;
        };
        let Some((alg, hex)) = rest.split_once('/') else {
            continue;
        };
        let key = format!("blobs/{alg}/{hex}");
        report.manifests += 1;
        if let Some(bytes) = storage.get(&key).await? {
            let doc: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let mut named = Vec::new();
            if let Some(c) = doc.get("config") {
                named.push(c);
            }
            for list in ["layers", "manifests"] {
                if let Some(items) = doc.get(list).and_then(Value::as_array) {
                    named.extend(items);
                }
            }
            for d in named
                .iter()
                .filter_map(|v| v.get("digest").and_then(Value::as_str))
            {
                if let Some(k) = digest_key(d) {
                    marked.insert(k);
                }
            }
        }
        marked.insert(key);
    }
    for b in storage.list("blobs/").await? {
        if marked.contains(&b.key) {
            report.blobs_kept += 1;
        } else if old(b.modified, opts.grace) {
            report.blobs_removed += 1;
            report.bytes_removed += b.size;
            if !opts.dry_run {
                storage.delete(&b.key).await?;
            }
        }
    }
    for e in &repo_entries {
        let Some((_, rest)) = e.key.split_once("/_blobs/") else {
            continue;
        };
        let blob = format!("blobs/{rest}");
        if !marked.contains(&blob) && old(e.modified, opts.grace) {
            report.links_removed += 1;
            if !opts.dry_run {
                storage.delete(&e.key).await?;
            }
        }
    }
    for (id, started) in storage.upload_list().await? {
        if old(started, opts.grace) {
            report.uploads_removed += 1;
            if !opts.dry_run {
                storage.upload_delete(&id).await?;
            }
        }
    }
    Ok(report)
}
