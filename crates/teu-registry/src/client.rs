//! The HTTP side: one client per process, shared by threads; authentication, retries and
//! traffic counters around every request.

use std::collections::HashMap;
use std::io::Read;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use reqwest::blocking::{Body, Response};
use reqwest::header::{HeaderMap, AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use serde::Serialize;

use crate::auth::{Credential, Keychain, Secret};
use crate::quirks::Quirks;
use crate::retry::{parse_retry_after, RetryPolicy};
use crate::token::{parse_challenge, Challenge, Token, TokenReply};
use crate::{invalid, RegistryError};

#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Extra PEM CA certificates trusted on top of the system roots.
    pub ca_files: Vec<PathBuf>,
    /// Registries (`host` or `host:port`) spoken to over plain HTTP.
    pub insecure: Vec<String>,
    pub retry: RetryPolicy,
    pub keychain: Keychain,
    /// Blobs up to this size go up in one PUT; larger ones in PATCH chunks.
    pub monolithic_max: u64,
    pub chunk_size: u64,
    /// `host=profile` overrides of quirk detection (see [`crate::quirks`]).
    pub profiles: Vec<(String, String)>,
    /// Tags asked for per request when listing (the registry may send fewer and a link).
    pub tag_page_size: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            ca_files: Vec::new(),
            insecure: Vec::new(),
            retry: RetryPolicy::default(),
            keychain: Keychain::default(),
            monolithic_max: 128 << 20,
            // Held in memory per upload (to resend a failed chunk): jobs × 16 MiB at most.
            chunk_size: 16 << 20,
            profiles: Vec::new(),
            tag_page_size: 1000,
        }
    }
}

/// Requests and bytes moved, for summaries and `--json`.
#[derive(Default, Debug)]
pub struct Counters {
    pub requests: AtomicU64,
    pub bytes_up: AtomicU64,
    pub bytes_down: AtomicU64,
    pub retries: AtomicU64,
}

#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Traffic {
    pub requests: u64,
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub retries: u64,
}

impl Traffic {
    /// What went over the wire since an earlier reading of the same client's counters.
    pub fn since(&self, before: &Traffic) -> Traffic {
        Traffic {
            requests: self.requests - before.requests,
            bytes_up: self.bytes_up - before.bytes_up,
            bytes_down: self.bytes_down - before.bytes_down,
            retries: self.retries - before.retries,
        }
    }
}

#[derive(Default)]
struct AuthState {
    challenges: HashMap<String, Option<Challenge>>,
    credentials: HashMap<String, Option<Credential>>,
    tokens: HashMap<(String, String), Token>,
}

/// A registry client; cheap to clone (shared state behind an `Arc`).
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) http: reqwest::blocking::Client,
    pub(crate) opts: ClientOptions,
    auth: Mutex<AuthState>,
    /// Held while fetching a token, so parallel requests wanting the same scope wait for
    /// one token instead of each asking for their own.
    token_fetch: Mutex<()>,
    pub(crate) counters: Counters,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

/// A request body that can be produced again for a retry or after a 401.
pub(crate) type BodyFn<'a> = &'a (dyn Fn() -> Result<Body, RegistryError> + Sync);

pub(crate) struct Request<'a> {
    pub method: Method,
    pub registry: &'a str,
    pub url: String,
    /// Token scope(s), space separated: `repository:a/b:pull,push repository:c:pull`.
    pub scope: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Option<BodyFn<'a>>,
    /// False for requests that must not be blindly re-sent (a PUT that ends an upload
    /// session is redone from a new session by the caller instead).
    pub retry: bool,
    pub what: &'a str,
}

/// What to do with a response the caller did not like.
pub(crate) enum Outcome {
    Retry(String),
    Fail(RegistryError),
}

impl Client {
    pub fn new(opts: ClientOptions) -> Result<Client, RegistryError> {
        let mut b = reqwest::blocking::Client::builder()
            .user_agent(concat!("teu/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(30))
            // A whole-request timeout would cut off large blobs on slow links.
            .timeout(None::<Duration>)
            .pool_max_idle_per_host(16);
        for f in &opts.ca_files {
            let pem = std::fs::read(f).map_err(|source| RegistryError::Io {
                what: format!("--ca-file {}", f.display()),
                source,
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                invalid(
                    format!("--ca-file {}", f.display()),
                    format!("is not a PEM certificate bundle: {e}"),
                )
            })?;
            if certs.is_empty() {
                return Err(invalid(
                    format!("--ca-file {}", f.display()),
                    "holds no PEM certificate",
                ));
            }
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        let http = b.build().map_err(|e| RegistryError::Http {
            what: "creating the HTTP client".into(),
            message: error_chain(&e),
        })?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                opts,
                auth: Mutex::new(AuthState::default()),
                token_fetch: Mutex::new(()),
                counters: Counters::default(),
            }),
        })
    }

    pub fn options(&self) -> &ClientOptions {
        &self.inner.opts
    }

    pub fn traffic(&self) -> Traffic {
        let c = &self.inner.counters;
        Traffic {
            requests: c.requests.load(Ordering::Relaxed),
            bytes_up: c.bytes_up.load(Ordering::Relaxed),
            bytes_down: c.bytes_down.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
        }
    }

    /// The page size tag listings ask for ([`ClientOptions::tag_page_size`]).
    pub fn tag_page_size(&self) -> usize {
        self.inner.opts.tag_page_size
    }

    pub fn quirks(&self, registry: &str) -> Quirks {
        let overridden = self
            .inner
            .opts
            .profiles
            .iter()
            .find(|(h, _)| h == registry)
            .and_then(|(_, p)| Quirks::profile(p));
        overridden.unwrap_or_else(|| Quirks::detect(registry))
    }

    /// `https://host` (or `http://` for loopback and `--insecure-registry` hosts).
    pub fn base_url(&self, registry: &str) -> String {
        let host = if registry == teu_oci::DOCKER_HUB {
            "registry-1.docker.io"
        } else {
            registry
        };
        let plain = is_loopback(registry)
            || self
                .inner
                .opts
                .insecure
                .iter()
                .any(|i| i == registry || i == host_of(registry));
        format!("{}://{host}", if plain { "http" } else { "https" })
    }

    pub(crate) fn url(&self, registry: &str, path: &str) -> String {
        format!("{}{path}", self.base_url(registry))
    }

    /// Resolve an upload `Location` (absolute or relative) against the registry.
    pub(crate) fn location(&self, registry: &str, loc: &str) -> Result<url::Url, RegistryError> {
        let base = url::Url::parse(&self.base_url(registry))
            .map_err(|e| invalid(registry, format!("bad registry URL: {e}")))?;
        base.join(loc).map_err(|e| {
            invalid(
                registry,
                format!("upload location {loc:?} is not a URL: {e}"),
            )
        })
    }

    /// Send a request with authentication and retries, and hand the response with an
    /// expected status to `finish` (which may ask for a retry, e.g. on a truncated body).
    pub(crate) fn execute<T>(
        &self,
        req: &Request,
        ok: &[u16],
        mut finish: impl FnMut(Response) -> Result<T, Outcome>,
    ) -> Result<T, RegistryError> {
        let policy = &self.inner.opts.retry;
        let mut failures = 0u32;
        let mut auth_retried = false;
        loop {
            let last: String;
            let mut wait = None;
            let auth = self.authorization(req.registry, &req.scope)?;
            let mut rb = self.inner.http.request(req.method.clone(), &req.url);
            for (k, v) in &req.headers {
                rb = rb.header(*k, v);
            }
            if let Some(a) = &auth {
                rb = rb.header(AUTHORIZATION, a.expose());
            }
            if let Some(body) = req.body {
                rb = rb.body(body()?);
            }
            self.inner.counters.requests.fetch_add(1, Ordering::Relaxed);
            match rb.send() {
                Err(e) => {
                    if is_source_corrupt(&e) {
                        return Err(RegistryError::Http {
                            what: req.what.to_string(),
                            message: error_chain(&e),
                        });
                    }
                    if is_permanent(&e) {
                        return Err(RegistryError::Http {
                            what: req.what.to_string(),
                            message: format!(
                                "{} (not retried: a retry cannot succeed)",
                                error_chain(&e)
                            ),
                        });
                    }
                    last = error_chain(&e);
                }
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    if status == 401 && !auth_retried {
                        auth_retried = true;
                        if self.learn_challenge(
                            req.registry,
                            &req.scope,
                            resp.headers(),
                            auth.is_some(),
                        )? {
                            continue;
                        }
                        return Err(status_error(req, resp));
                    }
                    if status == 408
                        || status == 429
                        || ((500..600).contains(&status) && status != 501)
                    {
                        wait = resp
                            .headers()
                            .get(RETRY_AFTER)
                            .and_then(|v| v.to_str().ok())
                            .and_then(parse_retry_after);
                        if wait.is_some_and(|w| w > policy.max_retry_after) || !req.retry {
                            return Err(status_error(req, resp));
                        }
                        if failures + 1 >= policy.attempts {
                            let e = status_error(req, resp);
                            return Err(RegistryError::Exhausted {
                                what: req.what.to_string(),
                                attempts: failures + 1,
                                last: e.to_string(),
                            });
                        }
                        last = format!("HTTP {status}");
                    } else if ok.contains(&status) {
                        match finish(resp) {
                            Ok(t) => return Ok(t),
                            Err(Outcome::Fail(e)) => return Err(e),
                            Err(Outcome::Retry(m)) => last = m,
                        }
                    } else {
                        return Err(status_error(req, resp));
                    }
                }
            }
            failures += 1;
            if !req.retry {
                return Err(RegistryError::Http {
                    what: req.what.to_string(),
                    message: last,
                });
            }
            if failures >= policy.attempts {
                return Err(RegistryError::Exhausted {
                    what: req.what.to_string(),
                    attempts: failures,
                    last,
                });
            }
            self.inner.counters.retries.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(wait.unwrap_or_else(|| policy.backoff(failures)));
        }
    }

    /// `execute` for small bodies (manifests, JSON), read whole and counted.
    pub(crate) fn fetch(
        &self,
        req: &Request,
        ok: &[u16],
        max: u64,
    ) -> Result<(u16, HeaderMap, Vec<u8>), RegistryError> {
        self.execute(req, ok, |resp| {
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let expected = resp.content_length();
            let mut body = Vec::new();
            match resp.take(max + 1).read_to_end(&mut body) {
                Ok(_) => {}
                Err(e) => return Err(Outcome::Retry(format!("reading the response: {e}"))),
            }
            self.inner
                .counters
                .bytes_down
                .fetch_add(body.len() as u64, Ordering::Relaxed);
            if body.len() as u64 > max {
                return Err(Outcome::Fail(invalid(
                    req.what,
                    format!("response is larger than {max} bytes"),
                )));
            }
            if expected.is_some_and(|n| n != body.len() as u64) {
                return Err(Outcome::Retry(format!(
                    "truncated response ({} of {} bytes)",
                    body.len(),
                    expected.unwrap_or_default()
                )));
            }
            Ok((status, headers, body))
        })
    }

    /// The `Authorization` header for a request, fetching a token when needed.
    fn authorization(&self, registry: &str, scope: &str) -> Result<Option<Secret>, RegistryError> {
        let _fetching;
        let challenge = {
            if self.needs_token(registry, scope) {
                _fetching = self.inner.token_fetch.lock().expect("token lock");
            }
            let st = self.inner.auth.lock().expect("auth lock");
            match st.challenges.get(registry) {
                None | Some(None) => return Ok(None),
                Some(Some(c)) => {
                    if let Some(t) = st.tokens.get(&(registry.to_string(), scope.to_string())) {
                        if t.fresh() {
                            return Ok(Some(Secret::new(format!("Bearer {}", t.secret.expose()))));
                        }
                    }
                    c.clone()
                }
            }
        };
        let cred = self.credential(registry)?;
        match challenge {
            Challenge::Basic => Ok(match cred {
                Some(Credential::Basic { username, password }) => Some(Secret::new(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD
                        .encode(format!("{username}:{}", password.expose()))
                ))),
                _ => None,
            }),
            Challenge::Bearer { realm, service } => {
                let token = self.fetch_token(registry, &realm, service.as_deref(), scope, cred)?;
                let header = Secret::new(format!("Bearer {}", token.secret.expose()));
                self.inner
                    .auth
                    .lock()
                    .expect("auth lock")
                    .tokens
                    .insert((registry.to_string(), scope.to_string()), token);
                Ok(Some(header))
            }
        }
    }

    fn needs_token(&self, registry: &str, scope: &str) -> bool {
        let st = self.inner.auth.lock().expect("auth lock");
        matches!(
            st.challenges.get(registry),
            Some(Some(Challenge::Bearer { .. }))
        ) && !st
            .tokens
            .get(&(registry.to_string(), scope.to_string()))
            .is_some_and(Token::fresh)
    }

    /// Record a 401's challenge; true when retrying can help.
    fn learn_challenge(
        &self,
        registry: &str,
        scope: &str,
        headers: &HeaderMap,
        sent_auth: bool,
    ) -> Result<bool, RegistryError> {
        let challenge = headers
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(parse_challenge);
        let mut st = self.inner.auth.lock().expect("auth lock");
        st.tokens.remove(&(registry.to_string(), scope.to_string()));
        st.challenges
            .insert(registry.to_string(), challenge.clone());
        drop(st);
        Ok(match challenge {
            None => false,
            // A bearer token can be refused because it expired early: fetch a new one.
            Some(Challenge::Bearer { .. }) => true,
            // Basic after sending basic credentials means they are wrong; without, that
            // we have some to send (another thread may have learnt the scheme meanwhile).
            Some(Challenge::Basic) => !sent_auth && self.credential(registry)?.is_some(),
        })
    }

    fn credential(&self, registry: &str) -> Result<Option<Credential>, RegistryError> {
        if let Some(c) = self
            .inner
            .auth
            .lock()
            .expect("auth lock")
            .credentials
            .get(registry)
        {
            return Ok(c.clone());
        }
        let c = self.inner.opts.keychain.get(registry)?;
        self.inner
            .auth
            .lock()
            .expect("auth lock")
            .credentials
            .insert(registry.to_string(), c.clone());
        Ok(c)
    }

    /// Check that the credentials for `registry` are accepted (`GET /v2/`, with a token of
    /// no scope when the registry uses tokens, as `docker login` does).
    pub fn check_login(&self, registry: &str) -> Result<(), RegistryError> {
        let what = format!("logging in to {registry}");
        let req = Request {
            method: Method::GET,
            registry,
            url: self.url(registry, "/v2/"),
            scope: String::new(),
            headers: vec![],
            body: None,
            retry: true,
            what: &what,
        };
        self.execute(&req, &[200], |_| Ok(()))
    }

    /// Use these credentials for `registry` instead of the keychain's (`teu login`).
    pub fn set_credential(&self, registry: &str, cred: Option<Credential>) {
        let mut st = self.inner.auth.lock().expect("auth lock");
        st.credentials.insert(registry.to_string(), cred);
        st.tokens.retain(|(r, _), _| r != registry);
    }

    fn fetch_token(
        &self,
        registry: &str,
        realm: &str,
        service: Option<&str>,
        scope: &str,
        cred: Option<Credential>,
    ) -> Result<Token, RegistryError> {
        let what = format!("token for {registry} ({scope}) from {realm}");
        let mut url = url::Url::parse(realm).map_err(|e| {
            invalid(
                &what,
                format!("the registry's token realm is not a URL: {e}"),
            )
        })?;
        let policy = &self.inner.opts.retry;
        let mut failures = 0;
        loop {
            let mut rb = match &cred {
                Some(Credential::IdentityToken(t)) => {
                    let mut form = vec![
                        ("grant_type", "refresh_token".to_string()),
                        ("refresh_token", t.expose().to_string()),
                        ("client_id", "teu".to_string()),
                        ("scope", scope.to_string()),
                    ];
                    form.extend(service.map(|s| ("service", s.to_string())));
                    self.inner.http.post(url.clone()).form(&form)
                }
                other => {
                    {
                        let mut q = url.query_pairs_mut();
                        q.clear();
                        if let Some(s) = service {
                            q.append_pair("service", s);
                        }
                        for s in scope.split(' ').filter(|s| !s.is_empty()) {
                            q.append_pair("scope", s);
                        }
                    }
                    let rb = self.inner.http.get(url.clone());
                    match other {
                        Some(Credential::Basic { username, password }) => {
                            rb.basic_auth(username, Some(password.expose()))
                        }
                        _ => rb,
                    }
                }
            };
            rb = rb.header("Accept", "application/json");
            self.inner.counters.requests.fetch_add(1, Ordering::Relaxed);
            let last = match rb.send() {
                Ok(resp) if resp.status().is_success() => {
                    let body = resp.bytes().map_err(|e| RegistryError::Http {
                        what: what.clone(),
                        message: error_chain(&e),
                    })?;
                    let reply: TokenReply = serde_json::from_slice(&body).map_err(|e| {
                        invalid(&what, format!("the token server's answer is not JSON: {e}"))
                    })?;
                    let secret = reply.token.or(reply.access_token).ok_or_else(|| {
                        invalid(&what, "the token server's answer holds no token")
                    })?;
                    return Ok(Token::new(Secret::new(secret), reply.expires_in));
                }
                Ok(resp) if matches!(resp.status().as_u16(), 401 | 403) => {
                    return Err(RegistryError::Denied {
                        what,
                        registry: registry.to_string(),
                        status: resp.status().as_u16(),
                        detail: registry_detail(resp),
                    })
                }
                Ok(resp) if resp.status().is_server_error() || resp.status().as_u16() == 429 => {
                    format!("HTTP {}", resp.status().as_u16())
                }
                Ok(resp) => {
                    return Err(RegistryError::Status {
                        what,
                        status: resp.status().as_u16(),
                        detail: registry_detail(resp),
                    })
                }
                Err(e) if is_permanent(&e) => {
                    return Err(RegistryError::Http {
                        what,
                        message: format!(
                            "{} (not retried: a retry cannot succeed)",
                            error_chain(&e)
                        ),
                    })
                }
                Err(e) => error_chain(&e),
            };
            failures += 1;
            if failures >= policy.attempts {
                return Err(RegistryError::Exhausted {
                    what,
                    attempts: failures,
                    last,
                });
            }
            std::thread::sleep(policy.backoff(failures));
        }
    }
}

/// A pull scope for `repo`.
pub(crate) fn pull(repo: &str) -> String {
    format!("repository:{repo}:pull")
}

/// A push scope for `repo` (push needs pull too: HEAD before upload).
pub(crate) fn push(repo: &str) -> String {
    format!("repository:{repo}:pull,push")
}

fn host_of(registry: &str) -> &str {
    if let Some(rest) = registry.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match registry.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => registry,
    }
}

/// Docker talks plain HTTP to loopback registries; so does teu.
pub fn is_loopback(registry: &str) -> bool {
    let h = host_of(registry);
    h == "localhost" || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The registry's error message (`errors[].code: message`) and rate-limit headers.
pub(crate) fn registry_detail(resp: Response) -> String {
    let headers = resp.headers().clone();
    let mut body = Vec::new();
    let _ = resp.take(8192).read_to_end(&mut body);
    let mut parts = Vec::new();
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) {
        for e in v["errors"].as_array().into_iter().flatten() {
            let code = e["code"].as_str().unwrap_or("");
            let msg = e["message"].as_str().unwrap_or("");
            parts.push(
                format!("{code}: {msg}")
                    .trim_matches([' ', ':'])
                    .to_string(),
            );
        }
    }
    // Docker Hub's pull limits: tell the user where they stand.
    let h = |k: &str| headers.get(k).and_then(|v| v.to_str().ok());
    if let Some(limit) = h("ratelimit-limit") {
        parts.push(format!(
            "rate limit {limit}, remaining {}{}",
            h("ratelimit-remaining").unwrap_or("?"),
            h("docker-ratelimit-source")
                .map(|s| format!(", counted for {s}"))
                .unwrap_or_default()
        ));
    }
    if let Some(r) = h("retry-after") {
        parts.push(format!("retry after {r}"));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join("; "))
    }
}

pub(crate) fn status_error(req: &Request, resp: Response) -> RegistryError {
    let status = resp.status().as_u16();
    let detail = registry_detail(resp);
    match StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST) {
        StatusCode::NOT_FOUND => RegistryError::NotFound {
            what: req.what.to_string(),
            detail,
        },
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => RegistryError::Denied {
            what: req.what.to_string(),
            registry: req.registry.to_string(),
            status,
            detail,
        },
        _ => RegistryError::Status {
            what: req.what.to_string(),
            status,
            detail,
        },
    }
}

/// An error with its causes, one line.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

/// A request body that failed because our own source did not match its digest: retrying
/// would send the same bad bytes.
fn is_source_corrupt(e: &reqwest::Error) -> bool {
    let mut cur: Option<&dyn std::error::Error> = Some(e);
    while let Some(c) = cur {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::InvalidData {
                return true;
            }
        }
        cur = c.source();
    }
    false
}

/// A request that failed in a way no retry can mend: a malformed URL (an invalid port),
/// a name that does not resolve, a refused connection, a TLS handshake or certificate
/// failure. Timeouts, resets and truncated bodies stay retryable.
pub(crate) fn is_permanent(e: &reqwest::Error) -> bool {
    if e.is_builder() || e.is_timeout() {
        return e.is_builder();
    }
    let mut cur: Option<&dyn std::error::Error> = Some(e);
    while let Some(c) = cur {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return true;
            }
        }
        let m = c.to_string().to_ascii_lowercase();
        if m.contains("dns error")
            || m.contains("failed to lookup address")
            || m.contains("name or service not known")
            || m.contains("certificate")
            || m.contains("handshake")
            || m.contains("invalid url")
            || m.contains("invalid port")
        {
            return true;
        }
        cur = c.source();
    }
    false
}

/// Counts bytes read into `Counters::bytes_up` (request bodies) or `bytes_down`.
pub(crate) struct Counting<R> {
    pub inner: R,
    pub client: Arc<Inner>,
    pub up: bool,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let c = &self.client.counters;
        if self.up { &c.bytes_up } else { &c.bytes_down }.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_registries_are_plain_http() {
        let c = Client::new(ClientOptions {
            insecure: vec!["reg.lan:5000".into()],
            ..ClientOptions::default()
        })
        .unwrap();
        assert_eq!(c.base_url("localhost:5000"), "http://localhost:5000");
        assert_eq!(c.base_url("127.0.0.2:80"), "http://127.0.0.2:80");
        assert_eq!(c.base_url("[::1]:5000"), "http://[::1]:5000");
        assert_eq!(c.base_url("reg.lan:5000"), "http://reg.lan:5000");
        assert_eq!(c.base_url("ghcr.io"), "https://ghcr.io");
        assert_eq!(c.base_url("docker.io"), "https://registry-1.docker.io");
    }
}
