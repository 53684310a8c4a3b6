//! Blob endpoints: GET/HEAD with ranges, DELETE, and the upload protocol (POST, PATCH,
//! PUT, GET and DELETE on a session, cross-repository mounts).

use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::Response;
use futures_util::StreamExt;

use super::{body_stream, empty, header, query, App};
use crate::digest::Digest;
use crate::error::{ApiError, ApiResult};
use crate::registry::range_header;

pub(crate) fn parse_digest(s: &str) -> ApiResult<Digest> {
    s.parse()
        .map_err(|e: crate::digest::DigestError| ApiError::digest_invalid(e.to_string()))
}

/// `bytes=A-B`, `bytes=A-` or `bytes=-N` against a blob of `size` bytes. `None` for a
/// malformed, multiple or unsatisfiable range (all answered 416).
pub(crate) fn parse_range(h: &str, size: u64) -> Option<Range<u64>> {
    let spec = h.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        if n == 0 || size == 0 {
            return None;
        }
        return Some(size.saturating_sub(n)..size);
    }
    let start: u64 = a.parse().ok()?;
    let end = if b.is_empty() {
        size
    } else {
        let last: u64 = b.parse().ok()?;
        if last < start {
            return None;
        }
        (last + 1).min(size)
    };
    (start < size).then_some(start..end)
}

pub async fn blob(app: &Arc<App>, name: &str, d: &str, req: &Parts) -> ApiResult<Response> {
    let d = parse_digest(d)?;
    match req.method {
        Method::GET | Method::HEAD => {}
        Method::DELETE => {
            return if app.registry.blob_delete(name, &d).await? {
                Ok(empty(
                    StatusCode::ACCEPTED,
                    &[("Docker-Content-Digest", d.to_string())],
                ))
            } else {
                Err(ApiError::blob_unknown(&d))
            };
        }
        _ => return Err(ApiError::unsupported("blobs take GET, HEAD and DELETE")),
    }
    let size = app
        .registry
        .blob_size(name, &d)
        .await?
        .ok_or_else(|| ApiError::blob_unknown(&d))?;
    serve(app, &d, size, req).await
}

/// The headers of blob `d` (`size` bytes) and, for a GET, its bytes or the asked range.
pub(crate) async fn serve(
    app: &Arc<App>,
    d: &Digest,
    size: u64,
    req: &Parts,
) -> ApiResult<Response> {
    let d = d.clone();
    let range = match header(req, "range") {
        Some(h) => Some(parse_range(h, size).ok_or_else(|| ApiError::range_invalid(size))?),
        None => None,
    };
    let (status, len) = match &range {
        Some(r) => (StatusCode::PARTIAL_CONTENT, r.end - r.start),
        None => (StatusCode::OK, size),
    };
    let mut headers = vec![
        ("Content-Type", "application/octet-stream".to_string()),
        ("Content-Length", len.to_string()),
        ("Docker-Content-Digest", d.to_string()),
        ("ETag", format!("\"{d}\"")),
        ("Accept-Ranges", "bytes".to_string()),
    ];
    if let Some(r) = &range {
        headers.push((
            "Content-Range",
            format!("bytes {}-{}/{size}", r.start, r.end - 1),
        ));
    }
    let mut resp = empty(status, &headers);
    if req.method == Method::GET && len > 0 {
        let stream = app.registry.blob_read(&d, range).await?;
        let counter = app.clone();
        *resp.body_mut() = Body::from_stream(stream.inspect(move |c| {
            if let Ok(c) = c {
                counter
                    .metrics
                    .bytes_out
                    .fetch_add(c.len() as u64, Ordering::Relaxed);
            }
        }));
        // Body::from_stream forgets the length; keep the header we set.
        resp.headers_mut()
            .insert("Content-Length", HeaderValue::from(len));
    }
    Ok(resp)
}

fn session_headers(name: &str, id: &str, size: u64) -> Vec<(&'static str, String)> {
    vec![
        ("Location", format!("/v2/{name}/blobs/uploads/{id}")),
        ("Range", range_header(size)),
        ("Docker-Upload-UUID", id.to_string()),
        ("Content-Length", "0".to_string()),
    ]
}

fn created(name: &str, d: &Digest) -> Response {
    empty(
        StatusCode::CREATED,
        &[
            ("Location", format!("/v2/{name}/blobs/{d}")),
            ("Docker-Content-Digest", d.to_string()),
            ("Content-Length", "0".to_string()),
        ],
    )
}

/// POST /v2/<name>/blobs/uploads/: a mount, a whole blob in one request, or a new session.
pub async fn start_upload(
    app: &Arc<App>,
    name: &str,
    req: &Parts,
    body: Body,
) -> ApiResult<Response> {
    if req.method != Method::POST {
        return Err(ApiError::unsupported("start an upload with POST"));
    }
    if let Some(m) = query(req, "mount") {
        let d = parse_digest(&m)?;
        let from = query(req, "from");
        if let Some(f) = &from {
            if !crate::names::valid_repo(f) {
                return Err(ApiError::name_invalid(f));
            }
        }
        if app.registry.mount(name, &d, from.as_deref()).await? {
            return Ok(created(name, &d));
        }
        // Not mountable: fall through to a new session (202), as the spec asks.
    }
    let digest = query(req, "digest").map(|d| parse_digest(&d)).transpose()?;
    let id = app.registry.upload_start(name).await?;
    match digest {
        Some(d) => {
            // The single-POST monolithic upload.
            let body = body_stream(app, body);
            app.registry.upload_append(&id, 0, body).await?;
            app.registry.upload_finish(name, &id, &d).await?;
            Ok(created(name, &d))
        }
        None => Ok(empty(StatusCode::ACCEPTED, &session_headers(name, &id, 0))),
    }
}

/// `Content-Range: A-B` (as the spec writes it) or `bytes A-B/*` (as some clients do).
fn content_range_start(h: &str) -> Option<u64> {
    let h = h.trim();
    let h = h.strip_prefix("bytes ").unwrap_or(h);
    let (a, rest) = h.split_once('-')?;
    let b = rest.split('/').next()?;
    let (a, b): (u64, u64) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (b >= a).then_some(a)
}

/// GET, PATCH, PUT and DELETE on /v2/<name>/blobs/uploads/<id>.
pub async fn upload(
    app: &Arc<App>,
    name: &str,
    id: &str,
    req: &Parts,
    body: Body,
) -> ApiResult<Response> {
    let size = app.registry.upload_size(name, id).await?;
    match req.method {
        Method::GET => Ok(empty(
            StatusCode::NO_CONTENT,
            &session_headers(name, id, size),
        )),
        Method::DELETE => {
            app.registry.upload_cancel(id).await?;
            Ok(empty(
                StatusCode::NO_CONTENT,
                &[("Content-Length", "0".to_string())],
            ))
        }
        Method::PATCH => {
            let offset = match header(req, "content-range") {
                Some(h) => content_range_start(h).ok_or_else(|| {
                    ApiError::new(
                        StatusCode::RANGE_NOT_SATISFIABLE,
                        "BLOB_UPLOAD_INVALID",
                        "malformed Content-Range",
                    )
                    .with_header("Range", range_header(size))
                })?,
                // A streamed PATCH continues where the session is.
                None => size,
            };
            let body = body_stream(app, body);
            let n = app.registry.upload_append(id, offset, body).await?;
            Ok(empty(StatusCode::ACCEPTED, &session_headers(name, id, n)))
        }
        Method::PUT => {
            let d = query(req, "digest")
                .ok_or_else(|| ApiError::digest_invalid("PUT to finish an upload needs ?digest="))
                .and_then(|d| parse_digest(&d))?;
            let offset = match header(req, "content-range") {
                Some(h) => content_range_start(h).unwrap_or(u64::MAX),
                None => size,
            };
            let has_body = header(req, "content-length").is_some_and(|l| l != "0")
                || header(req, "transfer-encoding").is_some();
            if has_body {
                let body = body_stream(app, body);
                app.registry.upload_append(id, offset, body).await?;
            }
            app.registry.upload_finish(name, id, &d).await?;
            Ok(created(name, &d))
        }
        _ => Err(ApiError::unsupported(
            "upload sessions take GET, PATCH, PUT and DELETE",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some(0..10));
        assert_eq!(parse_range("bytes=90-", 100), Some(90..100));
        assert_eq!(parse_range("bytes=-10", 100), Some(90..100));
        assert_eq!(parse_range("bytes=50-500", 100), Some(50..100));
        for bad in [
            "bytes=100-",
            "bytes=5-1",
            "bytes=a-b",
            "items=0-1",
            "bytes=0-1,3-4",
            "bytes=-0",
        ] {
            assert_eq!(parse_range(bad, 100), None, "{bad}");
        }
        assert_eq!(content_range_start("0-99"), Some(0));
        assert_eq!(content_range_start("bytes 100-199/*"), Some(100));
        assert_eq!(content_range_start("9-1"), None);
    }
}
