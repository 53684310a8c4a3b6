//! OCI value types for teu: [`Digest`], [`Descriptor`], [`MediaType`] constants,
//! [`Platform`], the image [`Manifest`], [`Index`] and [`ImageConfig`], and image
//! [`Reference`]s with skopeo-style transports.
//!
//! Why not `oci-spec`: teu rewrites configs and manifests of base images it did not make,
//! and must keep every field it does not understand (Docker's `Healthcheck`,
//! `container_config`, vendor extensions) byte-for-byte in meaning. These types carry an
//! `extra` map for unknown fields, use `BTreeMap` everywhere so serialization order never
//! depends on a hash seed, and keep the raw bytes next to the parsed form ([`Raw`]),
//! because a digest is over bytes, not over meaning.

mod digest;
mod platform;
mod reference;
pub mod time;
mod types;

pub use digest::{Digest, DigestError, Sha256Writer};
pub use platform::{Platform, PlatformError};
pub use reference::{
    containerd_reference, is_bare_hub_name, looks_like_path, valid_repository, Reference,
    ReferenceError, RegistryRef, Transport, CONTAINERD_DEFAULT_NAMESPACE, DOCKER_HUB,
};
pub use types::*;
