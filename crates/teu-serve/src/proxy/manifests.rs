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
use super::upstream::{read_limited, BodyError, UpstreamError, ACCEPT_ALL};
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
    single_flight_in(app, |a| &a.proxy.flights, key, work).await
}

type Flights = std::sync::Mutex<std::collections::HashMap<String, Flight>>;

/// [`single_flight`] with the map of flights found in `owner`, so it can be tested alone.
async fn single_flight_in<T, F>(
    owner: &Arc<T>,
    flights: fn(&T) -> &Flights,
    key: String,
    work: F,
) -> Result<StoredManifest, FetchError>
where
    T: Send + Sync + 'static,
    F: std::future::Future<Output = Result<StoredManifest, FetchError>> + Send + 'static,
{
    /// Forgets the flight however its task ends: a panicking `work` must not leave a
    /// closed channel under the key, which every later request would join and fail on.
    struct Forget<T: Send + Sync + 'static> {
        owner: Arc<T>,
        flights: fn(&T) -> &Flights,
        key: String,
    }
    impl<T: Send + Sync + 'static> Drop for Forget<T> {
        fn drop(&mut self) {
            (self.flights)(&self.owner)
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&self.key);
        }
    }
    let mut rx = {
        let mut map = flights(owner).lock().unwrap_or_else(|e| e.into_inner());
        match map.get(&key) {
            Some(rx) => rx.clone(),
            None => {
                let (tx, rx) = tokio::sync::watch::channel(None);
                map.insert(key.clone(), rx.clone());
                let forget = Forget {
                    owner: owner.clone(),
                    flights,
                    key,
                };
                tokio::spawn(async move {
                    let r = work.await;
                    // Out of the map before the answer goes out, so nobody joins a
                    // finished flight.
                    drop(forget);
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

/// A manifest request upstream with every manifest type in `Accept`; anything but 200
/// is an error (404 its own kind, so callers can tell "gone" from "broken").
async fn manifest_request(
    r: &Route,
    method: reqwest::Method,
    reference: &str,
) -> Result<reqwest::Response, FetchError> {
    let what = method.to_string();
    let resp =
        r.up.send(
            method,
            &r.repo,
            &format!("manifests/{reference}"),
            Some(ACCEPT_ALL),
            None,
        )
        .await?;
    match resp.status().as_u16() {
        200 => Ok(resp),
        404 => Err(FetchError::NotFound),
        s => Err(FetchError::Invalid(format!("upstream {what} answered {s}"))),
    }
}

/// One HEAD listing every manifest type; the cached manifest if the digest is unchanged.
async fn revalidate(
    app: &Arc<App>,
    r: &Route,
    tag: &str,
    cached: &StoredManifest,
) -> Result<StoredManifest, FetchError> {
    let resp = manifest_request(r, reqwest::Method::HEAD, tag).await?;
    let now: Option<Digest> =
        header_str(&resp, "docker-content-digest").and_then(|d| d.parse().ok());
    match now {
        Some(d) if d == cached.digest => Ok(cached.clone()),
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
    let resp = manifest_request(r, reqwest::Method::GET, reference).await?;
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
    let bytes = read_limited(resp, MAX_MANIFEST, "the upstream's manifest")
        .await
        .map_err(|e| match e {
            BodyError::TooLarge { .. } => FetchError::Invalid(e.to_string()),
            BodyError::Read { .. } => FetchError::Upstream(UpstreamError::Connect {
                upstream: r.up.cfg.name.clone(),
                message: e.to_string(),
            }),
        })?;
    r.up.received(bytes.len());
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

/// The most of an upstream's tags list that is read (one page; Docker Hub pages at 100s).
const MAX_TAGS_LIST: usize = 4 << 20;

/// GET of a proxied repository's tags: the upstream's list, or the cached tags when the
/// upstream is unavailable.
pub async fn tags(app: &Arc<App>, r: &Route, req: &Parts) -> ApiResult<Response> {
    // containerd's `ns=` names this server's upstream; the upstream has no use for it.
    let upstream_query: Vec<&str> = req
        .uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty() && kv.split('=').next() != Some("ns"))
        .collect();
    let path = match upstream_query.is_empty() {
        false => format!("tags/list?{}", upstream_query.join("&")),
        true => "tags/list".to_string(),
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
        // Refused (401, 403) is an answer: the cached list may be one the upstream no
        // longer lets us see, so it is not served in its place.
        Err(e) if !e.unavailable() => return Err(unavailable(&e)),
        Err(e) => return stale_tags(app, r, req, &e).await,
    };
    let link = header_str(&resp, "link").map(str::to_string);
    let bytes = read_limited(resp, MAX_TAGS_LIST, "the upstream's tags list")
        .await
        .map_err(|e| match e {
            BodyError::TooLarge { .. } => {
                ApiError::new(StatusCode::BAD_GATEWAY, "UNKNOWN", e.to_string())
            }
            BodyError::Read { .. } => unavailable(&UpstreamError::Connect {
                upstream: r.up.cfg.name.clone(),
                message: e.to_string(),
            }),
        })?;
    r.up.received(bytes.len());
    // The upstream names its own repository; the client asked for ours.
    let bytes = match serde_json::from_slice::<Value>(&bytes) {
        Ok(mut v) if v.is_object() => {
            v["name"] = Value::String(asked_name(req, r));
            bytes::Bytes::from(v.to_string())
        }
        _ => bytes,
    };
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

/// The repository name in the client's request path.
fn asked_name(req: &Parts, r: &Route) -> String {
    req.uri
        .path()
        .strip_prefix("/v2/")
        .and_then(|p| p.strip_suffix("/tags/list"))
        .unwrap_or(&r.cache)
        .to_string()
}

/// The cached tags in place of an unavailable upstream's, paged as the client asked and
/// under the name it asked for.
async fn stale_tags(
    app: &Arc<App>,
    r: &Route,
    req: &Parts,
    e: &UpstreamError,
) -> ApiResult<Response> {
    let cached = app
        .registry
        .tags(&r.cache)
        .await
        .map_err(|_| unavailable(e))?;
    let asked = asked_name(req, r);
    let (tags, link) = crate::http::paginate(cached, req, &format!("/v2/{asked}/tags/list"))?;
    ProxyStats::add(&app.proxy.stats.stale);
    let body = serde_json::json!({"name": asked, "tags": tags}).to_string();
    let mut headers = vec![
        ("Content-Type", "application/json".to_string()),
        (
            "Warning",
            format!("110 teu-serve \"Response is Stale: {e}\""),
        ),
    ];
    if let Some(mut l) = link {
        if let Some(ns) = crate::http::query(req, "ns") {
            l = l.replace(">; rel", &format!("&ns={ns}>; rel"));
        }
        headers.push(("Link", l));
    }
    let mut out = empty(StatusCode::OK, &headers);
    *out.body_mut() = Body::from(body);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use super::*;

    fn manifest() -> StoredManifest {
        let bytes = bytes::Bytes::from_static(b"{}");
        StoredManifest {
            digest: Digest::of(Algorithm::Sha256, &bytes),
            media_type: OCI_MANIFEST.to_string(),
            bytes,
        }
    }

    #[tokio::test]
    async fn a_panicking_flight_does_not_poison_its_key() {
        let flights: Arc<Flights> = Arc::new(Mutex::new(HashMap::new()));
        let r = single_flight_in(&flights, |f| f, "k".into(), async {
            panic!("the lookup panicked")
        })
        .await;
        assert!(matches!(r, Err(FetchError::Invalid(_))));
        assert!(flights.lock().unwrap().is_empty(), "the key was forgotten");
        let r = single_flight_in(&flights, |f| f, "k".into(), async { Ok(manifest()) }).await;
        assert!(matches!(r, Ok(m) if m.digest == manifest().digest));
        assert!(flights.lock().unwrap().is_empty());
    }
}
