//! The emulator's HTTP handlers: platform metadata, credential issuance (CSR checks), tokens.

use super::*;

pub(super) fn imds_json(status: StatusCode, body: serde_json::Value) -> Response {
    let mut r = (status, axum::Json(body)).into_response();
    r.headers_mut()
        .insert(header::SERVER, HeaderValue::from_static(SERVER_HEADER));
    r
}

pub(super) fn imds_error(
    status: StatusCode,
    error: &str,
    description: impl fmt::Display,
) -> Response {
    imds_json(
        status,
        json!({ "error": error, "error_description": description.to_string() }),
    )
}

/// IMDS refuses requests without `Metadata: true` (400), to stop SSRF.
pub(super) fn refuse_without_metadata(headers: &HeaderMap) -> Option<Response> {
    let ok = headers
        .get("metadata")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    (!ok).then(|| {
        imds_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Required metadata header not specified",
        )
    })
}

pub(super) fn refuse_bad_cred_api(q: &HashMap<String, String>) -> Option<Response> {
    match q.get("cred-api-version").map(String::as_str) {
        Some("2.0") => None,
        Some(other) => Some(imds_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("unsupported cred-api-version `{other}`; use 2.0"),
        )),
        None => Some(imds_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "cred-api-version is required",
        )),
    }
}

pub(super) async fn platform_metadata(
    State(cfg): Shared,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if cfg.v1_only {
        return imds_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "The requested resource was not found",
        );
    }
    if let Some(r) = refuse_without_metadata(&headers).or_else(|| refuse_bad_cred_api(&q)) {
        return r;
    }
    let (identity, _) = match cfg.select(&q) {
        Ok(found) => found,
        Err(e) => return imds_error(StatusCode::BAD_REQUEST, "invalid_request", e),
    };
    imds_json(
        StatusCode::OK,
        json!({
            "cuId": cfg.cu_id,
            "clientId": identity.client_id,
            "tenantId": cfg.tenant_id,
            "attestationEndpoint": cfg.attestation_endpoint,
        }),
    )
}

/// Why a CSR was refused.
pub(super) fn csr_refused(why: impl fmt::Display) -> Response {
    imds_error(StatusCode::BAD_REQUEST, "invalid_csr", why)
}

/// The parts of a checked CSR the handler needs.
pub(super) struct CheckedCsr {
    pub(super) client_id: String,
    pub(super) spki_der: Vec<u8>,
}

/// Parses and checks a CSR: RSASSA-PSS (SHA-256, MGF1-SHA-256, salt 32) signature that
/// verifies, an RSA key of 2048+ bits, subject exactly `CN=<client>` + `DC=<tenant>`, and the
/// `cuId` attribute equal to the host's.
pub(super) fn check_csr(cfg: &EmulatorConfig, der: &[u8]) -> Result<CheckedCsr, String> {
    use x509_parser::certification_request::X509CertificationRequest;
    let (rest, csr) = X509CertificationRequest::from_der(der)
        .map_err(|e| format!("not a PKCS#10 certification request: {e}"))?;
    if !rest.is_empty() {
        return Err("trailing bytes after the CSR".into());
    }
    let alg = &csr.signature_algorithm;
    if alg.algorithm != OID_PKCS1_RSASSAPSS {
        return Err(format!(
            "the CSR must be signed with RSASSA-PSS (1.2.840.113549.1.1.10), not {}",
            alg.algorithm
        ));
    }
    let params = alg
        .parameters
        .as_ref()
        .ok_or("RSASSA-PSS parameters are missing")
        .and_then(|p| {
            x509_parser::signature_algorithm::RsaSsaPssParams::try_from(p)
                .map_err(|_| "RSASSA-PSS parameters are malformed")
        })?;
    let sha256 = x509_parser::oid_registry::OID_NIST_HASH_SHA256;
    let mgf = params
        .mask_gen_algorithm()
        .map_err(|_| "the RSASSA-PSS mask generation function is malformed")?;
    if *params.hash_algorithm_oid() != sha256 || mgf.hash != sha256 {
        return Err("RSASSA-PSS must use SHA-256 and MGF1 with SHA-256".into());
    }
    if params.salt_length() != PSS_SALT_LENGTH || params.trailer_field() != 1 {
        return Err(format!(
            "RSASSA-PSS salt length must be {PSS_SALT_LENGTH} (got {}) with trailer field 1",
            params.salt_length()
        ));
    }
    let info = &csr.certification_request_info;
    if info.subject_pki.algorithm.algorithm != OID_PKCS1_RSAENCRYPTION {
        return Err("the CSR's key must be RSA".into());
    }
    csr.verify_signature()
        .map_err(|e| format!("the CSR's signature does not verify: {e}"))?;
    let bits = match info.subject_pki.parsed() {
        Ok(x509_parser::public_key::PublicKey::RSA(k)) => k.key_size(),
        _ => return Err("the CSR's RSA public key is malformed".into()),
    };
    if bits < 2048 {
        return Err(format!(
            "the CSR's RSA key has {bits} bits; 2048 or more are required"
        ));
    }

    let subject = &info.subject;
    let mut cns = Vec::new();
    let mut dcs = Vec::new();
    for attr in subject.iter_attributes() {
        let value = attr
            .as_str()
            .map_err(|_| "a subject attribute is not a string".to_string())?
            .to_string();
        if *attr.attr_type() == x509_parser::oid_registry::OID_X509_COMMON_NAME {
            cns.push(value);
        } else if *attr.attr_type() == x509_parser::oid_registry::OID_DOMAIN_COMPONENT {
            dcs.push(value);
        } else {
            return Err(format!("unexpected subject attribute {}", attr.attr_type()));
        }
    }
    let [cn] = cns.as_slice() else {
        return Err("the subject must have exactly one CN (the client id)".into());
    };
    let [dc] = dcs.as_slice() else {
        return Err("the subject must have exactly one DC (the tenant id)".into());
    };
    if !dc.eq_ignore_ascii_case(&cfg.tenant_id) {
        return Err(format!("subject DC `{dc}` is not this host's tenant"));
    }
    if cfg.by_client_id(cn).is_none() {
        return Err(format!(
            "subject CN `{cn}` is not a managed identity of this host"
        ));
    }

    let oid_str = CU_ID_ATTRIBUTE_OID;
    let cu_id = cu_id_attribute(info.raw)?
        .ok_or_else(|| format!("the cuId attribute {oid_str} is missing"))?;
    let parsed: serde_json::Value =
        serde_json::from_str(&cu_id).map_err(|_| format!("attribute {oid_str} is not JSON"))?;
    if parsed != cfg.cu_id {
        return Err(format!(
            "attribute {oid_str} does not name this host's compute unit"
        ));
    }
    Ok(CheckedCsr {
        client_id: cn.clone(),
        spki_der: info.subject_pki.raw.to_vec(),
    })
}

/// Finds the `cuId` attribute in a DER `CertificationRequestInfo` and returns its
/// UTF8String value. (x509-parser keeps only the header of attributes it does not know, so
/// the `[0]` attribute set is walked here with its DER parser.)
pub(super) fn cu_id_attribute(info_der: &[u8]) -> Result<Option<String>, String> {
    use x509_parser::der_parser::ber::BerObjectContent;
    use x509_parser::der_parser::der::parse_der;
    let malformed = |what: &str| format!("malformed CSR attributes: {what}");
    let (_, info) = parse_der(info_der).map_err(|_| malformed("request info"))?;
    let items = info.as_sequence().map_err(|_| malformed("request info"))?;
    let Some(attrs) = items.get(3) else {
        return Ok(None);
    };
    let mut rest: &[u8] = match &attrs.content {
        BerObjectContent::Unknown(any) => any.data,
        _ => return Err(malformed("expected [0] attributes")),
    };
    let mut found = None;
    while !rest.is_empty() {
        let (r, attr) = parse_der(rest).map_err(|_| malformed("attribute"))?;
        rest = r;
        let parts = attr.as_sequence().map_err(|_| malformed("attribute"))?;
        let [oid, values] = parts.as_slice() else {
            return Err(malformed("attribute"));
        };
        let oid = oid.as_oid().map_err(|_| malformed("attribute type"))?;
        if oid.to_id_string() != CU_ID_ATTRIBUTE_OID {
            continue;
        }
        if found.is_some() {
            return Err(format!("attribute {CU_ID_ATTRIBUTE_OID} appears twice"));
        }
        let set = values
            .as_set()
            .map_err(|_| format!("attribute {CU_ID_ATTRIBUTE_OID} values are not a SET"))?;
        match set.as_slice() {
            [v] => match &v.content {
                BerObjectContent::UTF8String(s) => found = Some(s.to_string()),
                _ => {
                    return Err(format!(
                        "attribute {CU_ID_ATTRIBUTE_OID} is not a UTF8String"
                    ));
                }
            },
            _ => {
                return Err(format!(
                    "attribute {CU_ID_ATTRIBUTE_OID} must hold exactly one value"
                ));
            }
        }
    }
    Ok(found)
}

pub(super) async fn issue_credential(
    State(cfg): Shared,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    if cfg.v1_only {
        return imds_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "The requested resource was not found",
        );
    }
    if let Some(r) = refuse_without_metadata(&headers).or_else(|| refuse_bad_cred_api(&q)) {
        return r;
    }
    let v: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => {
            return imds_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "the body must be JSON {\"csr\":…}",
            );
        }
    };
    let Some(csr_b64) = v.get("csr").and_then(|c| c.as_str()) else {
        return imds_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "`csr` is required",
        );
    };
    let der = match b64::decode_std_lenient(csr_b64) {
        Ok(d) => d,
        Err(_) => return csr_refused("`csr` is not base64"),
    };
    let checked = match check_csr(&cfg, &der) {
        Ok(c) => c,
        Err(e) => {
            tracing::info!(reason = %e, "IMDS emulator refused a CSR");
            return csr_refused(e);
        }
    };
    let Some((identity, identity_type)) = cfg.by_client_id(&checked.client_id) else {
        return csr_refused("unknown client id");
    };
    // A user-assigned selector in the query must name the same identity as the CSR.
    match cfg.select(&q) {
        Err(e) => return imds_error(StatusCode::BAD_REQUEST, "invalid_request", e),
        Ok((selected, _)) if selected.client_id != identity.client_id => {
            return csr_refused(format!(
                "the CSR's CN `{}` is not the identity selected by the query",
                checked.client_id
            ));
        }
        Ok(_) => {}
    }
    let mut spec = IssueSpec::client(&identity.client_id).valid_for(cfg.certificate_lifetime);
    spec.extra_subject
        .push(("DC".into(), cfg.tenant_id.clone()));
    // Short lifetimes (tests) start now rather than five minutes ago.
    let now = now_unix();
    let lifetime = cfg.certificate_lifetime.as_secs() as i64;
    if lifetime < 3600 {
        spec = spec.valid_between(now - 1, now + lifetime);
    }
    let cert = match cfg.ca.issue_for_spki(&spec, &checked.spki_der) {
        Ok(c) => c,
        Err(e) => {
            return imds_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                format!("cannot issue: {e}"),
            );
        }
    };
    let registration = ManagedIdentityRegistration {
        client_id: identity.client_id.clone(),
        object_id: identity.object_id.clone(),
        tenant_id: cfg.tenant_id.clone(),
        identity_type,
        thumbprint: cert.thumbprint(),
        certificate: cert.clone(),
    };
    (cfg.on_register)(registration);
    imds_json(
        StatusCode::OK,
        json!({
            "client_id": identity.client_id,
            "tenant_id": cfg.tenant_id,
            "certificate": b64::encode_std(cert.der()),
            "identity_type": identity_type.as_str(),
            "mtls_authentication_endpoint": cfg.mtls_authentication_endpoint,
        }),
    )
}

pub(super) fn unbound_token(
    cfg: &EmulatorConfig,
    q: &HashMap<String, String>,
    channel: TokenChannel,
) -> Result<serde_json::Value, (StatusCode, String)> {
    let resource = q
        .get("resource")
        .map(|r| r.trim())
        .filter(|r| !r.is_empty())
        .ok_or((
            StatusCode::BAD_REQUEST,
            "`resource` is required".to_string(),
        ))?;
    let (identity, identity_type) = cfg.select(q).map_err(|e| (StatusCode::BAD_REQUEST, e))?;
    let request = UnboundTokenRequest {
        client_id: identity.client_id.clone(),
        object_id: identity.object_id.clone(),
        tenant_id: cfg.tenant_id.clone(),
        identity_type,
        resource: resource.to_string(),
        channel,
    };
    let token = cfg
        .token_issuer
        .issue_token(&request)
        .map_err(|e| (StatusCode::BAD_REQUEST, e))?;
    let now = now_unix();
    Ok(json!({
        "access_token": token.access_token.as_str(),
        "client_id": identity.client_id,
        "expires_in": token.expires_in.to_string(),
        "expires_on": (now + token.expires_in as i64).to_string(),
        "ext_expires_in": token.expires_in.to_string(),
        "not_before": now.to_string(),
        "resource": resource,
        "token_type": token.token_type,
    }))
}

pub(super) async fn imds_v1_token(
    State(cfg): Shared,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(r) = refuse_without_metadata(&headers) {
        return r;
    }
    if q.get("api-version").is_none_or(|v| v.is_empty()) {
        return imds_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "api-version is required",
        );
    }
    match unbound_token(&cfg, &q, TokenChannel::ImdsV1) {
        Ok(body) => imds_json(StatusCode::OK, body),
        Err((status, e)) => imds_error(status, "invalid_request", e),
    }
}

pub(super) async fn app_service_token(
    State(cfg): Shared,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let presented = headers.get("x-identity-header").map(|v| v.as_bytes());
    let ok = presented.is_some_and(|p| bool::from(p.ct_eq(cfg.identity_header.as_bytes())));
    if !ok {
        let body = json!({"statusCode": 401, "message": "Unauthorized: X-IDENTITY-HEADER missing or wrong"});
        return (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
    }
    match q.get("api-version").map(String::as_str) {
        Some("2019-08-01") => {}
        _ => {
            let body = json!({"statusCode": 400, "message": "api-version 2019-08-01 is required"});
            return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
        }
    }
    match unbound_token(&cfg, &q, TokenChannel::AppService) {
        Ok(mut body) => {
            if let Some(obj) = body.as_object_mut() {
                for k in ["expires_in", "ext_expires_in", "not_before"] {
                    obj.remove(k);
                }
            }
            (StatusCode::OK, axum::Json(body)).into_response()
        }
        Err((status, e)) => {
            let body = json!({"statusCode": status.as_u16(), "message": e});
            (status, axum::Json(body)).into_response()
        }
    }
}
