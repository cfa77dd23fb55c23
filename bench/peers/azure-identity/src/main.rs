//! Peer for certbound's cache-hit benchmark (bench/run.sh): the Azure SDK for Rust's
//! `ClientCertificateCredential::get_token`, cache hit. One real token is acquired from the
//! certbound development authority (private_key_jwt, RS256 assertion signed with the PFX's
//! key: the flow this credential implements), then the timed loop asks again for the same
//! scope and is served from the credential's own cache. Prints one JSON object.
//!
//! Usage: azure-identity-peer AUTHORITY_HOST TENANT CLIENT_ID PFX PASSWORD CA_PEM SCOPE ITERS
use std::sync::Arc;
use std::time::Instant;

use azure_core::credentials::{Secret, SecretBytes, TokenCredential};
use azure_core::http::{ClientOptions, Transport};
use azure_identity::{ClientCertificateCredential, ClientCertificateCredentialOptions};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    if a.len() != 8 {
        return Err("usage: azure-identity-peer AUTHORITY_HOST TENANT CLIENT_ID PFX PASSWORD CA_PEM SCOPE ITERS".into());
    }
    // The credential reads its authority host from the environment (no other knob in 1.0).
    if std::env::var("AZURE_AUTHORITY_HOST").ok().as_deref() != Some(a[0].as_str()) {
        return Err("set AZURE_AUTHORITY_HOST to AUTHORITY_HOST".into());
    }
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&a[5])?)?;
    let http = reqwest::Client::builder().tls_certs_only([ca]).build()?;
    let mut client_options = ClientOptions::default();
    client_options.transport = Some(Transport::new(Arc::new(http)));
    let options = ClientCertificateCredentialOptions {
        client_options,
        password: Some(Secret::new(a[4].clone())),
        ..Default::default()
    };
    let cred = ClientCertificateCredential::new(a[1].clone(), a[2].clone(), SecretBytes::new(std::fs::read(&a[3])?), Some(options))?;
    let scopes = [a[6].as_str()];
    let iters: u64 = a[7].parse()?;
    let first = cred.get_token(&scopes, None).await?;
    let token = first.token.secret().to_owned();
    for _ in 0..iters / 10 {
        std::hint::black_box(cred.get_token(&scopes, None).await?);
    }
    let t0 = Instant::now();
    for _ in 0..iters {
        let t = cred.get_token(std::hint::black_box(&scopes), None).await?;
        std::hint::black_box(t);
    }
    let ns = t0.elapsed().as_nanos() as f64 / iters as f64;
    // Every call was a hit: the token never changed.
    let last = cred.get_token(&scopes, None).await?;
    if last.token.secret() != token {
        return Err("the credential fetched a new token during the loop".into());
    }
    println!(
        "{}",
        serde_json::json!({"ns_per_op": ns, "iters": iters, "impl": "azure_identity ClientCertificateCredential::get_token (cache hit)"})
    );
    Ok(())
}
