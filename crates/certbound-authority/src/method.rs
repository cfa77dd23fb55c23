//! The client-authentication methods (RFC 7591 `token_endpoint_auth_method` values): the
//! vocabulary the registry stores and the token endpoint enforces.

/// How the client authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthMethod {
    /// HTTP Basic with the client secret.
    ClientSecretBasic,
    /// `client_secret` in the form body.
    ClientSecretPost,
    /// A JWT assertion (RFC 7523).
    PrivateKeyJwt,
    /// The registered (self-signed) TLS client certificate.
    SelfSignedTlsClientAuth,
    /// A CA-issued TLS client certificate with the registered subject.
    TlsClientAuth,
}

impl AuthMethod {
    /// Every method, in the order discovery lists them.
    pub const ALL: [AuthMethod; 5] = [
        Self::ClientSecretPost,
        Self::ClientSecretBasic,
        Self::PrivateKeyJwt,
        Self::SelfSignedTlsClientAuth,
        Self::TlsClientAuth,
    ];
    /// The RFC 7591 `token_endpoint_auth_method` name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::PrivateKeyJwt => "private_key_jwt",
            Self::SelfSignedTlsClientAuth => "self_signed_tls_client_auth",
            Self::TlsClientAuth => "tls_client_auth",
        }
    }
    /// Whether the method uses a client secret.
    pub fn is_secret(self) -> bool {
        matches!(self, Self::ClientSecretBasic | Self::ClientSecretPost)
    }
    /// Whether the TLS client certificate was the authentication.
    pub fn is_mtls(self) -> bool {
        matches!(self, Self::SelfSignedTlsClientAuth | Self::TlsClientAuth)
    }
    /// Entra's `azpacr`: 1 = secret, 2 = certificate or assertion.
    pub(crate) fn azpacr(self) -> &'static str {
        match self {
            Self::ClientSecretBasic | Self::ClientSecretPost => "1",
            _ => "2",
        }
    }
}

impl std::str::FromStr for AuthMethod {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown authentication method `{s}` (expected client_secret_basic, client_secret_post, private_key_jwt, self_signed_tls_client_auth or tls_client_auth)"
                )
            })
    }
}

impl std::fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
