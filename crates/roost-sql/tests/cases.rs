//! Runs every case of `tests/cases.json` through the library.
//!
//! The file is a JSON array of cases, documented AWS examples first, then
//! Roost's decisions where AWS is silent. Each case is an object:
//!
//! | field            | meaning |
//! |------------------|---------|
//! | `name`           | what the case shows (unique) |
//! | `sql`            | the statement |
//! | `sql_version`    | `"2015-10-08"` (default) or `"2016-03-23"` |
//! | `topic`          | the topic the message arrived on (`topic()`) |
//! | `payload`        | a JSON value, sent as its compact serialisation |
//! | `payload_text`   | instead of `payload`: the payload as raw text |
//! | `payload_base64` | instead of `payload`: the payload as base64 bytes |
//! | `client_id`, `principal` | optional context (`clientid()` is `"n/a"` without one) |
//! | `source`         | the AWS page (or `scenario`) the case comes from |
//!
//! and exactly one expected outcome:
//!
//! | field             | meaning |
//! |-------------------|---------|
//! | `expected`        | the output is this JSON document (compared as JSON values, so `10` ≠ `10.0`) |
//! | `expected_base64` | the output is these bytes, not JSON (binary passthrough; `""` for empty) |
//! | `filtered: true`  | the WHERE clause drops the message |
//! | `error`           | parsing or evaluation fails with a message containing this text |
//! | `topic_matches`   | only the FROM filter is checked: does `topic` match it |
//!
//! No case depends on the clock or randomness (`timestamp()`, `newuuid()`,
//! `rand()` are unit-tested with properties instead), so the same file can be
//! run through `roost sql eval` and must give the same answers.

use base64::Engine as _;
use roost_sql::{parse, Context, Output, SqlVersion};
use serde_json::Value;

const CASES: &str = include_str!("cases.json");

fn payload_of(case: &Value) -> Vec<u8> {
    if let Some(text) = case.get("payload_text") {
        return text
            .as_str()
            .expect("payload_text is a string")
            .as_bytes()
            .to_vec();
    }
    if let Some(b64) = case.get("payload_base64") {
        return base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().expect("payload_base64 is a string"))
            .expect("payload_base64 is base64");
    }
    match case.get("payload") {
        Some(json) => serde_json::to_vec(json).unwrap(),
        None => Vec::new(),
    }
}

/// What happened, in the case file's terms.
fn run(case: &Value) -> Result<String, String> {
    let s = |key: &str| case.get(key).and_then(Value::as_str);
    let sql = s("sql").ok_or("case without sql")?;
    let version: SqlVersion = s("sql_version")
        .unwrap_or("2015-10-08")
        .parse()
        .map_err(|e| format!("{e}"))?;
    let topic = s("topic").ok_or("case without topic")?;
    let statement = match parse(sql, version) {
        Ok(statement) => statement,
        Err(e) => return Ok(format!("error: {e}")),
    };
    if case.get("topic_matches").is_some() {
        return Ok(format!("topic_matches: {}", statement.matches_topic(topic)));
    }
    if !statement.matches_topic(topic) {
        return Err(format!(
            "topic {topic} does not match FROM {}",
            statement.from_topic()
        ));
    }
    let ctx = Context {
        client_id: s("client_id"),
        principal: s("principal"),
        ..Context::new(topic, 1_764_499_200_000)
    };
    Ok(match statement.evaluate(&payload_of(case), &ctx) {
        Err(e) => format!("error: {e}"),
        Ok(None) => "filtered".to_string(),
        Ok(Some(Output::Json(json))) => format!("expected: {json}"),
        Ok(Some(Output::Bytes(bytes))) => {
            format!(
                "expected_base64: {}",
                base64::engine::general_purpose::STANDARD.encode(bytes)
            )
        }
    })
}

fn check(case: &Value) -> Result<(), String> {
    let got = run(case)?;
    if let Some(want) = case.get("expected") {
        let ok = got
            .strip_prefix("expected: ")
            .and_then(|j| serde_json::from_str::<Value>(j).ok())
            .is_some_and(|j| &j == want);
        return if ok {
            Ok(())
        } else {
            Err(format!("want expected: {want}, got {got}"))
        };
    }
    if let Some(want) = case.get("expected_base64") {
        let want = format!("expected_base64: {}", want.as_str().unwrap_or_default());
        return if got == want {
            Ok(())
        } else {
            Err(format!("want {want}, got {got}"))
        };
    }
    if case.get("filtered") == Some(&Value::Bool(true)) {
        return if got == "filtered" {
            Ok(())
        } else {
            Err(format!("want filtered, got {got}"))
        };
    }
    if let Some(want) = case.get("error").and_then(Value::as_str) {
        return if got.starts_with("error: ") && got.contains(want) {
            Ok(())
        } else {
            Err(format!("want an error containing {want:?}, got {got}"))
        };
    }
    if let Some(want) = case.get("topic_matches").and_then(Value::as_bool) {
        let want = format!("topic_matches: {want}");
        return if got == want {
            Ok(())
        } else {
            Err(format!("want {want}, got {got}"))
        };
    }
    Err("case has no expected outcome".into())
}

#[test]
fn every_case_in_cases_json() {
    let cases: Vec<Value> = serde_json::from_str(CASES).expect("cases.json is JSON");
    assert!(cases.len() > 150, "the case table shrank");
    let mut names = std::collections::HashSet::new();
    let mut failures = Vec::new();
    for case in &cases {
        let name = case
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("<unnamed>");
        assert!(names.insert(name), "duplicate case name {name}");
        if let Err(why) = check(case) {
            failures.push(format!("{name}: {why}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
