//! `teu serve`: an OCI registry (distribution spec v1.1) on local disk or S3-compatible
//! object storage.
//!
//! What this crate owns: the HTTP API ([`http`]), the registry's rules and storage layout
//! ([`registry`]), the storage trait and its filesystem and `object_store` backends
//! ([`storage`]), htpasswd auth, Prometheus metrics, garbage collection ([`gc`]) and the
//! config file ([`config`]). The `teu` CLI only parses flags and calls [`run`] or
//! [`gc::collect`].
//!
//! Built on tokio, axum (HTTP/1.1), axum-server with rustls (TLS), `object_store` (S3),
//! bcrypt and tracing. Hand-written, and why:
//! - the path dispatcher: repository names contain slashes, so `/v2/<name>/blobs/<d>`
//!   cannot be split by a path router; a few `rsplit_once` calls are clearer;
//! - digests (sha256 and sha512), because `teu-oci` deliberately knows only sha256;
//! - the tag grammar, instead of a regex engine (repository names use teu-oci's rule);
//! - the Prometheus text output: four metric families do not need a metrics framework.

pub mod config;
pub mod digest;
pub mod error;
pub mod gc;
pub mod http;
pub mod names;
pub mod proxy;
pub mod registry;
pub mod server;
pub mod storage;

pub use config::Config;
pub use server::{init_logging, open_storage, run, runtime, ServeError};
