//! `teu-serve.toml`: every setting `teu serve` has, as a file. Unknown keys are errors, so
//! a typo never silently leaves a server open or on the wrong storage. Command-line flags
//! are applied on top by the caller (flags win).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `ADDR:PORT` to listen on (default `127.0.0.1:5000`).
    pub listen: Option<SocketAddr>,
    /// A directory, or `s3://BUCKET/PREFIX` (default `$TEU_HOME/registry`).
    pub storage: Option<String>,
    /// Refuse every write (405 UNSUPPORTED).
    #[serde(default)]
    pub read_only: bool,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    #[serde(default)]
    pub auth: AuthConfig,
    #[serde(default)]
    pub s3: S3Config,
    /// Registries this server proxies and caches (pull-through).
    #[serde(default)]
    pub upstream: Vec<UpstreamConfig>,
    #[serde(default)]
    pub cache: CacheConfig,
}

/// One proxied registry: `[[upstream]]` in `teu-serve.toml`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// How clients name it: the path prefix (`docker.io/library/alpine`) and containerd's
    /// `?ns=`. The upstream named `docker.io` also answers Docker's `registry-mirrors`.
    pub name: String,
    /// `https://registry-1.docker.io`, `http://127.0.0.1:5001`.
    pub url: String,
    /// How long a tag is served from the cache before one HEAD revalidates it (`5m`).
    #[serde(default)]
    pub tag_ttl: Option<String>,
    /// Connecting to the upstream may take this long (`5s`).
    #[serde(default)]
    pub connect_timeout: Option<String>,
    /// The upstream must answer (and keep sending a body) within this (`30s`).
    #[serde(default)]
    pub timeout: Option<String>,
    /// Look the upstream's host up in teu's keychain (Docker and podman auth files,
    /// credential helpers); default true.
    #[serde(default)]
    pub keychain: Option<bool>,
    /// Explicit credentials instead of the keychain; the password is read from the named
    /// environment variable so it never sits in the file.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password_env: Option<String>,
}

/// The pull-through cache's bound.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// Most bytes of proxied blobs to keep (`20GiB`, `500MB`); least recently used go first.
    /// Pushed content is never evicted. Default: no bound.
    pub max_size: Option<String>,
    /// Where fills in progress spool (default: the system temp directory).
    pub spool_dir: Option<PathBuf>,
}

/// An upstream after validation.
#[derive(Clone, Debug)]
pub struct Upstream {
    pub name: String,
    pub url: String,
    pub tag_ttl: Duration,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    pub keychain: bool,
    pub username: Option<String>,
    pub password_env: Option<String>,
}

/// `500ms`, `30s`, `5m`, `2h`, `1d`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    Some(match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        "d" => Duration::from_secs(n * 86400),
        _ => return None,
    })
}

/// `1000`, `500MB`, `20GiB` (KB/MB/GB are powers of 1000, KiB/MiB/GiB of 1024).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let m: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" => 1000,
        "MB" => 1000 * 1000,
        "GB" => 1000 * 1000 * 1000,
        "TB" => 1000 * 1000 * 1000 * 1000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(m)
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// An htpasswd file with bcrypt entries (`htpasswd -B`).
    pub htpasswd: Option<PathBuf>,
    /// What a client without credentials may do.
    pub anonymous: Option<Anonymous>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Anonymous {
    /// Nothing: every request needs credentials.
    None,
    /// Pull (GET/HEAD) without credentials; push needs them.
    Read,
    /// Everything (the default without `htpasswd`, and only allowed on loopback then).
    Write,
}

/// Object storage settings; each falls back to the usual `AWS_*` variable.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// `AWS_ENDPOINT_URL`
    pub endpoint: Option<String>,
    /// `AWS_REGION` (default us-east-1)
    pub region: Option<String>,
    /// `AWS_ACCESS_KEY_ID`
    pub access_key_id: Option<String>,
    /// `AWS_SECRET_ACCESS_KEY`
    pub secret_access_key: Option<String>,
    /// Allow plain HTTP to a non-loopback endpoint (loopback is always allowed).
    #[serde(default)]
    pub allow_http: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

/// Where the registry keeps its data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorageSpec {
    Dir(PathBuf),
    S3 { bucket: String, prefix: String },
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source,
        })
    }

    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 5000)))
    }

    pub fn storage_spec(&self) -> Result<StorageSpec, ConfigError> {
        match &self.storage {
            None => Ok(StorageSpec::Dir(
                teu_store::Store::default_root().join("registry"),
            )),
            Some(s) => parse_storage(s),
        }
    }

    /// What anonymous clients may do, after checking the combination is safe.
    pub fn anonymous(&self) -> Result<Anonymous, ConfigError> {
        let has_users = self.auth.htpasswd.is_some();
        let anon = self.auth.anonymous.unwrap_or(if has_users {
            Anonymous::None
        } else {
            Anonymous::Write
        });
        if !has_users && anon != Anonymous::Write {
            return Err(ConfigError::Invalid(
                "anonymous access is restricted but no htpasswd file is set: nobody could push"
                    .into(),
            ));
        }
        if !has_users && self.auth.anonymous.is_none() && !self.listen_addr().ip().is_loopback() {
            return Err(ConfigError::Invalid(format!(
                "refusing anonymous pushes on the non-loopback address {}: set an htpasswd file, \
                 or anonymous = \"write\" under [auth] to mean it",
                self.listen_addr()
            )));
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(ConfigError::Invalid(
                "TLS needs both a certificate and a key".into(),
            ));
        }
        Ok(anon)
    }
}

impl Config {
    /// The `[[upstream]]` entries, checked: unique valid names, http(s) URLs, durations.
    pub fn upstreams(&self) -> Result<Vec<Upstream>, ConfigError> {
        let mut out: Vec<Upstream> = Vec::new();
        for (i, u) in self.upstream.iter().enumerate() {
            let at = format!("upstream[{i}]");
            if !crate::names::valid_repo(&u.name) || u.name.contains('/') {
                return Err(ConfigError::Invalid(format!(
                    "{at}.name {:?}: one lowercase repository-name component (docker.io, ghcr.io, quay.io)",
                    u.name
                )));
            }
            // Requests naming these are routed to the upstream named docker.io, so an
            // upstream of this name could never be reached.
            if matches!(
                u.name.as_str(),
                "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com"
            ) {
                return Err(ConfigError::Invalid(format!(
                    "{at}.name {:?}: Docker Hub's upstream is named \"docker.io\" (its other host names are aliases of it)",
                    u.name
                )));
            }
            if out.iter().any(|o| o.name == u.name) {
                return Err(ConfigError::Invalid(format!(
                    "{at}.name {:?}: named twice",
                    u.name
                )));
            }
            let url = u.url.trim_end_matches('/').to_string();
            if !(url.starts_with("http://") || url.starts_with("https://"))
                || url.split("://").nth(1).is_none_or(str::is_empty)
            {
                return Err(ConfigError::Invalid(format!(
                    "{at}.url {:?}: expected http://HOST[:PORT] or https://HOST[:PORT]",
                    u.url
                )));
            }
            let dur = |field: &str, v: &Option<String>, default: Duration| match v {
                None => Ok(default),
                Some(s) => parse_duration(s).ok_or_else(|| {
                    ConfigError::Invalid(format!(
                        "{at}.{field} {s:?}: expected a duration such as 500ms, 30s, 5m, 1h"
                    ))
                }),
            };
            if u.password_env.is_some() != u.username.is_some() {
                return Err(ConfigError::Invalid(format!(
                    "{at}: username and password_env go together"
                )));
            }
            // Pulling anonymously instead would fail later and far from the cause (401s,
            // rate limits), or quietly see less than the configured user does.
            if let Some(var) = &u.password_env {
                if std::env::var_os(var).is_none() {
                    return Err(ConfigError::Invalid(format!(
                        "{at}.password_env: the environment variable {var} is not set"
                    )));
                }
            }
            // A zero timeout would fail every request at once.
            let nonzero = |field: &str, d: Duration| {
                if d.is_zero() {
                    Err(ConfigError::Invalid(format!(
                        "{at}.{field}: must be more than 0"
                    )))
                } else {
                    Ok(d)
                }
            };
            out.push(Upstream {
                name: u.name.clone(),
                url,
                tag_ttl: dur("tag_ttl", &u.tag_ttl, Duration::from_secs(300))?,
                connect_timeout: nonzero(
                    "connect_timeout",
                    dur(
                        "connect_timeout",
                        &u.connect_timeout,
                        Duration::from_secs(5),
                    )?,
                )?,
                timeout: nonzero(
                    "timeout",
                    dur("timeout", &u.timeout, Duration::from_secs(30))?,
                )?,
                keychain: u.keychain.unwrap_or(true),
                username: u.username.clone(),
                password_env: u.password_env.clone(),
            });
        }
        Ok(out)
    }

    /// `[cache] max_size` in bytes, checked.
    pub fn cache_max_bytes(&self) -> Result<Option<u64>, ConfigError> {
        match &self.cache.max_size {
            None => Ok(None),
            Some(s) => parse_size(s).map(Some).ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "cache.max_size {s:?}: expected a size such as 500MB or 20GiB"
                ))
            }),
        }
    }
}

pub fn parse_storage(s: &str) -> Result<StorageSpec, ConfigError> {
    if let Some(rest) = s.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(ConfigError::Invalid(format!(
                "storage {s:?}: no bucket name"
            )));
        }
        return Ok(StorageSpec::S3 {
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
        });
    }
    if s.contains("://") {
        return Err(ConfigError::Invalid(format!(
            "storage {s:?}: only a directory or s3://BUCKET/PREFIX is supported"
        )));
    }
    Ok(StorageSpec::Dir(PathBuf::from(s)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_errors() {
        assert!(toml::from_str::<Config>("listn = \"127.0.0.1:1\"").is_err());
        assert!(toml::from_str::<Config>("[auth]\nhtpassword = \"x\"").is_err());
        let c: Config = toml::from_str("storage = \"s3://b/p/q\"\n[s3]\nregion = \"r\"").unwrap();
        assert_eq!(
            c.storage_spec().unwrap(),
            StorageSpec::S3 {
                bucket: "b".into(),
                prefix: "p/q".into()
            }
        );
    }

    #[test]
    fn upstreams_are_checked_by_field() {
        let c: Config = toml::from_str(
            "[[upstream]]\nname = \"docker.io\"\nurl = \"http://127.0.0.1:5001/\"\ntag_ttl = \"1s\"",
        )
        .unwrap();
        let u = &c.upstreams().unwrap()[0];
        assert_eq!(u.url, "http://127.0.0.1:5001");
        assert_eq!(u.tag_ttl, Duration::from_secs(1));
        for (bad, field) in [
            ("name = \"Docker\"\nurl = \"http://x\"", "upstream[0].name"),
            ("name = \"d\"\nurl = \"ftp://x\"", "upstream[0].url"),
            (
                "name = \"d\"\nurl = \"http://x\"\ntag_ttl = \"5 minutes\"",
                "upstream[0].tag_ttl",
            ),
            (
                "name = \"d\"\nurl = \"http://x\"\ntimeout = \"x\"",
                "upstream[0].timeout",
            ),
            (
                "name = \"d\"\nurl = \"http://x\"\ntimeout = \"0s\"",
                "upstream[0].timeout: must be more than 0",
            ),
            (
                "name = \"d\"\nurl = \"http://x\"\nconnect_timeout = \"0ms\"",
                "upstream[0].connect_timeout: must be more than 0",
            ),
            (
                "name = \"index.docker.io\"\nurl = \"http://x\"",
                "upstream[0].name \"index.docker.io\": Docker Hub's upstream is named \"docker.io\"",
            ),
            (
                "name = \"registry-1.docker.io\"\nurl = \"http://x\"",
                "upstream[0].name",
            ),
            (
                "name = \"d\"\nurl = \"http://x\"\nusername = \"u\"\npassword_env = \"TEU_TEST_CONFIG_NEVER_SET\"",
                "upstream[0].password_env: the environment variable TEU_TEST_CONFIG_NEVER_SET is not set",
            ),
        ] {
            let c: Config = toml::from_str(&format!("[[upstream]]\n{bad}")).unwrap();
            let e = c.upstreams().unwrap_err().to_string();
            assert!(e.contains(field), "{e}");
        }
        assert!(toml::from_str::<Config>(
            "[[upstream]]\nname = \"d\"\nurl = \"http://x\"\nttl = \"1s\""
        )
        .is_err());
        let c: Config = toml::from_str("[cache]\nmax_size = \"2GiB\"").unwrap();
        assert_eq!(c.cache_max_bytes().unwrap(), Some(2 << 30));
        let c: Config = toml::from_str("[cache]\nmax_size = \"lots\"").unwrap();
        assert!(c
            .cache_max_bytes()
            .unwrap_err()
            .to_string()
            .contains("cache.max_size"));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
    }

    #[test]
    fn anonymous_push_only_on_loopback_unless_asked() {
        let c: Config = toml::from_str("listen = \"0.0.0.0:5000\"").unwrap();
        assert!(c.anonymous().is_err());
        let c: Config =
            toml::from_str("listen = \"0.0.0.0:5000\"\n[auth]\nanonymous = \"write\"").unwrap();
        assert_eq!(c.anonymous().unwrap(), Anonymous::Write);
    }
}
