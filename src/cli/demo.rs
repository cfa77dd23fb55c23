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
//! a managed identity through the IMDS emulator (docs/wire-formats.md (managed identity)): platform metadata, an RSA key and
//! an RSASSA-PSS-signed CSR, `issuecredential` → a certificate from the authority's CA that
//! the emulator registers with the authority; the token request then goes to the endpoint
//! IMDS names, with the identity's client id.
//!
//! With `--scheme bearer` the token is unbound and the API does not require binding: the same
//! steps then show that an unbound token works for anyone who holds it — the reason binding exists.
//!
//! `--scheme dpop` and `--scheme pop` bind the token to the app's in-memory proof key instead
//! (`cnf.jkt`, `cnf.kid`) and sign every request; the stolen-token attempts become: a proof
//! from another key, a replayed proof (DPoP) or a signed request made for another request
//! (PoP), and the bare token as `Bearer`. `--scheme mtls` sends no token at all: the API's
//! `GET /certificate` admits the registered certificate (200), refuses another one (403) and
//! a request without one (401).

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
use certbound_resource::{RequireClientCertificate, TlsServer, Validator};

use super::sample;
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
    let scheme: ProtocolScheme = super::parse_scheme(&args.scheme)?;
    if args.managed_identity && scheme.signs_requests() {
        anyhow::bail!(
            "--managed-identity works with --scheme mtls_pop, bearer or mtls: {scheme} binds tokens to the app's own proof key, which a managed identity's token endpoint does not take"
        );
    }
    // A closed stdout (`certbound demo | head -1`) stops the narration, not the scenario:
    // the exit status still says whether every step behaved.
    let mut printed = Ok(());
    if !args.json {
        let what = match scheme {
            ProtocolScheme::MtlsPop => "certificate-bound access tokens (RFC 8705)",
            ProtocolScheme::DPoP => "DPoP-bound access tokens (RFC 9449)",
            ProtocolScheme::Pop => "PoP-bound access tokens in signed HTTP requests",
            ProtocolScheme::Mtls => "mutual TLS with the client certificate alone",
            _ => "unbound bearer tokens (for contrast)",
        };
        printed = outln!(
            "certbound demo: {what} on loopback{}\n",
            if args.managed_identity {
                ", binding certificate minted for a managed identity (IMDS v2 emulator)"
            } else {
                ""
            }
        );
    }
    let narrate = !args.json && printed.is_ok();
    let report = run_scenario_with(scheme, narrate, args.managed_identity).await;
    if printed.is_ok() {
        printed = if args.json {
            outln!("{}", serde_json::to_string(&report)?)
        } else {
            let failed: Vec<_> = report
                .steps
                .iter()
                .filter(|s| !s.ok)
                .map(|s| s.name)
                .collect();
            if failed.is_empty() {
                outln!(
                    "\nall {} steps behaved. {}",
                    report.steps.len(),
                    conclusion(scheme)
                )
            } else {
                outln!(
                    "\n{} of {} steps did not behave: {}",
                    failed.len(),
                    report.steps.len(),
                    failed.join(", ")
                )
            }
        };
    }
    if report.ok {
        printed
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

/// The one-line conclusion of a demo whose every step behaved: what it proved.
fn conclusion(scheme: ProtocolScheme) -> &'static str {
    match scheme {
        ProtocolScheme::MtlsPop => {
            "Proven: the token works only over mTLS with the certificate it is bound to; stolen, it is refused."
        }
        ProtocolScheme::DPoP => {
            "Proven: the token works only with fresh DPoP proofs from the app's key; stolen or replayed, it is refused."
        }
        ProtocolScheme::Pop => {
            "Proven: the token works only inside requests signed by the app's key; stolen or re-aimed, it is refused."
        }
        ProtocolScheme::Mtls => {
            "Proven: the API admits the registered certificate alone; another one, or none, is refused."
        }
        _ => "Proven: an unbound token works for whoever holds it, which is why binding exists.",
    }
}

struct Narrator {
    on: bool,
    steps: Vec<Step>,
}

impl Narrator {
    fn push(&mut self, step: Step) {
        let mark = if step.ok { "[ok]  " } else { "[FAIL]" };
        self.push_marked(step, mark);
    }
    /// A step that behaved as expected but shows a weakness (a stolen unbound token works).
    fn push_weakness(&mut self, step: Step) {
        let mark = if step.ok { "[weak]" } else { "[FAIL]" };
        self.push_marked(step, mark);
    }
    fn push_marked(&mut self, step: Step, mark: &str) {
        if self.on {
            self.say(format_args!("{mark} {}", step.detail));
        }
        self.steps.push(step);
    }
    fn info(&mut self, text: &str) {
        if self.on {
            self.say(format_args!("       {text}"));
        }
    }
    /// One line of narration; once stdout is closed (or fails), the narration stops and
    /// the scenario goes on.
    fn say(&mut self, line: std::fmt::Arguments<'_>) {
        if super::out_line(line).is_err() {
            self.on = false;
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
struct Ctx<'a> {
    app: &'a App,
    pool: &'a TransportPool,
    base_url: &'a str,
    thumb: &'a str,
    scheme: ProtocolScheme,
    managed_identity: bool,
}

impl Ctx<'_> {
    /// `GET path` on the demo API through the downstream client with `scheme`; the
    /// response and its JSON body (`null` when it is not JSON).
    async fn call(
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
struct Attempt {
    name: &'static str,
    what: &'static str,
    cert: Option<CertifiedKey>,
    method: http::Method,
    path: &'static str,
    headers: http::HeaderMap,
    expected: u16,
}

fn sensitive(v: &str) -> anyhow::Result<http::HeaderValue> {
    let mut v = http::HeaderValue::from_str(v)?;
    v.set_sensitive(true);
    Ok(v)
}

/// Headers with `Authorization: <value>` (and `DPoP: <proof>`).
fn auth_headers(value: &str, dpop: Option<&str>) -> anyhow::Result<http::HeaderMap> {
    let mut h = http::HeaderMap::new();
    h.insert(http::header::AUTHORIZATION, sensitive(value)?);
    if let Some(p) = dpop {
        h.insert("dpop", sensitive(p)?);
    }
    Ok(h)
}

/// Steps 4–6 for the schemes that send a token.
async fn with_token(ctx: &Ctx<'_>, n: &mut Narrator) -> anyhow::Result<()> {
    let (app, scheme, thumb) = (ctx.app, ctx.scheme, ctx.thumb);
    let bound = scheme.is_bound();
    let scopes = [format!("{AUDIENCE}/.default")];
    let options = HeaderOptions::default().scheme(scheme);
    let token = app
        .acquire_token_for_app(&scopes, &options)
        .await
        .context("token acquisition failed")?;
    let access_token = token.access_token.expose().to_string();
    let (_, claims) = jose::decode_unverified(&access_token).context("the token is not a JWT")?;
    // What the token is bound to, and what it must be bound to.
    let (member, want) = match scheme {
        ProtocolScheme::DPoP => ("jkt", app.proof_key().thumbprint()),
        ProtocolScheme::Pop => ("kid", app.proof_key().thumbprint()),
        _ => ("x5t#S256", thumb.to_string()),
    };
    let cnf = claims
        .get("cnf")
        .and_then(|c| c.get(member))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let wanted_type = match scheme {
        ProtocolScheme::DPoP => "DPoP",
        ProtocolScheme::Pop => "pop",
        ProtocolScheme::MtlsPop => "mtls_pop",
        _ => "Bearer",
    };
    let token_ok = token.token_type.eq_ignore_ascii_case(wanted_type)
        && if bound {
            cnf.as_deref() == Some(want.as_str())
        } else {
            claims.get("cnf").is_none()
        };
    let what_key = match scheme {
        ProtocolScheme::MtlsPop => "the client certificate's thumbprint",
        _ => "the app's proof-key thumbprint",
    };
    n.push(Step {
        name: "token",
        ok: token_ok,
        status: None,
        expected_status: None,
        detail: match &cnf {
            Some(c) => format!(
                "token_type {}, expires in {} s, cnf.{member} = {c} ({})",
                token.token_type,
                token.expires_on - certbound_core::now_unix(),
                if *c == want { what_key.to_string() } else { format!("NOT {what_key}") }
            ),
            None => format!("token_type {}, unbound (no cnf)", token.token_type),
        },
        data: json!({"token_type": token.token_type, "cnf": cnf, "cnf_member": member, "aud": claims.get("aud"), "expires_on": token.expires_on}),
    });
    if ctx.managed_identity && !bound {
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

    // 5. The call, through the downstream client (mTLS with the binding certificate for
    // MTLS_POP; a fresh proof per request for DPoP and PoP).
    let (resp, body) = ctx.call("/whoami", scheme, scopes.to_vec()).await?;
    let seen = body
        .get("cert_thumbprint")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let seen_cnf = body
        .get("cnf")
        .and_then(|c| c.get(member))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let call_ok = resp.status().as_u16() == 200
        && match scheme {
            ProtocolScheme::MtlsPop => seen.as_deref() == Some(thumb),
            ProtocolScheme::DPoP | ProtocolScheme::Pop => {
                seen_cnf.as_deref() == Some(want.as_str())
            }
            _ => true,
        };
    let how = match scheme {
        ProtocolScheme::MtlsPop => "mTLS call presenting the bound certificate",
        ProtocolScheme::DPoP => "HTTPS call with Authorization: DPoP and a fresh DPoP proof",
        ProtocolScheme::Pop => "HTTPS call with Authorization: PoP (a signed HTTP request)",
        _ => "HTTPS call",
    };
    n.push(Step {
        name: "bound_call",
        ok: call_ok,
        status: Some(resp.status().as_u16()),
        expected_status: Some(200),
        detail: format!(
            "{how} → {}{}",
            resp.status(),
            body.get("sub")
                .and_then(Value::as_str)
                .map(|s| format!(
                    " (API sees sub {s}, scheme {}, bound: {})",
                    body.get("scheme").and_then(Value::as_str).unwrap_or("?"),
                    body.get("bound").unwrap_or(&Value::Null)
                ))
                .unwrap_or_default()
        ),
        data: json!({"cert_thumbprint": seen, "bound": body.get("bound"), "scheme": body.get("scheme")}),
    });

    // 6. The stolen-token attempts.
    let other = ca::self_signed_certified_key(&IssueSpec::client("attacker"), KeyKind::EcP256)?;
    let url = format!("{}/whoami", ctx.base_url);
    let expected = if bound { 401 } else { 200 };
    let get = http::Method::GET;
    let bearer = auth_headers(&format!("Bearer {access_token}"), None)?;
    let attempts: Vec<Attempt> = match scheme {
        ProtocolScheme::DPoP | ProtocolScheme::Pop => {
            // The attacker holds the token but not the app's key: it signs with its own.
            let thief = certbound_core::pop::ProofKey::generate()?;
            let (stolen, replayed) = if scheme == ProtocolScheme::DPoP {
                let proof = thief.dpop_proof("GET", &url, Some(&access_token), None)?;
                // A proof the app really sent, captured and sent again.
                let h = app
                    .authorization_header_for_request(&scopes, &options, "GET", &url)
                    .await?;
                let mut captured = http::HeaderMap::new();
                h.apply(&mut captured)?;
                let first = ctx
                    .pool
                    .client_for(None)?
                    .get(&url)
                    .headers(captured.clone())
                    .send()
                    .await
                    .context("the captured request failed")?;
                n.info(&format!(
                    "the app's own request with that proof → {}",
                    first.status()
                ));
                (
                    auth_headers(&format!("DPoP {access_token}"), Some(&proof))?,
                    Attempt {
                        name: "replayed_proof",
                        what: "a captured DPoP proof sent again",
                        cert: None,
                        method: get.clone(),
                        path: "/whoami",
                        headers: captured,
                        expected: 401,
                    },
                )
            } else {
                let shr = thief.signed_http_request(&access_token, "GET", &url)?;
                // A request the app really signed — for POST — replayed as GET.
                let h = app
                    .authorization_header_for_request(&scopes, &options, "POST", &url)
                    .await?;
                let mut other_request = http::HeaderMap::new();
                h.apply(&mut other_request)?;
                (
                    auth_headers(&format!("PoP {shr}"), None)?,
                    Attempt {
                        name: "other_request",
                        what: "the app's signed request for POST /whoami sent as GET",
                        cert: None,
                        method: get.clone(),
                        path: "/whoami",
                        headers: other_request,
                        expected: 401,
                    },
                )
            };
            vec![
                Attempt {
                    name: "another_key",
                    what: "same token with a proof from another key",
                    cert: None,
                    method: get.clone(),
                    path: "/whoami",
                    headers: stolen,
                    expected: 401,
                },
                replayed,
                Attempt {
                    name: "bearer_no_proof",
                    what: "same token as Bearer with no proof",
                    cert: None,
                    method: get.clone(),
                    path: "/whoami",
                    headers: bearer,
                    expected: 401,
                },
            ]
        }
        _ => {
            let token_scheme = if bound { "mtls_pop" } else { "Bearer" };
            let own = auth_headers(&format!("{token_scheme} {access_token}"), None)?;
            if !bound {
                n.info("the token is unbound: whoever holds it can use it, from any machine");
            }
            vec![
                Attempt {
                    name: "another_certificate",
                    what: "same token from another certificate",
                    cert: Some(other),
                    method: get.clone(),
                    path: "/whoami",
                    headers: own.clone(),
                    expected,
                },
                Attempt {
                    name: "no_certificate",
                    what: "same token with no certificate",
                    cert: None,
                    method: get.clone(),
                    path: "/whoami",
                    headers: own,
                    expected,
                },
                Attempt {
                    name: "bearer_no_certificate",
                    what: "same token as Bearer with no certificate",
                    cert: None,
                    method: get.clone(),
                    path: "/whoami",
                    headers: bearer,
                    expected,
                },
            ]
        }
    };
    run_attempts(ctx, n, attempts).await
}

/// Steps 4–6 for `MTLS`: the certificate alone, no token.
async fn certificate_only(ctx: &Ctx<'_>, n: &mut Narrator) -> anyhow::Result<()> {
    let (resp, body) = ctx
        .call("/certificate", ProtocolScheme::Mtls, Vec::new())
        .await?;
    let seen = body
        .get("x5t#S256")
        .and_then(Value::as_str)
        .map(str::to_owned);
    n.push(Step {
        name: "bound_call",
        ok: resp.status().as_u16() == 200 && seen.as_deref() == Some(ctx.thumb),
        status: Some(resp.status().as_u16()),
        expected_status: Some(200),
        detail: format!(
            "mTLS call presenting the client certificate, no token → {}{}",
            resp.status(),
            body.get("subject")
                .and_then(Value::as_str)
                .map(|s| format!(" (API sees certificate {s})"))
                .unwrap_or_default()
        ),
        data: json!({"cert_thumbprint": seen}),
    });
    let other = ca::self_signed_certified_key(&IssueSpec::client("attacker"), KeyKind::EcP256)?;
    let attempts = vec![
        Attempt {
            name: "another_certificate",
            what: "another certificate",
            cert: Some(other),
            method: http::Method::GET,
            path: "/certificate",
            headers: http::HeaderMap::new(),
            expected: 403,
        },
        Attempt {
            name: "no_certificate",
            what: "no certificate",
            cert: None,
            method: http::Method::GET,
            path: "/certificate",
            headers: http::HeaderMap::new(),
            expected: 401,
        },
    ];
    run_attempts(ctx, n, attempts).await
}

async fn run_attempts(
    ctx: &Ctx<'_>,
    n: &mut Narrator,
    attempts: Vec<Attempt>,
) -> anyhow::Result<()> {
    for a in attempts {
        let client = ctx.pool.client_for(a.cert.as_ref())?;
        let r = client
            .request(a.method.clone(), format!("{}{}", ctx.base_url, a.path))
            .headers(a.headers)
            .timeout(Duration::from_secs(20))
            .send()
            .await
            .with_context(|| format!("{}: request failed", a.what))?;
        let status = r.status().as_u16();
        let www = r
            .headers()
            .get(http::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = r.text().await.unwrap_or_default();
        let error = www
            .as_deref()
            .and_then(|w| w.split("error=\"").nth(1))
            .and_then(|e| e.split('"').next())
            .map(str::to_owned);
        let invalid_token = matches!(
            error.as_deref(),
            Some("invalid_token" | "invalid_dpop_proof")
        );
        // Token rejections carry a WWW-Authenticate error; certificate-only ones a JSON body.
        let ok = status == a.expected
            && (a.expected < 400 || invalid_token || ctx.scheme == ProtocolScheme::Mtls);
        let why = www
            .as_deref()
            .and_then(|w| w.split("error_description=\"").nth(1))
            .and_then(|d| d.split('"').next())
            .map(|d| format!(": {d}"))
            .or_else(|| {
                serde_json::from_str::<Value>(&body).ok().and_then(|v| {
                    v.get("error_description")
                        .or(v.get("message"))
                        .and_then(Value::as_str)
                        .map(|d| format!(": {d}"))
                })
            })
            .unwrap_or_default();
        // Every attempt is an attacker's; one that gets in is the expected weakness of an
        // unbound token, not a success.
        let weakness = a.expected < 400;
        let step = Step {
            name: a.name,
            ok,
            status: Some(status),
            expected_status: Some(a.expected),
            detail: format!(
                "{} → {status}{}{}{}",
                a.what,
                error.map(|e| format!(" {e}")).unwrap_or_default(),
                why,
                if weakness && ok {
                    " (expected: the stolen unbound token works for whoever holds it)"
                } else {
                    ""
                }
            ),
            data: json!({"www_authenticate": www}),
        };
        if weakness {
            n.push_weakness(step);
        } else {
            n.push(step);
        }
    }
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
