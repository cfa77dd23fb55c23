//! The plain `MTLS` scheme's steps (the certificate alone), and running a list of attempts.

use super::*;

/// Steps 4–6 for `MTLS`: the certificate alone, no token.
pub(super) async fn certificate_only(ctx: &Ctx<'_>, n: &mut Narrator) -> anyhow::Result<()> {
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

pub(super) async fn run_attempts(
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
