//! The client against hostile IMDS and App Service endpoints (plain HTTP on loopback, as the
//! real ones are): endless bodies, tokens that would split a header, absurd lifetimes, and
//! endpoint URLs carrying credentials.
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use crate::common;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::http::header;
use axum::routing::get;
use certbound_core::jose::{JwsHeader, sign_compact};
use certbound_core::{JwsAlgorithm, KeyKind, PrivateKey, now_unix};
use certbound_imds::ImdsError;
use certbound_imds::{
    AppServiceClient, ImdsClient, MAX_RESPONSE_BYTES, ManagedIdentity, ManagedIdentityToken,
};
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const RESOURCE: &str = "https://vault.azure.net";
const SECRET_TOKEN: &str = "SeCrEt-ToKeN-value";

/// A server that answers every request with `200`, a `server: IMDS` header and an endless
/// chunked body (until the client hangs up).
async fn endless_server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let start = "HTTP/1.1 200 OK\r\nserver: IMDS/150.870.65.1854\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
                if sock.write_all(start.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = [b' '; 64 * 1024];
                let frame = [
                    format!("{:x}\r\n", chunk.len()).into_bytes(),
                    chunk.to_vec(),
                    b"\r\n".to_vec(),
                ]
                .concat();
                while sock.write_all(&frame).await.is_ok() {}
            });
        }
    });
    addr
}

fn imds(addr: SocketAddr) -> ImdsClient {
    ImdsClient::new(&format!("http://{addr}"))
        .unwrap()
        .with_retry_delay(Duration::from_millis(10))
}

/// An IMDS v1 answering `body` to token requests.
async fn v1_answering(body: serde_json::Value) -> ImdsClient {
    let app = Router::new().route(
        "/metadata/identity/oauth2/token",
        get(move || {
            let body = body.clone();
            async move { ([(header::SERVER, "IMDS/150.870.65.1854")], axum::Json(body)) }
        }),
    );
    imds(serve(app).await)
}

/// An App Service identity endpoint answering `body`.
async fn app_service_answering(body: serde_json::Value) -> AppServiceClient {
    let app = Router::new().route(
        "/msi/token",
        get(move || {
            let body = body.clone();
            async move { axum::Json(body) }
        }),
    );
    let addr = serve(app).await;
    AppServiceClient::new(&format!("http://{addr}/msi/token"), "header-secret")
        .unwrap()
        .with_retry_delay(Duration::from_millis(10))
}

fn jwt_expiring_at(exp: i64) -> String {
    let key = PrivateKey::generate(KeyKind::EcP256).unwrap();
    sign_compact(
        &JwsHeader::new(JwsAlgorithm::ES256),
        &serde_json::json!({"aud": RESOURCE, "exp": exp}),
        &key,
    )
    .unwrap()
}

async fn v1_token(body: serde_json::Value) -> Result<ManagedIdentityToken, ImdsError> {
    v1_answering(body)
        .await
        .imds_v1_token(&ManagedIdentity::SystemAssigned, RESOURCE)
        .await
}

#[tokio::test]
async fn an_endless_imds_v1_body_is_cut_at_the_limit() {
    let addr = endless_server().await;
    let err = imds(addr)
        .imds_v1_token(&ManagedIdentity::SystemAssigned, RESOURCE)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ImdsError::BodyTooLarge { limit, .. } if limit == MAX_RESPONSE_BYTES),
        "{err}"
    );
    let text = err.to_string();
    assert!(text.contains("/metadata/identity/oauth2/token"), "{text}");
    assert!(text.contains(&MAX_RESPONSE_BYTES.to_string()), "{text}");
}

#[tokio::test]
async fn an_endless_imds_v2_metadata_body_is_cut_at_the_limit() {
    let addr = endless_server().await;
    let err = imds(addr)
        .platform_metadata(&ManagedIdentity::SystemAssigned)
        .await
        .unwrap_err();
    assert!(matches!(err, ImdsError::BodyTooLarge { .. }), "{err}");
    assert!(err.to_string().contains("getplatformmetadata"), "{err}");
}

#[tokio::test]
async fn an_endless_app_service_body_is_cut_at_the_limit() {
    let addr = endless_server().await;
    let client = AppServiceClient::new(&format!("http://{addr}/msi/token"), "header-secret")
        .unwrap()
        .with_retry_delay(Duration::from_millis(10));
    let err = client
        .token(&ManagedIdentity::SystemAssigned, RESOURCE)
        .await
        .unwrap_err();
    assert!(matches!(err, ImdsError::BodyTooLarge { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("/msi/token"), "{text}");
    assert!(text.contains(&MAX_RESPONSE_BYTES.to_string()), "{text}");
    assert!(!text.contains("header-secret"), "{text}");
}

#[tokio::test]
async fn tokens_that_would_split_a_header_are_refused_on_imds_v1_and_app_service() {
    for bad in [
        format!("{SECRET_TOKEN}\r\nX-Injected: 1"),
        format!("{SECRET_TOKEN}\nX"),
        format!("{SECRET_TOKEN} x"),
    ] {
        let body =
            serde_json::json!({"access_token": bad, "expires_in": 3600, "token_type": "Bearer"});
        let err = v1_token(body.clone()).await.unwrap_err();
        assert!(matches!(err, ImdsError::MalformedResponse { .. }), "{err}");
        assert!(err.to_string().contains("HTTP header"), "{err}");
        assert!(!err.to_string().contains(SECRET_TOKEN), "{err}");
        let err = app_service_answering(body)
            .await
            .token(&ManagedIdentity::SystemAssigned, RESOURCE)
            .await
            .unwrap_err();
        assert!(matches!(err, ImdsError::MalformedResponse { .. }), "{err}");
        assert!(!err.to_string().contains(SECRET_TOKEN), "{err}");
    }
}

#[tokio::test]
async fn absurd_expires_in_saturates_instead_of_wrapping() {
    let now = now_unix();
    for huge in [
        serde_json::json!(i64::MAX),
        serde_json::json!(1e308),
        serde_json::json!("99999999999999999999"),
        serde_json::from_str::<serde_json::Value>("99999999999999999999").unwrap(),
    ] {
        let t = v1_token(serde_json::json!({"access_token": SECRET_TOKEN, "expires_in": huge}))
            .await
            .unwrap();
        assert!(t.expires_on > now, "{huge}: wrapped to {}", t.expires_on);
    }
    let t = v1_token(
        serde_json::json!({"access_token": SECRET_TOKEN, "expires_on": "99999999999999999999"}),
    )
    .await
    .unwrap();
    assert_eq!(t.expires_on, i64::MAX);
}

#[tokio::test]
async fn a_token_never_outlives_its_jwt_exp() {
    let exp = now_unix() + 600;
    let jwt = jwt_expiring_at(exp);
    let hundred_years = 100 * 365 * 24 * 3600_i64;
    for body in [
        serde_json::json!({"access_token": jwt, "expires_in": hundred_years, "refresh_in": hundred_years}),
        serde_json::json!({"access_token": jwt, "expires_in": 1e308}),
        serde_json::json!({"access_token": jwt, "expires_on": (now_unix() + hundred_years).to_string()}),
        serde_json::json!({"access_token": jwt, "expires_on": now_unix() + hundred_years}),
    ] {
        let t = v1_token(body.clone()).await.unwrap();
        assert_eq!(t.expires_on, exp, "{body}");
        assert!(t.refresh_on.is_none_or(|r| r < exp), "{body}");
        let t = app_service_answering(body.clone())
            .await
            .token(&ManagedIdentity::SystemAssigned, RESOURCE)
            .await
            .unwrap();
        assert_eq!(t.expires_on, exp, "App Service: {body}");
    }
}

#[test]
fn endpoint_urls_with_credentials_are_refused_without_showing_the_password() {
    let err = AppServiceClient::new("http://svc:hunter2pw@127.0.0.1:1/msi/token", "h").unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ImdsError::BadEndpoint { .. }), "{text}");
    assert!(text.contains("IDENTITY_ENDPOINT"), "{text}");
    assert!(text.contains("user name or password"), "{text}");
    assert!(!text.contains("hunter2pw"), "{text}");
    let err = AppServiceClient::from_env_with(|k| match k {
        "IDENTITY_ENDPOINT" => Some("http://:hunter2pw@127.0.0.1:1/msi/token".into()),
        "IDENTITY_HEADER" => Some("h".into()),
        _ => None,
    })
    .unwrap_err();
    assert!(!err.to_string().contains("hunter2pw"), "{err}");
    let err = ImdsClient::from_env_with(|k| {
        (k == "AZURE_POD_IDENTITY_AUTHORITY_HOST").then(|| "u:hunter2pw@127.0.0.1:9".into())
    })
    .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("AZURE_POD_IDENTITY_AUTHORITY_HOST"), "{text}");
    assert!(!text.contains("hunter2pw"), "{text}");
}

#[tokio::test]
async fn an_mtls_authentication_endpoint_with_credentials_is_refused() {
    let h = harness("https://user:hunter2pw@127.0.0.1:1", |c| c).await;
    let err = h
        .imds()
        .mint(&ManagedIdentity::SystemAssigned)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ImdsError::MalformedResponse { .. }), "{text}");
    assert!(text.contains("mtls_authentication_endpoint"), "{text}");
    assert!(!text.contains("hunter2pw"), "{text}");
}
