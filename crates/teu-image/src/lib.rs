//! One image model, many sources and sinks.
//!
//! An [`Image`] is what an image is: a manifest and a config (kept as raw bytes next to
//! their parsed form, since digests are over bytes) plus layer descriptors, each of which
//! knows where its bytes can be read ([`BlobSource`]): teu's store, an OCI layout, later a
//! registry. Nothing is copied until a sink needs it, and a sink first asks which blobs it
//! lacks ([`sink`]).
//!
//! - [`blob`]: blob sources.
//! - [`layout`]: OCI image layouts, as a source (bases) and as a sink.
//! - [`archive`]: `oci-archive` and `docker-archive` sinks; [`archive_source`] reads them.
//! - [`maintain`]: `teu cache du | gc | verify`, and the roots that keep outputs' blobs.
//! - [`registry`]: images in a registry, as a source (bases, copies).
//! - [`push`]: the push planner (skip, mount, stream, upload).
//! - [`sink`]: writing an image to any output reference, atomically.
//! - [`build`]: a [`teu_spec::Spec`] to an [`Image`], through the layer cache and pipeline.

pub mod archive;
pub mod archive_source;
pub mod blob;
pub mod build;
mod cached;
pub mod diff;
pub mod format;
pub mod image;
pub mod layout;
pub mod maintain;
pub mod push;
pub mod registry;
pub mod resolve;
pub mod sink;
pub mod source;
mod time;

pub use blob::{BlobSource, StoreSource};
pub use build::{
    build, lock_bases, BuildError, BuildOptions, BuildReport, LayerReport, PlatformReport,
};
pub use image::{Artifact, Image, ImageIndex, Layer};
pub use sink::{write_output, OutputReport};
pub use time::rfc3339;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {message}")]
    Invalid { what: String, message: String },
    #[error(
        "blob {digest} from {source_name} does not match its digest (got {actual}, {size} bytes)"
    )]
    Corrupt {
        digest: teu_oci::Digest,
        actual: teu_oci::Digest,
        size: u64,
        source_name: String,
    },
    #[error(transparent)]
    Store(#[from] teu_store::StoreError),
    #[error(transparent)]
    Registry(#[from] teu_registry::RegistryError),
}

pub(crate) fn io_err(path: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> ImageError {
    let path = path.to_string();
    move |source| ImageError::Io { path, source }
}

pub(crate) fn invalid(what: impl Into<String>, message: impl Into<String>) -> ImageError {
    ImageError::Invalid {
        what: what.into(),
        message: message.into(),
    }
}
