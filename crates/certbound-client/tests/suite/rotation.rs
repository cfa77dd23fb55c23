//! Credentials that change (SPEC §3.6): file-backed certificates that follow their files,
//! and reload-and-retry-once when the token endpoint rejects the credential.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use certbound_client::{App, ClientError, FileCertificateCredential, HeaderOptions};
use certbound_core::{CertifiedKey, KeyKind};

use crate::common::*;

const SCOPE: &str = "api://resource/.default";

/// Writes the certificate to `dir/app.pem` and its key to `dir/app.key` (a PEM pair), key first.
fn write_pair(dir: &Path, c: &CertifiedKey) -> PathBuf {
    let p = dir.join("app.pem");
    std::fs::write(dir.join("app.key"), c.key().to_pkcs8_pem().as_str()).unwrap();
    std::fs::write(&p, c.leaf().to_pem()).unwrap();
    p
}

fn watching(path: &Path) -> Arc<FileCertificateCredential> {
    Arc::new(
        FileCertificateCredential::open(path, None)
            .unwrap()
            .with_check_interval(Duration::ZERO),
    )
}

fn app_with(s: &FakeServer, cred: &Arc<FileCertificateCredential>) -> App {
    s.builder().credential(cred.clone()).build().unwrap()
}

/// A Kubernetes-style secret volume: `dir/..data` → `dir/<version>`, `dir/app.pem` →
/// `..data/app.pem` (and the key likewise). Returns the path the app reads.
#[cfg(unix)]
fn k8s_volume(dir: &Path, version: &str, c: &CertifiedKey) -> PathBuf {
    let v = dir.join(version);
    std::fs::create_dir(&v).unwrap();
    write_pair(&v, c);
    let tmp = dir.join("..data_tmp");
    std::os::unix::fs::symlink(version, &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap(); // the atomic swap
    for f in ["app.pem", "app.key"] {
        let link = dir.join(f);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(format!("..data/{f}"), &link).unwrap();
        }
    }
    dir.join("app.pem")
}

/// 100 callers ask for bound headers while `change` replaces the files; no call fails,
/// every header's token is bound to the certificate it presents, and every call that
/// starts after the credential switched presents the new certificate.
async fn rotate_under_load(
    setup: impl FnOnce(&Path, &CertifiedKey) -> PathBuf,
    change: impl FnOnce(&Path, &CertifiedKey),
    old: CertifiedKey,
    new: CertifiedKey,
    password: Option<&str>,
) {
    let s = start(Mode::Generic).await;
    let dir = tempfile::tempdir().unwrap();
    let path = setup(dir.path(), &old);
    let cred = Arc::new(
        FileCertificateCredential::open(&path, password.map(certbound_client::Secret::new))
            .unwrap()
            .with_check_interval(Duration::ZERO),
    );
    let app = app_with(&s, &cred);
    let switched = Arc::new(AtomicBool::new(false));
    let new_tp = new.thumbprint();
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let (app, switched) = (app.clone(), switched.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let after = switched.load(Ordering::SeqCst);
                let h = app
                    .authorization_header_for_app(&[SCOPE], &HeaderOptions::mtls_pop())
                    .await
                    .expect("no call fails during rotation");
                let presented = h.binding().unwrap().thumbprint();
                let token = h.value().split_once(' ').unwrap().1;
                assert_eq!(
                    cnf_of(token).as_deref(),
                    Some(presented.to_base64url().as_str()),
                    "a header's token is bound to the certificate it presents"
                );
                if after {
                    assert_eq!(
                        presented, new_tp,
                        "after the switch only the new certificate"
                    );
                    return;
                }
                tokio::task::yield_now().await;
            }
        }));
    }
    // The callers are running (the first token has been fetched) before the files change.
    assert!(eventually(|| s.requests() >= 1).await);
    change(dir.path(), &new);
    assert!(eventually(|| cred.certificate().thumbprint() == new_tp).await);
    switched.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(cred.rotations(), 1, "one rotation");
    assert_eq!(s.requests(), 2, "one token for each certificate");
    assert_eq!(*s.state.last_peer.lock().unwrap(), Some(new_tp));
    assert!(
        !app.transport().holds(&old.thumbprint()),
        "the old certificate's client is dropped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotation_pem_pair_replaced_in_place_under_load() {
    // Rewritten file by file: the state in between (new key, old certificate) does not
    // load and keeps the old certificate.
    rotate_under_load(
        write_pair,
        |d, new| {
            write_pair(d, new);
        },
        client_cert(KeyKind::EcP256),
        client_cert(KeyKind::EcP256),
        None,
    )
    .await;
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotation_pem_pair_symlink_swap_under_load() {
    rotate_under_load(
        |d, old| k8s_volume(d, "..2026_01", old),
        |d, new| {
            k8s_volume(d, "..2026_02", new);
        },
        client_cert(KeyKind::EcP256),
        client_cert(KeyKind::EcP256),
        None,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotation_pfx_rotates() {
    let pfx = |d: &Path, c: &CertifiedKey| {
        let tmp = d.join("app.pfx.tmp");
        std::fs::write(&tmp, c.to_pkcs12("pw").unwrap()).unwrap();
        std::fs::rename(&tmp, d.join("app.pfx")).unwrap();
        d.join("app.pfx")
    };
    rotate_under_load(
        pfx,
        |d, new| {
            pfx(d, new);
        },
        client_cert(KeyKind::EcP256),
        client_cert(KeyKind::EcP256),
        Some("pw"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rotation_half_written_pair_keeps_old() {
    let dir = tempfile::tempdir().unwrap();
    let old = client_cert(KeyKind::EcP256);
    let new = client_cert(KeyKind::EcP256);
    let path = write_pair(dir.path(), &old);
    let cred = watching(&path);
    // Key replaced, certificate not yet: they do not match.
    std::fs::write(
        dir.path().join("app.key"),
        new.key().to_pkcs8_pem().as_str(),
    )
    .unwrap();
    assert!(!cred.check_now());
    assert_eq!(cred.certificate().thumbprint(), old.thumbprint());
    assert!(cred.last_problem().unwrap().contains("app.pem"));
    // A truncated certificate.
    let pem = new.leaf().to_pem();
    std::fs::write(&path, &pem.as_bytes()[..pem.len() / 2]).unwrap();
    assert!(!cred.check_now());
    assert_eq!(cred.certificate().thumbprint(), old.thumbprint());
    // Then complete: taken.
    std::fs::write(&path, &pem).unwrap();
    assert!(cred.check_now());
    assert_eq!(cred.certificate().thumbprint(), new.thumbprint());
}

#[tokio::test(flavor = "multi_thread")]
async fn rotation_hostile_files_keep_old_and_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let old = client_cert(KeyKind::EcP256);
    let path = write_pair(dir.path(), &old);
    let cred = watching(&path);
    let name = path.display().to_string();
    // Garbage.
    std::fs::write(&path, b"\x00\xffnot a certificate").unwrap();
    assert!(!cred.check_now());
    assert!(cred.last_problem().unwrap().contains(&name));
    // A directory in its place.
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    assert!(!cred.check_now());
    let p = cred.last_problem().unwrap();
    assert!(p.contains(&name) && p.contains("not a regular file"), "{p}");
    // Gone.
    std::fs::remove_dir(&path).unwrap();
    assert!(!cred.check_now());
    assert!(cred.last_problem().unwrap().contains(&name));
    assert_eq!(cred.certificate().thumbprint(), old.thumbprint());
    // Unreadable (not meaningful as root, who reads anything).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        write_pair(dir.path(), &client_cert(KeyKind::EcP256));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).unwrap();
        if std::fs::read(&path).is_err() {
            assert!(!cred.check_now());
            assert!(cred.last_problem().unwrap().contains(&name));
            assert_eq!(cred.certificate().thumbprint(), old.thumbprint());
        }
    }
    // Opening a broken file names it.
    std::fs::write(dir.path().join("bad.pem"), "garbage").unwrap();
    let e = FileCertificateCredential::open(dir.path().join("bad.pem"), None).unwrap_err();
    assert!(e.to_string().contains("bad.pem"), "{e}");
}

const AADSTS700027: &str = "AADSTS700027: Client assertion contains an invalid signature.";

#[tokio::test(flavor = "multi_thread")]
async fn reload_on_rejection_retries_once() {
    let s = start(Mode::Generic).await;
    let dir = tempfile::tempdir().unwrap();
    let cred = watching(&write_pair(dir.path(), &client_cert(KeyKind::EcP256)));
    let app = app_with(&s, &cred);
    s.push(Fault::OAuth(401, "invalid_client", AADSTS700027));
    app.authorization_header_for_app(&[SCOPE], &HeaderOptions::mtls_pop())
        .await
        .unwrap();
    assert_eq!(cred.reloads(), 1, "one reload");
    assert_eq!(s.requests(), 2, "one retry");
}

#[tokio::test(flavor = "multi_thread")]
async fn reload_on_rejection_twice_surfaces_the_error() {
    let s = start(Mode::Generic).await;
    let dir = tempfile::tempdir().unwrap();
    let cred = watching(&write_pair(dir.path(), &client_cert(KeyKind::EcP256)));
    let app = app_with(&s, &cred);
    for _ in 0..4 {
        s.push(Fault::OAuth(401, "invalid_client", AADSTS700027));
    }
    let e = app
        .authorization_header_for_app(&[SCOPE], &HeaderOptions::mtls_pop())
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::TokenEndpoint { .. }), "{e}");
    assert!(e.to_string().contains("AADSTS700027"), "{e}");
    assert_eq!(s.requests(), 2, "exactly one retry, never a loop");
    assert_eq!(cred.reloads(), 1);
    // The next call within 30 s retries once but does not reload again.
    let _ = app
        .authorization_header_for_app(&[SCOPE], &HeaderOptions::mtls_pop())
        .await
        .unwrap_err();
    assert_eq!(s.requests(), 4);
    assert_eq!(cred.reloads(), 1, "at most one reload per 30 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reload_on_rejection_50_callers_one_reload() {
    let s = start(Mode::Generic).await;
    let dir = tempfile::tempdir().unwrap();
    let cred = watching(&write_pair(dir.path(), &client_cert(KeyKind::EcP256)));
    let app = app_with(&s, &cred);
    s.push(Fault::OAuth(401, "invalid_client", AADSTS700027));
    s.state.delay_ms.store(100, Ordering::SeqCst);
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move {
                app.authorization_header_for_app(&[SCOPE], &HeaderOptions::mtls_pop())
                    .await
            })
        })
        .collect();
    for c in calls {
        c.await.unwrap().unwrap();
    }
    assert_eq!(cred.reloads(), 1, "concurrent callers share one reload");
}

#[tokio::test(flavor = "multi_thread")]
async fn reload_falls_back_when_the_new_certificate_is_refused() {
    let s = start(Mode::Generic).await;
    let dir = tempfile::tempdir().unwrap();
    let old = client_cert(KeyKind::EcP256);
    let new = client_cert(KeyKind::EcP256);
    let cred = watching(&write_pair(dir.path(), &old));
    let app = app_with(&s, &cred);
    write_pair(dir.path(), &new);
    // The provider does not know the new certificate yet.
    s.push(Fault::OAuth(
        401,
        "invalid_client",
        "AADSTS700027: unknown key",
    ));
    let h = app
        .authorization_header_for_app(&[SCOPE], &HeaderOptions::mtls_pop())
        .await
        .unwrap();
    assert_eq!(h.binding().unwrap().thumbprint(), old.thumbprint());
    assert_eq!(cred.certificate().thumbprint(), old.thumbprint());
    // Not re-adopted until the files change again.
    assert!(!cred.check_now());
}

#[tokio::test(flavor = "multi_thread")]
async fn reload_not_for_other_errors() {
    let s = start(Mode::Generic).await;
    let dir = tempfile::tempdir().unwrap();
    let cred = watching(&write_pair(dir.path(), &client_cert(KeyKind::EcP256)));
    let app = app_with(&s, &cred);
    s.push(Fault::OAuth(400, "invalid_scope", "AADSTS70011: bad scope"));
    app.authorization_header_for_app(&[SCOPE], &HeaderOptions::mtls_pop())
        .await
        .unwrap_err();
    assert_eq!(cred.reloads(), 0);
    assert_eq!(s.requests(), 1);
}
