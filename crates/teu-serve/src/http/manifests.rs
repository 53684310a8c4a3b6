//! Manifest endpoints and content discovery: tags list, catalog, referrers.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{empty, header, query, App};
use crate::error::{ApiError, ApiResult};
use crate::registry::{Reference, MAX_MANIFEST, OCI_INDEX};

pub async fn manifest(
    app: &Arc<App>,
    name: &str,
    reference: &str,
    req: &Parts,
    body: Body,
) -> ApiResult<Response> {
    let r = Reference::parse(reference)?;
    match req.method.clone() {
        m @ (Method::GET | Method::HEAD) => {
            let man = app.registry.manifest_get(name, &r).await?;
            let headers = [
                ("Content-Type", man.media_type.clone()),
                ("Content-Length", man.bytes.len().to_string()),
                ("Docker-Content-Digest", man.digest.to_string()),
                ("ETag", format!("\"{}\"", man.digest)),
            ];
            let mut resp = empty(StatusCode::OK, &headers);
            if m == Method::GET {
                *resp.body_mut() = Body::from(man.bytes);
            }
            Ok(resp)
        }
        Method::PUT => {
            let content_type = header(req, "content-type").map(str::to_string);
            let bytes = axum::body::to_bytes(body, MAX_MANIFEST)
                .await
                .map_err(|_| {
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "SIZE_INVALID",
                        format!("manifests are limited to {MAX_MANIFEST} bytes"),
                    )
                })?;
            app.metrics
                .bytes_in
                .fetch_add(bytes.len() as u64, Ordering::Relaxed);
            let put = app
                .registry
                .manifest_put(name, &r, content_type.as_deref(), bytes)
                .await?;
            let mut headers = vec![
                ("Location", format!("/v2/{name}/manifests/{}", put.digest)),
                ("Docker-Content-Digest", put.digest.to_string()),
                ("Content-Length", "0".to_string()),
            ];
            if let Some(s) = put.subject {
                headers.push(("OCI-Subject", s.to_string()));
            }
            Ok(empty(StatusCode::CREATED, &headers))
        }
        Method::DELETE => {
            app.registry.manifest_delete(name, &r).await?;
            Ok(empty(
                StatusCode::ACCEPTED,
                &[("Content-Length", "0".to_string())],
            ))
        }
        _ => Err(ApiError::unsupported(
            "manifests take GET, HEAD, PUT and DELETE",
        )),
    }
}

/// Apply `n` and `last` to a sorted list; the `Link` to the next page if one may follow.
pub(crate) fn paginate(
    all: Vec<String>,
    req: &Parts,
    base: &str,
) -> ApiResult<(Vec<String>, Option<String>)> {
    let last = query(req, "last");
    let n = match query(req, "n") {
        Some(n) => Some(n.parse::<usize>().map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "PAGINATION_NUMBER_INVALID",
                format!("invalid n={n}"),
            )
        })?),
        None => None,
    };
    let mut items: Vec<String> = match &last {
        Some(l) => all
            .into_iter()
            .filter(|t| t.as_str() > l.as_str())
            .collect(),
        None => all,
    };
    let mut link = None;
    if let Some(n) = n {
        if items.len() > n {
            items.truncate(n);
            if let Some(last) = items.last() {
                link = Some(format!("<{base}?n={n}&last={last}>; rel=\"next\""));
            }
        }
    }
    Ok((items, link))
}

fn json(value: serde_json::Value, content_type: &'static str, link: Option<String>) -> Response {
    let mut resp = value.to_string().into_response();
    resp.headers_mut()
        .insert("Content-Type", HeaderValue::from_static(content_type));
    if let Some(l) = link.and_then(|l| HeaderValue::from_str(&l).ok()) {
        resp.headers_mut().insert("Link", l);
    }
    resp
}

pub async fn tags(app: &Arc<App>, name: &str, req: &Parts) -> ApiResult<Response> {
    if req.method != Method::GET && req.method != Method::HEAD {
        return Err(ApiError::unsupported("tags take GET"));
    }
    let all = app.registry.tags(name).await?;
    let (tags, link) = paginate(all, req, &format!("/v2/{name}/tags/list"))?;
    Ok(json(
        serde_json::json!({"name": name, "tags": tags}),
        "application/json",
        link,
    ))
}

pub async fn catalog(app: &Arc<App>, req: &Parts) -> ApiResult<Response> {
    if req.method != Method::GET {
        return Err(ApiError::unsupported("the catalog takes GET"));
    }
    let all = app.registry.catalog().await?;
    let (repos, link) = paginate(all, req, "/v2/_catalog")?;
    Ok(json(
        serde_json::json!({"repositories": repos}),
        "application/json",
        link,
    ))
}

pub async fn referrers(app: &Arc<App>, name: &str, d: &str, req: &Parts) -> ApiResult<Response> {
    if req.method != Method::GET {
        return Err(ApiError::unsupported("referrers take GET"));
    }
    let subject = d
        .parse()
        .map_err(|e: crate::digest::DigestError| ApiError::digest_invalid(e.to_string()))?;
    let filter = query(req, "artifactType");
    let manifests = app
        .registry
        .referrers(name, &subject, filter.as_deref())
        .await?;
    let body = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": manifests,
    });
    let mut resp = json(body, OCI_INDEX, None);
    if filter.is_some() {
        resp.headers_mut().insert(
            "OCI-Filters-Applied",
            HeaderValue::from_static("artifactType"),
        );
    }
    Ok(resp)
}
