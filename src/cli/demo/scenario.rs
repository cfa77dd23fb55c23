//! One scenario run: steps 1–3 (the in-process authority and API, the client certificate),
//! then the scheme's own steps, and the context they share.

use super::*;

pub(super) async fn scenario(
    scheme: ProtocolScheme,
    managed_identity: bool,
    n: &mut Narrator,
) -> anyhow::Result<()> {
    let bound = scheme.is_bound();
    // 1. The authority, with the app registered (its own certificate) or the IMDS
    // emulator that will mint one (a minted certificate chains to the authority's CA).
    let mut stack = LocalStack::builder().audience(AUDIENCE);
    stack = if managed_identity {
        stack.imds()
    } else {
        stack.client(CLIENT_ID)
    };
    let mut stack = stack.start().await?;
    let running = stack.authority();
    n.push(Step {
        name: "authority",
        ok: true,
        status: None,
        expected_status: None,
        detail: format!("development authority at {} (issuer {})", running.addr(), running.issuer()),
        data: json!({"issuer": running.issuer(), "tenant": running.tenant(), "token_endpoint": running.token_endpoint()}),
    });

    // 2. The protected API: the sample API, whose `GET /certificate` (the `MTLS` scheme)
    // admits the app's certificate, or certificates from the authority's CA.
    let certificate_policy = match stack.certificate(CLIENT_ID) {
        Ok(c) => RequireClientCertificate::new().allow_thumbprint(c.thumbprint()),
        Err(_) => RequireClientCertificate::new()
            .trust_anchors(stack.trust_anchors())
            .context("cannot configure the API's certificate policy")?,
    };
    let validator = stack.validator().require_binding(bound).build().await?;
    let base_url = stack
        .serve_api(sample::router_with(validator, certificate_policy))
        .await?
        .to_owned();
    n.push(Step {
        name: "api",
        ok: true,
        status: None,
        expected_status: None,
        detail: if scheme == ProtocolScheme::Mtls {
            format!(
                "protected API at {base_url}/certificate (client certificate alone: {})",
                if managed_identity {
                    "certificates from the authority's CA"
                } else {
                    "an allow-list of one thumbprint"
                }
            )
        } else {
            format!(
                "protected API at {base_url}/whoami (audience {AUDIENCE}{})",
                if bound { ", binding required" } else { "" }
            )
        },
        data: json!({"url": format!("{base_url}/whoami"), "require_binding": bound}),
    });

    // 3. The client certificate: registered by the stack, or minted through IMDS v2.
    let (thumb, app) = if let Ok(cert) = stack.certificate(CLIENT_ID) {
        let thumb = cert.thumbprint().to_base64url();
        n.push(Step {
            name: "client_certificate",
            ok: true,
            status: None,
            expected_status: None,
            detail: format!(
                "client certificate {} registered (self_signed_tls_client_auth, private_key_jwt)",
                cert.leaf().subject()
            ),
            data: json!({"subject": cert.leaf().subject(), "x5t#S256": thumb}),
        });
        (thumb, stack.app_builder(CLIENT_ID)?)
    } else {
        let (thumb, credential) = mint_through_imds(&stack, n).await?;
        let builder = App::builder()
            .client_id(CLIENT_ID)
            .authority(stack.issuer())
            .trust_anchors(stack.trust_anchors().clone())
            .credential(credential);
        (thumb, builder)
    };
    let app = app.build().context("cannot build the client app")?;
    if scheme.signs_requests() {
        // The token binds to the proof key, not to the certificate (which only signs the
        // client assertion): show what it will be bound to.
        n.info(&format!(
            "proof key thumbprint (RFC 7638) = {} (the app's in-memory key the token binds to)",
            app.proof_key().thumbprint()
        ));
    } else {
        n.info(&format!("x5t#S256 = {thumb}"));
    }

    // 4. The token (none for MTLS), 5. the call, 6. the stolen-token attempts.
    let ctx = Ctx {
        app,
        pool: stack.transport_pool()?,
        base_url,
        thumb,
        scheme,
        managed_identity,
    };
    match scheme {
        ProtocolScheme::MtlsPop => mtls_pop(&ctx, n).await?,
        ProtocolScheme::DPoP => dpop(&ctx, n).await?,
        ProtocolScheme::Pop => pop(&ctx, n).await?,
        ProtocolScheme::Mtls => mtls(&ctx, n).await?,
        _ => bearer(&ctx, n).await?,
    }
    stack.shutdown().await;
    Ok(())
}

/// What the scheme steps share.
pub(super) struct Ctx {
    pub(super) app: App,
    pub(super) pool: TransportPool,
    pub(super) base_url: String,
    /// The client certificate's `x5t#S256`.
    pub(super) thumb: String,
    pub(super) scheme: ProtocolScheme,
    pub(super) managed_identity: bool,
}

impl Ctx {
    /// The API's URL for `path`.
    pub(super) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// `GET path` on the demo API through the downstream client with `scheme`; the
    /// response and its JSON body (`null` when it is not JSON).
    pub(super) async fn call(
        &self,
        path: &str,
        scheme: ProtocolScheme,
        scopes: Vec<String>,
    ) -> anyhow::Result<(certbound_downstream::DownstreamResponse, Value)> {
        let downstream = Downstream::new(self.app.clone(), self.pool.clone());
        let api = DownstreamApiConfig {
            base_url: Some(self.base_url.clone()),
            relative_path: Some(path.into()),
            http_method: "GET".into(),
            protocol_scheme: scheme,
            request_app_token: scheme.uses_token(),
            scopes,
            accept_header: Some("application/json".into()),
            ..Default::default()
        };
        let resp = downstream
            .call_api("demo", &api, CallOptions::default())
            .await?;
        let body = serde_json::from_slice(resp.body()).unwrap_or(Value::Null);
        Ok((resp, body))
    }
}
