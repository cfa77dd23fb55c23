//! Unit tests of the hot cache.

use super::hot::*;
use super::*;

#[test]
fn fingerprint_is_order_insensitive() {
    let a = fingerprint(&["a", "b"], ProtocolScheme::Bearer, None);
    assert_eq!(a, fingerprint(&["b", "a"], ProtocolScheme::Bearer, None));
    assert_ne!(a, fingerprint(&["a", "b"], ProtocolScheme::MtlsPop, None));
    assert_ne!(
        a,
        fingerprint(&["a", "b"], ProtocolScheme::Bearer, Some("t"))
    );
    assert_ne!(a, fingerprint(&["a"], ProtocolScheme::Bearer, None));
}

#[test]
fn hot_entry_matches_sets_not_lists() {
    let app = App::builder()
        .client_id("c")
        .authority("https://idp.example/t")
        .client_secret("x")
        .build()
        .unwrap();
    let key = CacheKey::new(
        "https://idp.example/t",
        "t",
        "c",
        &["a", "b"],
        "bearer",
        None,
    );
    let tok = CachedToken::new(
        "Bearer",
        Secret::new("t"),
        certbound_core::now_unix() + 3600,
        None,
        None,
    );
    let e = app.remember(
        vec!["a".into(), "b".into()],
        ProtocolScheme::Bearer,
        None,
        key,
        tok,
        None,
    );
    assert!(e.matches(&["b", "a"], ProtocolScheme::Bearer, None));
    assert!(e.matches(&["a", "b", "a", " "], ProtocolScheme::Bearer, None));
    assert!(!e.matches(&["a", "a"], ProtocolScheme::Bearer, None));
    assert!(!e.matches(&["a"], ProtocolScheme::Bearer, None));
    assert!(!e.matches(&["a", "b", "c"], ProtocolScheme::Bearer, None));
    assert!(!e.matches(&["a", "b"], ProtocolScheme::MtlsPop, None));
    assert!(!e.matches(&["a", "b"], ProtocolScheme::Bearer, Some("t2")));
}

#[test]
fn app_is_send_sync_clone() {
    fn f<T: Send + Sync + Clone + 'static>() {}
    f::<App>();
}
