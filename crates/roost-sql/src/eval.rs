//! Evaluating a parsed statement on one message.
//!
//! For: the order AWS evaluates in — SET variables, then WHERE against the
//! incoming payload, then SELECT — and building the output: an object from
//! the SELECT items (`*` merges the payload's members, dotted aliases build
//! nested objects, Undefined members are left out), or the bare value of
//! `SELECT VALUE`, or the payload's own bytes for `SELECT *` on a payload
//! that is not a JSON object or array.
//! Never: parse SQL, or copy the payload more than the output needs. The
//! payload is parsed once (and not at all when nothing reads it); `SELECT *`
//! moves the parsed document into the output instead of cloning it.

use std::borrow::Cow;

use crate::ast::{BinOp, Expr, Item, Select};
use crate::error::EvalError;
use crate::functions;
use crate::ops;
use crate::value::{normalize_v2, sql_cmp, sql_eq, ObjMap, Value};
use crate::{Context, Output, SqlVersion, Statement};

/// What one evaluation reads besides the current row.
pub(crate) struct Env<'a> {
    pub version: SqlVersion,
    pub v2: bool,
    pub ctx: &'a Context<'a>,
    /// The payload exactly as it arrived.
    pub raw: &'a [u8],
    /// SET variables by slot, filled in order.
    pub vars: Vec<Value<'a>>,
}

/// What field names and `*` refer to: the payload at the top level, an
/// element of the FROM array inside a nested SELECT.
#[derive(Clone)]
pub(crate) struct Scope<'a> {
    /// An Object whose members are the fields, or Undefined.
    pub fields: Value<'a>,
    pub star: Value<'a>,
    /// Whether this is the message itself (where `*` has raw bytes).
    pub top: bool,
}

/// The payload as SQL sees it.
pub(crate) enum Payload {
    /// A JSON object or array.
    Json(serde_json::Value),
    /// Anything else, including an empty payload and JSON scalars: AWS reads
    /// fields only from objects and treats the rest as bytes.
    Bytes,
}

impl Payload {
    pub(crate) fn parse(raw: &[u8]) -> Payload {
        // Only a document that starts like an object or array can be one;
        // skipping the parser for the rest keeps binary payloads cheap.
        let first = raw.iter().find(|b| !b.is_ascii_whitespace());
        if !matches!(first, Some(b'{' | b'[')) {
            return Payload::Bytes;
        }
        match serde_json::from_slice::<serde_json::Value>(raw) {
            Ok(json @ (serde_json::Value::Object(_) | serde_json::Value::Array(_))) => {
                Payload::Json(json)
            }
            _ => Payload::Bytes,
        }
    }

    pub(crate) fn scope<'a>(&'a self, raw: &'a [u8], v2: bool) -> Scope<'a> {
        match self {
            Payload::Json(json) => {
                let v = Value::from_json(json, v2);
                let fields = if json.is_object() {
                    v.clone()
                } else {
                    Value::Undefined
                };
                Scope {
                    fields,
                    star: v,
                    top: true,
                }
            }
            Payload::Bytes => Scope {
                fields: Value::Undefined,
                star: Value::Bytes(raw),
                top: true,
            },
        }
    }
}

/// WHERE's verdict: only `true` (or the string "true") lets a message through.
pub(crate) fn is_true(v: &Value<'_>) -> bool {
    v.to_bool() == Some(true)
}

/// Evaluates the SET clause into `env.vars`.
pub(crate) fn eval_sets<'a>(
    sets: &'a [crate::ast::SetVar],
    env: &mut Env<'a>,
    scope: &Scope<'a>,
) -> Result<(), EvalError> {
    for set in sets {
        let v = eval(&set.expr, env, scope)?;
        env.vars.push(v);
    }
    Ok(())
}

/// One piece of the top-level output object, computed while the payload is
/// borrowed and assembled after, so that the payload can be moved in.
enum Piece<'s> {
    Member(&'s [Box<str>], serde_json::Value),
    /// The payload's members (the first `*`, moved in at assembly).
    Star,
    /// Members to merge (a second `*`, or `*` inside the alias of something).
    Merge(serde_json::Map<String, serde_json::Value>),
}

pub(crate) fn evaluate(
    stmt: &Statement,
    raw: &[u8],
    ctx: &Context<'_>,
) -> Result<Option<Output>, EvalError> {
    let v2 = stmt.version == SqlVersion::V2016_03_23;
    let payload = if stmt.uses_payload {
        Payload::parse(raw)
    } else {
        Payload::Bytes
    };
    let select = &stmt.select;
    let star_only = select.items.len() == 1 && matches!(select.items[0], Item::Star);

    let pieces = {
        let scope = payload.scope(raw, v2);
        let mut env = Env {
            version: stmt.version,
            v2,
            ctx,
            raw,
            vars: Vec::new(),
        };
        eval_sets(&stmt.sets, &mut env, &scope)?;
        if let Some(filter) = &select.filter {
            if !is_true(&eval(filter, &env, &scope)?) {
                return Ok(None);
            }
        }
        if star_only {
            Vec::new()
        } else if select.value {
            let Item::Expr { expr, .. } = &select.items[0] else {
                unreachable!("VALUE * is star_only");
            };
            return value_output(eval(expr, &env, &scope)?, v2).map(Some);
        } else {
            let mut pieces = Vec::with_capacity(select.items.len());
            let mut star_taken = false;
            for item in &select.items {
                match item {
                    Item::Star => {
                        if !matches!(payload, Payload::Json(serde_json::Value::Object(_))) {
                            // A binary payload or a top-level array has no
                            // members to merge.
                        } else if !star_taken {
                            star_taken = true;
                            pieces.push(Piece::Star);
                        } else if let Some(serde_json::Value::Object(map)) = scope.star.to_json(v2)
                        {
                            pieces.push(Piece::Merge(map));
                        }
                    }
                    Item::Expr { expr, path, .. } => {
                        if let Some(json) = eval(expr, &env, &scope)?.to_json(v2) {
                            pieces.push(Piece::Member(path, json));
                        }
                    }
                }
            }
            pieces
        }
    };

    if star_only {
        return Ok(Some(match payload {
            Payload::Json(mut json) => {
                if v2 {
                    normalize_v2(&mut json);
                }
                Output::Json(json)
            }
            Payload::Bytes => Output::Bytes(raw.to_vec()),
        }));
    }

    let mut star = match payload {
        Payload::Json(serde_json::Value::Object(map)) => Some(map),
        _ => None,
    };
    let mut out = serde_json::Map::new();
    for piece in pieces {
        match piece {
            Piece::Member(path, json) => insert_json(&mut out, path, json),
            Piece::Star => {
                let Some(mut map) = star.take() else { continue };
                if v2 {
                    map.values_mut().for_each(normalize_v2);
                }
                if out.is_empty() {
                    out = map;
                } else {
                    out.extend(map);
                }
            }
            Piece::Merge(map) => out.extend(map),
        }
    }
    Ok(Some(Output::Json(serde_json::Value::Object(out))))
}

/// The output of `SELECT VALUE`.
fn value_output(v: Value<'_>, v2: bool) -> Result<Output, EvalError> {
    match v {
        Value::Undefined => Ok(Output::Bytes(Vec::new())),
        Value::Bytes(raw) => Ok(Output::Bytes(raw.to_vec())),
        Value::Array(_) if !v2 => Err(EvalError::ArrayOutputNeedsVersion2016),
        other => Ok(other
            .to_json(v2)
            .map_or(Output::Bytes(Vec::new()), Output::Json)),
    }
}

/// Sets `path` in `out`, creating (or replacing non-object) intermediate
/// members: `AS a.b` gives `{"a": {"b": …}}`.
fn insert_json(
    out: &mut serde_json::Map<String, serde_json::Value>,
    path: &[Box<str>],
    json: serde_json::Value,
) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut map = out;
    for part in parents {
        let slot = map
            .entry(part.to_string())
            .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
        if !slot.is_object() {
            *slot = serde_json::Value::Object(serde_json::Map::new());
        }
        let serde_json::Value::Object(inner) = slot else {
            return;
        };
        map = inner;
    }
    map.insert(last.to_string(), json);
}

/// The same for an object SQL is building (nested SELECT rows).
fn insert_value<'a>(out: &mut ObjMap<'a>, path: &'a [Box<str>], v: Value<'a>, v2: bool) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    if rest.is_empty() {
        out.insert(Cow::Borrowed(first.as_ref()), v);
        return;
    }
    let mut inner = out
        .get(first.as_ref())
        .and_then(|existing| existing.members(v2))
        .unwrap_or_default();
    insert_value(&mut inner, rest, v, v2);
    out.insert(Cow::Borrowed(first.as_ref()), Value::object(inner));
}

pub(crate) fn eval<'a>(
    e: &'a Expr,
    env: &Env<'a>,
    scope: &Scope<'a>,
) -> Result<Value<'a>, EvalError> {
    let v2 = env.v2;
    Ok(match e {
        Expr::Null => Value::Null,
        Expr::Bool(b) => Value::Bool(*b),
        Expr::Int(i) => Value::Int(*i),
        Expr::Dec(d) => Value::Dec(*d),
        Expr::Str(s) => Value::str(s),
        Expr::Field(name) => scope.fields.member(name, v2),
        Expr::Star => scope.star.clone(),
        Expr::Var(slot, _) => env.vars.get(*slot).cloned().unwrap_or_default(),
        Expr::Member(base, key) => eval(base, env, scope)?.member(key, v2),
        Expr::Index(base, index) => {
            let base = eval(base, env, scope)?;
            let index = eval(index, env, scope)?;
            functions::get(&base, &index, v2)
        }
        Expr::Neg(inner) => ops::neg(&eval(inner, env, scope)?, v2),
        Expr::Not(inner) => match eval(inner, env, scope)?.to_bool() {
            Some(b) => Value::Bool(!b),
            None => Value::Undefined,
        },
        Expr::Binary(op, l, r) => {
            let a = eval(l, env, scope)?;
            let b = eval(r, env, scope)?;
            binary(*op, &a, &b, v2)?
        }
        Expr::Call(call) => functions::call(call, env, scope)?,
        Expr::Cast(inner, ty) => functions::cast(eval(inner, env, scope)?, *ty, v2),
        Expr::Case(case) => {
            let operand = match &case.operand {
                Some(op) => {
                    let v = eval(op, env, scope)?;
                    if v.is_undefined() {
                        return Ok(Value::Undefined);
                    }
                    Some(v)
                }
                None => None,
            };
            for (when, then) in &case.whens {
                let w = eval(when, env, scope)?;
                let hit = match &operand {
                    Some(v) => sql_eq(v, &w, v2) == Some(true),
                    None => is_true(&w),
                };
                if hit {
                    return eval(then, env, scope);
                }
            }
            match &case.otherwise {
                Some(e) => eval(e, env, scope)?,
                None => Value::Undefined,
            }
        }
        Expr::Object(members) => {
            let mut map = ObjMap::new();
            for (k, e) in members {
                let v = eval(e, env, scope)?;
                if !v.is_undefined() {
                    map.insert(Cow::Borrowed(k.as_ref()), v);
                }
            }
            Value::object(map)
        }
        Expr::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for e in items {
                out.push(eval(e, env, scope)?);
            }
            Value::array(out)
        }
        Expr::Select(select) => nested(select, env, scope)?,
    })
}

fn binary<'a>(op: BinOp, a: &Value<'a>, b: &Value<'a>, v2: bool) -> Result<Value<'a>, EvalError> {
    let bool_or_undefined = |b: Option<bool>| b.map_or(Value::Undefined, Value::Bool);
    Ok(match op {
        // Both sides are evaluated and both must be Booleans (AWS's table):
        // `false AND <Undefined>` is Undefined, not false.
        BinOp::And => match (a.to_bool(), b.to_bool()) {
            (Some(x), Some(y)) => Value::Bool(x && y),
            _ => Value::Undefined,
        },
        BinOp::Or => match (a.to_bool(), b.to_bool()) {
            (Some(x), Some(y)) => Value::Bool(x || y),
            _ => Value::Undefined,
        },
        BinOp::Eq => bool_or_undefined(sql_eq(a, b, v2)),
        BinOp::Ne => bool_or_undefined(sql_eq(a, b, v2).map(|eq| !eq)),
        BinOp::Lt => bool_or_undefined(sql_cmp(a, b).map(|o| o.is_lt())),
        BinOp::Le => bool_or_undefined(sql_cmp(a, b).map(|o| o.is_le())),
        BinOp::Gt => bool_or_undefined(sql_cmp(a, b).map(|o| o.is_gt())),
        BinOp::Ge => bool_or_undefined(sql_cmp(a, b).map(|o| o.is_ge())),
        BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Rem => ops::arith(op, a, b, v2)?,
    })
}

/// A nested SELECT: over each element of an Array FROM (an Array of the
/// rows kept), or once over an Object FROM (the bare result).
fn nested<'a>(
    select: &'a Select,
    env: &Env<'a>,
    scope: &Scope<'a>,
) -> Result<Value<'a>, EvalError> {
    let Some(from) = &select.from else {
        return Ok(Value::Undefined);
    };
    let from = eval(from, env, scope)?;
    let row_scope = |row: Value<'a>| Scope {
        fields: if matches!(row, Value::Object(_)) {
            row.clone()
        } else {
            Value::Undefined
        },
        star: row,
        top: false,
    };
    match &from {
        Value::Array(_) => {
            let mut out = Vec::new();
            for row in from.elements(env.v2) {
                let row = row_scope(row);
                if let Some(v) = project(select, env, &row)? {
                    out.push(v);
                }
            }
            Ok(Value::array(out))
        }
        Value::Object(_) => Ok(project(select, env, &row_scope(from.clone()))?.unwrap_or_default()),
        _ => Ok(Value::Undefined),
    }
}

/// One row through a nested SELECT's WHERE and item list; `None` when WHERE
/// drops it or (with VALUE) its value is Undefined.
fn project<'a>(
    select: &'a Select,
    env: &Env<'a>,
    row: &Scope<'a>,
) -> Result<Option<Value<'a>>, EvalError> {
    if let Some(filter) = &select.filter {
        if !is_true(&eval(filter, env, row)?) {
            return Ok(None);
        }
    }
    if select.value {
        let v = match &select.items[0] {
            Item::Star => row.star.clone(),
            Item::Expr { expr, .. } => eval(expr, env, row)?,
        };
        return Ok((!v.is_undefined()).then_some(v));
    }
    let mut map = ObjMap::new();
    for item in &select.items {
        match item {
            Item::Star => {
                if let Some(members) = row.star.members(env.v2) {
                    map.extend(members);
                }
            }
            Item::Expr { expr, path, .. } => {
                let v = eval(expr, env, row)?;
                if !v.is_undefined() {
                    insert_value(&mut map, path, v, env.v2);
                }
            }
        }
    }
    Ok(Some(Value::object(map)))
}
