//! Math functions: absolute value, rounding, trigonometry and friends.
//!
//! For: AWS's numeric functions. Trigonometric and exponential functions work
//! "with double precision" (AWS converts to `f64`); rounding and truncation
//! work on the exact decimal.
//! Never: return NaN or an infinity. AWS's "imaginary results" and overflows
//! are Undefined.

use crate::decimal::Rounding;
use crate::value::{Num, Value};

pub(super) fn abs<'a>(x: &Value<'a>, v2: bool) -> Value<'a> {
    match x.num() {
        Some(Num::Int(i)) => Value::int_or_dec(i.checked_abs(), || None),
        Some(Num::Dec(d)) => Value::dec(d.abs(), v2),
        None => Value::Undefined,
    }
}

pub(super) fn unary_f64<'a>(x: &Value<'a>, f: fn(f64) -> f64, v2: bool) -> Value<'a> {
    match x.num() {
        Some(n) => Value::double(f(n.to_f64()), v2),
        None => Value::Undefined,
    }
}

pub(super) fn binary_f64<'a>(
    x: &Value<'a>,
    y: &Value<'a>,
    f: fn(f64, f64) -> f64,
    v2: bool,
) -> Value<'a> {
    match (x.num(), y.num()) {
        (Some(a), Some(b)) => Value::double(f(a.to_f64(), b.to_f64()), v2),
        _ => Value::Undefined,
    }
}

/// ceil, floor, round: an Int, whatever came in.
pub(super) fn to_int<'a>(x: &Value<'a>, mode: Rounding) -> Value<'a> {
    match x.num() {
        Some(Num::Int(i)) => Value::Int(i),
        Some(Num::Dec(d)) => d.to_i128_with(mode).map_or(Value::Undefined, Value::Int),
        None => Value::Undefined,
    }
}

pub(super) fn sign<'a>(x: &Value<'a>) -> Value<'a> {
    match x.num() {
        Some(Num::Int(i)) => Value::Int(i.signum()),
        Some(Num::Dec(d)) => Value::Int(d.signum()),
        None => Value::Undefined,
    }
}

/// `trunc(x, n)`: x cut (toward zero) to n decimal places, n clamped to
/// 0..=34, trailing zeros dropped (`trunc(2.00, 5)` is 2).
pub(super) fn trunc<'a>(x: &Value<'a>, places: &Value<'a>, v2: bool) -> Value<'a> {
    let Some(n) = places.to_int_clamped() else {
        return Value::Undefined;
    };
    let n = n.clamp(0, 34) as u32;
    match x.num() {
        Some(Num::Int(i)) => Value::Int(i),
        Some(Num::Dec(d)) => {
            let cut = d.trunc_places(n).strip_trailing_zeros();
            // Stripping can leave a positive exponent (`1E+2`); a whole
            // number reads better, and prints as JSON, as an integer.
            match cut.to_i128_exact() {
                Some(i) if cut.parts().1 >= 0 => Value::Int(i),
                _ => Value::dec(cut, v2),
            }
        }
        None => Value::Undefined,
    }
}

/// bitand/bitor/bitxor: Ints, with Decimals and numeric strings truncated.
pub(super) fn bits<'a>(a: &Value<'a>, b: &Value<'a>, f: fn(i128, i128) -> i128) -> Value<'a> {
    match (a.to_int_down(), b.to_int_down()) {
        (Some(a), Some(b)) => Value::Int(f(a, b)),
        _ => Value::Undefined,
    }
}
