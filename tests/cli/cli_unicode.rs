//! `certbound inspect` on non-ASCII input: a clear line and an exit status, never a panic
//! (it once sliced the input at a byte offset to strip a `Bearer `/`mtls_pop ` prefix).
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

fn inspect(args: &[&str], stdin: Option<&str>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_certbound"));
    c.env_remove("RUST_LOG")
        .arg("inspect")
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn certbound");
    let mut pipe = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        pipe.write_all(text.as_bytes()).expect("write stdin");
    }
    drop(pipe);
    child.wait_with_output().expect("wait")
}

fn b64(v: &serde_json::Value) -> String {
    certbound::core::b64::encode(serde_json::to_vec(v).unwrap())
}

#[test]
fn inspect_refuses_non_ascii_garbage_with_one_clear_line() {
    for input in [
        "ééééé",
        "bearer€x",
        "mtls_po€ eyJ",
        "Bearer é.é.é",
        "€.€.€",
        "𝄞𝄞𝄞𝄞𝄞𝄞𝄞𝄞",
    ] {
        for (args, stdin) in [(vec![input], None), (vec!["-"], Some(input))] {
            let out = inspect(&args, stdin);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{input:?}: {err}");
            assert!(!err.contains("panicked"), "{input:?}: {err}");
            assert_eq!(err.trim().lines().count(), 1, "{input:?}: {err}");
            assert!(err.contains("not a decodable JWT"), "{input:?}: {err}");
        }
    }
}

#[test]
fn inspect_decodes_a_token_with_non_ascii_header_and_claims() {
    let header = serde_json::json!({"alg": "€", "typ": "applicatio€", "kid": "aé", "crit": ["𝄞"]});
    let claims = serde_json::json!({"iss": "é", "aud": ["€"], "sub": "𝄞", "exp": 4_000_000_000_i64,
        "cnf": {"x5t#S256": "€".repeat(14), "jwk": {"kty": "é"}}});
    let token = format!("{}.{}.c2ln", b64(&header), b64(&claims));
    for (args, stdin) in [
        (vec![token.as_str()], None),
        (vec!["-"], Some(format!("Bearer {token}"))),
        (vec!["--json", "-"], Some(format!("mtls_pop {token}"))),
    ] {
        let out = inspect(&args, stdin.as_deref());
        let err = String::from_utf8_lossy(&out.stderr);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(text.contains('€') && text.contains('𝄞'), "{text}");
    }
}
