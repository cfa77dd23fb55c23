//! # certbound-imds
//!
//! Managed identity for certbound (docs/wire-formats.md (managed identity)): a binding certificate minted by **IMDS v2**, so
//! certificate-bound (RFC 8705 mTLS PoP) tokens work for managed identities on Linux; unbound
//! managed-identity tokens through **IMDS v1** and **App Service**; and an **emulator** of
//! those endpoints so the whole flow runs on any laptop.
//!
//! - [`ImdsClient`] (`getplatformmetadata`, `issuecredential`, [`ImdsClient::mint`], IMDS v1
//!   tokens), [`ManagedCertificateSource`] (in-memory minted certificate, re-minted before
//!   expiry), [`AppServiceClient`].
//! - [`CertificateRequest`]: the RSASSA-PSS-signed PKCS#10 request with the `cuId` attribute.
//! - `emulator` (feature `emulator`): an axum router and `emulator::spawn`.
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
//! ## Where it is wired
//!
//! - **Client** (`SourceType: ManagedCertificate`, optional `ManagedIdentityClientId`):
//!   `certbound_client::managed::ManagedIdentityCredential` wraps a
//!   [`ManagedCertificateSource`] (IMDS at `AZURE_POD_IDENTITY_AUTHORITY_HOST`) and
//!   uses each [`MintedCredential`] as step 4 of docs/wire-formats.md (IMDS v2) says: its `certified_key()` as
//!   the mTLS client certificate, `token_endpoint()` as the token URL and `client_id()` as
//!   `client_id`, with `token_type=mtls_pop` (exactly
//!   [`MintedCredential::token_request_form`]); bound tokens are cached under the
//!   certificate's thumbprint (a re-mint changes it) and a certificate the token endpoint
//!   rejects is invalidated. [`ImdsError::ImdsV1Only`] means binding is impossible on this
//!   host; unbound tokens come from [`ImdsClient::imds_v1_token`] or
//!   [`AppServiceClient::token`] (`IDENTITY_ENDPOINT`/`IDENTITY_HEADER`).
//! - **Authority** (`certbound authority serve --imds-addr A`):
//!   `certbound_authority::imds` builds an [`emulator::EmulatorConfig`] with the
//!   authority's dev CA, tenant and base URL (as `mtls_authentication_endpoint`), a
//!   [`emulator::TokenIssuer`] signing with the authority's key, and a registration sink
//!   that registers each [`emulator::ManagedIdentityRegistration`] as a `tls_client_auth`
//!   client with bound tokens; the ready line adds `imds_addr`, `identity_endpoint` and
//!   `identity_header`.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

mod client;
mod csr;
#[cfg(feature = "emulator")]
#[cfg_attr(docsrs, doc(cfg(feature = "emulator")))]
pub mod emulator;
mod error;
// Wire helpers (capped body reads, token-expiry parsing, URL userinfo redaction) shared with
// certbound-client, which parses the same IMDS/App Service responses. Public for that crate
// only: hidden from the docs and not part of the stable API.
#[doc(hidden)]
pub mod wire;

pub use client::{
    AppServiceClient, Clock, DEFAULT_IMDS_BASE, IDENTITY_ENDPOINT_ENV, IDENTITY_HEADER_ENV,
    IMDS_HOST_ENV, ImdsClient, MAX_RESPONSE_BYTES, ManagedCertificateSource, ManagedIdentity,
    ManagedIdentityToken, MintedCredential, PlatformMetadata,
};
pub use csr::{CU_ID_ATTRIBUTE_OID, CertificateRequest, PSS_SALT_LENGTH};
pub use error::ImdsError;
