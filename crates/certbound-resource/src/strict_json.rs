//! JSON parsing that refuses duplicate object members.
//!
//! `serde_json` keeps the *last* of duplicate members silently, so `{"aud":"a","aud":"b"}`
//! would be read differently by two JSON parsers — a classic token-confusion vector
//! (RFC 7515 §5.2 and RFC 8725 §3.12 call for rejecting such input). This module parses with
//! `serde_json`'s own tokenizer but through a custom [`serde::de::Visitor`] that builds the
//! [`serde_json::Value`] itself and fails on the first repeated key at **any** nesting level.
//! It is one pass over the input with no extra allocation beyond the value being built
//! (the visitor checks `Map::contains_key` before each insert), so it costs about the same as
//! `serde_json::from_slice::<Value>`. Nesting depth stays bounded by `serde_json`'s
//! recursion limit (128).

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Why a JSON text was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StrictJsonError {
    /// A member name appears twice in one object.
    Duplicate,
    /// Not JSON (or trailing data).
    Syntax,
    /// Valid JSON but not an object at the top level.
    NotObject,
}

const DUPLICATE_MARK: &str = "\u{0}certbound-duplicate-member";

/// Parses `bytes` as a JSON object, refusing duplicate members anywhere inside.
pub(crate) fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, StrictJsonError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = match StrictSeed.deserialize(&mut de) {
        Ok(v) => v,
        Err(e) => {
            return Err(if e.to_string().starts_with(DUPLICATE_MARK) {
                StrictJsonError::Duplicate
            } else {
                StrictJsonError::Syntax
            });
        }
    };
    de.end().map_err(|_| StrictJsonError::Syntax)?;
    match value {
        Value::Object(m) => Ok(m),
        _ => Err(StrictJsonError::NotObject),
    }
}

struct StrictSeed;

impl<'de> DeserializeSeed<'de> for StrictSeed {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(v) = seq.next_element_seed(StrictSeed)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(de::Error::custom(DUPLICATE_MARK));
            }
            let v = map.next_value_seed(StrictSeed)?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_objects() {
        let m = parse_object(br#"{"a":1,"b":{"c":[1,{"d":null}]},"e":"x"}"#).unwrap();
        assert_eq!(m["b"]["c"][1]["d"], Value::Null);
    }

    #[test]
    fn refuses_duplicates_at_any_depth() {
        for t in [
            r#"{"a":1,"a":2}"#,
            r#"{"a":{"b":1,"b":1}}"#,
            r#"{"a":[{"x":1,"x":2}]}"#,
            // The same name written with an escape is still the same name.
            r#"{"aud":"a","\u0061ud":"b"}"#,
        ] {
            assert_eq!(
                parse_object(t.as_bytes()),
                Err(StrictJsonError::Duplicate),
                "{t}"
            );
        }
    }

    #[test]
    fn refuses_non_objects_and_garbage() {
        assert_eq!(parse_object(b"[1]"), Err(StrictJsonError::NotObject));
        assert_eq!(parse_object(b"{} x"), Err(StrictJsonError::Syntax));
        assert_eq!(parse_object(b"{"), Err(StrictJsonError::Syntax));
        assert_eq!(parse_object(b""), Err(StrictJsonError::Syntax));
        assert_eq!(parse_object(b"\xff"), Err(StrictJsonError::Syntax));
    }

    #[test]
    fn a_string_value_equal_to_the_marker_is_not_a_duplicate() {
        let text = format!(
            r#"{{"a":"{}"}}"#,
            DUPLICATE_MARK.replace('\u{0}', "\\u0000")
        );
        assert!(parse_object(text.as_bytes()).is_ok());
    }
}
