//! The HTTP side: one dispatcher that parses distribution API paths by hand (repository
//! names contain slashes, which path routers cannot split unambiguously), checks auth and
//! read-only mode, counts metrics and writes one access-log line per request.

mod auth;
pub(crate) mod blobs;
mod manifests;
mod metrics;

pub(crate) use manifests::paginate;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, HttpBody};
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

pub use auth::{Auth, HtpasswdError};
pub use metrics::Metrics;

use crate::error::{ApiError, ApiResult};
use crate::registry::Registry;
use crate::storage::ByteStream;

pub struct App {
    pub registry: Registry,
    pub auth: Auth,
    pub read_only: bool,
    pub metrics: Metrics,
    pub proxy: crate::proxy::Proxy,
}

enum Route<'a> {
    Base,
    Catalog,
    Metrics,
    Tags(&'a str),
    Manifest(&'a str, &'a str),
    Uploads(&'a str),
    Upload(&'a str, &'a str),
    Blob(&'a str, &'a str),
    Referrers(&'a str, &'a str),
}

fn route(path: &str) -> Option<Route<'_>> {
    if path == "/v2" || path == "/v2/" {
        return Some(Route::Base);
    }
    if path == "/metrics" {
        return Some(Route::Metrics);
    }
    let rest = path.strip_prefix("/v2/")?;
    if rest == "_catalog" {
        return Some(Route::Catalog);
    }
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return Some(Route::Tags(name));
    }
    if let Some((name, r)) = rest.rsplit_once("/manifests/") {
        return Some(Route::Manifest(name, r));
    }
    if let Some(name) = rest
        .strip_suffix("/blobs/uploads/")
        .or_else(|| rest.strip_suffix("/blobs/uploads"))
    {
        return Some(Route::Uploads(name));
    }
    if let Some((name, id)) = rest.rsplit_once("/blobs/uploads/") {
        return Some(Route::Upload(name, id));
    }
    if let Some((name, d)) = rest.rsplit_once("/blobs/") {
        return Some(Route::Blob(name, d));
    }
    if let Some((name, d)) = rest.rsplit_once("/referrers/") {
        return Some(Route::Referrers(name, d));
    }
    None
}

/// The query parameter `key`, percent-decoded.
pub(crate) fn query(req: &Parts, key: &str) -> Option<String> {
    let q = req.uri.query()?;
    q.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == key).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (b[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (x, _) => {
                out.push(x);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) fn header<'a>(req: &'a Parts, name: &str) -> Option<&'a str> {
    req.headers.get(name).and_then(|v| v.to_str().ok())
}

/// The request body as a stream of chunks, counted into the metrics.
pub(crate) fn body_stream(app: &Arc<App>, body: Body) -> ByteStream {
    let app = app.clone();
    Box::pin(body.into_data_stream().map(move |c| {
        let c = c.map_err(std::io::Error::other)?;
        app.metrics
            .bytes_in
            .fetch_add(c.len() as u64, Ordering::Relaxed);
        Ok(c)
    }))
}

fn check_name(name: &str) -> ApiResult<()> {
    if crate::names::valid_repo(name) {
        Ok(())
    } else {
        Err(ApiError::name_invalid(name))
    }
}

pub fn router(app: Arc<App>) -> axum::Router {
    axum::Router::new().fallback(dispatch).with_state(app)
}

async fn dispatch(State(app): State<Arc<App>>, req: Request) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    // With the query: containerd's `?ns=` says which upstream a mirror request is for.
    let path = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.uri().path().to_string(), |p| p.to_string());
    let (resp, user) = match handle(&app, req).await {
        Ok((r, user)) => (r, user),
        Err(e) => (e.into_response(), None),
    };
    let status = resp.status().as_u16();
    app.metrics.request(method.as_str(), status);
    // Streamed bodies (blobs) are counted as they are sent; fixed ones here.
    if let Some(n) = resp.body().size_hint().exact() {
        app.metrics.bytes_out.fetch_add(n, Ordering::Relaxed);
    }
    tracing::info!(
        target: "teu_serve::access",
        method = %method,
        path = %path,
        status,
        user = user.as_deref().unwrap_or("-"),
        ms = start.elapsed().as_millis() as u64,
    );
    resp
}

async fn handle(app: &Arc<App>, req: Request) -> Result<(Response, Option<String>), ApiError> {
    // Parts are Sync and may be borrowed across awaits; the body is not, so it moves.
    let (req, body) = req.into_parts();
    let Some(r) = route(req.uri.path()) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "no such endpoint",
        ));
    };
    let user = app
        .auth
        .check(&req.method, matches!(r, Route::Base), &req.headers)?;
    let writes = !matches!(req.method, Method::GET | Method::HEAD);
    if writes && app.read_only {
        return Err(ApiError::unsupported("this registry is read-only"));
    }
    let resp = match r {
        Route::Base => {
            let mut resp = (StatusCode::OK, "{}").into_response();
            resp.headers_mut()
                .insert("Content-Type", HeaderValue::from_static("application/json"));
            resp
        }
        Route::Metrics => {
            let mut text = app.metrics.render(app.registry.storage.as_ref()).await;
            if !app.proxy.is_empty() {
                app.proxy.render(&mut text);
            }
            let mut resp = text.into_response();
            resp.headers_mut().insert(
                "Content-Type",
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            resp
        }
        Route::Catalog => manifests::catalog(app, &req).await?,
        Route::Tags(name) => {
            check_name(name)?;
            match app.proxy.route(name, query(&req, "ns").as_deref()) {
                Some(r) => crate::proxy::tags(app, &r, &req).await?,
                None => match manifests::tags(app, name, &req).await {
                    Err(e) => match mirror_miss(app, name, &req, &e, false).await? {
                        Some(r) => mirrored(crate::proxy::tags(app, &r, &req).await, e)?,
                        None => return Err(e),
                    },
                    Ok(resp) => resp,
                },
            }
        }
        Route::Manifest(name, reference) => {
            check_name(name)?;
            match app.proxy.route(name, query(&req, "ns").as_deref()) {
                Some(r) => crate::proxy::manifest(app, &r, reference, &req).await?,
                None => match manifests::manifest(app, name, reference, &req, body).await {
                    Err(e) => match mirror_miss(app, name, &req, &e, false).await? {
                        Some(r) => {
                            mirrored(crate::proxy::manifest(app, &r, reference, &req).await, e)?
                        }
                        None => return Err(e),
                    },
                    Ok(resp) => resp,
                },
            }
        }
        Route::Referrers(name, d) => {
            check_name(name)?;
            manifests::referrers(app, name, d, &req).await?
        }
        Route::Blob(name, d) => {
            check_name(name)?;
            match app.proxy.route(name, query(&req, "ns").as_deref()) {
                Some(r) => crate::proxy::blob(app, &r, d, &req).await?,
                None => match blobs::blob(app, name, d, &req).await {
                    Err(e) => match mirror_miss(app, name, &req, &e, true).await? {
                        Some(r) => mirrored(crate::proxy::blob(app, &r, d, &req).await, e)?,
                        None => return Err(e),
                    },
                    Ok(resp) => resp,
                },
            }
        }
        Route::Uploads(name) => {
            check_name(name)?;
            refuse_proxied(app, name)?;
            blobs::start_upload(app, name, &req, body).await?
        }
        Route::Upload(name, id) => {
            check_name(name)?;
            refuse_proxied(app, name)?;
            blobs::upload(app, name, id, &req, body).await?
        }
    };
    Ok((resp, user))
}

/// The Docker Hub route for a read this server could not answer locally, when Docker's
/// `registry-mirrors` may have meant it for the proxied Docker Hub.
///
/// Only names with no local content at all go there: a repository pushed here is this
/// server's, and a missing tag in it must not resolve to a stranger's image on Hub. A blob
/// HEAD never goes there: every pushing client (docker, containerd, skopeo) sends one
/// before each upload to an unprefixed local name, and Docker's mirror pulls GET blobs.
async fn mirror_miss(
    app: &App,
    name: &str,
    req: &Parts,
    e: &ApiError,
    blob: bool,
) -> ApiResult<Option<crate::proxy::Route>> {
    if e.status != StatusCode::NOT_FOUND
        || !app.proxy.has_docker_hub()
        || !(req.method == Method::GET || (req.method == Method::HEAD && !blob))
    {
        return Ok(None);
    }
    if app.registry.repo_exists(name).await? {
        return Ok(None);
    }
    Ok(app.proxy.mirror(name))
}

/// A `registry-mirrors` answer: the upstream not knowing the name, or refusing it (Hub
/// answers 401 for names that do not exist), is the local 404, not a gateway error.
fn mirrored(upstream: ApiResult<Response>, local: ApiError) -> ApiResult<Response> {
    match upstream {
        Err(u) if u.status == StatusCode::NOT_FOUND || u.code == crate::proxy::REFUSED => {
            Err(local)
        }
        other => other,
    }
}

/// Nobody pushes into a pull-through cache's repositories.
fn refuse_proxied(app: &App, name: &str) -> ApiResult<()> {
    if app.proxy.cache_repo(name) {
        return Err(ApiError::unsupported(format!(
            "{name} is a pull-through cache of an upstream registry: push elsewhere"
        )));
    }
    Ok(())
}

/// A response with a status, headers and an empty body.
pub(crate) fn empty(status: StatusCode, headers: &[(&'static str, String)]) -> Response {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = status;
    for (k, v) in headers {
        if let Ok(v) = HeaderValue::from_str(v) {
            resp.headers_mut().insert(*k, v);
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    #[test]
    fn percent_decoding() {
        assert_eq!(super::percent_decode("sha256%3Aab"), "sha256:ab");
        assert_eq!(super::percent_decode("a%2"), "a%2");
        assert_eq!(super::percent_decode("%"), "%");
    }
}
