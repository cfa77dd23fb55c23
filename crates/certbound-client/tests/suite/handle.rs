//! `App::header_handle`: a prepared header source for one API's scopes and options.
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use crate::common;

use certbound_client::{HeaderOptions, TokenSource};
use certbound_core::KeyKind;
use common::*;

const SCOPE: &str = "api://resource/.default";

#[tokio::test(flavor = "multi_thread")]
async fn handle_serves_the_cached_header_and_refreshes_on_demand() {
    let s = start(Mode::Entra).await;
    let cert = client_cert(KeyKind::EcP256);
    let app = s.builder().certificate(cert.clone()).build().unwrap();
    let handle = app.header_handle(
        &[" api://resource/.default", SCOPE],
        &HeaderOptions::mtls_pop(),
    );
    assert_eq!(handle.scopes(), [SCOPE.to_string()]);
    let h1 = handle.get().await.unwrap();
    assert_eq!(h1.source(), TokenSource::IdentityProvider);
    assert_eq!(h1.binding().unwrap().thumbprint(), cert.thumbprint());
    let h2 = handle.get().await.unwrap();
    assert_eq!(h2.source(), TokenSource::Cache);
    let borrowed = handle.cached().expect("fresh");
    assert_eq!(borrowed.value(), h1.value());
    assert!(
        !format!("{borrowed:?}").contains(h1.value()),
        "Debug redacts"
    );
    drop(borrowed);
    assert_eq!(h2.value(), h1.value());
    // The handle and the app share one cache.
    let h3 = app
        .authorization_header_for_app(&[SCOPE], &HeaderOptions::mtls_pop())
        .await
        .unwrap();
    assert_eq!(h3.value(), h1.value());
    assert_eq!(s.requests(), 1);
    // refresh(): a new token, served from then on.
    let r = handle.refresh().await.unwrap();
    assert_eq!(r.source(), TokenSource::IdentityProvider);
    assert_ne!(r.value(), h1.value());
    assert_eq!(handle.get().await.unwrap().value(), r.value());
    assert_eq!(s.requests(), 2);
    // A clone shares the remembered entry.
    assert_eq!(
        handle.clone().get().await.unwrap().source(),
        TokenSource::Cache
    );
    assert!(!format!("{handle:?}").contains(r.value()));
}

#[tokio::test(flavor = "multi_thread")]
async fn handle_moves_on_after_the_refresh_point() {
    let s = start(Mode::Entra).await;
    s.state
        .refresh_in
        .store(1, std::sync::atomic::Ordering::SeqCst);
    let app = s
        .builder()
        .certificate(client_cert(KeyKind::EcP256))
        .build()
        .unwrap();
    let handle = app.header_handle(&[SCOPE], &HeaderOptions::mtls_pop());
    assert!(handle.cached().is_none(), "nothing remembered yet");
    let first = handle.get().await.unwrap();
    // Past refresh_in the handle re-checks the cache, which refreshes in the background; the
    // old token keeps being served until the new one is there.
    let mut served_new = false;
    for _ in 0..200 {
        let h = handle.get().await.unwrap();
        if h.value() != first.value() {
            served_new = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(served_new, "the proactively refreshed token is picked up");
    assert!(s.requests() >= 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn handle_for_other_schemes() {
    let s = start(Mode::Generic).await;
    let cert = client_cert(KeyKind::EcP256);
    let app = s.builder().certificate(cert.clone()).build().unwrap();
    let e = app
        .header_handle(&[SCOPE], &HeaderOptions::dpop())
        .get()
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("authorization_header_for_request"),
        "{e}"
    );
    let m = app
        .header_handle(&[SCOPE], &HeaderOptions::mtls())
        .get()
        .await
        .unwrap();
    assert!(!m.has_token());
    assert_eq!(m.binding().unwrap().thumbprint(), cert.thumbprint());
    let b = app.header_handle(&[SCOPE], &HeaderOptions::bearer());
    assert_eq!(b.get().await.unwrap().scheme(), "Bearer");
    assert_eq!(b.get().await.unwrap().source(), TokenSource::Cache);
    assert_eq!(s.requests(), 1);
}
