//! The builder's errors: each names the spec line (origin) it comes from.

use teu_image::ImageError;
use teu_layer::{LayerError, PipelineError};

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// The base could not be read.
    #[error("{origin}: base {base}: {source}")]
    Base {
        origin: String,
        base: String,
        #[source]
        source: Box<ImageError>,
    },
    /// The base does not match `teu.lock` (with `--locked`), or lacks an entry.
    #[error("{origin}: {message}")]
    Lock { origin: String, message: String },
    /// A spec the builder cannot build as asked (zstd in the docker format, a single-image
    /// base for another platform).
    #[error("{origin}: {message}")]
    Unsupported { origin: String, message: String },
    #[error(transparent)]
    Image(Box<ImageError>),
}

impl From<ImageError> for BuildError {
    fn from(e: ImageError) -> Self {
        BuildError::Image(Box::new(e))
    }
}
