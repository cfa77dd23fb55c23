//! JSON parsing that refuses duplicate object members.
//!
//! `serde_json` keeps the *last* of duplicate members silently, so `{"aud":"a","aud":"b"}`
//! would be read differently by two JSON parsers — a classic token-confusion vector
//! (RFC 7515 §4 and RFC 8725 §3.12 call for rejecting such input).
//!
//! Approach: parse with `serde_json`'s own tokenizer, but through custom
//! [`serde::de::Visitor`]s, in one pass. [`scan_object`] builds values only for the few
//! members the validator needs (`alg`, `kid`, `typ`, `crit` / `iss`, `aud`, `exp`, `nbf`,
//! `iat`, `cnf`); every other member is walked without being built, its name kept as a
//! slice borrowed from the input. Each object's names are then sorted and checked for
//! neighbours that are equal — at **every** nesting level, and after unescaping (so
//! `"aud"` and `"\u0061ud"` collide). This costs less than `serde_json::from_slice::<Value>`
//! (no `String`/`BTreeMap` allocation for unneeded members). Nesting depth stays bounded by
//! `serde_json`'s recursion limit (128); token size is bounded before parsing.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Why a JSON text was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StrictJsonError {
    /// A member name appears twice in one object.
    Duplicate,
    /// Not JSON (or trailing data).
    Syntax,
    /// Valid JSON but not an object at the top level.
    NotObject,
}

const DUPLICATE_MARK: &str = "\u{0}certbound-duplicate-member";

/// Parses `bytes` into a full JSON object, refusing duplicate members anywhere inside
/// (the reference behaviour [`scan_object`] is tested against).
pub fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, StrictJsonError> {
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

/// Parses `bytes` as a JSON object in one pass, returning the values of the members named
/// in `names` (in that order) and refusing duplicate members anywhere inside — without
/// building the rest of the object: other members are walked (their nested objects checked
/// for duplicates with borrowed keys) but not allocated. This is the validator's hot path;
/// the full object is materialised later only if the application asks for it.
pub fn scan_object<const N: usize>(
    bytes: &[u8],
    names: &[&str; N],
) -> Result<[Option<Value>; N], StrictJsonError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let picked = match de::Deserializer::deserialize_map(&mut de, TopVisitor { names }) {
        Ok(v) => v,
        Err(e) => {
            return Err(if e.to_string().starts_with(DUPLICATE_MARK) {
                StrictJsonError::Duplicate
            } else if e.is_data() {
                StrictJsonError::NotObject
            } else {
                StrictJsonError::Syntax
            });
        }
    };
    de.end().map_err(|_| StrictJsonError::Syntax)?;
    Ok(picked)
}

struct TopVisitor<'n, const N: usize> {
    names: &'n [&'n str; N],
}

impl<'de, const N: usize> Visitor<'de> for TopVisitor<'_, N> {
    type Value = [Option<Value>; N];
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out: [Option<Value>; N] = std::array::from_fn(|_| None);
        let mut others: Vec<Cow<'de, str>> = Vec::new();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            match self.names.iter().position(|n| *n == key) {
                Some(i) => {
                    if out[i].is_some() {
                        return Err(de::Error::custom(DUPLICATE_MARK));
                    }
                    out[i] = Some(map.next_value_seed(StrictSeed)?);
                }
                None => {
                    others.push(key);
                    map.next_value_seed(SkipSeed)?;
                }
            }
        }
        check_unique(others)?;
        Ok(out)
    }
}

fn check_unique<E: de::Error>(mut keys: Vec<Cow<'_, str>>) -> Result<(), E> {
    if keys.len() > 1 {
        keys.sort_unstable();
        if keys.windows(2).any(|w| w[0] == w[1]) {
            return Err(E::custom(DUPLICATE_MARK));
        }
    }
    Ok(())
}

/// A member name, borrowed from the input unless it contains escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// Walks any JSON value without building it, refusing duplicate members.
struct SkipSeed;

impl<'de> DeserializeSeed<'de> for SkipSeed {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(SkipVisitor)
    }
}

struct SkipVisitor;

impl<'de> Visitor<'de> for SkipVisitor {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(SkipSeed)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut keys: Vec<Cow<'de, str>> = Vec::new();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            keys.push(key);
            map.next_value_seed(SkipSeed)?;
        }
        check_unique(keys)
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
    fn scan_picks_named_members_and_refuses_duplicates_anywhere() {
        let [a, c, z] =
            scan_object(br#"{"a":1,"b":{"x":[{"y":2}]},"c":"s"}"#, &["a", "c", "z"]).unwrap();
        assert_eq!(
            (a, c, z),
            (Some(Value::from(1)), Some(Value::from("s")), None)
        );
        for t in [
            r#"{"a":1,"a":2}"#,
            r#"{"b":1,"b":2}"#,
            r#"{"b":{"x":1,"x":2}}"#,
            r#"{"b":[{"x":1,"x":2}]}"#,
            r#"{"a":{"x":1,"x":2}}"#,
        ] {
            assert_eq!(
                scan_object(t.as_bytes(), &["a"]),
                Err(StrictJsonError::Duplicate),
                "{t}"
            );
        }
        assert_eq!(scan_object(b"[1]", &["a"]), Err(StrictJsonError::NotObject));
        assert_eq!(
            scan_object(b"{\"a\":1} x", &["a"]),
            Err(StrictJsonError::Syntax)
        );
        assert!(scan_object(b"{\"a\":", &["a"]).is_err());
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
