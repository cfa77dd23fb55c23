//! `api serve` checks DPoP and PoP proofs against its own origins.

use super::*;

/// A process that may refuse to start: its first stdout line (empty when it exited without
/// one). Killed on drop.
pub(super) struct Spawned {
    pub(super) child: Child,
    pub(super) first_line: String,
}

impl Spawned {
    fn start(args: &[&str]) -> Spawned {
        let mut child = bin()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn certbound");
        let mut first_line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut first_line)
            .expect("read stdout");
        Spawned { child, first_line }
    }

    /// Waits for the exit (after EOF on stdout) and returns the status and stderr.
    fn exit(mut self) -> (std::process::ExitStatus, String) {
        let status = self.child.wait().expect("wait");
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            use std::io::Read as _;
            let _ = e.read_to_string(&mut err);
        }
        (status, err)
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Re-signs a compact JWS (SHR) with `key` after `edit` changed its payload.
pub(super) fn resign(
    jws: &str,
    key: &certbound_core::PrivateKey,
    edit: impl FnOnce(&mut Value),
) -> String {
    use certbound_core::b64;
    let (h, mut p) = certbound_core::jose::decode_unverified(jws).unwrap();
    edit(&mut p);
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

/// One answer of the API: status and `WWW-Authenticate`.
pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) challenge: String,
}

/// docs/resource-server.md (proof origin) against `certbound api serve`: DPoP `htu` and SHR `u`/`p` must name the API's
/// own origin (`https://<--addr>` by default, else one of the repeatable `--external-url`s,
/// the one `Host` names); what the request claims is never trusted; a wildcard `--addr`
/// without `--external-url` refuses to start; every SHR is replay-protected; methods
/// compare case-sensitively. Tokens come from `certbound authority serve`, requests over
/// HTTP/1.1 with the `Host` a replayer or attacker would send.
#[test]
pub(super) fn api_serve_checks_proofs_against_its_own_origins() {
    use certbound_core::pop::ProofKey;
    use certbound_core::{KeyKind, PrivateKey};

    const SECRET: &str = "origin-app-secret-0123456789";
    let dir = tempfile::tempdir().unwrap();
    let auth_dir = dir.path().join("authority");
    let auth_dir_s = auth_dir.to_str().unwrap();
    let authority = Server::start(&["authority", "serve", "--dir", auth_dir_s]);
    let issuer = authority.ready["issuer"].as_str().unwrap().to_string();
    let ca = authority.ready["ca_cert"].as_str().unwrap().to_string();
    run_ok(&[
        "authority",
        "register",
        "--dir",
        auth_dir_s,
        "--client-id",
        "origin-app",
        "--secret",
        SECRET,
        "--audience",
        "api://cli-api",
    ]);
    let api = |extra: &[&str]| {
        let mut args = vec![
            "api",
            "serve",
            "--authority",
            &issuer,
            "--audience",
            "api://cli-api",
            "--ca-cert",
            &ca,
        ];
        args.extend_from_slice(extra);
        Server::start(&args)
    };
    let first = api(&[]);
    let second = api(&[]);
    let gateway = api(&[
        "--external-url",
        "https://api.example.com",
        "--external-url",
        "https://gw.example.com/orders-api/",
    ]);
    let addr = |s: &Server| s.ready["addr"].as_str().unwrap().to_owned();
    let (a, b, g) = (addr(&first), addr(&second), addr(&gateway));
    // (c) A specific address without --external-url: the origin is https://IP:PORT.
    assert_eq!(first.ready["external_url"], Value::Null);
    assert_eq!(
        first.ready["proof_origins"],
        serde_json::json!([format!("https://{a}")])
    );
    assert_eq!(gateway.ready["external_url"], "https://api.example.com");
    assert_eq!(
        gateway.ready["external_urls"],
        serde_json::json!([
            "https://api.example.com",
            "https://gw.example.com/orders-api/"
        ])
    );
    assert_eq!(
        gateway.ready["proof_origins"],
        serde_json::json!([
            "https://api.example.com",
            "https://gw.example.com/orders-api"
        ])
    );

    let mut anchors = certbound_core::tls::TrustAnchors {
        extra: Vec::new(),
        system: false,
    };
    anchors.add_pem_file(Path::new(&ca)).unwrap();
    for s in [&first, &second, &gateway] {
        anchors
            .add_pem_file(Path::new(s.ready["tls_cert"].as_str().unwrap()))
            .unwrap();
    }
    let mut tls = certbound_core::tls::client_config(&anchors, None).unwrap();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .http1_only()
        .build()
        .unwrap();

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let disco: Value = http
            .get(format!("{issuer}/.well-known/openid-configuration"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token_endpoint = disco["token_endpoint"].as_str().unwrap().to_owned();
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", "origin-app"),
            ("client_secret", SECRET),
            ("scope", "api://cli-api/.default"),
        ];
        let dpop_key = ProofKey::generate().unwrap();
        let proof = dpop_key
            .dpop_proof("POST", &token_endpoint, None, None)
            .unwrap();
        let r: Value = http
            .post(&token_endpoint)
            .header("DPoP", proof)
            .form(&form)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(r["token_type"], "DPoP", "{r}");
        let dpop_token = r["access_token"].as_str().unwrap().to_owned();
        let signer = PrivateKey::generate(KeyKind::EcP256).unwrap();
        let copy = PrivateKey::from_der(&signer.to_pkcs8_der()).unwrap();
        let pop_key = ProofKey::from_private_key(copy, signer.default_jws_algorithm()).unwrap();
        let mut pop_form = form.to_vec();
        let req_cnf = pop_key.req_cnf();
        pop_form.extend([("token_type", "pop"), ("req_cnf", req_cnf.as_str())]);
        let r: Value = http
            .post(&token_endpoint)
            .form(&pop_form)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(r["token_type"], "pop", "{r}");
        let pop_token = r["access_token"].as_str().unwrap().to_owned();

        // GET https://{to}/whoami with `Host: host`.
        let call = |to: &str, host: &str, authorization: String, dpop: Option<String>| {
            let mut req = http
                .get(format!("https://{to}/whoami"))
                .header("host", host)
                .header("authorization", authorization);
            if let Some(p) = dpop {
                req = req.header("dpop", p);
            }
            async move {
                let resp = req.send().await.unwrap();
                let challenge = resp
                    .headers()
                    .get("www-authenticate")
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default();
                Answer {
                    status: resp.status().as_u16(),
                    challenge,
                }
            }
        };
        let dpop = |method: &str, url: &str| {
            Some(
                dpop_key
                    .dpop_proof(method, url, Some(&dpop_token), None)
                    .unwrap(),
            )
        };
        let dpop_auth = || format!("DPoP {dpop_token}");
        let shr = |method: &str, url: &str| {
            format!(
                "PoP {}",
                pop_key
                    .signed_http_request(&pop_token, method, url)
                    .unwrap()
            )
        };
        let refused = |r: &Answer, scheme: &str, error: &str| {
            assert_eq!(r.status, 401, "{}", r.challenge);
            assert!(
                r.challenge.starts_with(scheme)
                    && r.challenge.contains(&format!("error=\"{error}\"")),
                "{}",
                r.challenge
            );
        };
        let not_origin = "the request's Host is not an origin of this server";
        let first_url = format!("https://{a}/whoami");

        // (a) A pair made for the first API, replayed to the second with Host forged.
        let p = dpop("GET", &first_url);
        let r = call(&b, &a, dpop_auth(), p.clone()).await;
        refused(&r, "DPoP", "invalid_dpop_proof");
        assert!(r.challenge.contains(not_origin), "{}", r.challenge);
        assert_eq!(call(&a, &a, dpop_auth(), p).await.status, 200);
        let s = shr("GET", &first_url);
        let r = call(&b, &a, s.clone(), None).await;
        refused(&r, "PoP", "invalid_token");
        assert!(r.challenge.contains(not_origin), "{}", r.challenge);
        assert_eq!(call(&a, &a, s, None).await.status, 200);

        // (b) A proof naming the attacker's host, with that Host.
        let evil = "https://attacker.example/whoami";
        let r = call(&a, "attacker.example", dpop_auth(), dpop("GET", evil)).await;
        refused(&r, "DPoP", "invalid_dpop_proof");
        let r = call(&a, "attacker.example", shr("GET", evil), None).await;
        refused(&r, "PoP", "invalid_token");
        // Each configured origin with its own Host (one with a path prefix) is accepted...
        for (url, host) in [
            ("https://api.example.com/whoami", "api.example.com"),
            ("https://gw.example.com/orders-api/whoami", "gw.example.com"),
        ] {
            let r = call(&g, host, dpop_auth(), dpop("GET", url)).await;
            assert_eq!(r.status, 200, "{url}: {}", r.challenge);
            let r = call(&g, host, shr("GET", url), None).await;
            assert_eq!(r.status, 200, "{url}: {}", r.challenge);
        }
        // ...another configured origin than the one Host names is not, nor the listen address.
        let r = call(
            &g,
            "gw.example.com",
            dpop_auth(),
            dpop("GET", "https://api.example.com/whoami"),
        )
        .await;
        refused(&r, "DPoP", "invalid_dpop_proof");
        let r = call(
            &g,
            &g,
            dpop_auth(),
            dpop("GET", &format!("https://{g}/whoami")),
        )
        .await;
        refused(&r, "DPoP", "invalid_dpop_proof");

        // (d) An SHR without nonce is accepted once, its replay refused.
        let bare = pop_key
            .signed_http_request(&pop_token, "GET", &first_url)
            .unwrap();
        let bare = resign(&bare, &signer, |p| {
            p.as_object_mut().unwrap().remove("nonce");
        });
        assert_eq!(call(&a, &a, format!("PoP {bare}"), None).await.status, 200);
        let r = call(&a, &a, format!("PoP {bare}"), None).await;
        refused(&r, "PoP", "invalid_token");
        assert!(r.challenge.contains("replayed"), "{}", r.challenge);

        // (e) Methods are case-sensitive: m="get" and htm="get" are not GET.
        let r = call(&a, &a, shr("get", &first_url), None).await;
        refused(&r, "PoP", "invalid_token");
        assert!(
            r.challenge.contains("another HTTP method"),
            "{}",
            r.challenge
        );
        let r = call(&a, &a, dpop_auth(), dpop("get", &first_url)).await;
        refused(&r, "DPoP", "invalid_dpop_proof");
    });

    // (c) A wildcard --addr without --external-url refuses to start, naming the flag.
    for wildcard in ["0.0.0.0:0", "[::]:0"] {
        let s = Spawned::start(&[
            "api",
            "serve",
            "--authority",
            &issuer,
            "--audience",
            "api://cli-api",
            "--ca-cert",
            &ca,
            "--addr",
            wildcard,
        ]);
        assert_eq!(s.first_line, "", "started on {wildcard}");
        let (status, err) = s.exit();
        assert!(!status.success());
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(err.contains("--external-url"), "{err}");
    }
    // With --external-url it serves there.
    let s = Spawned::start(&[
        "api",
        "serve",
        "--authority",
        &issuer,
        "--audience",
        "api://cli-api",
        "--ca-cert",
        &ca,
        "--addr",
        "0.0.0.0:0",
        "--external-url",
        "https://api.example.com",
    ]);
    let ready: Value = serde_json::from_str(s.first_line.trim()).unwrap();
    assert!(
        ready["addr"].as_str().unwrap().starts_with("0.0.0.0:"),
        "{ready}"
    );
    assert_eq!(
        ready["proof_origins"],
        serde_json::json!(["https://api.example.com"])
    );
    drop(s);

    for s in [first, second, gateway, authority] {
        assert!(s.terminate().success());
    }
}
