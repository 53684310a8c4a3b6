//! Proxied blobs: served from the cache, or from the one fill of their digest that every
//! client joins ([`super::fill`]), which storage follows as well.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::Response;
use futures_util::StreamExt;

use super::fill::{self, Fill, FillError, FillState};
use super::lru::Reading;
use super::stats::ProxyStats;
use super::upstream::UpstreamError;
use super::{header_str, hit, miss, read_only, unavailable, Route};
use crate::digest::Digest;
use crate::error::{ApiError, ApiResult};
use crate::http::{empty, App};
use crate::storage::blob_key;

/// GET or HEAD of a proxied blob.
pub async fn blob(app: &Arc<App>, r: &Route, d: &str, req: &Parts) -> ApiResult<Response> {
    let d = crate::http::blobs::parse_digest(d)?;
    if req.method != Method::GET && req.method != Method::HEAD {
        return Err(read_only(&r.cache));
    }
    // Taken before storage is asked, so an eviction round that finds the blob present
    // also finds it being read, and leaves it.
    let reading = app.proxy.lru.reading(&d);
    if let Some(size) = app.registry.blob_size(&r.cache, &d).await? {
        hit(app);
        app.proxy
            .lru
            .touch(app.registry.storage.as_ref(), &d, size, &r.cache)
            .await;
        return serve_cached(app, &d, size, req, reading).await;
    }
    // Content-addressed: bytes cached for another repository are the same bytes.
    if let Some(e) = app.registry.storage.head(&blob_key(&d)).await? {
        hit(app);
        app.registry.link_blob(&r.cache, &d).await?;
        app.proxy
            .lru
            .touch(app.registry.storage.as_ref(), &d, e.size, &r.cache)
            .await;
        return serve_cached(app, &d, e.size, req, reading).await;
    }
    miss(app);
    if req.method == Method::HEAD {
        return blob_head(r, &d).await;
    }
    let mut retried = false;
    let (fill, size) = loop {
        let fill = match join_or_start(app, r, &d).await? {
            Some(f) => f,
            None => {
                // Committed while we looked.
                let size = app
                    .registry
                    .blob_size(&r.cache, &d)
                    .await?
                    .ok_or_else(|| ApiError::blob_unknown(&d))?;
                return serve_cached(app, &d, size, req, reading).await;
            }
        };
        match fill.started().await {
            // Fills are keyed by digest alone, and the one joined may be another
            // upstream's: that one not having the blob (or refusing us) says nothing
            // about ours, so ask ours once. Bad bytes or a network failure are not
            // retried here: the client does that.
            FillState::Failed(
                FillError::NotFound | FillError::Upstream(UpstreamError::Refused { .. }),
            ) if !retried && !started_by(&fill, r) => {
                retried = true;
            }
            FillState::Failed(e) => return Err(fill_error(&e, &d)),
            FillState::Streaming { size, .. } => break (fill, size),
            FillState::Verified { size } => break (fill, Some(size)),
            FillState::Waiting => break (fill, None),
        }
    };
    // Followers read the spool, which an eviction cannot take away.
    drop(reading);
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

/// Serve `d` from storage, holding `reading` until the body is done or dropped.
async fn serve_cached(
    app: &Arc<App>,
    d: &Digest,
    size: u64,
    req: &Parts,
    reading: Reading,
) -> ApiResult<Response> {
    let resp = crate::http::blobs::serve(app, d, size, req).await?;
    // The headers (Content-Length included) stay; only the body is wrapped.
    Ok(resp.map(|body| {
        Body::from_stream(body.into_data_stream().map(move |c| {
            let _held = &reading;
            c
        }))
    }))
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

/// Whether `f` was started for `r`'s upstream (its first repository is the starter's).
fn started_by(f: &Fill, r: &Route) -> bool {
    f.repos.lock().unwrap().first().is_some_and(|c| {
        c.strip_prefix(r.up.cfg.name.as_str())
            .is_some_and(|t| t.starts_with('/'))
    })
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
    let repos = f.repos.lock().unwrap().clone();
    app.proxy
        .lru
        .added(storage.as_ref(), &f.digest, size, &repos)
        .await;
    for repo in repos {
        app.registry
            .link_blob(&repo, &f.digest)
            .await
            .map_err(Some)?;
    }
    app.proxy.lru.enforce(app).await;
    Ok(())
}
