//! The image library's error type. Kinds are typed where a caller must tell them apart
//! (a missing tag from a corrupt blob, a platform an index lacks from a malformed
//! document); causes are kept as sources, never flattened into strings.

use teu_oci::Digest;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// Reading or writing `what` (a path, or a blob and where it was read from) failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// What a reference or descriptor names is not there: no such tag, blob or layout.
    #[error("{what}: {message}")]
    NotFound { what: String, message: String },
    /// An index (after following nested indexes) has no image for the wanted platform.
    #[error(
        "{what}: index has no image for {wanted} (it has: {})",
        list(available)
    )]
    NoPlatform {
        what: String,
        wanted: String,
        available: Vec<String>,
    },
    /// A JSON document that does not parse as what it should be.
    #[error(transparent)]
    Json(#[from] teu_oci::JsonError),
    /// A document that contradicts itself or its descriptor, or a file that is not what
    /// it should be.
    #[error("{what}: {message}")]
    Malformed { what: String, message: String },
    /// Something teu does not do (yet), or that does not make sense for this transport.
    #[error("{what}: {message}")]
    Unsupported { what: String, message: String },
    /// A blob whose bytes are not the ones its descriptor names.
    #[error("blob {digest} from {source_name} {}", corrupt_detail(digest, actual, *size, *expected_size))]
    Corrupt {
        digest: Digest,
        actual: Digest,
        size: u64,
        expected_size: u64,
        source_name: String,
    },
    #[error(transparent)]
    Store(#[from] teu_store::StoreError),
    #[error(transparent)]
    Registry(#[from] teu_registry::RegistryError),
}

fn list(available: &[String]) -> String {
    if available.is_empty() {
        "no platform-tagged images".to_string()
    } else {
        available.join(", ")
    }
}

fn corrupt_detail(digest: &Digest, actual: &Digest, size: u64, expected: u64) -> String {
    if digest == actual && size != expected {
        // Only possible when the stream was cut or padded after the expected bytes.
        format!("has {size} bytes where its descriptor says {expected}")
    } else if size != expected {
        format!(
            "does not match its descriptor: {size} bytes (expected {expected}) with digest {actual}"
        )
    } else {
        format!("does not match its digest: its {size} bytes hash to {actual}")
    }
}

impl ImageError {
    /// The reference or blob does not exist (as opposed to being unreadable or corrupt).
    pub fn is_not_found(&self) -> bool {
        match self {
            ImageError::NotFound { .. } | ImageError::NoPlatform { .. } => true,
            ImageError::Registry(e) => e.is_not_found(),
            _ => false,
        }
    }
}

pub(crate) fn io_err(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> ImageError {
    let what = what.to_string();
    move |source| ImageError::Io { what, source }
}

pub(crate) fn not_found(what: impl Into<String>, message: impl Into<String>) -> ImageError {
    ImageError::NotFound {
        what: what.into(),
        message: message.into(),
    }
}

pub(crate) fn malformed(what: impl Into<String>, message: impl Into<String>) -> ImageError {
    ImageError::Malformed {
        what: what.into(),
        message: message.into(),
    }
}

pub(crate) fn unsupported(what: impl Into<String>, message: impl Into<String>) -> ImageError {
    ImageError::Unsupported {
        what: what.into(),
        message: message.into(),
    }
}
