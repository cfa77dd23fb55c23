//! Shared helpers of the authority's tests: a running authority in a temp dir, mTLS reqwest
//! clients (both from `certbound-test`), token requests, assertions.
#![allow(dead_code)]

use certbound_authority::{
    AuthMethod, AuthorityOptions, CertAuthMethod, ClientRegistration, RunningAuthority,
};
use certbound_core::jose::{JwsHeader, sign_compact};
use certbound_core::tls::TrustAnchors;
use certbound_core::{CertifiedKey, JwsAlgorithm, KeyKind, b64, now_unix};
use certbound_test::authority::TestAuthority;
use serde_json::{Value, json};

pub struct Env {
    pub dir: tempfile::TempDir,
    pub running: RunningAuthority,
}

pub async fn start() -> Env {
    start_with(AuthorityOptions::default()).await
}

pub async fn start_with(opts: AuthorityOptions) -> Env {
    let TestAuthority { dir, running } = TestAuthority::start_with(opts).await;
    Env { dir, running }
}

impl Env {
    /// A self-signed client certificate registered as `client_id`
    /// (`self_signed_tls_client_auth`).
    pub fn register_self_signed(&self, client_id: &str, kind: KeyKind) -> CertifiedKey {
        let cert = self_signed(client_id, kind);
        self.running
            .register(ClientRegistration::with_certificate(
                client_id,
                cert.leaf().clone(),
                CertAuthMethod::SelfSignedTlsClientAuth,
            ))
            .unwrap();
        cert
    }

    /// A self-signed client certificate registered as `client_id` for `method` and the
    /// `more` methods.
    pub fn register_self_signed_for(
        &self,
        client_id: &str,
        method: CertAuthMethod,
        more: &[AuthMethod],
    ) -> CertifiedKey {
        let cert = self_signed(client_id, KeyKind::EcP256);
        let mut reg = ClientRegistration::with_certificate(client_id, cert.leaf().clone(), method);
        for m in more {
            reg = reg.auth_method(*m);
        }
        self.running.register(reg).unwrap();
        cert
    }

    pub fn anchors(&self) -> TrustAnchors {
        certbound_test::authority::anchors(&self.running)
    }
    /// A client trusting the authority's CA, presenting `identity` when given.
    pub fn http(&self, identity: Option<&CertifiedKey>) -> reqwest::Client {
        certbound_test::net::mtls_client(&self.anchors(), identity)
    }
    pub async fn token(
        &self,
        identity: Option<&CertifiedKey>,
        form: &[(&str, &str)],
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        let resp = self
            .http(identity)
            .post(self.running.token_endpoint())
            .form(form)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, body, headers)
    }
}

/// A token-endpoint response, raw text included (to check nothing secret is echoed).
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }
    pub fn description(&self) -> &str {
        self.body["error_description"].as_str().unwrap_or("")
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Env {
    /// The token endpoint at `https://localhost:PORT/…` (the same server).
    pub fn localhost_token_endpoint(&self) -> String {
        self.running.token_endpoint().replacen(
            &self.running.addr().to_string(),
            &format!("localhost:{}", self.running.addr().port()),
            1,
        )
    }
    /// POSTs `form` to `url` (an alias of the token endpoint) with extra `headers`
    /// (appended, so a name may repeat), presenting `identity` when given.
    pub async fn post(
        &self,
        url: &str,
        identity: Option<&CertifiedKey>,
        headers: &[(&str, &str)],
        form: &[(&str, &str)],
    ) -> Reply {
        let http = certbound_test::net::mtls_client_resolving(
            &self.anchors(),
            identity,
            "localhost",
            self.running.addr(),
        );
        let mut req = http.post(url).form(form);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            body,
            headers,
            text,
        }
    }
}

pub fn self_signed(cn: &str, kind: KeyKind) -> CertifiedKey {
    certbound_test::pki::self_signed_client(cn, kind)
}

/// Options for a test assertion.
pub struct Assertion<'a> {
    pub client_id: &'a str,
    pub aud: Value,
    pub exp_in: i64,
    pub jti: String,
    pub alg: JwsAlgorithm,
    pub x5t_s256: bool,
    pub x5t: bool,
    pub x5c: bool,
}

impl<'a> Assertion<'a> {
    pub fn new(client_id: &'a str, aud: &str, alg: JwsAlgorithm) -> Self {
        let mut j = [0u8; 12];
        aws_lc_rs::rand::fill(&mut j).unwrap();
        Self {
            client_id,
            aud: json!(aud),
            exp_in: 300,
            jti: b64::encode(j),
            alg,
            x5t_s256: true,
            x5t: false,
            x5c: false,
        }
    }
    pub fn sign(&self, cred: &CertifiedKey) -> String {
        let now = now_unix();
        let mut h = JwsHeader::new(self.alg).typ("JWT");
        if self.x5t_s256 {
            h = h.set("x5t#S256", json!(cred.thumbprint().to_base64url()));
        }
        if self.x5t {
            h = h.set("x5t", json!(cred.leaf().x5t_sha1()));
        }
        if self.x5c {
            h = h.set("x5c", json!(cred.x5c()));
        }
        let claims = json!({
            "iss": self.client_id, "sub": self.client_id, "aud": self.aud,
            "jti": self.jti, "iat": now, "nbf": now, "exp": now + self.exp_in,
        });
        sign_compact(&h, &claims, cred.key()).unwrap()
    }
}

pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Decodes a JWT's claims without verifying (tests verify separately where it matters).
pub fn claims(token: &str) -> Value {
    certbound_test::jwt_parts(token).1
}
pub fn header(token: &str) -> Value {
    certbound_test::jwt_parts(token).0
}

/// Registers the client `dpop-app` with the client secret `secret`.
pub fn register_secret_client(env: &Env, secret: &str) {
    env.running
        .register(ClientRegistration::with_secret("dpop-app", secret))
        .unwrap();
}

/// A client-credentials form for `dpop-app` with `secret`, for `scope`.
pub fn secret_form(secret: &'static str, scope: &'static str) -> Vec<(&'static str, &'static str)> {
    vec![
        ("grant_type", "client_credentials"),
        ("client_id", "dpop-app"),
        ("client_secret", secret),
        ("scope", scope),
    ]
}
