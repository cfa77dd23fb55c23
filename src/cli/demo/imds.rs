//! Minting the binding certificate through the IMDS emulator (managed identity).

use super::*;

/// The IMDS v2 steps: the stack's emulator, platform metadata, the CSR and the issued
/// certificate (registered with the authority by the emulator). Returns the certificate's
/// thumbprint and the managed-identity credential holding it.
pub(super) async fn mint_through_imds(
    stack: &LocalStack,
    n: &mut Narrator,
) -> anyhow::Result<(String, Arc<ManagedIdentityCredential>)> {
    let (running, emulator) = (stack.authority(), stack.imds()?);
    let identity = certbound_authority::imds::system_assigned_identity(running.authority());
    n.push(Step {
        name: "imds",
        ok: true,
        status: None,
        expected_status: None,
        detail: format!(
            "managed-identity (IMDS) emulator at {} for the system-assigned identity {}",
            emulator.imds_base(),
            identity.client_id
        ),
        data: json!({"imds_base": emulator.imds_base(), "identity_endpoint": emulator.identity_endpoint, "client_id": identity.client_id}),
    });

    // Platform metadata (the client refuses an answer without a `server` header).
    let imds = ImdsClient::new(&emulator.imds_base())?;
    let meta = imds
        .platform_metadata(&ManagedIdentity::SystemAssigned)
        .await
        .context("getplatformmetadata failed")?;
    let meta_ok = meta.client_id == identity.client_id && meta.tenant_id == running.tenant();
    n.push(Step {
        name: "platform_metadata",
        ok: meta_ok,
        status: None,
        expected_status: None,
        detail: format!(
            "GET /metadata/identity/getplatformmetadata → clientId {}, tenantId {}, cuId {}",
            meta.client_id, meta.tenant_id, meta.cu_id
        ),
        data: json!({"clientId": meta.client_id, "tenantId": meta.tenant_id, "cuId": meta.cu_id}),
    });

    // The CSR and issuecredential, through the credential the app will use.
    let credential = Arc::new(ManagedIdentityCredential::new(
        imds,
        ManagedIdentity::SystemAssigned,
    ));
    let minted = credential
        .minted()
        .await
        .context("minting the managed-identity certificate failed")?;
    let leaf = minted.certified_key().leaf();
    let key = minted.certified_key().key().describe();
    let subject_ok = leaf.subject().contains(&format!("CN={}", meta.client_id))
        && leaf.subject().contains(&format!("DC={}", meta.tenant_id));
    n.push(Step {
        name: "csr",
        ok: key == "RSA-2048" && subject_ok,
        status: None,
        expected_status: None,
        detail: format!(
            "{key} key and PKCS#10 CSR signed with RSASSA-PSS/SHA-256 (subject CN={}, DC={}, cuId attribute 1.3.6.1.4.1.311.90.2.10), accepted by issuecredential",
            meta.client_id, meta.tenant_id
        ),
        data: json!({"key": key, "subject": leaf.subject()}),
    });
    let thumb = minted.certified_key().thumbprint().to_base64url();
    let issued_ok = leaf.issuer() == running.ca_cert().subject()
        && minted.token_endpoint() == running.token_endpoint()
        && minted.client_id() == identity.client_id;
    n.push(Step {
        name: "issued_certificate",
        ok: issued_ok,
        status: None,
        expected_status: None,
        detail: format!(
            "POST /metadata/identity/issuecredential → certificate {} from {} (x5t#S256 {thumb}, valid until {}), token endpoint {}",
            leaf.subject(),
            leaf.issuer(),
            certbound_core::fmt_unix(leaf.not_after()),
            minted.token_endpoint()
        ),
        data: json!({
            "subject": leaf.subject(),
            "issuer": leaf.issuer(),
            "x5t#S256": thumb,
            "not_after": leaf.not_after(),
            "identity_type": minted.identity_type(),
            "token_endpoint": minted.token_endpoint(),
            "client_id": minted.client_id(),
        }),
    });
    n.push(Step {
        name: "client_certificate",
        ok: true,
        status: None,
        expected_status: None,
        detail: format!(
            "client certificate {} registered by the emulator (tls_client_auth); the token request uses client id {}",
            leaf.subject(),
            minted.client_id()
        ),
        data: json!({"subject": leaf.subject(), "x5t#S256": thumb, "client_id": minted.client_id()}),
    });
    Ok((thumb, credential))
}
