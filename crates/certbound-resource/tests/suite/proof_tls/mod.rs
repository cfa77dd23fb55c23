//! DPoP (RFC 9449) and PoP (signed HTTP request) over real TLS against the layer, with tokens
//! minted here (`cnf.jkt` / `cnf.kid`) and a static JWKS served by the test issuer: accepted,
//! and every hostile case refused with the right RFC 9449 / RFC 6750 challenge.
#![allow(clippy::string_slice)]
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use crate::common;

use std::net::SocketAddr;
use std::time::Duration;

use certbound_core::pop::ProofKey;
use certbound_core::{Jwks, KeyKind, PrivateKey, b64, jose};
use certbound_resource::Validator;
use common::*;
use http::header;
use serde_json::{Value, json};

const ALGS: &str = r#"algs="ES256 ES384 RS256 PS256""#;
/// The refusal of a request whose `Host` names none of the server's origins.
const NOT_ORIGIN: &str = "the request's Host is not an origin of this server";

struct World {
    pki: Pki,
    issuer: TestIssuer,
    signer: PrivateKey,
    api: SocketAddr,
}

async fn validator(
    w: &Pki,
    issuer: &TestIssuer,
    f: impl FnOnce(certbound_resource::ValidatorBuilder) -> certbound_resource::ValidatorBuilder,
) -> Validator {
    f(Validator::builder()
        .issuer(issuer.issuer.clone())
        .audience(AUD)
        .trust_anchors(w.anchors.clone()))
    .build()
    .await
    .unwrap()
}

async fn world() -> World {
    certbound_core::tls::install_default_provider();
    let pki = Pki::new();
    let signer = PrivateKey::generate(KeyKind::EcP256).unwrap();
    let issuer = TestIssuer::start(
        &pki,
        Jwks {
            keys: vec![signer.public_jwk().with_kid("k1")],
        },
    )
    .await;
    let v = validator(&pki, &issuer, |b| b).await;
    let api = serve_api(&pki, v).await;
    World {
        pki,
        issuer,
        signer,
        api,
    }
}

impl World {
    /// An access token carrying `cnf` (or none).
    fn token(&self, cnf: Option<Value>) -> String {
        let mut c = claims(&self.issuer.issuer, None);
        if let Some(cnf) = cnf {
            c.insert("cnf".into(), cnf);
        }
        let h = jose::JwsHeader::new(self.signer.default_jws_algorithm())
            .kid("k1")
            .typ("at+jwt");
        jose::sign_compact(&h, &c, &self.signer).unwrap()
    }
    fn dpop_token(&self, key: &ProofKey) -> String {
        self.token(Some(json!({"jkt": key.thumbprint()})))
    }
    fn pop_token(&self, key: &ProofKey) -> String {
        self.token(Some(json!({"kid": key.thumbprint()})))
    }
    fn url(&self, api: SocketAddr) -> String {
        format!("https://127.0.0.1:{}/whoami", api.port())
    }
}

struct Reply {
    status: u16,
    challenges: Vec<String>,
    nonce: Option<String>,
    body: String,
}

async fn send(
    w: &World,
    api: SocketAddr,
    method: http::Method,
    authorization: &str,
    dpop: &[&str],
) -> Reply {
    let mut req = w
        .pki
        .http(None)
        .request(method, w.url(api))
        .header(header::AUTHORIZATION, authorization);
    for p in dpop {
        req = req.header("DPoP", *p);
    }
    reply(req.send().await.unwrap()).await
}

/// An HTTP/1.1-only client: the `Host` header is then exactly what the caller sets, as a
/// proxy forwarding a request or a replayer forging one sends it.
fn http1(pki: &Pki) -> reqwest::Client {
    let mut cfg = certbound_core::tls::client_config(&pki.anchors, None).unwrap();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .use_preconfigured_tls(cfg)
        .http1_only()
        .build()
        .unwrap()
}

/// `send` over HTTP/1.1 to the API at `api` with `Host: host`.
async fn send_host(
    w: &World,
    api: SocketAddr,
    host: &str,
    authorization: &str,
    dpop: &[&str],
) -> Reply {
    let mut req = http1(&w.pki)
        .get(w.url(api))
        .header(header::HOST, host)
        .header(header::AUTHORIZATION, authorization);
    for p in dpop {
        req = req.header("DPoP", *p);
    }
    reply(req.send().await.unwrap()).await
}

async fn reply(resp: reqwest::Response) -> Reply {
    let status = resp.status().as_u16();
    let challenges = resp
        .headers()
        .get_all(header::WWW_AUTHENTICATE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let nonce = resp
        .headers()
        .get("dpop-nonce")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = resp.text().await.unwrap();
    Reply {
        status,
        challenges,
        nonce,
        body,
    }
}

fn dpop_refused(r: &Reply, error: &str, description: &str) {
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(
        r.challenges,
        vec![format!(
            r#"DPoP error="{error}", error_description="{description}", {ALGS}"#
        )]
    );
}

/// Re-signs a proof's header and payload with `key` (the embedded jwk unchanged).
fn forge(proof: &str, key: &PrivateKey, edit: impl FnOnce(&mut Value, &mut Value)) -> String {
    let (mut h, mut p) = jose::decode_unverified(proof).unwrap();
    edit(&mut h, &mut p);
    let input = format!(
        "{}.{}",
        b64::encode(h.to_string()),
        b64::encode(p.to_string())
    );
    let sig = key
        .sign(key.default_jws_algorithm(), input.as_bytes())
        .unwrap();
    format!("{input}.{}", b64::encode(sig))
}

mod dpop;
mod origins;
mod pop;
mod replay;
