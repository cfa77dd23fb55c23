//! The plain `MTLS` scheme over real TLS on loopback: `GET /certificate` of the sample API
//! (the certificate alone, no token) behind `RequireClientCertificate`, and the
//! `ClientCertificate` extractor on its own.
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use crate::common;

use std::sync::Arc;

use axum::routing::get;
use axum::{Json, Router};
use certbound_core::ca::{self, DevCa, IssueSpec};
use certbound_core::tls::{self, ClientAuth, TrustAnchors};
use certbound_core::{Certificate, CertifiedKey, Jwks, JwsAlgorithm, KeyKind, PrivateKey};
use certbound_resource::Validator;
use certbound_resource::transport::TlsServer;
use certbound_resource::{CertificateRejection, ClientCertificate, RequireClientCertificate};
use common::sample;
use common::*;
use http::header;
use serde_json::{Value, json};

struct Env {
    pki: Pki,
    issuer: TestIssuer,
    signing: PrivateKey,
}

async fn env() -> Env {
    tls::install_default_provider();
    let pki = Pki::new();
    let signing = PrivateKey::generate(KeyKind::EcP256).unwrap();
    let issuer = TestIssuer::start(
        &pki,
        Jwks {
            keys: vec![signing.public_jwk().with_kid("k1")],
        },
    )
    .await;
    Env {
        pki,
        issuer,
        signing,
    }
}

/// A response: status, `WWW-Authenticate` (if any), body.
struct Resp {
    status: u16,
    www_authenticate: Option<String>,
    body: Value,
}

impl Env {
    async fn validator(&self) -> Validator {
        Validator::builder()
            .issuer(self.issuer.issuer.clone())
            .audience(AUD)
            .trust_anchors(self.pki.anchors.clone())
            .build()
            .await
            .unwrap()
    }

    /// The sample API with `policy` on `/certificate`, over TLS (client certificate optional).
    async fn serve(&self, policy: RequireClientCertificate) -> u16 {
        let router = sample::router_with(self.validator().await, policy);
        serve_router(&self.pki, router).await
    }

    fn token(&self, bound_to: &CertifiedKey) -> String {
        token(
            &header("ES256", Some("k1")),
            &claims(
                &self.issuer.issuer,
                Some(&bound_to.thumbprint().to_base64url()),
            ),
            Signer::Key(&self.signing, JwsAlgorithm::ES256),
        )
    }
}

async fn serve_router(pki: &Pki, router: Router) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let cfg = tls::server_config(&pki.server, ClientAuth::Optional).unwrap();
    tokio::spawn(TlsServer::new(listener, cfg).serve(router, std::future::pending()));
    port
}

/// A client presenting `chain` with `key` — built by hand so that expired certificates
/// (which `CertifiedKey` refuses to load) can be presented too.
fn client_presenting(pki: &Pki, chain: &[&Certificate], key: &PrivateKey) -> reqwest::Client {
    let mut cfg = rustls::ClientConfig::builder_with_provider(tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(pki.anchors.root_store())
        .with_client_auth_cert(
            chain.iter().map(|c| c.der().clone()).collect(),
            key.to_rustls(),
        )
        .unwrap();
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .use_preconfigured_tls(cfg)
        .build()
        .unwrap()
}

async fn fetch(client: &reqwest::Client, port: u16, path: &str, authz: Option<&str>) -> Resp {
    let mut req = client.get(format!("https://127.0.0.1:{port}{path}"));
    if let Some(a) = authz {
        req = req.header(header::AUTHORIZATION, a);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let www_authenticate = resp
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned());
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Resp {
        status,
        www_authenticate,
        body,
    }
}

fn issued(ca: &DevCa, cn: &str) -> CertifiedKey {
    ca.issue_certified_key(&IssueSpec::client(cn), KeyKind::EcP256)
        .unwrap()
}

#[tokio::test]
async fn allowed_certificate_gets_200_with_its_thumbprint() {
    let e = env().await;
    let app = e.pki.client_cert("partner-app");
    let port = e
        .serve(RequireClientCertificate::new().allow_thumbprint(app.thumbprint()))
        .await;

    let r = fetch(&e.pki.http(Some(&app)), port, "/certificate", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!({
            "x5t#S256": app.thumbprint().to_base64url(),
            "subject": "CN=partner-app",
            "issuer": "CN=partner-app",
            "not_before": app.leaf().not_before(),
            "not_after": app.leaf().not_after(),
        })
    );
    assert!(r.www_authenticate.is_none());
}

#[tokio::test]
async fn no_certificate_is_401_without_a_challenge() {
    let e = env().await;
    let app = e.pki.client_cert("partner-app");
    let port = e
        .serve(RequireClientCertificate::new().allow_thumbprint(app.thumbprint()))
        .await;

    let r = fetch(&e.pki.http(None), port, "/certificate", None).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.body["error"], "client_certificate_required");
    assert!(
        r.body["error_description"]
            .as_str()
            .unwrap()
            .contains("no client certificate was presented"),
        "{}",
        r.body
    );
    assert!(r.www_authenticate.is_none(), "{:?}", r.www_authenticate);

    // A valid token does not stand in for the certificate.
    let bound = e.token(&app);
    let r = fetch(
        &e.pki.http(None),
        port,
        "/certificate",
        Some(&format!("Bearer {bound}")),
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.body["error"], "client_certificate_required");
}

#[tokio::test]
async fn certificate_not_in_the_allow_list_is_403() {
    let e = env().await;
    let app = e.pki.client_cert("partner-app");
    let intruder = e.pki.client_cert("partner-app"); // same subject, other key
    let port = e
        .serve(RequireClientCertificate::new().allow_thumbprint(app.thumbprint()))
        .await;

    let r = fetch(&e.pki.http(Some(&intruder)), port, "/certificate", None).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.body["error"], "client_certificate_not_allowed");
    let d = r.body["error_description"].as_str().unwrap();
    assert!(d.contains(&intruder.thumbprint().to_base64url()), "{d}");
    assert!(d.contains("allow-list"), "{d}");
    assert!(r.www_authenticate.is_none());
}

#[tokio::test]
async fn empty_allow_list_admits_nobody() {
    let e = env().await;
    let app = e.pki.client_cert("partner-app");
    let port = e
        .serve(RequireClientCertificate::new().allow_thumbprints([]))
        .await;
    let r = fetch(&e.pki.http(Some(&app)), port, "/certificate", None).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.body["error"], "client_certificate_not_allowed");
}

#[tokio::test]
async fn trust_anchors_admit_their_ca_and_refuse_another() {
    let e = env().await;
    let partner_ca = DevCa::generate("partner CA").unwrap();
    let rogue_ca = DevCa::generate("partner CA").unwrap(); // same name, other key
    let mut anchors = TrustAnchors::default();
    anchors.add(partner_ca.cert());
    let port = e
        .serve(
            RequireClientCertificate::new()
                .trust_anchors(&anchors)
                .unwrap(),
        )
        .await;

    let good = issued(&partner_ca, "svc-a");
    let r = fetch(&e.pki.http(Some(&good)), port, "/certificate", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["x5t#S256"], good.thumbprint().to_base64url());
    assert_eq!(r.body["issuer"], "CN=partner CA");

    let rogue = issued(&rogue_ca, "svc-a");
    let r = fetch(&e.pki.http(Some(&rogue)), port, "/certificate", None).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.body["error"], "client_certificate_untrusted");
    let d = r.body["error_description"].as_str().unwrap();
    // Same issuer name, other key: the anchor is found by name and its signature fails.
    assert!(d.contains("does not chain to a trusted anchor"), "{d}");
    assert!(d.contains("signature"), "{d}");

    let other_ca = DevCa::generate("other CA").unwrap();
    let other = issued(&other_ca, "svc-a");
    let r = fetch(&e.pki.http(Some(&other)), port, "/certificate", None).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.body["error"], "client_certificate_untrusted");
    let d = r.body["error_description"].as_str().unwrap();
    assert!(d.contains("does not trust"), "{d}");

    // A self-signed certificate is untrusted too.
    let selfie = e.pki.client_cert("svc-a");
    let r = fetch(&e.pki.http(Some(&selfie)), port, "/certificate", None).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.body["error"], "client_certificate_untrusted");
}

#[tokio::test]
async fn trusted_ca_but_server_purpose_only_is_refused() {
    let e = env().await;
    let partner_ca = DevCa::generate("partner CA").unwrap();
    let mut anchors = TrustAnchors::default();
    anchors.add(partner_ca.cert());
    let port = e
        .serve(
            RequireClientCertificate::new()
                .trust_anchors(&anchors)
                .unwrap(),
        )
        .await;
    // Extended key usage serverAuth only: not a TLS client certificate.
    let server_only = partner_ca
        .issue_certified_key(&IssueSpec::server("svc-b", &["svc-b"]), KeyKind::EcP256)
        .unwrap();
    let r = fetch(&e.pki.http(Some(&server_only)), port, "/certificate", None).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.body["error"], "client_certificate_untrusted");
    assert!(
        r.body["error_description"]
            .as_str()
            .unwrap()
            .contains("not valid for TLS client authentication"),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn allow_list_and_anchors_must_both_pass() {
    let e = env().await;
    let partner_ca = DevCa::generate("partner CA").unwrap();
    let mut anchors = TrustAnchors::default();
    anchors.add(partner_ca.cert());
    let listed_trusted = issued(&partner_ca, "a");
    let unlisted_trusted = issued(&partner_ca, "b");
    let listed_untrusted = e.pki.client_cert("c");
    let port = e
        .serve(
            RequireClientCertificate::new()
                .allow_thumbprint(listed_trusted.thumbprint())
                .allow_thumbprint(listed_untrusted.thumbprint())
                .trust_anchors(&anchors)
                .unwrap(),
        )
        .await;
    let cases = [
        (&listed_trusted, 200, None),
        (
            &unlisted_trusted,
            403,
            Some("client_certificate_not_allowed"),
        ),
        (&listed_untrusted, 403, Some("client_certificate_untrusted")),
    ];
    for (cert, status, error) in cases {
        let r = fetch(&e.pki.http(Some(cert)), port, "/certificate", None).await;
        assert_eq!(r.status, status, "{}: {}", cert.leaf().subject(), r.body);
        if let Some(code) = error {
            assert_eq!(r.body["error"], code);
        }
    }
}

#[tokio::test]
async fn expired_and_not_yet_valid_certificates_are_403() {
    let e = env().await;
    let now = certbound_core::now_unix();
    let key = PrivateKey::generate(KeyKind::EcP256).unwrap();
    let expired = ca::self_signed(
        &IssueSpec::client("old-app").valid_between(now - 7200, now - 3600),
        &key,
    )
    .unwrap();
    let future = ca::self_signed(
        &IssueSpec::client("early-app").valid_between(now + 3600, now + 7200),
        &key,
    )
    .unwrap();
    // Both are on the allow-list: validity is checked anyway.
    let port = e
        .serve(
            RequireClientCertificate::new()
                .allow_thumbprint(expired.thumbprint())
                .allow_thumbprint(future.thumbprint()),
        )
        .await;

    let r = fetch(
        &client_presenting(&e.pki, &[&expired], &key),
        port,
        "/certificate",
        None,
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.body["error"], "client_certificate_expired");
    let d = r.body["error_description"].as_str().unwrap();
    assert!(
        d.contains(&certbound_core::fmt_unix(expired.not_after())),
        "{d}"
    );

    let r = fetch(
        &client_presenting(&e.pki, &[&future], &key),
        port,
        "/certificate",
        None,
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.body["error"], "client_certificate_not_yet_valid");
}

#[tokio::test]
async fn expired_certificate_from_a_trusted_ca_is_403_expired() {
    let e = env().await;
    let partner_ca = DevCa::generate("partner CA").unwrap();
    let mut anchors = TrustAnchors::default();
    anchors.add(partner_ca.cert());
    let port = e
        .serve(
            RequireClientCertificate::new()
                .trust_anchors(&anchors)
                .unwrap(),
        )
        .await;
    let now = certbound_core::now_unix();
    let key = PrivateKey::generate(KeyKind::EcP256).unwrap();
    let expired = partner_ca
        .issue(
            &IssueSpec::client("old-app").valid_between(now - 7200, now - 60),
            &key,
        )
        .unwrap();
    let r = fetch(
        &client_presenting(&e.pki, &[&expired], &key),
        port,
        "/certificate",
        None,
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.body["error"], "client_certificate_expired");
}

#[tokio::test]
async fn default_sample_router_admits_any_valid_certificate() {
    let e = env().await;
    let port = serve_api(&e.pki, e.validator().await).await.port();
    let app = e.pki.client_cert("anyone");
    let r = fetch(&e.pki.http(Some(&app)), port, "/certificate", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["x5t#S256"], app.thumbprint().to_base64url());
    let r = fetch(&e.pki.http(None), port, "/certificate", None).await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn whoami_still_requires_a_token() {
    let e = env().await;
    let app = e.pki.client_cert("partner-app");
    let port = e
        .serve(RequireClientCertificate::new().allow_thumbprint(app.thumbprint()))
        .await;
    let client = e.pki.http(Some(&app));

    // The allowed certificate alone does not open /whoami.
    let r = fetch(&client, port, "/whoami", None).await;
    assert_eq!(r.status, 401);
    assert!(
        r.www_authenticate.as_deref().unwrap().starts_with("Bearer"),
        "{:?}",
        r.www_authenticate
    );

    // With a bound token it does.
    let bound = e.token(&app);
    let r = fetch(&client, port, "/whoami", Some(&format!("mtls_pop {bound}"))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["cert_thumbprint"], app.thumbprint().to_base64url());

    // Unknown paths stay behind the token layer.
    let r = fetch(&client, port, "/elsewhere", None).await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn extractor_without_the_layer() {
    tls::install_default_provider();
    let pki = Pki::new();
    async fn required(cert: ClientCertificate) -> Json<Value> {
        Json(json!({"x5t": cert.thumbprint().to_base64url(), "chain": cert.chain().len()}))
    }
    async fn optional(cert: Option<ClientCertificate>) -> Json<Value> {
        Json(json!({"x5t": cert.map(|c| c.thumbprint().to_base64url())}))
    }
    let router = Router::new()
        .route("/required", get(required))
        .route("/optional", get(optional));
    let port = serve_router(&pki, router).await;

    // A chain of two (leaf + CA) is handed over as sent.
    let ca = DevCa::generate("chain CA").unwrap();
    let key = PrivateKey::generate(KeyKind::EcP256).unwrap();
    let leaf = ca.issue(&IssueSpec::client("leaf"), &key).unwrap();
    let with_chain = client_presenting(&pki, &[&leaf, ca.cert()], &key);
    let r = fetch(&with_chain, port, "/required", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"x5t": leaf.thumbprint().to_base64url(), "chain": 2})
    );

    let r = fetch(&with_chain, port, "/optional", None).await;
    assert_eq!(r.body["x5t"], leaf.thumbprint().to_base64url());

    let r = fetch(&pki.http(None), port, "/required", None).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.body["error"], "client_certificate_required");
    let r = fetch(&pki.http(None), port, "/optional", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, json!({"x5t": null}));
}

#[tokio::test]
async fn served_without_tls_server_is_a_clear_500() {
    use tower::ServiceExt as _;
    let router = Router::new()
        .route(
            "/c",
            get(|c: ClientCertificate| async move { c.subject().to_owned() }),
        )
        .layer(RequireClientCertificate::new());
    let resp = router
        .oneshot(
            http::Request::get("/c")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 500);
    let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        v["error_description"]
            .as_str()
            .unwrap()
            .contains("TlsServer"),
        "{v}"
    );
}

#[test]
fn policy_checks_and_rejections_directly() {
    tls::install_default_provider();
    let key = PrivateKey::generate(KeyKind::EcP256).unwrap();
    let cert = ca::self_signed(&IssueSpec::client("direct"), &key).unwrap();
    let chain: Arc<[_]> = vec![cert.der().clone()].into();
    let cc = ClientCertificate::from_chain(chain).unwrap();
    assert_eq!(cc.thumbprint(), cert.thumbprint());
    assert_eq!(cc.subject(), "CN=direct");

    let any = RequireClientCertificate::new();
    assert_eq!(any.check(&cc), Ok(()));
    assert_eq!(
        any.check_at(&cc, cert.not_after() + 1),
        Err(CertificateRejection::Expired {
            not_after: cert.not_after()
        })
    );
    assert_eq!(
        ClientCertificate::from_chain(Vec::new().into()).unwrap_err(),
        CertificateRejection::Missing
    );
    let garbage: Arc<[_]> = vec![rustls::pki_types::CertificateDer::from(vec![
        0x30, 0x03, 1, 2, 3,
    ])]
    .into();
    let err = ClientCertificate::from_chain(garbage).unwrap_err();
    assert!(matches!(err, CertificateRejection::Malformed(_)), "{err:?}");
    let source = std::error::Error::source(&err).expect("the parse error is the source");
    assert!(
        source.downcast_ref::<certbound_core::CertError>().is_some(),
        "{source:?}"
    );
    assert_eq!(err.status(), 403);

    // Anchors that are no CA at all are refused at configuration time.
    let empty = TrustAnchors::default();
    assert!(
        RequireClientCertificate::new()
            .trust_anchors(&empty)
            .is_err()
    );

    // Debug names the checks, never dumps the certificate bytes.
    let dbg = format!("{:?}", any.clone().allow_thumbprint(cert.thumbprint()));
    assert!(dbg.contains("allowed_thumbprints: Some(1)"), "{dbg}");
    let dbg = format!("{cc:?}");
    assert!(dbg.contains(&cert.thumbprint().to_base64url()), "{dbg}");
}
