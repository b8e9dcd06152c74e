//! Arithmetic and unary minus, with AWS's operand rules.
//!
//! For: `+ - * / %` and unary `-`. Int with Int stays Int (integer division
//! truncates, `%` takes the dividend's sign, as in Java); an Int that
//! overflows becomes a Decimal; any Decimal or numeric String makes the
//! operation Decimal; `+` with a String on either side concatenates.
//! Never: divide by zero (Undefined), or build a string past
//! [`MAX_STRING_BYTES`].

use std::borrow::Cow;

use crate::ast::BinOp;
use crate::decimal::Dec;
use crate::error::EvalError;
use crate::functions::MAX_STRING_BYTES;
use crate::value::{Num, Value};

pub(crate) fn arith<'a>(
    op: BinOp,
    a: &Value<'a>,
    b: &Value<'a>,
    v2: bool,
) -> Result<Value<'a>, EvalError> {
    if op == BinOp::Add && (matches!(a, Value::Str(_)) || matches!(b, Value::Str(_))) {
        return concat(a, b, v2);
    }
    let (Some(x), Some(y)) = (a.num(), b.num()) else {
        return Ok(Value::Undefined);
    };
    if let (Num::Int(x), Num::Int(y)) = (x, y) {
        let exact = match op {
            BinOp::Add => x.checked_add(y),
            BinOp::Sub => x.checked_sub(y),
            BinOp::Mul => x.checked_mul(y),
            BinOp::Div if y == 0 => return Ok(Value::Undefined),
            BinOp::Div => x.checked_div(y),
            BinOp::Rem if y == 0 => return Ok(Value::Undefined),
            BinOp::Rem => x.checked_rem(y),
            _ => return Ok(Value::Undefined),
        };
        if let Some(i) = exact {
            return Ok(Value::Int(i));
        }
        // Past i128: AWS's Ints stop at 34 digits anyway; carry on as Decimal.
        if op == BinOp::Div {
            // Only i128::MIN / -1 overflows; its value is exact as Decimal.
            return Ok(dec_op(op, x, y, v2));
        }
    }
    let (Some(x), Some(y)) = (x.to_dec(), y.to_dec()) else {
        return Ok(Value::Undefined);
    };
    Ok(decimal(op, x, y, v2))
}

fn dec_op<'a>(op: BinOp, x: i128, y: i128, v2: bool) -> Value<'a> {
    match (Dec::from_i128(x), Dec::from_i128(y)) {
        (Some(x), Some(y)) => decimal(op, x, y, v2),
        _ => Value::Undefined,
    }
}

fn decimal<'a>(op: BinOp, x: Dec, y: Dec, v2: bool) -> Value<'a> {
    let result = match op {
        BinOp::Add => x.add(y),
        BinOp::Sub => x.sub(y),
        BinOp::Mul => x.mul(y),
        BinOp::Div => x.div(y),
        BinOp::Rem => x.rem(y),
        _ => None,
    };
    result.map_or(Value::Undefined, |d| Value::dec(d, v2))
}

fn concat<'a>(a: &Value<'a>, b: &Value<'a>, v2: bool) -> Result<Value<'a>, EvalError> {
    let (Some(x), Some(y)) = (a.to_text(v2), b.to_text(v2)) else {
        return Ok(Value::Undefined);
    };
    if x.len() + y.len() > MAX_STRING_BYTES {
        return Err(EvalError::TooLarge {
            what: "string concatenation",
            limit: MAX_STRING_BYTES,
        });
    }
    if y.is_empty() {
        return Ok(Value::Str(x));
    }
    let mut s = x.into_owned();
    s.push_str(&y);
    Ok(Value::Str(Cow::Owned(s)))
}

pub(crate) fn neg<'a>(a: &Value<'a>, v2: bool) -> Value<'a> {
    match a.num() {
        Some(Num::Int(i)) => match i.checked_neg() {
            Some(n) => Value::Int(n),
            None => Dec::from_i128(i).map_or(Value::Undefined, |d| Value::dec(d.neg(), v2)),
        },
        // A Decimal stays one (`-(10.0) / 4` is -2.5, as `-10.0 / 4` is):
        // in 2016-03-23 the only whole Decimals are literals, which leave as
        // Ints anyway (see `Value::to_json`).
        Some(Num::Dec(d)) => Value::Dec(d.neg()),
        None => Value::Undefined,
    }
}
