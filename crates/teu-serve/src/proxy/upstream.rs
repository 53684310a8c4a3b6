//! Talking to one upstream registry: timeouts on every request, basic auth or the bearer
//! token flow (tokens cached per repository scope), and errors sorted into "the upstream
//! is unavailable" (serve stale, or 429/503) versus "the upstream says no".
//!
//! Async reqwest rather than `teu-registry`'s client: that client is blocking and retries
//! 429s and 5xx with backoff, which is right for a CLI and wrong here, where a failing
//! upstream must be answered from the cache at once. Credentials come from the same
//! keychain, and challenges are parsed by the same code.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, ACCEPT, AUTHORIZATION, RANGE, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use teu_registry::{Challenge, Credential, TokenReply};

use super::stats::ProxyStats;
use crate::config::Upstream;

/// Every manifest type teu serves, so a HEAD is never refused for a narrow `Accept`.
pub const ACCEPT_ALL: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.docker.distribution.manifest.v1+prettyjws;q=0.5, \
application/json;q=0.1";

#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    /// 429 or 5xx; `retry_after` is the upstream's header, passed on to clients.
    #[error("upstream {upstream} answered {status}")]
    Status {
        upstream: String,
        status: u16,
        retry_after: Option<String>,
    },
    #[error("upstream {upstream} did not answer within {after:?}")]
    Timeout { upstream: String, after: Duration },
    #[error("upstream {upstream}: {message}")]
    Connect { upstream: String, message: String },
    /// The upstream answered, but not in a way that can be served (404 is not here:
    /// callers see it as a status).
    #[error("upstream {upstream}: {message}")]
    Refused { upstream: String, message: String },
}

impl UpstreamError {
    /// Whether cached content should be served instead (and clients told to come back).
    pub fn unavailable(&self) -> bool {
        !matches!(self, UpstreamError::Refused { .. })
    }
}

/// The most a token server's reply is read: a JSON object with a token or two.
const MAX_TOKEN_REPLY: usize = 1 << 20;

/// Why an upstream body could not be read whole.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("{what} is larger than the {limit}-byte limit")]
    TooLarge { what: &'static str, limit: usize },
    #[error("{what}: {source}")]
    Read {
        what: &'static str,
        source: reqwest::Error,
    },
}

/// A body read whole, but never more than `limit` bytes of it: Content-Length is only a
/// claim, and a chunked body has none.
pub async fn read_limited(
    resp: reqwest::Response,
    limit: usize,
    what: &'static str,
) -> Result<bytes::Bytes, BodyError> {
    use futures_util::StreamExt;
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge { what, limit });
    }
    let mut body = resp.bytes_stream();
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|source| BodyError::Read { what, source })?;
        if out.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge { what, limit });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out.into())
}

pub struct UpstreamClient {
    pub cfg: Upstream,
    http: reqwest::Client,
    cred: Option<Credential>,
    tokens: Mutex<HashMap<String, (String, Instant)>>,
    stats: Arc<ProxyStats>,
}

impl UpstreamClient {
    pub async fn new(cfg: Upstream, stats: Arc<ProxyStats>) -> UpstreamClient {
        let http = reqwest::Client::builder()
            .connect_timeout(cfg.connect_timeout)
            .read_timeout(cfg.timeout)
            // Redirects to blob storage (S3, CDNs) carry their own signature and must not
            // get our Authorization header, which reqwest drops across hosts.
            .redirect(reqwest::redirect::Policy::limited(5))
            .build()
            .expect("a reqwest client with rustls");
        let cred = match (&cfg.username, &cfg.password_env) {
            (Some(u), Some(var)) => match std::env::var(var) {
                Ok(p) => Some(Credential::Basic {
                    username: u.clone(),
                    password: teu_registry::Secret::new(p),
                }),
                Err(_) => {
                    tracing::warn!(upstream = %cfg.name, "{var} is not set: no credentials");
                    None
                }
            },
            _ if cfg.keychain => {
                let host = host_of(&cfg.url);
                // Credential helpers are processes: keep them off the async threads.
                let found = tokio::task::spawn_blocking(move || {
                    teu_registry::Keychain::from_env().get(&host)
                })
                .await
                .ok();
                match found {
                    Some(Ok(c)) => c,
                    Some(Err(e)) => {
                        tracing::warn!(upstream = %cfg.name, error = %e, "keychain lookup failed; pulling anonymously");
                        None
                    }
                    None => None,
                }
            }
            _ => None,
        };
        UpstreamClient {
            cfg,
            http,
            cred,
            tokens: Mutex::new(HashMap::new()),
            stats,
        }
    }

    fn err_connect(&self, e: &reqwest::Error) -> UpstreamError {
        if e.is_timeout() {
            return UpstreamError::Timeout {
                upstream: self.cfg.name.clone(),
                after: self.cfg.timeout,
            };
        }
        let mut message = e.to_string();
        let mut src = std::error::Error::source(e);
        while let Some(s) = src {
            message = format!("{message}: {s}");
            src = s.source();
        }
        UpstreamError::Connect {
            upstream: self.cfg.name.clone(),
            message,
        }
    }

    /// One request with a deadline on the response head. 401 is answered once (token or
    /// basic); 429 and 5xx become [`UpstreamError::Status`]; other statuses return.
    pub async fn send(
        &self,
        method: Method,
        repo: &str,
        path: &str,
        accept: Option<&str>,
        range: Option<String>,
    ) -> Result<reqwest::Response, UpstreamError> {
        let scope = format!("repository:{repo}:pull");
        let mut retried = false;
        loop {
            let url = format!("{}/v2/{repo}/{path}", self.cfg.url);
            let mut req = self.http.request(method.clone(), &url);
            if let Some(a) = accept {
                req = req.header(ACCEPT, a);
            }
            if let Some(r) = &range {
                req = req.header(RANGE, r);
            }
            if let Some(auth) = self.authorization(&scope) {
                req = req.header(AUTHORIZATION, auth);
            }
            let sent = tokio::time::timeout(self.cfg.timeout, req.send()).await;
            let resp = match sent {
                Err(_) => {
                    self.stats
                        .upstream(&self.cfg.name, method.as_str(), "timeout");
                    return Err(UpstreamError::Timeout {
                        upstream: self.cfg.name.clone(),
                        after: self.cfg.timeout,
                    });
                }
                Ok(Err(e)) => {
                    let kind = if e.is_timeout() { "timeout" } else { "error" };
                    self.stats.upstream(&self.cfg.name, method.as_str(), kind);
                    return Err(self.err_connect(&e));
                }
                Ok(Ok(r)) => r,
            };
            let status = resp.status();
            self.stats
                .upstream(&self.cfg.name, method.as_str(), status.as_str());
            if status == StatusCode::UNAUTHORIZED && !retried {
                retried = true;
                let challenge = resp
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(teu_registry::parse_challenge);
                match challenge {
                    Some(Challenge::Bearer { realm, service }) => {
                        self.fetch_token(&realm, service.as_deref(), &scope).await?;
                        continue;
                    }
                    Some(Challenge::Basic) if self.cred.is_some() => {
                        self.tokens.lock().unwrap().insert(
                            scope.clone(),
                            (self.basic().unwrap_or_default(), far_future()),
                        );
                        continue;
                    }
                    _ => {}
                }
            }
            if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                return Err(UpstreamError::Status {
                    upstream: self.cfg.name.clone(),
                    status: status.as_u16(),
                    retry_after: retry_after(resp.headers()),
                });
            }
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                return Err(UpstreamError::Refused {
                    upstream: self.cfg.name.clone(),
                    message: format!("{status} for {repo} (check the upstream's credentials)"),
                });
            }
            return Ok(resp);
        }
    }

    fn basic(&self) -> Option<String> {
        use base64::Engine as _;
        match &self.cred {
            Some(Credential::Basic { username, password }) => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{username}:{}", password.expose()))
            )),
            _ => None,
        }
    }

    fn authorization(&self, scope: &str) -> Option<String> {
        let tokens = self.tokens.lock().unwrap();
        match tokens.get(scope) {
            Some((t, until)) if Instant::now() < *until => Some(t.clone()),
            _ => None,
        }
    }

    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<(), UpstreamError> {
        let mut req = self.http.get(realm).query(&[("scope", scope)]);
        if let Some(s) = service {
            req = req.query(&[("service", s)]);
        }
        match &self.cred {
            Some(Credential::Basic { username, password }) => {
                req = req.basic_auth(username, Some(password.expose()));
            }
            Some(Credential::IdentityToken(t)) => {
                req = req.query(&[("refresh_token", t.expose())]);
            }
            None => {}
        }
        let refused = |message: String| UpstreamError::Refused {
            upstream: self.cfg.name.clone(),
            message,
        };
        let resp = match tokio::time::timeout(self.cfg.timeout, req.send()).await {
            Err(_) => {
                return Err(UpstreamError::Timeout {
                    upstream: self.cfg.name.clone(),
                    after: self.cfg.timeout,
                })
            }
            Ok(Err(e)) => return Err(self.err_connect(&e)),
            Ok(Ok(r)) => r,
        };
        self.stats
            .upstream(&self.cfg.name, "TOKEN", resp.status().as_str());
        if resp.status() == StatusCode::TOO_MANY_REQUESTS || resp.status().is_server_error() {
            return Err(UpstreamError::Status {
                upstream: self.cfg.name.clone(),
                status: resp.status().as_u16(),
                retry_after: retry_after(resp.headers()),
            });
        }
        if !resp.status().is_success() {
            return Err(refused(format!("token server answered {}", resp.status())));
        }
        let body = read_limited(resp, MAX_TOKEN_REPLY, "the token reply")
            .await
            .map_err(|e| refused(e.to_string()))?;
        let reply: TokenReply =
            serde_json::from_slice(&body).map_err(|e| refused(format!("token reply: {e}")))?;
        let token = reply
            .token
            .or(reply.access_token)
            .ok_or_else(|| refused("token reply without a token".into()))?;
        let life = Duration::from_secs(reply.expires_in.unwrap_or(60).max(10));
        self.tokens.lock().unwrap().insert(
            scope.to_string(),
            (format!("Bearer {token}"), Instant::now() + life - life / 10),
        );
        Ok(())
    }

    /// Count body bytes that arrived from this upstream.
    pub fn received(&self, n: usize) {
        self.stats
            .upstream_bytes
            .fetch_add(n as u64, Ordering::Relaxed);
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86400 * 365)
}

fn retry_after(h: &HeaderMap) -> Option<String> {
    h.get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn host_of(url: &str) -> String {
    let rest = url.split("://").nth(1).unwrap_or(url);
    rest.split('/').next().unwrap_or(rest).to_string()
}
