//! The pull-through cache's counters, rendered into `/metrics` after the server's own.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

#[derive(Default)]
pub struct ProxyStats {
    /// Requests answered from the cache without asking the upstream.
    pub hits: AtomicU64,
    /// Requests that needed the upstream (a fill started, a manifest fetched, a tag revalidated).
    pub misses: AtomicU64,
    /// Blob requests that joined a fill another request had started.
    pub coalesced: AtomicU64,
    /// Cached content served because the upstream failed.
    pub stale: AtomicU64,
    pub upstream_bytes: AtomicU64,
    /// Evicted blobs and their bytes (the size bound).
    pub evicted: AtomicU64,
    pub evicted_bytes: AtomicU64,
    upstream: Mutex<BTreeMap<(String, String, String), u64>>,
}

impl ProxyStats {
    pub fn upstream(&self, name: &str, method: &str, status: &str) {
        *self
            .upstream
            .lock()
            .unwrap()
            .entry((name.to_string(), method.to_string(), status.to_string()))
            .or_default() += 1;
    }

    pub fn add(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn render(&self, s: &mut String) {
        s.push_str("# HELP teu_serve_upstream_requests_total Requests sent to upstream registries, by upstream, method and status (timeout and error when none came).\n");
        s.push_str("# TYPE teu_serve_upstream_requests_total counter\n");
        for ((u, m, st), n) in self.upstream.lock().unwrap().iter() {
            let _ = writeln!(
                s,
                "teu_serve_upstream_requests_total{{upstream=\"{u}\",method=\"{m}\",status=\"{st}\"}} {n}"
            );
        }
        for (name, help, v) in [
            (
                "teu_serve_proxy_hits_total",
                "Proxied requests answered from the cache alone.",
                &self.hits,
            ),
            (
                "teu_serve_proxy_misses_total",
                "Proxied requests that needed the upstream.",
                &self.misses,
            ),
            (
                "teu_serve_proxy_coalesced_total",
                "Blob requests that joined a fill already under way.",
                &self.coalesced,
            ),
            (
                "teu_serve_proxy_stale_total",
                "Cached content served because the upstream failed.",
                &self.stale,
            ),
            (
                "teu_serve_upstream_received_bytes_total",
                "Body bytes received from upstream registries.",
                &self.upstream_bytes,
            ),
            (
                "teu_serve_proxy_evicted_blobs_total",
                "Proxied blobs evicted by the cache's size bound.",
                &self.evicted,
            ),
            (
                "teu_serve_proxy_evicted_bytes_total",
                "Bytes of proxied blobs evicted by the size bound.",
                &self.evicted_bytes,
            ),
        ] {
            let _ = writeln!(
                s,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
    }
}
