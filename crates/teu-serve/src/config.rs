//! `teu-serve.toml`: every setting `teu serve` has, as a file. Unknown keys are errors, so
//! a typo never silently leaves a server open or on the wrong storage. Command-line flags
//! are applied on top by the caller (flags win).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

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
    fn anonymous_push_only_on_loopback_unless_asked() {
        let c: Config = toml::from_str("listen = \"0.0.0.0:5000\"").unwrap();
        assert!(c.anonymous().is_err());
        let c: Config =
            toml::from_str("listen = \"0.0.0.0:5000\"\n[auth]\nanonymous = \"write\"").unwrap();
        assert_eq!(c.anonymous().unwrap(), Anonymous::Write);
    }
}
