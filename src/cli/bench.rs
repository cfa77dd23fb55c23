//! `certbound bench`: load on the resource server over mutual TLS.
//!
//! Starts, in this process, a development authority and the sample protected API (binding
//! required), acquires one certificate-bound token, then opens `--connections` separate mTLS
//! connections (each its own client, each presenting the bound certificate) and keeps every
//! one busy for `--duration` seconds: with `GET /whoami` (`--target api`), or with `mtls_pop`
//! token requests to the authority (`--target authority`, each response checked for the
//! right `cnf`). Reports requests/s, latency
//! percentiles, errors and the process's peak resident memory. Every response is checked
//! (status 200 and the API saw the bound certificate), so a fast wrong answer counts as an
//! error, not as throughput.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use certbound_client::HeaderOptions;
use certbound_core::tls::client_config;

use super::sample;
use crate::local::LocalStack;
use serde_json::json;

use super::BenchArgs;

/// Runs the command.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let target = match args.target.to_ascii_lowercase().as_str() {
        "api" => Target::Api,
        "authority" => Target::Authority,
        other => anyhow::bail!("--target `{other}`: expected api or authority"),
    };
    let connections = args.connections.max(1);
    let duration = Duration::from_secs_f64(args.duration.max(0.1));
    // The authority, the bench client and the sample API (binding required), in process.
    let stack = LocalStack::builder()
        .audience("api://certbound-bench")
        .client("certbound-bench")
        .api(sample::router)
        .start()
        .await?;
    let anchors = stack.trust_anchors().clone();
    let cert = stack.certificate("certbound-bench")?.clone();
    let url = format!("{}/whoami", stack.api_url()?);
    let app = stack.app("certbound-bench")?;
    let header = app
        .authorization_header_for_app(
            &["api://certbound-bench/.default"],
            &HeaderOptions::mtls_pop(),
        )
        .await
        .context("cannot acquire the bound token")?;
    let mut value = http::HeaderValue::from_str(header.value())?;
    value.set_sensitive(true);
    let thumb = cert.thumbprint().to_base64url();

    // One client per connection: a pool of one, so N clients hold N TLS connections.
    let mut clients = Vec::with_capacity(connections);
    for _ in 0..connections {
        let tls = client_config(&anchors, Some(&cert))?;
        clients.push(
            reqwest::Client::builder()
                .use_preconfigured_tls(tls)
                .pool_max_idle_per_host(1)
                .http2_prior_knowledge()
                .timeout(Duration::from_secs(30))
                .build()?,
        );
    }
    let token_endpoint = stack.authority().token_endpoint().to_string();
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(connections);
    for client in clients {
        let (url, value, thumb) = (url.clone(), value.clone(), thumb.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            while Instant::now() < deadline {
                let t0 = Instant::now();
                let ok = match client
                    .get(&url)
                    .header(http::header::AUTHORIZATION, value.clone())
                    .send()
                    .await
                {
                    Ok(r) if r.status() == 200 => r
                        .bytes()
                        .await
                        .ok()
                        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                        .is_some_and(|v| v["cert_thumbprint"] == thumb.as_str()),
                    _ => false,
                };
                if ok {
                    lat.push(t0.elapsed().as_micros() as u64);
                } else {
                    errors += 1;
                }
            }
            (lat, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await?;
        latencies.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let i = ((latencies.len() as f64 - 1.0) * p).round() as usize;
        latencies[i] as f64 / 1000.0
    };
    let report = json!({
        "target": match target { Target::Api => "api", Target::Authority => "authority" },
        "connections": connections,
        "duration_s": elapsed,
        "requests": latencies.len(),
        "errors": errors,
        "requests_per_s": latencies.len() as f64 / elapsed,
        "latency_ms": {"p50": pct(0.50), "p90": pct(0.90), "p99": pct(0.99), "max": pct(1.0)},
        "peak_rss_mib": peak_rss_mib(),
    });
    stack.shutdown().await;
    // Failed requests fail the run even when nobody reads the report.
    let printed = if args.json {
        outln!("{report}")
    } else {
        outln!(
            "{} ({}): {} mTLS connections for {:.1} s: {} requests ({:.0}/s), {} errors; latency p50 {:.2} ms, p99 {:.2} ms; peak RSS {} MiB",
            url_or(target, &url, &token_endpoint),
            report["target"].as_str().unwrap_or_default(),
            connections,
            elapsed,
            latencies.len(),
            latencies.len() as f64 / elapsed,
            errors,
            pct(0.5),
            pct(0.99),
            report["peak_rss_mib"]
        )
    };
    if errors > 0 {
        anyhow::bail!("{errors} requests failed");
    }
    printed
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    Api,
    Authority,
}

fn url_or<'a>(target: Target, api: &'a str, token: &'a str) -> &'a str {
    match target {
        Target::Api => api,
        Target::Authority => token,
    }
}

/// Peak resident set size of this process (VmHWM), in MiB; `null` where /proc is absent.
fn peak_rss_mib() -> serde_json::Value {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(serde_json::Value::Null, |kb| json!(kb / 1024))
}
