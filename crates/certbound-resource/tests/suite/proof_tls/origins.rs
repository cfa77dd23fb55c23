//! Proofs name this server: forged hosts, sibling APIs, configured origins, wildcard listens.

use super::pop::pop_refused;
use super::*;
use certbound_resource::Presented;

/// docs/resource-server.md (proof origin) (a): a token and proof accepted by one API are replayed to a second API of
/// the same issuer and audience with `Host` forged to name the first. The second API
/// compares the proof with its own origin (its listen address here), never with `Host`.
#[tokio::test]
pub(super) async fn proof_replayed_to_a_sibling_api_with_a_forged_host_is_refused() {
    let w = world().await;
    let sibling = serve_api(&w.pki, validator(&w.pki, &w.issuer, |b| b).await).await;
    let first_host = format!("127.0.0.1:{}", w.api.port());

    let key = ProofKey::generate().unwrap();
    let token = w.dpop_token(&key);
    let auth = format!("DPoP {token}");
    let proof = key
        .dpop_proof("GET", &w.url(w.api), Some(&token), None)
        .unwrap();
    let r = send_host(&w, sibling, &first_host, &auth, &[&proof]).await;
    dpop_refused(&r, "invalid_dpop_proof", NOT_ORIGIN);
    // Without the forged Host it names another URL.
    let r = send(&w, sibling, http::Method::GET, &auth, &[&proof]).await;
    dpop_refused(&r, "invalid_dpop_proof", "proof is for another URL");
    // The pair itself is good where it was made for.
    let r = send(&w, w.api, http::Method::GET, &auth, &[&proof]).await;
    assert_eq!(r.status, 200, "{}", r.body);

    // The same with a signed HTTP request.
    let key = ProofKey::generate().unwrap();
    let token = w.pop_token(&key);
    let shr = key
        .signed_http_request(&token, "GET", &w.url(w.api))
        .unwrap();
    let auth = format!("PoP {shr}");
    let r = send_host(&w, sibling, &first_host, &auth, &[]).await;
    pop_refused(&r, &format!("signed request: {NOT_ORIGIN}"));
    let r = send(&w, w.api, http::Method::GET, &auth, &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);

    // Two APIs behind a gateway, each with its external URL: the same refusal.
    let orders = serve_api(
        &w.pki,
        validator(&w.pki, &w.issuer, |b| {
            b.external_base_url("https://orders.example")
        })
        .await,
    )
    .await;
    let billing = serve_api(
        &w.pki,
        validator(&w.pki, &w.issuer, |b| {
            b.external_base_url("https://billing.example")
        })
        .await,
    )
    .await;
    let key = ProofKey::generate().unwrap();
    let token = w.dpop_token(&key);
    let auth = format!("DPoP {token}");
    let proof = key
        .dpop_proof("GET", "https://orders.example/whoami", Some(&token), None)
        .unwrap();
    let r = send_host(&w, billing, "orders.example", &auth, &[&proof]).await;
    dpop_refused(&r, "invalid_dpop_proof", NOT_ORIGIN);
    let r = send_host(&w, billing, "billing.example", &auth, &[&proof]).await;
    dpop_refused(&r, "invalid_dpop_proof", "proof is for another URL");
    let r = send_host(&w, orders, "orders.example", &auth, &[&proof]).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

/// docs/resource-server.md (proof origin) (b): a proof naming the attacker's host, sent with that `Host`, is refused:
/// the server is not `attacker.example`, whatever the request says.
#[tokio::test]
pub(super) async fn proof_for_a_host_that_is_not_this_server_is_refused() {
    let w = world().await;
    let evil = "https://attacker.example/whoami";
    let key = ProofKey::generate().unwrap();
    let token = w.dpop_token(&key);
    let auth = format!("DPoP {token}");
    let proof = key.dpop_proof("GET", evil, Some(&token), None).unwrap();
    let r = send_host(&w, w.api, "attacker.example", &auth, &[&proof]).await;
    dpop_refused(&r, "invalid_dpop_proof", NOT_ORIGIN);
    // A good proof with a foreign Host is refused too; the refusal echoes nothing of it.
    let good = key
        .dpop_proof("GET", &w.url(w.api), Some(&token), None)
        .unwrap();
    let r = send_host(&w, w.api, "attacker.example", &auth, &[&good]).await;
    dpop_refused(&r, "invalid_dpop_proof", NOT_ORIGIN);
    assert!(!r.body.contains("attacker"), "{}", r.body);
    // The same proof with the Host naming this server: accepted.
    let host = format!("127.0.0.1:{}", w.api.port());
    let r = send_host(&w, w.api, &host, &auth, &[&good]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // A Host that is not a bare host[:port] names no origin.
    for host in [
        format!("{host}/whoami"),
        format!("u@{host}"),
        format!("{host} x"),
    ] {
        let p = key
            .dpop_proof("GET", &w.url(w.api), Some(&token), None)
            .unwrap();
        let r = send_host(&w, w.api, &host, &auth, &[&p]).await;
        dpop_refused(&r, "invalid_dpop_proof", NOT_ORIGIN);
    }

    // HTTP/2: `:authority` is a claim too. The server's certificate is valid for
    // `localhost`, but its origin is its listen address, https://127.0.0.1:PORT.
    let cfg = certbound_core::tls::client_config(&w.pki.anchors, None).unwrap();
    let h2 = reqwest::Client::builder()
        .use_preconfigured_tls(cfg)
        .resolve("localhost", w.api)
        .build()
        .unwrap();
    let local = format!("https://localhost:{}/whoami", w.api.port());
    let p = key.dpop_proof("GET", &local, Some(&token), None).unwrap();
    let resp = h2
        .get(&local)
        .header(header::AUTHORIZATION, &auth)
        .header("DPoP", p)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2);
    dpop_refused(&reply(resp).await, "invalid_dpop_proof", NOT_ORIGIN);

    let key = ProofKey::generate().unwrap();
    let token = w.pop_token(&key);
    let shr = key.signed_http_request(&token, "GET", evil).unwrap();
    let r = send_host(&w, w.api, "attacker.example", &format!("PoP {shr}"), &[]).await;
    pop_refused(&r, &format!("signed request: {NOT_ORIGIN}"));
}

/// docs/resource-server.md (proof origin) (b): several configured origins (one with a path prefix, two on one host): a
/// proof is accepted for the origin its `Host` names, refused for another configured one.
#[tokio::test]
pub(super) async fn each_configured_origin_is_accepted_with_its_own_host() {
    let w = world().await;
    let v = validator(&w.pki, &w.issuer, |b| {
        b.external_base_url("https://api.example.com")
            .external_base_urls([
                "https://gw.example.com/orders-api/",
                "https://gw.example.com:8443/v2",
                "https://gw.example.com/other-api",
            ])
    })
    .await;
    assert_eq!(
        v.proof_origins("0.0.0.0:443".parse().unwrap()).unwrap(),
        vec![
            "https://api.example.com",
            "https://gw.example.com/orders-api",
            "https://gw.example.com:8443/v2",
            "https://gw.example.com/other-api",
        ]
    );
    // In process: no Host at all is ambiguous with several origins, and so are two.
    let key = ProofKey::generate().unwrap();
    let token = w.dpop_token(&key);
    let uri: http::Uri = "/whoami".parse().unwrap();
    for hosts in [&[][..], &["api.example.com", "api.example.com"][..]] {
        let mut h = http::HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            format!("DPoP {token}").parse().unwrap(),
        );
        let p = key
            .dpop_proof("GET", "https://api.example.com/whoami", Some(&token), None)
            .unwrap();
        h.insert("dpop", p.parse().unwrap());
        for host in hosts {
            h.append(header::HOST, host.parse().unwrap());
        }
        let e = v
            .validate(&Presented::http(&http::Method::GET, &uri, &h))
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                certbound_resource::Rejection::InvalidDpopProof(
                    certbound_resource::DpopError::Proof(
                        certbound_core::pop::PopError::HostMissing
                    )
                )
            ),
            "{hosts:?}: {e:?}"
        );
    }
    let api = serve_api(&w.pki, v).await;
    let auth = format!("DPoP {token}");
    for (url, host) in [
        ("https://api.example.com/whoami", "api.example.com"),
        ("https://gw.example.com/orders-api/whoami", "GW.example.com"),
        (
            "https://gw.example.com/other-api/whoami",
            "gw.example.com:443",
        ),
        (
            "https://gw.example.com:8443/v2/whoami",
            "gw.example.com:8443",
        ),
    ] {
        let p = key.dpop_proof("GET", url, Some(&token), None).unwrap();
        let r = send_host(&w, api, host, &auth, &[&p]).await;
        assert_eq!(r.status, 200, "{url} with Host {host}: {}", r.body);
    }
    // A configured origin, but not the one the Host names.
    for (url, host, why) in [
        (
            "https://api.example.com/whoami",
            "gw.example.com",
            "proof is for another URL",
        ),
        (
            "https://gw.example.com/orders-api/whoami",
            "api.example.com",
            "proof is for another URL",
        ),
        (
            "https://gw.example.com/orders-api/whoami",
            "gw.example.com:8443",
            "proof is for another URL",
        ),
        // The prefix is part of the origin.
        (
            "https://gw.example.com/whoami",
            "gw.example.com",
            "proof is for another URL",
        ),
    ] {
        let p = key.dpop_proof("GET", url, Some(&token), None).unwrap();
        let r = send_host(&w, api, host, &auth, &[&p]).await;
        dpop_refused(&r, "invalid_dpop_proof", why);
    }
    // The listen address is not an origin any more.
    let p = key
        .dpop_proof("GET", &w.url(api), Some(&token), None)
        .unwrap();
    let r = send(&w, api, http::Method::GET, &auth, &[&p]).await;
    dpop_refused(&r, "invalid_dpop_proof", NOT_ORIGIN);

    // Signed HTTP requests likewise.
    let key = ProofKey::generate().unwrap();
    let token = w.pop_token(&key);
    let shr = key
        .signed_http_request(&token, "GET", "https://gw.example.com/orders-api/whoami")
        .unwrap();
    let r = send_host(&w, api, "gw.example.com", &format!("PoP {shr}"), &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let shr = key
        .signed_http_request(&token, "GET", "https://api.example.com/whoami")
        .unwrap();
    let r = send_host(&w, api, "gw.example.com", &format!("PoP {shr}"), &[]).await;
    pop_refused(&r, "signed request: proof is for another URL");
}

/// docs/resource-server.md (proof origin) (c): without an external URL the origin is `https://<listen address>`, which a
/// wildcard address is not: serving refuses to start, naming the option, and a server
/// started without the check refuses every proof.
#[tokio::test]
pub(super) async fn wildcard_listen_without_external_url_has_no_origin() {
    let w = world().await;
    let v = validator(&w.pki, &w.issuer, |b| b).await;
    for wildcard in ["0.0.0.0:8443", "[::]:8443"] {
        let e = v.proof_origins(wildcard.parse().unwrap()).unwrap_err();
        assert!(
            matches!(e, certbound_resource::BuildError::WildcardListen(_)),
            "{e:?}"
        );
        assert!(e.to_string().contains("--external-url"), "{e}");
        assert!(e.to_string().contains(wildcard), "{e}");
    }
    assert_eq!(
        v.proof_origins("127.0.0.1:8443".parse().unwrap()).unwrap(),
        vec!["https://127.0.0.1:8443"]
    );
    assert_eq!(
        v.proof_origins("[::1]:443".parse().unwrap()).unwrap(),
        vec!["https://[::1]"]
    );

    // sample::serve (what `certbound api serve` runs) refuses to start.
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let e = common::sample::serve(listener, &w.pki.server, v.clone(), async {})
        .await
        .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    assert!(e.to_string().contains("--external-url"), "{e}");
    // With an external URL it serves.
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let with_url = validator(&w.pki, &w.issuer, |b| {
        b.external_base_url("https://api.example.com")
    })
    .await;
    common::sample::serve(listener, &w.pki.server, with_url, async {})
        .await
        .unwrap();

    // A server on a wildcard address that skipped the check refuses proofs (fail closed).
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let tls = certbound_core::tls::server_config(
        &w.pki.server,
        certbound_core::tls::ClientAuth::Optional,
    )
    .unwrap();
    tokio::spawn(
        certbound_resource::transport::TlsServer::new(listener, tls)
            .serve(common::sample::router(v), std::future::pending()),
    );
    let api: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let key = ProofKey::generate().unwrap();
    let token = w.dpop_token(&key);
    let p = key
        .dpop_proof("GET", &w.url(api), Some(&token), None)
        .unwrap();
    let r = send(&w, api, http::Method::GET, &format!("DPoP {token}"), &[&p]).await;
    dpop_refused(
        &r,
        "invalid_dpop_proof",
        "this server has no origin to check proofs against: configure its external URL",
    );
    // Bearer tokens do not need an origin.
    let r = send(
        &w,
        api,
        http::Method::GET,
        &format!("Bearer {}", w.token(None)),
        &[],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
}
