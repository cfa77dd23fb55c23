//! The [`ProtocolScheme`] vocabulary shared by the configuration (`DownstreamApis.*.ProtocolScheme`)
//! and the authorization headers. It lives in `certbound_core::scheme`, where the resource
//! server reads the same schemes; this module re-exports it (a leaf module, so `config` and
//! `header` do not import each other).

pub use certbound_core::ProtocolScheme;
