//! `teu serve`: an OCI registry (distribution spec v1.1) on local disk or S3-compatible
//! object storage, and a pull-through cache of upstream registries.
//!
//! What this crate owns: the HTTP API ([`http`]), the registry's rules and storage layout
//! ([`registry`]), the storage trait and its filesystem and `object_store` backends
//! ([`storage`]), htpasswd auth, Prometheus metrics, garbage collection ([`gc`]), the
//! config file ([`config`]) and the pull-through cache ([`proxy`]): routing of
//! containerd's `?ns=`, path prefixes and Docker's `registry-mirrors` to `[[upstream]]`
//! registries, one coalesced and digest-checked upstream fetch per blob, tag TTLs with
//! HEAD revalidation, stale answers when an upstream fails, and the LRU size bound. The
//! `teu` CLI only parses flags and calls [`run`] or [`gc::collect`].
//!
//! Built on tokio, axum (HTTP/1.1), axum-server with rustls (TLS), `object_store` (S3),
//! reqwest (upstreams), bcrypt and tracing; upstream credentials come from `teu-registry`'s
//! keychain and its challenge parser. Its blocking client with built-in retries is not used
//! for upstream requests: a failing upstream must be answered from the cache at once, not
//! retried with backoff while clients wait. Hand-written, and why:
//! - the path dispatcher: repository names contain slashes, so `/v2/<name>/blobs/<d>`
//!   cannot be split by a path router; a few `rsplit_once` calls are clearer;
//! - digests (sha256 and sha512), because `teu-oci` deliberately knows only sha256;
//! - the tag grammar, instead of a regex engine (repository names use teu-oci's rule);
//! - the Prometheus text output: a dozen counters do not need a metrics framework;
//! - request coalescing (blob fills, manifest lookups): a watch channel per key is all
//!   a single-flight needs, and the blob fill must also follow a spool file as it grows.

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
