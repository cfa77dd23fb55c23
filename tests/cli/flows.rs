//! The whole command line end to end: demo, authority → token → API → call, every scheme.

use super::*;

#[test]
pub(super) fn demo_json_reports_every_step() {
    let out = bin().args(["demo", "--json"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(report["ok"], true, "{report}");
    let steps = report["steps"].as_array().unwrap();
    let names: Vec<_> = steps.iter().map(|s| s["name"].as_str().unwrap()).collect();
    for expected in [
        "token",
        "bound_call",
        "another_certificate",
        "no_certificate",
    ] {
        assert!(names.contains(&expected), "{names:?}");
    }
    let status = |n: &str| steps.iter().find(|s| s["name"] == n).unwrap()["status"].as_u64();
    assert_eq!(status("bound_call"), Some(200));
    assert_eq!(status("another_certificate"), Some(401));
    assert_eq!(status("no_certificate"), Some(401));
    // The demo never prints a token.
    assert!(!stdout.contains("eyJ"), "a JWT leaked into the demo output");
}

#[test]
pub(super) fn full_cli_flow_authority_token_api_call_inspect() {
    let dir = tempfile::tempdir().unwrap();
    let d = |p: &str| -> PathBuf { dir.path().join(p) };
    let auth_dir = d("authority");
    let auth_dir_s = auth_dir.to_str().unwrap();

    let authority = Server::start(&[
        "authority",
        "serve",
        "--dir",
        auth_dir_s,
        "--addr",
        "127.0.0.1:0",
    ]);
    let issuer = authority.ready["issuer"].as_str().unwrap().to_string();
    let ca = authority.ready["ca_cert"].as_str().unwrap().to_string();
    assert!(Path::new(&ca).is_file(), "ca_cert path {ca}");
    assert!(authority.ready["tenant"].as_str().is_some());

    // A client certificate, registered while the authority runs.
    let cert = new_registered_cert(dir.path(), auth_dir_s);
    assert!(cert.is_file() && d("app.key").is_file());

    // The protected API, requiring binding.
    let api = binding_api(&issuer, &ca, &["--addr", "127.0.0.1:0"]);
    let api_url = format!("https://{}", api.ready["addr"].as_str().unwrap());
    let api_ca = api.ready["tls_cert"].as_str().map(str::to_owned);

    // A bound token.
    let config = d("appsettings.json");
    write_config(&config, &issuer, &cert, &api_url, "MTLS_POP");
    let out = run_ok(&[
        "token",
        "--config",
        config.to_str().unwrap(),
        "--scheme",
        "mtls_pop",
        "--ca-cert",
        &ca,
        "--json",
    ]);
    let token: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        token["token_type"]
            .as_str()
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("mtls_pop")
    );
    assert_eq!(token["source"], "identity_provider");
    let thumb = token["binding_thumbprint"]
        .as_str()
        .expect("bound")
        .to_string();
    assert_eq!(thumb.len(), 43);
    let access = token["access_token"].as_str().unwrap().to_string();

    // Nobody reading stdout: token (from the cache now) and register end quietly.
    let out = run_with_closed_stdout(&[
        "token",
        "--config",
        config.to_str().unwrap(),
        "--scheme",
        "mtls_pop",
        "--ca-cert",
        &ca,
        "--json",
    ]);
    assert_quiet_exit("token | (closed)", &out);
    let out = run_with_closed_stdout(&[
        "authority",
        "register",
        "--dir",
        auth_dir_s,
        "--client-id",
        "cli-app",
        "--cert",
        cert.to_str().unwrap(),
        "--audience",
        "api://cli-api",
    ]);
    assert_quiet_exit("authority register | (closed)", &out);

    // inspect: the binding matches the certificate; another certificate does not.
    let out = bin()
        .args(["inspect", "-", "--cert", cert.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write as _;
            c.stdin.take().unwrap().write_all(access.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_lowercase()
        + &String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("not verified") || text.contains("not verify"),
        "{text}"
    );
    assert!(text.contains(&thumb.to_lowercase()), "{text}");

    // call: the API answers 200 over mTLS with the bound token (trusting the API's cert).
    let mut call_args = vec![
        "call".to_string(),
        "--config".into(),
        config.to_str().unwrap().into(),
        "--api".into(),
        "Whoami".into(),
    ];
    let api_trust = api_ca.clone().unwrap_or_else(|| ca.clone());
    call_args.extend(["--ca-cert".to_string(), api_trust.clone()]);
    // The authority's CA must be trusted too: point SSL_CERT_FILE at a bundle of both.
    let bundle = d("bundle.pem");
    let mut pem = std::fs::read_to_string(&ca).unwrap();
    pem.push_str(&std::fs::read_to_string(&api_trust).unwrap());
    std::fs::write(&bundle, pem).unwrap();
    let out = bin()
        .args(&call_args)
        .env("SSL_CERT_FILE", &bundle)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "call failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(body["cnf"]["x5t#S256"], thumb.as_str());
    let closed: Vec<&str> = call_args.iter().map(String::as_str).collect();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = bin()
        .args(&closed)
        .env("SSL_CERT_FILE", &bundle)
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_quiet_exit("call | (closed)", &out);

    // call with the Bearer scheme (unbound token) on the binding-required API: 401, non-zero exit.
    write_config(&config, &issuer, &cert, &api_url, "Bearer");
    let out = bin()
        .args(&call_args)
        .env("SSL_CERT_FILE", &bundle)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("401") && err.contains("invalid_token"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one clear line: {err}");
    assert!(!err.contains("eyJ"), "no token in errors: {err}");

    // Servers stop cleanly on SIGTERM.
    assert!(api.terminate().success());
    assert!(authority.terminate().success());
}

/// `certbound call` and `certbound token` with every protocol scheme, against the
/// development authority and the sample API (binding required, certificate allow-list).
#[test]
pub(super) fn call_and_token_support_every_scheme() {
    let dir = tempfile::tempdir().unwrap();
    let d = |p: &str| -> PathBuf { dir.path().join(p) };
    let auth_dir = d("authority");
    let auth_dir_s = auth_dir.to_str().unwrap();
    let authority = Server::start(&["authority", "serve", "--dir", auth_dir_s]);
    let issuer = authority.ready["issuer"].as_str().unwrap().to_string();
    let ca = authority.ready["ca_cert"].as_str().unwrap().to_string();
    let cert = new_registered_cert(dir.path(), auth_dir_s);
    let thumb = certbound_core::Certificate::load_file(&cert)
        .unwrap()
        .thumbprint()
        .to_base64url();
    let api = binding_api(&issuer, &ca, &["--allow-cert-thumbprint", &thumb]);
    let api_url = format!("https://{}", api.ready["addr"].as_str().unwrap());
    let api_trust = api.ready["tls_cert"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| ca.clone());
    let bundle = d("bundle.pem");
    let mut pem = std::fs::read_to_string(&ca).unwrap();
    pem.push_str(&std::fs::read_to_string(&api_trust).unwrap());
    std::fs::write(&bundle, pem).unwrap();
    let config = d("appsettings.json");
    let call = |scheme_flag: Option<&str>| {
        let mut args = vec![
            "call",
            "--config",
            config.to_str().unwrap(),
            "--api",
            "Whoami",
        ];
        if let Some(s) = scheme_flag {
            args.extend(["--scheme", s]);
        }
        bin()
            .args(&args)
            .env("SSL_CERT_FILE", &bundle)
            .output()
            .unwrap()
    };

    // Token schemes, named in the configuration (any case) or with --scheme.
    for (configured, member) in [("MTLS_POP", "x5t#S256"), ("dpop", "jkt"), ("POP", "kid")] {
        write_config(&config, &issuer, &cert, &api_url, configured);
        let out = call(None);
        assert!(
            out.status.success(),
            "{configured}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let body: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            body["cnf"][member].as_str().is_some_and(|t| t.len() == 43),
            "{configured}: {body}"
        );
        if member == "x5t#S256" {
            assert_eq!(body["cnf"][member], thumb.as_str());
        }
    }
    write_config(&config, &issuer, &cert, &api_url, "Bearer");
    for flag in ["DPoP", "pop", "mtls-pop"] {
        let out = call(Some(flag));
        assert!(
            out.status.success(),
            "--scheme {flag}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // MTLS: the certificate alone, on the API's /certificate route.
    let cfg = serde_json::json!({
        "AzureAd": {
            "Authority": issuer, "ClientId": "cli-app",
            "ClientCredentials": [{ "SourceType": "Path", "CertificateDiskPath": cert }]
        },
        "DownstreamApis": { "Whoami": {
            "BaseUrl": api_url, "RelativePath": "/certificate", "ProtocolScheme": "MTLS"
        } }
    });
    std::fs::write(&config, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
    let out = call(None);
    assert!(
        out.status.success(),
        "MTLS: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(body["x5t#S256"], thumb.as_str());
    // Without the certificate (Bearer, no token is even asked for on this route): 401.
    let out = call(Some("bearer"));
    assert!(!out.status.success());

    // An API demanding DPoP nonces: `call` answers its use_dpop_nonce challenge once.
    let nonce_api = binding_api(&issuer, &ca, &["--dpop-nonce"]);
    assert_eq!(nonce_api.ready["dpop_nonce"], true);
    let nonce_url = format!("https://{}", nonce_api.ready["addr"].as_str().unwrap());
    let mut pem = std::fs::read_to_string(&bundle).unwrap();
    pem.push_str(&std::fs::read_to_string(nonce_api.ready["tls_cert"].as_str().unwrap()).unwrap());
    std::fs::write(&bundle, pem).unwrap();
    write_config(&config, &issuer, &cert, &nonce_url, "DPoP");
    let out = call(None);
    assert!(
        out.status.success(),
        "DPoP with nonces: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(body["scheme"], "DPoP");
    assert!(nonce_api.terminate().success());

    // certbound token --scheme dpop: a DPoP-bound token; presented as Bearer it is refused.
    write_config(&config, &issuer, &cert, &api_url, "Bearer");
    let out = run_ok(&[
        "token",
        "--config",
        config.to_str().unwrap(),
        "--scheme",
        "dpop",
        "--ca-cert",
        &ca,
        "--json",
    ]);
    let token: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(token["token_type"], "DPoP");
    assert_eq!(token["binding_thumbprint"].as_str().map(str::len), Some(43));
    let access = token["access_token"].as_str().unwrap();
    let (_, claims) = certbound_core::jose::decode_unverified(access).unwrap();
    assert_eq!(claims["cnf"]["jkt"], token["binding_thumbprint"]);
    let err = bin()
        .args([
            "token",
            "--config",
            config.to_str().unwrap(),
            "--scheme",
            "mtls",
            "--ca-cert",
            &ca,
        ])
        .output()
        .unwrap();
    assert!(!err.status.success());
    let text = String::from_utf8_lossy(&err.stderr);
    assert!(text.contains("no token"), "{text}");
    assert!(api.terminate().success());
    assert!(authority.terminate().success());
}

#[test]
pub(super) fn demo_json_for_every_other_scheme() {
    for (scheme, steps) in [
        (
            "dpop",
            &[
                "token",
                "bound_call",
                "another_key",
                "replayed_proof",
                "bearer_no_proof",
            ][..],
        ),
        (
            "pop",
            &[
                "token",
                "bound_call",
                "another_key",
                "other_request",
                "bearer_no_proof",
            ][..],
        ),
        (
            "mtls",
            &["bound_call", "another_certificate", "no_certificate"][..],
        ),
        (
            "bearer",
            &["token", "bound_call", "another_certificate"][..],
        ),
    ] {
        let out = bin()
            .args(["demo", "--json", "--scheme", scheme])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let report: Value = serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("{scheme}: {e}: {stdout}"));
        assert!(out.status.success(), "{scheme}: {report}");
        assert_eq!(report["ok"], true, "{report}");
        let names: Vec<_> = report["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        for s in steps {
            assert!(names.contains(s), "{scheme}: {names:?}");
        }
        let status = |n: &str| {
            report["steps"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["name"] == n)
                .unwrap()["status"]
                .as_u64()
        };
        assert_eq!(status("bound_call"), Some(200), "{scheme}");
        match scheme {
            "mtls" => {
                assert_eq!(status("another_certificate"), Some(403));
                assert_eq!(status("no_certificate"), Some(401));
            }
            "bearer" => assert_eq!(status("another_certificate"), Some(200)),
            _ => {
                for s in &steps[2..] {
                    assert_eq!(status(s), Some(401), "{scheme} {s}");
                }
            }
        }
        assert!(
            !stdout.contains("eyJ"),
            "{scheme}: a JWT leaked into the demo output"
        );
    }
    let out = bin()
        .args(["demo", "--managed-identity", "--scheme", "dpop"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--managed-identity works with"), "{err}");
}

#[test]
pub(super) fn bad_input_gives_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.json");
    let out = bin()
        .args(["token", "--config", missing.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nope.json"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{ not json").unwrap();
    let out = bin()
        .args(["call", "--config", bad.to_str().unwrap(), "--api", "X"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.json"), "{err}");

    let out = bin().args(["inspect", "not-a-token"]).output().unwrap();
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim().lines().count(),
        1
    );
}

#[test]
pub(super) fn bench_drives_many_mtls_connections_without_errors() {
    for target in ["api", "authority"] {
        let out = run_ok(&[
            "bench",
            "--target",
            target,
            "--connections",
            "24",
            "--duration",
            "1",
            "--json",
        ]);
        let r: Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(r["target"], target);
        assert_eq!(r["errors"], 0, "{r}");
        assert_eq!(r["connections"], 24);
        assert!(r["requests"].as_u64().unwrap() >= 24, "{r}");
        assert!(
            r["latency_ms"]["p99"].as_f64().unwrap() >= r["latency_ms"]["p50"].as_f64().unwrap()
        );
    }
}
