//! Client authentication at the token endpoint: `client_secret_basic`,
//! `client_secret_post`, `private_key_jwt` (RFC 7523), `self_signed_tls_client_auth` and
//! `tls_client_auth` (RFC 8705 §2).
//!
//! Exactly one of HTTP Basic, `client_secret`, `client_assertion` may be used per request
//! (RFC 6749 §2.3); without any of them the TLS client certificate must authenticate the
//! client. Separately from the method used, `Authenticated::peer_authenticates` says
//! whether the connection's certificate authenticates the client, which is what
//! certificate binding requires.
//!
//! A `private_key_jwt` assertion names its certificate by `x5t#S256`, `x5t`, `x5c` or
//! `kid`. The thumbprints are accepted in base64url (RFC 7515) and in standard base64,
//! padded or not (azure_identity sends `x5t` that way), and compared in constant time.

use std::sync::Arc;

use aws_lc_rs::signature::{self, UnparsedPublicKey};
use certbound_core::tls::server::PeerCertificate;
use certbound_core::{Certificate, JwsAlgorithm, Thumbprint, b64, now_unix};
use http::HeaderValue;
use serde_json::Value;
use subtle::ConstantTimeEq as _;

use crate::error::OAuthError;
use crate::registry::{Client, Clients};
use crate::replay::{JtiStore, ReplayError, key_for};

/// The assertion type RFC 7523 defines.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Largest accepted client assertion.
const MAX_ASSERTION: usize = 16 * 1024;
/// Clock skew tolerated on `exp`, `nbf`, `iat`.
pub(crate) const SKEW: i64 = 60;
/// An assertion may expire at most this far ahead.
const MAX_ASSERTION_LIFETIME: i64 = 600;

use crate::method::AuthMethod;

/// The credential parts of a token request.
#[derive(Default)]
pub(crate) struct AuthInput<'a> {
    pub client_id: Option<&'a str>,
    pub client_secret: Option<&'a str>,
    pub client_assertion_type: Option<&'a str>,
    pub client_assertion: Option<&'a str>,
    pub authorization: Option<&'a HeaderValue>,
    pub peer: Option<&'a PeerCertificate>,
}

/// A successfully authenticated client.
#[derive(Debug)]
pub(crate) struct Authenticated {
    pub client: Arc<Client>,
    pub method: AuthMethod,
    /// The TLS client certificate (if any) authenticates this client.
    pub peer_authenticates: bool,
}

/// The token endpoint's client-assertion (`private_key_jwt`, RFC 7523) check over a fixed
/// registry, reachable from outside the crate **for fuzzing and property tests only**: not a
/// stable API. Each [`check`](Self::check) runs [`Verifier::authenticate`] as the token
/// endpoint does, with a fresh replay cache (so the same input always gives the same answer).
#[doc(hidden)]
pub struct AssertionCheck {
    ca: Certificate,
    audiences: Vec<String>,
    clients: Clients,
}

impl AssertionCheck {
    /// A registry holding `registrations` (checked as registration checks them) in `tenant`,
    /// with `ca` as the development CA and `audiences` as the accepted assertion audiences.
    pub fn new(
        registrations: &[crate::ClientRegistration],
        ca: Certificate,
        tenant: &str,
        audiences: Vec<String>,
    ) -> Result<Self, crate::AuthorityError> {
        let mut file = crate::registry::StateFile::new(tenant.to_owned(), JwsAlgorithm::ES256);
        for r in registrations {
            file.upsert(crate::registry::record_for(r, &ca)?);
        }
        Ok(Self {
            ca,
            audiences,
            clients: Clients::from_file(&file),
        })
    }

    /// Authenticates a token request carrying `client_assertion` (and `client_id` when
    /// given) and returns the method, or the `invalid_client`/`invalid_request` refusal.
    pub fn check(
        &self,
        client_assertion: &str,
        client_id: Option<&str>,
    ) -> Result<AuthMethod, OAuthError> {
        let verifier = Verifier::new(
            self.ca.clone(),
            self.audiences.clone(),
            Arc::new(JtiStore::in_memory(16, SKEW)),
        );
        let input = AuthInput {
            client_id,
            client_assertion_type: Some(JWT_BEARER),
            client_assertion: Some(client_assertion),
            ..AuthInput::default()
        };
        verifier
            .authenticate(&input, &self.clients)
            .map(|a| a.method)
    }
}

/// Authenticates clients for one authority.
#[derive(Debug)]
pub(crate) struct Verifier {
    ca: Certificate,
    /// Accepted assertion audiences: the token endpoint and the issuer.
    audiences: Vec<String>,
    replay: Arc<JtiStore>,
}

fn generic_failure() -> OAuthError {
    OAuthError::invalid_client("client authentication failed")
}

/// The client exists but was not registered for the method it tried.
fn not_registered_for(client: &Client, tried: &str) -> OAuthError {
    OAuthError::invalid_client(format!(
        "this client is registered for {} and may not authenticate with {tried}",
        client.methods_text()
    ))
}

impl Verifier {
    pub(crate) fn new(ca: Certificate, audiences: Vec<String>, replay: Arc<JtiStore>) -> Self {
        Self {
            ca,
            audiences,
            replay,
        }
    }

    /// Whether `peer` authenticates `client` by RFC 8705 §2 — by one of the mTLS methods
    /// the client is registered for, and which one.
    pub(crate) fn peer_method(
        &self,
        client: &Client,
        peer: &PeerCertificate,
    ) -> Option<AuthMethod> {
        let self_signed = client.allows(AuthMethod::SelfSignedTlsClientAuth);
        let ca_issued = client.allows(AuthMethod::TlsClientAuth);
        if !self_signed && !ca_issued {
            return None;
        }
        let leaf = Certificate::from_der(peer.leaf().to_vec(), "TLS client certificate").ok()?;
        leaf.check_validity(now_unix(), "TLS client certificate")
            .ok()?;
        if self_signed && client.thumbprints().any(|(t, _)| t.ct_eq(&peer.thumbprint)) {
            return Some(AuthMethod::SelfSignedTlsClientAuth);
        }
        if ca_issued
            && let Some(subject) = &client.tls_subject
            && crate::subject::verify_issued_by(&leaf, &self.ca).is_ok()
            && let Ok((_, x)) = x509_parser::parse_x509_certificate(leaf.der())
            && subject.matches(&x)
        {
            return Some(AuthMethod::TlsClientAuth);
        }
        None
    }

    /// Whether `peer` authenticates `client` (see [`Verifier::peer_method`]).
    pub(crate) fn peer_authenticates(&self, client: &Client, peer: &PeerCertificate) -> bool {
        self.peer_method(client, peer).is_some()
    }

    /// Authenticates the client of a token request.
    pub(crate) fn authenticate(
        &self,
        input: &AuthInput<'_>,
        clients: &Clients,
    ) -> Result<Authenticated, OAuthError> {
        let basic = match input.authorization {
            Some(h) => Some(parse_basic(h)?),
            None => None,
        };
        let used = [
            basic.is_some(),
            input.client_secret.is_some(),
            input.client_assertion.is_some() || input.client_assertion_type.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        if used > 1 {
            return Err(OAuthError::invalid_request(
                "more than one client authentication method was used (HTTP Basic, client_secret, client_assertion); use exactly one",
            ));
        }

        if let Some((id, secret)) = &basic {
            if input.client_id.is_some_and(|b| b != id) {
                return Err(OAuthError::invalid_request(
                    "client_id in the body differs from the one in the Authorization header",
                ));
            }
            return self
                .secret(
                    clients,
                    id,
                    secret,
                    AuthMethod::ClientSecretBasic,
                    input.peer,
                )
                .map_err(|e| e.with_basic_challenge(true));
        }
        if let Some(secret) = input.client_secret {
            let Some(id) = input.client_id else {
                return Err(OAuthError::invalid_request(
                    "client_id is required with client_secret",
                ));
            };
            return self.secret(
                clients,
                id,
                secret,
                AuthMethod::ClientSecretPost,
                input.peer,
            );
        }
        if input.client_assertion.is_some() || input.client_assertion_type.is_some() {
            if input.client_assertion_type != Some(JWT_BEARER) {
                return Err(OAuthError::invalid_request(
                    "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ));
            }
            let Some(assertion) = input.client_assertion else {
                return Err(OAuthError::invalid_request("client_assertion is missing"));
            };
            let client = self.assertion(clients, assertion, input.client_id)?;
            let peer_authenticates = input
                .peer
                .is_some_and(|p| self.peer_authenticates(&client, p));
            return Ok(Authenticated {
                client,
                method: AuthMethod::PrivateKeyJwt,
                peer_authenticates,
            });
        }

        // No credential in the request: the TLS client certificate must authenticate.
        let Some(id) = input.client_id else {
            return Err(OAuthError::invalid_request("client_id is required"));
        };
        let client = clients.get(id).ok_or_else(generic_failure)?;
        if !client.allows(AuthMethod::SelfSignedTlsClientAuth)
            && !client.allows(AuthMethod::TlsClientAuth)
        {
            return Err(not_registered_for(
                &client,
                "a TLS client certificate alone (self_signed_tls_client_auth or tls_client_auth)",
            ));
        }
        let Some(peer) = input.peer else {
            return Err(OAuthError::invalid_client(
                "no client authentication: present the registered TLS client certificate, or send client_assertion or client_secret",
            ));
        };
        let Some(method) = self.peer_method(&client, peer) else {
            return Err(OAuthError::invalid_client(
                "the TLS client certificate does not authenticate this client (not registered for it, not issued by the authority's CA with the registered subject, or outside its validity period)",
            ));
        };
        Ok(Authenticated {
            client,
            method,
            peer_authenticates: true,
        })
    }

    fn secret(
        &self,
        clients: &Clients,
        id: &str,
        secret: &str,
        method: AuthMethod,
        peer: Option<&PeerCertificate>,
    ) -> Result<Authenticated, OAuthError> {
        let client = clients.get(id).ok_or_else(generic_failure)?;
        if !client.allows(method) {
            return Err(not_registered_for(&client, method.as_str()));
        }
        let Some(hash) = &client.secret else {
            return Err(generic_failure());
        };
        if !hash.verify(secret) {
            return Err(generic_failure());
        }
        let peer_authenticates = peer.is_some_and(|p| self.peer_authenticates(&client, p));
        Ok(Authenticated {
            client,
            method,
            peer_authenticates,
        })
    }

    /// Verifies a `private_key_jwt` assertion and returns its client.
    fn assertion(
        &self,
        clients: &Clients,
        jwt: &str,
        body_client_id: Option<&str>,
    ) -> Result<Arc<Client>, OAuthError> {
        let bad = |d: &'static str| OAuthError::invalid_client(d);
        if jwt.len() > MAX_ASSERTION {
            return Err(bad("client_assertion is too large"));
        }
        let mut parts = jwt.split('.');
        let (Some(h64), Some(p64), Some(s64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad(
                "client_assertion is not a compact JWS (three dot-separated parts)",
            ));
        };
        let header: Value = b64::decode(h64)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .filter(Value::is_object)
            .ok_or_else(|| bad("client_assertion header is not base64url JSON"))?;
        let claims: Value = b64::decode(p64)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .filter(Value::is_object)
            .ok_or_else(|| bad("client_assertion payload is not base64url JSON"))?;
        let sig =
            b64::decode(s64).map_err(|_| bad("client_assertion signature is not base64url"))?;

        let alg = match header.get("alg").and_then(Value::as_str) {
            Some("RS256") => JwsAlgorithm::RS256,
            Some("PS256") => JwsAlgorithm::PS256,
            Some("ES256") => JwsAlgorithm::ES256,
            Some("ES384") => JwsAlgorithm::ES384,
            _ => {
                return Err(bad(
                    "client_assertion alg must be RS256, PS256, ES256 or ES384",
                ));
            }
        };
        if header.get("crit").is_some() {
            return Err(bad(
                "client_assertion has a crit header this authority does not understand",
            ));
        }

        // Who: iss = sub = client_id.
        let iss = claims.get("iss").and_then(Value::as_str);
        let sub = claims.get("sub").and_then(Value::as_str);
        let (Some(iss), Some(sub)) = (iss, sub) else {
            return Err(bad(
                "client_assertion must carry iss and sub (the client id)",
            ));
        };
        if iss != sub {
            return Err(bad(
                "client_assertion iss and sub must both be the client id",
            ));
        }
        if body_client_id.is_some_and(|c| c != iss) {
            return Err(bad("client_assertion sub differs from client_id"));
        }
        let client = clients.get(iss).ok_or_else(generic_failure)?;
        if !client.allows(AuthMethod::PrivateKeyJwt) {
            return Err(not_registered_for(&client, "private_key_jwt"));
        }

        // Which key: x5t#S256, x5t, x5c, kid; else every registered certificate.
        let candidates: Vec<&Certificate> = {
            // MSAL Python pads its base64url thumbprints and azure_identity sends standard
            // base64 (`+`, `/`): accept every spelling of the same bytes.
            let by_s256 = header
                .get("x5t#S256")
                .and_then(Value::as_str)
                .map(|t| {
                    decode_thumbprint_header(t, 32)
                        .map(|b| Thumbprint::from_base64url(&b64::encode(b)))
                        .and_then(|t| t)
                        .ok_or(bad("x5t#S256 header is malformed (expected the base64url or base64 SHA-256 of the certificate)"))
                });
            let by_x5c = header
                .get("x5c")
                .and_then(Value::as_array)
                .and_then(|a| a.first())
                .and_then(Value::as_str)
                .map(|c| {
                    b64::decode_std_lenient(c)
                        .map(|der| Thumbprint::of_der(&der))
                        .map_err(|_| bad("x5c header is not base64"))
                });
            let sha1 = header
                .get("x5t")
                .and_then(Value::as_str)
                .map(|t| {
                    decode_thumbprint_header(t, 20).ok_or(bad(
                        "x5t header is malformed (expected the base64url or base64 SHA-1 of the certificate)",
                    ))
                })
                .transpose()?;
            let kid = header.get("kid").and_then(Value::as_str);
            let wanted: Option<Thumbprint> = match (by_s256, by_x5c) {
                (Some(a), _) => Some(a?),
                (None, Some(b)) => Some(b?),
                _ => None,
            };
            let all: Vec<&Certificate> = client.thumbprints().map(|(_, c)| c).collect();
            let picked: Vec<&Certificate> = if let Some(w) = wanted {
                all.into_iter()
                    .filter(|c| c.thumbprint().ct_eq(&w))
                    .collect()
            } else if let Some(s) = sha1 {
                all.into_iter()
                    .filter(|c| {
                        let d = aws_lc_rs::digest::digest(
                            &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
                            c.der(),
                        );
                        bool::from(d.as_ref().ct_eq(s.as_slice()))
                    })
                    .collect()
            } else if let Some(k) = kid {
                let by_kid: Vec<&Certificate> = all
                    .iter()
                    .copied()
                    .filter(|c| c.thumbprint().to_base64url() == k || c.x5t_sha1() == k)
                    .collect();
                if by_kid.is_empty() { all } else { by_kid }
            } else {
                all
            };
            if picked.is_empty() {
                return Err(bad(
                    "the certificate named in the client_assertion header (x5t#S256, x5t or x5c) is not registered for this client",
                ));
            }
            picked
        };
        let signed = &jwt.as_bytes()[..h64.len() + 1 + p64.len()];
        let verified = candidates.iter().any(|c| verify_sig(alg, c, signed, &sig));
        if !verified {
            return Err(bad(
                "client_assertion signature does not verify with the registered certificate's key",
            ));
        }

        // When: exp required and at most 10 minutes ahead; nbf/iat not in the future.
        let now = now_unix();
        let num = |name: &str| claims.get(name).and_then(Value::as_f64).map(|f| f as i64);
        let Some(exp) = num("exp") else {
            return Err(bad("client_assertion must carry exp"));
        };
        if exp.saturating_add(SKEW) < now {
            return Err(bad("client_assertion has expired"));
        }
        if exp > now + MAX_ASSERTION_LIFETIME + SKEW {
            return Err(bad("client_assertion exp is more than 10 minutes ahead"));
        }
        if num("nbf").is_some_and(|nbf| nbf > now + SKEW) {
            return Err(bad("client_assertion is not valid yet (nbf)"));
        }
        if num("iat").is_some_and(|iat| iat > now + SKEW) {
            return Err(bad("client_assertion iat is in the future"));
        }

        // For whom: the token endpoint or the issuer.
        let aud_ok = match claims.get("aud") {
            Some(Value::String(a)) => self.aud_ok(a),
            Some(Value::Array(list)) => list
                .iter()
                .filter_map(Value::as_str)
                .any(|a| self.aud_ok(a)),
            _ => false,
        };
        if !aud_ok {
            return Err(bad(
                "client_assertion aud must be this authority's token endpoint or issuer",
            ));
        }

        // Once: jti.
        let Some(jti) = claims.get("jti").and_then(Value::as_str) else {
            return Err(bad("client_assertion must carry jti"));
        };
        if jti.is_empty() || jti.len() > 256 {
            return Err(bad("client_assertion jti must be 1 to 256 characters"));
        }
        match self
            .replay
            .check_and_insert(key_for(&client.client_id, jti), exp, now)
        {
            Ok(()) => Ok(client),
            Err(ReplayError::Replayed) => Err(bad(
                "client_assertion was already used (jti replay); sign a new one for each request",
            )),
            Err(ReplayError::Full) => Err(OAuthError::new(
                crate::error::ErrorCode::TemporarilyUnavailable,
                "too many recent client assertions (the authority's jti store is full); retry shortly",
            )),
            Err(ReplayError::Unavailable) => Err(OAuthError::new(
                crate::error::ErrorCode::TemporarilyUnavailable,
                "the authority cannot record client assertions durably right now; retry later",
            )),
        }
    }

    fn aud_ok(&self, a: &str) -> bool {
        let a = a.strip_suffix('/').unwrap_or(a);
        self.audiences
            .iter()
            .any(|x| x.strip_suffix('/').unwrap_or(x) == a)
    }
}

/// Decodes a certificate thumbprint from a JOSE header (`x5t`: 20 bytes, `x5t#S256`: 32)
/// written in base64url (RFC 7515) or, as some SDKs send it, standard base64 — padded or
/// not. Mixed alphabets, wrong padding, non-canonical trailing bits and any other length
/// are refused.
pub(crate) fn decode_thumbprint_header(text: &str, len: usize) -> Option<Vec<u8>> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let unpadded = text.trim_end_matches('=');
    let padding = text.len() - unpadded.len();
    if padding > 2 || (padding > 0 && !text.len().is_multiple_of(4)) {
        return None;
    }
    let bytes = if unpadded.contains(['+', '/']) {
        STANDARD_NO_PAD.decode(unpadded)
    } else {
        URL_SAFE_NO_PAD.decode(unpadded)
    }
    .ok()?;
    (bytes.len() == len).then_some(bytes)
}

fn verify_sig(alg: JwsAlgorithm, cert: &Certificate, msg: &[u8], sig: &[u8]) -> bool {
    let params: &'static dyn signature::VerificationAlgorithm = match alg {
        JwsAlgorithm::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        JwsAlgorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
        JwsAlgorithm::ES256 => &signature::ECDSA_P256_SHA256_FIXED,
        JwsAlgorithm::ES384 => &signature::ECDSA_P384_SHA384_FIXED,
        // An algorithm this authority does not know verifies nothing.
        _ => return false,
    };
    UnparsedPublicKey::new(params, cert.public_key_bytes())
        .verify(msg, sig)
        .is_ok()
}

/// Parses `Authorization: Basic base64(urlencode(id):urlencode(secret))` (RFC 6749 §2.3.1).
fn parse_basic(h: &HeaderValue) -> Result<(String, zeroize::Zeroizing<String>), OAuthError> {
    let fail = |d: &'static str| OAuthError::invalid_client(d).with_basic_challenge(true);
    let text = h
        .to_str()
        .map_err(|_| fail("malformed Authorization header"))?;
    let (scheme, rest) = text.split_once(' ').unwrap_or((text, ""));
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OAuthError::invalid_client(
            "the token endpoint accepts only HTTP Basic in the Authorization header",
        ));
    }
    let raw = zeroize::Zeroizing::new(
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, rest.trim())
            .map_err(|_| fail("malformed HTTP Basic credentials"))?,
    );
    let text = std::str::from_utf8(&raw).map_err(|_| fail("malformed HTTP Basic credentials"))?;
    let (id, secret) = text
        .split_once(':')
        .ok_or_else(|| fail("malformed HTTP Basic credentials"))?;
    let id = form_decode(id).ok_or_else(|| fail("malformed HTTP Basic credentials"))?;
    let secret = zeroize::Zeroizing::new(
        form_decode(secret).ok_or_else(|| fail("malformed HTTP Basic credentials"))?,
    );
    if id.is_empty() {
        return Err(fail("HTTP Basic credentials carry no client id"));
    }
    Ok((id, secret))
}

/// `application/x-www-form-urlencoded` decoding of one component.
pub(crate) fn form_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
#[allow(clippy::string_slice)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding() {
        assert_eq!(form_decode("a%3Ab+c").as_deref(), Some("a:b c"));
        assert_eq!(form_decode("%zz"), None);
        assert_eq!(form_decode("%4"), None);
    }

    #[test]
    fn thumbprint_headers_in_every_base64_spelling() {
        use base64::Engine as _;
        use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE};
        // Bytes whose encodings contain `+`/`/` (standard) and `-`/`_` (base64url).
        let bytes: Vec<u8> = (0..32u8).map(|i| 0xfb ^ i.wrapping_mul(7)).collect();
        let std = STANDARD.encode(&bytes);
        assert!(std.contains(['+', '/']), "{std}");
        for text in [
            b64::encode(&bytes),
            URL_SAFE.encode(&bytes),
            std.clone(),
            STANDARD_NO_PAD.encode(&bytes),
        ] {
            assert_eq!(
                decode_thumbprint_header(&text, 32).as_deref(),
                Some(&bytes[..]),
                "{text}"
            );
        }
        let sha1 = &bytes[..20];
        assert_eq!(
            decode_thumbprint_header(&STANDARD.encode(sha1), 20).as_deref(),
            Some(sha1)
        );
        // Wrong length, mixed alphabets, bad padding, garbage.
        assert!(decode_thumbprint_header(&std, 20).is_none());
        let mixed = format!("-{}", &STANDARD_NO_PAD.encode(&bytes)[1..]);
        assert!(mixed.contains(['+', '/']));
        assert!(decode_thumbprint_header(&mixed, 32).is_none());
        assert!(decode_thumbprint_header(&format!("{std}=="), 32).is_none());
        assert!(
            decode_thumbprint_header(&format!("{}=", STANDARD_NO_PAD.encode(&bytes)), 32).is_some()
        );
        assert!(
            decode_thumbprint_header(&format!("{}==", STANDARD_NO_PAD.encode(&bytes)), 32)
                .is_none()
        );
        assert!(decode_thumbprint_header("", 32).is_none());
        assert!(decode_thumbprint_header("not base64!", 32).is_none());
    }
}
