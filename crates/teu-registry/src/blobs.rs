//! Blobs: existence checks, verified streaming reads that resume, mounts and uploads.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use reqwest::blocking::{Body, Response};
use reqwest::header::{CONTENT_LENGTH, LOCATION, RANGE};
use reqwest::Method;
use teu_oci::{Digest, Sha256Writer};

use crate::client::{pull, push, Client, Counting, Request};
use crate::verify::VerifyingReader;
use crate::{invalid, RegistryError};

/// Opens the bytes of a blob (again, for a retry).
pub type OpenBlob<'a> = &'a (dyn Fn() -> Result<Box<dyn Read + Send>, RegistryError> + Sync);

/// What a mount request achieved.
#[derive(Debug)]
pub enum MountOutcome {
    Mounted,
    /// The registry did not mount; when it opened an upload session instead, its location.
    NotMounted {
        location: Option<String>,
    },
}

impl Client {
    /// The blob's size when `repo` has it.
    pub fn head_blob(
        &self,
        registry: &str,
        repo: &str,
        digest: &Digest,
    ) -> Result<Option<u64>, RegistryError> {
        let what = format!("blob {digest} in {registry}/{repo}");
        let req = Request {
            method: Method::HEAD,
            registry,
            url: self.url(registry, &format!("/v2/{repo}/blobs/{digest}")),
            scope: pull(repo),
            headers: vec![],
            body: None,
            retry: true,
            what: &what,
        };
        // The header, not `content_length()`: a HEAD response has an empty body.
        match self.execute(&req, &[200], |r| Ok(header_length(&r))) {
            Ok(n) => Ok(Some(n.unwrap_or_default())),
            Err(RegistryError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Stream a blob, verified against `digest` (and `size` when known). A dropped
    /// connection or a truncated body is resumed with a `Range` request.
    pub fn get_blob(
        &self,
        registry: &str,
        repo: &str,
        digest: &Digest,
        size: Option<u64>,
    ) -> Result<BlobReader, RegistryError> {
        let mut r = BlobReader {
            client: self.clone(),
            registry: registry.to_string(),
            repo: repo.to_string(),
            digest: digest.clone(),
            size,
            offset: 0,
            resp: None,
            hasher: Some(Sha256Writer::new(io::sink())),
            failures: 0,
        };
        r.open()?;
        Ok(r)
    }

    /// Ask `registry` to mount `digest` from `from` into `repo`.
    pub fn mount_blob(
        &self,
        registry: &str,
        repo: &str,
        digest: &Digest,
        from: &str,
    ) -> Result<MountOutcome, RegistryError> {
        let what = format!("mounting blob {digest} from {registry}/{from} into {repo}");
        let mut url = self.location(registry, &format!("/v2/{repo}/blobs/uploads/"))?;
        url.query_pairs_mut()
            .append_pair("mount", &digest.to_string())
            .append_pair("from", from);
        let req = Request {
            method: Method::POST,
            registry,
            url: url.to_string(),
            // One token for both repositories: push+pull on the target, pull on the source.
            scope: format!("{} repository:{from}:pull", push(repo)),
            headers: vec![("Content-Length", "0".into())],
            body: None,
            retry: true,
            what: &what,
        };
        match self.execute(&req, &[201, 202], |r| {
            Ok((r.status().as_u16(), location_of(&r)))
        }) {
            Ok((201, _)) => Ok(MountOutcome::Mounted),
            Ok((_, location)) => Ok(MountOutcome::NotMounted { location }),
            // Harbor answers 401 for a source it will not show; others 403/404.
            Err(RegistryError::Denied { .. } | RegistryError::NotFound { .. }) => {
                Ok(MountOutcome::NotMounted { location: None })
            }
            Err(e) => Err(e),
        }
    }

    /// Upload a blob whose bytes `open` yields, verified on the way. `session` is an
    /// upload location a refused mount left open. Returns the bytes sent.
    pub fn upload_blob(
        &self,
        registry: &str,
        repo: &str,
        digest: &Digest,
        size: u64,
        open: OpenBlob,
        mut session: Option<String>,
    ) -> Result<(), RegistryError> {
        let opts = &self.inner.opts;
        // GHCR's 4 MiB cap is on PATCH chunks only: a monolithic PUT of any size is fine.
        let chunked = size > opts.monolithic_max;
        let what = format!("uploading blob {digest} ({size} bytes) to {registry}/{repo}");
        let policy = &opts.retry;
        let mut failures = 0;
        loop {
            let location = match session.take() {
                Some(l) => l,
                None => self.start_upload(registry, repo, &what)?,
            };
            let tracked = Tracked::new(self, registry, repo, &location);
            let result = if chunked {
                self.upload_chunked(
                    registry, repo, digest, size, open, &location, &what, &tracked,
                )
            } else {
                self.upload_monolithic(registry, repo, digest, size, open, &location, &what)
            };
            let err = match result {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            // This session will not be finished: close it rather than leave it open.
            if let Some(u) = OPEN_UPLOADS.lock().expect("uploads").remove(&tracked.0) {
                self.cancel_upload(registry, repo, &u.location);
            }
            // The last response may have been lost after the registry committed the blob.
            if self.head_blob(registry, repo, digest).ok().flatten() == Some(size) {
                return Ok(());
            }
            let retryable = match &err {
                RegistryError::Exhausted { .. } => true,
                RegistryError::Http { message, .. } => !message.contains("does not match"),
                RegistryError::Status { status, .. } => {
                    *status >= 500 || *status == 429 || *status == 400 || *status == 416
                }
                RegistryError::NotFound { detail, .. } => detail.contains("BLOB_UPLOAD_UNKNOWN"),
                _ => false,
            };
            failures += 1;
            if !retryable || failures >= policy.attempts {
                if retryable {
                    return Err(RegistryError::Exhausted {
                        what,
                        attempts: failures,
                        last: err.to_string(),
                    });
                }
                return Err(err);
            }
            self.inner.counters.retries.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(policy.backoff(failures));
        }
    }

    fn start_upload(
        &self,
        registry: &str,
        repo: &str,
        what: &str,
    ) -> Result<String, RegistryError> {
        let req = Request {
            method: Method::POST,
            registry,
            url: self.url(registry, &format!("/v2/{repo}/blobs/uploads/")),
            scope: push(repo),
            headers: vec![("Content-Length", "0".into())],
            body: None,
            retry: true,
            what,
        };
        let loc = match self.execute(&req, &[202], |r| Ok(location_of(&r))) {
            Err(RegistryError::NotFound { detail, .. })
                if self.quirks(registry).needs_existing_repository =>
            {
                return Err(invalid(
                    what,
                    format!(
                        "repository {repo} does not exist{detail}; this registry does not create repositories on push: create it first (for ECR: aws ecr create-repository --repository-name {repo})"
                    ),
                ))
            }
            other => other?,
        };
        loc.ok_or_else(|| invalid(what, "the registry opened an upload without a Location"))
    }

    #[allow(clippy::too_many_arguments)]
    fn upload_monolithic(
        &self,
        registry: &str,
        repo: &str,
        digest: &Digest,
        size: u64,
        open: OpenBlob,
        location: &str,
        what: &str,
    ) -> Result<(), RegistryError> {
        let mut url = self.location(registry, location)?;
        url.query_pairs_mut()
            .append_pair("digest", &digest.to_string());
        let inner = self.inner.clone();
        let name = format!("blob {digest}");
        let body = move || -> Result<Body, RegistryError> {
            let src = open()?;
            let verified = VerifyingReader::new(src, digest.clone(), size, name.clone());
            Ok(Body::sized(
                Counting {
                    inner: verified,
                    client: inner.clone(),
                    up: true,
                },
                size,
            ))
        };
        let req = Request {
            method: Method::PUT,
            registry,
            url: url.to_string(),
            scope: push(repo),
            headers: vec![("Content-Type", "application/octet-stream".into())],
            body: Some(&body),
            retry: false,
            what,
        };
        self.execute(&req, &[201], |_| Ok(()))
    }

    /// PATCH the blob in chunks (held in memory one at a time, so a failed chunk can be
    /// sent again), then PUT the digest.
    #[allow(clippy::too_many_arguments)]
    fn upload_chunked(
        &self,
        registry: &str,
        repo: &str,
        digest: &Digest,
        size: u64,
        open: OpenBlob,
        location: &str,
        what: &str,
        tracked: &Tracked,
    ) -> Result<(), RegistryError> {
        let chunk = self.quirks(registry).chunk_size(self.inner.opts.chunk_size) as usize;
        let mut src = VerifyingReader::new(open()?, digest.clone(), size, format!("blob {digest}"));
        let mut location = location.to_string();
        let mut offset = 0u64;
        let mut buf = vec![0u8; chunk];
        loop {
            let n = read_full(&mut src, &mut buf).map_err(|source| RegistryError::Io {
                what: format!("{what}: reading the source"),
                source,
            })?;
            if n == 0 {
                break;
            }
            let data = &buf[..n];
            let end = offset + n as u64 - 1;
            let inner = self.inner.clone();
            let body = move || -> Result<Body, RegistryError> {
                inner
                    .counters
                    .bytes_up
                    .fetch_add(data.len() as u64, Ordering::Relaxed);
                Ok(Body::from(data.to_vec()))
            };
            let policy = &self.inner.opts.retry;
            let mut tries = 0;
            loop {
                let url = self.location(registry, &location)?;
                let req = Request {
                    method: Method::PATCH,
                    registry,
                    url: url.to_string(),
                    scope: push(repo),
                    headers: vec![
                        ("Content-Type", "application/octet-stream".into()),
                        ("Content-Range", format!("{offset}-{end}")),
                    ],
                    body: Some(&body),
                    // A chunk that reached the registry must not be appended twice: after a
                    // failure, the session is asked how far it got.
                    retry: false,
                    what,
                };
                // ECR answers 201 to PATCH; the spec says 202.
                let err = match self.execute(&req, &[201, 202, 204], |r| Ok(location_of(&r))) {
                    Ok(next) => {
                        if let Some(l) = next {
                            location = l;
                            tracked.moved(&location);
                        }
                        break;
                    }
                    Err(e) => e,
                };
                tries += 1;
                if !transient(&err) || tries >= policy.attempts {
                    return Err(err);
                }
                self.inner.counters.retries.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(policy.backoff(tries));
                match self.upload_progress(registry, repo, &location, what) {
                    Ok((progress, next)) => {
                        if let Some(l) = next {
                            location = l;
                            tracked.moved(&location);
                        }
                        if progress == offset + n as u64 {
                            break; // the chunk arrived; only the answer was lost
                        }
                        if progress != offset {
                            return Err(err); // out of step: the caller starts over
                        }
                    }
                    Err(_) => return Err(err),
                }
            }
            offset += n as u64;
        }
        let mut url = self.location(registry, &location)?;
        url.query_pairs_mut()
            .append_pair("digest", &digest.to_string());
        let req = Request {
            method: Method::PUT,
            registry,
            url: url.to_string(),
            scope: push(repo),
            headers: vec![(CONTENT_LENGTH.as_str(), "0".into())],
            body: None,
            retry: false,
            what,
        };
        self.execute(&req, &[201], |_| Ok(()))
    }
}

/// Failures worth another try: no answer, throttling, server errors.
fn transient(e: &RegistryError) -> bool {
    match e {
        RegistryError::Exhausted { .. } => true,
        RegistryError::Status { status, .. } => *status >= 500 || *status == 429,
        _ => false,
    }
}

impl Client {
    /// How many bytes an upload session holds (`GET` on it: `Range: 0-LAST`), and its
    /// next location.
    fn upload_progress(
        &self,
        registry: &str,
        repo: &str,
        location: &str,
        what: &str,
    ) -> Result<(u64, Option<String>), RegistryError> {
        let req = Request {
            method: Method::GET,
            registry,
            url: self.location(registry, location)?.to_string(),
            scope: push(repo),
            headers: vec![],
            body: None,
            retry: true,
            what,
        };
        self.execute(&req, &[204], |r| {
            let range = r
                .headers()
                .get(RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim_start_matches("bytes=").split_once('-'))
                .and_then(|(_, end)| end.parse::<u64>().ok());
            // "0-0" means nothing or one byte; a chunk is never one byte here, so nothing.
            let progress = match range {
                None | Some(0) => 0,
                Some(end) => end + 1,
            };
            Ok((progress, location_of(&r)))
        })
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

pub(crate) fn header_length(r: &Response) -> Option<u64> {
    r.headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

fn location_of(r: &Response) -> Option<String> {
    r.headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// A blob being read from a registry: verified at the end, resumed after a failure.
pub struct BlobReader {
    client: Client,
    registry: String,
    repo: String,
    digest: Digest,
    size: Option<u64>,
    offset: u64,
    resp: Option<Counting<Response>>,
    hasher: Option<Sha256Writer<io::Sink>>,
    failures: u32,
}

impl std::fmt::Debug for BlobReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "BlobReader({}/{}@{})",
            self.registry, self.repo, self.digest
        )
    }
}

impl BlobReader {
    fn what(&self) -> String {
        format!("blob {} from {}/{}", self.digest, self.registry, self.repo)
    }

    fn open(&mut self) -> Result<(), RegistryError> {
        let what = self.what();
        let offset = self.offset;
        let req = Request {
            method: Method::GET,
            registry: &self.registry,
            url: self.client.url(
                &self.registry,
                &format!("/v2/{}/blobs/{}", self.repo, self.digest),
            ),
            scope: pull(&self.repo),
            headers: if offset > 0 {
                vec![(RANGE.as_str(), format!("bytes={offset}-"))]
            } else {
                vec![]
            },
            body: None,
            retry: true,
            what: &what,
        };
        let mut resp = self.client.execute(&req, &[200, 206], Ok)?;
        if self.size.is_none() && resp.status().as_u16() == 200 {
            // Callers that do not know the size still get truncation caught and resumed.
            self.size = header_length(&resp);
        }
        if resp.status().as_u16() == 200 && offset > 0 {
            // The registry ignored Range: skip what we already have.
            io::copy(&mut (&mut resp).take(offset), &mut io::sink()).map_err(|source| {
                RegistryError::Io {
                    what: what.clone(),
                    source,
                }
            })?;
        }
        self.resp = Some(Counting {
            inner: resp,
            client: self.client.inner.clone(),
            up: false,
        });
        Ok(())
    }

    fn fail(&self, msg: String) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {msg}", self.what()),
        )
    }
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.hasher.is_none() {
                return Ok(0);
            }
            if self.resp.is_none() {
                self.open().map_err(io::Error::other)?;
            }
            let r = self.resp.as_mut().expect("opened").read(buf);
            let problem = match r {
                Ok(0) if self.size.is_some_and(|s| self.offset < s) => {
                    format!(
                        "body ended at {} of {} bytes",
                        self.offset,
                        self.size.unwrap_or_default()
                    )
                }
                Ok(0) => {
                    let (actual, n, _) = self.hasher.take().expect("checked").finish();
                    if actual != self.digest || self.size.is_some_and(|s| s != n) {
                        return Err(self.fail(format!(
                            "content does not match its digest (got {actual}, {n} bytes)"
                        )));
                    }
                    return Ok(0);
                }
                Ok(n) => {
                    self.hasher.as_mut().expect("checked").update(&buf[..n]);
                    self.offset += n as u64;
                    if self.size.is_some_and(|s| self.offset > s) {
                        return Err(self.fail("longer than its descriptor says".into()));
                    }
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => e.to_string(),
            };
            self.resp = None;
            self.failures += 1;
            let policy = &self.client.inner.opts.retry;
            if self.failures >= policy.attempts {
                return Err(io::Error::other(format!(
                    "{}: gave up after {} attempts: {problem}",
                    self.what(),
                    self.failures
                )));
            }
            self.client
                .inner
                .counters
                .retries
                .fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(policy.backoff(self.failures));
        }
    }
}

/// Upload sessions this process has open, so an interrupted push can close them
/// ([`cancel_open_uploads`]) instead of leaving them to the registry's own expiry.
static OPEN_UPLOADS: Mutex<BTreeMap<u64, OpenUpload>> = Mutex::new(BTreeMap::new());
static NEXT_UPLOAD: AtomicU64 = AtomicU64::new(0);

struct OpenUpload {
    client: Client,
    registry: String,
    repo: String,
    location: String,
}

/// One open session in [`OPEN_UPLOADS`]; forgotten when dropped (the session ended).
pub(crate) struct Tracked(u64);

impl Tracked {
    fn new(client: &Client, registry: &str, repo: &str, location: &str) -> Tracked {
        let id = NEXT_UPLOAD.fetch_add(1, Ordering::Relaxed);
        OPEN_UPLOADS.lock().expect("uploads").insert(
            id,
            OpenUpload {
                client: client.clone(),
                registry: registry.to_string(),
                repo: repo.to_string(),
                location: location.to_string(),
            },
        );
        Tracked(id)
    }

    /// The session moved (a PATCH answered with a new Location, as distribution does).
    fn moved(&self, location: &str) {
        if let Some(u) = OPEN_UPLOADS.lock().expect("uploads").get_mut(&self.0) {
            u.location = location.to_string();
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        OPEN_UPLOADS.lock().expect("uploads").remove(&self.0);
    }
}

impl Client {
    /// Close an upload session that will not be finished (best effort: a registry that
    /// does not answer keeps it until its own expiry).
    fn cancel_upload(&self, registry: &str, repo: &str, location: &str) {
        let Ok(url) = self.location(registry, location) else {
            return;
        };
        let what = format!("cancelling an upload to {registry}/{repo}");
        let req = Request {
            method: Method::DELETE,
            registry,
            url: url.to_string(),
            scope: push(repo),
            headers: vec![],
            body: None,
            retry: false,
            what: &what,
        };
        let _ = self.execute(&req, &[200, 202, 204, 404], |_| Ok(()));
    }
}

/// DELETE every upload session this process has open, for an interrupted push (SIGINT,
/// SIGTERM). Returns how many were closed.
pub fn cancel_open_uploads() -> usize {
    let open: Vec<OpenUpload> = std::mem::take(&mut *OPEN_UPLOADS.lock().expect("uploads"))
        .into_values()
        .collect();
    for u in &open {
        u.client.cancel_upload(&u.registry, &u.repo, &u.location);
    }
    open.len()
}
