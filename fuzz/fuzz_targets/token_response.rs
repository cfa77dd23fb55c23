//! The client's checks of a token-endpoint response (JSON shape, token_type, expires_in,
//! cnf binding) on arbitrary bodies, for unbound and bound requests: errors, never panics.
#![no_main]

use std::sync::OnceLock;

use certbound_core::ca::{self, IssueSpec};
use certbound_core::{CertifiedKey, KeyKind};
use libfuzzer_sys::fuzz_target;

fn cert() -> &'static CertifiedKey {
    static C: OnceLock<CertifiedKey> = OnceLock::new();
    C.get_or_init(|| ca::self_signed_certified_key(&IssueSpec::client("fuzz"), KeyKind::EcP256).expect("cert"))
}

fuzz_target!(|data: &[u8]| {
    let _ = certbound_client::check_token_response(data, None, false);
    let _ = certbound_client::check_token_response(data, Some(cert()), false);
    let _ = certbound_client::check_token_response(data, Some(cert()), true);
});
