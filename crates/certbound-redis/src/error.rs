//! Errors. None of them carries a key, a password or a token.

/// A problem in the `TokenCache:Redis` configuration (or the builder's equivalent).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RedisConfigError {
    /// A required key is absent.
    #[error("token cache configuration: `{path}` is missing; {hint}")]
    Missing {
        /// The key path, e.g. `TokenCache:Redis:EncryptionKey`.
        path: String,
        /// What to do about it.
        hint: String,
    },
    /// A key is present but its value is unusable.
    #[error("token cache configuration: `{path}` {reason}")]
    Invalid {
        /// The key path.
        path: String,
        /// What is wrong and what to do (never the value itself).
        reason: String,
    },
}

impl RedisConfigError {
    pub(crate) fn invalid(path: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            path: path.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn missing(path: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::Missing {
            path: path.into(),
            hint: hint.into(),
        }
    }

    /// The same error reported at another key path.
    pub(crate) fn at(self, path: &str) -> Self {
        match self {
            Self::Missing { hint, .. } => Self::Missing {
                path: path.to_owned(),
                hint,
            },
            Self::Invalid { reason, .. } => Self::Invalid {
                path: path.to_owned(),
                reason,
            },
        }
    }
}
