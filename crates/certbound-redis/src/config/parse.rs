//! Parsing what users write: StackExchange.Redis connection strings, durations, and
//! environment overrides of the configuration document.

use std::time::Duration;

use serde_json::Value;

use super::{path, redact_url};
use crate::error::RedisConfigError;

/// URLs (one per node) from a connection string; validated by the redis crate.
pub(super) fn parse_connection_string(cs: &str) -> Result<Vec<String>, RedisConfigError> {
    let p = path("ConnectionString");
    let cs = cs.trim();
    if cs.is_empty() {
        return Err(RedisConfigError::missing(
            p,
            "set it to the Redis URL, e.g. redis://127.0.0.1:6379",
        ));
    }
    let parts: Vec<&str> = cs
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let nodes: Vec<String> = if parts.iter().all(|s| s.contains("://")) {
        parts.iter().map(|s| (*s).to_owned()).collect()
    } else {
        stackexchange_to_urls(&parts)?
    };
    for (i, n) in nodes.iter().enumerate() {
        if let Err(e) = redis::Client::open(n.as_str()) {
            return Err(RedisConfigError::invalid(
                p,
                format!(
                    "node {} ({}) is not a usable Redis URL ({}); expected redis://host:port or rediss://host:port",
                    i + 1,
                    redact_url(n),
                    e.kind_name()
                ),
            ));
        }
    }
    Ok(nodes)
}

trait KindName {
    fn kind_name(&self) -> String;
}
impl KindName for redis::RedisError {
    fn kind_name(&self) -> String {
        // The kind only: the message may echo the URL (and its password).
        format!("{:?}", self.kind())
    }
}

/// `host:port,host2:port2,password=…,user=…,ssl=true,defaultDatabase=1` → URLs.
pub(super) fn stackexchange_to_urls(parts: &[&str]) -> Result<Vec<String>, RedisConfigError> {
    let p = path("ConnectionString");
    let mut hosts = Vec::new();
    let (mut user, mut password, mut tls, mut db) = (None::<String>, None::<String>, false, None);
    for part in parts {
        if let Some((k, v)) = part.split_once('=') {
            match k.trim().to_ascii_lowercase().as_str() {
                "password" => password = Some(v.trim().to_owned()),
                "user" => user = Some(v.trim().to_owned()),
                "ssl" => tls = v.trim().eq_ignore_ascii_case("true"),
                "defaultdatabase" => {
                    db = Some(v.trim().parse::<u32>().map_err(|_| {
                        RedisConfigError::invalid(
                            p.clone(),
                            "has a defaultDatabase that is not a number",
                        )
                    })?)
                }
                // Options of other clients with no meaning here (abortConnect, connectTimeout…).
                _ => {}
            }
        } else {
            let h = part.trim();
            let h = if h.contains(':') {
                h.to_owned()
            } else {
                format!("{h}:6379")
            };
            hosts.push(h);
        }
    }
    if hosts.is_empty() {
        return Err(RedisConfigError::invalid(
            p,
            "names no Redis host; expected redis://host:port or host:port[,password=…]",
        ));
    }
    let scheme = if tls { "rediss" } else { "redis" };
    let auth = match (user, password) {
        (u, Some(pw)) => format!(
            "{}:{}@",
            percent_encode(u.as_deref().unwrap_or("")),
            percent_encode(&pw)
        ),
        (Some(u), None) => format!("{}@", percent_encode(&u)),
        (None, None) => String::new(),
    };
    let path_db = db.map(|d| format!("/{d}")).unwrap_or_default();
    Ok(hosts
        .into_iter()
        .map(|h| format!("{scheme}://{auth}{h}{path_db}"))
        .collect())
}

pub(super) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A duration from a number (milliseconds), `"250ms"`, `"2s"`, `"1.5s"`, `"250"` or a
/// .NET TimeSpan `"hh:mm:ss[.fffffff]"`.
pub(super) fn parse_duration(v: &Value, at: &str) -> Result<Duration, RedisConfigError> {
    let bad = || {
        RedisConfigError::invalid(
            at,
            "must be milliseconds (250), \"250ms\", \"1.5s\" or a TimeSpan \"00:00:00.250\"",
        )
    };
    match v {
        Value::Number(n) => n
            .as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0)
            .map(|ms| Duration::from_secs_f64(ms / 1000.0))
            .ok_or_else(bad),
        Value::String(s) => {
            let s = s.trim();
            let secs = |x: &str| {
                x.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite() && *f >= 0.0)
            };
            if let Some(ms) = s.strip_suffix("ms") {
                secs(ms)
                    .map(|m| Duration::from_secs_f64(m / 1000.0))
                    .ok_or_else(bad)
            } else if let Some(x) = s.strip_suffix('s') {
                secs(x).map(Duration::from_secs_f64).ok_or_else(bad)
            } else if s.contains(':') {
                let fields: Vec<&str> = s.split(':').collect();
                let [h, m, sec] = fields.as_slice() else {
                    return Err(bad());
                };
                let h: u64 = h.parse().map_err(|_| bad())?;
                let m: u64 = m.parse().map_err(|_| bad())?;
                let sec = secs(sec).ok_or_else(bad)?;
                Ok(Duration::from_secs(h * 3600 + m * 60) + Duration::from_secs_f64(sec))
            } else {
                secs(s)
                    .map(|m| Duration::from_secs_f64(m / 1000.0))
                    .ok_or_else(bad)
            }
        }
        _ => Err(bad()),
    }
}

pub(super) fn get_ci<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

/// Applies `TokenCache__…` environment variables to the document (case-insensitive names;
/// numeric segments index arrays). Other variables are ignored.
pub(crate) fn apply_env_overrides(
    document: &mut Value,
    vars: impl IntoIterator<Item = (String, String)>,
) {
    for (name, value) in vars {
        let segments: Vec<&str> = name.split("__").collect();
        if segments.len() < 2 || !segments[0].eq_ignore_ascii_case("TokenCache") {
            continue;
        }
        set_path(document, &segments, value);
    }
}

pub(super) fn set_path(node: &mut Value, segments: &[&str], value: String) {
    let Some((first, rest)) = segments.split_first() else {
        *node = Value::String(value);
        return;
    };
    if let Ok(index) = first.parse::<usize>() {
        if !node.is_array() {
            *node = Value::Array(Vec::new());
        }
        if let Value::Array(items) = node {
            while items.len() <= index {
                items.push(Value::Null);
            }
            set_path(&mut items[index], rest, value);
        }
        return;
    }
    if !node.is_object() {
        *node = Value::Object(serde_json::Map::new());
    }
    if let Value::Object(map) = node {
        let existing = map.keys().find(|k| k.eq_ignore_ascii_case(first)).cloned();
        let key = existing.unwrap_or_else(|| (*first).to_owned());
        let child = map.entry(key).or_insert(Value::Null);
        set_path(child, rest, value);
    }
}
