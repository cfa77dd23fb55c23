//! One scenario run: the in-process authority and API, and the context the steps share.

use super::*;

pub(super) async fn scenario(
    scheme: ProtocolScheme,
    managed_identity: bool,
    n: &mut Narrator,
) -> anyhow::Result<()> {
    let bound = scheme.is_bound();
    let state = tempfile::tempdir().context("cannot create a temporary directory")?;
    // The app's certificate, made now so the API's certificate allow-list (`MTLS`) can name
    // it; registered in step 3. (A minted certificate chains to the authority's CA instead.)
    let own_cert = if managed_identity {
        None
    } else {
        Some(ca::self_signed_certified_key(
            &IssueSpec::client(CLIENT_ID),
            KeyKind::EcP256,
        )?)
    };

    // 1. The authority.
    let authority =
        DevAuthority::open_or_init(state.path().join("authority"), AuthorityOptions::default())
            .context("cannot initialise the development authority")?;
    let running = authority
        .spawn("127.0.0.1:0".parse()?)
        .await
        .context("cannot start the development authority")?;
    n.push(Step {
        name: "authority",
        ok: true,
        status: None,
        expected_status: None,
        detail: format!("development authority at {} (issuer {})", running.addr(), running.issuer()),
        data: json!({"issuer": running.issuer(), "tenant": running.tenant(), "token_endpoint": running.token_endpoint()}),
    });

    // 2. The protected API, with a TLS certificate from the authority's dev CA.
    let mut anchors = TrustAnchors::default();
    anchors.add(&running.ca_cert());
    let validator = Validator::builder()
        .issuer(running.issuer())
        .audience(AUDIENCE)
        .require_binding(bound)
        .trust_anchors(anchors.clone())
        .build()
        .await
        .context("cannot configure the API's token validator")?;
    let api_identity = authority
        .ca()
        .issue_certified_key(
            &IssueSpec::server("certbound-demo-api", &["127.0.0.1", "localhost"]),
            KeyKind::EcP256,
        )
        .context("cannot issue the API's TLS certificate")?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let api_addr = listener.local_addr()?;
    let (stop_api, stopped) = tokio::sync::oneshot::channel::<()>();
    let tls = server_config(&api_identity, ClientAuth::Optional)?;
    let certificate_policy = match &own_cert {
        Some(c) => RequireClientCertificate::new().allow_thumbprint(c.thumbprint()),
        None => RequireClientCertificate::new()
            .trust_anchors(&anchors)
            .context("cannot configure the API's certificate policy")?,
    };
    let api_task = tokio::spawn(TlsServer::new(listener, tls).serve(
        sample::router_with(validator, certificate_policy),
        async {
            let _ = stopped.await;
        },
    ));
    let base_url = format!("https://127.0.0.1:{}", api_addr.port());
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

    // 3. The client certificate: made here and registered, or minted through IMDS v2.
    let builder = App::builder()
        .client_id(CLIENT_ID)
        .authority(running.issuer())
        .trust_anchors(anchors.clone());
    let (thumb, builder, emulator) = if let Some(cert) = own_cert {
        running.register(
            ClientRegistration::with_certificate(
                CLIENT_ID,
                cert.leaf().clone(),
                CertAuthMethod::SelfSignedTlsClientAuth,
            )
            // The unbound and key-bound schemes authenticate with private_key_jwt.
            .auth_method(certbound_authority::AuthMethod::PrivateKeyJwt)
            .audience(AUDIENCE),
        )?;
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
        (thumb, builder.certificate(cert), None)
    } else {
        let (thumb, credential, emulator) = mint_through_imds(&running, n).await?;
        (thumb, builder.credential(credential), Some(emulator))
    };
    // 4. The token (none for MTLS), 5. the call, 6. the stolen-token attempts.
    let app = builder.build().context("cannot build the client app")?;
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
    let pool = TransportPool::builder().trust(anchors.clone()).build()?;
    let ctx = Ctx {
        app: &app,
        pool: &pool,
        base_url: &base_url,
        thumb: &thumb,
        scheme,
        managed_identity,
    };
    if scheme == ProtocolScheme::Mtls {
        certificate_only(&ctx, n).await?;
    } else {
        with_token(&ctx, n).await?;
    }

    let _ = stop_api.send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), api_task).await;
    if let Some(e) = emulator {
        e.shutdown().await;
    }
    running.shutdown().await;
    Ok(())
}

/// What the token steps share.
pub(super) struct Ctx<'a> {
    pub(super) app: &'a App,
    pub(super) pool: &'a TransportPool,
    pub(super) base_url: &'a str,
    pub(super) thumb: &'a str,
    pub(super) scheme: ProtocolScheme,
    pub(super) managed_identity: bool,
}

impl Ctx<'_> {
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
            base_url: Some(self.base_url.to_string()),
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

/// One attempt to use the token (or certificate) the way an attacker who copied it would.
pub(super) struct Attempt {
    pub(super) name: &'static str,
    pub(super) what: &'static str,
    pub(super) cert: Option<CertifiedKey>,
    pub(super) method: http::Method,
    pub(super) path: &'static str,
    pub(super) headers: http::HeaderMap,
    pub(super) expected: u16,
}

pub(super) fn sensitive(v: &str) -> anyhow::Result<http::HeaderValue> {
    let mut v = http::HeaderValue::from_str(v)?;
    v.set_sensitive(true);
    Ok(v)
}

/// Headers with `Authorization: <value>` (and `DPoP: <proof>`).
pub(super) fn auth_headers(value: &str, dpop: Option<&str>) -> anyhow::Result<http::HeaderMap> {
    let mut h = http::HeaderMap::new();
    h.insert(http::header::AUTHORIZATION, sensitive(value)?);
    if let Some(p) = dpop {
        h.insert("dpop", sensitive(p)?);
    }
    Ok(h)
}
