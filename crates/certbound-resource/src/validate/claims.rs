//! What a validated token gives the application: its claims and how it was bound.

use std::fmt;
use std::sync::{Arc, OnceLock};

use certbound_core::{JwsAlgorithm, ProtocolScheme, Thumbprint};
use serde_json::{Map, Value};

use crate::binding::Confirmation;

/// The claims of a validated token.
///
/// The registered claims are available typed; every member (as sent) through
/// [`Claims::all`], which is materialised on first use (validation itself does not build the
/// full JSON object — see the module docs).
#[derive(Clone)]
pub struct Claims {
    pub(super) header_json: Arc<[u8]>,
    pub(super) payload_json: Vec<u8>,
    pub(super) header: OnceLock<Map<String, Value>>,
    pub(super) payload: OnceLock<Map<String, Value>>,
    pub(super) alg: JwsAlgorithm,
    pub(super) kid: Option<Arc<str>>,
    pub(super) iss: String,
    pub(super) aud: Vec<String>,
    pub(super) exp: i64,
    pub(super) cnf: Option<Confirmation>,
}

impl fmt::Debug for Claims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Claims")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .field("iss", &self.iss)
            .field("aud", &self.aud)
            .field("exp", &self.exp)
            .field("sub", &self.sub())
            .field("cnf", &self.cnf)
            .finish_non_exhaustive()
    }
}

pub(super) fn lazy_map<'a>(
    cell: &'a OnceLock<Map<String, Value>>,
    json: &[u8],
) -> &'a Map<String, Value> {
    // The bytes were already parsed strictly during validation, so this cannot fail.
    cell.get_or_init(|| serde_json::from_slice(json).unwrap_or_default())
}

impl Claims {
    /// Every payload member, as sent.
    pub fn all(&self) -> &Map<String, Value> {
        lazy_map(&self.payload, &self.payload_json)
    }
    /// The protected header.
    pub fn header(&self) -> &Map<String, Value> {
        lazy_map(&self.header, &self.header_json)
    }
    /// One payload member.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.all().get(name)
    }
    /// The algorithm that signed the token.
    pub fn alg(&self) -> JwsAlgorithm {
        self.alg
    }
    /// `kid` of the signing key.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }
    /// `iss`.
    pub fn issuer(&self) -> &str {
        &self.iss
    }
    /// `aud` (a single string is returned as one element).
    pub fn audiences(&self) -> &[String] {
        &self.aud
    }
    /// `exp` (Unix seconds).
    pub fn expires_at(&self) -> i64 {
        self.exp
    }
    /// `sub`.
    pub fn sub(&self) -> Option<&str> {
        self.get("sub").and_then(Value::as_str)
    }
    /// The client: `client_id` (RFC 9068), `azp` or Entra's `appid`.
    pub fn client_id(&self) -> Option<&str> {
        ["client_id", "azp", "appid"]
            .iter()
            .find_map(|n| self.get(n).and_then(Value::as_str))
    }
    /// Scopes from `scope` (RFC 9068, space-separated) or Entra's `scp`.
    pub fn scopes(&self) -> Vec<&str> {
        ["scope", "scp"]
            .iter()
            .find_map(|n| self.get(n).and_then(Value::as_str))
            .map(|s| s.split(' ').filter(|x| !x.is_empty()).collect())
            .unwrap_or_default()
    }
    /// App roles (`roles`, Entra app-only tokens).
    pub fn roles(&self) -> Vec<&str> {
        self.get("roles")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    }
    /// The binding, when the token is certificate-bound.
    pub fn confirmation(&self) -> Option<&Confirmation> {
        self.cnf.as_ref()
    }
}

/// A token that passed every rule, with the request facts it was checked against.
#[derive(Clone, Debug)]
pub struct ValidatedToken {
    pub(super) scheme: ProtocolScheme,
    pub(super) claims: Arc<Claims>,
    pub(super) peer: Option<Thumbprint>,
    pub(crate) proof_key: Option<Arc<str>>,
}

impl ValidatedToken {
    /// The validated claims.
    pub fn claims(&self) -> &Claims {
        &self.claims
    }
    /// The scheme the request used.
    pub fn scheme(&self) -> ProtocolScheme {
        self.scheme
    }
    /// The thumbprint of the client certificate the connection presented (bound or not).
    pub fn peer_thumbprint(&self) -> Option<&Thumbprint> {
        self.peer.as_ref()
    }
    /// Whether the token was bound (`cnf`: certificate, DPoP or SHR key) and the binding
    /// verified.
    pub fn is_bound(&self) -> bool {
        self.claims.cnf.is_some()
    }
    /// The RFC 7638 thumbprint of the key whose proof was verified (`DPoP` and `PoP`
    /// schemes), equal to the token's `cnf.jkt`/`cnf.kid`.
    pub fn proof_key_thumbprint(&self) -> Option<&str> {
        self.proof_key.as_deref()
    }
}
