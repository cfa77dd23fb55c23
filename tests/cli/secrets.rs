//! Secrets never reach diagnostics: the whole demo at `RUST_LOG=trace` prints no token, no
//! private key, no DPoP proof or signed request and no secret, on stdout or stderr — for every scheme.
#![allow(clippy::string_slice)]
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::process::Command;

fn jwt_like(text: &str) -> Option<&str> {
    // Every JWS/JWT starts with base64url("{\"") = "eyJ"; look for header.payload shapes.
    text.match_indices("eyJ").find_map(|(i, _)| {
        let rest = &text[i..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'))
            .unwrap_or(rest.len());
        let candidate = &rest[..end];
        (candidate.matches('.').count() >= 1 && candidate.len() > 20).then_some(candidate)
    })
}

#[test]
fn demo_at_trace_level_leaks_nothing() {
    for scheme in ["mtls_pop", "bearer", "dpop", "pop", "mtls"] {
        let out = Command::new(env!("CARGO_BIN_EXE_certbound"))
            .args(["demo", "--scheme", scheme])
            .env("RUST_LOG", "trace")
            .output()
            .expect("run demo");
        assert!(
            out.status.success(),
            "demo failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            all.lines().count() > 100,
            "trace logging was not on ({} lines)",
            all.lines().count()
        );
        if let Some(t) = jwt_like(&all) {
            panic!("a token-shaped value appears in the output: {:.24}…", t);
        }
        for needle in ["PRIVATE KEY", "client_assertion=", "client_secret="] {
            assert!(!all.contains(needle), "`{needle}` appears in the output");
        }
    }
}

#[test]
fn the_detector_finds_tokens() {
    assert!(jwt_like("x eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.sig y").is_some());
    assert!(jwt_like("eyJ alone").is_none());
}
