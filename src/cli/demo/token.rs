//! What the token schemes share: acquiring the token (and checking what it is bound to),
//! and the legitimate call to `GET /whoami`.

use super::*;

/// What a scheme's token must be bound to.
#[derive(Clone, Copy)]
pub(super) enum Binding {
    /// Nothing: no `cnf` at all (`Bearer`).
    None,
    /// The client certificate: `cnf."x5t#S256"` (`MTLS_POP`).
    Certificate,
    /// The app's proof key: `cnf.<member>` (`jkt` for DPoP, `kid` for PoP).
    ProofKey(&'static str),
}

/// An acquired token and what it was checked against. Never printed.
pub(super) struct Token {
    pub(super) access_token: String,
    scopes: Vec<String>,
    options: HeaderOptions,
    /// The `cnf` member the token is bound by, and the value it must have.
    member: &'static str,
    want: String,
}

impl Token {
    /// The same token as `Authorization: Bearer`, the way a thief would try it first.
    pub(super) fn as_bearer(&self) -> anyhow::Result<http::HeaderMap> {
        auth_headers(&format!("Bearer {}", self.access_token), None)
    }
    /// The headers the app itself sends for `method url` (a fresh proof per request).
    pub(super) async fn request_headers(
        &self,
        ctx: &Ctx,
        method: &str,
        url: &str,
    ) -> anyhow::Result<http::HeaderMap> {
        let h = ctx
            .app
            .authorization_header_for_request(&self.scopes, &self.options, method, url)
            .await?;
        let mut headers = http::HeaderMap::new();
        h.apply(&mut headers)?;
        Ok(headers)
    }
}

/// Step 4: the token (`token`: its type and binding) and the second request from the
/// cache (`cache`).
pub(super) async fn acquire(
    ctx: &Ctx,
    n: &mut Narrator,
    binding: Binding,
) -> anyhow::Result<Token> {
    let app = &ctx.app;
    let scopes = vec![format!("{AUDIENCE}/.default")];
    let options = HeaderOptions::default().scheme(ctx.scheme);
    let token = app
        .acquire_token_for_app(&scopes, &options)
        .await
        .context("token acquisition failed")?;
    let access_token = token.access_token.expose().to_string();
    let (_, claims) = jose::decode_unverified(&access_token).context("the token is not a JWT")?;
    let (member, want, what_key) = match binding {
        Binding::ProofKey(member) => (
            member,
            app.proof_key().thumbprint(),
            "the app's proof-key thumbprint",
        ),
        Binding::Certificate | Binding::None => (
            "x5t#S256",
            ctx.thumb.clone(),
            "the client certificate's thumbprint",
        ),
    };
    let cnf = claims
        .get("cnf")
        .and_then(|c| c.get(member))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let bound = !matches!(binding, Binding::None);
    let token_ok = token
        .token_type
        .eq_ignore_ascii_case(wanted_type(ctx.scheme))
        && if bound {
            cnf.as_deref() == Some(want.as_str())
        } else {
            claims.get("cnf").is_none()
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
    Ok(Token {
        access_token,
        scopes,
        options,
        member,
        want,
    })
}

/// The `token_type` the authority answers for `scheme`.
fn wanted_type(scheme: ProtocolScheme) -> &'static str {
    match scheme {
        ProtocolScheme::DPoP => "DPoP",
        ProtocolScheme::Pop => "pop",
        ProtocolScheme::MtlsPop => "mtls_pop",
        _ => "Bearer",
    }
}

/// Step 5 (`bound_call`): `GET /whoami` through the downstream client, the way the app
/// calls (mTLS with the binding certificate for `MTLS_POP`, a fresh proof per request for
/// DPoP and PoP); the API must have seen what the token is bound to.
pub(super) async fn call_whoami(
    ctx: &Ctx,
    n: &mut Narrator,
    token: &Token,
    how: &str,
) -> anyhow::Result<()> {
    let (resp, body) = ctx
        .call("/whoami", ctx.scheme, token.scopes.clone())
        .await?;
    let seen = body
        .get("cert_thumbprint")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let seen_cnf = body
        .get("cnf")
        .and_then(|c| c.get(token.member))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let call_ok = resp.status().as_u16() == 200
        && match ctx.scheme {
            ProtocolScheme::MtlsPop => seen.as_deref() == Some(ctx.thumb.as_str()),
            ProtocolScheme::DPoP | ProtocolScheme::Pop => {
                seen_cnf.as_deref() == Some(token.want.as_str())
            }
            _ => true,
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
    Ok(())
}
