//! Proof-of-possession at the application layer: DPoP proofs (RFC 9449) and Microsoft's
//! signed HTTP request ("PoP", SHR), on both sides — creating proofs with a [`ProofKey`]
//! and verifying a compact JWS against the public JWK it embeds.
//!
//! Where TLS is terminated by a proxy the RFC 8705 certificate binding cannot reach the API;
//! these schemes bind the token to a key the client proves per request instead.
//!
//! - [`ProofKey`]: the app's proof key (EC P-256 by default, RSA/PS256 possible), kept in
//!   memory, rotatable, never shown by `Debug`;
//! - [`ProofKey::dpop_proof`] / [`ProofKey::signed_http_request`]: one proof per request;
//! - [`ProofKey::req_cnf`] and [`ProofKey::thumbprint`]: what the token request carries
//!   (`req_cnf` for `token_type=pop`; the DPoP header carries the key itself);
//! - [`verify_dpop_proof`] / [`verify_signed_http_request`]: the checks a resource server
//!   or a token endpoint makes (signature with the embedded key, `typ`, method and URL,
//!   time window, `ath`, nonce); the `jti` replay check is the caller's (it needs state).
//!
//! ```
//! use certbound_core::pop::{self, DpopExpectations, ProofKey};
//! let key = ProofKey::generate().unwrap();
//! let proof = key
//!     .dpop_proof("GET", "https://API.example:443/orders?x=1", Some("the-access-token"), None)
//!     .unwrap();
//! let now = certbound_core::now_unix();
//! let checked = pop::verify_dpop_proof(
//!     &proof,
//!     &DpopExpectations::new("GET", "https://api.example/orders", now)
//!         .access_token("the-access-token"),
//! )
//! .unwrap();
//! assert_eq!(checked.jkt, key.thumbprint());
//! assert_eq!(checked.htu, "https://api.example/orders");
//! ```

use std::time::Duration;

use crate::jwk::JwsAlgorithm;

/// The `typ` of a DPoP proof (RFC 9449 §4.2).
pub const DPOP_TYP: &str = "dpop+jwt";
/// The `typ` of a signed HTTP request.
pub const SHR_TYP: &str = "pop";
/// Largest proof accepted by the verifiers (bytes). A DPoP proof with an RSA-4096 key is
/// about 1.5 KiB; an SHR also carries the access token.
pub const MAX_PROOF_LEN: usize = 24 * 1024;
/// The algorithms proofs may use, as advertised in `algs` challenges.
pub const PROOF_ALGORITHMS: [JwsAlgorithm; 4] = [
    JwsAlgorithm::ES256,
    JwsAlgorithm::ES384,
    JwsAlgorithm::RS256,
    JwsAlgorithm::PS256,
];

/// Default proof window (`iat`/`ts` age, replay-cache entry and nonce lifetime).
pub const DEFAULT_PROOF_WINDOW: Duration = Duration::from_secs(60);
/// Default tolerated clock skew of proofs into the future.
pub const DEFAULT_PROOF_FUTURE_SKEW: Duration = Duration::from_secs(5);
/// Default replay-cache capacity.
pub const DEFAULT_REPLAY_CAPACITY: u64 = 1_000_000;

/// JWK members that only a private (or symmetric) key has.
const PRIVATE_JWK_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Why a proof could not be made or was refused. The text names the rule, never a value
/// taken from the proof or a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PopError {
    /// Longer than [`MAX_PROOF_LEN`].
    #[error("proof too large")]
    TooLarge,
    /// Not `header.payload.signature` with strict base64url JSON objects.
    #[error("proof is not a compact JWS ({0})")]
    Malformed(&'static str),
    /// `alg` missing, `none`, HMAC or outside ES256/ES384/RS256/PS256.
    #[error("proof algorithm not accepted (use ES256, ES384, RS256 or PS256)")]
    Algorithm,
    /// `typ` is not the one the scheme requires.
    #[error("proof type (typ) must be {0}")]
    Typ(&'static str),
    /// The embedded `jwk` is missing or not a public EC/RSA key of a supported size.
    #[error("proof key (jwk) missing or not a usable public key")]
    Jwk,
    /// The embedded `jwk` carries private key members.
    #[error("proof key (jwk) contains private key material")]
    PrivateJwk,
    /// The key cannot make signatures of the proof's `alg`.
    #[error("proof key does not fit the proof's algorithm")]
    KeyAlgMismatch,
    /// The signature does not verify with the embedded key.
    #[error("proof signature invalid")]
    BadSignature,
    /// A required claim is missing or has the wrong type.
    #[error("proof claim {0} missing or malformed")]
    Claim(&'static str),
    /// `htm`/`m` is not the request's method.
    #[error("proof is for another HTTP method")]
    MethodMismatch,
    /// `htu`/`u`/`p` is not the request's URL.
    #[error("proof is for another URL")]
    UrlMismatch,
    /// `iat`/`ts` is outside the accepted window.
    #[error("proof is too old or issued in the future")]
    Stale,
    /// `ath` is missing although an access token is presented.
    #[error("proof has no ath (access token hash)")]
    AthMissing,
    /// `ath` is not the hash of the presented access token.
    #[error("proof ath does not match the access token")]
    AthMismatch,
    /// The server requires a nonce and the proof has none or another one.
    #[error("proof nonce missing or not the current server nonce")]
    Nonce,
    /// The SHR's `kid` is not the thumbprint of its `cnf.jwk`.
    #[error("signed request kid is not the thumbprint of its cnf.jwk")]
    KidMismatch,
    /// A URL given to the proof functions is not an absolute http(s) URL.
    #[error("not an absolute http(s) URL")]
    BadUrl,
    /// An HTTP method is not a token (RFC 9110 §9.1).
    #[error("not a valid HTTP method")]
    BadMethod,
    /// Making a proof failed (key generation or signing).
    #[error("cannot make the proof: {0}")]
    Sign(String),
    /// The request has no single `Host` (or HTTP/2 `:authority`) to pick the server's
    /// origin by.
    #[error("the request has no single Host or :authority naming this server")]
    HostMissing,
    /// The request's `Host`/`:authority` is none of the origins the server is configured
    /// with (RFC 9449 §11.1: a proof must name this server).
    #[error("the request's Host is not an origin of this server")]
    HostNotOrigin,
    /// The server has no origin to check proofs against: no external URL is configured and
    /// it listens on a wildcard address (or its address is unknown).
    #[error("this server has no origin to check proofs against: configure its external URL")]
    NoOrigin,
}

mod dpop;
mod key;
mod nonce;
mod shr;
mod target;
mod verify;

pub use dpop::*;
pub use key::*;
pub use nonce::DpopNonces;
pub use shr::*;
pub use target::*;
pub use verify::*;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::b64;
    use serde_json::{Value, json};

    #[test]
    fn thumbprints_compare_in_constant_time() {
        assert!(thumbprints_equal("abc", "abc"));
        assert!(!thumbprints_equal("abc", "abd"));
    }

    #[test]
    fn htu_normalisation() {
        for (a, b) in [
            ("https://EXAMPLE.com", "https://example.com/"),
            ("https://example.com:443/a?b#c", "https://example.com/a"),
            ("http://example.com:80/", "http://example.com/"),
            ("http://example.com:8443/", "http://example.com:8443/"),
            ("https://example.com:0443/x", "https://example.com/x"),
            ("https://[::1]:8443/%7e", "https://[::1]:8443/~"),
            ("https://h/a%2fb", "https://h/a%2Fb"),
        ] {
            assert_eq!(normalize_htu(a).unwrap(), b, "{a}");
        }
        for bad in [
            "",
            "example.com/x",
            "ftp://h/",
            "https://",
            "https://u@h/",
            "https://h:99999999/",
            "https://h/%zz",
            "https://h/a b",
        ] {
            assert!(normalize_htu(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn duplicate_members_are_refused() {
        let key = ProofKey::generate().unwrap();
        let proof = key.dpop_proof("GET", "https://h/", None, None).unwrap();
        assert!(decode(&proof).is_ok());
        let (h, rest) = proof.split_once('.').unwrap();
        let header = String::from_utf8(b64::decode(h).unwrap()).unwrap();
        for dup in [
            header.replacen('{', r#"{"typ":"jwt","#, 1),
            header.replacen(r#""crv""#, r#""crv":"P-384","crv""#, 1),
        ] {
            let t = format!("{}.{rest}", b64::encode(&dup));
            assert_eq!(
                decode(&t).unwrap_err(),
                PopError::Malformed("duplicate JSON member"),
                "{dup}"
            );
        }
    }

    #[test]
    fn ath_rfc9449_example() {
        // RFC 9449 §7.1 example.
        assert_eq!(
            access_token_hash("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
            "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
        );
    }

    #[test]
    fn req_cnf_shape() {
        let k = ProofKey::generate().unwrap();
        let decoded = b64::decode(k.req_cnf()).unwrap();
        let v: Value = serde_json::from_slice(&decoded).unwrap();
        assert_eq!(v, json!({"kid": k.thumbprint()}));
    }

    #[test]
    fn signed_request_methods_compare_case_sensitively() {
        let k = ProofKey::generate().unwrap();
        let url = "https://api.example/orders";
        let now = crate::now_unix();
        for (made, sent) in [("GET", "get"), ("get", "GET"), ("Post", "POST")] {
            let shr = k.signed_http_request("at", made, url).unwrap();
            let v = verify_signed_http_request(&shr).unwrap();
            assert_eq!(
                v.check_request(sent, url, now, 60, 5),
                Err(PopError::MethodMismatch),
                "m={made} for {sent}"
            );
            assert_eq!(v.check_request(made, url, now, 60, 5), Ok(()));
        }
    }
}
