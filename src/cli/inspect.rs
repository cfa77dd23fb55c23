//! `certbound inspect`: decode a token **without verifying its signature**, show its header
//! and claims, its expiry in human terms, and with `--cert` whether its `cnf."x5t#S256"`
//! matches the certificate (exit non-zero when it does not).

use std::io::Read as _;

use anyhow::{Context as _, bail};
use certbound_core::{Certificate, Thumbprint, jose};
use serde_json::{Value, json};

use super::InspectArgs;

/// Largest token read from standard input or the command line.
const MAX_INPUT: usize = 256 * 1024;

/// Runs the command.
pub async fn run(args: InspectArgs) -> anyhow::Result<()> {
    let raw = match args.token.as_deref() {
        None | Some("-") => {
            let mut buf = Vec::new();
            std::io::stdin()
                .lock()
                .take(MAX_INPUT as u64 + 1)
                .read_to_end(&mut buf)
                .context("cannot read the token from standard input")?;
            if buf.len() > MAX_INPUT {
                bail!("input is larger than {MAX_INPUT} bytes; that is not an access token");
            }
            String::from_utf8(buf).context("standard input is not UTF-8 text")?
        }
        Some(t) => t.to_owned(),
    };
    let token = strip_scheme(raw.trim());
    if token.is_empty() {
        bail!("no token given (pass it as an argument or on standard input)");
    }
    let (header, claims) =
        jose::decode_unverified(token).map_err(|e| anyhow::anyhow!("not a decodable JWT: {e}"))?;

    let now = certbound_core::now_unix();
    let exp = claims.get("exp").and_then(unix_time);
    let cnf = claims
        .get("cnf")
        .and_then(|c| c.get("x5t#S256"))
        .and_then(Value::as_str)
        .map(str::to_owned);

    let binding = match &args.cert {
        None => None,
        Some(path) => {
            let cert = Certificate::load_file(path)
                .with_context(|| format!("cannot load --cert {}", path.display()))?;
            let tp = cert.thumbprint();
            let matches = cnf
                .as_deref()
                .and_then(Thumbprint::from_base64url)
                .is_some_and(|c| c.ct_eq(&tp));
            Some((path.display().to_string(), tp, matches))
        }
    };

    if args.json {
        let mut out = json!({
            "signature_verified": false,
            "header": header,
            "claims": claims,
            "expires_at": exp,
            "expired": exp.map(|e| e <= now),
            "expires_in": exp.map(|e| e.saturating_sub(now)),
            "bound": cnf.is_some(),
            "cnf_x5t#S256": cnf,
        });
        if let Some((path, tp, matches)) = &binding {
            out["certificate"] = json!({"path": path, "x5t#S256": tp.to_base64url()});
            out["binding_matches"] = json!(matches);
        }
        outln!("{out}")?;
    } else {
        outln!("NOTE: the signature was NOT verified — this only decodes the token.")?;
        outln!("header:")?;
        outln!(
            "{}",
            serde_json::to_string_pretty(&header).unwrap_or_default()
        )?;
        outln!("claims:")?;
        outln!(
            "{}",
            serde_json::to_string_pretty(&claims).unwrap_or_default()
        )?;
        match exp {
            Some(e) if e > now => outln!(
                "expires: {} (in {})",
                certbound_core::fmt_unix(e),
                human(e.saturating_sub(now))
            )?,
            Some(e) => outln!(
                "expires: {} (EXPIRED {} ago)",
                certbound_core::fmt_unix(e),
                human(now.saturating_sub(e))
            )?,
            None => outln!("expires: no exp claim")?,
        }
        match &cnf {
            // The claim is untrusted text: control characters are shown escaped.
            Some(t) => outln!("bound to certificate: cnf.x5t#S256 = {}", t.escape_debug())?,
            None => outln!("not certificate-bound (no cnf.x5t#S256)")?,
        }
        if let Some((path, tp, matches)) = &binding {
            outln!("certificate {path}: x5t#S256 = {tp}")?;
            outln!(
                "binding: {}",
                if *matches {
                    "MATCHES"
                } else if cnf.is_some() {
                    "DOES NOT MATCH"
                } else {
                    "DOES NOT MATCH (the token is not bound)"
                }
            )?;
        }
    }
    if let Some((path, _, false)) = binding {
        bail!("the token's cnf.x5t#S256 does not match the certificate {path}");
    }
    Ok(())
}

/// Accepts a pasted `Authorization` value (`Bearer …`, `mtls_pop …`, `DPoP …`, `PoP …`) as
/// well as a bare token. Compares bytes, so any text (non-ASCII included) is safe.
fn strip_scheme(s: &str) -> &str {
    for scheme in ["bearer ", "mtls_pop ", "dpop ", "pop "] {
        let n = scheme.len();
        if s.len() > n
            && s.as_bytes()
                .get(..n)
                .is_some_and(|b| b.eq_ignore_ascii_case(scheme.as_bytes()))
        {
            // The matched prefix is ASCII, so `n` is a character boundary.
            return s.get(n..).unwrap_or_default().trim_start();
        }
    }
    s
}

/// A NumericDate claim (`exp`) as whole Unix seconds, saturating: integers beyond `i64`
/// become `i64::MAX`, fractions are truncated, floats beyond the range clamp to its ends
/// (`1e308` → `i64::MAX`). Not a number: `None`.
fn unix_time(v: &Value) -> Option<i64> {
    if let Some(i) = v.as_i64() {
        return Some(i);
    }
    if v.as_u64().is_some() {
        return Some(i64::MAX);
    }
    // `as` saturates at the ends of the range (and JSON has no NaN).
    v.as_f64().map(|f| f as i64)
}

/// `1h 5m`, `42s`, `3d 2h`.
fn human(secs: i64) -> String {
    let s = secs.max(0);
    let (d, h, m, sec) = (s / 86400, s % 86400 / 3600, s % 3600 / 60, s % 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {sec}s")
    } else {
        format!("{sec}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_a_person_would_say_them() {
        assert_eq!(human(42), "42s");
        assert_eq!(human(3 * 60 + 5), "3m 5s");
        assert_eq!(human(3600 + 5 * 60), "1h 5m");
        assert_eq!(human(3 * 86400 + 2 * 3600), "3d 2h");
        assert_eq!(human(-5), "0s");
    }

    #[test]
    fn exp_claims_saturate() {
        assert_eq!(unix_time(&json!(1_700_000_000)), Some(1_700_000_000));
        assert_eq!(unix_time(&json!(u64::MAX)), Some(i64::MAX));
        assert_eq!(unix_time(&json!(1e308)), Some(i64::MAX));
        assert_eq!(unix_time(&json!(-1e308)), Some(i64::MIN));
        assert_eq!(unix_time(&json!(1.5)), Some(1));
        assert_eq!(unix_time(&json!("soon")), None);
        assert!(human(i64::MAX).starts_with(&format!("{}d ", i64::MAX / 86400)));
    }

    #[test]
    fn pasted_authorization_values_are_accepted() {
        assert_eq!(strip_scheme("Bearer a.b.c"), "a.b.c");
        assert_eq!(strip_scheme("MTLS_POP   a.b.c"), "a.b.c");
        assert_eq!(strip_scheme("a.b.c"), "a.b.c");
        assert_eq!(strip_scheme("bearer"), "bearer");
        assert_eq!(strip_scheme("DPoP a.b.c"), "a.b.c");
        // Non-ASCII where a scheme would end: no panic, the text is kept.
        assert_eq!(strip_scheme("bearer€ a.b.c"), "bearer€ a.b.c");
        assert_eq!(strip_scheme("mtls_po€ a.b.c"), "mtls_po€ a.b.c");
        assert_eq!(strip_scheme("€€€€€€€€€€"), "€€€€€€€€€€");
    }
}
