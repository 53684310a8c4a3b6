//! The registry's rules on top of [`Storage`]: where each fact lives, what a manifest
//! must reference before it is accepted, tags, referrers and upload sessions.
//!
//! Layout (keys under the store's root; `_` cannot start a repository name component, so
//! these never collide with a repository called `a/tags`):
//!
//! ```text
//! blobs/<alg>/<hex>                                   content, manifests included
//! repositories/<repo>/_blobs/<alg>/<hex>              empty: the repo may serve the blob
//! repositories/<repo>/_manifests/<alg>/<hex>          the manifest's media type
//! repositories/<repo>/_tags/<tag>                     the tagged digest
//! repositories/<repo>/_referrers/<alg>/<hex>/<alg>-<hex>  a referrer's descriptor (JSON)
//! pushed/<alg>/<hex>                                  empty: a push or mount linked the blob
//! uploads/<id>/…                                      sessions (backend-specific)
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::Value;

use crate::digest::{Algorithm, Digest, Hasher};
use crate::error::{ApiError, ApiResult};
use crate::storage::{blob_key, ByteStream, Storage, StorageError, WriteMode};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// Manifests larger than this are refused (distribution and zot use the same 4 MiB).
pub const MAX_MANIFEST: usize = 4 << 20;

/// How many upload sessions keep a running hash in memory (~0.3 KiB each).
const MAX_RUNNING_HASHES: usize = 4096;

pub struct Registry {
    pub storage: Arc<dyn Storage>,
    /// sha256 state of uploads whose bytes streamed through this process, so committing
    /// them needs no second read. Only an optimisation: without an entry (another server
    /// took the PATCH, or a restart) the backend hashes the stored bytes.
    running: Mutex<HashMap<String, (u64, Hasher)>>,
}

/// A manifest reference: a tag or a digest.
pub enum Reference {
    Tag(String),
    Digest(Digest),
}

impl Reference {
    pub fn parse(s: &str) -> ApiResult<Reference> {
        if s.contains(':') {
            s.parse()
                .map(Reference::Digest)
                .map_err(|e| ApiError::digest_invalid(e.to_string()))
        } else if crate::names::valid_tag(s) {
            Ok(Reference::Tag(s.to_string()))
        } else {
            Err(ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "TAG_INVALID",
                format!("invalid tag {s:?}"),
            ))
        }
    }
}

#[derive(Clone)]
pub struct StoredManifest {
    pub digest: Digest,
    pub media_type: String,
    pub bytes: Bytes,
}

pub struct PutManifest {
    pub digest: Digest,
    pub subject: Option<Digest>,
}

fn repo_key(repo: &str, rest: &str) -> String {
    format!("repositories/{repo}/{rest}")
}

fn blob_link(repo: &str, d: &Digest) -> String {
    repo_key(
        repo,
        &format!("_blobs/{}/{}", d.algorithm().name(), d.hex()),
    )
}

/// The pin a push leaves on a blob, so the pull-through cache's size bound (which only
/// evicts blobs it filled) can tell pushed bytes from its own with one HEAD instead of
/// listing every repository. Written before the link, so a link implies its pin; left
/// when the link goes (a pin only ever keeps bytes, never loses them).
pub fn pushed_key(d: &Digest) -> String {
    format!("pushed/{}/{}", d.algorithm().name(), d.hex())
}

fn manifest_link(repo: &str, d: &Digest) -> String {
    repo_key(
        repo,
        &format!("_manifests/{}/{}", d.algorithm().name(), d.hex()),
    )
}

fn tag_key(repo: &str, tag: &str) -> String {
    repo_key(repo, &format!("_tags/{tag}"))
}

fn referrers_dir(repo: &str, subject: &Digest) -> String {
    repo_key(
        repo,
        &format!(
            "_referrers/{}/{}/",
            subject.algorithm().name(),
            subject.hex()
        ),
    )
}

fn parse_digest_field(v: &Value, what: &str) -> ApiResult<Digest> {
    v.get("digest")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::manifest_invalid(format!("{what} has no digest")))?
        .parse()
        .map_err(|e: crate::digest::DigestError| ApiError::manifest_invalid(format!("{what}: {e}")))
}

/// Random 128-bit session ids: unguessable, so one client cannot write into another's upload.
pub fn new_upload_id() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("random bytes");
    hex::encode(b)
}

impl Registry {
    pub fn new(storage: Arc<dyn Storage>) -> Registry {
        Registry {
            storage,
            running: Mutex::new(HashMap::new()),
        }
    }

    // ---- blobs ----

    /// The blob's size if `repo` may serve it.
    pub async fn blob_size(&self, repo: &str, d: &Digest) -> ApiResult<Option<u64>> {
        if self.storage.head(&blob_link(repo, d)).await?.is_none() {
            return Ok(None);
        }
        Ok(self.storage.head(&blob_key(d)).await?.map(|e| e.size))
    }

    pub async fn blob_read(
        &self,
        d: &Digest,
        range: Option<std::ops::Range<u64>>,
    ) -> ApiResult<ByteStream> {
        match self.storage.read(&blob_key(d), range).await {
            Ok(s) => Ok(s),
            Err(StorageError::NotFound(_)) => Err(ApiError::blob_unknown(d)),
            Err(e) => Err(e.into()),
        }
    }

    /// Unlink a blob from a repository (gc removes the content once nothing uses it).
    pub async fn blob_delete(&self, repo: &str, d: &Digest) -> ApiResult<bool> {
        if self.storage.head(&blob_link(repo, d)).await?.is_none() {
            return Ok(false);
        }
        self.storage.delete(&blob_link(repo, d)).await?;
        Ok(true)
    }

    /// Link a blob a client pushed (or mounted) into `repo`, pinning it first.
    pub async fn link_pushed_blob(&self, repo: &str, d: &Digest) -> ApiResult<()> {
        self.storage
            .put(&pushed_key(d), Bytes::new(), WriteMode::Overwrite)
            .await?;
        self.link_blob(repo, d).await
    }

    pub async fn link_blob(&self, repo: &str, d: &Digest) -> ApiResult<()> {
        self.storage
            .put(&blob_link(repo, d), Bytes::new(), WriteMode::Overwrite)
            .await?;
        Ok(())
    }

    /// Cross-repository mount: link a blob `from` holds (or, without `from`, any blob the
    /// registry holds) into `repo`. `Ok(false)`: the client should upload instead.
    pub async fn mount(&self, repo: &str, d: &Digest, from: Option<&str>) -> ApiResult<bool> {
        let allowed = match from {
            Some(from) => self.storage.head(&blob_link(from, d)).await?.is_some(),
            None => true,
        };
        if !allowed || self.storage.head(&blob_key(d)).await?.is_none() {
            return Ok(false);
        }
        self.link_pushed_blob(repo, d).await?;
        Ok(true)
    }

    // ---- uploads ----

    pub async fn upload_start(&self, repo: &str) -> ApiResult<String> {
        let id = new_upload_id();
        let info = serde_json::json!({ "repo": repo }).to_string();
        self.storage.upload_create(&id, info.into()).await?;
        Ok(id)
    }

    /// The session's size, if it exists and belongs to `repo`.
    pub async fn upload_size(&self, repo: &str, id: &str) -> ApiResult<u64> {
        if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ApiError::upload_unknown());
        }
        let info = self
            .storage
            .upload_info(id)
            .await?
            .ok_or_else(ApiError::upload_unknown)?;
        let owner: Value = serde_json::from_slice(&info).unwrap_or(Value::Null);
        if owner.get("repo").and_then(Value::as_str) != Some(repo) {
            return Err(ApiError::upload_unknown());
        }
        self.storage
            .upload_size(id)
            .await?
            .ok_or_else(ApiError::upload_unknown)
    }

    /// Append a body at `offset`; returns the new size. `Offset` mismatches become 416.
    pub async fn upload_append(&self, id: &str, offset: u64, body: ByteStream) -> ApiResult<u64> {
        // Continue the running hash when it covers exactly the bytes before `offset`.
        let prior = self.running.lock().unwrap().remove(id);
        let hasher = match prior {
            Some((n, h)) if n == offset => Some(h),
            _ if offset == 0 => Some(Hasher::new(Algorithm::Sha256)),
            _ => None,
        };
        let seen = Arc::new(Mutex::new(hasher.map(|h| (0u64, h))));
        let tap = seen.clone();
        let body: ByteStream = Box::pin(body.inspect(move |c| {
            if let (Ok(c), Some((n, h))) = (c, tap.lock().unwrap().as_mut()) {
                *n += c.len() as u64;
                h.update(c);
            }
        }));
        match self.storage.upload_append(id, offset, body).await {
            Ok(size) => {
                if let Some((n, h)) = seen.lock().unwrap().take() {
                    let mut running = self.running.lock().unwrap();
                    // Bounded: abandoned sessions must not grow memory; past the bound
                    // the commit simply re-reads the bytes.
                    if offset + n == size && running.len() < MAX_RUNNING_HASHES {
                        running.insert(id.to_string(), (size, h));
                    }
                }
                Ok(size)
            }
            Err(StorageError::Offset { actual, .. }) => Err(ApiError::new(
                axum::http::StatusCode::RANGE_NOT_SATISFIABLE,
                "BLOB_UPLOAD_INVALID",
                format!("the upload holds {actual} bytes; send the chunk that starts there"),
            )
            .with_header("Range", range_header(actual))),
            Err(StorageError::NotFound(_)) => Err(ApiError::upload_unknown()),
            Err(e) => Err(e.into()),
        }
    }

    /// Verify and publish the session as blob `d`, linked into `repo`.
    pub async fn upload_finish(&self, repo: &str, id: &str, d: &Digest) -> ApiResult<u64> {
        let size = self
            .storage
            .upload_size(id)
            .await?
            .ok_or_else(ApiError::upload_unknown)?;
        let known = match self.running.lock().unwrap().remove(id) {
            Some((n, h)) if n == size => Some(h.finish()),
            _ => None,
        };
        match self.storage.upload_commit(id, d, known).await {
            Ok(n) => {
                self.link_pushed_blob(repo, d).await?;
                Ok(n)
            }
            Err(StorageError::DigestMismatch { expected, actual }) => {
                Err(ApiError::digest_invalid(format!(
                    "the uploaded content has digest {actual}, not {expected}"
                )))
            }
            Err(StorageError::NotFound(_)) => Err(ApiError::upload_unknown()),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn upload_cancel(&self, id: &str) -> ApiResult<()> {
        self.running.lock().unwrap().remove(id);
        self.storage.upload_delete(id).await?;
        Ok(())
    }

    // ---- manifests ----

    pub async fn resolve(&self, repo: &str, r: &Reference) -> ApiResult<Option<Digest>> {
        match r {
            Reference::Digest(d) => Ok(Some(d.clone())),
            Reference::Tag(t) => match self.storage.get(&tag_key(repo, t)).await? {
                Some(b) => Ok(std::str::from_utf8(&b)
                    .ok()
                    .and_then(|s| s.trim().parse().ok())),
                None => Ok(None),
            },
        }
    }

    pub async fn manifest_get(&self, repo: &str, r: &Reference) -> ApiResult<StoredManifest> {
        let unknown = || match r {
            Reference::Tag(t) => ApiError::manifest_unknown(format!("{repo}:{t}")),
            Reference::Digest(d) => ApiError::manifest_unknown(format!("{repo}@{d}")),
        };
        let digest = self.resolve(repo, r).await?.ok_or_else(unknown)?;
        let media_type = self
            .storage
            .get(&manifest_link(repo, &digest))
            .await?
            .ok_or_else(unknown)?;
        let bytes = self
            .storage
            .get(&blob_key(&digest))
            .await?
            .ok_or_else(unknown)?;
        Ok(StoredManifest {
            digest,
            media_type: String::from_utf8_lossy(&media_type).into_owned(),
            bytes,
        })
    }

    /// Store a manifest byte for byte after checking its digest, its shape and that every
    /// blob and child manifest it names is already in `repo`.
    pub async fn manifest_put(
        &self,
        repo: &str,
        r: &Reference,
        content_type: Option<&str>,
        bytes: Bytes,
    ) -> ApiResult<PutManifest> {
        let digest = match r {
            Reference::Digest(want) => {
                let got = Digest::of(want.algorithm(), &bytes);
                if &got != want {
                    return Err(ApiError::digest_invalid(format!(
                        "the manifest's digest is {got}, not {want}"
                    )));
                }
                got
            }
            Reference::Tag(_) => Digest::of(Algorithm::Sha256, &bytes),
        };
        let doc: Value = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::manifest_invalid(format!("not JSON: {e}")))?;
        if !doc.is_object() {
            return Err(ApiError::manifest_invalid("a manifest is a JSON object"));
        }
        if doc.get("schemaVersion").and_then(Value::as_u64) != Some(2) {
            return Err(ApiError::manifest_invalid(
                "only schemaVersion 2 manifests are supported",
            ));
        }
        let body_type = doc.get("mediaType").and_then(Value::as_str);
        // A generic Content-Type (some clients send application/json) says nothing; the
        // body's mediaType decides then. Parameters (`; charset=…`) are not part of it.
        let header_type = content_type
            .map(|t| t.split(';').next().unwrap_or("").trim())
            .filter(|t| !matches!(*t, "" | "application/json" | "application/octet-stream"));
        if let (Some(b), Some(h)) = (body_type, header_type) {
            if b != h {
                return Err(ApiError::manifest_invalid(format!(
                    "Content-Type {h} does not match the manifest's mediaType {b}"
                )));
            }
        }
        let is_index = doc.get("manifests").is_some();
        let media_type = header_type
            .or(body_type)
            .unwrap_or(if is_index { OCI_INDEX } else { OCI_MANIFEST })
            .to_string();

        let mut missing = Vec::new();
        if is_index {
            let children = doc["manifests"]
                .as_array()
                .ok_or_else(|| ApiError::manifest_invalid("manifests is not a list"))?;
            for c in children {
                let d = parse_digest_field(c, "a child manifest")?;
                if self.storage.head(&manifest_link(repo, &d)).await?.is_none() {
                    missing.push(d);
                }
            }
        } else {
            let config = doc
                .get("config")
                .ok_or_else(|| ApiError::manifest_invalid("an image manifest needs a config"))?;
            let mut needed = vec![parse_digest_field(config, "the config")?];
            if let Some(layers) = doc.get("layers") {
                let layers = layers
                    .as_array()
                    .ok_or_else(|| ApiError::manifest_invalid("layers is not a list"))?;
                for l in layers {
                    let d = parse_digest_field(l, "a layer")?;
                    // Foreign layers (with urls) live elsewhere by definition.
                    let foreign = l
                        .get("urls")
                        .and_then(Value::as_array)
                        .is_some_and(|u| !u.is_empty());
                    if !foreign {
                        needed.push(d);
                    }
                }
            }
            for d in needed {
                if self.blob_size(repo, &d).await?.is_none() {
                    missing.push(d);
                }
            }
        }
        if let Some(d) = missing.first() {
            return Err(ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "MANIFEST_BLOB_UNKNOWN",
                format!("the manifest references {d}, which {repo} does not have (push it first)"),
            ));
        }
        let subject = match doc.get("subject") {
            Some(s) => Some(parse_digest_field(s, "the subject")?),
            None => None,
        };

        // Content first, then the link that makes it visible, then the tag and referrer.
        self.storage
            .put(&blob_key(&digest), bytes.clone(), WriteMode::CreateOnly)
            .await?;
        self.storage
            .put(
                &manifest_link(repo, &digest),
                media_type.clone().into(),
                WriteMode::Overwrite,
            )
            .await?;
        if let Reference::Tag(t) = r {
            self.storage
                .put(
                    &tag_key(repo, t),
                    digest.to_string().into(),
                    WriteMode::Overwrite,
                )
                .await?;
        }
        if let Some(s) = &subject {
            let artifact_type = doc.get("artifactType").and_then(Value::as_str).or_else(|| {
                doc.get("config")
                    .and_then(|c| c.get("mediaType"))
                    .and_then(Value::as_str)
            });
            let mut desc = serde_json::json!({
                "mediaType": media_type,
                "digest": digest.to_string(),
                "size": bytes.len(),
            });
            if let Some(a) = artifact_type {
                desc["artifactType"] = a.into();
            }
            if let Some(a) = doc.get("annotations") {
                desc["annotations"] = a.clone();
            }
            let key = format!(
                "{}{}-{}",
                referrers_dir(repo, s),
                digest.algorithm().name(),
                digest.hex()
            );
            self.storage
                .put(&key, desc.to_string().into(), WriteMode::Overwrite)
                .await?;
        }
        Ok(PutManifest { digest, subject })
    }

    /// Store a manifest fetched from an upstream, whose digest the caller verified. Its
    /// blobs are not required to be here: a pull-through cache fetches them when asked.
    pub async fn manifest_store(
        &self,
        repo: &str,
        digest: &Digest,
        media_type: &str,
        bytes: Bytes,
        tag: Option<&str>,
    ) -> ApiResult<()> {
        self.storage
            .put(&blob_key(digest), bytes, WriteMode::CreateOnly)
            .await?;
        self.storage
            .put(
                &manifest_link(repo, digest),
                media_type.to_string().into(),
                WriteMode::Overwrite,
            )
            .await?;
        if let Some(t) = tag {
            self.storage
                .put(
                    &tag_key(repo, t),
                    digest.to_string().into(),
                    WriteMode::Overwrite,
                )
                .await?;
        }
        Ok(())
    }

    /// Delete by digest (the manifest, its tags and its referrer entry) or by tag (the tag).
    pub async fn manifest_delete(&self, repo: &str, r: &Reference) -> ApiResult<()> {
        match r {
            Reference::Tag(t) => {
                if self.storage.head(&tag_key(repo, t)).await?.is_none() {
                    return Err(ApiError::manifest_unknown(format!("{repo}:{t}")));
                }
                self.storage.delete(&tag_key(repo, t)).await?;
            }
            Reference::Digest(d) => {
                let m = self.manifest_get(repo, r).await?;
                for t in self.tags(repo).await.unwrap_or_default() {
                    if self
                        .resolve(repo, &Reference::Tag(t.clone()))
                        .await?
                        .as_ref()
                        == Some(d)
                    {
                        self.storage.delete(&tag_key(repo, &t)).await?;
                    }
                }
                let doc: Value = serde_json::from_slice(&m.bytes).unwrap_or(Value::Null);
                if let Some(Ok(s)) = doc.get("subject").map(|s| parse_digest_field(s, "subject")) {
                    let key = format!(
                        "{}{}-{}",
                        referrers_dir(repo, &s),
                        d.algorithm().name(),
                        d.hex()
                    );
                    self.storage.delete(&key).await?;
                }
                self.storage.delete(&manifest_link(repo, d)).await?;
            }
        }
        Ok(())
    }

    // ---- discovery ----

    /// Whether anything at all is stored under the repository (a blob link, a manifest).
    pub async fn repo_exists(&self, repo: &str) -> ApiResult<bool> {
        Ok(self.storage.any_under(&repo_key(repo, "")).await?)
    }

    /// The repository's tags, sorted; `NAME_UNKNOWN` if it holds no manifest at all.
    pub async fn tags(&self, repo: &str) -> ApiResult<Vec<String>> {
        let prefix = repo_key(repo, "_tags/");
        let mut tags: Vec<String> = self
            .storage
            .list(&prefix)
            .await?
            .into_iter()
            .filter_map(|e| e.key.strip_prefix(&prefix).map(str::to_string))
            .collect();
        if tags.is_empty()
            && self
                .storage
                .list(&repo_key(repo, "_manifests/"))
                .await?
                .is_empty()
        {
            return Err(ApiError::name_unknown(repo));
        }
        tags.sort();
        Ok(tags)
    }

    /// Every repository holding at least one manifest, sorted.
    pub async fn catalog(&self) -> ApiResult<Vec<String>> {
        let mut repos: Vec<String> = self
            .storage
            .list("repositories/")
            .await?
            .into_iter()
            .filter_map(|e| {
                let k = e.key.strip_prefix("repositories/")?;
                let (repo, _) = k.split_once("/_manifests/")?;
                Some(repo.to_string())
            })
            .collect();
        repos.sort();
        repos.dedup();
        Ok(repos)
    }

    /// The referrers of `subject` in `repo`, optionally only those of one artifact type.
    pub async fn referrers(
        &self,
        repo: &str,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> ApiResult<Vec<Value>> {
        let mut entries = self.storage.list(&referrers_dir(repo, subject)).await?;
        entries.sort_by(|a, b| a.key.cmp(&b.key));
        let mut out = Vec::new();
        for e in entries {
            let Some(b) = self.storage.get(&e.key).await? else {
                continue;
            };
            let Ok(desc) = serde_json::from_slice::<Value>(&b) else {
                continue;
            };
            if let Some(want) = artifact_type {
                if desc.get("artifactType").and_then(Value::as_str) != Some(want) {
                    continue;
                }
            }
            out.push(desc);
        }
        Ok(out)
    }
}

/// The `Range` header of an upload holding `size` bytes: `0-<last byte>`, `0-0` when empty
/// (what distribution sends and clients expect).
pub fn range_header(size: u64) -> String {
    format!("0-{}", size.saturating_sub(1))
}
