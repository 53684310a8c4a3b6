//! The cache's size bound: least recently used proxied blobs go first, pushed content
//! never.
//!
//! Each proxied blob has a marker object `proxy/lru/<alg>/<hex>.<size>` whose
//! modification time is its last use. Markers are rewritten at most once a second per
//! blob (a hit must not become a write), and they live in storage so the order survives
//! restarts, is shared by servers on one bucket, and `teu serve gc` can apply the same
//! bound. A blob is only evicted while no repository outside the proxied ones links it,
//! so a push of the same bytes pins them.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::digest::Digest;
use crate::http::App;
use crate::storage::{blob_key, Storage, StorageResult, WriteMode};

const PREFIX: &str = "proxy/lru/";
/// How stale a marker's time may get before a hit rewrites it.
const TOUCH_EVERY: Duration = Duration::from_secs(1);

fn marker(d: &Digest, size: u64) -> String {
    format!("{PREFIX}{}/{}.{size}", d.algorithm().name(), d.hex())
}

pub struct Lru {
    max: Option<u64>,
    total: AtomicU64,
    touched: Mutex<HashMap<Digest, (u64, Instant)>>,
    evicting: AtomicBool,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Eviction {
    pub blobs: usize,
    pub bytes: u64,
    /// Proxied bytes kept.
    pub kept_bytes: u64,
}

impl Lru {
    /// With a bound, read the markers once to know how much is cached.
    pub async fn open(storage: &dyn Storage, max: Option<u64>) -> StorageResult<Lru> {
        let mut total = 0;
        let mut touched = HashMap::new();
        if max.is_some() {
            for e in storage.list(PREFIX).await? {
                if let Some((d, size)) = parse_marker(&e.key) {
                    total += size;
                    touched.insert(d, (size, Instant::now()));
                }
            }
        }
        Ok(Lru {
            max,
            total: AtomicU64::new(total),
            touched: Mutex::new(touched),
            evicting: AtomicBool::new(false),
        })
    }

    /// A cache hit on `d`: refresh its marker if it is older than a second.
    pub async fn touch(&self, storage: &dyn Storage, d: &Digest) {
        if self.max.is_none() {
            return;
        }
        let size = {
            let mut m = self.touched.lock().unwrap();
            match m.get_mut(d) {
                Some((size, at)) if at.elapsed() >= TOUCH_EVERY => {
                    *at = Instant::now();
                    *size
                }
                _ => return,
            }
        };
        let _ = storage
            .put(&marker(d, size), Bytes::new(), WriteMode::Overwrite)
            .await;
    }

    /// A fill stored `d`.
    pub async fn added(&self, storage: &dyn Storage, d: &Digest, size: u64) {
        if let Err(e) = storage
            .put(&marker(d, size), Bytes::new(), WriteMode::Overwrite)
            .await
        {
            tracing::warn!(digest = %d, error = %e, "writing the cache's use marker failed");
        }
        self.touched
            .lock()
            .unwrap()
            .insert(d.clone(), (size, Instant::now()));
        self.total.fetch_add(size, Ordering::Relaxed);
    }

    /// Evict down to the bound if it is exceeded (one eviction at a time).
    pub async fn enforce(&self, app: &Arc<App>) {
        let Some(max) = self.max else { return };
        if self.total.load(Ordering::Relaxed) <= max || self.evicting.swap(true, Ordering::AcqRel) {
            return;
        }
        let proxy = &app.proxy;
        let result = evict(
            app.registry.storage.as_ref(),
            max,
            |r| proxy.cache_repo(r),
            false,
        )
        .await;
        match result {
            Ok(ev) => {
                self.total.store(ev.kept_bytes, Ordering::Relaxed);
                proxy
                    .stats
                    .evicted
                    .fetch_add(ev.blobs as u64, Ordering::Relaxed);
                proxy
                    .stats
                    .evicted_bytes
                    .fetch_add(ev.bytes, Ordering::Relaxed);
                if ev.blobs > 0 {
                    tracing::info!(
                        blobs = ev.blobs,
                        bytes = ev.bytes,
                        "evicted least recently used proxied blobs"
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "cache eviction failed"),
        }
        self.evicting.store(false, Ordering::Release);
    }
}

fn parse_marker(key: &str) -> Option<(Digest, u64)> {
    let rest = key.strip_prefix(PREFIX)?;
    let (alg, file) = rest.split_once('/')?;
    let (hex, size) = file.rsplit_once('.')?;
    Some((format!("{alg}:{hex}").parse().ok()?, size.parse().ok()?))
}

/// Remove least recently used proxied blobs until at most `max` bytes of them remain.
/// `cache_repo` tells proxied repositories from pushed ones.
pub async fn evict(
    storage: &dyn Storage,
    max: u64,
    cache_repo: impl Fn(&str) -> bool,
    dry_run: bool,
) -> StorageResult<Eviction> {
    let mut markers: Vec<(Digest, u64, std::time::SystemTime, String)> = storage
        .list(PREFIX)
        .await?
        .into_iter()
        .filter_map(|e| parse_marker(&e.key).map(|(d, s)| (d, s, e.modified, e.key)))
        .collect();
    let mut total: u64 = markers.iter().map(|m| m.1).sum();
    let mut ev = Eviction::default();
    if total <= max {
        ev.kept_bytes = total;
        return Ok(ev);
    }
    markers.sort_by_key(|m| m.2);
    // Who links what: pushed repositories pin a blob, proxied links go with it.
    let mut pinned: HashSet<String> = HashSet::new();
    let mut cache_links: HashMap<String, Vec<String>> = HashMap::new();
    for e in storage.list("repositories/").await? {
        let Some(rest) = e.key.strip_prefix("repositories/") else {
            continue;
        };
        let Some((repo, blob)) = rest.split_once("/_blobs/") else {
            continue;
        };
        let Some((alg, hex)) = blob.split_once('/') else {
            continue;
        };
        let d = format!("{alg}:{hex}");
        if cache_repo(repo) {
            cache_links.entry(d).or_default().push(e.key.clone());
        } else {
            pinned.insert(d);
        }
    }
    for (d, size, _, key) in markers {
        if total <= max {
            break;
        }
        total -= size;
        if pinned.contains(&d.to_string()) {
            // Pushed content: no longer the cache's to evict.
            if !dry_run {
                storage.delete(&key).await?;
            }
            continue;
        }
        if !dry_run {
            for link in cache_links.get(&d.to_string()).into_iter().flatten() {
                storage.delete(link).await?;
            }
            storage.delete(&blob_key(&d)).await?;
            storage.delete(&key).await?;
        }
        ev.blobs += 1;
        ev.bytes += size;
    }
    ev.kept_bytes = total;
    Ok(ev)
}
