//! Basic auth against an htpasswd file of bcrypt entries, and what anonymous clients may do.
//!
//! bcrypt is slow on purpose (~0.1 s per check at cost 10), far too slow to pay on every
//! request of a pull, so a credential that verified once is remembered, keyed by a SHA-256
//! of user and password (never the password itself), until the server restarts.
//! Credentials are never logged; only the user name appears in access logs.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;

use axum::http::{HeaderMap, Method, StatusCode};
use base64::Engine as _;
use sha2::Digest as _;

use crate::config::Anonymous;
use crate::error::ApiError;

pub struct Auth {
    users: HashMap<String, String>,
    anonymous: Anonymous,
    verified: Mutex<HashSet<[u8; 32]>>,
}

#[derive(Debug, thiserror::Error)]
#[error("htpasswd file {path}: {msg}")]
pub struct HtpasswdError {
    path: String,
    msg: String,
}

impl Auth {
    pub fn new(htpasswd: Option<&Path>, anonymous: Anonymous) -> Result<Auth, HtpasswdError> {
        let mut users = HashMap::new();
        if let Some(p) = htpasswd {
            let err = |msg: String| HtpasswdError {
                path: p.display().to_string(),
                msg,
            };
            let text = std::fs::read_to_string(p).map_err(|e| err(e.to_string()))?;
            for (n, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let (user, hash) = line
                    .split_once(':')
                    .ok_or_else(|| err(format!("line {}: expected user:hash", n + 1)))?;
                if !(hash.starts_with("$2y$")
                    || hash.starts_with("$2b$")
                    || hash.starts_with("$2a$"))
                {
                    return Err(err(format!(
                        "line {}: user {user:?} does not have a bcrypt hash (create it with htpasswd -B)",
                        n + 1
                    )));
                }
                users.insert(user.to_string(), hash.to_string());
            }
            if users.is_empty() {
                return Err(err("no users".to_string()));
            }
        }
        Ok(Auth {
            users,
            anonymous,
            verified: Mutex::new(HashSet::new()),
        })
    }

    /// The authenticated user (`None`: anonymous), or the 401 to answer.
    pub fn check(
        &self,
        method: &Method,
        is_base: bool,
        headers: &HeaderMap,
    ) -> Result<Option<String>, ApiError> {
        let challenge = || {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
                "authentication required",
            )
            .with_header("WWW-Authenticate", "Basic realm=\"teu\"".to_string())
        };
        let given = headers
            .get("authorization")
            .and_then(|h| h.to_str().ok())
            .filter(|h| !is_empty_basic(h));
        if let Some(h) = given {
            if !self.users.is_empty() {
                let user = self.verify(h).ok_or_else(challenge)?;
                return Ok(Some(user));
            }
        }
        let read = matches!(*method, Method::GET | Method::HEAD);
        let allowed = match self.anonymous {
            Anonymous::Write => true,
            // The version check answers 401 so that clients learn credentials are wanted
            // (and send them with a push); anonymous pulls go on without them.
            Anonymous::Read => read && !is_base,
            Anonymous::None => false,
        };
        if allowed {
            Ok(None)
        } else {
            Err(challenge())
        }
    }

    fn verify(&self, header: &str) -> Option<String> {
        let b64 = header
            .strip_prefix("Basic ")
            .or_else(|| header.strip_prefix("basic "))?;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let (user, pass) = raw.split_once(':')?;
        let key: [u8; 32] = sha2::Sha256::digest(raw.as_bytes()).into();
        if self.verified.lock().unwrap().contains(&key) {
            return Some(user.to_string());
        }
        let hash = self.users.get(user)?;
        if bcrypt::verify(pass, hash).unwrap_or(false) {
            self.verified.lock().unwrap().insert(key);
            Some(user.to_string())
        } else {
            None
        }
    }
}

/// `Basic Og==` (an empty user and password), which some clients send after a challenge
/// when they have no credentials: anonymous, not a failed login.
fn is_empty_basic(h: &str) -> bool {
    matches!(h.trim(), "Basic Og==" | "basic Og==" | "Basic" | "Basic ")
}
