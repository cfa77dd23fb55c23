//! The authority with its managed-identity emulator: certificates minted through IMDS v2
//! get bound tokens from the authority's mTLS token endpoint; IMDS v1 and App Service give
//! unbound tokens signed by the authority. Everything over real sockets (TLS for the
//! authority, plain HTTP for IMDS, as on Azure).
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use crate::common;

use certbound_authority::imds::{self, RunningEmulator};
use certbound_authority::{
    CertAuthMethod, ClientRegistration, ErrorCode, IssueRequest, OAuthError,
};
use certbound_core::ca::{self, IssueSpec};
use certbound_core::{CertifiedKey, KeyKind};
use certbound_imds::{
    AppServiceClient, ImdsClient, ImdsError, ManagedCertificateSource, ManagedIdentity,
    MintedCredential,
};
use common::*;
use serde_json::Value;

const RESOURCE: &str = "api://orders";

async fn with_emulator() -> (Env, RunningEmulator) {
    let env = start().await;
    let emu = imds::spawn_emulator(&env.running, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    (env, emu)
}

fn source(emu: &RunningEmulator, identity: ManagedIdentity) -> ManagedCertificateSource {
    ManagedCertificateSource::new(ImdsClient::new(&emu.imds_base()).unwrap(), identity)
}

/// The step 4 of docs/wire-formats.md (IMDS v2) request with the minted certificate.
async fn mtls_token(
    env: &Env,
    minted: &MintedCredential,
    cert: Option<&CertifiedKey>,
) -> (u16, Value) {
    let form = minted.token_request_form(RESOURCE);
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let resp = env
        .http(cert)
        .post(minted.token_endpoint())
        .form(&form)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

/// Verifies `token` with the key published at the authority's `jwks_uri`.
async fn verify(env: &Env, token: &str, aud: &str) -> Value {
    let jwks: jsonwebtoken::jwk::JwkSet = env
        .http(None)
        .get(env.running.jwks_uri())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kid = header(token)["kid"].as_str().unwrap().to_owned();
    let key = jsonwebtoken::DecodingKey::from_jwk(jwks.find(&kid).expect("kid published")).unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    v.set_audience(&[aud]);
    v.set_issuer(&[env.running.issuer()]);
    jsonwebtoken::decode::<Value>(token, &key, &v)
        .unwrap_or_else(|e| panic!("token does not verify with the authority's JWKS: {e}"))
        .claims
}

#[tokio::test]
async fn minted_certificate_gets_a_bound_mtls_pop_token() {
    let (env, emu) = with_emulator().await;
    let system = imds::system_assigned_identity(env.running.authority());
    let src = source(&emu, ManagedIdentity::SystemAssigned);
    let minted = src.credential().await.unwrap();

    // The emulator points the client at the authority's own token endpoint.
    assert_eq!(minted.token_endpoint(), env.running.token_endpoint());
    assert_eq!(minted.client_id(), system.client_id);
    assert_eq!(minted.tenant_id(), env.running.tenant());
    assert_eq!(minted.identity_type(), "SystemAssigned");
    let thumb = minted.certified_key().thumbprint().to_base64url();

    let (st, body) = mtls_token(&env, &minted, Some(minted.certified_key())).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["token_type"], "mtls_pop");
    let claims = verify(&env, body["access_token"].as_str().unwrap(), RESOURCE).await;
    assert_eq!(claims["cnf"]["x5t#S256"], thumb.as_str());
    assert_eq!(claims["client_id"], system.client_id.as_str());
    assert_eq!(claims["tid"], env.running.tenant());

    // The same request without the certificate, or with a look-alike certificate that the
    // authority's CA did not issue, authenticates nobody.
    let (st, body) = mtls_token(&env, &minted, None).await;
    assert_eq!((st, body["error"].as_str()), (401, Some("invalid_client")));
    let mut spec = IssueSpec::client(&system.client_id);
    spec.extra_subject
        .push(("DC".into(), env.running.tenant().to_owned()));
    let look_alike = ca::self_signed_certified_key(&spec, KeyKind::Rsa2048).unwrap();
    assert_eq!(
        look_alike.leaf().subject(),
        minted.certified_key().leaf().subject()
    );
    let (st, body) = mtls_token(&env, &minted, Some(&look_alike)).await;
    assert_eq!(
        (st, body["error"].as_str()),
        (401, Some("invalid_client")),
        "{body}"
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn re_minted_certificate_gets_a_token_with_the_new_binding() {
    let (env, emu) = with_emulator().await;
    let src = source(&emu, ManagedIdentity::SystemAssigned);
    let first = src.credential().await.unwrap();
    src.invalidate().await;
    let second = src.credential().await.unwrap();
    assert_eq!(src.mints(), 2);
    let (t1, t2) = (
        first.certified_key().thumbprint().to_base64url(),
        second.certified_key().thumbprint().to_base64url(),
    );
    assert_ne!(t1, t2);

    let (st, body) = mtls_token(&env, &second, Some(second.certified_key())).await;
    assert_eq!(st, 200, "{body}");
    let claims = verify(&env, body["access_token"].as_str().unwrap(), RESOURCE).await;
    assert_eq!(claims["cnf"]["x5t#S256"], t2.as_str());
    // The earlier certificate keeps working until it expires, bound to itself.
    let (st, body) = mtls_token(&env, &first, Some(first.certified_key())).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(claims_of(&body)["cnf"]["x5t#S256"], t1.as_str());
}

fn claims_of(body: &Value) -> Value {
    claims(body["access_token"].as_str().unwrap())
}

#[tokio::test]
async fn user_assigned_identity_has_its_own_certificate_and_client_id() {
    let (env, emu) = with_emulator().await;
    let user = imds::user_assigned_identity(env.running.authority());
    let system = imds::system_assigned_identity(env.running.authority());
    assert_ne!(user.client_id, system.client_id);

    let sys = source(&emu, ManagedIdentity::SystemAssigned)
        .credential()
        .await
        .unwrap();
    for identity in [
        ManagedIdentity::from_config(Some(&user.client_id)),
        ManagedIdentity::from_config(Some(&user.resource_id)),
        ManagedIdentity::ObjectId(user.object_id.clone()),
    ] {
        let minted = source(&emu, identity.clone()).credential().await.unwrap();
        assert_eq!(minted.client_id(), user.client_id, "{identity:?}");
        assert_eq!(minted.identity_type(), "UserAssigned");
        assert_ne!(
            minted.certified_key().thumbprint(),
            sys.certified_key().thumbprint()
        );
        let (st, body) = mtls_token(&env, &minted, Some(minted.certified_key())).await;
        assert_eq!(st, 200, "{body}");
        let claims = verify(&env, body["access_token"].as_str().unwrap(), RESOURCE).await;
        assert_eq!(claims["client_id"], user.client_id.as_str());
        assert_eq!(
            claims["cnf"]["x5t#S256"],
            minted.certified_key().thumbprint().to_base64url().as_str()
        );
    }
    // The system identity's certificate does not authenticate the user-assigned identity.
    let user_minted = source(&emu, ManagedIdentity::from_config(Some(&user.client_id)))
        .credential()
        .await
        .unwrap();
    let (st, _) = mtls_token(&env, &user_minted, Some(sys.certified_key())).await;
    assert_eq!(st, 401);
}

#[tokio::test]
async fn imds_v1_and_app_service_tokens_are_unbound_and_signed_by_the_authority() {
    let (env, emu) = with_emulator().await;
    let system = imds::system_assigned_identity(env.running.authority());
    let user = imds::user_assigned_identity(env.running.authority());
    let resource = "https://management.azure.com/";

    let v1 = ImdsClient::new(&emu.imds_base()).unwrap();
    let app = AppServiceClient::new(&emu.identity_endpoint, &emu.identity_header).unwrap();
    for (identity, expected) in [
        (ManagedIdentity::SystemAssigned, &system),
        (ManagedIdentity::ClientId(user.client_id.clone()), &user),
    ] {
        let tokens = [
            v1.imds_v1_token(&identity, resource).await.unwrap(),
            app.token(&identity, resource).await.unwrap(),
        ];
        for t in tokens {
            assert!(t.token_type.eq_ignore_ascii_case("bearer"));
            let claims = verify(&env, t.access_token(), resource).await;
            assert!(claims.get("cnf").is_none(), "unbound: {claims}");
            assert_eq!(claims["client_id"], expected.client_id.as_str());
            assert_eq!(claims["oid"], expected.object_id.as_str());
            assert_eq!(claims["exp"].as_i64(), Some(t.expires_on));
        }
    }

    // A wrong App Service secret is refused; IMDS without `Metadata: true` too.
    let wrong = AppServiceClient::new(&emu.identity_endpoint, "0123456789abcdef0123").unwrap();
    assert!(matches!(
        wrong
            .token(&ManagedIdentity::SystemAssigned, resource)
            .await,
        Err(ImdsError::Status { status: 401, .. })
    ));
    let r = reqwest::get(format!(
        "{}/metadata/identity/oauth2/token?api-version=2018-02-01&resource={resource}",
        emu.imds_base()
    ))
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 400);
}

#[tokio::test]
async fn an_imds_v1_only_host_cannot_mint() {
    let env = start().await;
    let config = imds::emulator_config(&env.running).v1_only(true);
    let emu = imds::spawn_emulator_with("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap();
    let err = source(&emu, ManagedIdentity::SystemAssigned)
        .credential()
        .await
        .unwrap_err();
    assert!(matches!(err, ImdsError::ImdsV1Only { .. }), "{err}");
    assert!(err.to_string().contains("mTLS PoP unavailable"), "{err}");
    // Unbound tokens still work.
    let t = ImdsClient::new(&emu.imds_base())
        .unwrap()
        .imds_v1_token(&ManagedIdentity::SystemAssigned, RESOURCE)
        .await
        .unwrap();
    verify(&env, t.access_token(), RESOURCE).await;
}

#[tokio::test]
async fn in_process_issuance_matches_the_token_endpoint_and_honours_registrations() {
    let env = start().await;
    let app = self_signed("restricted-app", KeyKind::EcP256);
    env.running
        .register(
            ClientRegistration::with_certificate(
                "restricted-app",
                app.leaf().clone(),
                CertAuthMethod::SelfSignedTlsClientAuth,
            )
            .audience("api://allowed"),
        )
        .unwrap();
    let issuer = env.running.local_issuer();
    assert_eq!(issuer.issuer(), env.running.issuer());

    let err: OAuthError = issuer
        .issue_token(&IssueRequest::new("restricted-app", "api://other"))
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidScope);
    let err = issuer
        .issue_token(&IssueRequest::new("has space", "api://allowed"))
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidRequest);
    let err = issuer
        .issue_token(&IssueRequest::new("restricted-app", "no resource"))
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidScope);

    let bound = env
        .running
        .issue_token(
            &IssueRequest::new("restricted-app", "api://allowed/.default")
                .bound_to(app.thumbprint()),
        )
        .unwrap();
    assert!(!format!("{bound:?}").contains(bound.access_token()));
    let claims = verify(&env, bound.access_token(), "api://allowed").await;
    assert_eq!(
        claims["cnf"]["x5t#S256"],
        app.thumbprint().to_base64url().as_str()
    );
    assert_eq!(claims["exp"].as_i64(), Some(bound.expires_on));
    assert_eq!(header(bound.access_token())["typ"], "at+jwt");

    // An unregistered client may ask for any audience.
    let t = issuer
        .issue_token(&IssueRequest::new("someone", "api://anything").object_id("oid-1"))
        .unwrap();
    let claims = verify(&env, t.access_token(), "api://anything").await;
    assert_eq!(
        (claims["sub"].as_str(), claims["oid"].as_str()),
        (Some("someone"), Some("oid-1"))
    );
    assert!(claims.get("cnf").is_none());
}

#[tokio::test]
async fn ready_line_names_the_emulator_and_identities_are_stable_per_directory() {
    let (env, emu) = with_emulator().await;
    let ready = imds::ready_json(&env.running, &emu);
    assert_eq!(ready["imds_addr"], emu.addr.to_string().as_str());
    assert_eq!(ready["imds_base"], emu.imds_base().as_str());
    assert_eq!(ready["identity_endpoint"], emu.identity_endpoint.as_str());
    assert_eq!(ready["identity_header"], emu.identity_header.as_str());
    assert_eq!(ready["addr"], env.running.addr().to_string().as_str());
    let system = imds::system_assigned_identity(env.running.authority());
    assert_eq!(
        ready["managed_identities"]["system_assigned"]["client_id"],
        system.client_id.as_str()
    );
    // The same directory reopened gives the same identities; another directory others.
    let again = certbound_authority::DevAuthority::open_or_init(
        env.running.authority().dir(),
        Default::default(),
    )
    .unwrap();
    assert_eq!(imds::system_assigned_identity(&again), system);
    let other = start().await;
    assert_ne!(
        imds::system_assigned_identity(other.running.authority()).client_id,
        system.client_id
    );
    // Debug output never carries the App Service secret.
    assert!(!format!("{emu:?}").contains(emu.identity_header.as_str()));
}
