//! The known keys of each section, and warnings for unknown keys (with the nearest known
//! key as a hint).

use std::path::Path;

use super::{ConfigWarning, Node};

/// What the value of a known key is, for the unknown-key check.
#[derive(Clone, Copy)]
pub(crate) enum Shape {
    /// A value (or an object whose keys are the user's, like `ExtraHeaderParameters`).
    Value,
    /// An object with known keys.
    Section(&'static Section),
    /// An array of such objects (or an object keyed by index, from environment overrides).
    Items(&'static Section),
    /// An object of user-named such objects (`DownstreamApis.<name>`).
    Named(&'static Section),
}

/// The known keys of one object.
pub(crate) struct Section {
    /// Its path in [`known_keys`] terms.
    pub(crate) path: &'static str,
    pub(crate) keys: &'static [(&'static str, Shape)],
    /// Other keys are normal here (the file's top level holds `Logging` and the like):
    /// only near misses of known keys are reported.
    pub(crate) open: bool,
}

pub(crate) const fn leaves<const N: usize>(names: [&'static str; N]) -> [(&'static str, Shape); N] {
    let mut out = [("", Shape::Value); N];
    let mut i = 0;
    while i < N {
        out[i].0 = names[i];
        i += 1;
    }
    out
}

pub(crate) const CREDENTIAL_KEYS: [(&str, Shape); 15] = leaves([
    "SourceType",
    "CertificateDiskPath",
    "CertificatePassword",
    "Base64EncodedValue",
    "ClientSecret",
    "SignedAssertionFileDiskPath",
    "ManagedIdentityClientId",
    "TokenExchangeUrl",
    "Skip",
    "SendCertificateOverMtls",
    "Pkcs11ModulePath",
    "Pkcs11TokenLabel",
    "Pkcs11KeyLabel",
    "Pkcs11PinFile",
    "Pkcs11Pin",
]);
pub(crate) static CREDENTIAL: Section = Section {
    path: "AzureAd.ClientCredentials[]",
    keys: &CREDENTIAL_KEYS,
    open: false,
};
pub(crate) static AZURE_AD: Section = Section {
    path: "AzureAd",
    keys: &[
        ("Instance", Shape::Value),
        ("TenantId", Shape::Value),
        ("ClientId", Shape::Value),
        ("Authority", Shape::Value),
        ("AzureRegion", Shape::Value),
        ("SendX5C", Shape::Value),
        ("ClientCredentials", Shape::Items(&CREDENTIAL)),
        ("AllowUnboundFallback", Shape::Value),
        ("MinBindingStrength", Shape::Value),
        ("HttpTimeoutSeconds", Shape::Value),
        ("ClientCapabilities", Shape::Value),
        ("ManagedIdentity", Shape::Value),
    ],
    open: false,
};
pub(crate) const ACQUIRE_TOKEN_OPTIONS_KEYS: [(&str, Shape); 2] =
    leaves(["Tenant", "ForceRefresh"]);
pub(crate) static ACQUIRE_TOKEN_OPTIONS: Section = Section {
    path: "DownstreamApis.*.AcquireTokenOptions",
    keys: &ACQUIRE_TOKEN_OPTIONS_KEYS,
    open: false,
};
pub(crate) static DOWNSTREAM_API: Section = Section {
    path: "DownstreamApis.*",
    keys: &[
        ("BaseUrl", Shape::Value),
        ("RelativePath", Shape::Value),
        ("HttpMethod", Shape::Value),
        ("ProtocolScheme", Shape::Value),
        ("RequestAppToken", Shape::Value),
        ("Scopes", Shape::Value),
        ("AcceptHeader", Shape::Value),
        ("ExtraHeaderParameters", Shape::Value),
        ("ExtraQueryParameters", Shape::Value),
        (
            "AcquireTokenOptions",
            Shape::Section(&ACQUIRE_TOKEN_OPTIONS),
        ),
        ("AllowUnboundFallback", Shape::Value),
        ("RequiresTlsRenegotiation", Shape::Value),
    ],
    open: false,
};
pub(crate) const REDIS_KEYS: [(&str, Shape); 8] = leaves([
    "ConnectionString",
    "KeyPrefix",
    "EncryptionKey",
    "EncryptionKeys",
    "Timeout",
    "TlsCaCertificatePath",
    "RetryInterval",
    "Cluster",
]);
pub(crate) static REDIS: Section = Section {
    path: "TokenCache.Redis",
    keys: &REDIS_KEYS,
    open: false,
};
pub(crate) static TOKEN_CACHE: Section = Section {
    path: "TokenCache",
    keys: &[
        ("MaxEntries", Shape::Value),
        ("ExpiryMarginSeconds", Shape::Value),
        ("Redis", Shape::Section(&REDIS)),
    ],
    open: false,
};
pub(crate) const SIDECAR_KEYS: [(&str, Shape); 1] = leaves(["AllowOverrides"]);
pub(crate) static SIDECAR: Section = Section {
    path: "Sidecar",
    keys: &SIDECAR_KEYS,
    open: false,
};
pub(crate) static ROOT: Section = Section {
    path: "",
    keys: &[
        ("AzureAd", Shape::Section(&AZURE_AD)),
        ("DownstreamApis", Shape::Named(&DOWNSTREAM_API)),
        ("TokenCache", Shape::Section(&TOKEN_CACHE)),
        ("Sidecar", Shape::Section(&SIDECAR)),
    ],
    open: true,
};
pub(crate) static SECTIONS_BY_PATH: [&Section; 8] = [
    &ROOT,
    &AZURE_AD,
    &CREDENTIAL,
    &DOWNSTREAM_API,
    &ACQUIRE_TOKEN_OPTIONS,
    &TOKEN_CACHE,
    &REDIS,
    &SIDECAR,
];

/// The keys certbound knows in one object of the configuration, spelt canonically:
/// `""` (the top level), `AzureAd`, `AzureAd.ClientCredentials[]`, `DownstreamApis.*`,
/// `DownstreamApis.*.AcquireTokenOptions`, `TokenCache`, `TokenCache.Redis`, `Sidecar`.
/// `None` for another path. (Other crates that read a section check their keys against it.)
pub fn known_keys(section: &str) -> Option<Vec<&'static str>> {
    SECTIONS_BY_PATH
        .iter()
        .find(|s| s.path == section)
        .map(|s| s.keys.iter().map(|(k, _)| *k).collect())
}

/// Levenshtein distance of two keys, ASCII case-insensitively (keys are compared so).
pub(crate) fn key_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().map(|c| c.to_ascii_lowercase()).collect();
    let b: Vec<char> = b.chars().map(|c| c.to_ascii_lowercase()).collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let subst = prev[j] + usize::from(ca != cb);
            cur[j + 1] = subst.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The known key nearest to `key`, when it is close enough to be what was meant: a few
/// edits away (more for longer keys) or, outside `strict`, one containing the other
/// (`Password` → `CertificatePassword`).
pub(crate) fn nearest(
    key: &str,
    known: &[(&'static str, Shape)],
    strict: bool,
) -> Option<&'static str> {
    let lower = key.to_ascii_lowercase();
    known
        .iter()
        .filter_map(|(k, _)| {
            let d = key_distance(key, k);
            let close = if strict {
                d <= 2 && d < k.len() / 2
            } else {
                let kl = k.to_ascii_lowercase();
                d <= (k.len() / 3).clamp(1, 3)
                    || (lower.len() >= 4 && (kl.contains(&lower) || lower.contains(&kl)))
            };
            close.then_some((d, *k))
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Reports the unknown keys of `node` (an object described by `section`) under `path`.
pub(crate) fn unknown_keys(
    node: &Node,
    section: &Section,
    path: &str,
    out: &mut Vec<(String, String, Option<&'static str>)>,
) {
    let Node::Object(entries) = node else {
        return;
    };
    for (key, value) in entries {
        let known = section
            .keys
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key));
        let child = |name: &str| {
            if path.is_empty() {
                name.to_owned()
            } else {
                format!("{path}.{name}")
            }
        };
        match known {
            None => {
                let suggestion = nearest(key, section.keys, section.open);
                if !section.open || suggestion.is_some() {
                    out.push((child(key), key.clone(), suggestion));
                }
            }
            Some((_, Shape::Value)) => {}
            Some((name, Shape::Section(s))) => unknown_keys(value, s, &child(name), out),
            Some((name, Shape::Items(s))) => match value {
                Node::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        unknown_keys(item, s, &format!("{}[{i}]", child(name)), out);
                    }
                }
                Node::Object(items) => {
                    for (i, item) in items {
                        unknown_keys(item, s, &format!("{}[{i}]", child(name)), out);
                    }
                }
                _ => {}
            },
            Some((name, Shape::Named(s))) => {
                if let Node::Object(items) = value {
                    for (n, item) in items {
                        unknown_keys(item, s, &format!("{}.{n}", child(name)), out);
                    }
                }
            }
        }
    }
}

/// The unknown keys of a whole document (from `file`, or set by the environment variable
/// `env_var`), as warnings.
pub(crate) fn warnings_for(
    root: &Node,
    file: Option<&Path>,
    env_var: Option<&str>,
) -> Vec<ConfigWarning> {
    let mut found = Vec::new();
    unknown_keys(root, &ROOT, "", &mut found);
    found
        .into_iter()
        .map(|(path, key, suggestion)| ConfigWarning {
            path,
            key,
            suggestion,
            env_var: env_var.map(str::to_owned),
            file: file.map(Path::to_path_buf),
        })
        .collect()
}

/// `; note: …` naming the first few unknown keys, for an error that they may explain.
pub(crate) fn unknown_keys_note(warnings: &[ConfigWarning]) -> String {
    const SHOWN: usize = 3;
    let mut note = String::new();
    for w in warnings.iter().take(SHOWN) {
        let brief = ConfigWarning {
            file: None,
            ..w.clone()
        };
        note.push_str("; note: ");
        note.push_str(&brief.to_string());
    }
    if warnings.len() > SHOWN {
        note.push_str(&format!(
            "; and {} more unknown keys",
            warnings.len() - SHOWN
        ));
    }
    note
}

pub(crate) const SECTIONS: [&str; 3] = ["AzureAd", "DownstreamApis", "TokenCache"];
