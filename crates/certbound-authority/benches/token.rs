//! Token-endpoint round trips over loopback TLS (keep-alive connection, HTTP/2):
//! `cargo bench -p certbound-authority`.
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::sync::OnceLock;

use certbound_authority::{
    AuthorityOptions, CertAuthMethod, ClientRegistration, DevAuthority, RunningAuthority,
};
use certbound_core::ca::{self, IssueSpec};
use certbound_core::jose::{JwsHeader, sign_compact};
use certbound_core::tls::{TrustAnchors, client_config};
use certbound_core::{CertifiedKey, JwsAlgorithm, KeyKind, b64, now_unix};

struct Fixture {
    rt: tokio::runtime::Runtime,
    running: RunningAuthority,
    app: CertifiedKey,
    mtls: reqwest::Client,
    plain: reqwest::Client,
    _dir: tempfile::TempDir,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        certbound_core::tls::install_default_provider();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let authority =
            DevAuthority::open_or_init(dir.path().join("a"), AuthorityOptions::default()).unwrap();
        let running = rt
            .block_on(authority.spawn("127.0.0.1:0".parse().unwrap()))
            .unwrap();
        let app =
            ca::self_signed_certified_key(&IssueSpec::client("bench"), KeyKind::EcP256).unwrap();
        running
            .register(ClientRegistration::with_certificate(
                "bench",
                app.leaf().clone(),
                CertAuthMethod::SelfSignedTlsClientAuth,
            ))
            .unwrap();
        running
            .register(ClientRegistration::with_secret(
                "bench-secret",
                "bench-secret-value",
            ))
            .unwrap();
        let mut anchors = TrustAnchors::default();
        anchors.add(&running.ca_cert());
        let mk = |id: Option<&CertifiedKey>| {
            let _guard = rt.enter();
            reqwest::Client::builder()
                .use_preconfigured_tls(client_config(&anchors, id).unwrap())
                .build()
                .unwrap()
        };
        let (mtls, plain) = (mk(Some(&app)), mk(None));
        Fixture {
            rt,
            running,
            app,
            mtls,
            plain,
            _dir: dir,
        }
    })
}

fn post(client: &reqwest::Client, url: &str, form: &[(&str, &str)]) {
    let f = fixture();
    let status =
        f.rt.block_on(async { client.post(url).form(form).send().await.unwrap().status() });
    assert_eq!(status, 200);
}

#[divan::bench]
fn mtls_pop_self_signed() {
    let f = fixture();
    post(
        &f.mtls,
        f.running.token_endpoint(),
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "bench"),
            ("scope", "api://bench/.default"),
            ("token_type", "mtls_pop"),
        ],
    );
}

#[divan::bench]
fn private_key_jwt_es256() {
    let f = fixture();
    let mut jti = [0u8; 12];
    aws_lc_rs::rand::fill(&mut jti).unwrap();
    let now = now_unix();
    let claims = serde_json::json!({"iss": "bench", "sub": "bench", "aud": f.running.token_endpoint(),
        "jti": b64::encode(jti), "iat": now, "exp": now + 300});
    let h = JwsHeader::new(JwsAlgorithm::ES256).set(
        "x5t#S256",
        serde_json::json!(f.app.thumbprint().to_base64url()),
    );
    let jwt = sign_compact(&h, &claims, f.app.key()).unwrap();
    post(
        &f.plain,
        f.running.token_endpoint(),
        &[
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", &jwt),
            ("scope", "api://bench/.default"),
        ],
    );
}

#[divan::bench]
fn client_secret_post() {
    let f = fixture();
    post(
        &f.plain,
        f.running.token_endpoint(),
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "bench-secret"),
            ("client_secret", "bench-secret-value"),
            ("scope", "api://bench/.default"),
        ],
    );
}

fn main() {
    divan::main();
}
