//! `/metrics` in the Prometheus text format: requests by method and status, bytes in and
//! out, and the bytes the store holds (listed at most once a minute, since listing a big
//! bucket is not free).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::storage::Storage;

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    storage: Mutex<Option<(Instant, u64, u64)>>,
}

impl Metrics {
    pub fn request(&self, method: &str, status: u16) {
        *self
            .requests
            .lock()
            .unwrap()
            .entry((method.to_string(), status))
            .or_default() += 1;
    }

    pub async fn render(&self, storage: &dyn Storage) -> String {
        let cached = *self.storage.lock().unwrap();
        let (blobs, bytes) = match cached {
            Some((at, n, b)) if at.elapsed() < Duration::from_secs(60) => (n, b),
            _ => {
                let list = storage.list("blobs/").await.unwrap_or_default();
                let n = list.len() as u64;
                let b = list.iter().map(|e| e.size).sum();
                *self.storage.lock().unwrap() = Some((Instant::now(), n, b));
                (n, b)
            }
        };
        let mut s = String::new();
        s.push_str(
            "# HELP teu_serve_requests_total HTTP requests answered, by method and status.\n",
        );
        s.push_str("# TYPE teu_serve_requests_total counter\n");
        for ((m, st), n) in self.requests.lock().unwrap().iter() {
            let _ = writeln!(
                s,
                "teu_serve_requests_total{{method=\"{m}\",status=\"{st}\"}} {n}"
            );
        }
        let mut counter = |name: &str, help: &str, v: u64, kind: &str| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        };
        counter(
            "teu_serve_received_bytes_total",
            "Request body bytes received (uploads, manifests).",
            self.bytes_in.load(Ordering::Relaxed),
            "counter",
        );
        counter(
            "teu_serve_sent_bytes_total",
            "Response body bytes sent.",
            self.bytes_out.load(Ordering::Relaxed),
            "counter",
        );
        counter(
            "teu_serve_storage_blobs",
            "Blobs in the store (manifests included).",
            blobs,
            "gauge",
        );
        counter(
            "teu_serve_storage_bytes",
            "Bytes of blobs in the store.",
            bytes,
            "gauge",
        );
        s
    }
}
