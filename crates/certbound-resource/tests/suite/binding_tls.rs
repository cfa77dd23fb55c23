//! Binding over real mutual TLS on loopback (docs/resource-server.md), through the sample API and through
//! the extractor used without the layer.
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use crate::common;

use axum::Router;
use axum::routing::get;
use certbound_core::tls::{self, ClientAuth};
use certbound_core::{CertifiedKey, Jwks, JwsAlgorithm, KeyKind, PrivateKey};
use certbound_resource::Presented;
use certbound_resource::transport::TlsServer;
use certbound_resource::{ValidatedToken, Validator};
use common::*;
use http::header;
use serde_json::Value;

struct Env {
    pki: Pki,
    issuer: TestIssuer,
    key: PrivateKey,
    cert: CertifiedKey,
    other: CertifiedKey,
}

async fn env() -> Env {
    tls::install_default_provider();
    let pki = Pki::new();
    let key = PrivateKey::generate(KeyKind::EcP256).unwrap();
    let issuer = TestIssuer::start(
        &pki,
        Jwks {
            keys: vec![key.public_jwk().with_kid("k1")],
        },
    )
    .await;
    let cert = pki.client_cert("app");
    let other = pki.client_cert("intruder");
    Env {
        pki,
        issuer,
        key,
        cert,
        other,
    }
}

impl Env {
    async fn validator(&self, require_binding: bool) -> Validator {
        Validator::builder()
            .issuer(self.issuer.issuer.clone())
            .audience(AUD)
            .trust_anchors(self.pki.anchors.clone())
            .require_binding(require_binding)
            .build()
            .await
            .unwrap()
    }
    fn token(&self, bound_to: Option<&CertifiedKey>) -> String {
        let x5t = bound_to.map(|c| c.thumbprint().to_base64url());
        token(
            &header("ES256", Some("k1")),
            &claims(&self.issuer.issuer, x5t.as_deref()),
            Signer::Key(&self.key, JwsAlgorithm::ES256),
        )
    }
    async fn get(
        &self,
        port: u16,
        path: &str,
        identity: Option<&CertifiedKey>,
        authz: &str,
    ) -> (u16, Option<String>, String) {
        let resp = self
            .pki
            .http(identity)
            .get(format!("https://127.0.0.1:{port}{path}"))
            .header(header::AUTHORIZATION, authz)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let wa = resp
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap().to_owned());
        (status, wa, resp.text().await.unwrap())
    }
}

#[tokio::test]
async fn bound_token_over_mtls() {
    let e = env().await;
    let api = serve_api(&e.pki, e.validator(false).await).await.port();
    let bound = e.token(Some(&e.cert));

    // Right certificate: 200, with the claims, the scheme and the presented thumbprint.
    let (s, _, body) = e
        .get(api, "/whoami", Some(&e.cert), &format!("mtls_pop {bound}"))
        .await;
    assert_eq!(s, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["cnf"]["x5t#S256"], e.cert.thumbprint().to_base64url());
    assert_eq!(v["cert_thumbprint"], e.cert.thumbprint().to_base64url());
    assert_eq!(v["scheme"], "mtls_pop");
    assert_eq!(v["bound"], true);
    assert_eq!(v["aud"], AUD);

    // RFC 8705 Bearer over mTLS with the right certificate: 200.
    let (s, _, body) = e
        .get(api, "/whoami", Some(&e.cert), &format!("Bearer {bound}"))
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["scheme"],
        "Bearer"
    );

    // Another certificate: 401.
    let (s, wa, _) = e
        .get(api, "/whoami", Some(&e.other), &format!("mtls_pop {bound}"))
        .await;
    assert_eq!(s, 401);
    assert_eq!(
        wa.unwrap(),
        r#"mtls_pop error="invalid_token", error_description="certificate thumbprint does not match cnf""#
    );

    // No certificate: 401.
    let (s, wa, _) = e
        .get(api, "/whoami", None, &format!("mtls_pop {bound}"))
        .await;
    assert_eq!(s, 401);
    assert!(wa.unwrap().contains("no client certificate was presented"));

    // Bearer scheme over a connection without the certificate: 401.
    let (s, wa, _) = e
        .get(api, "/whoami", None, &format!("Bearer {bound}"))
        .await;
    assert_eq!(s, 401);
    assert!(wa.unwrap().starts_with(r#"Bearer error="invalid_token""#));
}

#[tokio::test]
async fn unbound_tokens_and_require_binding() {
    let e = env().await;
    let bearer_api = serve_api(&e.pki, e.validator(false).await).await.port();
    let strict_api = serve_api(&e.pki, e.validator(true).await).await.port();
    let unbound = e.token(None);

    // Unbound token on a Bearer API: 200, with or without a client certificate.
    let (s, _, body) = e
        .get(bearer_api, "/whoami", None, &format!("Bearer {unbound}"))
        .await;
    assert_eq!(s, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["bound"], false);
    assert_eq!(v["cert_thumbprint"], Value::Null);
    let (s, _, body) = e
        .get(
            bearer_api,
            "/whoami",
            Some(&e.cert),
            &format!("Bearer {unbound}"),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["cert_thumbprint"],
        e.cert.thumbprint().to_base64url()
    );

    // Unbound token where binding is required: 401, even with a certificate.
    let (s, wa, _) = e
        .get(
            strict_api,
            "/whoami",
            Some(&e.cert),
            &format!("Bearer {unbound}"),
        )
        .await;
    assert_eq!(s, 401);
    assert!(wa.unwrap().contains("requires binding"));
    // A bound token still passes there.
    let (s, _, _) = e
        .get(
            strict_api,
            "/whoami",
            Some(&e.cert),
            &format!("mtls_pop {}", e.token(Some(&e.cert))),
        )
        .await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn extractor_without_the_layer() {
    let e = env().await;
    let validator = e.validator(false).await;
    async fn me(t: ValidatedToken) -> String {
        format!("{}:{}", t.claims().sub().unwrap_or("?"), t.is_bound())
    }
    async fn open() -> &'static str {
        "open"
    }
    let app = Router::new()
        .route("/me", get(me))
        .route("/open", get(open))
        .layer(axum::Extension(validator));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let cfg = tls::server_config(&e.pki.server, ClientAuth::Optional).unwrap();
    tokio::spawn(TlsServer::new(listener, cfg).serve(app, std::future::pending()));

    let bound = e.token(Some(&e.cert));
    let (s, _, body) = e
        .get(port, "/me", Some(&e.cert), &format!("mtls_pop {bound}"))
        .await;
    assert_eq!((s, body.as_str()), (200, "app-1:true"));
    let (s, wa, _) = e
        .get(port, "/me", Some(&e.other), &format!("mtls_pop {bound}"))
        .await;
    assert_eq!(s, 401);
    assert!(wa.unwrap().contains("does not match cnf"));
    let (s, _, body) = e.get(port, "/open", None, "Bearer whatever").await;
    assert_eq!((s, body.as_str()), (200, "open"));
}

#[tokio::test]
async fn extractor_without_any_validator_is_a_server_error() {
    let e = env().await;
    async fn me(t: ValidatedToken) -> String {
        t.claims().issuer().to_owned()
    }
    let app = Router::new().route("/me", get(me));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let cfg = tls::server_config(&e.pki.server, ClientAuth::Optional).unwrap();
    tokio::spawn(TlsServer::new(listener, cfg).serve(app, std::future::pending()));
    let (s, _, _) = e
        .get(
            port,
            "/me",
            Some(&e.cert),
            &format!("mtls_pop {}", e.token(Some(&e.cert))),
        )
        .await;
    assert_eq!(s, 500);
}

#[tokio::test]
async fn nothing_prints_the_token() {
    let e = env().await;
    let v = e.validator(false).await;
    let t = e.token(Some(&e.cert));
    let sig = t.rsplit_once('.').unwrap().1.to_owned();
    let payload = t.split('.').nth(1).unwrap().to_owned();
    let ok = v
        .validate(
            &Presented::token(certbound_resource::ProtocolScheme::MtlsPop, &t)
                .peer(Some(&e.cert.thumbprint())),
        )
        .await
        .unwrap();
    let refused = v
        .validate(
            &Presented::token(certbound_resource::ProtocolScheme::MtlsPop, &t)
                .peer(Some(&e.other.thumbprint())),
        )
        .await
        .unwrap_err();
    for text in [
        format!("{ok:?}"),
        format!("{refused:?}"),
        refused.to_string(),
        format!("{:?}", refused.challenges()),
        format!("{v:?}"),
    ] {
        assert!(!text.contains(&sig), "{text}");
        assert!(!text.contains(&payload), "{text}");
    }
    // The claims are still all there for the application.
    assert_eq!(ok.claims().all()["jti"], "j-1");
    assert_eq!(ok.claims().header()["kid"], "k1");
    assert_eq!(ok.claims().kid(), Some("k1"));
    assert_eq!(ok.claims().scopes(), vec!["orders.read"]);
    assert_eq!(ok.claims().client_id(), Some("app-1"));
}
