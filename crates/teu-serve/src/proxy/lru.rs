//! The cache's size bound: least recently used proxied blobs go first, pushed content
//! never, and a blob this process is serving right now not in that round.
//!
//! Each proxied blob has a marker object `proxy/lru/<alg>/<hex>.<size>.<stamp>` whose
//! stamp is its last use: a millisecond clock times 1000 plus a process-wide sequence
//! ([`stamp`]). The order comes from the stamp, not from storage's modification times,
//! because S3 keeps those to the second: blobs used within one second would tie.
//!
//! A use is recorded in memory at once, but written to storage at most once a second
//! per blob (a hit must not become a write), and every pending use is written just
//! before this process evicts, so its own order is exact. Markers live in storage so the
//! order survives restarts, is shared by servers on one bucket, and `teu serve gc`
//! applies the same bound with the same order (missing only a running server's last
//! second of uses). A rewrite puts the new key before deleting the old one; a reader
//! that sees both takes the newest, and eviction removes the rest.
//!
//! A blob a push or mount linked carries a pin ([`crate::registry::pushed_key`]) and is
//! never evicted; a round asks for the pins of its candidates only (one HEAD each), not
//! for a listing of every repository. Pins are written by every server on every push,
//! with or without a bound; a store from before pins is indexed once, at the first start
//! with a bound. An evicted blob's links from cache repositories this process knows of
//! go with it (`teu serve gc`, which lists every repository anyway, removes all of
//! them); others (another server's, or from before a restart) are left, and a proxied
//! request through one finds no blob and fills it again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::digest::Digest;
use crate::http::App;
use crate::registry::pushed_key;
use crate::storage::{blob_key, Storage, StorageResult, WriteMode};

const PREFIX: &str = "proxy/lru/";
/// Present once every pushed link of the store has its pin.
const PINS_INDEXED: &str = "proxy/pins-indexed";
/// How stale a stored marker may get before a hit rewrites it.
const TOUCH_EVERY: Duration = Duration::from_secs(1);
/// Stamps per millisecond before the sequence runs ahead of the clock.
const PER_MS: u64 = 1000;

fn marker(d: &Digest, size: u64, stamp: u64) -> String {
    format!(
        "{PREFIX}{}/{}.{size}.{stamp:020}",
        d.algorithm().name(),
        d.hex()
    )
}

fn ms_stamp(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
        .saturating_mul(PER_MS)
}

/// A use's place in the order: the wall clock in milliseconds times [`PER_MS`], made
/// strictly increasing within this process, so two uses in one millisecond (or a clock
/// stepping back) still order as they happened. Across processes the clock decides.
pub fn stamp() -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = ms_stamp(SystemTime::now());
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        let next = now.max(last + 1);
        match LAST.compare_exchange_weak(last, next, Ordering::AcqRel, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(l) => last = l,
        }
    }
}

/// A proxied blob this process knows: its last use, and the stamp its stored marker has.
struct Known {
    size: u64,
    used: u64,
    /// 0: no marker of ours is known.
    stored: u64,
    stored_at: Instant,
    /// Cache repositories this process linked it into: their links go with it.
    repos: Vec<String>,
}

pub struct Lru {
    max: Option<u64>,
    total: AtomicU64,
    known: Mutex<HashMap<Digest, Known>>,
    readers: Arc<Mutex<HashMap<Digest, usize>>>,
    evicting: AtomicBool,
}

/// Held while a response streams a cached blob out of storage.
pub struct Reading {
    readers: Arc<Mutex<HashMap<Digest, usize>>>,
    digest: Digest,
}

impl Drop for Reading {
    fn drop(&mut self) {
        let mut r = self.readers.lock().unwrap();
        if let Some(n) = r.get_mut(&self.digest) {
            *n -= 1;
            if *n == 0 {
                r.remove(&self.digest);
            }
        }
    }
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Eviction {
    pub blobs: usize,
    pub bytes: u64,
    /// Proxied bytes kept.
    pub kept_bytes: u64,
    /// Blobs that would have gone but were being served; the next round tries again.
    pub busy: usize,
    /// Blobs whose markers were removed: evicted, or pinned by a push.
    #[serde(skip)]
    pub forgotten: Vec<Digest>,
}

impl Lru {
    /// With a bound, read the markers once to know how much is cached, and pin what
    /// pushes linked before pins existed. `cache_repo` tells proxied repositories.
    pub async fn open(
        storage: &dyn Storage,
        max: Option<u64>,
        cache_repo: impl Fn(&str) -> bool,
    ) -> StorageResult<Lru> {
        let mut known: HashMap<Digest, Known> = HashMap::new();
        if max.is_some() {
            if storage.head(PINS_INDEXED).await?.is_none() {
                let mut n = 0;
                for (repo, d) in blob_links(storage).await? {
                    if !cache_repo(&repo) {
                        storage
                            .put(&pushed_key(&d), Bytes::new(), WriteMode::Overwrite)
                            .await?;
                        n += 1;
                    }
                }
                storage
                    .put(PINS_INDEXED, Bytes::new(), WriteMode::Overwrite)
                    .await?;
                tracing::info!(links = n, "pinned pushed blobs for the cache's size bound");
            }
            for m in markers(storage).await? {
                let k = known.entry(m.digest).or_insert(Known {
                    size: m.size,
                    used: 0,
                    stored: 0,
                    stored_at: Instant::now(),
                    repos: Vec::new(),
                });
                if m.stamp > k.stored {
                    k.stored = m.stamp;
                    k.used = m.stamp;
                }
            }
        }
        let total = known.values().map(|k| k.size).sum();
        Ok(Lru {
            max,
            total: AtomicU64::new(total),
            known: Mutex::new(known),
            readers: Arc::default(),
            evicting: AtomicBool::new(false),
        })
    }

    /// Mark `d` as being read until the guard drops: eviction skips it meanwhile.
    pub fn reading(&self, d: &Digest) -> Reading {
        *self.readers.lock().unwrap().entry(d.clone()).or_default() += 1;
        Reading {
            readers: self.readers.clone(),
            digest: d.clone(),
        }
    }

    fn in_use(&self, d: &Digest) -> bool {
        self.readers.lock().unwrap().contains_key(d)
    }

    /// A cache hit on `d` (`size` bytes) through cache repository `repo`: its use now,
    /// written out if the stored marker is a second old (or this process has none, e.g.
    /// another server filled it).
    pub async fn touch(&self, storage: &dyn Storage, d: &Digest, size: u64, repo: &str) {
        if self.max.is_none() {
            return;
        }
        let now = stamp();
        let write = {
            let mut m = self.known.lock().unwrap();
            let k = m.entry(d.clone()).or_insert_with(|| {
                self.total.fetch_add(size, Ordering::Relaxed);
                Known {
                    size,
                    used: now,
                    stored: 0,
                    stored_at: Instant::now(),
                    repos: Vec::new(),
                }
            });
            k.used = now;
            if !k.repos.iter().any(|r| r == repo) {
                k.repos.push(repo.to_string());
            }
            if k.stored == 0 || k.stored_at.elapsed() >= TOUCH_EVERY {
                let old = k.stored;
                k.stored = now;
                k.stored_at = Instant::now();
                Some(old)
            } else {
                None
            }
        };
        if let Some(old) = write {
            rewrite(storage, d, size, old, now).await;
        }
    }

    /// A fill stored `d` and linked it into `repos`.
    pub async fn added(&self, storage: &dyn Storage, d: &Digest, size: u64, repos: &[String]) {
        let now = stamp();
        let old = self.known.lock().unwrap().insert(
            d.clone(),
            Known {
                size,
                used: now,
                stored: now,
                stored_at: Instant::now(),
                repos: repos.to_vec(),
            },
        );
        match old {
            Some(k) => rewrite(storage, d, size, k.stored, now).await,
            None => {
                self.total.fetch_add(size, Ordering::Relaxed);
                rewrite(storage, d, size, 0, now).await;
            }
        }
    }

    /// Write every use not yet in storage, so an eviction sees this process's order.
    async fn flush(&self, storage: &dyn Storage) {
        let pending: Vec<(Digest, u64, u64, u64)> = {
            let mut m = self.known.lock().unwrap();
            m.iter_mut()
                .filter(|(_, k)| k.used > k.stored)
                .map(|(d, k)| {
                    let old = k.stored;
                    k.stored = k.used;
                    k.stored_at = Instant::now();
                    (d.clone(), k.size, old, k.used)
                })
                .collect()
        };
        for (d, size, old, now) in pending {
            rewrite(storage, &d, size, old, now).await;
        }
    }

    /// Evict down to the bound if it is exceeded (one eviction at a time).
    pub async fn enforce(&self, app: &Arc<App>) {
        let Some(max) = self.max else { return };
        if self.total.load(Ordering::Relaxed) <= max || self.evicting.swap(true, Ordering::AcqRel) {
            return;
        }
        let proxy = &app.proxy;
        let storage = app.registry.storage.as_ref();
        self.flush(storage).await;
        let links: HashMap<Digest, Vec<String>> = self
            .known
            .lock()
            .unwrap()
            .iter()
            .map(|(d, k)| {
                let keys = k.repos.iter().map(|r| blob_link_key(r, d)).collect();
                (d.clone(), keys)
            })
            .collect();
        let result = evict(
            storage,
            max,
            |_| false,
            |d| links.get(d).cloned().unwrap_or_default(),
            |d| self.in_use(d),
            false,
        )
        .await;
        match result {
            Ok(ev) => {
                {
                    let mut m = self.known.lock().unwrap();
                    for d in &ev.forgotten {
                        m.remove(d);
                    }
                }
                self.total.store(ev.kept_bytes, Ordering::Relaxed);
                proxy
                    .stats
                    .evicted
                    .fetch_add(ev.blobs as u64, Ordering::Relaxed);
                proxy
                    .stats
                    .evicted_bytes
                    .fetch_add(ev.bytes, Ordering::Relaxed);
                if ev.blobs > 0 || ev.busy > 0 {
                    tracing::info!(
                        blobs = ev.blobs,
                        bytes = ev.bytes,
                        busy = ev.busy,
                        "evicted least recently used proxied blobs"
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "cache eviction failed"),
        }
        self.evicting.store(false, Ordering::Release);
    }
}

fn blob_link_key(repo: &str, d: &Digest) -> String {
    format!(
        "repositories/{repo}/_blobs/{}/{}",
        d.algorithm().name(),
        d.hex()
    )
}

/// Every `(repository, blob)` link in the store: one listing of all of `repositories/`.
async fn blob_links(storage: &dyn Storage) -> StorageResult<Vec<(String, Digest)>> {
    Ok(storage
        .list("repositories/")
        .await?
        .iter()
        .filter_map(|e| blob_link_of(&e.key))
        .collect())
}

/// The repository and blob of a `repositories/<repo>/_blobs/<alg>/<hex>` key.
pub fn blob_link_of(key: &str) -> Option<(String, Digest)> {
    let rest = key.strip_prefix("repositories/")?;
    let (repo, blob) = rest.split_once("/_blobs/")?;
    let (alg, hex) = blob.split_once('/')?;
    Some((repo.to_string(), format!("{alg}:{hex}").parse().ok()?))
}

/// Put the marker of `stamp`, then delete the one of `old` (0: none).
async fn rewrite(storage: &dyn Storage, d: &Digest, size: u64, old: u64, stamp: u64) {
    if let Err(e) = storage
        .put(&marker(d, size, stamp), Bytes::new(), WriteMode::Overwrite)
        .await
    {
        tracing::warn!(digest = %d, error = %e, "writing the cache's use marker failed");
        return;
    }
    if old != 0 && old != stamp {
        let _ = storage.delete(&marker(d, size, old)).await;
    }
}

struct Marker {
    digest: Digest,
    size: u64,
    stamp: u64,
    key: String,
}

/// Every marker in storage. Markers written before stamps existed (`<hex>.<size>`) take
/// their modification time as their stamp.
async fn markers(storage: &dyn Storage) -> StorageResult<Vec<Marker>> {
    Ok(storage
        .list(PREFIX)
        .await?
        .into_iter()
        .filter_map(|e| {
            let (digest, size, stamp) = parse_marker(&e.key)?;
            Some(Marker {
                digest,
                size,
                stamp: stamp.unwrap_or_else(|| ms_stamp(e.modified)),
                key: e.key,
            })
        })
        .collect())
}

fn parse_marker(key: &str) -> Option<(Digest, u64, Option<u64>)> {
    let rest = key.strip_prefix(PREFIX)?;
    let (alg, file) = rest.split_once('/')?;
    let mut parts = file.split('.');
    let hex = parts.next()?;
    let size = parts.next()?.parse().ok()?;
    let stamp = match parts.next() {
        Some(s) => Some(s.parse().ok()?),
        None => None,
    };
    if parts.next().is_some() {
        return None;
    }
    Some((format!("{alg}:{hex}").parse().ok()?, size, stamp))
}

/// Remove least recently used proxied blobs until at most `max` bytes of them remain.
/// A blob is pinned (not the cache's: it leaves the accounting, never the store) when
/// `pinned` says so or its push pin exists; `cache_links` names the link keys that go
/// with an evicted blob; blobs `in_use` are skipped (and still count as kept).
pub async fn evict(
    storage: &dyn Storage,
    max: u64,
    pinned: impl Fn(&Digest) -> bool,
    cache_links: impl Fn(&Digest) -> Vec<String>,
    in_use: impl Fn(&Digest) -> bool,
    dry_run: bool,
) -> StorageResult<Eviction> {
    // One entry per blob, at its newest stamp, with every marker key it has.
    let mut by_digest: HashMap<Digest, (u64, u64, Vec<String>)> = HashMap::new();
    for m in markers(storage).await? {
        let e = by_digest.entry(m.digest).or_insert((m.size, 0, Vec::new()));
        e.1 = e.1.max(m.stamp);
        e.2.push(m.key);
    }
    let mut total: u64 = by_digest.values().map(|e| e.0).sum();
    let mut ev = Eviction::default();
    if total <= max {
        ev.kept_bytes = total;
        return Ok(ev);
    }
    let mut order: Vec<(Digest, u64, u64, Vec<String>)> = by_digest
        .into_iter()
        .map(|(d, (size, stamp, keys))| (d, size, stamp, keys))
        .collect();
    order.sort_by_key(|m| m.2);
    for (d, size, _, keys) in order {
        if total <= max {
            break;
        }
        if pinned(&d) || storage.head(&pushed_key(&d)).await?.is_some() {
            // Pushed content: no longer the cache's to evict.
            total -= size;
            if !dry_run {
                for k in &keys {
                    storage.delete(k).await?;
                }
            }
            ev.forgotten.push(d);
            continue;
        }
        // Asked last, right before the delete, so a read that began meanwhile counts.
        if in_use(&d) {
            ev.busy += 1;
            continue;
        }
        total -= size;
        if !dry_run {
            for link in cache_links(&d) {
                storage.delete(&link).await?;
            }
            storage.delete(&blob_key(&d)).await?;
            for k in &keys {
                storage.delete(k).await?;
            }
        }
        ev.blobs += 1;
        ev.bytes += size;
        ev.forgotten.push(d);
    }
    ev.kept_bytes = total;
    Ok(ev)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_increase_within_a_millisecond() {
        let a = stamp();
        let b = stamp();
        let c = stamp();
        assert!(a < b && b < c, "{a} {b} {c}");
        assert!(a >= ms_stamp(SystemTime::now()) - 60_000 * PER_MS);
    }

    #[test]
    fn markers_parse_with_and_without_a_stamp() {
        let d: Digest = format!("sha256:{}", "ab".repeat(32)).parse().unwrap();
        let k = marker(&d, 42, 1_700_000_000_000_123);
        assert_eq!(
            parse_marker(&k),
            Some((d.clone(), 42, Some(1_700_000_000_000_123)))
        );
        let legacy = format!("{PREFIX}sha256/{}.42", "ab".repeat(32));
        assert_eq!(parse_marker(&legacy), Some((d, 42, None)));
        assert_eq!(parse_marker(&format!("{legacy}.x")), None);
    }
}
