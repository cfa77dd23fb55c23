//! Unit tests of configuration loading.

use super::*;
use std::path::Path;

fn env(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn case_insensitive_keys_env_overrides_and_relative_paths() {
    let text = r#"{"AZUREAD":{"clientid":"a","ClientCredentials":[{"sourcetype":"path","certificatediskpath":"certs/app.pem"},
        {"SourceType":"ClientSecret","ClientSecret":"x","Skip":true}]},
        "DownstreamApis":{"Zeta":{"Scopes":["s1"]},"Alpha":{"BaseUrl":"https://a.example/"}}}"#;
    let cfg = AppConfig::parse(
        text,
        Some(Path::new("/etc/app/appsettings.json")),
        Some(Path::new("/etc/app")),
        env(&[
            ("AzureAd__ClientId", "from-env"),
            ("DownstreamApis__Zeta__ProtocolScheme", "MTLS-POP"),
            ("DownstreamApis__Zeta__RequestAppToken", "true"),
            ("AzureAd__ClientCredentials__1__Skip", "false"),
            ("PATH", "/bin"),
        ]),
    )
    .unwrap();
    assert_eq!(cfg.azure_ad.client_id.as_deref(), Some("from-env"));
    assert_eq!(cfg.downstream_apis[0].0, "Zeta", "file order is kept");
    assert_eq!(
        cfg.downstream_apis[0].1.protocol_scheme,
        ProtocolScheme::MtlsPop
    );
    assert!(cfg.downstream_apis[0].1.request_app_token);
    match &cfg.azure_ad.client_credentials[0].source {
        CredentialSourceConfig::Path { path, .. } => {
            assert_eq!(path, Path::new("/etc/app/certs/app.pem"))
        }
        other => panic!("{other:?}"),
    }
    assert!(!cfg.azure_ad.client_credentials[1].skip);
}

#[test]
fn errors_name_file_and_key_path_without_secrets() {
    let text = r#"{"AzureAd":{"ClientCredentials":[{"SourceType":"ClientSecret","ClientSecret":"topsecret"},{"SourceType":"Path"}]}}"#;
    let e = AppConfig::parse(text, Some(Path::new("conf.json")), None, []).unwrap_err();
    let s = e.to_string();
    assert!(
        s.contains("conf.json") && s.contains("AzureAd.ClientCredentials[1].CertificateDiskPath"),
        "{s}"
    );
    let e = AppConfig::from_json_str(
        r#"{"AzureAd":{"ClientCredentials":[{"SourceType":"KeyVault"}]}}"#,
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("AzureAd.ClientCredentials[0].SourceType")
            && e.to_string().contains("KeyVault")
    );
    let e = AppConfig::from_json_str(r#"{"DownstreamApis":{"A":{"ProtocolScheme":"Kerberos"}}}"#)
        .unwrap_err();
    assert!(
        e.to_string().contains("DownstreamApis.A.ProtocolScheme"),
        "{e}"
    );
    let e = AppConfig::from_json_str(r#"{"AzureAd":{"SendX5C":"maybe"}}"#).unwrap_err();
    assert!(e.to_string().contains("AzureAd.SendX5C"));
    let e = AppConfig::from_json_str("{ nope").unwrap_err();
    assert!(e.to_string().contains("not valid JSON"));
    let cfg = AppConfig::from_json_str(r#"{"AzureAd":{"ClientCredentials":[{"SourceType":"ClientSecret","ClientSecret":"topsecret"}]}}"#).unwrap();
    assert!(!format!("{cfg:?}").contains("topsecret"));
}

#[test]
fn full_downstream_model() {
    let cfg = AppConfig::from_json_str(r#"{"DownstreamApis":{"Api":{"BaseUrl":"https://api.example/","RelativePath":"v1/me",
      "HttpMethod":"post","ProtocolScheme":"","RequestAppToken":true,"Scopes":["api://x/.default"],"AcceptHeader":"application/json",
      "ExtraHeaderParameters":{"X-A":"1"},"ExtraQueryParameters":{"q":"2"},
      "AcquireTokenOptions":{"Tenant":"other","ForceRefresh":true}}}}"#).unwrap();
    let a = cfg.downstream_api("api").unwrap();
    assert_eq!(a.http_method, "POST");
    assert_eq!(a.protocol_scheme, ProtocolScheme::Bearer);
    assert_eq!(
        a.extra_header_parameters,
        vec![("X-A".to_string(), "1".to_string())]
    );
    assert_eq!(a.extra_query_parameters[0].1, "2");
    assert_eq!(a.acquire_token_options.tenant.as_deref(), Some("other"));
    assert!(a.acquire_token_options.force_refresh);
}

fn warned(cfg: &AppConfig) -> Vec<(String, Option<&'static str>)> {
    cfg.warnings()
        .iter()
        .map(|w| (w.path.clone(), w.suggestion))
        .collect()
}

#[test]
fn misspelt_keys_are_reported_with_their_path_and_the_nearest_key() {
    let text = r#"{
      "azuread": { "ClientIdd": "a", "Tenant": "t", "ClientCredential": [],
        "ClientCredentials": [
          { "SourceType": "Path", "CertificateDiskPath": "a.pfx", "CertificatePasword": "hunter2-secret" },
          { "SourceType": "ClientSecret", "clientsecret": "x", "Secret": "also-secret", "Zzzzzzzz": 1 } ] },
      "DownstreamApis": { "Graph": { "BaseUri": "https://g.example/", "Scope": ["s"],
          "AcquireTokenOptions": { "ForceRefesh": true, "tenant": "x" },
          "ExtraHeaderParameters": { "Anything-Goes": "1" } } },
      "TokenCache": { "MaxEntry": 5, "Redis": { "ConnectionStrin": "redis://h:1", "keyprefix": "p" } },
      "Sidecar": { "AllowOverride": true },
      "Logging": { "LogLevel": {} }, "AllowedHosts": "*", "AzureAdd": {}, "AzureAdB2C": {}
    }"#;
    let cfg = AppConfig::parse(text, Some(Path::new("app.json")), None, []).unwrap();
    let w = warned(&cfg);
    let expect: &[(&str, Option<&str>)] = &[
        ("AzureAd.ClientIdd", Some("ClientId")),
        ("AzureAd.Tenant", Some("TenantId")),
        ("AzureAd.ClientCredential", Some("ClientCredentials")),
        (
            "AzureAd.ClientCredentials[0].CertificatePasword",
            Some("CertificatePassword"),
        ),
        ("AzureAd.ClientCredentials[1].Secret", Some("ClientSecret")),
        ("AzureAd.ClientCredentials[1].Zzzzzzzz", None),
        ("DownstreamApis.Graph.BaseUri", Some("BaseUrl")),
        ("DownstreamApis.Graph.Scope", Some("Scopes")),
        (
            "DownstreamApis.Graph.AcquireTokenOptions.ForceRefesh",
            Some("ForceRefresh"),
        ),
        ("TokenCache.MaxEntry", Some("MaxEntries")),
        ("TokenCache.Redis.ConnectionStrin", Some("ConnectionString")),
        ("Sidecar.AllowOverride", Some("AllowOverrides")),
        // The top level holds other sections (Logging …): only near misses are reported.
        ("AzureAdd", Some("AzureAd")),
    ];
    let got: Vec<(&str, Option<&str>)> = w.iter().map(|(p, s)| (p.as_str(), *s)).collect();
    assert_eq!(got, expect);
    let line = cfg.warnings()[3].to_string();
    assert_eq!(
        line,
        "app.json: unknown configuration key `AzureAd.ClientCredentials[0].CertificatePasword` is ignored (did you mean `CertificatePassword`?)"
    );
    for w in cfg.warnings() {
        let t = w.to_string();
        assert!(!t.contains("hunter2") && !t.contains("also-secret"), "{t}");
    }
}

#[test]
fn every_documented_key_is_known() {
    // docs/configuration.md, including keys certbound does not act on yet: none of them warns.
    let text = r#"{
      "AzureAd": { "Instance": "https://login.microsoftonline.com/", "TenantId": "t", "ClientId": "c",
        "Authority": "https://a.example/", "AzureRegion": "westus2", "SendX5C": true,
        "AllowUnboundFallback": false, "MinBindingStrength": "Hardware", "HttpTimeoutSeconds": 5,
        "ClientCapabilities": ["cp1"], "ManagedIdentity": {},
        "ClientCredentials": [
          { "SourceType": "Path", "CertificateDiskPath": "a.pem", "CertificatePassword": "p",
            "SendCertificateOverMtls": true, "Skip": false },
          { "SourceType": "Base64Encoded", "Base64EncodedValue": "AAAA" },
          { "SourceType": "ClientSecret", "ClientSecret": "s" },
          { "SourceType": "SignedAssertionFilePath", "SignedAssertionFileDiskPath": "/t" },
          { "SourceType": "ManagedCertificate", "ManagedIdentityClientId": "m" },
          { "SourceType": "SignedAssertionFromManagedIdentity", "ManagedIdentityClientId": "m",
            "TokenExchangeUrl": "api://AzureADTokenExchange" },
          { "SourceType": "ClientSecret", "ClientSecret": "s", "Pkcs11ModulePath": "/m.so", "Pkcs11TokenLabel": "t",
            "Pkcs11KeyLabel": "k", "Pkcs11PinFile": "/p", "Pkcs11Pin": "1234", "Skip": true } ] },
      "DownstreamApis": { "A": { "BaseUrl": "https://a.example/", "RelativePath": "x", "HttpMethod": "Get",
          "ProtocolScheme": "MTLS_POP", "RequestAppToken": true, "Scopes": ["s"], "AcceptHeader": "a/b",
          "ExtraHeaderParameters": {}, "ExtraQueryParameters": {}, "AllowUnboundFallback": true,
          "RequiresTlsRenegotiation": true,
          "AcquireTokenOptions": { "Tenant": "t", "ForceRefresh": false } } },
      "TokenCache": { "MaxEntries": 1, "ExpiryMarginSeconds": 1, "Redis": { "ConnectionString": "redis://h",
          "KeyPrefix": "p", "EncryptionKey": "k", "EncryptionKeys": [], "Timeout": "1s",
          "TlsCaCertificatePath": "ca.pem", "RetryInterval": "1s", "Cluster": false } },
      "Sidecar": { "AllowOverrides": false }
    }"#;
    let cfg = AppConfig::from_json_str(text).unwrap();
    assert_eq!(cfg.warnings(), &[], "{:?}", cfg.warnings());
}

#[test]
fn environment_overrides_that_name_unknown_keys_are_reported() {
    let cfg = AppConfig::parse(
        r#"{"AzureAd":{"ClientId":"a"}}"#,
        None,
        None,
        env(&[
            ("AzureAd__ClientIdd", "secret-value-1"),
            ("AzureAd__ClientCredentials__0__SourceType", "ClientSecret"),
            ("AzureAd__ClientCredentials__0__ClientSecret", "s"),
            (
                "AzureAd__ClientCredentials__0__CertificatePasword",
                "secret-value-2",
            ),
            ("DownstreamApis__Api__AcquireTokenOptions__Tennant", "x"),
            ("TokenCache__Redis__KeyPrefx", "x"),
            ("TokenCache__Redis__ConnectionString", "redis://h"),
            ("AzureAd__TenantId", "t"),
            ("Unrelated__Thing", "x"),
        ]),
    )
    .unwrap();
    let got: Vec<(String, Option<&str>, Option<String>)> = cfg
        .warnings()
        .iter()
        .map(|w| (w.path.clone(), w.suggestion, w.env_var.clone()))
        .collect();
    let e = |p: &str, s: &'static str, v: &str| (p.to_owned(), Some(s), Some(v.to_owned()));
    assert_eq!(
        got,
        vec![
            e(
                "AzureAd.ClientCredentials[0].CertificatePasword",
                "CertificatePassword",
                "AzureAd__ClientCredentials__0__CertificatePasword"
            ),
            e("AzureAd.ClientIdd", "ClientId", "AzureAd__ClientIdd"),
            e(
                "DownstreamApis.Api.AcquireTokenOptions.Tennant",
                "Tenant",
                "DownstreamApis__Api__AcquireTokenOptions__Tennant"
            ),
            e(
                "TokenCache.Redis.KeyPrefx",
                "KeyPrefix",
                "TokenCache__Redis__KeyPrefx"
            ),
        ]
    );
    let text: String = cfg.warnings().iter().map(|w| w.to_string()).collect();
    assert!(
        text.contains("environment variable `AzureAd__ClientIdd`"),
        "{text}"
    );
    assert!(!text.contains("secret-value"), "{text}");
}

#[test]
fn an_error_mentions_the_unknown_keys_that_may_explain_it() {
    let e = AppConfig::parse(
        r#"{"AzureAd":{"ClientCredentials":[{"SorceType":"Path","CertificateDiskPath":"a.pem","Pasword":"pw-secret"}]}}"#,
        Some(Path::new("app.json")),
        None,
        [],
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("AzureAd.ClientCredentials[0].SourceType: missing"),
        "{e}"
    );
    assert!(
        e.contains("note: unknown configuration key `AzureAd.ClientCredentials[0].SorceType` is ignored (did you mean `SourceType`?)"),
        "{e}"
    );
    assert!(e.contains("`AzureAd.ClientCredentials[0].Pasword`"), "{e}");
    assert!(!e.contains("pw-secret") && !e.contains('\n'), "{e}");
}

#[test]
fn suggestions_are_near_misses_only() {
    let keys = &CREDENTIAL_KEYS;
    assert_eq!(
        nearest("certificatepasword", keys, false),
        Some("CertificatePassword")
    );
    assert_eq!(
        nearest("CertificatePassWord", keys, false),
        Some("CertificatePassword")
    );
    assert_eq!(
        nearest("Password", keys, false),
        Some("CertificatePassword")
    );
    assert_eq!(nearest("SourceTyp", keys, false), Some("SourceType"));
    assert_eq!(
        nearest("Pkcs11KeyLable", keys, false),
        Some("Pkcs11KeyLabel")
    );
    assert_eq!(nearest("Colour", keys, false), None);
    assert_eq!(nearest("", keys, false), None);
    assert_eq!(nearest("€€", keys, false), None);
    assert_eq!(key_distance("kitten", "SITTING"), 3);
    assert_eq!(key_distance("", "abc"), 3);
    assert_eq!(key_distance("Straße", "strasse"), 2);
    assert_eq!(known_keys("TokenCache.Redis").map(|k| k.len()), Some(8));
    assert!(
        known_keys("AzureAd.ClientCredentials[]").is_some_and(|k| k.contains(&"Pkcs11PinFile"))
    );
    assert_eq!(known_keys("Nope"), None);
}
