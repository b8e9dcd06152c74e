//! Arbitrary text as IoT SQL statements and templates, and arbitrary payloads
//! through them: parsing, printing, evaluating and rendering must never panic,
//! and a printed statement must parse back to the same text.
//!
//! Input: the first byte picks the SQL version; the rest is split at the first
//! NUL into statement text and payload bytes. The statement is also parsed as
//! a template, and a fixed set of statements runs on the payload.

#![no_main]

use libfuzzer_sys::fuzz_target;
use roost_sql::{parse, parse_template, Context, SqlVersion};

const FIXED: &[&str] = &[
    "SELECT * FROM '#'",
    "SELECT *, topic(1) AS t, a.b[0] AS x.y FROM '#' WHERE a <> b OR NOT c",
    "SELECT a + b, a * b, a / b, a % b, concat(a, b), lower(a), substring(a, b, c), get(a, b) FROM '#'",
    "SELECT regexp_replace(a, b, c), replace(a, b, c), lpad(a, b), cast(a AS Int), trunc(a, b), power(a, b) FROM '#'",
    "SELECT decode(a, 'base64'), encode(*, 'base64'), transform('enrichArray', a, b), parse_time(a, b, c) FROM '#'",
    "SELECT time_to_epoch(a, b), (SELECT VALUE x FROM a WHERE x > b) AS n, {'k': [a, b]} AS o FROM '#'",
    "SELECT VALUE CASE a WHEN b THEN c ELSE * END FROM '#'",
];

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let version = if control & 1 == 0 {
        SqlVersion::V2015_10_08
    } else {
        SqlVersion::V2016_03_23
    };
    let (text, payload) = match rest.iter().position(|b| *b == 0) {
        Some(nul) => (&rest[..nul], &rest[nul + 1..]),
        None => (rest, &[][..]),
    };
    let ctx = Context {
        client_id: Some("fuzz"),
        ..Context::new("t/u/v", 1_764_499_200_000)
    };
    if let Ok(text) = std::str::from_utf8(text) {
        if let Ok(statement) = parse(text, version) {
            let printed = statement.to_string();
            let again = parse(&printed, version).expect("printed statement parses");
            assert_eq!(again.to_string(), printed);
            let _ = statement.evaluate(payload, &ctx);
            let _ = statement.matches_topic("t/u/v");
        }
        if let Ok(template) = parse_template(text, version) {
            let _ = template.render(payload, &ctx);
        }
    }
    for sql in FIXED {
        if let Ok(statement) = parse(sql, version) {
            let _ = statement.evaluate(payload, &ctx);
        }
    }
});
