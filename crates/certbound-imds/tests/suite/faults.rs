//! The client's behaviour on a misbehaving IMDS, and the emulator's refusals.
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use crate::common;

use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use certbound_core::KeyKind;
use certbound_core::ca::{DevCa, IssueSpec};
use certbound_imds::CertificateRequest;
use certbound_imds::ImdsError;
use certbound_imds::{ImdsClient, ManagedIdentity};
use common::*;

const SERVER: (header::HeaderName, &str) = (header::SERVER, "IMDS/150.870.65.1854");

fn metadata_body() -> serde_json::Value {
    serde_json::json!({
        "cuId": {"vmId": "vm-1"},
        "clientId": SYSTEM_CLIENT_ID,
        "tenantId": TENANT,
        "attestationEndpoint": "https://attest.invalid"
    })
}

fn client(addr: std::net::SocketAddr) -> ImdsClient {
    ImdsClient::new(&format!("http://{addr}"))
        .unwrap()
        .with_retry_delay(Duration::from_millis(10))
}

#[tokio::test]
async fn answer_without_server_header_is_refused() {
    let app = Router::new().route(
        "/metadata/identity/getplatformmetadata",
        get(|| async { axum::Json(metadata_body()) }),
    );
    let addr = serve(app).await;
    let err = client(addr)
        .platform_metadata(&ManagedIdentity::SystemAssigned)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ImdsError::MissingServerHeader { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("`server` header"), "{err}");
}

#[tokio::test]
async fn a_server_header_that_does_not_name_imds_is_refused() {
    let app = Router::new().route(
        "/metadata/identity/getplatformmetadata",
        get(|| async {
            (
                [(header::SERVER, "nginx/1.25")],
                axum::Json(metadata_body()),
            )
        }),
    );
    let addr = serve(app).await;
    let err = client(addr)
        .platform_metadata(&ManagedIdentity::SystemAssigned)
        .await
        .unwrap_err();
    assert!(matches!(err, ImdsError::NotImds { .. }), "{err}");
    assert!(err.to_string().contains("nginx/1.25"), "{err}");
}

#[tokio::test]
async fn issuecredential_refuses_a_csr_for_another_identity_than_the_query_selects() {
    let h = harness("https://127.0.0.1:1", |c| c).await;
    let imds = h.imds();
    let meta = imds
        .platform_metadata(&ManagedIdentity::SystemAssigned)
        .await
        .unwrap();
    let req = CertificateRequest::generate(&meta.client_id, &meta.tenant_id, &meta.cu_id).unwrap();
    let err = imds
        .issue_credential(&ManagedIdentity::ClientId(USER_CLIENT_ID.into()), req, None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ImdsError::Status { status: 400, .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("not the identity selected"),
        "{err}"
    );
    assert!(h.registrations().is_empty());
}

#[tokio::test]
async fn v1_only_host_is_a_clear_error_and_v1_tokens_still_work() {
    let h = harness("https://127.0.0.1:1", |c| c.v1_only(true)).await;
    let imds = h.imds();
    let err = imds
        .mint(&ManagedIdentity::SystemAssigned)
        .await
        .unwrap_err();
    assert!(matches!(err, ImdsError::ImdsV1Only { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("IMDS v1-only host: mTLS PoP unavailable"),
        "{err}"
    );
    assert!(h.registrations().is_empty());
    // Unbound tokens through IMDS v1 remain available on such a host.
    let token = imds
        .imds_v1_token(&ManagedIdentity::SystemAssigned, "https://vault.azure.net")
        .await
        .unwrap();
    assert_eq!(token.access_token(), h.issuer.seen.lock().unwrap()[0].1);
}

#[tokio::test]
async fn server_errors_are_retried_once() {
    let count = Counter::default();
    let c = count.clone();
    let app = Router::new().route(
        "/metadata/identity/getplatformmetadata",
        get(move || {
            let n = c.bump();
            async move {
                if n == 1 {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        [SERVER, (header::RETRY_AFTER, "0")],
                        "busy",
                    )
                        .into_response()
                } else {
                    ([SERVER], axum::Json(metadata_body())).into_response()
                }
            }
        }),
    );
    let addr = serve(app).await;
    let meta = client(addr)
        .platform_metadata(&ManagedIdentity::SystemAssigned)
        .await
        .unwrap();
    assert_eq!(meta.client_id, SYSTEM_CLIENT_ID);
    assert_eq!(count.get(), 2);
}

#[tokio::test]
async fn persistent_server_errors_fail_after_exactly_one_retry() {
    let count = Counter::default();
    let c = count.clone();
    let app = Router::new().route(
        "/metadata/identity/getplatformmetadata",
        get(move || {
            c.bump();
            async move {
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    [SERVER],
                    axum::Json(serde_json::json!({"error": "server_error", "error_description": "IMDS is sad"})),
                )
            }
        }),
    );
    let addr = serve(app).await;
    let err = client(addr)
        .platform_metadata(&ManagedIdentity::SystemAssigned)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ImdsError::Status { status: 500, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("IMDS is sad"), "{err}");
    assert_eq!(count.get(), 2);
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let count = Counter::default();
    let c = count.clone();
    let app = Router::new().route(
        "/metadata/identity/getplatformmetadata",
        get(move || {
            c.bump();
            async move { (StatusCode::BAD_REQUEST, [SERVER], "no") }
        }),
    );
    let addr = serve(app).await;
    let err = client(addr)
        .platform_metadata(&ManagedIdentity::SystemAssigned)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ImdsError::Status { status: 400, .. }),
        "{err}"
    );
    assert_eq!(count.get(), 1);
}

#[tokio::test]
async fn a_timeout_is_retried_once() {
    let count = Counter::default();
    let c = count.clone();
    let app = Router::new().route(
        "/metadata/identity/getplatformmetadata",
        get(move || {
            let n = c.bump();
            async move {
                if n == 1 {
                    // Never answers within the client's timeout.
                    std::future::pending::<()>().await;
                }
                ([SERVER], axum::Json(metadata_body())).into_response()
            }
        }),
    );
    let addr = serve(app).await;
    let imds = client(addr).with_timeout(Duration::from_millis(300));
    let meta = imds
        .platform_metadata(&ManagedIdentity::SystemAssigned)
        .await
        .unwrap();
    assert_eq!(meta.tenant_id, TENANT);
    assert_eq!(count.get(), 2);

    // Both attempts time out: a Timeout error naming the endpoint.
    let count2 = Counter::default();
    let c2 = count2.clone();
    let app = Router::new().route(
        "/metadata/identity/getplatformmetadata",
        get(move || {
            c2.bump();
            std::future::pending::<String>()
        }),
    );
    let addr = serve(app).await;
    let err = client(addr)
        .with_timeout(Duration::from_millis(200))
        .platform_metadata(&ManagedIdentity::SystemAssigned)
        .await
        .unwrap_err();
    assert!(matches!(err, ImdsError::Timeout { .. }), "{err}");
    assert!(err.to_string().contains("getplatformmetadata"), "{err}");
    assert_eq!(count2.get(), 2);
}

#[tokio::test]
async fn malformed_json_is_a_clear_error() {
    for body in [
        "{not json",
        r#"{"clientId": 5}"#,
        r#"{"cuId": "x", "clientId": "a", "tenantId": "b"}"#,
    ] {
        let app = Router::new().route(
            "/metadata/identity/getplatformmetadata",
            get(
                move || async move { ([SERVER, (header::CONTENT_TYPE, "application/json")], body) },
            ),
        );
        let addr = serve(app).await;
        let err = client(addr)
            .platform_metadata(&ManagedIdentity::SystemAssigned)
            .await
            .unwrap_err();
        assert!(
            matches!(err, ImdsError::MalformedResponse { .. }),
            "{body}: {err}"
        );
        assert!(err.to_string().contains("getplatformmetadata"), "{err}");
    }

    // A malformed issuecredential answer, too.
    let app = Router::new()
        .route(
            "/metadata/identity/getplatformmetadata",
            get(|| async { ([SERVER], axum::Json(metadata_body())) }),
        )
        .route(
            "/metadata/identity/issuecredential",
            post(|| async {
                (
                    [SERVER],
                    axum::Json(serde_json::json!({"certificate": "@@@"})),
                )
            }),
        );
    let addr = serve(app).await;
    let err = client(addr)
        .mint(&ManagedIdentity::SystemAssigned)
        .await
        .unwrap_err();
    assert!(matches!(err, ImdsError::MalformedResponse { .. }), "{err}");
    assert!(err.to_string().contains("issuecredential"), "{err}");
}

#[tokio::test]
async fn a_certificate_for_another_key_is_refused() {
    // An "IMDS" that answers every CSR with a certificate for a key of its own.
    let ca = std::sync::Arc::new(DevCa::generate("rogue CA").unwrap());
    let rogue = ca
        .issue_certified_key(&IssueSpec::client(SYSTEM_CLIENT_ID), KeyKind::Rsa2048)
        .unwrap();
    let cert_b64 = certbound_core::b64::encode_std(rogue.leaf().der());
    let app = Router::new()
        .route(
            "/metadata/identity/getplatformmetadata",
            get(|| async { ([SERVER], axum::Json(metadata_body())) }),
        )
        .route(
            "/metadata/identity/issuecredential",
            post(move |headers: HeaderMap, body: String| {
                let cert_b64 = cert_b64.clone();
                async move {
                    assert_eq!(headers.get("metadata").unwrap(), "true");
                    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                    assert!(v["csr"].as_str().is_some_and(|c| !c.is_empty()));
                    (
                        [SERVER],
                        axum::Json(serde_json::json!({
                            "client_id": SYSTEM_CLIENT_ID,
                            "tenant_id": TENANT,
                            "certificate": cert_b64,
                            "identity_type": "SystemAssigned",
                            "mtls_authentication_endpoint": "https://127.0.0.1:1"
                        })),
                    )
                }
            }),
        );
    let addr = serve(app).await;
    let err = client(addr)
        .mint(&ManagedIdentity::SystemAssigned)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ImdsError::CertificateForAnotherKey { .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains(&rogue.thumbprint().to_base64url()),
        "{err}"
    );
}

#[tokio::test]
async fn a_non_https_mtls_endpoint_is_refused() {
    let h = harness("http://127.0.0.1:1", |c| c).await;
    let err = h
        .imds()
        .mint(&ManagedIdentity::SystemAssigned)
        .await
        .unwrap_err();
    assert!(matches!(err, ImdsError::MalformedResponse { .. }), "{err}");
    assert!(err.to_string().contains("not https"), "{err}");
}

#[tokio::test]
async fn unreachable_imds_names_the_endpoint() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let err = client(addr)
        .mint(&ManagedIdentity::SystemAssigned)
        .await
        .unwrap_err();
    assert!(matches!(err, ImdsError::Unreachable { .. }), "{err}");
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
    assert!(
        err.to_string()
            .contains("AZURE_POD_IDENTITY_AUTHORITY_HOST"),
        "{err}"
    );
}

// ---- the emulator's refusals ---------------------------------------------------------------

#[tokio::test]
async fn emulator_requires_the_metadata_header() {
    let h = harness("https://127.0.0.1:1", |c| c).await;
    let http = reqwest::Client::new();
    let base = h.emu.imds_base();
    for (method, path) in [
        (
            "GET",
            "/metadata/identity/getplatformmetadata?cred-api-version=2.0",
        ),
        (
            "POST",
            "/metadata/identity/issuecredential?cred-api-version=2.0",
        ),
        (
            "GET",
            "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://x",
        ),
    ] {
        let url = format!("{base}{path}");
        let req = if method == "GET" {
            http.get(&url)
        } else {
            http.post(&url).body("{}")
        };
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 400, "{path}");
        assert!(resp.headers().contains_key("server"));
        let v: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(v["error"], "invalid_request");
        // "Metadata: false" is refused too.
        let req = if method == "GET" {
            http.get(&url)
        } else {
            http.post(&url).body("{}")
        };
        let resp = req.header("Metadata", "false").send().await.unwrap();
        assert_eq!(resp.status(), 400, "{path}");
    }
    assert!(h.registrations().is_empty());
    assert!(h.issuer.seen.lock().unwrap().is_empty());
}

async fn post_csr(h: &Harness, der: &[u8]) -> (u16, serde_json::Value) {
    let resp = reqwest::Client::new()
        .post(format!(
            "{}/metadata/identity/issuecredential?cred-api-version=2.0",
            h.emu.imds_base()
        ))
        .header("Metadata", "true")
        .json(&serde_json::json!({"csr": certbound_core::b64::encode_std(der)}))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

#[tokio::test]
async fn emulator_checks_the_csr() {
    let h = harness("https://127.0.0.1:1", |c| c).await;
    let meta = h
        .imds()
        .platform_metadata(&ManagedIdentity::SystemAssigned)
        .await
        .unwrap();

    // The genuine CSR is accepted (control).
    let good = CertificateRequest::generate(&meta.client_id, &meta.tenant_id, &meta.cu_id).unwrap();
    let (status, _) = post_csr(&h, good.der()).await;
    assert_eq!(status, 200);
    assert_eq!(h.registrations().len(), 1);

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "wrong tenant",
            CertificateRequest::generate(&meta.client_id, "other-tenant", &meta.cu_id)
                .unwrap()
                .der()
                .to_vec(),
            "tenant",
        ),
        (
            "unknown client",
            CertificateRequest::generate("not-an-identity", &meta.tenant_id, &meta.cu_id)
                .unwrap()
                .der()
                .to_vec(),
            "not a managed identity",
        ),
        (
            "another VM's cuId",
            CertificateRequest::generate(
                &meta.client_id,
                &meta.tenant_id,
                &serde_json::json!({"vmId": "someone-else"}),
            )
            .unwrap()
            .der()
            .to_vec(),
            "compute unit",
        ),
        (
            "tampered signature",
            {
                let mut d = good.der().to_vec();
                let n = d.len() - 1;
                d[n] ^= 0x55;
                d
            },
            "does not verify",
        ),
        ("not a CSR", b"hello".to_vec(), "PKCS#10"),
        (
            "PKCS#1 v1.5 signature (rcgen)",
            rcgen_csr(&meta.client_id, &meta.tenant_id),
            "RSASSA-PSS",
        ),
    ];
    for (name, der, needle) in cases {
        let (status, body) = post_csr(&h, &der).await;
        assert_eq!(status, 400, "{name}: {body}");
        assert_eq!(body["error"], "invalid_csr", "{name}");
        let desc = body["error_description"].as_str().unwrap();
        assert!(desc.contains(needle), "{name}: {desc}");
    }
    assert_eq!(
        h.registrations().len(),
        1,
        "no certificate for a refused CSR"
    );
}

/// A CSR that is right in every respect except its signature algorithm (RSA PKCS#1 v1.5).
fn rcgen_csr(client_id: &str, tenant_id: &str) -> Vec<u8> {
    use rcgen::{CertificateParams, DnType, KeyPair};
    let key = certbound_core::PrivateKey::generate(KeyKind::Rsa2048).unwrap();
    let der = key.to_pkcs8_der();
    let pkcs8 = rustls_pki_types::PrivatePkcs8KeyDer::from(der.as_slice());
    let kp = KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8, &rcgen::PKCS_RSA_SHA256).unwrap();
    let mut p = CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(
        DnType::CustomDnType(vec![0, 9, 2342, 19200300, 100, 1, 25]),
        tenant_id,
    );
    p.distinguished_name.push(DnType::CommonName, client_id);
    p.serialize_request(&kp).unwrap().der().to_vec()
}
