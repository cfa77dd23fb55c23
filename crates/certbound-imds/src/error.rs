//! Typed errors of the managed-identity client.
//!
//! Every variant names the endpoint it concerns and says what to do. None of them ever
//! carries a token, a private key or the App Service secret header.

use certbound_core::CertError;

/// What went wrong while talking to IMDS / App Service or minting a certificate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImdsError {
    /// The configured base address is not a usable URL.
    #[error("invalid managed-identity endpoint `{value}` (from {origin}): {reason}")]
    BadEndpoint {
        /// The rejected value.
        value: String,
        /// Where it came from (an environment variable or `configuration`).
        origin: &'static str,
        /// Why it was rejected.
        reason: String,
    },
    /// The request could not be sent or the connection failed (after the retry).
    #[error(
        "cannot reach the managed-identity endpoint {endpoint}: {reason}; is this an Azure host, or is the IMDS emulator running (set AZURE_POD_IDENTITY_AUTHORITY_HOST to its address)?"
    )]
    Unreachable {
        /// The URL that was requested (no query).
        endpoint: String,
        /// The transport error.
        reason: String,
    },
    /// The endpoint did not answer within the timeout (after the retry).
    #[error("the managed-identity endpoint {endpoint} did not answer within {timeout_ms} ms")]
    Timeout {
        /// The URL that was requested (no query).
        endpoint: String,
        /// The configured timeout.
        timeout_ms: u128,
    },
    /// `getplatformmetadata` answered 404: the host only has IMDS v1.
    #[error(
        "IMDS v1-only host: mTLS PoP unavailable ({endpoint} answered 404 to getplatformmetadata, so this host cannot mint a binding certificate); use an unbound managed-identity token, or a certificate credential (SourceType Path/Base64Encoded/…) for bound tokens"
    )]
    ImdsV1Only {
        /// The URL that answered 404.
        endpoint: String,
    },
    /// The IMDS answer lacked the `server` header every genuine IMDS response carries.
    #[error(
        "{endpoint} answered without a `server` header, so it is not IMDS (a proxy or another service is listening on the IMDS address); refusing to use it"
    )]
    MissingServerHeader {
        /// The URL that answered.
        endpoint: String,
    },
    /// The `server` header does not name IMDS.
    #[error(
        "{endpoint} answered with `server: {server}`, which is not IMDS (a proxy or another service is listening on the IMDS address); refusing to use it"
    )]
    NotImds {
        /// The URL that answered.
        endpoint: String,
        /// The `server` header it sent.
        server: String,
    },
    /// The endpoint answered with an error status.
    #[error("{endpoint} answered HTTP {status}: {detail}")]
    Status {
        /// The URL that answered (no query).
        endpoint: String,
        /// The HTTP status code.
        status: u16,
        /// `error`/`error_description` (or the start of the body), never a token.
        detail: String,
    },
    /// The response body was larger than the client reads (it stopped reading there).
    #[error(
        "{endpoint} sent a response body larger than {limit} bytes; refusing to read it (a managed-identity answer is a few kilobytes)"
    )]
    BodyTooLarge {
        /// The URL that answered (no query).
        endpoint: String,
        /// The limit, in bytes.
        limit: usize,
    },
    /// The answer was not the JSON document expected.
    #[error("{endpoint} returned a malformed response: {reason}")]
    MalformedResponse {
        /// The URL that answered (no query).
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `issuecredential` returned a certificate whose public key is not the CSR's key.
    #[error(
        "issuecredential returned a certificate for another key (subject {subject}, x5t#S256 {thumbprint}): its public key is not the one in our CSR; refusing it"
    )]
    CertificateForAnotherKey {
        /// The returned certificate's subject.
        subject: String,
        /// The returned certificate's `x5t#S256`.
        thumbprint: String,
    },
    /// The returned certificate could not be used (unparseable, expired …).
    #[error("the certificate minted by IMDS is unusable: {0}")]
    Certificate(#[from] CertError),
    /// Generating the key or signing the CSR failed.
    #[error("cannot build the certificate signing request: {0}")]
    Csr(
        String,
        /// The typed error underneath (JSON, signing, the key-generation task), when there is one.
        #[source]
        Option<Box<dyn std::error::Error + Send + Sync>>,
    ),
    /// App Service managed identity needs both environment variables.
    #[error(
        "App Service managed identity is not configured: set IDENTITY_ENDPOINT and IDENTITY_HEADER (missing: {missing})"
    )]
    AppServiceNotConfigured {
        /// The missing variable(s).
        missing: String,
    },
}

/// Result alias for this crate.
pub(crate) type Result<T, E = ImdsError> = std::result::Result<T, E>;
