//! Proxied manifests and tags lists: by digest fetched once and kept, by tag served for
//! `tag_ttl` and then revalidated with one HEAD, one upstream request per key however
//! many clients ask, stale answers when the upstream fails.

use std::sync::Arc;

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::Value;

use super::stats::ProxyStats;
use super::upstream::{UpstreamError, ACCEPT_ALL};
use super::{header_str, hit, miss, read_only, unavailable, Route};
use crate::digest::{Algorithm, Digest};
use crate::error::{ApiError, ApiResult};
use crate::http::{empty, App};
use crate::registry::{Reference, StoredManifest, MAX_MANIFEST, OCI_INDEX, OCI_MANIFEST};

pub(super) type Flight = tokio::sync::watch::Receiver<Option<Result<StoredManifest, FetchError>>>;

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

#[derive(Clone)]
pub(super) enum FetchError {
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
