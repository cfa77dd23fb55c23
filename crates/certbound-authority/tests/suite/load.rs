//! Many concurrent token requests, valid and hostile, on shared and separate
//! connections: every one gets its own correct answer and tokens are unique.
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use crate::common;

use std::collections::HashSet;

use certbound_authority::{CertAuthMethod, ClientRegistration};
use certbound_core::KeyKind;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_each_get_the_right_answer() {
    let env = start().await;
    let apps: Vec<_> = (0..4)
        .map(|i| self_signed(&format!("load-{i}"), KeyKind::EcP256))
        .collect();
    for (i, app) in apps.iter().enumerate() {
        env.running
            .register(ClientRegistration::with_certificate(
                format!("load-{i}"),
                app.leaf().clone(),
                CertAuthMethod::SelfSignedTlsClientAuth,
            ))
            .unwrap();
    }
    let clients: Vec<_> = apps.iter().map(|a| env.http(Some(a))).collect();
    let te = env.running.token_endpoint().to_owned();
    let mut tasks = Vec::new();
    for n in 0..96usize {
        let i = n % apps.len();
        let client = clients[i].clone();
        let te = te.clone();
        // Every third request claims to be a different client than its certificate.
        let hostile = n % 3 == 0;
        let claimed = if hostile {
            format!("load-{}", (i + 1) % apps.len())
        } else {
            format!("load-{i}")
        };
        let want = apps[i].thumbprint().to_base64url();
        tasks.push(tokio::spawn(async move {
            let resp = client
                .post(&te)
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", claimed.as_str()),
                    ("scope", "api://load/.default"),
                    ("token_type", "mtls_pop"),
                ])
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let body: serde_json::Value = resp.json().await.unwrap();
            if hostile {
                assert_eq!(
                    (status, body["error"].as_str()),
                    (401, Some("invalid_client")),
                    "{body}"
                );
                None
            } else {
                assert_eq!(status, 200, "{body}");
                let c = claims(body["access_token"].as_str().unwrap());
                assert_eq!(c["cnf"]["x5t#S256"], want.as_str());
                assert_eq!(c["client_id"], claimed.as_str());
                Some(c["jti"].as_str().unwrap().to_owned())
            }
        }));
    }
    let mut jtis = HashSet::new();
    let mut ok = 0;
    for t in tasks {
        if let Some(j) = t.await.unwrap() {
            assert!(jtis.insert(j), "duplicate jti");
            ok += 1;
        }
    }
    assert_eq!(ok, 64);
}
