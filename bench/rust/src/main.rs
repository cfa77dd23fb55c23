//! `cb-bench`: the measurement drivers behind `bench/run.sh`.
//!
//! Every subcommand prints exactly one JSON object on stdout (the harness parses it):
//! - `setup DIR`: authority state, client/peer certificates, registrations, a validation fixture;
//! - `loadgen`: the token-endpoint load generator (same binary for every authority);
//! - `cachehit`: certbound `App::authorization_header_for_app` cache hits, ns/op;
//! - `validate`: certbound full validation (with binding) or `jsonwebtoken` alone, ns/op;
//! - `transport`: bound mTLS calls vs plain HTTPS Bearer calls, interleaved rounds;
//! - `memcache`: resident memory holding N tokens in certbound's memory cache;
//! - `idleconn`: opens N idle mTLS connections to a server and reports its resident memory.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use certbound_authority::{DevAuthority, AuthorityOptions, CertAuthMethod, ClientRegistration};
use certbound_client::{App, CacheKey, CachedToken, HeaderOptions, MemoryTokenCache, Secret, TokenCache};
use certbound_core::ca::{self, IssueSpec};
use certbound_core::tls::{ClientAuth, TrustAnchors, client_config, server_config};
use certbound_core::{CertifiedKey, Jwks, JwsAlgorithm, KeyKind, PrivateKey, Thumbprint, b64, jose};
use certbound::cli::sample;
use certbound_resource::{Presented, ProtocolScheme as Scheme, TlsServer, Validator};
use futures::{FutureExt as _, StreamExt as _};
use serde_json::{Value, json};

const SCOPE: &str = "api://bench/.default";
const AUDIENCE: &str = "api://bench";
const VALIDATE_ISSUER: &str = "https://issuer.example/bench-tenant/v2.0";

fn main() {
    certbound_core::tls::install_default_provider();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("setup") => setup(&args[1..]),
        Some("loadgen") => loadgen(&args[1..]),
        Some("cachehit") => cachehit(&args[1..]),
        Some("validate") => validate(&args[1..]),
        Some("transport") => transport(&args[1..]),
        Some("memcache") => memcache(&args[1..]),
        Some("idleconn") => idleconn(&args[1..]),
        _ => Err(anyhow!(
            "usage: cb-bench setup|loadgen|cachehit|validate|transport|memcache|idleconn [--opt value …]"
        )),
    };
    match result {
        Ok(v) => println!("{v}"),
        Err(e) => {
            eprintln!("cb-bench: {e:#}");
            std::process::exit(1);
        }
    }
}

/// `--name value` options (repeatable names collect every value).
struct Opts(Vec<(String, String)>);

impl Opts {
    fn parse(args: &[String]) -> anyhow::Result<Self> {
        let mut out = Vec::new();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let name = a.strip_prefix("--").ok_or_else(|| anyhow!("unexpected argument {a:?}"))?;
            let v = it.next().ok_or_else(|| anyhow!("--{name} needs a value"))?;
            out.push((name.to_owned(), v.clone()));
        }
        Ok(Self(out))
    }
    fn get(&self, name: &str) -> anyhow::Result<&str> {
        self.opt(name).ok_or_else(|| anyhow!("missing --{name}"))
    }
    fn opt(&self, name: &str) -> Option<&str> {
        self.0.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
    fn all(&self, name: &str) -> Vec<&str> {
        self.0.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect()
    }
    fn num<T: std::str::FromStr>(&self, name: &str, default: T) -> anyhow::Result<T> {
        match self.opt(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| anyhow!("--{name}: not a number: {v:?}")),
        }
    }
}

fn runtime(threads: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut b = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    };
    Ok(b.enable_all().build()?)
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

fn write_identity(dir: &Path, name: &str, id: &CertifiedKey) -> anyhow::Result<()> {
    write(&dir.join(format!("{name}.pem")), &id.leaf().to_pem())?;
    std::fs::write(dir.join(format!("{name}.key")), id.key().to_pkcs8_pem().as_bytes())
        .map_err(|e| anyhow!("writing {name}.key: {e}"))?;
    Ok(())
}

fn load_identity(cert: &str, key: &str) -> anyhow::Result<CertifiedKey> {
    CertifiedKey::load_pem_files(Path::new(cert), Path::new(key)).map_err(|e| anyhow!("{e}"))
}

fn anchors(ca: &str) -> anyhow::Result<TrustAnchors> {
    let mut a = TrustAnchors::default();
    a.add_pem_file(Path::new(ca)).map_err(|e| anyhow!("{e}"))?;
    Ok(a)
}

/// `setup --dir DIR`: everything the run needs, in DIR.
fn setup(args: &[String]) -> anyhow::Result<Value> {
    let o = Opts::parse(args)?;
    let dir = PathBuf::from(o.get("dir")?);
    std::fs::create_dir_all(&dir)?;
    let adir = dir.join("authority");
    let authority = DevAuthority::open_or_init(&adir, AuthorityOptions::default()).map_err(|e| anyhow!("{e}"))?;
    write(&dir.join("ca.pem"), &authority.ca_cert().to_pem())?;
    // The load generator's and every cache-hit client's identity: EC P-256, self-signed.
    let client = ca::self_signed_certified_key(&IssueSpec::client("bench"), KeyKind::EcP256).map_err(|e| anyhow!("{e}"))?;
    write_identity(&dir, "client", &client)?;
    authority
        .register(
            ClientRegistration::with_certificate("bench", client.leaf().clone(), CertAuthMethod::SelfSignedTlsClientAuth)
                .audience(AUDIENCE),
        )
        .map_err(|e| anyhow!("{e}"))?;
    // RSA certificate for the private_key_jwt peers (azure_identity and MSAL sign RS256 assertions).
    // azure_identity 1.0 sends `x5t` in the standard base64 alphabet while the development
    // authority compares it with the base64url form: pick a certificate whose SHA-1
    // thumbprint is spelled the same in both (no '+' or '/'), so that peer can authenticate.
    let mut rsa = ca::self_signed_certified_key(&IssueSpec::client("bench-rsa"), KeyKind::Rsa2048).map_err(|e| anyhow!("{e}"))?;
    let mut attempts = 1;
    while rsa.leaf().x5t_sha1().contains(['-', '_']) && attempts < 64 {
        rsa = ca::self_signed_certified_key(&IssueSpec::client("bench-rsa"), KeyKind::Rsa2048).map_err(|e| anyhow!("{e}"))?;
        attempts += 1;
    }
    write_identity(&dir, "rsa", &rsa)?;
    std::fs::write(dir.join("rsa.pfx"), rsa.to_pkcs12("bench").map_err(|e| anyhow!("{e}"))?)?;
    authority
        .register(
            ClientRegistration::with_certificate("bench-rsa", rsa.leaf().clone(), CertAuthMethod::PrivateKeyJwt)
                .audience(AUDIENCE),
        )
        .map_err(|e| anyhow!("{e}"))?;
    // TLS identity (issued by the authority's CA) for the peers' servers and `certbound api serve`.
    let tls = authority
        .ca()
        .issue_certified_key(&IssueSpec::server("127.0.0.1", &["127.0.0.1", "localhost"]), KeyKind::EcP256)
        .map_err(|e| anyhow!("{e}"))?;
    write_identity(&dir, "server", &tls)?;
    // Validation fixture: one ES256 token bound to the client certificate.
    let key = PrivateKey::generate(KeyKind::EcP256).map_err(|e| anyhow!("{e}"))?;
    let jwk = key.public_jwk().with_kid("bench").with_alg(JwsAlgorithm::ES256);
    let now = certbound_core::now_unix();
    let thumb = client.thumbprint();
    let claims = json!({
        "iss": VALIDATE_ISSUER, "aud": AUDIENCE,
        "sub": "00000000-0000-0000-0000-000000000001",
        "client_id": "00000000-0000-0000-0000-000000000001",
        "azp": "00000000-0000-0000-0000-000000000001",
        "tid": "bench-tenant", "roles": ["Orders.Read", "Orders.Write"],
        "iat": now, "nbf": now, "exp": now + 86_400,
        "jti": "b6f0b3c6-3f55-4b8e-9f3c-2a0c2c7d9e11",
        "cnf": {"x5t#S256": thumb.to_base64url()},
    });
    let header = jose::JwsHeader::new(JwsAlgorithm::ES256).kid("bench").typ("at+jwt");
    let token = jose::sign_compact(&header, &claims, &key).map_err(|e| anyhow!("{e}"))?;
    let fixture = json!({
        "token": token, "jwk": serde_json::to_value(&jwk)?, "issuer": VALIDATE_ISSUER,
        "audience": AUDIENCE, "x5t#S256": thumb.to_base64url(),
    });
    write(&dir.join("validate.json"), &fixture.to_string())?;
    Ok(json!({
        "dir": dir, "authority_dir": adir, "tenant": authority.tenant(),
        "client_id": "bench", "rsa_client_id": "bench-rsa", "scope": SCOPE,
        "client_thumbprint": thumb.to_base64url(),
    }))
}

/// `loadgen --url U --cert C --key K --ca CA --form k=v … [--concurrency 16] [--seconds 5]
/// [--warmup 1] [--thumbprint T]`: POSTs the form from `concurrency` workers over reused
/// HTTP/1.1 mTLS connections for a fixed time; checks the first token (ES256, bound).
fn loadgen(args: &[String]) -> anyhow::Result<Value> {
    let o = Opts::parse(args)?;
    let url = o.get("url")?.to_owned();
    let id = load_identity(o.get("cert")?, o.get("key")?)?;
    let tls = client_config(&anchors(o.get("ca")?)?, Some(&id)).map_err(|e| anyhow!("{e}"))?;
    let form: Vec<(String, String)> = o
        .all("form")
        .into_iter()
        .map(|kv| kv.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())).ok_or_else(|| anyhow!("--form {kv:?}: want k=v")))
        .collect::<anyhow::Result<_>>()?;
    let body = Arc::new(serde_urlencoded_form(&form));
    let concurrency: usize = o.num("concurrency", 16)?;
    let seconds: f64 = o.num("seconds", 5.0)?;
    let warmup: f64 = o.num("warmup", 1.0)?;
    let threads: usize = o.num("threads", 2)?;
    let expect_thumb = id.thumbprint().to_base64url();
    let rt = runtime(threads)?;
    rt.block_on(async move {
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .http1_only()
            .pool_max_idle_per_host(concurrency)
            .timeout(Duration::from_secs(30))
            .build()?;
        // The first token, checked: same kind of token from every authority.
        let first: Value = client
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.as_str().to_owned())
            .send()
            .await?
            .json()
            .await?;
        let token = first["access_token"].as_str().ok_or_else(|| anyhow!("no access_token in {first}"))?;
        let mut parts = token.split('.');
        let header: Value = serde_json::from_slice(&b64::decode(parts.next().unwrap_or_default()).map_err(|e| anyhow!("{e}"))?)?;
        let claims: Value = serde_json::from_slice(&b64::decode(parts.next().unwrap_or_default()).map_err(|e| anyhow!("{e}"))?)?;
        let bound = claims["cnf"]["x5t#S256"].as_str() == Some(expect_thumb.as_str());
        if header["alg"] != "ES256" || !bound {
            bail!("token is not an ES256 certificate-bound JWT: header {header}, cnf {}", claims["cnf"]);
        }
        let ok = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(AtomicU64::new(0));
        let counting = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop = Instant::now() + Duration::from_secs_f64(warmup + seconds);
        let mut tasks = Vec::new();
        for _ in 0..concurrency {
            let (client, url, body) = (client.clone(), url.clone(), body.clone());
            let (ok, errors, counting) = (ok.clone(), errors.clone(), counting.clone());
            tasks.push(tokio::spawn(async move {
                let mut first_error = None;
                while Instant::now() < stop {
                    let r = client
                        .post(&url)
                        .header("content-type", "application/x-www-form-urlencoded")
                        .body(body.as_str().to_owned())
                        .send()
                        .await;
                    let good = match r {
                        Ok(r) if r.status() == 200 => r.bytes().await.is_ok(),
                        Ok(r) => {
                            first_error.get_or_insert(format!("HTTP {}", r.status()));
                            false
                        }
                        Err(e) => {
                            first_error.get_or_insert(e.to_string());
                            false
                        }
                    };
                    if counting.load(Ordering::Relaxed) {
                        if good { &ok } else { &errors }.fetch_add(1, Ordering::Relaxed);
                    }
                }
                first_error
            }));
        }
        tokio::time::sleep(Duration::from_secs_f64(warmup)).await;
        counting.store(true, Ordering::Relaxed);
        let t0 = Instant::now();
        let mut first_error = None;
        for t in tasks {
            if let Some(e) = t.await? {
                first_error.get_or_insert(e);
            }
        }
        let secs = t0.elapsed().as_secs_f64();
        let ok = ok.load(Ordering::Relaxed);
        Ok(json!({
            "ok": ok, "errors": errors.load(Ordering::Relaxed), "secs": secs,
            "per_s": ok as f64 / secs, "concurrency": concurrency,
            "token": {"alg": header["alg"], "typ": header["typ"], "bound": bound, "bytes": token.len()},
            "first_error": first_error,
        }))
    })
}

fn serde_urlencoded_form(form: &[(String, String)]) -> String {
    let mut s = String::new();
    for (k, v) in form {
        if !s.is_empty() {
            s.push('&');
        }
        s.push_str(&url_encode(k));
        s.push('=');
        s.push_str(&url_encode(v));
    }
    s
}

fn url_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `cachehit --issuer I --ca CA --cert C --key K --client-id ID [--iters N] [--handle 1]`: one
/// real bound token from the authority, then N cache hits of `authorization_header_for_app`
/// (or, with `--handle 1`, of a prepared `HeaderHandle::get`).
fn cachehit(args: &[String]) -> anyhow::Result<Value> {
    let o = Opts::parse(args)?;
    let id = load_identity(o.get("cert")?, o.get("key")?)?;
    let iters: u64 = o.num("iters", 1_000_000)?;
    // `--handle 1`: HeaderHandle::get (owned header); `--handle borrowed`: HeaderHandle::cached.
    let use_handle = o.opt("handle") == Some("1");
    let borrowed = o.opt("handle") == Some("borrowed");
    let app = App::builder()
        .client_id(o.get("client-id")?)
        .authority(o.get("issuer")?)
        .certificate(id)
        .trust_anchors(anchors(o.get("ca")?)?)
        .build()
        .map_err(|e| anyhow!("{e}"))?;
    let rt = runtime(1)?;
    rt.block_on(async {
        let scopes = [SCOPE];
        let opts = HeaderOptions::mtls_pop();
        let handle = app.header_handle(&scopes, &opts);
        let hit = || async {
            if use_handle {
                handle.get().await
            } else {
                app.authorization_header_for_app(std::hint::black_box(&scopes), &opts).await
            }
        };
        let first = hit().await.map_err(|e| anyhow!("{e}"))?;
        if !first.value().starts_with("mtls_pop ") || first.binding().is_none() {
            bail!("expected a bound mtls_pop header");
        }
        // Warm-up, then the timed loop (every call must be a hit: checked below).
        for _ in 0..iters / 10 {
            std::hint::black_box(hit().await.map_err(|e| anyhow!("{e}"))?);
        }
        let sent = app.token_requests_sent();
        let t0 = Instant::now();
        if borrowed {
            for _ in 0..iters {
                // The borrowed hit; a miss (never expected here) takes the owned path.
                match handle.cached() {
                    Some(h) => {
                        std::hint::black_box(h.value().len());
                    }
                    None => {
                        std::hint::black_box(handle.get().await.map_err(|e| anyhow!("{e}"))?);
                    }
                }
            }
        } else {
            for _ in 0..iters {
                let h = hit().await.map_err(|e| anyhow!("{e}"))?;
                std::hint::black_box(h);
            }
        }
        let ns = t0.elapsed().as_nanos() as f64 / iters as f64;
        if app.token_requests_sent() != sent {
            bail!("the timed loop asked the authority for a token: not a cache-hit measurement");
        }
        let what = if borrowed {
            "certbound HeaderHandle::cached (mtls_pop, borrowed cache hit)"
        } else if use_handle {
            "certbound HeaderHandle::get (mtls_pop, cache hit)"
        } else {
            "certbound App::authorization_header_for_app (mtls_pop, cache hit)"
        };
        Ok(json!({"ns_per_op": ns, "iters": iters, "impl": what}))
    })
}

/// `validate --fixture validate.json --mode certbound|jsonwebtoken [--iters N]`.
fn validate(args: &[String]) -> anyhow::Result<Value> {
    let o = Opts::parse(args)?;
    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(o.get("fixture")?)?)?;
    let iters: u64 = o.num("iters", 100_000)?;
    let token = fixture["token"].as_str().ok_or_else(|| anyhow!("fixture: no token"))?.to_owned();
    let issuer = fixture["issuer"].as_str().unwrap_or_default().to_owned();
    let audience = fixture["audience"].as_str().unwrap_or_default().to_owned();
    let jwk: certbound_core::Jwk = serde_json::from_value(fixture["jwk"].clone())?;
    match o.get("mode")? {
        "certbound" => {
            let thumb = Thumbprint::from_base64url(fixture["x5t#S256"].as_str().unwrap_or_default()).ok_or_else(|| anyhow!("fixture: bad x5t#S256"))?;
            let rt = runtime(1)?;
            let validator = rt
                .block_on(Validator::builder().issuer(issuer).audience(audience).jwks(Jwks { keys: vec![jwk] }).build())
                .map_err(|e| anyhow!("{e}"))?;
            let one = |t: &str| -> anyhow::Result<()> {
                let v = validator
                    .validate(&Presented::token(Scheme::MtlsPop, t).peer(Some(&thumb)))
                    .now_or_never()
                    .ok_or_else(|| anyhow!("validation did not complete without I/O"))?
                    .map_err(|e| anyhow!("{e}"))?;
                std::hint::black_box(v);
                Ok(())
            };
            one(&token)?;
            for _ in 0..iters / 10 {
                one(&token)?;
            }
            let t0 = Instant::now();
            for _ in 0..iters {
                one(std::hint::black_box(&token))?;
            }
            let ns = t0.elapsed().as_nanos() as f64 / iters as f64;
            Ok(json!({"ns_per_op": ns, "iters": iters, "impl": "certbound Validator::validate (mtls_pop, binding checked)"}))
        }
        "jsonwebtoken" => {
            let (Some(x), Some(y)) = (&jwk.x, &jwk.y) else { bail!("fixture key is not EC") };
            let key = jsonwebtoken::DecodingKey::from_ec_components(x, y)?;
            let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
            v.set_audience(&[audience]);
            v.set_issuer(&[issuer]);
            let one = |t: &str| -> anyhow::Result<()> {
                std::hint::black_box(jsonwebtoken::decode::<Value>(t, &key, &v)?);
                Ok(())
            };
            one(&token)?;
            for _ in 0..iters / 10 {
                one(&token)?;
            }
            let t0 = Instant::now();
            for _ in 0..iters {
                one(std::hint::black_box(&token))?;
            }
            let ns = t0.elapsed().as_nanos() as f64 / iters as f64;
            Ok(json!({"ns_per_op": ns, "iters": iters, "impl": "jsonwebtoken::decode (ES256, iss/aud/exp, no binding)"}))
        }
        m => bail!("--mode {m:?}: want certbound or jsonwebtoken"),
    }
}

/// `transport [--rounds 5] [--requests 3000] [--concurrency 16]`: the same protected API
/// (full validation) called with bound tokens over mTLS and with Bearer tokens over plain
/// HTTPS, HTTP/2 reused connections, rounds interleaved. (The code of
/// `crates/certbound-downstream/benches/transport.rs`, reporting JSON.)
fn transport(args: &[String]) -> anyhow::Result<Value> {
    let o = Opts::parse(args)?;
    let rounds: usize = o.num("rounds", 5)?;
    let requests: usize = o.num("requests", 3000)?;
    let concurrency: usize = o.num("concurrency", 16)?;
    let rt = runtime(2)?;
    rt.block_on(async move {
        let dir = tempfile::tempdir()?;
        let authority = DevAuthority::open_or_init(dir.path().join("a"), AuthorityOptions::default()).map_err(|e| anyhow!("{e}"))?;
        let running = authority.spawn("127.0.0.1:0".parse()?).await.map_err(|e| anyhow!("{e}"))?;
        let mut anchors = TrustAnchors::default();
        anchors.add(&running.ca_cert());
        let cert = ca::self_signed_certified_key(&IssueSpec::client("bench"), KeyKind::EcP256).map_err(|e| anyhow!("{e}"))?;
        running
            .register(
                ClientRegistration::with_certificate("bench", cert.leaf().clone(), CertAuthMethod::SelfSignedTlsClientAuth)
                    .auth_method(certbound_authority::AuthMethod::PrivateKeyJwt),
            )
            .map_err(|e| anyhow!("{e}"))?;
        let validator = Validator::builder()
            .issuer(running.issuer())
            .audience(AUDIENCE)
            .trust_anchors(anchors.clone())
            .build()
            .await
            .map_err(|e| anyhow!("{e}"))?;
        let id = authority
            .ca()
            .issue_certified_key(&IssueSpec::server("api", &["127.0.0.1"]), KeyKind::EcP256)
            .map_err(|e| anyhow!("{e}"))?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("https://127.0.0.1:{}/whoami", listener.local_addr()?.port());
        let tls = server_config(&id, ClientAuth::Optional).map_err(|e| anyhow!("{e}"))?;
        tokio::spawn(TlsServer::new(listener, tls).serve(sample::router(validator), std::future::pending()));
        let app = App::builder()
            .client_id("bench")
            .authority(running.issuer())
            .certificate(cert.clone())
            .trust_anchors(anchors.clone())
            .build()
            .map_err(|e| anyhow!("{e}"))?;
        let scopes = [SCOPE];
        let bound = app.authorization_header_for_app(&scopes, &HeaderOptions::mtls_pop()).await.map_err(|e| anyhow!("{e}"))?;
        let bearer = app.authorization_header_for_app(&scopes, &HeaderOptions::bearer()).await.map_err(|e| anyhow!("{e}"))?;
        if bound.binding().is_none() || bearer.binding().is_some() {
            bail!("expected one bound and one unbound header");
        }
        let pool = certbound_downstream::TransportPool::builder().trust(anchors).build().map_err(|e| anyhow!("{e}"))?;
        let mtls = pool.client_for(bound.binding()).map_err(|e| anyhow!("{e}"))?;
        let plain = pool.client_for(None).map_err(|e| anyhow!("{e}"))?;
        drive(&mtls, &url, bound.value(), 300, concurrency).await?;
        drive(&plain, &url, bearer.value(), 300, concurrency).await?;
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            a.push(drive(&mtls, &url, bound.value(), requests, concurrency).await?);
            b.push(drive(&plain, &url, bearer.value(), requests, concurrency).await?);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        running.shutdown().await;
        Ok(json!({"bound_mtls": a, "bearer_https": b, "requests": requests, "concurrency": concurrency}))
    })
}

async fn drive(client: &reqwest::Client, url: &str, header: &str, requests: usize, concurrency: usize) -> anyhow::Result<f64> {
    let start = Instant::now();
    let results: Vec<bool> = futures::stream::iter(0..requests)
        .map(|_| async {
            match client.get(url).header("authorization", header).send().await {
                Ok(r) => r.status() == 200 && r.bytes().await.is_ok(),
                Err(_) => false,
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let failures = results.iter().filter(|ok| !**ok).count();
    if failures > 0 {
        bail!("{failures} of {requests} calls failed");
    }
    Ok(requests as f64 / start.elapsed().as_secs_f64())
}

fn proc_status(pid: &str) -> anyhow::Result<Value> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).with_context(|| format!("/proc/{pid}/status"))?;
    let kb = |name: &str| -> Option<u64> {
        s.lines().find(|l| l.starts_with(name)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok())
    };
    Ok(json!({"VmRSS_kB": kb("VmRSS:"), "VmHWM_kB": kb("VmHWM:")}))
}

/// `memcache [--entries 100000] [--token-bytes 900]`: resident memory of this process before
/// and after filling certbound's in-memory token cache with distinct bound tokens.
fn memcache(args: &[String]) -> anyhow::Result<Value> {
    let o = Opts::parse(args)?;
    let entries: u64 = o.num("entries", 100_000)?;
    let token_bytes: usize = o.num("token-bytes", 900)?;
    let authority = "https://127.0.0.1:8443/00000000-0000-0000-0000-00000000b0b0/v2.0";
    let thumb = Thumbprint::of_der(b"bench client certificate");
    let before = proc_status("self")?;
    let cache = MemoryTokenCache::new(entries * 2);
    let exp = certbound_core::now_unix() + 86_400;
    for i in 0..entries {
        let scope = format!("api://resource-{i}/.default");
        let key = CacheKey::new(authority, "00000000-0000-0000-0000-00000000b0b0", "bench", &[scope.as_str()], "mtls_pop", Some(&thumb));
        // A distinct token string of a real bound token's length.
        let mut tok = format!("eyJ{i:08}");
        while tok.len() < token_bytes {
            tok.push_str("AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_");
        }
        tok.truncate(token_bytes);
        tok.shrink_to_fit();
        let token = CachedToken::new("mtls_pop", Secret::new(tok), exp, None, Some(&thumb));
        cache.set(&key, &token).now_or_never().ok_or_else(|| anyhow!("cache set blocked"))?.map_err(|e| anyhow!("{e}"))?;
    }
    let probe = CacheKey::new(authority, "00000000-0000-0000-0000-00000000b0b0", "bench", &["api://resource-7/.default"], "mtls_pop", Some(&thumb));
    if cache.get_now(&probe).is_none() {
        bail!("cache lost entry 7");
    }
    let after = proc_status("self")?;
    Ok(json!({"entries": entries, "token_bytes": token_bytes, "len": cache.len(), "before": before, "after": after}))
}

/// `idleconn --addr HOST:PORT --ca CA --cert C --key K --pid PID [--conns 500]`: server's
/// resident memory before and after N idle mTLS connections (each completed one request).
fn idleconn(args: &[String]) -> anyhow::Result<Value> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let o = Opts::parse(args)?;
    let addr: std::net::SocketAddr = o.get("addr")?.parse()?;
    let pid = o.get("pid")?.to_owned();
    let conns: usize = o.num("conns", 500)?;
    let id = load_identity(o.get("cert")?, o.get("key")?)?;
    let cfg = Arc::new(client_config(&anchors(o.get("ca")?)?, Some(&id)).map_err(|e| anyhow!("{e}"))?);
    let rt = runtime(2)?;
    rt.block_on(async move {
        let before = proc_status(&pid)?;
        let connector = tokio_rustls::TlsConnector::from(cfg);
        let name = rustls_pki_types::ServerName::try_from("127.0.0.1")?.to_owned();
        let mut held = Vec::with_capacity(conns);
        for _ in 0..conns {
            let tcp = tokio::net::TcpStream::connect(addr).await?;
            let mut tls = connector.connect(name.clone(), tcp).await?;
            tls.write_all(b"GET /whoami HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n").await?;
            let mut buf = [0u8; 4096];
            let n = tls.read(&mut buf).await?;
            if !buf[..n].starts_with(b"HTTP/1.1 ") {
                bail!("unexpected response on an idle connection");
            }
            held.push(tls);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = proc_status(&pid)?;
        drop(held);
        Ok(json!({"conns": conns, "before": before, "after": after}))
    })
}
