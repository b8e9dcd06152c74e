//! The JSON tree a policy document is read into before its grammar is checked.
//!
//! It exists because `serde_json::Value` keeps only the last of two equal keys, and
//! a statement with two `Effect`s must be refused rather than silently resolved.
//! Objects therefore keep every key, in document order. This module only reads
//! JSON; it must never know anything about the policy grammar.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::error::MalformedPolicy;

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Json {
    Null,
    Bool(bool),
    /// The number as JSON would print it; condition values compare numbers as text
    /// or as exact decimals, never as floats.
    Number(String),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    /// How the value is named in an error message: strings quoted (and cut short),
    /// anything else by its JSON type.
    pub(crate) fn describe(&self) -> String {
        match self {
            Json::Null => "null".to_string(),
            Json::Bool(b) => format!("boolean {b}"),
            Json::Number(n) => format!("number {}", shorten(n)),
            Json::String(s) => quote(s),
            Json::Array(_) => "an array".to_string(),
            Json::Object(_) => "an object".to_string(),
        }
    }
}

/// A string as it appears in error messages: JSON-quoted, at most 64 characters.
pub(crate) fn quote(s: &str) -> String {
    let shown = shorten(s);
    // serde_json escapes quotes and control characters, so the message stays one line.
    serde_json::to_string(&shown).unwrap_or_else(|_| format!("\"{shown}\""))
}

fn shorten(s: &str) -> String {
    const SHOWN: usize = 64;
    if s.chars().count() <= SHOWN {
        s.to_string()
    } else {
        let mut cut: String = s.chars().take(SHOWN).collect();
        cut.push('…');
        cut
    }
}

pub(crate) fn parse(document: &str) -> Result<Json, MalformedPolicy> {
    serde_json::from_str::<Json>(document).map_err(|e| {
        let full = e.to_string();
        // serde_json appends " at line L column C"; we print the position first.
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        let message = full.strip_suffix(&suffix).unwrap_or(&full).to_string();
        MalformedPolicy::InvalidJson {
            line: e.line(),
            column: e.column(),
            message,
        }
    })
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Number(v.to_string()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Json, E> {
        Ok(Json::Number(v.to_string()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Json, E> {
        Ok(Json::Number(v.to_string()))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Json, E> {
        Ok(Json::String(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Json, E> {
        Ok(Json::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut entries = Vec::new();
        while let Some((key, value)) = map.next_entry::<String, Json>()? {
            entries.push((key, value));
        }
        Ok(Json::Object(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_duplicate_keys_in_order() {
        let json = parse(r#"{"a": 1, "b": [true, null], "a": "x"}"#).unwrap();
        let Json::Object(entries) = json else {
            panic!("not an object")
        };
        let keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["a", "b", "a"]);
        assert_eq!(entries[2].1, Json::String("x".into()));
    }

    #[test]
    fn syntax_errors_carry_the_position() {
        let err = parse("{\n  \"a\": 1,\n  }").unwrap_err();
        match err {
            MalformedPolicy::InvalidJson { line, column, .. } => {
                assert_eq!((line, column), (3, 3));
            }
            other => panic!("unexpected {other:?}"),
        }
        let text = parse("{\"a\" 1}").unwrap_err().to_string();
        assert!(
            text.starts_with("invalid JSON at line 1 column 6: "),
            "{text}"
        );
        assert!(!text.ends_with("column 6"), "{text}");
    }

    #[test]
    fn describes_values_briefly() {
        assert_eq!(Json::String("allow".into()).describe(), "\"allow\"");
        assert_eq!(Json::Number("5".into()).describe(), "number 5");
        let long = "x".repeat(200);
        assert_eq!(Json::String(long).describe().chars().count(), 67);
        assert_eq!(quote("a\"b\n"), r#""a\"b\n""#);
    }
}
