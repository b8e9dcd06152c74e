//! Properties: nothing panics on any input, printing round-trips, and a few
//! algebraic facts about the number model.

use proptest::prelude::*;
use roost_sql::{parse, parse_template, Context, Output, SqlVersion};
use serde_json::{json, Value};

const VERSIONS: [SqlVersion; 2] = [SqlVersion::V2015_10_08, SqlVersion::V2016_03_23];

/// Statements that between them call every function and operator on fields
/// an arbitrary payload may or may not have.
const STATEMENTS: &[&str] = &[
    "SELECT * FROM '#'",
    "SELECT *, topic(2) AS t, a.b.c AS x.y FROM '#' WHERE a <> b OR NOT c",
    "SELECT VALUE a FROM '#'",
    "SELECT VALUE * FROM '#'",
    "SELECT a + b, a - b, a * b, a / b, a % b, -a, a = b, a < b, a >= b, a AND b FROM '#'",
    "SELECT abs(a), acos(a), asin(a), atan(a), atan2(a, b), cos(a), cosh(a), sin(a), sinh(a), tan(a), tanh(a) FROM '#'",
    "SELECT exp(a), ln(a), log(a), power(a, b), sqrt(a), ceil(a), floor(a), round(a), sign(a), mod(a, b) FROM '#'",
    "SELECT remainder(a, b), trunc(a, b), nanvl(a, b), rand(), bitand(a, b), bitor(a, b), bitxor(a, b), bitnot(a) FROM '#'",
    "SELECT chr(a), concat(a, b, c), endswith(a, b), startswith(a, b), lower(a), upper(b), lpad(a, b), rpad(a, b) FROM '#'",
    "SELECT ltrim(a), rtrim(a), trim(a), replace(a, b, c), regexp_matches(a, b), regexp_replace(a, b, c) FROM '#'",
    "SELECT regexp_substr(a, b), substring(a, b), substring(a, b, c), get(a, b), a[b], isNull(a), cast(a AS String) FROM '#'",
    "SELECT cast(a AS Int), cast(a AS Double), md2(a), md5(a), sha1(a), sha224(a), sha256(a), sha384(a), sha512(a) FROM '#'",
    "SELECT clientid(), principal(), accountid(), traceid(), timestamp(), newuuid(), sourceip(), sql_version() FROM '#'",
    "SELECT CASE a WHEN b THEN c WHEN 1 THEN 2 ELSE * END AS k, CASE WHEN a THEN b END AS l FROM '#'",
    "SELECT * FROM '#' WHERE a > 0 AND (b = 'x' OR c <> NULL)",
];

/// Statements only 2016-03-23 accepts.
const STATEMENTS_V2: &[&str] = &[
    "SELECT indexof(a, b), length(a), numbytes(a), isUndefined(a), encode(a, 'base64'), encode(*, 'base64') FROM '#'",
    "SELECT decode(a, 'base64'), decode(b, c), transform('enrichArray', a, b), transform(a, b, c) FROM '#'",
    "SELECT parse_time(a, b), parse_time(a, b, c), time_to_epoch(a, b), get_or_default(a, b) FROM '#'",
    "SELECT get_mqtt_property(a), get_user_properties(a), {'k': a, 'l': [b, c]} AS lit FROM '#'",
    "SELECT (SELECT VALUE x FROM a WHERE x > 1) AS n, (SELECT *, 1 AS one FROM b) AS m FROM '#'",
    "SET @x = a + 1, @y = upper(@x) SELECT @x, @y FROM '#' WHERE @x <> @y",
    "SELECT VALUE [a, b, c] FROM '#'",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        any::<u64>().prop_map(|u| json!(u)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        prop_oneof![
            Just("true".to_string()),
            Just("-1.5E3".to_string()),
            Just("aGVsbG8=".to_string()),
            Just("yyyy-MM-dd".to_string()),
            Just("enrichArray".to_string()),
            Just("(a|b)*c\\1".to_string()),
            "\\PC{0,12}",
            "[0-9.eE-]{1,10}",
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("a".to_string()),
                    Just("b".to_string()),
                    Just("c".to_string()),
                    Just("x".to_string()),
                    "[a-z]{1,3}"
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// An object payload with some of the fields the statements read.
fn payload_object() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(
        prop::sample::select(vec!["a", "b", "c", "d"]),
        json_value(),
        0..4,
    )
    .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()))
}

/// SQL-shaped text from tokens, to reach deeper into the parser than random
/// characters do.
fn sqlish() -> impl Strategy<Value = String> {
    let token = prop::sample::select(vec![
        "SELECT",
        "VALUE",
        "*",
        "FROM",
        "'a/+'",
        "WHERE",
        "AS",
        "AND",
        "OR",
        "NOT",
        "CASE",
        "WHEN",
        "THEN",
        "ELSE",
        "END",
        "(",
        ")",
        "[",
        "]",
        "{",
        "}",
        ",",
        ".",
        ":",
        "+",
        "-",
        "/",
        "%",
        "=",
        "<>",
        "<",
        ">=",
        "a",
        "b",
        "value",
        "1",
        "2.5",
        "1e3",
        "'s'",
        "\"d\"",
        "NULL",
        "true",
        "topic",
        "upper",
        "get",
        "cast",
        "Int",
        "@v",
        "SET",
        "=",
        "concat",
        "regexp_replace",
        "'(x'",
        "decode",
    ]);
    prop::collection::vec(token, 0..24).prop_map(|t| t.join(" "))
}

/// Valid expressions from a small grammar, for the printing round trip.
fn expr() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("a".to_string()),
        Just("b.c".to_string()),
        Just("value".to_string()),
        Just("*".to_string()),
        Just("NULL".to_string()),
        Just("true".to_string()),
        (-1000i64..1000).prop_map(|i| i.to_string()),
        (-1000.0f64..1000.0).prop_map(|f| format!("{f:.3}")),
        "[a-z ']{0,6}".prop_map(|s| format!("'{}'", s.replace('\'', "''"))),
        Just("topic(1)".to_string()),
    ];
    leaf.prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            (
                inner.clone(),
                prop::sample::select(vec![
                    "+", "-", "*", "/", "%", "=", "<>", "<", ">=", "AND", "OR"
                ]),
                inner.clone()
            )
                .prop_map(|(l, op, r)| format!("({l} {op} {r})")),
            inner.clone().prop_map(|e| format!("(NOT {e})")),
            inner.clone().prop_map(|e| format!("-{e}")),
            inner.clone().prop_map(|e| format!("upper({e})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("concat({a}, {b})")),
            inner.clone().prop_map(|e| format!("cast({e} AS Decimal)")),
            (inner.clone(), inner.clone())
                .prop_map(|(a, b)| format!("CASE {a} WHEN {b} THEN 1 ELSE 2 END")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("[{a}, {b}]")),
            inner.clone().prop_map(|e| format!("{{'k': {e}}}")),
            inner.clone().prop_map(|e| format!("({e})[0]")),
            inner
                .clone()
                .prop_map(|e| format!("(SELECT VALUE {e} FROM a WHERE x > 1)")),
        ]
    })
}

fn ctx() -> Context<'static> {
    Context {
        client_id: Some("c"),
        ..Context::new("t/u/v", 1)
    }
}

proptest! {
    // 512 cases by default; PROPTEST_CASES=N runs more.
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(512)
    ))]

    #[test]
    fn parsing_never_panics(text in "\\PC{0,64}", version in prop::sample::select(VERSIONS.to_vec())) {
        let _ = parse(&text, version);
        let _ = parse_template(&text, version);
    }

    #[test]
    fn parsing_sqlish_text_never_panics(text in sqlish(), version in prop::sample::select(VERSIONS.to_vec())) {
        if let Ok(statement) = parse(&text, version) {
            let _ = statement.evaluate(br#"{"a": 1, "b": [1, 2]}"#, &ctx());
            let printed = statement.to_string();
            let again = parse(&printed, version).map_err(|e| TestCaseError::fail(format!("{printed}: {e}")))?;
            prop_assert_eq!(again.to_string(), printed);
        }
    }

    #[test]
    fn evaluation_never_panics_on_json(payload in payload_object(), scalar in json_value()) {
        let payloads = [serde_json::to_vec(&payload).unwrap(), serde_json::to_vec(&scalar).unwrap()];
        for version in VERSIONS {
            let all = STATEMENTS.iter().chain(if version == SqlVersion::V2016_03_23 { STATEMENTS_V2 } else { &[] });
            for sql in all {
                let statement = parse(sql, version).unwrap();
                for bytes in &payloads {
                    let _ = statement.evaluate(bytes, &ctx());
                }
            }
        }
    }

    #[test]
    fn evaluation_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        for version in VERSIONS {
            let all = STATEMENTS.iter().chain(if version == SqlVersion::V2016_03_23 { STATEMENTS_V2 } else { &[] });
            for sql in all {
                let _ = parse(sql, version).unwrap().evaluate(&bytes, &ctx());
            }
        }
    }

    #[test]
    fn templates_never_panic(text in "(\\PC|\\$\\{|\\}){0,40}", payload in payload_object()) {
        let bytes = serde_json::to_vec(&payload).unwrap();
        for version in VERSIONS {
            if let Ok(template) = parse_template(&text, version) {
                let _ = template.render(&bytes, &ctx());
            }
        }
        let template = parse_template("k/${a}/${b.c}/${upper(c)}-${get(a, 0)}", SqlVersion::V2016_03_23).unwrap();
        let _ = template.render(&bytes, &ctx());
    }

    #[test]
    fn printing_round_trips(e in expr(), alias in "[a-z]{1,5}", cond in expr()) {
        let sql = format!("SELECT {e} AS {alias}, {e} FROM 'a/#' WHERE {cond}");
        let first = parse(&sql, SqlVersion::V2016_03_23).map_err(|err| TestCaseError::fail(format!("{sql}: {err}")))?;
        let printed = first.to_string();
        let second = parse(&printed, SqlVersion::V2016_03_23).map_err(|err| TestCaseError::fail(format!("{printed}: {err}")))?;
        prop_assert_eq!(second.to_string(), printed.clone());
        // And the two mean the same.
        let payload = br#"{"a": 2, "b": {"c": "x"}, "value": [1]}"#;
        let (x, y) = (first.evaluate(payload, &ctx()), second.evaluate(payload, &ctx()));
        prop_assert_eq!(format!("{x:?}"), format!("{y:?}"));
    }

    #[test]
    fn select_star_passes_objects_through(payload in payload_object()) {
        let bytes = serde_json::to_vec(&payload).unwrap();
        let out = parse("SELECT * FROM '#'", SqlVersion::V2015_10_08).unwrap().evaluate(&bytes, &ctx()).unwrap();
        // Compared with what serde_json reads back: without its
        // `float_roundtrip` feature a double may come back one ulp off, and
        // that is serde_json's reading, not Roost's.
        let read: Value = serde_json::from_slice(&bytes).unwrap();
        prop_assert_eq!(out, Some(Output::Json(read)));
    }

    #[test]
    fn int_arithmetic_is_exact(a in any::<i64>(), b in any::<i64>()) {
        let sql = format!("SELECT cast({a} + {b} AS String) AS s, cast({a} * {b} AS String) AS p, {a} < {b} AS lt FROM '#'");
        let out = parse(&sql, SqlVersion::V2015_10_08).unwrap().evaluate(b"{}", &ctx()).unwrap();
        let (a, b) = (i128::from(a), i128::from(b));
        prop_assert_eq!(out, Some(Output::Json(json!({
            "s": (a + b).to_string(),
            "p": (a * b).to_string(),
            "lt": a < b,
        }))));
    }

    #[test]
    fn decimals_read_back_as_the_same_double(f in any::<f64>().prop_filter("finite", |f| f.is_finite())) {
        let payload = serde_json::to_vec(&json!({"f": f})).unwrap();
        let out = parse("SELECT f, f + 0 AS g, cast(cast(f AS String) AS Double) AS h FROM '#'", SqlVersion::V2015_10_08)
            .unwrap()
            .evaluate(&payload, &ctx())
            .unwrap();
        let Some(Output::Json(out)) = out else { panic!() };
        // serde_json's own reading of the payload is the reference (see
        // select_star_passes_objects_through).
        let f = serde_json::from_slice::<Value>(&payload).unwrap()["f"].as_f64().unwrap();
        for key in ["f", "g"] {
            prop_assert_eq!(out[key].as_f64(), Some(f), "{} of {}", key, f);
        }
        // AWS's String → Decimal pattern has no `E+`, which Java's (and
        // Roost's) text of a large Decimal has: that text does not read back.
        let text = parse("SELECT cast(f AS String) AS t FROM '#'", SqlVersion::V2015_10_08)
            .unwrap()
            .evaluate(&payload, &ctx())
            .unwrap();
        let Some(Output::Json(text)) = text else { panic!() };
        let readable = !text["t"].as_str().unwrap().contains("E+");
        prop_assert_eq!(out.get("h").and_then(Value::as_f64), readable.then_some(f), "h of {}", f);
    }

    #[test]
    fn string_numbers_compare_like_numbers(a in -1.0e6f64..1.0e6, b in -1.0e6f64..1.0e6) {
        let sql = format!("SELECT '{a}' < {b} AS lt, '{a}' = '{a}' AS eq FROM '#'");
        let out = parse(&sql, SqlVersion::V2015_10_08).unwrap().evaluate(b"{}", &ctx()).unwrap();
        let text_lt = format!("{a}").parse::<f64>().unwrap() < b;
        let expected_lt = if format!("{a}").contains(['e', 'E', 'i', 'N']) { None } else { Some(text_lt) };
        let Some(Output::Json(out)) = out else { panic!() };
        prop_assert_eq!(out.get("lt").and_then(Value::as_bool), expected_lt);
        prop_assert_eq!(out.get("eq").and_then(Value::as_bool), Some(true));
    }
}
