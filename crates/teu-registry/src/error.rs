//! The registry client's error type.

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
    /// The bytes to upload could not be read from where they are (a local file, another
    /// registry): the caller's error, kept whole.
    #[error("{what}: {source}")]
    Source {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
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
