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
//! ```
//! use std::sync::Arc;
//! use certbound_core::ca::DevCa;
//! use certbound_imds::emulator::{self, EmulatorConfig, IssuedToken, TokenIssuer, UnboundTokenRequest};
//! use certbound_imds::{ImdsClient, ManagedCertificateSource, ManagedIdentity};
//!
//! struct Tokens;
//! impl TokenIssuer for Tokens {
//!     fn issue_token(&self, r: &UnboundTokenRequest) -> Result<IssuedToken, String> {
//!         Ok(IssuedToken::bearer(format!("unbound-{}", r.client_id), 3600))
//!     }
//! }
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // An emulated IMDS whose certificates come from a dev CA.
//! let ca = Arc::new(DevCa::generate("dev CA")?);
//! let config = EmulatorConfig::new(ca, "my-tenant", "https://127.0.0.1:8443", Arc::new(Tokens),
//!     Arc::new(|reg| println!("authority: accept {} for {}", reg.thumbprint, reg.client_id)));
//! let imds = emulator::spawn("127.0.0.1:0".parse()?, config).await?;
//!
//! // The client side: mint once, then reuse from memory.
//! let source = ManagedCertificateSource::new(ImdsClient::new(&imds.imds_base())?, ManagedIdentity::SystemAssigned);
//! let minted = source.credential().await?;
//! assert_eq!(minted.token_endpoint(), "https://127.0.0.1:8443/my-tenant/oauth2/v2.0/token");
//! assert_eq!(minted.certified_key().key().describe(), "RSA-2048");
//! assert_eq!(source.credential().await?.certified_key().thumbprint(), minted.certified_key().thumbprint());
//! # Ok(()) }
//! ```
//!
//! ## Wiring into the client crate (`SourceType: ManagedCertificate`)
//!
//! A credential description `{"SourceType": "ManagedCertificate", "ManagedIdentityClientId":
//! "<optional>"}` maps to
//! `ManagedCertificateSource::new(ImdsClient::from_env()?, ManagedIdentity::from_config(client_id))`.
//! For each token request the client calls [`client::ManagedCertificateSource::credential`] and
//! uses the returned [`client::MintedCredential`]: its `certified_key()` as the mTLS client
//! certificate, `token_endpoint()` as the token URL and `client_id()` as `client_id`, with
//! `grant_type=client_credentials`, `scope=<resource>/.default`, `token_type=mtls_pop`
//! (exactly [`client::MintedCredential::token_request_form`]).
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
