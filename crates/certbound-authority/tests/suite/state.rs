//! The state directory: restart keeps keys and registrations, key files are 0600, a
//! registration written by another process (the CLI) is picked up by a running
//! authority, and secrets never show in Debug output.
#![allow(clippy::string_slice)]
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use crate::common;

use certbound_authority::{AuthorityOptions, ClientRegistration, DevAuthority};
use certbound_core::KeyKind;
use common::*;

const SCOPE: &str = "api://orders/.default";

#[tokio::test]
async fn restart_keeps_keys_and_registrations() {
    let env = start().await;
    let dir = env.running.authority().dir().to_path_buf();
    let app = env.register_self_signed("app", KeyKind::EcP256);
    let kid = env.running.authority().kid().to_owned();
    let tenant = env.running.tenant().to_owned();
    let ca = env.running.ca_cert().thumbprint();
    let tls_pem = std::fs::read(dir.join("tls.pem")).unwrap();
    let Env { dir: tmp, running } = env;
    running.shutdown().await;

    let again = DevAuthority::open_or_init(&dir, AuthorityOptions::default()).unwrap();
    assert_eq!(again.kid(), kid);
    assert_eq!(again.tenant(), tenant);
    assert!(again.ca_cert().thumbprint().ct_eq(&ca));
    assert_eq!(std::fs::read(dir.join("tls.pem")).unwrap(), tls_pem);
    let running = again.spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let env = Env { dir: tmp, running };
    let (st, body, _) = env
        .token(
            Some(&app),
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "app"),
                ("scope", SCOPE),
                ("token_type", "mtls_pop"),
            ],
        )
        .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(
        header(body["access_token"].as_str().unwrap())["kid"],
        kid.as_str()
    );

    // A different --tenant for an existing directory is refused, naming the stored one.
    let err = DevAuthority::open_or_init(
        &dir,
        AuthorityOptions {
            tenant: Some("other".into()),
            ..Default::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains(&tenant) && err.contains("authority.json"),
        "{err}"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn key_files_are_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let env = start().await;
    env.running
        .register(ClientRegistration::with_secret("s", "secret-secret"))
        .unwrap();
    let dir = env.running.authority().dir();
    for f in ["ca.key", "tls.key", "signing.key", "authority.json"] {
        let mode = std::fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{f}");
    }
    // No stray temporary files from the atomic writes.
    let names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
    // The registry holds a hash, not the secret.
    let text = std::fs::read_to_string(dir.join("authority.json")).unwrap();
    assert!(!text.contains("secret-secret"));
    assert!(text.contains("pbkdf2-sha256"));
}

#[tokio::test]
async fn running_authority_picks_up_registrations_from_another_process() {
    let env = start().await;
    let dir = env.running.authority().dir().to_path_buf();
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", "late"),
        ("client_secret", "late-secret-1"),
        ("scope", SCOPE),
    ];
    let (st, _, _) = env.token(None, &form).await;
    assert_eq!(st, 401);
    // What `certbound authority register` does: a separate open of the directory.
    DevAuthority::register_client(
        &dir,
        ClientRegistration::with_secret("late", "late-secret-1"),
    )
    .unwrap();
    let (st, body, _) = env.token(None, &form).await;
    assert_eq!(st, 200, "{body}");
    // Re-registering replaces: the old secret stops working.
    DevAuthority::register_client(
        &dir,
        ClientRegistration::with_secret("late", "late-secret-2"),
    )
    .unwrap();
    let (st, _, _) = env.token(None, &form).await;
    assert_eq!(st, 401);
    // A corrupted registry file keeps the last good registry in service.
    std::fs::write(dir.join("authority.json"), b"{ not json").unwrap();
    let mut f2 = form;
    f2[2].1 = "late-secret-2";
    let (st, body, _) = env.token(None, &f2).await;
    assert_eq!(st, 200, "{body}");
}

#[test]
fn secrets_never_in_debug_output() {
    let reg = ClientRegistration::with_secret("dbg", "do-not-print-me");
    let text = format!("{reg:?}");
    assert!(!text.contains("do-not-print-me"), "{text}");
    assert!(text.contains("redacted"));
    let dir = tempfile::tempdir().unwrap();
    let a = DevAuthority::open_or_init(dir.path(), AuthorityOptions::default()).unwrap();
    let key = std::fs::read_to_string(dir.path().join("signing.key")).unwrap();
    let text = format!("{a:?}");
    let body: String = key.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(!text.contains(&body[..40]), "{text}");
}

#[test]
fn bad_options_and_state_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let e = DevAuthority::open_or_init(
        dir.path().join("x"),
        AuthorityOptions {
            tenant: Some("bad/tenant".into()),
            ..Default::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("tenant"), "{e}");
    let d = dir.path().join("broken");
    DevAuthority::open_or_init(&d, AuthorityOptions::default()).unwrap();
    std::fs::remove_file(d.join("ca.key")).unwrap();
    let e = DevAuthority::open_or_init(&d, AuthorityOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("ca.key") && e.contains("missing"), "{e}");
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let e = DevAuthority::open_or_init(&file, AuthorityOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a directory"), "{e}");
}
