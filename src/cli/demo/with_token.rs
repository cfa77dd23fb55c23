//! The token schemes' steps (`Bearer`, `MTLS_POP`, `Pop`, `DPoP`): acquire, call, and the
//! attacks each binding must stop.

use super::*;

/// Steps 4–6 for the schemes that send a token.
pub(super) async fn with_token(ctx: &Ctx<'_>, n: &mut Narrator) -> anyhow::Result<()> {
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
                _ => "another source (expected the cache)",
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
