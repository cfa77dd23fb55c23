//! One function per protocol scheme: steps 4–6 (the token, the call, and the attempts of
//! someone who copied the token or the certificate), each readable on its own.

use super::*;

/// `MTLS_POP` (RFC 8705): the token is bound to the client certificate
/// (`cnf."x5t#S256"`) and works only over mutual TLS with that certificate.
pub(super) async fn mtls_pop(ctx: &Ctx, n: &mut Narrator) -> anyhow::Result<()> {
    let token = acquire(ctx, n, Binding::Certificate).await?;
    call_whoami(ctx, n, &token, "mTLS call presenting the bound certificate").await?;
    let own = auth_headers(&format!("mtls_pop {}", token.access_token), None)?;
    run_attempts(
        ctx,
        n,
        vec![
            Attempt::whoami(
                "another_certificate",
                "same token from another certificate",
                own.clone(),
                401,
            )
            .from(attacker_certificate()?),
            Attempt::whoami("no_certificate", "same token with no certificate", own, 401),
            Attempt::whoami(
                "bearer_no_certificate",
                "same token as Bearer with no certificate",
                token.as_bearer()?,
                401,
            ),
        ],
    )
    .await
}

/// `Bearer`, for contrast: the token is unbound, and the API (not requiring binding)
/// accepts it from whoever holds it.
pub(super) async fn bearer(ctx: &Ctx, n: &mut Narrator) -> anyhow::Result<()> {
    let token = acquire(ctx, n, Binding::None).await?;
    call_whoami(ctx, n, &token, "HTTPS call").await?;
    n.info("the token is unbound: whoever holds it can use it, from any machine");
    let own = token.as_bearer()?;
    run_attempts(
        ctx,
        n,
        vec![
            Attempt::whoami(
                "another_certificate",
                "same token from another certificate",
                own.clone(),
                200,
            )
            .from(attacker_certificate()?),
            Attempt::whoami(
                "no_certificate",
                "same token with no certificate",
                own.clone(),
                200,
            ),
            Attempt::whoami(
                "bearer_no_certificate",
                "same token as Bearer with no certificate",
                own,
                200,
            ),
        ],
    )
    .await
}

/// `DPoP` (RFC 9449): the token is bound to the app's proof key (`cnf.jkt`) and every
/// request carries a fresh proof signed by it.
pub(super) async fn dpop(ctx: &Ctx, n: &mut Narrator) -> anyhow::Result<()> {
    let token = acquire(ctx, n, Binding::ProofKey("jkt")).await?;
    call_whoami(
        ctx,
        n,
        &token,
        "HTTPS call with Authorization: DPoP and a fresh DPoP proof",
    )
    .await?;
    let url = ctx.url("/whoami");
    // The attacker holds the token but not the app's key: it signs with its own.
    let thief = ProofKey::generate()?;
    let own_proof = thief.dpop_proof("GET", &url, Some(&token.access_token), None)?;
    // A proof the app really sent, captured and sent again.
    let captured = token.request_headers(ctx, "GET", &url).await?;
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
    run_attempts(
        ctx,
        n,
        vec![
            Attempt::whoami(
                "another_key",
                "same token with a proof from another key",
                auth_headers(&format!("DPoP {}", token.access_token), Some(&own_proof))?,
                401,
            ),
            Attempt::whoami(
                "replayed_proof",
                "a captured DPoP proof sent again",
                captured,
                401,
            ),
            Attempt::whoami(
                "bearer_no_proof",
                "same token as Bearer with no proof",
                token.as_bearer()?,
                401,
            ),
        ],
    )
    .await
}

/// `Pop` (signed HTTP requests): the token is bound to the app's proof key (`cnf.kid`)
/// and travels inside a request signed by it, for one method, host and path.
pub(super) async fn pop(ctx: &Ctx, n: &mut Narrator) -> anyhow::Result<()> {
    let token = acquire(ctx, n, Binding::ProofKey("kid")).await?;
    call_whoami(
        ctx,
        n,
        &token,
        "HTTPS call with Authorization: PoP (a signed HTTP request)",
    )
    .await?;
    let url = ctx.url("/whoami");
    // The attacker holds the token but not the app's key: it signs with its own.
    let thief = ProofKey::generate()?;
    let own_request = thief.signed_http_request(&token.access_token, "GET", &url)?;
    // A request the app really signed — for POST — replayed as GET.
    let for_post = token.request_headers(ctx, "POST", &url).await?;
    run_attempts(
        ctx,
        n,
        vec![
            Attempt::whoami(
                "another_key",
                "same token with a proof from another key",
                auth_headers(&format!("PoP {own_request}"), None)?,
                401,
            ),
            Attempt::whoami(
                "other_request",
                "the app's signed request for POST /whoami sent as GET",
                for_post,
                401,
            ),
            Attempt::whoami(
                "bearer_no_proof",
                "same token as Bearer with no proof",
                token.as_bearer()?,
                401,
            ),
        ],
    )
    .await
}

/// `MTLS`: no token at all; the API's `GET /certificate` admits the registered
/// certificate alone.
pub(super) async fn mtls(ctx: &Ctx, n: &mut Narrator) -> anyhow::Result<()> {
    let (resp, body) = ctx
        .call("/certificate", ProtocolScheme::Mtls, Vec::new())
        .await?;
    let seen = body
        .get("x5t#S256")
        .and_then(Value::as_str)
        .map(str::to_owned);
    n.push(Step {
        name: "bound_call",
        ok: resp.status().as_u16() == 200 && seen.as_deref() == Some(ctx.thumb.as_str()),
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
    run_attempts(
        ctx,
        n,
        vec![
            Attempt::certificate("another_certificate", "another certificate", 403)
                .from(attacker_certificate()?),
            Attempt::certificate("no_certificate", "no certificate", 401),
        ],
    )
    .await
}
