//! HTTP transport shared by token acquisition and downstream calls.
//!
//! - [`pool`]: the one bounded, least-recently-used pool of HTTP clients keyed by the binding
//!   certificate (`x5t#S256`) and the TLS profile (trust anchors, timeouts). The
//!   [`App`](crate::App) owns one ([`App::transport`](crate::App::transport)); its token
//!   requests and the downstream calls made through it (`certbound-downstream`) take their
//!   client from it, so a token request and a downstream call presenting the same certificate
//!   use the same `reqwest::Client` — the same warm connections.
//! - `describe_reqwest` (crate-private): transport errors as text (never the request body).

mod pool;

pub use pool::{DEFAULT_MAX_CLIENTS, TransportPool, TransportPoolBuilder, TransportSettings};

/// A reqwest error as text, with its causes and a hint for untrusted server certificates
/// (never contains the request body).
pub(crate) fn describe_reqwest(e: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut src = std::error::Error::source(e);
    while let Some(c) = src {
        let t = c.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        src = c.source();
    }
    let kind = if e.is_connect() {
        "cannot connect"
    } else if e.is_timeout() {
        "timed out"
    } else if e.is_body() || e.is_decode() {
        "cannot read the response"
    } else {
        "request failed"
    };
    let mut s = if parts.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {}", parts.join(": "))
    };
    if let Some(explained) = certbound_core::tls::explain_untrusted_server(&s) {
        s = explained;
    } else if s.contains("UnknownIssuer") {
        s.push_str(" (the server's TLS certificate is not trusted: pass its CA with --ca-cert / AppBuilder::add_ca_cert_file, or set SSL_CERT_FILE)");
    }
    s
}

/// The `User-Agent` of token and discovery requests (set per request: downstream calls
/// through the same clients send none, as before).
pub(crate) const USER_AGENT: &str = concat!("certbound/", env!("CARGO_PKG_VERSION"));
