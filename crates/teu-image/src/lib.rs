//! One image model, many sources and sinks.
//!
//! An [`Image`] is what an image is: a manifest and a config (kept as raw bytes next to
//! their parsed form, since digests are over bytes) plus layer descriptors, each of which
//! knows where its bytes can be read ([`BlobSource`]): teu's store, an OCI layout, an
//! archive, a registry repository. Nothing is copied until a sink needs it, and a sink
//! first plans, asking the destination what it lacks.
//!
//! - [`transport`]: every reference read and written the same way: [`transport::read`]
//!   and [`transport::write`] over one [`transport::Source`] / [`transport::Sink`] per
//!   transport (OCI layout, OCI and docker archives, registries).
//! - [`select`]: the one rule for choosing images from an index ([`Select`]).
//! - [`format`]: the Docker rewrite of an artifact (`--format docker`).
//! - [`diff`]: comparing two images down to the entries inside their layers.
//! - [`gc`]: `teu cache du | gc | verify`, and the roots that keep outputs' blobs.
//!
//! The builder that turns a spec into an [`Artifact`] lives in `teu-build`, on top.

pub mod blob;
pub mod diff;
mod error;
pub mod format;
pub mod gc;
pub mod image;
mod parallel;
pub mod select;
pub mod transport;

pub use blob::{BlobSource, StoreSource};
pub use error::ImageError;
pub use image::{Artifact, BlobRef, Image, ImageIndex, Layer};
pub use parallel::map_in_order;
pub use select::Select;
