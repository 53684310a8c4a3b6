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
mod error;
mod manifests;
pub mod quirks;
mod retry;
mod token;
mod verify;

pub use auth::{Credential, Keychain, Secret};
pub use blobs::{cancel_open_uploads, BlobReader, MountOutcome};
pub use client::{Client, ClientOptions, Counters, Traffic};
pub(crate) use error::invalid;
pub use error::RegistryError;
pub use manifests::{ManifestResponse, ACCEPT_MANIFESTS};
pub use quirks::Quirks;
pub use retry::RetryPolicy;
// teu serve's pull-through cache speaks to upstreams with its own async client but
// answers their challenges the same way.
pub use token::{parse_challenge, Challenge, TokenReply};
pub use verify::VerifyingReader;
