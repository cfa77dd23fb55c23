//! `certbound demo`: the whole scenario in one process, on loopback, with fresh state.
//!
//! 1. a development authority (its own CA, signing key and registry in a temp directory);
//! 2. a protected API that requires certificate-bound tokens (`GET /whoami`);
//! 3. a client certificate, registered with the authority (`self_signed_tls_client_auth`);
//! 4. a bound token (`token_type=mtls_pop`, `cnf."x5t#S256"` = the certificate's thumbprint);
//! 5. the call over mutual TLS presenting that certificate → 200;
//! 6. the same token from another certificate, from no certificate, and as `Bearer` without a
//!    certificate → each refused with 401 `invalid_token`.
//!
//! With `--managed-identity` the binding certificate is not made by the demo but minted for
//! a managed identity through the IMDS emulator (SPEC §4): platform metadata, an RSA key and
//! an RSASSA-PSS-signed CSR, `issuecredential` → a certificate from the authority's CA that
//! the emulator registers with the authority; the token request then goes to the endpoint
//! IMDS names, with the identity's client id.
//!
//! With `--scheme bearer` the token is unbound and the API does not require binding: the same
//! steps then show that an unbound token works for anyone who holds it — the reason binding exists.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use certbound_authority::{Authority, AuthorityOptions, CertAuthMethod, ClientRegistration};
use certbound_client::config::DownstreamApiConfig;
use certbound_client::managed::{ImdsClient, ManagedIdentity, ManagedIdentityCredential};
use certbound_client::{App, HeaderOptions, ProtocolScheme, TokenSource};
use certbound_core::ca::{self, IssueSpec};
use certbound_core::tls::{ClientAuth, TrustAnchors, server_config};
use certbound_core::{CertifiedKey, KeyKind, jose};
use certbound_downstream::{CallOptions, Downstream, TransportPool};
use certbound_resource::{TlsServer, Validator, sample};
use serde::Serialize;
use serde_json::{Value, json};

use super::DemoArgs;

const CLIENT_ID: &str = "certbound-demo-app";
const AUDIENCE: &str = "api://certbound-demo-api";

/// One step of the scenario and how it went.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// A stable name (`authority`, `bound_call`, …).
    pub name: &'static str,
    /// Whether it behaved as expected.
    pub ok: bool,
    /// The HTTP status seen, for calls.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The status the step expects, for calls.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_status: Option<u16>,
    /// What happened, for a person.
    pub detail: String,
    /// Facts for machines (thumbprints, `WWW-Authenticate`, …). Never a token.
    #[serde(skip_serializing_if = "Value::is_null")]
    pub data: Value,
}

/// The outcome of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Every step behaved.
    pub ok: bool,
    /// The protocol scheme used.
    pub scheme: String,
    /// The steps, in order.
    pub steps: Vec<Step>,
}

/// Runs the command.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let scheme: ProtocolScheme = args
        .scheme
        .parse()
        .map_err(|e| anyhow::anyhow!("--scheme: {e}"))?;
    if !args.json {
        println!(
            "certbound demo: certificate-bound access tokens (RFC 8705) on loopback{}\n",
            if args.managed_identity {
                ", binding certificate minted for a managed identity (IMDS v2 emulator)"
            } else {
                ""
            }
        );
    }
    let report = run_scenario_with(scheme, !args.json, args.managed_identity).await;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        let failed: Vec<_> = report
            .steps
            .iter()
            .filter(|s| !s.ok)
            .map(|s| s.name)
            .collect();
        if failed.is_empty() {
            println!("\nall {} steps behaved.", report.steps.len());
        } else {
            println!(
                "\n{} of {} steps did not behave: {}",
                failed.len(),
                report.steps.len(),
                failed.join(", ")
            );
        }
    }
    if report.ok {
        Ok(())
    } else {
        let first = report
            .steps
            .iter()
            .find(|s| !s.ok)
            .map(|s| format!("{}: {}", s.name, s.detail));
        anyhow::bail!(
            "demo failed at {}",
            first.unwrap_or_else(|| "an unknown step".into())
        )
    }
}

struct Narrator {
    on: bool,
    steps: Vec<Step>,
}

impl Narrator {
    fn push(&mut self, step: Step) {
        if self.on {
            let mark = if step.ok { "[ok]  " } else { "[FAIL]" };
            println!("{mark} {}", step.detail);
        }
        self.steps.push(step);
    }
    fn info(&self, text: &str) {
        if self.on {
            println!("       {text}");
        }
    }
    fn fail(&mut self, name: &'static str, detail: String) -> Report {
        self.push(Step {
            name,
            ok: false,
            status: None,
            expected_status: None,
            detail,
            data: Value::Null,
        });
        self.report("")
    }
    fn report(&mut self, scheme: &str) -> Report {
        let steps = std::mem::take(&mut self.steps);
        Report {
            ok: !steps.is_empty() && steps.iter().all(|s| s.ok),
            scheme: scheme.into(),
            steps,
        }
    }
}

/// Runs the scenario and reports every step; never panics, never prints a token.
pub async fn run_scenario(scheme: ProtocolScheme, narrate: bool) -> Report {
    run_scenario_with(scheme, narrate, false).await
}

/// [`run_scenario`], with the binding certificate minted for a managed identity through
/// the IMDS emulator when `managed_identity` is set.
pub async fn run_scenario_with(
    scheme: ProtocolScheme,
    narrate: bool,
    managed_identity: bool,
) -> Report {
    let mut n = Narrator {
        on: narrate,
        steps: Vec::new(),
    };
    match scenario(scheme, managed_identity, &mut n).await {
        Ok(()) => n.report(scheme.as_str()),
        Err(e) => {
            let mut r = n.fail("setup", format!("the scenario could not continue: {e:#}"));
            r.scheme = scheme.as_str().into();
            r
        }
    }
}

async fn scenario(
    scheme: ProtocolScheme,
    managed_identity: bool,
    n: &mut Narrator,
) -> anyhow::Result<()> {
    let bound = scheme.is_bound();
    let state = tempfile::tempdir().context("cannot create a temporary directory")?;

    // 1. The authority.
    let authority =
        Authority::open_or_init(state.path().join("authority"), AuthorityOptions::default())
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
    let api_task = tokio::spawn(TlsServer::new(listener, tls).serve(
        sample::router(validator),
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
        detail: format!(
            "protected API at {base_url}/whoami (audience {AUDIENCE}{})",
            if bound { ", binding required" } else { "" }
        ),
        data: json!({"url": format!("{base_url}/whoami"), "require_binding": bound}),
    });

    // 3. The client certificate: made here and registered, or minted through IMDS v2.
    let builder = App::builder()
        .client_id(CLIENT_ID)
        .authority(running.issuer())
        .trust_anchors(anchors.clone());
    let (thumb, builder, emulator) = if managed_identity {
        let (thumb, credential, emulator) = mint_through_imds(&running, n).await?;
        (thumb, builder.credential(credential), Some(emulator))
    } else {
        let cert = ca::self_signed_certified_key(&IssueSpec::client(CLIENT_ID), KeyKind::EcP256)?;
        running.register(
            ClientRegistration::with_certificate(
                CLIENT_ID,
                cert.leaf().clone(),
                CertAuthMethod::SelfSignedTlsClientAuth,
            )
            .audience(AUDIENCE),
        )?;
        let thumb = cert.thumbprint().to_base64url();
        n.push(Step {
            name: "client_certificate",
            ok: true,
            status: None,
            expected_status: None,
            detail: format!(
                "client certificate {} registered (self_signed_tls_client_auth)",
                cert.leaf().subject()
            ),
            data: json!({"subject": cert.leaf().subject(), "x5t#S256": thumb}),
        });
        (thumb, builder.certificate(cert), None)
    };
    n.info(&format!("x5t#S256 = {thumb}"));

    // 4. The token.
    let app = builder.build().context("cannot build the client app")?;
    let scopes = [format!("{AUDIENCE}/.default")];
    let options = HeaderOptions::default().scheme(scheme);
    let token = app
        .acquire_token_for_app(&scopes, &options)
        .await
        .context("token acquisition failed")?;
    let access_token = token.access_token.expose().to_string();
    let (_, claims) = jose::decode_unverified(&access_token).context("the token is not a JWT")?;
    let cnf = claims
        .get("cnf")
        .and_then(|c| c.get("x5t#S256"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let token_ok = if bound {
        token.token_type.eq_ignore_ascii_case("mtls_pop") && cnf.as_deref() == Some(thumb.as_str())
    } else {
        cnf.is_none()
    };
    n.push(Step {
        name: "token",
        ok: token_ok,
        status: None,
        expected_status: None,
        detail: match &cnf {
            Some(c) => format!(
                "token_type {}, expires in {} s, cnf.x5t#S256 = {c} ({})",
                token.token_type,
                token.expires_on - certbound_core::now_unix(),
                if *c == thumb { "the client certificate's thumbprint" } else { "NOT the client certificate" }
            ),
            None => format!("token_type {}, unbound (no cnf)", token.token_type),
        },
        data: json!({"token_type": token.token_type, "cnf": cnf, "aud": claims.get("aud"), "expires_on": token.expires_on}),
    });
    if managed_identity && !bound {
        n.info("unbound managed-identity token from IMDS v1 (no certificate involved)");
    }
    let again = app.acquire_token_for_app(&scopes, &options).await?;
    n.push(Step {
        name: "cache",
        ok: again.source == TokenSource::Cache,
        status: None,
        expected_status: None,
        detail: format!(
            "second request served from the {}",
            match again.source {
                TokenSource::Cache => "cache",
                TokenSource::IdentityProvider => "identity provider (expected the cache)",
            }
        ),
        data: json!({"source": again.source}),
    });

    // 5. The call, through the downstream client (mTLS with the binding certificate when bound).
    let pool = TransportPool::builder().trust(anchors.clone()).build()?;
    let downstream = Downstream::new(app.clone(), pool.clone());
    let api = DownstreamApiConfig {
        base_url: Some(base_url.clone()),
        relative_path: Some("/whoami".into()),
        http_method: "GET".into(),
        protocol_scheme: scheme,
        request_app_token: true,
        scopes: scopes.to_vec(),
        accept_header: Some("application/json".into()),
        ..Default::default()
    };
    let resp = downstream
        .call_api("demo", &api, CallOptions::default())
        .await?;
    let body: Value = serde_json::from_slice(resp.body()).unwrap_or(Value::Null);
    let seen = body
        .get("cert_thumbprint")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let call_ok =
        resp.status().as_u16() == 200 && (!bound || seen.as_deref() == Some(thumb.as_str()));
    n.push(Step {
        name: "bound_call",
        ok: call_ok,
        status: Some(resp.status().as_u16()),
        expected_status: Some(200),
        detail: format!(
            "{} call{} → {}{}",
            if bound { "mTLS" } else { "HTTPS" },
            if bound {
                " presenting the bound certificate"
            } else {
                ""
            },
            resp.status(),
            body.get("sub")
                .and_then(Value::as_str)
                .map(|s| format!(
                    " (API sees sub {s}, bound: {})",
                    body.get("bound").unwrap_or(&Value::Null)
                ))
                .unwrap_or_default()
        ),
        data: json!({"cert_thumbprint": seen, "bound": body.get("bound")}),
    });

    // 6. The stolen-token attempts.
    let other = ca::self_signed_certified_key(&IssueSpec::client("attacker"), KeyKind::EcP256)?;
    let url = format!("{base_url}/whoami");
    let token_scheme = if bound { "mtls_pop" } else { "Bearer" };
    let expected = if bound { 401 } else { 200 };
    let attempts: [(&'static str, Option<&CertifiedKey>, &str, &str); 3] = [
        (
            "another_certificate",
            Some(&other),
            token_scheme,
            "same token from another certificate",
        ),
        (
            "no_certificate",
            None,
            token_scheme,
            "same token with no certificate",
        ),
        (
            "bearer_no_certificate",
            None,
            "Bearer",
            "same token as Bearer with no certificate",
        ),
    ];
    if !bound {
        n.info("the token is unbound: whoever holds it can use it, from any machine");
    }
    for (name, cert, header_scheme, what) in attempts {
        let client = pool.client_for(cert)?;
        let mut value = http::HeaderValue::from_str(&format!("{header_scheme} {access_token}"))?;
        value.set_sensitive(true);
        let r = client
            .get(&url)
            .header(http::header::AUTHORIZATION, value)
            .timeout(Duration::from_secs(20))
            .send()
            .await
            .with_context(|| format!("{what}: request failed"))?;
        let status = r.status().as_u16();
        let www = r
            .headers()
            .get(http::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let invalid_token = www
            .as_deref()
            .is_some_and(|w| w.contains("error=\"invalid_token\""));
        let ok = status == expected && (expected != 401 || invalid_token);
        let why = www
            .as_deref()
            .and_then(|w| w.split("error_description=\"").nth(1))
            .and_then(|d| d.split('"').next())
            .map(|d| format!(": {d}"))
            .unwrap_or_default();
        n.push(Step {
            name,
            ok,
            status: Some(status),
            expected_status: Some(expected),
            detail: format!(
                "{what} → {status}{}{}",
                if invalid_token { " invalid_token" } else { "" },
                why
            ),
            data: json!({"www_authenticate": www}),
        });
    }

    let _ = stop_api.send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), api_task).await;
    if let Some(e) = emulator {
        e.shutdown().await;
    }
    running.shutdown().await;
    Ok(())
}

/// The IMDS v2 steps: the emulator, platform metadata, the CSR and the issued certificate
/// (registered with the authority by the emulator). Returns the certificate's thumbprint and
/// the managed-identity credential holding it.
async fn mint_through_imds(
    running: &certbound_authority::RunningAuthority,
    n: &mut Narrator,
) -> anyhow::Result<(
    String,
    Arc<ManagedIdentityCredential>,
    certbound_authority::imds::RunningEmulator,
)> {
    let emulator = certbound_authority::imds::spawn_emulator(running, "127.0.0.1:0".parse()?)
        .await
        .context("cannot start the managed-identity (IMDS) emulator")?;
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
            certbound_core::cert::fmt_unix(leaf.not_after()),
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
    Ok((thumb, credential, emulator))
}
