//! # certbound-imds
//!
//! Managed identity for certbound (SPEC §4): a binding certificate minted by **IMDS v2**, so
//! certificate-bound (RFC 8705 mTLS PoP) tokens work for managed identities on Linux; unbound
//! managed-identity tokens through **IMDS v1** and **App Service**; and an **emulator** of
//! those endpoints so the whole flow runs on any laptop.
//!
//! - [`client`]: [`client::ImdsClient`] (`getplatformmetadata`, `issuecredential`,
//!   [`client::ImdsClient::mint`], IMDS v1 tokens), [`client::ManagedCertificateSource`]
//!   (in-memory minted certificate, re-minted before expiry), [`client::AppServiceClient`].
//! - [`csr`]: the RSASSA-PSS-signed PKCS#10 request with the `cuId` attribute.
//! - [`emulator`]: an axum router and [`emulator::spawn`].
//!
//! ## Wiring into the client crate (`SourceType: ManagedCertificate`)
//!
//! A credential description `{"SourceType": "ManagedCertificate", "ManagedIdentityClientId":
//! "<optional>"}` maps to
//! `ManagedCertificateSource::new(ImdsClient::from_env()?, ManagedIdentity::from_config(client_id))`.
//! For each token request the client calls [`client::ManagedCertificateSource::credential`] and
//! uses the returned [`client::MintedCredential`]: its `certified_key()` as the mTLS client
//! certificate, `token_endpoint()` as the token URL and `client_id()` as `client_id`, with
//! `grant_type=client_credentials`, `scope=<resource>/.default`, `token_type=mtls_pop`.
//! Cache bound tokens under the certificate's thumbprint (a re-mint changes it), never persist
//! a certificate whose `is_persistable()` is false, and call `invalidate()` if the token
//! endpoint rejects the certificate. An [`ImdsError::ImdsV1Only`] means binding is
//! impossible on this host; unbound managed-identity tokens come from
//! [`client::ImdsClient::imds_v1_token`] or [`client::AppServiceClient::token`].
//!
//! ## Wiring into the authority (`certbound authority serve --imds-addr A`)
//!
//! Build an [`emulator::EmulatorConfig`] with the authority's dev CA, tenant, mTLS base URL,
//! a [`emulator::TokenIssuer`] (unbound tokens) and a registration callback that registers each
//! [`emulator::ManagedIdentityRegistration`] (client id + certificate thumbprint) as a
//! certificate-bound client; then [`emulator::spawn`] it and add `imds_addr`,
//! `identity_endpoint` and `identity_header` to the ready line.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
pub mod csr;
pub mod emulator;
pub mod error;

pub use client::{
    AppServiceClient, ImdsClient, ManagedCertificateSource, ManagedIdentity, ManagedIdentityToken,
    MintedCredential, PlatformMetadata,
};
pub use error::ImdsError;
