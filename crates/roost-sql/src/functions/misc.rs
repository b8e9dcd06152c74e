//! `cast`, base64 `encode`/`decode`, digests, and `transform`.
//!
//! For: the functions that change a value's type or representation.
//! Never: fail a rule for a bad argument: every mismatch is Undefined (or
//! Null, where AWS documents it: an undecodable `decode`).

use base64::Engine as _;
use sha2::Digest as _;

use super::HashKind;
use crate::ast::CastType;
use crate::decimal::{Dec, Rounding};
use crate::value::{parse_decimal_string, write_json, Value};

/// Largest `transform` result, as JSON text (AWS's limit).
const MAX_TRANSFORM_BYTES: usize = 128 * 1024;

/// `cast(value AS type)`, AWS's explicit conversion table. Null casts to
/// Undefined (unlike the implicit conversions, which keep it).
pub(crate) fn cast<'a>(v: Value<'a>, ty: CastType, v2: bool) -> Value<'a> {
    match ty {
        CastType::String => match &v {
            Value::Null => Value::Undefined,
            other => other.to_text(v2).map_or(Value::Undefined, Value::Str),
        },
        CastType::Int => match &v {
            Value::Int(i) => Value::Int(*i),
            // AWS: "rounded down"; truncation, as Java's RoundingMode.DOWN and
            // as its String → Int rule ("truncates the decimal places").
            Value::Dec(d) => d
                .to_i128_with(Rounding::Down)
                .map_or(Value::Undefined, Value::Int),
            Value::Str(s) => parse_decimal_string(s)
                .and_then(|d| d.to_i128_with(Rounding::Down))
                .map_or(Value::Undefined, Value::Int),
            Value::Bool(b) => Value::Int(i128::from(*b)),
            _ => Value::Undefined,
        },
        CastType::Double | CastType::Decimal => {
            let d = match &v {
                Value::Int(i) => Dec::from_i128(*i),
                Value::Dec(d) => Some(*d),
                Value::Str(s) => parse_decimal_string(s),
                Value::Bool(b) => Dec::parse(if *b { "1.0" } else { "0.0" }),
                _ => None,
            };
            let Some(d) = d else {
                return Value::Undefined;
            };
            if ty == CastType::Double {
                Value::double(d.to_f64(), v2)
            } else {
                Value::dec(d, v2)
            }
        }
        CastType::Bool => match &v {
            Value::Bool(b) => Value::Bool(*b),
            Value::Int(i) => Value::Bool(*i != 0),
            Value::Dec(d) => Value::Bool(!d.is_zero()),
            Value::Str(_) => v.to_bool().map_or(Value::Undefined, Value::Bool),
            _ => Value::Undefined,
        },
    }
}

fn is_base64(scheme: &Value<'_>) -> bool {
    matches!(scheme, Value::Str(s) if s.eq_ignore_ascii_case("base64"))
}

/// `encode(*, 'base64')`: the payload's bytes as they arrived.
pub(super) fn encode_bytes<'a>(raw: &[u8], scheme: &Value<'a>) -> Value<'a> {
    if !is_base64(scheme) {
        return Value::Undefined;
    }
    Value::string(base64::engine::general_purpose::STANDARD.encode(raw))
}

/// `encode(value, 'base64')`: the value as a String, UTF-8, base64.
pub(super) fn encode<'a>(v: &Value<'a>, scheme: &Value<'a>, v2: bool) -> Value<'a> {
    if let Value::Bytes(raw) = v {
        return encode_bytes(raw, scheme);
    }
    match v.to_text(v2) {
        Some(text) => encode_bytes(text.as_bytes(), scheme),
        None => Value::Undefined,
    }
}

/// Java's basic decoder accepts the padding but does not need it.
const DECODER: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// `decode(value, 'base64')`: a JSON document comes back as its value (so
/// `decode(x, 'base64').temperature` works), other bytes as text (invalid
/// UTF-8 replaced, as Java's `new String(bytes, UTF_8)` does); text that is
/// not base64 is Null, as AWS documents.
pub(super) fn decode<'a>(v: &Value<'a>, scheme: &Value<'a>, v2: bool) -> Value<'a> {
    if !is_base64(scheme) {
        return Value::Undefined;
    }
    let Some(text) = v.to_text(v2) else {
        return Value::Undefined;
    };
    let Ok(bytes) = DECODER.decode(text.as_bytes()) else {
        return Value::Null;
    };
    match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(json) => Value::from_json_owned(json, v2),
        Err(_) => Value::string(String::from_utf8_lossy(&bytes).into_owned()),
    }
}

/// md2 … sha512: lowercase hex of the digest of the value as UTF-8 text.
pub(super) fn hash<'a>(kind: HashKind, v: &Value<'a>, v2: bool) -> Value<'a> {
    let Some(text) = v.to_text(v2) else {
        return Value::Undefined;
    };
    let bytes = text.as_bytes();
    let digest = match kind {
        HashKind::Md2 => hex::encode(md2::Md2::digest(bytes)),
        HashKind::Md5 => hex::encode(md5::Md5::digest(bytes)),
        HashKind::Sha1 => hex::encode(sha1::Sha1::digest(bytes)),
        HashKind::Sha224 => hex::encode(sha2::Sha224::digest(bytes)),
        HashKind::Sha256 => hex::encode(sha2::Sha256::digest(bytes)),
        HashKind::Sha384 => hex::encode(sha2::Sha384::digest(bytes)),
        HashKind::Sha512 => hex::encode(sha2::Sha512::digest(bytes)),
    };
    Value::string(digest)
}

/// `transform('enrichArray', object, array)`: each Object element of `array`
/// with `object`'s members added (UNCONFIRMED which side wins a clash; the
/// enriching object does). Elements that are not Objects are left out.
/// Undefined for other modes, and past AWS's 128 KiB result limit.
pub(super) fn transform<'a>(
    mode: &Value<'a>,
    obj: &Value<'a>,
    arr: &Value<'a>,
    v2: bool,
) -> Value<'a> {
    let is_enrich = matches!(mode, Value::Str(m) if m.as_ref() == "enrichArray");
    let (true, Some(extra), Some(_)) = (is_enrich, obj.members(v2), arr.array_len()) else {
        return Value::Undefined;
    };
    let mut out = Vec::new();
    for element in arr.elements(v2) {
        let Some(mut members) = element.members(v2) else {
            continue;
        };
        members.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
        out.push(Value::object(members));
    }
    let result = Value::array(out);
    let mut text = String::new();
    write_json(&result, &mut text, v2);
    if text.len() > MAX_TRANSFORM_BYTES {
        return Value::Undefined;
    }
    result
}
