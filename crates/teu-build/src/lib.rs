//! teu's builder: a [`Spec`](teu_spec::Spec) (from `teu.toml` or flags) to an image, or an
//! index of per-platform images, in teu's store, not yet written anywhere.
//!
//! - [`base`]: bases resolved shallowly (index, manifest and config; never a layer)
//!   through any transport, so a layout, an archive or a registry image can be a base,
//!   honouring `teu.lock`; [`lock_bases`] is the same resolution for `teu lock`, with no
//!   store.
//! - [`layers`]: spec items to layer entries, and the layer cache hook.
//! - [`assemble`]: config and manifest on top of the base, the index, the Docker rewrite.
//! - [`convert`]: an existing image or index in another compression (eStargz included),
//!   layer by layer through teu's pipeline and a conversion cache, configs, manifests and
//!   index rewritten.
//!
//! The layer bytes themselves are `teu-layer`'s craft; where an image is then written is
//! `teu-image`'s transports' business.

pub mod assemble;
pub mod base;
mod build;
pub mod convert;
mod error;
pub mod layers;
mod options;

pub use base::lock_bases;
pub use build::{build, platforms_of};
pub use error::BuildError;
pub use options::{BaseOptions, BuildOptions, BuildReport, LayerReport, PlatformReport};
pub use teu_oci::time::rfc3339;
