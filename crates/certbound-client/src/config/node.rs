//! The configuration as an order-keeping JSON tree ([`Node`]) and a typed reader over it
//! that names the key path of every error.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::error::ConfigError;
use crate::secret::Secret;

/// A JSON value that keeps object key order (for "the first downstream API").
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Node {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Node>),
    Object(Vec<(String, Node)>),
}

impl<'de> serde::Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Node;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_none<E>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
                Ok(Node::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
                Ok(Node::Number(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
                Ok(Node::Number(v.into()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
                serde_json::Number::from_f64(v)
                    .map(Node::Number)
                    .ok_or_else(|| E::custom("not a finite number"))
            }
            fn visit_str<E>(self, v: &str) -> Result<Node, E> {
                Ok(Node::String(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<Node, E> {
                Ok(Node::String(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Node, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = a.next_element()? {
                    v.push(x);
                }
                Ok(Node::Array(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Node, A::Error> {
                let mut v: Vec<(String, Node)> = Vec::new();
                while let Some((k, x)) = a.next_entry::<String, Node>()? {
                    // Later duplicates (case-insensitively) win, like configuration providers do.
                    v.retain(|(o, _)| !o.eq_ignore_ascii_case(&k));
                    v.push((k, x));
                }
                Ok(Node::Object(v))
            }
        }
        d.deserialize_any(V)
    }
}

impl Node {
    pub(crate) fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Object(m) => m
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Node::Null => "null",
            Node::Bool(_) => "a boolean",
            Node::Number(_) => "a number",
            Node::String(_) => "a string",
            Node::Array(_) => "an array",
            Node::Object(_) => "an object",
        }
    }
    /// Sets `path` (segments, case-insensitive; numeric segments index arrays) to a string.
    pub(crate) fn set_path(&mut self, path: &[String], value: String) {
        let Some((first, rest)) = path.split_first() else {
            *self = Node::String(value);
            return;
        };
        if let (Node::Array(items), Ok(i)) = (&mut *self, first.parse::<usize>()) {
            while items.len() <= i {
                items.push(Node::Object(Vec::new()));
            }
            items[i].set_path(rest, value);
            return;
        }
        if !matches!(self, Node::Object(_)) {
            *self = if first.parse::<usize>().is_ok() {
                Node::Array(Vec::new())
            } else {
                Node::Object(Vec::new())
            };
            return self.set_path(path, value);
        }
        if let Node::Object(m) = self {
            if let Some((_, v)) = m.iter_mut().find(|(k, _)| k.eq_ignore_ascii_case(first)) {
                v.set_path(rest, value);
            } else {
                let mut n = Node::Null;
                n.set_path(rest, value);
                m.push((first.clone(), n));
            }
        }
    }
}

/// Reads typed values at key paths, producing errors that name the file and key.
pub(crate) struct Reader<'a> {
    pub(crate) file: Option<&'a Path>,
}

impl Reader<'_> {
    pub(crate) fn err(&self, key: &str, msg: impl Into<String>) -> ConfigError {
        ConfigError::new(self.file, key, msg)
    }
    pub(crate) fn string(
        &self,
        n: Option<&Node>,
        key: &str,
    ) -> Result<Option<String>, ConfigError> {
        match n {
            None | Some(Node::Null) => Ok(None),
            Some(Node::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Node::String(s)) => Ok(Some(s.trim().to_owned())),
            Some(Node::Number(x)) => Ok(Some(x.to_string())),
            Some(Node::Bool(b)) => Ok(Some(b.to_string())),
            Some(o) => Err(self.err(key, format!("expected a string, found {}", o.kind()))),
        }
    }
    /// A string whose value must not be echoed in errors.
    pub(crate) fn secret(
        &self,
        n: Option<&Node>,
        key: &str,
    ) -> Result<Option<Secret>, ConfigError> {
        match n {
            None | Some(Node::Null) => Ok(None),
            Some(Node::String(s)) if s.is_empty() => Ok(None),
            Some(Node::String(s)) => Ok(Some(Secret::new(s.clone()))),
            Some(o) => Err(self.err(key, format!("expected a string, found {}", o.kind()))),
        }
    }
    pub(crate) fn boolean(&self, n: Option<&Node>, key: &str) -> Result<Option<bool>, ConfigError> {
        match n {
            None | Some(Node::Null) => Ok(None),
            Some(Node::Bool(b)) => Ok(Some(*b)),
            Some(Node::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
                "" => Ok(None),
                "true" | "1" | "yes" => Ok(Some(true)),
                "false" | "0" | "no" => Ok(Some(false)),
                _ => Err(self.err(
                    key,
                    format!(
                        "expected true or false, found `{}`",
                        crate::error::shorten(s, 40)
                    ),
                )),
            },
            Some(o) => Err(self.err(key, format!("expected true or false, found {}", o.kind()))),
        }
    }
    pub(crate) fn uint(&self, n: Option<&Node>, key: &str) -> Result<Option<u64>, ConfigError> {
        match n {
            None | Some(Node::Null) => Ok(None),
            Some(Node::Number(x)) => x
                .as_u64()
                .map(Some)
                .ok_or_else(|| self.err(key, "expected a non-negative integer")),
            Some(Node::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Node::String(s)) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| self.err(key, "expected a non-negative integer")),
            Some(o) => Err(self.err(
                key,
                format!("expected a non-negative integer, found {}", o.kind()),
            )),
        }
    }
    pub(crate) fn strings(&self, n: Option<&Node>, key: &str) -> Result<Vec<String>, ConfigError> {
        match n {
            None | Some(Node::Null) => Ok(Vec::new()),
            // Env overrides and some hand-written files give a space-separated string.
            Some(Node::String(s)) => Ok(s.split_whitespace().map(str::to_owned).collect()),
            Some(Node::Array(items)) => items
                .iter()
                .enumerate()
                .filter_map(|(i, x)| self.string(Some(x), &format!("{key}[{i}]")).transpose())
                .collect(),
            Some(Node::Object(m)) => {
                // `Scopes__0`-style env overrides on a missing array produce an object.
                m.iter()
                    .map(|(k, x)| {
                        self.string(Some(x), &format!("{key}.{k}"))
                            .map(|s| s.unwrap_or_default())
                    })
                    .collect()
            }
            Some(o) => Err(self.err(
                key,
                format!("expected an array of strings, found {}", o.kind()),
            )),
        }
    }
    pub(crate) fn string_map(
        &self,
        n: Option<&Node>,
        key: &str,
    ) -> Result<Vec<(String, String)>, ConfigError> {
        match n {
            None | Some(Node::Null) => Ok(Vec::new()),
            Some(Node::Object(m)) => m
                .iter()
                .map(|(k, v)| {
                    Ok((
                        k.clone(),
                        self.string(Some(v), &format!("{key}.{k}"))?
                            .unwrap_or_default(),
                    ))
                })
                .collect(),
            Some(o) => Err(self.err(
                key,
                format!("expected an object of strings, found {}", o.kind()),
            )),
        }
    }
    pub(crate) fn object<'n>(
        &self,
        n: Option<&'n Node>,
        key: &str,
    ) -> Result<Option<&'n Node>, ConfigError> {
        match n {
            None | Some(Node::Null) => Ok(None),
            Some(o @ Node::Object(_)) => Ok(Some(o)),
            Some(o) => Err(self.err(key, format!("expected an object, found {}", o.kind()))),
        }
    }
    pub(crate) fn path(
        &self,
        n: Option<&Node>,
        key: &str,
        base: Option<&Path>,
    ) -> Result<Option<PathBuf>, ConfigError> {
        Ok(self.string(n, key)?.map(|s| {
            let p = PathBuf::from(s);
            match base {
                Some(b) if p.is_relative() => b.join(p),
                _ => p,
            }
        }))
    }
}
