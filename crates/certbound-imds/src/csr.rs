//! The IMDS v2 certificate signing request (PKCS#10, RFC 2986).
//!
//! IMDS v2 wants an RSA-2048 key and a CSR signed with **RSASSA-PSS/SHA-256** (MGF1-SHA-256,
//! salt length 32), subject `CN={clientId}, DC={tenantId}` and the request attribute
//! `1.3.6.1.4.1.311.90.2.10` holding a UTF8String of the `cuId` JSON from
//! `getplatformmetadata`.
//!
//! **Why the DER is written by hand here**: rcgen (the workspace's certificate generator)
//! signs CSRs only with PKCS#1 v1.5 for RSA keys — it has no RSASSA-PSS signature algorithm
//! — so it cannot produce this CSR. The structure is small and fixed (version, a two-RDN
//! name, an RSA SubjectPublicKeyInfo, one attribute), so a ~60-line DER writer is simpler
//! and easier to audit than pulling in another ASN.1 stack. The signature is made by
//! aws-lc-rs (`RSA_PSS_SHA256`, salt = digest length = 32) through
//! [`PrivateKey::sign`]. The emulator and the tests parse the result with x509-parser and
//! `openssl req -verify`.
//!
//! Name order: the subject is written the way .NET's
//! `new X500DistinguishedName("CN={clientId}, DC={tenantId}")` (what MSAL.NET uses) encodes it:
//! the DER RDN sequence is `DC={tenantId}` then `CN={clientId}`, which RFC 4514 renders as
//! `CN={clientId},DC={tenantId}`.
//!
//! ```
//! use certbound_imds::{CertificateRequest, CU_ID_ATTRIBUTE_OID};
//! let cu_id = serde_json::json!({"vmId": "vm-1", "vmssId": ""});
//! let req = CertificateRequest::generate("client-id", "tenant-id", &cu_id).unwrap();
//! assert_eq!(req.key().describe(), "RSA-2048");
//! assert!(req.to_pem().starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
//! assert_eq!(CU_ID_ATTRIBUTE_OID, "1.3.6.1.4.1.311.90.2.10");
//! ```

use std::fmt;

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::RsaKeyPair;
use certbound_core::{JwsAlgorithm, PrivateKey, b64};

use crate::error::{ImdsError, Result};

/// The request attribute carrying the compute unit id (`cuId`) JSON.
pub const CU_ID_ATTRIBUTE_OID: &str = "1.3.6.1.4.1.311.90.2.10";
const CU_ID_ATTRIBUTE_ARCS: &[u64] = &[1, 3, 6, 1, 4, 1, 311, 90, 2, 10];
const OID_COMMON_NAME: &[u64] = &[2, 5, 4, 3];
const OID_DOMAIN_COMPONENT: &[u64] = &[0, 9, 2342, 19200300, 100, 1, 25];
const OID_RSA_ENCRYPTION: &[u64] = &[1, 2, 840, 113549, 1, 1, 1];
const OID_RSASSA_PSS: &[u64] = &[1, 2, 840, 113549, 1, 1, 10];
const OID_MGF1: &[u64] = &[1, 2, 840, 113549, 1, 1, 8];
const OID_SHA256: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 2, 1];
/// The RSASSA-PSS salt length used (the SHA-256 digest length).
pub const PSS_SALT_LENGTH: u32 = 32;

/// A fresh RSA-2048 key and the signed CSR for it.
pub struct CertificateRequest {
    key: PrivateKey,
    der: Vec<u8>,
}

impl fmt::Debug for CertificateRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateRequest")
            .field("key", &self.key.describe())
            .field("csr_len", &self.der.len())
            .finish_non_exhaustive()
    }
}

impl CertificateRequest {
    /// Generates an RSA-2048 key (aws-lc-rs) and a PSS-signed CSR for `client_id` /
    /// `tenant_id` carrying `cu_id` (serialised compactly) as the `cuId` attribute.
    pub fn generate(client_id: &str, tenant_id: &str, cu_id: &serde_json::Value) -> Result<Self> {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048)
            .map_err(|_| ImdsError::Csr("RSA-2048 key generation failed".into(), None))?;
        let pkcs8 = zeroize::Zeroizing::new(
            pair.as_der()
                .map_err(|_| ImdsError::Csr("cannot encode the RSA key as PKCS#8".into(), None))?
                .as_ref()
                .to_vec(),
        );
        let key = PrivateKey::from_der(&pkcs8).map_err(|e| ImdsError::Csr(e, None))?;
        Self::for_key(key, client_id, tenant_id, cu_id)
    }

    /// Builds the CSR for an existing RSA key (2048 bits or more).
    pub fn for_key(
        key: PrivateKey,
        client_id: &str,
        tenant_id: &str,
        cu_id: &serde_json::Value,
    ) -> Result<Self> {
        if !key.is_rsa() {
            return Err(ImdsError::Csr(
                format!("IMDS v2 needs an RSA key, not {}", key.describe()),
                None,
            ));
        }
        let cu_id_json = serde_json::to_string(cu_id).map_err(|e| {
            ImdsError::Csr(format!("cannot serialise cuId: {e}"), Some(Box::new(e)))
        })?;
        let info = certification_request_info(&key, client_id, tenant_id, &cu_id_json);
        let signature = key.sign(JwsAlgorithm::PS256, &info).map_err(|e| {
            ImdsError::Csr(format!("RSASSA-PSS signing failed: {e}"), Some(Box::new(e)))
        })?;
        let der = der::seq(&[
            &info,
            &pss_sha256_algorithm_identifier(),
            &der::bit_string(&signature),
        ]);
        Ok(Self { key, der })
    }

    /// The CSR, DER.
    pub fn der(&self) -> &[u8] {
        &self.der
    }
    /// The CSR as standard base64 of the DER (what `issuecredential` takes).
    pub fn to_base64(&self) -> String {
        b64::encode_std(&self.der)
    }
    /// The CSR as PEM (`CERTIFICATE REQUEST`).
    pub fn to_pem(&self) -> String {
        certbound_core::pem_encode("CERTIFICATE REQUEST", &self.der)
    }
    /// The private key the CSR is for.
    pub fn key(&self) -> &PrivateKey {
        &self.key
    }
    /// Splits into the key and the CSR DER.
    pub fn into_parts(self) -> (PrivateKey, Vec<u8>) {
        (self.key, self.der)
    }
}

/// `CertificationRequestInfo ::= SEQUENCE { version, subject, subjectPKInfo, [0] attributes }`.
fn certification_request_info(
    key: &PrivateKey,
    client_id: &str,
    tenant_id: &str,
    cu_id_json: &str,
) -> Vec<u8> {
    let subject = der::seq(&[
        &der::set(&[&der::seq(&[
            &der::oid(OID_DOMAIN_COMPONENT),
            &der::ia5_or_utf8(tenant_id),
        ])]),
        &der::set(&[&der::seq(&[
            &der::oid(OID_COMMON_NAME),
            &der::utf8(client_id),
        ])]),
    ]);
    let attribute = der::seq(&[
        &der::oid(CU_ID_ATTRIBUTE_ARCS),
        &der::set(&[&der::utf8(cu_id_json)]),
    ]);
    let attributes = der::tlv(0xA0, &attribute);
    der::seq(&[&der::integer_u32(0), &subject, &rsa_spki(key), &attributes])
}

/// `SubjectPublicKeyInfo` for an RSA key: `{ {rsaEncryption, NULL}, BIT STRING RSAPublicKey }`.
pub(crate) fn rsa_spki(key: &PrivateKey) -> Vec<u8> {
    der::seq(&[
        &der::seq(&[&der::oid(OID_RSA_ENCRYPTION), &der::null()]),
        &der::bit_string(key.public_key_bytes()),
    ])
}

/// `{ id-RSASSA-PSS, { [0] sha256, [1] {mgf1, sha256}, [2] 32 } }` (trailerField: default 1).
fn pss_sha256_algorithm_identifier() -> Vec<u8> {
    let sha256 = der::seq(&[&der::oid(OID_SHA256), &der::null()]);
    let mgf1 = der::seq(&[&der::oid(OID_MGF1), &sha256]);
    let params = der::seq(&[
        &der::tlv(0xA0, &sha256),
        &der::tlv(0xA1, &mgf1),
        &der::tlv(0xA2, &der::integer_u32(PSS_SALT_LENGTH)),
    ]);
    der::seq(&[&der::oid(OID_RSASSA_PSS), &params])
}

/// A minimal DER writer: exactly the types the CSR needs.
mod der {
    pub(super) fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(content.len() + 6);
        out.push(tag);
        let n = content.len();
        if n < 0x80 {
            out.push(n as u8);
        } else {
            let bytes = n.to_be_bytes();
            let skip = bytes.iter().take_while(|b| **b == 0).count();
            out.push(0x80 | (bytes.len() - skip) as u8);
            out.extend_from_slice(&bytes[skip..]);
        }
        out.extend_from_slice(content);
        out
    }
    fn concat(parts: &[&[u8]]) -> Vec<u8> {
        parts.iter().flat_map(|p| p.iter().copied()).collect()
    }
    pub(super) fn seq(parts: &[&[u8]]) -> Vec<u8> {
        tlv(0x30, &concat(parts))
    }
    /// A SET OF with one element (no DER sorting needed) or several already in DER order.
    pub(super) fn set(parts: &[&[u8]]) -> Vec<u8> {
        let mut sorted: Vec<&[u8]> = parts.to_vec();
        sorted.sort();
        tlv(0x31, &concat(&sorted))
    }
    pub(super) fn oid(arcs: &[u64]) -> Vec<u8> {
        let mut body = Vec::new();
        let mut push = |mut v: u64| {
            let mut tmp = [0u8; 10];
            let mut i = tmp.len();
            loop {
                i -= 1;
                tmp[i] = (v & 0x7f) as u8 | if i == tmp.len() - 1 { 0 } else { 0x80 };
                v >>= 7;
                if v == 0 {
                    break;
                }
            }
            body.extend_from_slice(&tmp[i..]);
        };
        push(arcs[0] * 40 + arcs[1]);
        for a in &arcs[2..] {
            push(*a);
        }
        tlv(0x06, &body)
    }
    pub(super) fn utf8(s: &str) -> Vec<u8> {
        tlv(0x0C, s.as_bytes())
    }
    /// IA5String when the value is ASCII (RFC 4519 requires it for DC), else UTF8String.
    pub(super) fn ia5_or_utf8(s: &str) -> Vec<u8> {
        if s.is_ascii() {
            tlv(0x16, s.as_bytes())
        } else {
            utf8(s)
        }
    }
    pub(super) fn null() -> Vec<u8> {
        vec![0x05, 0x00]
    }
    pub(super) fn integer_u32(v: u32) -> Vec<u8> {
        let bytes = v.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count().min(3);
        let mut body = bytes[skip..].to_vec();
        if body[0] & 0x80 != 0 {
            body.insert(0, 0);
        }
        tlv(0x02, &body)
    }
    pub(super) fn bit_string(bytes: &[u8]) -> Vec<u8> {
        let mut body = Vec::with_capacity(bytes.len() + 1);
        body.push(0);
        body.extend_from_slice(bytes);
        tlv(0x03, &body)
    }
}

#[cfg(test)]
mod tests {
    use super::der;

    #[test]
    fn der_primitives() {
        assert_eq!(
            der::oid(&[1, 2, 840, 113549, 1, 1, 10]),
            [
                0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0A
            ]
        );
        assert_eq!(
            der::oid(&[0, 9, 2342, 19200300, 100, 1, 25]),
            [
                0x06, 0x0A, 0x09, 0x92, 0x26, 0x89, 0x93, 0xF2, 0x2C, 0x64, 0x01, 0x19
            ]
        );
        assert_eq!(der::integer_u32(0), [0x02, 0x01, 0x00]);
        assert_eq!(der::integer_u32(32), [0x02, 0x01, 0x20]);
        assert_eq!(der::integer_u32(128), [0x02, 0x02, 0x00, 0x80]);
        let long = der::tlv(0x04, &[0u8; 300]);
        assert_eq!(&long[..4], &[0x04, 0x82, 0x01, 0x2C]);
        assert_eq!(der::tlv(0x04, &[0u8; 200])[..3], [0x04, 0x81, 200]);
    }
}
