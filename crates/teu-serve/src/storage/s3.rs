//! The S3-compatible backend through `object_store`.
//!
//! Upload sessions are objects too, so any server on the bucket can continue any session:
//! `uploads/<id>/info`, and one object per PATCH at `uploads/<id>/parts/<offset>`, written
//! whole or not at all (a body cut off mid-stream is aborted, so the session keeps its
//! previous size and the client resumes from there). Committing a session hashes the parts
//! (unless this server saw them stream in) and then either copies a single part to the
//! blob key server-side or streams the parts into one multipart upload that is completed
//! only after the hash matched: the blob is never visible unverified.
//!
//! Content objects and session descriptions are written with `PutMode::Create`. Some S3
//! servers ignore `If-None-Match` silently, so [`S3Storage::connect`] writes a probe key
//! twice and refuses a store where the second create succeeds.

use std::ops::Range;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3Builder, S3ConditionalPut};
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{GetOptions, GetRange, ObjectStore, PutMode, PutOptions, PutPayload};
use tokio::io::AsyncWriteExt;

use super::{blob_key, ByteStream, Entry, Storage, StorageError, StorageResult, WriteMode};
use crate::config::S3Config;
use crate::digest::{Digest, Hasher};

/// Parts are buffered up to this size before a multipart upload starts (and then sent in
/// parts of this size), so memory per upload stays bounded.
const PART: usize = 8 << 20;

/// The largest object S3's CopyObject copies.
const MAX_COPY: u64 = 5 << 30;

pub struct S3Storage {
    store: Arc<dyn ObjectStore>,
}

fn obj_err(key: &str) -> impl FnOnce(object_store::Error) -> StorageError + '_ {
    move |source| match source {
        object_store::Error::NotFound { .. } => StorageError::NotFound(key.to_string()),
        source => StorageError::Object {
            key: key.to_string(),
            source,
        },
    }
}

fn part_key(id: &str, offset: u64) -> String {
    // Zero-padded so that listing order is offset order.
    format!("uploads/{id}/parts/{offset:020}")
}

impl S3Storage {
    /// Connect to `bucket` under `prefix`, then check that conditional creates work.
    pub async fn connect(bucket: &str, prefix: &str, cfg: &S3Config) -> StorageResult<S3Storage> {
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_conditional_put(S3ConditionalPut::ETagMatch);
        let endpoint = cfg
            .endpoint
            .clone()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok());
        if let Some(e) = &endpoint {
            b = b.with_endpoint(e);
            if is_loopback_http(e) || cfg.allow_http {
                b = b.with_allow_http(true);
            }
        }
        let region = cfg
            .region
            .clone()
            .or_else(|| std::env::var("AWS_REGION").ok())
            .unwrap_or_else(|| "us-east-1".to_string());
        b = b.with_region(region);
        if let Some(k) = &cfg.access_key_id {
            b = b.with_access_key_id(k);
        }
        if let Some(s) = &cfg.secret_access_key {
            b = b.with_secret_access_key(s);
        }
        let s3 = b
            .build()
            .map_err(|e| StorageError::Config(format!("s3://{bucket}: {e}")))?;
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
            Arc::new(s3)
        } else {
            Arc::new(PrefixStore::new(s3, prefix))
        };
        let s = S3Storage { store };
        s.probe_conditional_create().await?;
        Ok(s)
    }

    async fn probe_conditional_create(&self) -> StorageResult<()> {
        let mut id = [0u8; 12];
        getrandom::fill(&mut id).expect("random bytes");
        let key = format!("_probe/{}", hex::encode(id));
        let first = self
            .put(&key, Bytes::from_static(b"1"), WriteMode::CreateOnly)
            .await?;
        let second = self
            .put(&key, Bytes::from_static(b"2"), WriteMode::CreateOnly)
            .await;
        let _ = self.delete(&key).await;
        match (first, second) {
            (true, Ok(false)) => Ok(()),
            (_, Err(e)) => Err(e),
            _ => Err(StorageError::Config(
                "the object store ignores conditional writes (a second PutMode::Create of one key \
                 succeeded); teu serve needs If-None-Match support to share a bucket safely"
                    .to_string(),
            )),
        }
    }

    async fn parts(&self, id: &str) -> StorageResult<Vec<Entry>> {
        let mut parts = self.list(&format!("uploads/{id}/parts/")).await?;
        parts.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(parts)
    }

    fn parts_stream(&self, parts: Vec<Entry>) -> ByteStream {
        let store = self.store.clone();
        let s = futures_util::stream::iter(parts)
            .then(move |p| {
                let store = store.clone();
                async move {
                    let r = store.get(&Path::from(p.key.as_str())).await?;
                    Ok::<_, object_store::Error>(r.into_stream())
                }
            })
            .try_flatten()
            .map_err(std::io::Error::other);
        Box::pin(s)
    }
}

/// `http://127.0.0.1:…`, `http://localhost:…`, `http://[::1]:…`: plain HTTP is fine there.
fn is_loopback_http(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let host = rest.split(['/', '?']).next().unwrap_or("");
    let host = match host.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn entry(m: object_store::ObjectMeta) -> Entry {
    Entry {
        key: m.location.to_string(),
        size: m.size,
        modified: SystemTime::from(m.last_modified),
    }
}

#[async_trait]
impl Storage for S3Storage {
    async fn get(&self, key: &str) -> StorageResult<Option<Bytes>> {
        match self.store.get(&Path::from(key)).await {
            Ok(r) => Ok(Some(r.bytes().await.map_err(obj_err(key))?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(obj_err(key)(e)),
        }
    }

    async fn put(&self, key: &str, bytes: Bytes, mode: WriteMode) -> StorageResult<bool> {
        let opts = PutOptions {
            mode: match mode {
                WriteMode::Overwrite => PutMode::Overwrite,
                WriteMode::CreateOnly => PutMode::Create,
            },
            ..Default::default()
        };
        match self
            .store
            .put_opts(&Path::from(key), PutPayload::from(bytes), opts)
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(object_store::Error::Precondition { .. }) if mode == WriteMode::CreateOnly => {
                Ok(false)
            }
            Err(e) => Err(obj_err(key)(e)),
        }
    }

    async fn head(&self, key: &str) -> StorageResult<Option<Entry>> {
        match self.store.head(&Path::from(key)).await {
            Ok(m) => Ok(Some(entry(m))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(obj_err(key)(e)),
        }
    }

    async fn delete(&self, key: &str) -> StorageResult<()> {
        match self.store.delete(&Path::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(obj_err(key)(e)),
        }
    }

    async fn list(&self, prefix: &str) -> StorageResult<Vec<Entry>> {
        let p = Path::from(prefix.trim_end_matches('/'));
        self.store
            .list(Some(&p))
            .map_ok(entry)
            .try_collect()
            .await
            .map_err(obj_err(prefix))
    }

    async fn any_under(&self, prefix: &str) -> StorageResult<bool> {
        let p = Path::from(prefix.trim_end_matches('/'));
        match self.store.list(Some(&p)).next().await {
            None => Ok(false),
            Some(r) => r.map(|_| true).map_err(obj_err(prefix)),
        }
    }

    async fn read(&self, key: &str, range: Option<Range<u64>>) -> StorageResult<ByteStream> {
        let opts = GetOptions {
            range: range.map(GetRange::Bounded),
            ..Default::default()
        };
        let r = self
            .store
            .get_opts(&Path::from(key), opts)
            .await
            .map_err(obj_err(key))?;
        Ok(Box::pin(r.into_stream().map_err(std::io::Error::other)))
    }

    async fn upload_create(&self, id: &str, info: Bytes) -> StorageResult<()> {
        let key = format!("uploads/{id}/info");
        if self.put(&key, info, WriteMode::CreateOnly).await? {
            Ok(())
        } else {
            Err(StorageError::Config(format!("upload id {id} collided")))
        }
    }

    async fn upload_info(&self, id: &str) -> StorageResult<Option<Bytes>> {
        self.get(&format!("uploads/{id}/info")).await
    }

    async fn upload_size(&self, id: &str) -> StorageResult<Option<u64>> {
        if self.head(&format!("uploads/{id}/info")).await?.is_none() {
            return Ok(None);
        }
        Ok(Some(session_size(&self.parts(id).await?)))
    }

    async fn upload_append(
        &self,
        id: &str,
        offset: u64,
        mut body: ByteStream,
    ) -> StorageResult<u64> {
        let actual = self
            .upload_size(id)
            .await?
            .ok_or_else(|| StorageError::NotFound(format!("uploads/{id}")))?;
        if actual != offset {
            return Err(StorageError::Offset {
                expected: offset,
                actual,
            });
        }
        let key = part_key(id, offset);
        let mut w = BufWriter::with_capacity(self.store.clone(), Path::from(key.as_str()), PART);
        let mut n = 0u64;
        while let Some(chunk) = body.next().await {
            let r = match chunk {
                Ok(c) => {
                    n += c.len() as u64;
                    w.write_all(&c).await
                }
                Err(e) => Err(e),
            };
            if let Err(e) = r {
                let _ = w.abort().await;
                return Err(StorageError::io(&key)(e));
            }
        }
        if n == 0 {
            let _ = w.abort().await;
            return Ok(offset);
        }
        w.shutdown().await.map_err(StorageError::io(&key))?;
        Ok(offset + n)
    }

    async fn upload_commit(
        &self,
        id: &str,
        expected: &Digest,
        known: Option<Digest>,
    ) -> StorageResult<u64> {
        let parts = self.parts(id).await?;
        if self.head(&format!("uploads/{id}/info")).await?.is_none() {
            return Err(StorageError::NotFound(format!("uploads/{id}")));
        }
        let size = session_size(&parts);
        let dest = blob_key(expected);
        let known = known.filter(|d| d.algorithm() == expected.algorithm());
        if self.head(&dest).await?.is_some() {
            // Already stored by someone else: the content is verified by its name, but the
            // session's bytes must still match what the client claims.
            let actual = match known {
                Some(d) => d,
                None => {
                    super::hash_stream(self.parts_stream(parts), expected.algorithm())
                        .await
                        .map_err(StorageError::io(&dest))?
                        .0
                }
            };
            self.upload_delete(id).await?;
            if &actual != expected {
                return Err(StorageError::DigestMismatch {
                    expected: expected.clone(),
                    actual,
                });
            }
            return Ok(size);
        }
        // S3's CopyObject takes at most 5 GiB: a larger single part (a proxied blob is
        // one part however big) is streamed into a multipart upload like several parts.
        if parts.len() <= 1 && parts.first().is_none_or(|p| p.size <= MAX_COPY) {
            let actual = match known {
                Some(d) => d,
                None => {
                    super::hash_stream(self.parts_stream(parts.clone()), expected.algorithm())
                        .await
                        .map_err(StorageError::io(&dest))?
                        .0
                }
            };
            if &actual != expected {
                self.upload_delete(id).await?;
                return Err(StorageError::DigestMismatch {
                    expected: expected.clone(),
                    actual,
                });
            }
            match parts.first() {
                Some(p) => self
                    .store
                    .copy(&Path::from(p.key.as_str()), &Path::from(dest.as_str()))
                    .await
                    .map_err(obj_err(&dest))?,
                None => {
                    self.put(&dest, Bytes::new(), WriteMode::Overwrite).await?;
                }
            }
        } else {
            // Concatenate into one multipart upload, completed only if the hash matches.
            let mut w =
                BufWriter::with_capacity(self.store.clone(), Path::from(dest.as_str()), PART);
            let mut h = Hasher::new(expected.algorithm());
            let mut s = self.parts_stream(parts);
            while let Some(chunk) = s.next().await {
                let r = match chunk {
                    Ok(c) => {
                        h.update(&c);
                        w.write_all(&c).await
                    }
                    Err(e) => Err(e),
                };
                if let Err(e) = r {
                    let _ = w.abort().await;
                    return Err(StorageError::io(&dest)(e));
                }
            }
            let actual = h.finish();
            if &actual != expected {
                let _ = w.abort().await;
                self.upload_delete(id).await?;
                return Err(StorageError::DigestMismatch {
                    expected: expected.clone(),
                    actual,
                });
            }
            w.shutdown().await.map_err(StorageError::io(&dest))?;
        }
        self.upload_delete(id).await?;
        Ok(size)
    }

    async fn upload_delete(&self, id: &str) -> StorageResult<()> {
        for p in self.list(&format!("uploads/{id}/")).await? {
            // The info object last, so a half-deleted session is still listed for gc.
            if !p.key.ends_with("/info") {
                self.delete(&p.key).await?;
            }
        }
        self.delete(&format!("uploads/{id}/info")).await
    }

    async fn upload_list(&self) -> StorageResult<Vec<(String, SystemTime)>> {
        let mut out = Vec::new();
        for e in self.list("uploads/").await? {
            if let Some(id) = e
                .key
                .strip_prefix("uploads/")
                .and_then(|k| k.strip_suffix("/info"))
            {
                out.push((id.to_string(), e.modified));
            }
        }
        Ok(out)
    }
}

fn session_size(parts: &[Entry]) -> u64 {
    parts
        .iter()
        .filter_map(|p| {
            let off: u64 = p.key.rsplit('/').next()?.parse().ok()?;
            Some(off + p.size)
        })
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn loopback_endpoints_may_use_http() {
        assert!(super::is_loopback_http("http://127.0.0.1:8333"));
        assert!(super::is_loopback_http("http://localhost:8333/"));
        assert!(super::is_loopback_http("http://[::1]:9000"));
        assert!(!super::is_loopback_http("http://s3.example.com"));
        assert!(!super::is_loopback_http("https://127.0.0.1"));
    }
}
