//! The keychain: where credentials for a registry come from, in the order Docker and
//! podman users expect, and `teu login`/`teu logout` writing Docker's format.
//!
//! Files searched, first match wins: `$REGISTRY_AUTH_FILE`, podman's
//! `$XDG_RUNTIME_DIR/containers/auth.json` and `~/.config/containers/auth.json`, then
//! Docker's `$DOCKER_CONFIG/config.json` (default `~/.docker/config.json`). In each file a
//! `credHelpers` entry for the registry wins over `auths`, and `credsStore` is asked last.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::{invalid, RegistryError};

/// A secret string: never shown by `Debug` and has no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Credentials for one registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// A user name and password (or access token used as a password).
    Basic { username: String, password: Secret },
    /// An OAuth2 refresh token (Docker's `identitytoken`, a helper's `<token>` user).
    IdentityToken(Secret),
}

/// The Docker Hub key Docker writes in `auths` and passes to helpers.
pub const DOCKER_HUB_AUTH_KEY: &str = "https://index.docker.io/v1/";

/// Where credentials are looked up; built from the environment by [`Keychain::from_env`].
#[derive(Clone, Debug, Default)]
pub struct Keychain {
    pub files: Vec<PathBuf>,
    /// The file `teu login` writes (Docker's config.json).
    pub docker_config: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct AuthFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default)]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default)]
    creds_store: Option<String>,
}

#[derive(Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

/// The registry host an `auths` key names: `https://index.docker.io/v1/` → `docker.io`.
fn normalize_key(key: &str) -> String {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = k.split('/').next().unwrap_or(k);
    canonical_registry(host)
}

fn canonical_registry(host: &str) -> String {
    match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_string()
        }
        h => h.to_string(),
    }
}

/// The server name a credential helper is asked about.
fn helper_server(registry: &str) -> String {
    if registry == "docker.io" {
        DOCKER_HUB_AUTH_KEY.to_string()
    } else {
        registry.to_string()
    }
}

impl Keychain {
    pub fn from_env() -> Keychain {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let mut files = Vec::new();
        if let Some(f) = std::env::var_os("REGISTRY_AUTH_FILE") {
            files.push(PathBuf::from(f));
        }
        if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR") {
            files.push(PathBuf::from(d).join("containers/auth.json"));
        }
        if let Some(h) = &home {
            files.push(h.join(".config/containers/auth.json"));
        }
        let docker_dir = std::env::var_os("DOCKER_CONFIG")
            .map(PathBuf::from)
            .or_else(|| home.map(|h| h.join(".docker")));
        let docker_config = docker_dir.map(|d| d.join("config.json"));
        files.extend(docker_config.clone());
        Keychain {
            files,
            docker_config,
        }
    }

    /// The credential for `registry` (as in a reference: `docker.io`, `host:5000`), if any.
    pub fn get(&self, registry: &str) -> Result<Option<Credential>, RegistryError> {
        let registry = canonical_registry(registry);
        for path in &self.files {
            let Some(file) = read_auth_file(path)? else {
                continue;
            };
            if let Some((_, helper)) = file
                .cred_helpers
                .iter()
                .find(|(k, _)| normalize_key(k) == registry)
            {
                return helper_get(helper, &registry);
            }
            if let Some((key, entry)) = file
                .auths
                .iter()
                .find(|(k, _)| normalize_key(k) == registry)
            {
                let what = format!("{}: auths.{key:?}", path.display());
                if let Some(c) = entry_credential(entry, &what)? {
                    return Ok(Some(c));
                }
            }
            if let Some(store) = &file.creds_store {
                if let Some(c) = helper_get(store, &registry)? {
                    return Ok(Some(c));
                }
            }
        }
        Ok(None)
    }

    /// Store credentials as `docker login` does: through the credential helper the Docker
    /// config names for this registry (or its `credsStore`), else base64 in `auths`.
    /// Returns where they went, for the message.
    pub fn login(
        &self,
        registry: &str,
        username: &str,
        password: &Secret,
    ) -> Result<String, RegistryError> {
        let path = self.login_file()?;
        let registry = canonical_registry(registry);
        let mut doc = read_json(&path)?;
        let helper = configured_helper(&doc, &registry);
        let key = helper_server(&registry);
        if let Some(h) = helper {
            let input = serde_json::json!({"ServerURL": key, "Username": username, "Secret": password.expose()});
            run_helper(&h, "store", &input.to_string())?;
            return Ok(format!("credential helper docker-credential-{h}"));
        }
        let auths = doc
            .entry("auths")
            .or_insert_with(|| Value::Object(Map::new()));
        let Some(auths) = auths.as_object_mut() else {
            return Err(invalid(
                path.display().to_string(),
                "field auths is not an object",
            ));
        };
        auths.retain(|k, _| normalize_key(k) != registry);
        let token = base64::engine::general_purpose::STANDARD
            .encode(format!("{username}:{}", password.expose()));
        auths.insert(key, serde_json::json!({ "auth": token }));
        write_json(&path, &doc)?;
        Ok(path.display().to_string())
    }

    /// Forget the credentials for `registry`; false when there were none.
    pub fn logout(&self, registry: &str) -> Result<bool, RegistryError> {
        let path = self.login_file()?;
        let registry = canonical_registry(registry);
        let mut doc = read_json(&path)?;
        if let Some(h) = configured_helper(&doc, &registry) {
            run_helper(&h, "erase", &helper_server(&registry))?;
            return Ok(true);
        }
        let mut removed = false;
        if let Some(auths) = doc.get_mut("auths").and_then(Value::as_object_mut) {
            let before = auths.len();
            auths.retain(|k, _| normalize_key(k) != registry);
            removed = auths.len() != before;
        }
        if removed {
            write_json(&path, &doc)?;
        }
        Ok(removed)
    }

    fn login_file(&self) -> Result<PathBuf, RegistryError> {
        self.docker_config.clone().ok_or_else(|| {
            invalid(
                "docker config",
                "neither $DOCKER_CONFIG nor $HOME is set, so there is no config.json to write",
            )
        })
    }
}

fn configured_helper(doc: &Map<String, Value>, registry: &str) -> Option<String> {
    doc.get("credHelpers")
        .and_then(Value::as_object)
        .and_then(|m| {
            m.iter()
                .find(|(k, _)| normalize_key(k) == registry)
                .and_then(|(_, v)| v.as_str().map(str::to_string))
        })
        .or_else(|| {
            doc.get("credsStore")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
}

fn read_auth_file(path: &Path) -> Result<Option<AuthFile>, RegistryError> {
    match std::fs::read(path) {
        Ok(b) if b.iter().all(u8::is_ascii_whitespace) => Ok(None),
        Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
            invalid(
                path.display().to_string(),
                format!("is not a valid auth file: {e}"),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(RegistryError::Io {
            what: path.display().to_string(),
            source,
        }),
    }
}

fn read_json(path: &Path) -> Result<Map<String, Value>, RegistryError> {
    match std::fs::read(path) {
        Ok(b) if b.iter().all(u8::is_ascii_whitespace) => Ok(Map::new()),
        Ok(b) => serde_json::from_slice(&b).map_err(|e| {
            invalid(
                path.display().to_string(),
                format!("is not a JSON object: {e}"),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Map::new()),
        Err(source) => Err(RegistryError::Io {
            what: path.display().to_string(),
            source,
        }),
    }
}

/// Write the config atomically and private (it may hold base64 passwords).
fn write_json(path: &Path, doc: &Map<String, Value>) -> Result<(), RegistryError> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| RegistryError::Io {
        what: path.display().to_string(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let tmp = dir.join(format!(".config.json.teu-{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    let mut bytes = serde_json::to_vec_pretty(doc).expect("JSON values serialize");
    bytes.push(b'\n');
    f.write_all(&bytes).and_then(|_| f.sync_all()).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

fn entry_credential(entry: &AuthEntry, what: &str) -> Result<Option<Credential>, RegistryError> {
    if let Some(t) = entry.identitytoken.as_deref().filter(|t| !t.is_empty()) {
        return Ok(Some(Credential::IdentityToken(Secret::new(t))));
    }
    if let Some(a) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(a.trim())
            .map_err(|_| invalid(what, "field auth is not base64"))?;
        let s = String::from_utf8(decoded).map_err(|_| invalid(what, "field auth is not UTF-8"))?;
        let (u, p) = s
            .split_once(':')
            .ok_or_else(|| invalid(what, "field auth does not decode to user:password"))?;
        return Ok(Some(Credential::Basic {
            username: u.to_string(),
            password: Secret::new(p),
        }));
    }
    match (&entry.username, &entry.password) {
        (Some(u), Some(p)) if !u.is_empty() => Ok(Some(Credential::Basic {
            username: u.clone(),
            password: Secret::new(p.clone()),
        })),
        _ => Ok(None),
    }
}

fn helper_get(helper: &str, registry: &str) -> Result<Option<Credential>, RegistryError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Reply {
        username: String,
        secret: String,
    }
    let out = match run_helper(helper, "get", &helper_server(registry)) {
        Ok(out) => out,
        // Helpers say "credentials not found in native keychain" with a failure status.
        Err(RegistryError::Status { detail, .. }) if detail.contains("not found") => {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    let r: Reply = serde_json::from_slice(&out).map_err(|e| {
        invalid(
            format!("docker-credential-{helper} get {registry}"),
            format!("printed something that is not credentials JSON: {e}"),
        )
    })?;
    if r.username == "<token>" {
        return Ok(Some(Credential::IdentityToken(Secret::new(r.secret))));
    }
    Ok(Some(Credential::Basic {
        username: r.username,
        password: Secret::new(r.secret),
    }))
}

fn run_helper(helper: &str, verb: &str, input: &str) -> Result<Vec<u8>, RegistryError> {
    let program = format!("docker-credential-{helper}");
    let what = format!("{program} {verb}");
    let mut child = Command::new(&program)
        .arg(verb)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| invalid(&what, format!("cannot run the credential helper: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .map_err(|source| RegistryError::Io {
                what: what.clone(),
                source,
            })?;
    }
    let out = child
        .wait_with_output()
        .map_err(|source| RegistryError::Io {
            what: what.clone(),
            source,
        })?;
    if !out.status.success() {
        // Helpers print their own message; it holds no secret (the secret is on stdout).
        let msg = String::from_utf8_lossy(&out.stdout).trim().to_string()
            + String::from_utf8_lossy(&out.stderr).trim();
        return Err(RegistryError::Status {
            what,
            status: out.status.code().unwrap_or(-1) as u16,
            detail: format!(": {msg}"),
        });
    }
    Ok(out.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(dir: &Path, body: &str) -> Keychain {
        let p = dir.join("config.json");
        std::fs::write(&p, body).unwrap();
        Keychain {
            files: vec![p.clone()],
            docker_config: Some(p),
        }
    }

    #[test]
    fn auths_decode_and_docker_hub_keys_normalize() {
        let d = tempfile::tempdir().unwrap();
        let k = chain(
            d.path(),
            r#"{"auths":{"https://index.docker.io/v1/":{"auth":"dXNlcjpwYTpzcw=="},"http://reg.local:5000":{"username":"u","password":"p"}}}"#,
        );
        assert_eq!(
            k.get("docker.io").unwrap(),
            Some(Credential::Basic {
                username: "user".into(),
                password: Secret::new("pa:ss")
            })
        );
        assert!(
            matches!(k.get("reg.local:5000").unwrap(), Some(Credential::Basic { username, .. }) if username == "u")
        );
        assert_eq!(k.get("other.io").unwrap(), None);
    }

    #[test]
    fn secrets_do_not_show_in_debug() {
        let c = Credential::Basic {
            username: "u".into(),
            password: Secret::new("hunter2"),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn login_then_logout_round_trips_and_keeps_other_fields() {
        let d = tempfile::tempdir().unwrap();
        let k = chain(d.path(), r#"{"auths":{},"psFormat":"x"}"#);
        k.login("localhost:5000", "alice", &Secret::new("s3cret"))
            .unwrap();
        assert!(
            matches!(k.get("localhost:5000").unwrap(), Some(Credential::Basic { username, password }) if username == "alice" && password.expose() == "s3cret")
        );
        let text = std::fs::read_to_string(d.path().join("config.json")).unwrap();
        assert!(text.contains("psFormat"), "{text}");
        assert!(k.logout("localhost:5000").unwrap());
        assert_eq!(k.get("localhost:5000").unwrap(), None);
        assert!(!k.logout("localhost:5000").unwrap());
    }
}
