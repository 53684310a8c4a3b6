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
//! ([`tags`]); when the upstream fails (429, 5xx, timeout, no connection) cached content
//! is served with a `Warning` header, and uncached content gets 429 or 503 with
//! `Retry-After`, never 404.

pub mod fill;
pub mod lru;
pub mod stats;
pub mod tags;
pub mod upstream;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::Response;
use futures_util::StreamExt;
use serde_json::Value;

use crate::digest::{Algorithm, Digest};
use crate::error::{ApiError, ApiResult};
use crate::http::{empty, App};
use crate::registry::{Reference, StoredManifest, MAX_MANIFEST, OCI_INDEX, OCI_MANIFEST};
use crate::storage::blob_key;
use fill::{Fill, FillError, FillState};
use stats::ProxyStats;
use upstream::{UpstreamClient, UpstreamError, ACCEPT_ALL};

/// The upstream whose names Docker's `registry-mirrors` send without a prefix.
pub const DOCKER_HUB: &str = "docker.io";

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

    pub fn cache_repo(&self, repo: &str) -> bool {
        repo.split_once('/')
            .is_some_and(|(first, _)| self.upstream(first).is_some())
    }
}

type Flight = tokio::sync::watch::Receiver<Option<Result<StoredManifest, FetchError>>>;

/// Run `work` once for `key` however many requests ask at the same time.
async fn single_flight<F>(
    app: &Arc<App>,
    key: String,
    work: F,
) -> Result<StoredManifest, FetchError>
where
    F: std::future::Future<Output = Result<StoredManifest, FetchError>> + Send + 'static,
{
    let mut rx = {
        let mut flights = app.proxy.flights.lock().unwrap();
        match flights.get(&key) {
            Some(rx) => rx.clone(),
            None => {
                let (tx, rx) = tokio::sync::watch::channel(None);
                flights.insert(key.clone(), rx.clone());
                let app2 = app.clone();
                tokio::spawn(async move {
                    let r = work.await;
                    app2.proxy.flights.lock().unwrap().remove(&key);
                    tx.send_replace(Some(r));
                });
                rx
            }
        }
    };
    let r = rx.wait_for(Option::is_some).await;
    match r {
        Ok(v) => v.clone().expect("waited for Some"),
        Err(_) => Err(FetchError::Invalid("the upstream lookup stopped".into())),
    }
}

fn hit(app: &App) {
    ProxyStats::add(&app.proxy.stats.hits);
}

fn miss(app: &App) {
    ProxyStats::add(&app.proxy.stats.misses);
}

/// An upstream failure as the answer for content we do not have: never a 404.
fn unavailable(e: &UpstreamError) -> ApiError {
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
            ApiError::new(StatusCode::BAD_GATEWAY, "UNKNOWN", e.to_string())
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

#[derive(Clone)]
enum FetchError {
    NotFound,
    Upstream(UpstreamError),
    Invalid(String),
    /// Storing failed (the cause is logged where it happened).
    Local,
}

impl From<UpstreamError> for FetchError {
    fn from(e: UpstreamError) -> Self {
        FetchError::Upstream(e)
    }
}

impl FetchError {
    fn into_api(self, what: String) -> ApiError {
        match self {
            FetchError::NotFound => ApiError::manifest_unknown(what),
            FetchError::Upstream(e) => unavailable(&e),
            FetchError::Invalid(m) => ApiError::new(StatusCode::BAD_GATEWAY, "UNKNOWN", m),
            FetchError::Local => ApiError::internal(&"storing a proxied manifest"),
        }
    }
}

fn manifest_response(m: &StoredManifest, head: bool, warning: Option<String>) -> Response {
    let mut headers = vec![
        ("Content-Type", m.media_type.clone()),
        ("Content-Length", m.bytes.len().to_string()),
        ("Docker-Content-Digest", m.digest.to_string()),
        ("ETag", format!("\"{}\"", m.digest)),
    ];
    if let Some(w) = warning {
        headers.push(("Warning", w));
    }
    let mut resp = empty(StatusCode::OK, &headers);
    if !head {
        *resp.body_mut() = Body::from(m.bytes.clone());
    }
    resp
}

/// GET or HEAD of a proxied manifest.
pub async fn manifest(
    app: &Arc<App>,
    r: &Route,
    reference: &str,
    req: &Parts,
) -> ApiResult<Response> {
    if req.method != Method::GET && req.method != Method::HEAD {
        return Err(read_only(&r.cache));
    }
    let head = req.method == Method::HEAD;
    match Reference::parse(reference)? {
        Reference::Digest(d) => {
            let local = Reference::Digest(d.clone());
            if let Ok(m) = app.registry.manifest_get(&r.cache, &local).await {
                hit(app);
                return Ok(manifest_response(&m, head, None));
            }
            miss(app);
            let (a, rr, dd) = (app.clone(), r.clone(), d.clone());
            let key = format!("{}@{d}", r.cache);
            let m = single_flight(app, key, async move {
                fetch_manifest(&a, &rr, &dd.to_string(), Some(&dd), None).await
            })
            .await
            .map_err(|e| e.into_api(format!("{}@{d}", r.cache)))?;
            Ok(manifest_response(&m, head, None))
        }
        Reference::Tag(t) => {
            let local = Reference::Tag(t.clone());
            let cached = app.registry.manifest_get(&r.cache, &local).await.ok();
            if let Some(m) = &cached {
                if app.proxy.tags.fresh(&r.cache, &t, r.up.cfg.tag_ttl) {
                    hit(app);
                    return Ok(manifest_response(m, head, None));
                }
            }
            miss(app);
            let (a, rr, tt, c) = (app.clone(), r.clone(), t.clone(), cached.clone());
            let key = format!("{}:{t}", r.cache);
            let result = single_flight(app, key, async move {
                let r = match &c {
                    Some(m) => revalidate(&a, &rr, &tt, m).await,
                    None => fetch_manifest(&a, &rr, &tt, None, Some(&tt)).await,
                };
                if r.is_ok() {
                    a.proxy.tags.confirmed(&rr.cache, &tt);
                }
                r
            })
            .await;
            match (result, cached) {
                (Ok(m), _) => Ok(manifest_response(&m, head, None)),
                (Err(FetchError::Upstream(e)), Some(m)) if e.unavailable() => {
                    tracing::warn!(repo = %r.cache, tag = %t, error = %e, "serving a stale tag");
                    ProxyStats::add(&app.proxy.stats.stale);
                    let w = format!("110 teu-serve \"Response is Stale: {e}\"");
                    Ok(manifest_response(&m, head, Some(w)))
                }
                (Err(e), _) => Err(e.into_api(format!("{}:{t}", r.cache))),
            }
        }
    }
}

fn read_only(repo: &str) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "UNSUPPORTED",
        format!("{repo} is a pull-through cache of an upstream registry: push elsewhere"),
    )
}

fn header_str<'a>(resp: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}

/// One HEAD listing every manifest type; the cached manifest if the digest is unchanged.
async fn revalidate(
    app: &Arc<App>,
    r: &Route,
    tag: &str,
    cached: &StoredManifest,
) -> Result<StoredManifest, FetchError> {
    let resp =
        r.up.send(
            reqwest::Method::HEAD,
            &r.repo,
            &format!("manifests/{tag}"),
            Some(ACCEPT_ALL),
            None,
        )
        .await?;
    match resp.status().as_u16() {
        200 => {}
        404 => return Err(FetchError::NotFound),
        s => return Err(FetchError::Invalid(format!("upstream HEAD answered {s}"))),
    }
    let now: Option<Digest> =
        header_str(&resp, "docker-content-digest").and_then(|d| d.parse().ok());
    match now {
        Some(d) if d == cached.digest => {
            // Re-link the tag in case another server on the same storage moved it.
            Ok(cached.clone())
        }
        Some(d) => fetch_manifest(app, r, &d.to_string(), Some(&d), Some(tag)).await,
        None => fetch_manifest(app, r, tag, None, Some(tag)).await,
    }
}

/// GET a manifest upstream, check its digest, and store it (tagged when by tag).
async fn fetch_manifest(
    app: &Arc<App>,
    r: &Route,
    reference: &str,
    want: Option<&Digest>,
    tag: Option<&str>,
) -> Result<StoredManifest, FetchError> {
    let resp =
        r.up.send(
            reqwest::Method::GET,
            &r.repo,
            &format!("manifests/{reference}"),
            Some(ACCEPT_ALL),
            None,
        )
        .await?;
    match resp.status().as_u16() {
        200 => {}
        404 => return Err(FetchError::NotFound),
        s => return Err(FetchError::Invalid(format!("upstream GET answered {s}"))),
    }
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_MANIFEST as u64)
    {
        return Err(FetchError::Invalid(format!(
            "the upstream's manifest is larger than {MAX_MANIFEST} bytes"
        )));
    }
    let announced: Option<Digest> =
        header_str(&resp, "docker-content-digest").and_then(|d| d.parse().ok());
    let content_type = header_str(&resp, "content-type")
        .map(|t| t.split(';').next().unwrap_or("").trim().to_string())
        .filter(|t| {
            !matches!(
                t.as_str(),
                "" | "application/json" | "application/octet-stream"
            )
        });
    let bytes = resp.bytes().await.map_err(|e| {
        FetchError::Upstream(UpstreamError::Connect {
            upstream: r.up.cfg.name.clone(),
            message: format!("manifest body: {e}"),
        })
    })?;
    r.up.received(bytes.len());
    if bytes.len() > MAX_MANIFEST {
        return Err(FetchError::Invalid(
            "the upstream's manifest is too large".into(),
        ));
    }
    let expect = want.cloned().or(announced);
    let alg = expect.as_ref().map_or(Algorithm::Sha256, |d| d.algorithm());
    let digest = Digest::of(alg, &bytes);
    if let Some(e) = &expect {
        if e != &digest {
            return Err(FetchError::Invalid(format!(
                "the upstream's manifest hashes to {digest}, not {e}"
            )));
        }
    }
    let doc: Value = serde_json::from_slice(&bytes)
        .map_err(|e| FetchError::Invalid(format!("the upstream's manifest is not JSON: {e}")))?;
    let media_type = content_type
        .or_else(|| {
            doc.get("mediaType")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_else(|| {
            if doc.get("manifests").is_some() {
                OCI_INDEX.to_string()
            } else {
                OCI_MANIFEST.to_string()
            }
        });
    app.registry
        .manifest_store(&r.cache, &digest, &media_type, bytes.clone(), tag)
        .await
        .map_err(|e| {
            tracing::error!(repo = %r.cache, error = %e.message, "storing a proxied manifest failed");
            FetchError::Local
        })?;
    Ok(StoredManifest {
        digest,
        media_type,
        bytes,
    })
}

/// GET or HEAD of a proxied blob.
pub async fn blob(app: &Arc<App>, r: &Route, d: &str, req: &Parts) -> ApiResult<Response> {
    let d = crate::http::blobs::parse_digest(d)?;
    if req.method != Method::GET && req.method != Method::HEAD {
        return Err(read_only(&r.cache));
    }
    if let Some(size) = app.registry.blob_size(&r.cache, &d).await? {
        hit(app);
        app.proxy.lru.touch(app.registry.storage.as_ref(), &d).await;
        return crate::http::blobs::serve(app, &d, size, req).await;
    }
    // Content-addressed: bytes cached for another repository are the same bytes.
    if let Some(e) = app.registry.storage.head(&blob_key(&d)).await? {
        hit(app);
        app.registry.link_blob(&r.cache, &d).await?;
        return crate::http::blobs::serve(app, &d, e.size, req).await;
    }
    miss(app);
    if req.method == Method::HEAD {
        return blob_head(r, &d).await;
    }
    let fill = match join_or_start(app, r, &d).await? {
        Some(f) => f,
        None => {
            // Committed while we looked.
            let size = app
                .registry
                .blob_size(&r.cache, &d)
                .await?
                .ok_or_else(|| ApiError::blob_unknown(&d))?;
            return crate::http::blobs::serve(app, &d, size, req).await;
        }
    };
    let size = match fill.started().await {
        FillState::Failed(e) => return Err(fill_error(&e, &d)),
        FillState::Streaming { size, .. } => size,
        FillState::Verified { size } => Some(size),
        FillState::Waiting => None,
    };
    let range = match (crate::http::header(req, "range"), size) {
        (Some(h), Some(size)) => Some(
            crate::http::blobs::parse_range(h, size)
                .ok_or_else(|| ApiError::range_invalid(size))?,
        ),
        _ => None,
    };
    let mut headers = vec![
        ("Content-Type", "application/octet-stream".to_string()),
        ("Docker-Content-Digest", d.to_string()),
        ("ETag", format!("\"{d}\"")),
    ];
    let status = match (&range, size) {
        (Some(rg), Some(size)) => {
            headers.push((
                "Content-Range",
                format!("bytes {}-{}/{size}", rg.start, rg.end - 1),
            ));
            headers.push(("Accept-Ranges", "bytes".into()));
            StatusCode::PARTIAL_CONTENT
        }
        _ => StatusCode::OK,
    };
    let len = match (&range, size) {
        (Some(rg), _) => Some(rg.end - rg.start),
        (None, s) => s,
    };
    let mut resp = empty(status, &headers);
    let counter = app.clone();
    *resp.body_mut() = Body::from_stream(fill.follow(range).inspect(move |c| {
        if let Ok(c) = c {
            counter
                .metrics
                .bytes_out
                .fetch_add(c.len() as u64, Ordering::Relaxed);
        }
    }));
    if let Some(n) = len {
        resp.headers_mut()
            .insert("Content-Length", HeaderValue::from(n));
    }
    Ok(resp)
}

fn fill_error(e: &FillError, d: &Digest) -> ApiError {
    match e {
        FillError::NotFound => ApiError::blob_unknown(d),
        FillError::Upstream(u) => unavailable(u),
        FillError::Corrupt(_) | FillError::Io(_) => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "UNKNOWN",
            format!("fetching {d}: {e}"),
        ),
    }
}

async fn blob_head(r: &Route, d: &Digest) -> ApiResult<Response> {
    let resp =
        r.up.send(
            reqwest::Method::HEAD,
            &r.repo,
            &format!("blobs/{d}"),
            None,
            None,
        )
        .await
        .map_err(|e| unavailable(&e))?;
    match resp.status().as_u16() {
        200 => {}
        404 => return Err(ApiError::blob_unknown(d)),
        s => {
            return Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "UNKNOWN",
                format!("upstream HEAD answered {s}"),
            ))
        }
    }
    let mut headers = vec![
        ("Content-Type", "application/octet-stream".to_string()),
        ("Docker-Content-Digest", d.to_string()),
    ];
    if let Some(n) = header_str(&resp, "content-length") {
        headers.push(("Content-Length", n.to_string()));
    }
    Ok(empty(StatusCode::OK, &headers))
}

/// Join the fill of `d`, or start it. `None`: the blob was committed meanwhile.
async fn join_or_start(app: &Arc<App>, r: &Route, d: &Digest) -> ApiResult<Option<Arc<Fill>>> {
    let join = |fills: &HashMap<Digest, Arc<Fill>>| {
        let live = fills
            .get(d)
            .filter(|f| !matches!(f.state(), FillState::Failed(_)));
        live.map(|f| {
            let mut repos = f.repos.lock().unwrap();
            if !repos.contains(&r.cache) {
                repos.push(r.cache.clone());
            }
            f.clone()
        })
    };
    if let Some(f) = join(&app.proxy.fills.lock().unwrap()) {
        ProxyStats::add(&app.proxy.stats.coalesced);
        return Ok(Some(f));
    }
    // A fill that finished between the caller's look at storage and the lock above is
    // out of the map and in storage: look again before fetching a second time.
    if app.registry.storage.head(&blob_key(d)).await?.is_some() {
        app.registry.link_blob(&r.cache, d).await?;
        return Ok(None);
    }
    let (fill, tx) = {
        let mut fills = app.proxy.fills.lock().unwrap();
        if let Some(f) = join(&fills) {
            ProxyStats::add(&app.proxy.stats.coalesced);
            return Ok(Some(f));
        }
        let (fill, tx) = Fill::new(d.clone(), &app.proxy.spool_dir, &r.cache)
            .map_err(|e| ApiError::internal(&format!("spool file: {e}")))?;
        fills.insert(d.clone(), fill.clone());
        (fill, tx)
    };
    let (app2, r2, f) = (app.clone(), r.clone(), fill.clone());
    tokio::spawn(async move {
        let d = f.digest.clone();
        // Storage follows the spool like a client does, so the bytes go into storage as
        // they arrive, at storage's own pace, and its stream ends only once they verify.
        let store = tokio::spawn({
            let (app3, f3) = (app2.clone(), f.clone());
            async move { store(&app3, &f3).await }
        });
        match fill::run(&r2.up, &r2.repo, &f, &tx).await {
            Ok(size) => {
                tx.send_replace(FillState::Verified { size });
            }
            Err(e) => {
                tracing::warn!(digest = %d, upstream = %r2.up.cfg.name, error = %e, "blob fill failed; nothing stored");
                tx.send_replace(FillState::Failed(e));
                // Out of the map at once: a client retrying right away starts a new fill
                // instead of joining this one while storage cleans up.
                remove_fill(&app2, &f);
            }
        }
        match store.await {
            Ok(Ok(())) | Ok(Err(None)) => {}
            Ok(Err(Some(e))) => {
                tracing::error!(digest = %d, error = %e.message, "storing a proxied blob failed");
            }
            Err(e) => tracing::error!(digest = %d, error = %e, "storing a proxied blob failed"),
        }
        remove_fill(&app2, &f);
    });
    Ok(Some(fill))
}

/// Forget `f` (and only `f`: a newer fill of the same digest may have replaced it).
fn remove_fill(app: &App, f: &Arc<Fill>) {
    let mut fills = app.proxy.fills.lock().unwrap();
    if fills.get(&f.digest).is_some_and(|g| Arc::ptr_eq(g, f)) {
        fills.remove(&f.digest);
    }
}

/// Write the fill into storage as it arrives, then publish it and link it into every
/// repository that asked. `Err(None)`: the fill failed, and nothing was stored.
async fn store(app: &Arc<App>, f: &Arc<Fill>) -> Result<(), Option<ApiError>> {
    let storage = &app.registry.storage;
    let id = crate::registry::new_upload_id();
    let repo = f.repos.lock().unwrap().first().cloned();
    let info = serde_json::json!({"repo": repo, "proxied": true}).to_string();
    storage
        .upload_create(&id, info.into())
        .await
        .map_err(|e| Some(e.into()))?;
    let size = match storage.upload_append(&id, 0, f.follow(None)).await {
        Ok(n) => n,
        Err(e) => {
            let _ = storage.upload_delete(&id).await;
            // A failed fill ends the stream with an error; that is not storage's fault.
            let failed = matches!(f.state(), FillState::Failed(_));
            return Err((!failed).then(|| e.into()));
        }
    };
    // The stream ended, so every byte arrived and the digest checked.
    if let Err(e) = storage
        .upload_commit(&id, &f.digest, Some(f.digest.clone()))
        .await
    {
        let _ = storage.upload_delete(&id).await;
        return Err(Some(e.into()));
    }
    app.proxy.lru.added(storage.as_ref(), &f.digest, size).await;
    let repos = f.repos.lock().unwrap().clone();
    for repo in repos {
        app.registry
            .link_blob(&repo, &f.digest)
            .await
            .map_err(Some)?;
    }
    app.proxy.lru.enforce(app).await;
    Ok(())
}

/// GET of a proxied repository's tags: the upstream's list, or the cached tags when the
/// upstream is unavailable.
pub async fn tags(app: &Arc<App>, r: &Route, req: &Parts) -> ApiResult<Response> {
    let path = match req.uri.query() {
        Some(q) => format!("tags/list?{q}"),
        None => "tags/list".to_string(),
    };
    let fetched =
        r.up.send(reqwest::Method::GET, &r.repo, &path, None, None)
            .await;
    let resp = match fetched {
        Ok(resp) if resp.status() == 200 => resp,
        Ok(resp) if resp.status() == 404 => return Err(ApiError::name_unknown(&r.cache)),
        Ok(resp) => {
            return Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "UNKNOWN",
                format!("upstream tags list answered {}", resp.status()),
            ))
        }
        Err(e) => {
            let cached = app
                .registry
                .tags(&r.cache)
                .await
                .map_err(|_| unavailable(&e))?;
            ProxyStats::add(&app.proxy.stats.stale);
            let body = serde_json::json!({"name": r.repo, "tags": cached}).to_string();
            let mut out = empty(
                StatusCode::OK,
                &[
                    ("Content-Type", "application/json".into()),
                    (
                        "Warning",
                        format!("110 teu-serve \"Response is Stale: {e}\""),
                    ),
                ],
            );
            *out.body_mut() = Body::from(body);
            return Ok(out);
        }
    };
    let link = header_str(&resp, "link").map(str::to_string);
    let bytes = resp.bytes().await.map_err(|e| {
        unavailable(&UpstreamError::Connect {
            upstream: r.up.cfg.name.clone(),
            message: e.to_string(),
        })
    })?;
    r.up.received(bytes.len());
    let mut headers = vec![("Content-Type", "application/json".to_string())];
    if let Some(l) = link {
        // The upstream's next page, on this server's path.
        headers.push((
            "Link",
            l.replace(&format!("/v2/{}/", r.repo), &format!("/v2/{}/", r.cache)),
        ));
    }
    let mut out = empty(StatusCode::OK, &headers);
    *out.body_mut() = Body::from(bytes);
    Ok(out)
}
