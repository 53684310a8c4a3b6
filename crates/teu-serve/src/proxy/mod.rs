//! The pull-through cache: `[[upstream]]` registries served through this one.
//!
//! Clients name an upstream three ways, all landing in one cache repository
//! `<upstream>/<repo>` (so `docker.io/library/alpine` is cached once however it is asked
//! for): containerd's mirrors (`/v2/library/alpine/…?ns=docker.io`), a path prefix
//! (`/v2/docker.io/library/alpine/…`), and Docker's `registry-mirrors`, which send Docker
//! Hub names without either: those are looked up locally first and, when missing, go to
//! the upstream named `docker.io`. Docker Hub short names get `library/` as Docker does.
//!
//! Blobs: one coalesced fill per digest ([`fill`]). Manifests by digest: fetched once,
//! kept. Tags: served from the cache for `tag_ttl`, then revalidated with one HEAD
//! ([`mod@tags`]); when the upstream fails (429, 5xx, timeout, no connection) cached content
//! is served with a `Warning` header, and uncached content gets 429 or 503 with
//! `Retry-After`, never 404.

mod blobs;
pub mod fill;
pub mod lru;
mod manifests;
pub mod stats;
pub mod tags;
pub mod upstream;

pub use blobs::blob;
pub use manifests::{manifest, tags};

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;

use crate::digest::Digest;
use crate::error::ApiError;
use crate::http::App;
use fill::Fill;
use manifests::Flight;
use stats::ProxyStats;
use upstream::{UpstreamClient, UpstreamError};

/// The upstream whose names Docker's `registry-mirrors` send without a prefix.
pub const DOCKER_HUB: &str = "docker.io";

/// The error code of a 502 for an upstream that refused (401, 403, token refused), so the
/// `registry-mirrors` path can tell it from other gateway errors.
pub const REFUSED: &str = "DENIED";

/// What clients are told to wait when the upstream gave no `Retry-After`.
const DEFAULT_RETRY_AFTER: &str = "10";

pub struct Proxy {
    upstreams: Vec<Arc<UpstreamClient>>,
    pub stats: Arc<ProxyStats>,
    fills: Mutex<HashMap<Digest, Arc<Fill>>>,
    /// Manifest lookups under way, so concurrent clients of one tag share one upstream
    /// request. Each runs as its own task: a client hanging up does not cancel it.
    flights: Mutex<HashMap<String, Flight>>,
    tags: tags::TagClock,
    spool_dir: PathBuf,
    pub lru: lru::Lru,
}

/// A request's upstream, the repository there, and the cache repository here.
#[derive(Clone)]
pub struct Route {
    pub up: Arc<UpstreamClient>,
    pub repo: String,
    pub cache: String,
}

impl Proxy {
    pub fn new(
        upstreams: Vec<Arc<UpstreamClient>>,
        stats: Arc<ProxyStats>,
        spool_dir: PathBuf,
        lru: lru::Lru,
    ) -> Proxy {
        Proxy {
            upstreams,
            stats,
            fills: Mutex::new(HashMap::new()),
            flights: Mutex::new(HashMap::new()),
            tags: tags::TagClock::default(),
            spool_dir,
            lru,
        }
    }

    /// The cache's metrics, after the server's.
    pub fn render(&self, s: &mut String) {
        self.stats.render(s);
        let n = self.fills.lock().unwrap().len();
        s.push_str(
            "# HELP teu_serve_proxy_fills_in_progress Blob fills from upstreams under way.\n",
        );
        s.push_str("# TYPE teu_serve_proxy_fills_in_progress gauge\n");
        s.push_str(&format!("teu_serve_proxy_fills_in_progress {n}\n"));
    }

    pub fn is_empty(&self) -> bool {
        self.upstreams.is_empty()
    }

    fn upstream(&self, name: &str) -> Option<&Arc<UpstreamClient>> {
        let name = match name {
            "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => DOCKER_HUB,
            n => n,
        };
        self.upstreams.iter().find(|u| u.cfg.name == name)
    }

    fn route_to(up: &Arc<UpstreamClient>, repo: &str) -> Route {
        let repo = if up.cfg.name == DOCKER_HUB && !repo.contains('/') {
            format!("library/{repo}")
        } else {
            repo.to_string()
        };
        Route {
            up: up.clone(),
            cache: format!("{}/{repo}", up.cfg.name),
            repo,
        }
    }

    /// The upstream a request names explicitly (`?ns=` or a path prefix).
    pub fn route(&self, name: &str, ns: Option<&str>) -> Option<Route> {
        if let Some(up) = ns.and_then(|n| self.upstream(n)) {
            return Some(Self::route_to(up, name));
        }
        let (first, rest) = name.split_once('/')?;
        self.upstream(first).map(|up| Self::route_to(up, rest))
    }

    /// Docker's `registry-mirrors`: an unprefixed name that is not here locally.
    pub fn mirror(&self, name: &str) -> Option<Route> {
        self.upstream(DOCKER_HUB).map(|up| Self::route_to(up, name))
    }

    /// Whether an upstream is named `docker.io`, for Docker's `registry-mirrors`.
    pub fn has_docker_hub(&self) -> bool {
        self.upstream(DOCKER_HUB).is_some()
    }

    pub fn cache_repo(&self, repo: &str) -> bool {
        repo.split_once('/')
            .is_some_and(|(first, _)| self.upstream(first).is_some())
    }
}

pub(crate) fn hit(app: &App) {
    ProxyStats::add(&app.proxy.stats.hits);
}

pub(crate) fn miss(app: &App) {
    ProxyStats::add(&app.proxy.stats.misses);
}

/// An upstream failure as the answer for content we do not have: never a 404.
pub(crate) fn unavailable(e: &UpstreamError) -> ApiError {
    match e {
        UpstreamError::Status {
            status: 429,
            retry_after,
            ..
        } => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TOOMANYREQUESTS",
            format!("{e}; not cached here yet"),
        )
        .with_header(
            "Retry-After",
            retry_after
                .clone()
                .unwrap_or_else(|| DEFAULT_RETRY_AFTER.into()),
        ),
        UpstreamError::Refused { .. } => {
            ApiError::new(StatusCode::BAD_GATEWAY, REFUSED, e.to_string())
        }
        UpstreamError::Status { retry_after, .. } => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "UNAVAILABLE",
            format!("{e}; not cached here yet"),
        )
        .with_header(
            "Retry-After",
            retry_after
                .clone()
                .unwrap_or_else(|| DEFAULT_RETRY_AFTER.into()),
        ),
        _ => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "UNAVAILABLE",
            format!("{e}; not cached here yet"),
        )
        .with_header("Retry-After", DEFAULT_RETRY_AFTER.into()),
    }
}

pub(crate) fn read_only(repo: &str) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "UNSUPPORTED",
        format!("{repo} is a pull-through cache of an upstream registry: push elsewhere"),
    )
}

pub(crate) fn header_str<'a>(resp: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}
