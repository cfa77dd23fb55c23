//! Step 6: the attempts of someone who copied the token (or has a certificate of their
//! own), and what the API answered each.

use super::*;

/// One attempt to use the token (or certificate) the way an attacker who copied it would.
pub(super) struct Attempt {
    name: &'static str,
    what: &'static str,
    cert: Option<CertifiedKey>,
    path: &'static str,
    headers: http::HeaderMap,
    expected: u16,
}

impl Attempt {
    /// `GET /whoami` with `headers` and no client certificate, expecting `expected`.
    pub(super) fn whoami(
        name: &'static str,
        what: &'static str,
        headers: http::HeaderMap,
        expected: u16,
    ) -> Self {
        Self {
            name,
            what,
            cert: None,
            path: "/whoami",
            headers,
            expected,
        }
    }
    /// `GET /certificate` with no token and no client certificate, expecting `expected`.
    pub(super) fn certificate(name: &'static str, what: &'static str, expected: u16) -> Self {
        Self {
            name,
            what,
            cert: None,
            path: "/certificate",
            headers: http::HeaderMap::new(),
            expected,
        }
    }
    /// The same, over mutual TLS presenting `cert`.
    pub(super) fn from(mut self, cert: CertifiedKey) -> Self {
        self.cert = Some(cert);
        self
    }
}

/// A certificate of the attacker's own (self-signed, not registered anywhere).
pub(super) fn attacker_certificate() -> anyhow::Result<CertifiedKey> {
    Ok(ca::self_signed_certified_key(
        &IssueSpec::client("attacker"),
        KeyKind::EcP256,
    )?)
}

fn sensitive(v: &str) -> anyhow::Result<http::HeaderValue> {
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

/// Sends each attempt and records a step for it: it behaved when the API answered the
/// expected status (and, for a refused token, an `invalid_token`/`invalid_dpop_proof`
/// challenge).
pub(super) async fn run_attempts(
    ctx: &Ctx,
    n: &mut Narrator,
    attempts: Vec<Attempt>,
) -> anyhow::Result<()> {
    for a in attempts {
        let client = ctx.pool.client_for(a.cert.as_ref())?;
        let r = client
            .get(ctx.url(a.path))
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
