//! teu's client for the OCI distribution API: everything that talks to a registry.
//!
//! It owns authentication (the [`Keychain`] of Docker/podman auth files and credential
//! helpers, basic auth and the bearer-token flow with a per-scope token cache), the retry
//! policy (429, 5xx, resets, truncated bodies), manifests, blobs (verified streaming reads
//! that resume with `Range`), uploads (monolithic, chunked, cross-repository mounts), tag
//! listing, and the per-registry [`quirks`] table.
//!
//! Why hand-written: the Rust registry clients we looked at are async-only, read no
//! `config.json`/credential helpers, or buffer whole blobs; teu's push planner needs a
//! blocking, streaming client whose every byte is verified and counted, and whose upload
//! strategy bends to each registry's quirks. HTTP, TLS and JSON come from reqwest (rustls
//! with the system roots), serde and base64.

pub mod auth;
mod blobs;
mod client;
mod manifests;
pub mod quirks;
mod retry;
mod token;
mod verify;

pub use auth::{Credential, Keychain, Secret};
pub use blobs::{BlobReader, MountOutcome};
pub use client::{Client, ClientOptions, Counters, Traffic};
pub use manifests::{ManifestResponse, ACCEPT_MANIFESTS};
pub use quirks::Quirks;
pub use retry::RetryPolicy;
pub use verify::VerifyingReader;

/// Everything that can go wrong talking to a registry. Messages name the registry,
/// repository and digest or tag involved; they never hold a credential.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{what}: {message}")]
    Http { what: String, message: String },
    #[error("{what}: the registry answered {status}{detail}")]
    Status {
        what: String,
        status: u16,
        detail: String,
    },
    #[error("{what}: not found{detail}")]
    NotFound { what: String, detail: String },
    #[error("{what}: access denied ({status}){detail}; log in with `teu login {registry}` or check the credentials in your Docker/podman auth file")]
    Denied {
        what: String,
        registry: String,
        status: u16,
        detail: String,
    },
    #[error("{what}: gave up after {attempts} attempt{}: {last}", if *attempts == 1 { "" } else { "s" })]
    Exhausted {
        what: String,
        attempts: u32,
        last: String,
    },
    #[error("{what}: {message}")]
    Invalid { what: String, message: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl RegistryError {
    /// The registry answered that the repository, manifest or blob does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, RegistryError::NotFound { .. })
    }
}

pub(crate) fn invalid(what: impl Into<String>, message: impl Into<String>) -> RegistryError {
    RegistryError::Invalid {
        what: what.into(),
        message: message.into(),
    }
}
