//! The cache: single flight, refresh, pluggable caches, discovery, tenants.

use super::faults::bound_app;
use super::*;

#[tokio::test(flavor = "multi_thread")]
pub(super) async fn opaque_bound_token_is_accepted_with_its_binding() {
    let s = start(Mode::Entra).await;
    let (app, cert) = bound_app(&s).await;
    s.push(Fault::Opaque);
    let h = app
        .authorization_header_for_app(&[SCOPE], &bound())
        .await
        .unwrap();
    assert!(h.value().starts_with("mtls_pop opaque-"));
    assert_eq!(h.binding_thumbprint(), Some(&cert.thumbprint()));
}

#[tokio::test(flavor = "multi_thread")]
pub(super) async fn thousand_concurrent_cold_requests_make_one_token_request() {
    let s = start(Mode::Generic).await;
    let (app, _) = bound_app(&s).await;
    // The server holds the response briefly so the requests really overlap.
    s.state
        .delay_ms
        .store(200, std::sync::atomic::Ordering::SeqCst);
    let barrier = Arc::new(tokio::sync::Barrier::new(1000));
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let app = app.clone();
        let b = barrier.clone();
        tasks.push(tokio::spawn(async move {
            b.wait().await;
            app.authorization_header_for_app(
                &["api://x/.default", "second"],
                &HeaderOptions::mtls_pop(),
            )
            .await
            .map(|h| h.value().to_owned())
        }));
    }
    let mut values = std::collections::HashSet::new();
    for t in tasks {
        values.insert(t.await.unwrap().unwrap());
    }
    assert_eq!(values.len(), 1);
    assert_eq!(s.requests(), 1, "exactly one token request at the server");
    assert_eq!(app.token_requests_sent(), 1);
}

#[tokio::test(flavor = "multi_thread")]
pub(super) async fn concurrent_failures_are_shared_too() {
    let s = start(Mode::Generic).await;
    let (app, _) = bound_app(&s).await;
    s.state
        .delay_ms
        .store(200, std::sync::atomic::Ordering::SeqCst);
    s.push(Fault::Status(400, None));
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            app.authorization_header_for_app(&["x"], &HeaderOptions::mtls_pop())
                .await
                .is_err()
        }));
    }
    let mut errs = 0;
    for t in tasks {
        errs += t.await.unwrap() as usize;
    }
    assert!(errs >= 1);
    assert!(
        s.requests() < 50,
        "failures are shared by concurrent waiters: {} requests",
        s.requests()
    );
}

#[tokio::test(flavor = "multi_thread")]
pub(super) async fn proactive_refresh_serves_cached_token_while_refreshing() {
    let s = start(Mode::Generic).await;
    let (app, _) = bound_app(&s).await;
    s.state
        .refresh_in
        .store(1, std::sync::atomic::Ordering::SeqCst);
    let first = app
        .authorization_header_for_app(&[SCOPE], &bound())
        .await
        .unwrap();
    assert_eq!(s.requests(), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    s.state
        .refresh_in
        .store(0, std::sync::atomic::Ordering::SeqCst);
    // Past refresh_in: the cached token is served and one background refresh starts.
    let served = app
        .authorization_header_for_app(&[SCOPE], &bound())
        .await
        .unwrap();
    assert_eq!(served.value(), first.value());
    assert_eq!(served.source(), TokenSource::Cache);
    assert!(eventually(|| s.requests() == 2).await);
    let mut newer = None;
    for _ in 0..200 {
        let h = app
            .authorization_header_for_app(&[SCOPE], &bound())
            .await
            .unwrap();
        if h.value() != first.value() {
            newer = Some(h);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(newer.is_some(), "the refreshed token replaces the old one");
    assert_eq!(s.requests(), 2, "one refresh only");
}

#[tokio::test(flavor = "multi_thread")]
pub(super) async fn long_lived_tokens_refresh_at_half_life_and_expiry_margin_applies() {
    let s = start(Mode::Generic).await;
    let (app, _) = bound_app(&s).await;
    s.state
        .lifetime
        .store(7200, std::sync::atomic::Ordering::SeqCst);
    let t = app
        .acquire_token_for_app(&["long"], &bound())
        .await
        .unwrap();
    assert!(t.expires_on > certbound_core::now_unix() + 7000);
    // A token inside the 5-minute margin is not served from the cache.
    s.state
        .lifetime
        .store(299, std::sync::atomic::Ordering::SeqCst);
    app.acquire_token_for_app(&["short"], &bound())
        .await
        .unwrap();
    let t2 = app
        .acquire_token_for_app(&["short"], &bound())
        .await
        .unwrap();
    assert_eq!(t2.source, TokenSource::IdentityProvider);
    assert_eq!(s.requests(), 3);
}

#[tokio::test(flavor = "multi_thread")]
pub(super) async fn force_refresh_and_scope_order_and_tenant() {
    let s = start(Mode::Generic).await;
    let (app, _) = bound_app(&s).await;
    let a = app
        .authorization_header_for_app(&["b", "a"], &bound())
        .await
        .unwrap();
    let b = app
        .authorization_header_for_app(&["a", "b", "a"], &bound())
        .await
        .unwrap();
    assert_eq!(
        a.value(),
        b.value(),
        "scope order and duplicates do not matter"
    );
    assert_eq!(s.requests(), 1);
    let c = app
        .authorization_header_for_app(&["a", "b"], &bound().force_refresh(true))
        .await
        .unwrap();
    assert_ne!(c.value(), a.value());
    assert_eq!(c.source(), TokenSource::IdentityProvider);
    assert_eq!(s.requests(), 2);
    // The fresh token replaced the cached one.
    let d = app
        .authorization_header_for_app(&["a", "b"], &bound())
        .await
        .unwrap();
    assert_eq!(d.value(), c.value());
    // A subset of scopes is a different token.
    app.authorization_header_for_app(&["a"], &bound())
        .await
        .unwrap();
    assert_eq!(s.requests(), 3);
    let e = app
        .authorization_header_for_app(&[" "], &bound())
        .await
        .unwrap_err();
    assert_eq!(e.code(), "no_scopes");
}

#[tokio::test(flavor = "multi_thread")]
pub(super) async fn untrusted_server_certificate_is_a_clear_error() {
    let s = start(Mode::Generic).await;
    let app = App::builder()
        .client_id(CLIENT_ID)
        .authority(s.authority())
        .certificate(client_cert(KeyKind::EcP256))
        .trust_anchors(certbound_core::tls::TrustAnchors::default())
        .retry_policy(fast_policy())
        .build()
        .unwrap();
    let e = app
        .authorization_header_for_app(&[SCOPE], &bound())
        .await
        .unwrap_err();
    assert_eq!(e.code(), "discovery_failed", "{e}");
}

#[derive(Debug)]
pub(super) struct BrokenCache;

impl certbound_client::TokenCache for BrokenCache {
    fn get<'a>(
        &'a self,
        _k: &'a certbound_client::CacheKey,
    ) -> certbound_client::BoxFuture<
        'a,
        Result<Option<certbound_client::CachedToken>, certbound_client::CacheError>,
    > {
        Box::pin(async { Err(certbound_client::CacheError::new("backend down")) })
    }
    fn set<'a>(
        &'a self,
        _k: &'a certbound_client::CacheKey,
        _t: &'a certbound_client::CachedToken,
    ) -> certbound_client::BoxFuture<'a, Result<(), certbound_client::CacheError>> {
        Box::pin(async { Err(certbound_client::CacheError::new("backend down")) })
    }
    fn remove<'a>(
        &'a self,
        _k: &'a certbound_client::CacheKey,
    ) -> certbound_client::BoxFuture<'a, Result<(), certbound_client::CacheError>> {
        Box::pin(async { Err(certbound_client::CacheError::new("backend down")) })
    }
}

#[tokio::test(flavor = "multi_thread")]
pub(super) async fn pluggable_cache_is_shared_between_apps_and_its_failures_are_not_fatal() {
    let s = start(Mode::Generic).await;
    let cert = client_cert(KeyKind::EcP256);
    let shared = Arc::new(certbound_client::MemoryTokenCache::new(100));
    let app1 = s
        .builder()
        .certificate(cert.clone())
        .token_cache(shared.clone())
        .build()
        .unwrap();
    let app2 = s
        .builder()
        .certificate(cert.clone())
        .token_cache(shared.clone())
        .build()
        .unwrap();
    let t1 = app1
        .acquire_token_for_app(&[SCOPE], &bound())
        .await
        .unwrap();
    let t2 = app2
        .acquire_token_for_app(&[SCOPE], &bound())
        .await
        .unwrap();
    assert_eq!(
        t2.source,
        TokenSource::Cache,
        "a second process-like app finds the token in the shared cache"
    );
    assert_eq!(t1.access_token, t2.access_token);
    assert_eq!(s.requests(), 1);
    // Another certificate never gets that token.
    let app3 = s
        .builder()
        .certificate(client_cert(KeyKind::EcP256))
        .token_cache(shared)
        .build()
        .unwrap();
    let t3 = app3
        .acquire_token_for_app(&[SCOPE], &bound())
        .await
        .unwrap();
    assert_eq!(t3.source, TokenSource::IdentityProvider);
    assert_ne!(t3.access_token, t1.access_token);

    // A failing cache backend: tokens still flow (and the hot path still serves hits).
    let broken = s
        .builder()
        .certificate(cert)
        .token_cache(Arc::new(BrokenCache))
        .build()
        .unwrap();
    let a = broken
        .acquire_token_for_app(&["b1"], &bound())
        .await
        .unwrap();
    assert_eq!(a.source, TokenSource::IdentityProvider);
    let b = broken
        .acquire_token_for_app(&["b1"], &bound())
        .await
        .unwrap();
    assert_eq!(b.source, TokenSource::Cache);
}

#[tokio::test(flavor = "multi_thread")]
pub(super) async fn discovery_is_fetched_once_for_concurrent_cold_requests_on_many_keys() {
    let s = start(Mode::Generic).await;
    let (app, _) = bound_app(&s).await;
    s.state
        .delay_ms
        .store(100, std::sync::atomic::Ordering::SeqCst);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            app.authorization_header_for_app(&[format!("scope-{i}")], &HeaderOptions::mtls_pop())
                .await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(s.requests(), 20, "one token request per key");
    assert_eq!(
        s.state
            .discovery_requests
            .load(std::sync::atomic::Ordering::SeqCst),
        1,
        "discovery is single-flight and cached"
    );
}

#[tokio::test(flavor = "multi_thread")]
pub(super) async fn tenant_override_uses_that_tenants_discovery_and_its_own_cache_entry() {
    let s = start(Mode::Generic).await;
    let cert = client_cert(KeyKind::EcP256);
    let app = App::builder()
        .client_id(CLIENT_ID)
        .instance(format!("{}/", s.base))
        .tenant_id(TENANT)
        .certificate(cert)
        .add_trust_anchor(&s.ca)
        .retry_policy(fast_policy())
        .build()
        .unwrap();
    let home = app.acquire_token_for_app(&[SCOPE], &bound()).await.unwrap();
    let other = app
        .acquire_token_for_app(&[SCOPE], &bound().tenant("tenant-2"))
        .await
        .unwrap();
    assert_ne!(home.access_token, other.access_token);
    assert_eq!(other.source, TokenSource::IdentityProvider);
    let (_, claims) = certbound_core::jose::decode_unverified(other.access_token.expose()).unwrap();
    assert_eq!(claims["iss"], format!("{}/tenant-2/v2.0", s.base));
    let again = app
        .acquire_token_for_app(&[SCOPE], &bound().tenant("tenant-2"))
        .await
        .unwrap();
    assert_eq!(again.source, TokenSource::Cache);
    assert_eq!(again.access_token, other.access_token);
    assert_eq!(
        s.state
            .discovery_requests
            .load(std::sync::atomic::Ordering::SeqCst),
        2
    );
    let e = app
        .acquire_token_for_app(&[SCOPE], &bound().tenant("bad/tenant"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "invalid_authority");
}
