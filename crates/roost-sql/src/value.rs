//! The values IoT SQL computes with, and AWS's conversions between them.
//!
//! For: the eight AWS types (Int, Decimal, Boolean, String, Array, Object,
//! Null, Undefined) plus the raw bytes of a non-JSON payload (what `*` means
//! there); the implicit conversions of the AWS "Conversions" tables; `=` and
//! ordering across types; and turning values into output JSON or text.
//! Never: copy the payload to read it. A field of the parsed payload is
//! borrowed (`Arr::Json`, `Obj::Json`, `Cow::Borrowed`) and only converted
//! one level at a time as expressions walk into it; owned values appear only
//! for what SQL builds (literals, nested selects, `decode`).

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt::Write as _;
use std::rc::Rc;

use serde_json::{Map, Number};

use crate::decimal::{Dec, Rounding};

/// An owned object built by SQL. Keys in insertion order, like
/// `serde_json::Map` here: AWS writes a SELECT's items in the order they are
/// listed (`SELECT *, 15 as speed` puts speed last).
pub(crate) type ObjMap<'a> = indexmap::IndexMap<Cow<'a, str>, Value<'a>>;

#[derive(Clone, Debug, Default)]
pub(crate) enum Value<'a> {
    #[default]
    Undefined,
    Null,
    Bool(bool),
    Int(i128),
    Dec(Dec),
    Str(Cow<'a, str>),
    Array(Arr<'a>),
    Object(Obj<'a>),
    /// The raw bytes of a payload that is not a JSON object or array.
    Bytes(&'a [u8]),
}

#[derive(Clone, Debug)]
pub(crate) enum Arr<'a> {
    Json(&'a [serde_json::Value]),
    Owned(Rc<Vec<Value<'a>>>),
}

#[derive(Clone, Debug)]
pub(crate) enum Obj<'a> {
    Json(&'a Map<String, serde_json::Value>),
    Owned(Rc<ObjMap<'a>>),
}

/// A value converted to a number (AWS's "To Decimal"/"To Int" tables).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Num {
    Int(i128),
    Dec(Dec),
}

impl Num {
    pub(crate) fn to_dec(self) -> Option<Dec> {
        match self {
            Num::Int(i) => Dec::from_i128(i),
            Num::Dec(d) => Some(d),
        }
    }

    pub(crate) fn to_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Dec(d) => d.to_f64(),
        }
    }
}

impl<'a> Value<'a> {
    pub(crate) fn str(s: &'a str) -> Value<'a> {
        Value::Str(Cow::Borrowed(s))
    }

    pub(crate) fn string(s: String) -> Value<'a> {
        Value::Str(Cow::Owned(s))
    }

    pub(crate) fn array(items: Vec<Value<'a>>) -> Value<'a> {
        Value::Array(Arr::Owned(Rc::new(items)))
    }

    pub(crate) fn object(map: ObjMap<'a>) -> Value<'a> {
        Value::Object(Obj::Owned(Rc::new(map)))
    }

    /// A Decimal result: in SQL 2016-03-23 a whole number is an Int (AWS's
    /// documented quirk: `10.0` is processed as `10`).
    pub(crate) fn dec(d: Dec, v2: bool) -> Value<'a> {
        if v2 {
            if let Some(i) = d.to_i128_exact() {
                return Value::Int(i);
            }
        }
        Value::Dec(d)
    }

    /// A Decimal result "with double precision"; NaN and infinities (which
    /// AWS reports for imaginary or overflowing results) are Undefined.
    pub(crate) fn double(f: f64, v2: bool) -> Value<'a> {
        match Dec::from_f64(f) {
            Some(d) => Value::dec(d, v2),
            None => Value::Undefined,
        }
    }

    /// An Int result that may have outgrown `i128`: it becomes a Decimal.
    pub(crate) fn int_or_dec(i: Option<i128>, fallback: impl FnOnce() -> Option<Dec>) -> Value<'a> {
        match i {
            Some(i) => Value::Int(i),
            None => fallback().map_or(Value::Undefined, Value::Dec),
        }
    }

    pub(crate) fn is_undefined(&self) -> bool {
        matches!(self, Value::Undefined)
    }

    /// A JSON value of the payload, one level deep.
    pub(crate) fn from_json(json: &'a serde_json::Value, v2: bool) -> Value<'a> {
        match json {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => number_value(n, v2),
            serde_json::Value::String(s) => Value::str(s),
            serde_json::Value::Array(a) => Value::Array(Arr::Json(a)),
            serde_json::Value::Object(o) => Value::Object(Obj::Json(o)),
        }
    }

    /// A JSON document SQL produced itself (`decode`), converted all the way.
    pub(crate) fn from_json_owned(json: serde_json::Value, v2: bool) -> Value<'static> {
        match json {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(b),
            serde_json::Value::Number(n) => number_value(&n, v2),
            serde_json::Value::String(s) => Value::Str(Cow::Owned(s)),
            serde_json::Value::Array(a) => Value::array(
                a.into_iter()
                    .map(|j| Value::from_json_owned(j, v2))
                    .collect(),
            ),
            serde_json::Value::Object(o) => Value::object(
                o.into_iter()
                    .map(|(k, j)| (Cow::Owned(k), Value::from_json_owned(j, v2)))
                    .collect(),
            ),
        }
    }

    // ---- containers -------------------------------------------------------

    pub(crate) fn array_len(&self) -> Option<usize> {
        match self {
            Value::Array(Arr::Json(a)) => Some(a.len()),
            Value::Array(Arr::Owned(a)) => Some(a.len()),
            _ => None,
        }
    }

    /// Element `i` of an Array; Undefined out of range or for other types.
    pub(crate) fn index(&self, i: usize, v2: bool) -> Value<'a> {
        match self {
            Value::Array(Arr::Json(a)) => a
                .get(i)
                .map_or(Value::Undefined, |j| Value::from_json(j, v2)),
            Value::Array(Arr::Owned(a)) => a.get(i).cloned().unwrap_or(Value::Undefined),
            _ => Value::Undefined,
        }
    }

    /// The elements of an Array (empty for anything else).
    pub(crate) fn elements(&self, v2: bool) -> Vec<Value<'a>> {
        match self {
            Value::Array(Arr::Json(a)) => a.iter().map(|j| Value::from_json(j, v2)).collect(),
            Value::Array(Arr::Owned(a)) => a.as_ref().clone(),
            _ => Vec::new(),
        }
    }

    /// Member `key` of an Object; Undefined when absent or not an Object.
    pub(crate) fn member(&self, key: &str, v2: bool) -> Value<'a> {
        match self {
            Value::Object(Obj::Json(o)) => o
                .get(key)
                .map_or(Value::Undefined, |j| Value::from_json(j, v2)),
            Value::Object(Obj::Owned(o)) => o.get(key).cloned().unwrap_or(Value::Undefined),
            _ => Value::Undefined,
        }
    }

    /// The members of an Object as an owned map (for merging).
    pub(crate) fn members(&self, v2: bool) -> Option<ObjMap<'a>> {
        match self {
            Value::Object(Obj::Json(o)) => Some(
                o.iter()
                    .map(|(k, j)| (Cow::Borrowed(k.as_str()), Value::from_json(j, v2)))
                    .collect(),
            ),
            Value::Object(Obj::Owned(o)) => Some(o.as_ref().clone()),
            _ => None,
        }
    }

    // ---- conversions (AWS "Conversions" tables) ---------------------------

    /// Implicit conversion to a number. `Err(())` is Null (which stays Null
    /// where AWS's table says so); `Ok(None)` is Undefined.
    pub(crate) fn to_num(&self) -> Result<Option<Num>, ()> {
        match self {
            Value::Int(i) => Ok(Some(Num::Int(*i))),
            Value::Dec(d) => Ok(Some(Num::Dec(*d))),
            Value::Str(s) => Ok(parse_decimal_string(s).map(Num::Dec)),
            Value::Null => Err(()),
            _ => Ok(None),
        }
    }

    /// A number, or None (Null and everything else not convertible).
    pub(crate) fn num(&self) -> Option<Num> {
        self.to_num().ok().flatten()
    }

    /// Implicit conversion to Int for function arguments: Decimals rounded
    /// to nearest, Strings parsed as Decimal then truncated (AWS's table).
    pub(crate) fn to_int_implicit(&self) -> Option<i128> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Dec(d) => d.to_i128_with(Rounding::HalfUp),
            Value::Str(s) => parse_decimal_string(s)?.to_i128_with(Rounding::Down),
            _ => None,
        }
    }

    /// An Int argument where AWS says non-integers are "rounded down":
    /// truncation toward zero, Java's `RoundingMode.DOWN`.
    pub(crate) fn to_int_down(&self) -> Option<i128> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Dec(d) => d.to_i128_with(Rounding::Down),
            Value::Str(s) => parse_decimal_string(s)?.to_i128_with(Rounding::Down),
            _ => None,
        }
    }

    /// [`Value::to_int_down`] for positions and counts, which are clamped
    /// anyway: a number past `i128` saturates instead of being Undefined
    /// (`substring(s, -2.4E247)` is the whole string).
    pub(crate) fn to_int_clamped(&self) -> Option<i128> {
        let saturate = |d: Dec| {
            d.to_i128_with(Rounding::Down).unwrap_or(if d.signum() < 0 {
                i128::MIN
            } else {
                i128::MAX
            })
        };
        match self {
            Value::Int(i) => Some(*i),
            Value::Dec(d) => Some(saturate(*d)),
            Value::Str(s) => parse_decimal_string(s).map(saturate),
            _ => None,
        }
    }

    /// Implicit conversion to Boolean: Booleans, and the strings "true" and
    /// "false" in any case.
    pub(crate) fn to_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            Value::Str(s) if s.eq_ignore_ascii_case("true") => Some(true),
            Value::Str(s) if s.eq_ignore_ascii_case("false") => Some(false),
            _ => None,
        }
    }

    /// Implicit conversion to String. Arrays and Objects become compact
    /// JSON; Null, Undefined and raw bytes have no string form.
    pub(crate) fn to_text(&self, v2: bool) -> Option<Cow<'a, str>> {
        match self {
            Value::Str(s) => Some(s.clone()),
            Value::Int(i) => Some(Cow::Owned(i.to_string())),
            Value::Dec(d) => Some(Cow::Owned(match whole_in_v2(*d, v2) {
                Some(i) => i.to_string(),
                None => d.to_string(),
            })),
            Value::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
            Value::Array(_) | Value::Object(_) => {
                let mut out = String::new();
                write_json(self, &mut out, v2);
                Some(Cow::Owned(out))
            }
            Value::Null | Value::Undefined | Value::Bytes(_) => None,
        }
    }

    // ---- output -------------------------------------------------------------

    /// The value as output JSON; `None` for Undefined (and raw bytes, which
    /// have no JSON form), so object members and array elements holding it
    /// are left out, as AWS serialises them.
    pub(crate) fn to_json(&self, v2: bool) -> Option<serde_json::Value> {
        Some(match self {
            Value::Undefined | Value::Bytes(_) => return None,
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Int(i) => int_json(*i),
            Value::Dec(d) => match whole_in_v2(*d, v2) {
                Some(i) => int_json(i),
                None => dec_json(*d),
            },
            Value::Str(s) => serde_json::Value::String(s.clone().into_owned()),
            Value::Array(Arr::Json(a)) => {
                let mut json = serde_json::Value::Array(a.to_vec());
                if v2 {
                    normalize_v2(&mut json);
                }
                json
            }
            Value::Array(Arr::Owned(a)) => {
                serde_json::Value::Array(a.iter().filter_map(|v| v.to_json(v2)).collect())
            }
            Value::Object(Obj::Json(o)) => {
                let mut json = serde_json::Value::Object((*o).clone());
                if v2 {
                    normalize_v2(&mut json);
                }
                json
            }
            Value::Object(Obj::Owned(o)) => serde_json::Value::Object(
                o.iter()
                    .filter_map(|(k, v)| Some((k.to_string(), v.to_json(v2)?)))
                    .collect(),
            ),
        })
    }
}

/// In 2016-03-23 a whole Decimal leaves as an Int. Results are made Ints
/// when computed ([`Value::dec`]); a whole Decimal literal (`10.0`) stays a
/// Decimal while it is an operand, so its text and JSON forms are where it
/// becomes `10`.
fn whole_in_v2(d: Dec, v2: bool) -> Option<i128> {
    if v2 {
        d.to_i128_exact()
    } else {
        None
    }
}

fn number_value<'a>(n: &Number, v2: bool) -> Value<'a> {
    if let Some(i) = n.as_i64() {
        Value::Int(i128::from(i))
    } else if let Some(u) = n.as_u64() {
        Value::Int(i128::from(u))
    } else {
        let f = n.as_f64().unwrap_or(f64::NAN);
        // serde_json reads integers beyond u64 as floats: still integers.
        if f == f.trunc() && f.abs() >= 1e17 && f.abs() < 1e38 {
            return Value::Int(f as i128);
        }
        Value::double(f, v2)
    }
}

fn int_json(i: i128) -> serde_json::Value {
    if let Ok(i) = i64::try_from(i) {
        Number::from(i).into()
    } else if let Ok(u) = u64::try_from(i) {
        Number::from(u).into()
    } else {
        float_json(i as f64)
    }
}

/// A Decimal with no fractional digits prints as an integer, as Java prints a
/// `BigDecimal` of scale 0 or less; others go out as the nearest double
/// (`serde_json::Number` holds no more).
fn dec_json(d: Dec) -> serde_json::Value {
    if d.parts().1 >= 0 {
        if let Some(i) = d.to_i128_exact() {
            return int_json(i);
        }
    }
    float_json(d.to_f64())
}

fn float_json(f: f64) -> serde_json::Value {
    // Beyond f64's range (AWS Decimals go to 1E999) there is no JSON number
    // serde_json can hold.
    Number::from_f64(f).map_or(serde_json::Value::Null, serde_json::Value::Number)
}

/// SQL 2016-03-23 reads whole-number decimals as Ints: apply that to a copied
/// payload subtree.
pub(crate) fn normalize_v2(json: &mut serde_json::Value) {
    match json {
        serde_json::Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|_| n.is_f64()) {
                if f == f.trunc() && f.abs() < 9.2e18 {
                    *n = Number::from(f as i64);
                }
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(normalize_v2),
        serde_json::Value::Object(o) => o.values_mut().for_each(normalize_v2),
        _ => {}
    }
}

/// AWS's String → Decimal rule: `^-?\d+(\.\d+)?((?i)E-?\d+)?$`, nothing else
/// (no `+`, no spaces, no `.5`).
pub(crate) fn parse_decimal_string(s: &str) -> Option<Dec> {
    let b = s.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i > start
    };
    if !digits(&mut i) {
        return None;
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if !digits(&mut i) {
            return None;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        if !digits(&mut i) {
            return None;
        }
    }
    if i != b.len() {
        return None;
    }
    Dec::parse(s)
}

/// Compact JSON text of a value (Undefined members and elements left out),
/// numbers in AWS's text form.
pub(crate) fn write_json(v: &Value<'_>, out: &mut String, v2: bool) {
    match v {
        Value::Undefined | Value::Bytes(_) | Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Dec(d) => {
            let _ = match whole_in_v2(*d, v2) {
                Some(i) => write!(out, "{i}"),
                None => write!(out, "{d}"),
            };
        }
        Value::Str(s) => write_json_string(s, out),
        Value::Array(_) => {
            out.push('[');
            let mut first = true;
            for e in v.elements(v2) {
                if e.is_undefined() {
                    continue;
                }
                if !first {
                    out.push(',');
                }
                first = false;
                write_json(&e, out, v2);
            }
            out.push(']');
        }
        Value::Object(_) => {
            out.push('{');
            let mut first = true;
            for (k, e) in v.members(v2).unwrap_or_default() {
                if e.is_undefined() {
                    continue;
                }
                if !first {
                    out.push(',');
                }
                first = false;
                write_json_string(&k, out);
                out.push(':');
                write_json(&e, out, v2);
            }
            out.push('}');
        }
    }
}

fn write_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

// ---- comparison -------------------------------------------------------------

/// `a = b` as AWS defines it: numbers by value across Int and Decimal,
/// strings exactly, arrays in order, objects by key set; mismatched types are
/// false; Undefined on either side is Undefined (`None`).
pub(crate) fn sql_eq(a: &Value<'_>, b: &Value<'_>, v2: bool) -> Option<bool> {
    Some(match (a, b) {
        (Value::Undefined, _) | (_, Value::Undefined) => return None,
        (Value::Int(x), Value::Int(y)) => x == y,
        (Value::Int(_) | Value::Dec(_), Value::Int(_) | Value::Dec(_)) => {
            match (a.num().and_then(Num::to_dec), b.num().and_then(Num::to_dec)) {
                (Some(x), Some(y)) => x == y,
                _ => false,
            }
        }
        (Value::Str(x), Value::Str(y)) => x == y,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Null, Value::Null) => true,
        (Value::Bytes(x), Value::Bytes(y)) => x == y,
        (Value::Array(_), Value::Array(_)) => {
            a.array_len() == b.array_len()
                && a.elements(v2)
                    .iter()
                    .zip(b.elements(v2).iter())
                    .all(|(x, y)| sql_eq(x, y, v2) == Some(true))
        }
        (Value::Object(_), Value::Object(_)) => {
            let (Some(x), Some(y)) = (a.members(v2), b.members(v2)) else {
                return Some(false);
            };
            x.len() == y.len()
                && x.iter().all(|(k, xv)| {
                    y.get(k.as_ref())
                        .is_some_and(|yv| sql_eq(xv, yv, v2) == Some(true))
                })
        }
        _ => false,
    })
}

/// `<`, `>` and friends: both sides as Decimals (numeric strings included);
/// anything else, strings that are not numbers included, is Undefined.
pub(crate) fn sql_cmp(a: &Value<'_>, b: &Value<'_>) -> Option<Ordering> {
    match (a.num()?, b.num()?) {
        (Num::Int(x), Num::Int(y)) => Some(x.cmp(&y)),
        (x, y) => Some(x.to_dec()?.cmp_value(y.to_dec()?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_to_decimal_follows_the_aws_regex() {
        for ok in ["0", "-1.2", "5E-12", "5e3", "12.50"] {
            assert!(parse_decimal_string(ok).is_some(), "{ok}");
        }
        for bad in [
            "+1", " 1", "1 ", ".5", "5.", "NaN", "Infinity", "0x10", "1e+3", "", "-", "1e",
        ] {
            assert!(parse_decimal_string(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn equality_across_types() {
        let one = Value::Int(1);
        let one_dec = Value::Dec(Dec::parse("1.0").unwrap());
        assert_eq!(sql_eq(&one, &one_dec, false), Some(true));
        assert_eq!(sql_eq(&Value::str("1"), &one, false), Some(false));
        assert_eq!(sql_eq(&Value::Null, &Value::Null, false), Some(true));
        assert_eq!(sql_eq(&Value::Undefined, &one, false), None);
        assert_eq!(
            sql_cmp(&Value::str("10"), &Value::Int(9)),
            Some(Ordering::Greater)
        );
        assert_eq!(sql_cmp(&Value::str("abc"), &Value::str("abd")), None);
        assert_eq!(sql_cmp(&Value::Bool(true), &Value::Int(0)), None);
    }

    #[test]
    fn text_of_containers_is_compact_json() {
        let json: serde_json::Value = serde_json::json!({"b": [1, "x", null, 2.5], "a": true});
        let v = Value::from_json(&json, false);
        assert_eq!(
            v.to_text(false).unwrap(),
            r#"{"b":[1,"x",null,2.5],"a":true}"#
        );
    }
}
