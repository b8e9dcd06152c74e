//! Shared helpers: evaluate one expression or statement through the public API.
#![allow(dead_code)]

use roost_sql::{parse, Context, Output, SqlVersion};
use serde_json::Value;

pub const V1: SqlVersion = SqlVersion::V2015_10_08;
pub const V2: SqlVersion = SqlVersion::V2016_03_23;

pub fn ctx(topic: &str) -> Context<'_> {
    Context::new(topic, 1_764_499_200_000)
}

/// The value of `expr` on `payload`, or `None` for Undefined.
pub fn eval_in(version: SqlVersion, expr: &str, payload: &str) -> Option<Value> {
    let sql = format!("SELECT ({expr}) AS r FROM 'a/b'");
    let statement = parse(&sql, version).unwrap_or_else(|e| panic!("{sql}: {e}"));
    match statement.evaluate(payload.as_bytes(), &ctx("a/b")) {
        Ok(Some(Output::Json(Value::Object(mut map)))) => map.remove("r"),
        other => panic!("{sql}: unexpected {other:?}"),
    }
}

pub fn v1(expr: &str) -> Option<Value> {
    eval_in(V1, expr, "{}")
}

pub fn v2(expr: &str) -> Option<Value> {
    eval_in(V2, expr, "{}")
}

/// The output of a whole statement.
pub fn run(version: SqlVersion, sql: &str, payload: &[u8]) -> Option<Output> {
    let statement = parse(sql, version).unwrap_or_else(|e| panic!("{sql}: {e}"));
    statement
        .evaluate(payload, &ctx("a/b"))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The parse error's text.
pub fn parse_error(version: SqlVersion, sql: &str) -> String {
    match parse(sql, version) {
        Ok(_) => panic!("{sql} parsed"),
        Err(e) => e.to_string(),
    }
}
