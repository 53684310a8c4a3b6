//! The spec's error type: every error says where (file, line, column) and which key.

use std::fmt;

/// A spec error, with where it is.
#[derive(Debug, thiserror::Error)]
pub struct SpecError {
    /// `file:line:column`, or `command line`.
    pub at: String,
    /// The key, like `layer[0].copy[1].mode`.
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.at)?;
        if let Some(k) = &self.key {
            write!(f, "{k}: ")?;
        }
        f.write_str(&self.message)
    }
}
