//! Interop: DPoP (RFC 9449) with an independent authorization server — the npm package
//! `oidc-provider` (interop/oidc-provider, `features.dPoP`, a `private_key_jwt` client with
//! `dpop_bound_access_tokens`). certbound's client gets a DPoP-bound token from it (`token_type`
//! `DPoP`, `cnf.jkt` = the app's proof-key thumbprint), and certbound's resource server accepts
//! that token with a fresh proof — and refuses it as Bearer, with a replayed proof, or with a
//! proof from another key.
//!
//! Each test runs twice over: once with the peer accepting proofs without a nonce, once with
//! `--dpop-nonce` (the token endpoint answers `use_dpop_nonce` first, and the client retries
//! with the server's nonce). The token is obtained both through the `App` API and by hand
//! (`ProofKey::dpop_proof` + a private_key_jwt client assertion + reqwest), which checks the
//! peer's answers step by step.
//!
//! Skips (with a printed reason) only when `node` or `node_modules` is missing **and** `CI`
//! is not set; in CI it fails instead. `scripts/test.sh` installs the packages.
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use certbound::cli::sample;
use certbound_client::{App, HeaderOptions, TokenSource};
use certbound_core::ca::{self, DevCa, IssueSpec};
use certbound_core::pop::ProofKey;
use certbound_core::tls::{self, TrustAnchors};
use certbound_core::{Certificate, CertifiedKey, KeyKind};
use certbound_resource::Validator;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, BufReader};

fn peer_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop/oidc-provider")
}

fn unavailable() -> Option<String> {
    let dir = peer_dir();
    if !dir.join("node_modules/oidc-provider").is_dir() {
        return Some(format!(
            "{} has no node_modules/oidc-provider (run `npm ci` there, or scripts/test.sh)",
            dir.display()
        ));
    }
    match std::process::Command::new("node").arg("--version").output() {
        Ok(o) if o.status.success() => None,
        _ => Some("`node` is not installed".into()),
    }
}

/// Whether to skip: only outside CI, and only when the peer is not installed.
fn skip() -> bool {
    let Some(reason) = unavailable() else {
        return false;
    };
    if std::env::var_os("CI").is_some() {
        panic!("interop peer unavailable in CI: {reason}");
    }
    eprintln!("SKIPPED oidc-provider DPoP interop: {reason}");
    true
}

/// The running oidc-provider.
struct Peer {
    child: tokio::process::Child,
    issuer: String,
    token_endpoint: String,
    dpop_client_id: String,
    scope: String,
    resource: String,
    /// Whether the token endpoint demands DPoP nonces.
    nonce: bool,
    /// The CA of the peer's TLS certificate.
    ca: Certificate,
}

async fn start_peer(dir: &Path, client: &CertifiedKey, nonce: bool) -> Peer {
    let ca = DevCa::generate("interop CA").unwrap();
    let tls = ca
        .issue_certified_key(
            &IssueSpec::server("localhost", &["127.0.0.1", "localhost"]),
            KeyKind::EcP256,
        )
        .unwrap();
    let (cert_p, key_p, client_p) = (
        dir.join("tls.pem"),
        dir.join("tls.key"),
        dir.join("client.pem"),
    );
    std::fs::write(&cert_p, tls.leaf().to_pem()).unwrap();
    std::fs::write(&key_p, tls.key().to_pkcs8_pem().as_str()).unwrap();
    std::fs::write(&client_p, client.leaf().to_pem()).unwrap();
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(peer_dir().join("server.mjs"))
        .args(["--tls-cert".as_ref(), cert_p.as_os_str()])
        .args(["--tls-key".as_ref(), key_p.as_os_str()])
        .args(["--client-cert".as_ref(), client_p.as_os_str()])
        .args(["--dpop-client-id", "certbound-dpop", "--port", "0"]);
    if nonce {
        cmd.arg("--dpop-nonce");
    }
    let mut child = cmd
        .current_dir(peer_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start node");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    // A generous bound so a broken peer fails the test instead of hanging it.
    let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("oidc-provider did not print its ready line")
        .unwrap()
        .expect("oidc-provider exited before it was ready");
    let ready: Value = serde_json::from_str(&line).expect("ready line is JSON");
    assert_eq!(ready["ready"], true, "{ready}");
    assert_eq!(ready["dpop_nonce"], nonce, "{ready}");
    let s = |k: &str| {
        ready[k]
            .as_str()
            .unwrap_or_else(|| panic!("ready line has no {k}: {ready}"))
            .to_owned()
    };
    Peer {
        issuer: s("issuer"),
        token_endpoint: s("token_endpoint"),
        dpop_client_id: s("dpop_client_id"),
        scope: s("scope"),
        resource: s("resource"),
        nonce,
        ca: ca.cert().clone(),
        child,
    }
}

/// The certbound resource server (the sample API) trusting the peer as issuer, with the
/// peer's resource as audience; `require_nonce` makes it demand DPoP nonces too.
struct Api {
    addr: SocketAddr,
    /// The CA of the API's TLS certificate.
    ca: Certificate,
}

impl Api {
    async fn start(peer: &Peer, require_nonce: bool) -> Self {
        let mut anchors = TrustAnchors::default();
        anchors.add(&peer.ca);
        let validator = Validator::builder()
            .issuer(&peer.issuer)
            .audience(&peer.resource)
            .trust_anchors(anchors)
            .require_dpop_nonce(require_nonce)
            .build()
            .await
            .expect("validator from oidc-provider's discovery document");
        let ca = DevCa::generate("api CA").unwrap();
        let identity = ca
            .issue_certified_key(
                &IssueSpec::server("localhost", &["127.0.0.1", "localhost"]),
                KeyKind::EcP256,
            )
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            sample::serve(listener, &identity, validator, std::future::pending()).await
        });
        Self {
            addr,
            ca: ca.cert().clone(),
        }
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}/whoami", self.addr.port())
    }

    fn http(&self) -> reqwest::Client {
        let mut anchors = TrustAnchors::default();
        anchors.add(&self.ca);
        reqwest::Client::builder()
            .use_preconfigured_tls(tls::client_config(&anchors, None).unwrap())
            .build()
            .unwrap()
    }
}

/// An answer: status, `WWW-Authenticate`, `DPoP-Nonce`, JSON body (or the text as a string).
struct Answer {
    status: u16,
    challenge: String,
    nonce: Option<String>,
    body: Value,
}

async fn answer(resp: reqwest::Response) -> Answer {
    let status = resp.status().as_u16();
    let header = |name: &str| {
        resp.headers()
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let challenge = header("www-authenticate");
    let nonce = Some(header("dpop-nonce")).filter(|n| !n.is_empty());
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer {
        status,
        challenge,
        nonce,
        body,
    }
}

async fn call_api(
    http: &reqwest::Client,
    url: &str,
    authorization: &str,
    proof: Option<&str>,
) -> Answer {
    let mut req = http.get(url).header("authorization", authorization);
    if let Some(p) = proof {
        req = req.header("dpop", p);
    }
    answer(req.send().await.unwrap()).await
}

fn peer_http(peer: &Peer) -> reqwest::Client {
    let mut anchors = TrustAnchors::default();
    anchors.add(&peer.ca);
    reqwest::Client::builder()
        .use_preconfigured_tls(tls::client_config(&anchors, None).unwrap())
        .build()
        .unwrap()
}

/// One token request by hand: private_key_jwt with the app certificate, and `proof` as the
/// `DPoP` header when given.
async fn token_request(peer: &Peer, cert: &CertifiedKey, proof: Option<&str>) -> Answer {
    let assertion =
        certbound_client::client_assertion(cert, &peer.dpop_client_id, &peer.token_endpoint, false)
            .unwrap();
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", peer.dpop_client_id.as_str()),
        ("scope", peer.scope.as_str()),
        ("resource", peer.resource.as_str()),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        ("client_assertion", assertion.as_str()),
    ];
    let mut req = peer_http(peer).post(&peer.token_endpoint).form(&form);
    if let Some(p) = proof {
        req = req.header("dpop", p);
    }
    answer(req.send().await.unwrap()).await
}

/// A DPoP-bound token for `key` by hand, following the peer's nonce challenge when it makes
/// one (and checking that it makes one exactly when it was started with `--dpop-nonce`).
async fn token_by_hand(peer: &Peer, cert: &CertifiedKey, key: &ProofKey) -> String {
    let proof = key
        .dpop_proof("POST", &peer.token_endpoint, None, None)
        .unwrap();
    let mut a = token_request(peer, cert, Some(&proof)).await;
    if peer.nonce {
        assert_eq!(a.status, 400, "{}", a.body);
        assert_eq!(a.body["error"], "use_dpop_nonce", "{}", a.body);
        let nonce = a
            .nonce
            .clone()
            .expect("use_dpop_nonce comes with DPoP-Nonce");
        let proof = key
            .dpop_proof("POST", &peer.token_endpoint, None, Some(&nonce))
            .unwrap();
        a = token_request(peer, cert, Some(&proof)).await;
    }
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["token_type"], "DPoP", "{}", a.body);
    a.body["access_token"].as_str().unwrap().to_owned()
}

fn claims(token: &str) -> Value {
    let (header, claims) = certbound_core::jose::decode_unverified(token).unwrap();
    assert_eq!(header["alg"], "ES256", "{header}");
    assert_eq!(header["typ"], "at+jwt", "{header}");
    claims
}

/// Sends `token` with fresh proofs from `key` to the API (following a resource nonce
/// challenge when the API demands nonces) and checks the hostile variants.
async fn check_resource_side(api: &Api, peer: &Peer, token: &str, key: &ProofKey) {
    let http = api.http();
    let url = api.url();
    let authz = format!("DPoP {token}");

    let mut nonce = None;
    let mut proof = key
        .dpop_proof("GET", &url, Some(token), nonce.as_deref())
        .unwrap();
    let mut a = call_api(&http, &url, &authz, Some(&proof)).await;
    if a.status == 401 && a.challenge.contains("use_dpop_nonce") {
        nonce = Some(
            a.nonce
                .clone()
                .expect("use_dpop_nonce comes with DPoP-Nonce"),
        );
        proof = key
            .dpop_proof("GET", &url, Some(token), nonce.as_deref())
            .unwrap();
        a = call_api(&http, &url, &authz, Some(&proof)).await;
    }
    assert_eq!(a.status, 200, "{} {}", a.challenge, a.body);
    assert_eq!(a.body["scheme"], "DPoP", "{}", a.body);
    assert_eq!(a.body["cnf"]["jkt"], key.thumbprint(), "{}", a.body);
    assert_eq!(a.body["iss"], peer.issuer.as_str());
    assert_eq!(a.body["aud"], peer.resource.as_str());
    assert_eq!(a.body["bound"], true);

    // The same proof again: a replay.
    let a = call_api(&http, &url, &authz, Some(&proof)).await;
    assert_eq!(a.status, 401, "{}", a.body);
    assert!(a.challenge.starts_with("DPoP "), "{}", a.challenge);
    assert!(
        a.challenge.contains("invalid_dpop_proof"),
        "{}",
        a.challenge
    );

    // The DPoP-bound token as a Bearer token (with or without the proof).
    for p in [
        None,
        Some(
            key.dpop_proof("GET", &url, Some(token), nonce.as_deref())
                .unwrap(),
        ),
    ] {
        let a = call_api(&http, &url, &format!("Bearer {token}"), p.as_deref()).await;
        assert_eq!(a.status, 401, "{}", a.body);
        assert!(
            a.challenge.contains("invalid_token") || a.challenge.contains("invalid_dpop_proof"),
            "{}",
            a.challenge
        );
    }

    // A fresh proof from another key: the jkt does not match.
    let other = ProofKey::generate().unwrap();
    let foreign = other
        .dpop_proof("GET", &url, Some(token), nonce.as_deref())
        .unwrap();
    let a = call_api(&http, &url, &authz, Some(&foreign)).await;
    assert_eq!(a.status, 401, "{}", a.body);
    assert!(a.challenge.starts_with("DPoP "), "{}", a.challenge);

    // No proof at all.
    let a = call_api(&http, &url, &authz, None).await;
    assert_eq!(a.status, 401, "{}", a.body);

    // A second fresh proof is accepted (proofs are per request, the token is reusable).
    let again = key
        .dpop_proof("GET", &url, Some(token), nonce.as_deref())
        .unwrap();
    let a = call_api(&http, &url, &authz, Some(&again)).await;
    assert_eq!(a.status, 200, "{} {}", a.challenge, a.body);
}

fn client_cert() -> CertifiedKey {
    ca::self_signed_certified_key(
        &IssueSpec::client("certbound dpop interop"),
        KeyKind::EcP256,
    )
    .unwrap()
}

async fn by_hand(nonce: bool) {
    tls::install_default_provider();
    let dir = tempfile::tempdir().unwrap();
    let cert = client_cert();
    let mut peer = start_peer(dir.path(), &cert, nonce).await;

    // The DPoP client cannot get a token without a proof (dpop_bound_access_tokens).
    let a = token_request(&peer, &cert, None).await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.body["error"].is_string(), "{}", a.body);
    assert!(a.body.get("access_token").is_none(), "{}", a.body);

    let key = ProofKey::generate().unwrap();
    let token = token_by_hand(&peer, &cert, &key).await;
    let c = claims(&token);
    assert_eq!(c["cnf"]["jkt"], key.thumbprint(), "{c}");
    assert!(c["cnf"].get("x5t#S256").is_none(), "{c}");
    assert_eq!(c["client_id"], peer.dpop_client_id.as_str(), "{c}");

    // A replayed token-request proof is refused by the peer.
    let proof = key
        .dpop_proof("POST", &peer.token_endpoint, None, None)
        .unwrap();
    if !nonce {
        let first = token_request(&peer, &cert, Some(&proof)).await;
        assert_eq!(first.status, 200, "{}", first.body);
        let replay = token_request(&peer, &cert, Some(&proof)).await;
        assert_eq!(replay.status, 400, "{}", replay.body);
    }

    let api = Api::start(&peer, nonce).await;
    check_resource_side(&api, &peer, &token, &key).await;
    let _ = peer.child.kill().await;
}

async fn through_app(nonce: bool) {
    tls::install_default_provider();
    let dir = tempfile::tempdir().unwrap();
    let cert = client_cert();
    let mut peer = start_peer(dir.path(), &cert, nonce).await;
    let api = Api::start(&peer, nonce).await;
    let url = api.url();

    let app = App::builder()
        .client_id(&peer.dpop_client_id)
        .authority(&peer.issuer)
        .certificate(cert.clone())
        .add_trust_anchor(&peer.ca)
        .build()
        .unwrap();
    let h = app
        .authorization_header_for_request(&[&peer.scope], &HeaderOptions::dpop(), "GET", &url)
        .await
        .unwrap();
    // One token request, plus the nonce retry when the peer demands nonces.
    assert_eq!(app.token_requests_sent(), if nonce { 2 } else { 1 });
    assert_eq!(h.scheme(), "DPoP");
    let token = h.value().strip_prefix("DPoP ").unwrap().to_owned();
    let c = claims(&token);
    assert_eq!(c["cnf"]["jkt"], app.proof_key().thumbprint(), "{c}");
    assert_eq!(c["iss"], peer.issuer.as_str());
    let proof = h
        .dpop_proof()
        .expect("a DPoP header carries a proof")
        .to_owned();

    // The proof the App made for this request, as it made it.
    let http = api.http();
    let mut a = call_api(&http, &url, h.value(), Some(&proof)).await;
    let mut source = h.source();
    if nonce {
        // The API demands its own nonce: the App learns it and proves again.
        assert_eq!(a.status, 401, "{}", a.body);
        assert!(a.challenge.contains("use_dpop_nonce"), "{}", a.challenge);
        let n = a
            .nonce
            .clone()
            .expect("use_dpop_nonce comes with DPoP-Nonce");
        assert!(app.note_dpop_nonce(&url, &n));
        let h = app
            .authorization_header_for_request(&[&peer.scope], &HeaderOptions::dpop(), "GET", &url)
            .await
            .unwrap();
        source = h.source();
        a = call_api(&http, &url, h.value(), h.dpop_proof()).await;
    }
    assert_eq!(a.status, 200, "{} {}", a.challenge, a.body);
    assert_eq!(a.body["cnf"]["jkt"], app.proof_key().thumbprint());
    assert_eq!(a.body["scheme"], "DPoP");
    if nonce {
        assert_eq!(source, TokenSource::Cache);
    }

    // The next request: the token from the cache, a fresh proof.
    let h2 = app
        .authorization_header_for_request(&[&peer.scope], &HeaderOptions::dpop(), "GET", &url)
        .await
        .unwrap();
    assert_eq!(h2.source(), TokenSource::Cache);
    assert_eq!(h2.value(), h.value());
    assert_ne!(h2.dpop_proof(), Some(proof.as_str()));
    let a = call_api(&http, &url, h2.value(), h2.dpop_proof()).await;
    assert_eq!(a.status, 200, "{} {}", a.challenge, a.body);
    assert_eq!(app.token_requests_sent(), if nonce { 2 } else { 1 });

    // The hostile variants, with proofs from the App's key.
    check_resource_side(&api, &peer, &token, app.proof_key()).await;
    let _ = peer.child.kill().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn oidc_provider_dpop_token_by_hand_accepted_by_certbound_resource() {
    if skip() {
        return;
    }
    by_hand(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn oidc_provider_dpop_token_by_hand_with_nonces() {
    if skip() {
        return;
    }
    by_hand(true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn certbound_app_gets_dpop_token_from_oidc_provider_and_resource_accepts_it() {
    if skip() {
        return;
    }
    through_app(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn certbound_app_follows_oidc_provider_and_resource_dpop_nonces() {
    if skip() {
        return;
    }
    through_app(true).await;
}
