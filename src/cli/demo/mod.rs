//! `certbound demo`: the whole scenario in one process, on loopback, with fresh state
//! ([`LocalStack`](crate::local::LocalStack)), one function per protocol scheme
//! (`schemes.rs`), narrated step by step.
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
use certbound_client::config::DownstreamApiConfig;
use certbound_client::managed::{ImdsClient, ManagedIdentity, ManagedIdentityCredential};
use certbound_client::{App, HeaderOptions, ProtocolScheme, TokenSource, TransportPool};
use certbound_core::ca::{self, IssueSpec};
use certbound_core::pop::ProofKey;
use certbound_core::{CertifiedKey, KeyKind, jose};
use certbound_downstream::{CallOptions, Downstream};
use certbound_resource::RequireClientCertificate;
use serde::Serialize;
use serde_json::{Value, json};

use super::{DemoArgs, sample};
use crate::local::LocalStack;

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

mod attempts;
mod imds;
mod scenario;
mod schemes;
mod token;

use attempts::*;
use imds::*;
use scenario::*;
use schemes::*;
use token::*;
