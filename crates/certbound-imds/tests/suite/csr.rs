//! The CSR's exact content: subject, `cuId` attribute, RSASSA-PSS parameters, and a
//! signature that verifies with x509-parser and with `openssl req -verify`.
#![allow(clippy::string_slice)]
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::process::Command;

use certbound_imds::{CU_ID_ATTRIBUTE_OID, CertificateRequest};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::oid_registry::{
    OID_DOMAIN_COMPONENT, OID_NIST_HASH_SHA256, OID_PKCS1_RSAENCRYPTION, OID_PKCS1_RSASSAPSS,
    OID_X509_COMMON_NAME,
};
use x509_parser::prelude::FromDer as _;

const CLIENT: &str = "9f1e2c3d-0000-4a5b-8c7d-123456789abc";
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

fn cu_id() -> serde_json::Value {
    serde_json::json!({"vmId": "2f1c3b5a-7e6d-4c2b-9a1f-0e5d4c3b2a10", "vmssId": "vmss-42"})
}

fn make() -> CertificateRequest {
    CertificateRequest::generate(CLIENT, TENANT, &cu_id()).unwrap()
}

#[test]
fn subject_attribute_and_pss_parameters() {
    let req = make();
    let (rest, csr) = X509CertificationRequest::from_der(req.der()).unwrap();
    assert!(rest.is_empty());
    let info = &csr.certification_request_info;

    // Subject: DER order DC={tenant} then CN={client} (RFC 4514: "CN=…,DC=…").
    let rdns: Vec<(String, String)> = info
        .subject
        .iter_attributes()
        .map(|a| {
            (
                a.attr_type().to_id_string(),
                a.as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        rdns,
        vec![
            (OID_DOMAIN_COMPONENT.to_id_string(), TENANT.to_string()),
            (OID_X509_COMMON_NAME.to_id_string(), CLIENT.to_string()),
        ]
    );
    assert_eq!(info.version.0, 0);

    // The key: RSA-2048, the same as the one we keep.
    assert_eq!(
        info.subject_pki.algorithm.algorithm,
        OID_PKCS1_RSAENCRYPTION
    );
    assert_eq!(
        info.subject_pki.subject_public_key.data.as_ref(),
        req.key().public_key_bytes()
    );
    match info.subject_pki.parsed().unwrap() {
        x509_parser::public_key::PublicKey::RSA(k) => assert_eq!(k.key_size(), 2048),
        other => panic!("not RSA: {other:?}"),
    }

    // The cuId attribute: exactly one, a UTF8String of the compact JSON.
    let attrs = info.attributes();
    assert_eq!(attrs.len(), 1);
    assert_eq!(attrs[0].oid.to_id_string(), CU_ID_ATTRIBUTE_OID);
    let expected_json = serde_json::to_string(&cu_id()).unwrap();
    let utf8 = {
        let mut v = vec![0x0C, expected_json.len() as u8];
        v.extend_from_slice(expected_json.as_bytes());
        v
    };
    let mut set = vec![0x31, utf8.len() as u8];
    set.extend_from_slice(&utf8);
    let mut attr_der = vec![
        0x06, 0x0A, 0x2B, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x5A, 0x02, 0x0A,
    ];
    attr_der.extend_from_slice(&set);
    let raw = info.raw;
    assert!(
        raw.windows(attr_der.len())
            .any(|w| w == attr_der.as_slice()),
        "the attribute SEQUENCE body must be OID 1.3.6.1.4.1.311.90.2.10 + SET {{ UTF8String {expected_json} }}"
    );

    // RSASSA-PSS with SHA-256, MGF1-SHA-256, salt 32, trailer 1.
    assert_eq!(csr.signature_algorithm.algorithm, OID_PKCS1_RSASSAPSS);
    let params = x509_parser::signature_algorithm::RsaSsaPssParams::try_from(
        csr.signature_algorithm.parameters.as_ref().unwrap(),
    )
    .unwrap();
    assert_eq!(*params.hash_algorithm_oid(), OID_NIST_HASH_SHA256);
    let mgf = params.mask_gen_algorithm().unwrap();
    assert_eq!(mgf.mgf.to_id_string(), "1.2.840.113549.1.1.8");
    assert_eq!(mgf.hash, OID_NIST_HASH_SHA256);
    assert_eq!(params.salt_length(), 32);
    assert_eq!(params.trailer_field(), 1);
    assert_eq!(csr.signature_value.data.len(), 256);

    csr.verify_signature().unwrap();
}

#[test]
fn tampered_csr_does_not_verify() {
    let req = make();
    let mut der = req.der().to_vec();
    // Flip one bit inside the subject (CN value).
    let pos = der
        .windows(CLIENT.len())
        .position(|w| w == CLIENT.as_bytes())
        .unwrap();
    der[pos] ^= 0x01;
    let (_, csr) = X509CertificationRequest::from_der(&der).unwrap();
    assert!(csr.verify_signature().is_err());
}

fn openssl_available() -> bool {
    Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn openssl_req(pem: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("req.pem");
    std::fs::write(&path, pem).unwrap();
    let out = Command::new("openssl")
        .args(["req", "-verify", "-noout", "-text", "-in"])
        .arg(&path)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn openssl_verifies_the_csr_and_sees_pss_sha256_salt_32() {
    if !openssl_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "openssl is required in CI"
        );
        eprintln!("SKIPPED: the openssl command is not installed");
        return;
    }
    let req = make();
    let (ok, text) = openssl_req(&req.to_pem());
    assert!(ok, "openssl rejected the CSR:\n{text}");
    assert!(text.contains("verify OK"), "{text}");
    assert!(text.contains("rsassaPss"), "{text}");
    assert!(text.contains("Hash Algorithm: sha256"), "{text}");
    assert!(text.contains("Mask Algorithm: mgf1 with sha256"), "{text}");
    assert!(text.contains("Salt Length: 0x20"), "{text}");
    assert!(
        text.contains(&format!("Subject: DC = {TENANT}, CN = {CLIENT}")),
        "{text}"
    );
    assert!(text.contains("Public-Key: (2048 bit)"), "{text}");
    assert!(text.contains(CU_ID_ATTRIBUTE_OID), "{text}");
    assert!(text.contains("vmss-42"), "{text}");

    // And openssl notices a broken signature.
    let mut der = req.der().to_vec();
    let last = der.len() - 1;
    der[last] ^= 0xFF;
    let pem = certbound_core::pem_encode("CERTIFICATE REQUEST", &der);
    let (ok, text) = openssl_req(&pem);
    assert!(!ok || !text.contains("verify OK"), "{text}");
}

#[test]
fn non_rsa_keys_are_refused() {
    let ec = certbound_core::PrivateKey::generate(certbound_core::KeyKind::EcP256).unwrap();
    let err = CertificateRequest::for_key(ec, CLIENT, TENANT, &cu_id()).unwrap_err();
    assert!(err.to_string().contains("RSA"), "{err}");
}

#[test]
fn debug_shows_no_key_material() {
    let req = make();
    let dbg = format!("{req:?}");
    let pem = req.key().to_pkcs8_pem();
    assert!(!dbg.contains(&pem[40..80]));
    assert!(dbg.contains("RSA-2048"));
}
