//! The type system: conversions, Undefined, comparisons across types, Int
//! versus Decimal, and where the two SQL versions differ.

mod support;

use roost_sql::Output;
use serde_json::json;
use support::*;

#[test]
fn int_and_decimal_stay_apart_in_2015_10_08() {
    assert_eq!(v1("1 + 2"), Some(json!(3)));
    assert_eq!(v1("1 + 2.0"), Some(json!(3.0)));
    assert_eq!(v1("10.0"), Some(json!(10.0)));
    assert_eq!(v1("7 / 2"), Some(json!(3)));
    assert_eq!(v1("7 / 2.0"), Some(json!(3.5)));
    assert_eq!(eval_in(V1, "x", r#"{"x": 10.0}"#), Some(json!(10.0)));
    assert_eq!(eval_in(V1, "x + 1", r#"{"x": 10.0}"#), Some(json!(11.0)));
}

#[test]
fn whole_decimals_are_ints_in_2016_03_23() {
    assert_eq!(v2("10.0"), Some(json!(10)));
    assert_eq!(v2("2.5 * 2"), Some(json!(5)));
    assert_eq!(v2("1 + 2.0"), Some(json!(3)));
    assert_eq!(v2("2.5 * 3"), Some(json!(7.5)));
    assert_eq!(eval_in(V2, "x", r#"{"x": 10.0}"#), Some(json!(10)));
    assert_eq!(
        eval_in(V2, "x", r#"{"x": [1.0, {"y": 2.0}]}"#),
        Some(json!([1, {"y": 2}]))
    );
    assert_eq!(
        eval_in(V1, "x", r#"{"x": [1.0, {"y": 2.0}]}"#),
        Some(json!([1.0, {"y": 2.0}]))
    );
}

#[test]
fn a_literal_with_a_decimal_point_is_a_decimal_in_both_versions() {
    // Issue #9: `10.0 / 4` was Int division (2) in 2016-03-23. The literal is
    // a Decimal, so Int/Decimal arithmetic is Decimal, as AWS documents.
    for version in [V1, V2] {
        let e = |expr: &str| eval_in(version, expr, r#"{"x": 10, "d": 2.5}"#);
        assert_eq!(e("10.0 / 4"), Some(json!(2.5)), "{version}");
        assert_eq!(e("10 / 4.0"), Some(json!(2.5)), "{version}");
        assert_eq!(e("x / 4.0"), Some(json!(2.5)), "{version}");
        assert_eq!(e("-10.0 / 4"), Some(json!(-2.5)), "{version}");
        assert_eq!(e("-(10.0) / 4"), Some(json!(-2.5)), "{version}");
        assert_eq!(e("1.0e1 / 4"), Some(json!(2.5)), "{version}");
        assert_eq!(e("1e1 / 4"), Some(json!(2.5)), "{version}");
        assert_eq!(e("7.0 % 2 = 1"), Some(json!(true)), "{version}");
        assert_eq!(e("10.0 = 10"), Some(json!(true)), "{version}");
        // Int literals stay Ints.
        assert_eq!(e("10 / 4"), Some(json!(2)), "{version}");
    }
}

#[test]
fn a_whole_decimal_literal_leaves_as_its_version_says() {
    // 2015-10-08 keeps it a Decimal.
    assert_eq!(v1("10.0"), Some(json!(10.0)));
    assert_eq!(v1("10.0 * 1"), Some(json!(10.0)));
    assert_eq!(v1("-3.0"), Some(json!(-3.0)));
    assert_eq!(v1("cast(10.0 AS String)"), Some(json!("10.0")));
    assert_eq!(v1("concat(10.0, '')"), Some(json!("10.0")));
    // 2016-03-23 emits every whole number as an Int (AWS's documented quirk),
    // in JSON and in text alike, literals included.
    assert_eq!(v2("10.0"), Some(json!(10)));
    assert_eq!(v2("10.0 * 1"), Some(json!(10)));
    assert_eq!(v2("-3.0"), Some(json!(-3)));
    assert_eq!(v2("-(3.0)"), Some(json!(-3)));
    assert_eq!(v2("cast(10.0 AS String)"), Some(json!("10")));
    assert_eq!(v2("concat(10.0, '')"), Some(json!("10")));
    assert_eq!(v2("[10.0, 2.5]"), Some(json!([10, 2.5])));
    assert_eq!(v2("cast([10.0] AS String)"), Some(json!("[10]")));
    assert_eq!(v2("{'a': 10.0}"), Some(json!({"a": 10})));
    // In both, a fraction stays.
    assert_eq!(v1("10.5"), Some(json!(10.5)));
    assert_eq!(v2("10.5"), Some(json!(10.5)));
}

#[test]
fn decimals_are_exact_to_34_digits() {
    assert_eq!(v1("0.1 + 0.2 = 0.3"), Some(json!(true)));
    assert_eq!(
        v1("cast(1 / 3.0 AS String)"),
        Some(json!("0.3333333333333333333333333333333333"))
    );
    assert_eq!(v1("cast(1.10 * 3 AS String)"), Some(json!("3.30")));
    assert_eq!(v1("cast(100 / 4.0 AS String)"), Some(json!("25")));
    // Past f64's precision, still exact.
    assert_eq!(
        v1("cast(12345678901234567890.5 + 1 AS String)"),
        Some(json!("12345678901234567891.5"))
    );
}

#[test]
fn int_overflow_becomes_decimal() {
    let big = "170141183460469231731687303715884105727"; // i128::MAX
    assert_eq!(
        v1(&format!("cast({big} + 1 AS String)")),
        Some(json!("1.701411834604692317316873037158841E+38"))
    );
    // AWS's Ints have 34 digits at most: a larger product is a Decimal.
    assert_eq!(
        v1("cast(99999999999999999999 * 99999999999999999999 AS String)"),
        Some(json!("9.999999999999999999800000000000000E+39"))
    );
}

#[test]
fn decimal_range_is_awss() {
    assert_eq!(v1("cast(9e999 * 10 AS String)"), None);
    assert_eq!(v1("cast('1e-999' AS String)"), Some(json!("1e-999")));
    assert_eq!(
        v1("cast(cast('1e-999' AS Double) AS String)"),
        Some(json!("0.0"))
    );
    assert_eq!(v1("abs('1e1000')"), None);
}

#[test]
fn string_to_number_follows_the_aws_pattern() {
    for (text, want) in [
        ("0", Some(json!(0))),
        ("-1.2", Some(json!(1.2))),
        ("5E-12", Some(json!(5e-12))),
    ] {
        assert_eq!(v1(&format!("abs('{text}')")), want, "{text}");
    }
    for bad in [
        "+1", " 1", "1 ", ".5", "5.", "NaN", "Infinity", "0x1F", "1e+3", "1,5", "",
    ] {
        assert_eq!(v1(&format!("abs('{bad}')")), None, "{bad:?}");
    }
    // String → Int (function arguments): parsed as Decimal, then truncated.
    assert_eq!(v2("get([10, 11, 12], '1.9')"), Some(json!(11)));
    // Decimal → Int: nearest.
    assert_eq!(v2("get([10, 11, 12], 1.5)"), Some(json!(12)));
}

#[test]
fn to_string_conversions() {
    assert_eq!(v1("'' + 12"), Some(json!("12")));
    assert_eq!(v1("'' + 1.50"), Some(json!("1.50")));
    assert_eq!(v1("'' + true"), Some(json!("true")));
    assert_eq!(
        v2("'' + [1, 'a', NULL, 2.5]"),
        Some(json!("[1,\"a\",null,2.5]"))
    );
    assert_eq!(
        v2("'' + {'b': 1, 'a': 'x'}"),
        Some(json!("{\"b\":1,\"a\":\"x\"}"))
    );
    assert_eq!(v1("'' + NULL"), None);
    assert_eq!(v1("'' + missing"), None);
    assert_eq!(
        eval_in(V2, "'' + x", r#"{"x": {"q": "a\"b", "n": [1.0]}}"#),
        Some(json!("{\"q\":\"a\\\"b\",\"n\":[1]}"))
    );
}

#[test]
fn undefined_propagates() {
    for expr in [
        "missing + 1",
        "1 - missing",
        "missing * 2",
        "-missing",
        "NOT missing",
        "missing AND true",
        "true OR missing",
        "missing = missing",
        "missing <> 1",
        "missing < 1",
        "lower(missing)",
        "abs(missing)",
        "missing.field",
        "missing[0]",
        "concat('a', missing)",
        "cast(missing AS String)",
    ] {
        assert_eq!(v2(expr), None, "{expr}");
    }
    assert_eq!(v2("isUndefined(missing)"), Some(json!(true)));
    assert_eq!(v2("isNull(missing)"), Some(json!(false)));
}

#[test]
fn null_is_a_value() {
    let payload = r#"{"n": null}"#;
    assert_eq!(eval_in(V1, "n", payload), Some(json!(null)));
    assert_eq!(eval_in(V1, "isNull(n)", payload), Some(json!(true)));
    assert_eq!(eval_in(V1, "n = NULL", payload), Some(json!(true)));
    assert_eq!(eval_in(V1, "n + 1", payload), None);
    assert_eq!(eval_in(V1, "n > 1", payload), None);
    assert_eq!(eval_in(V1, "n = 0", payload), Some(json!(false)));
}

#[test]
fn equality_across_types() {
    let cases = [
        ("1 = 1.0", Some(true)),
        ("1.50 = 1.5", Some(true)),
        ("'a' = 'a'", Some(true)),
        ("'a' = 'A'", Some(false)),
        ("'1' = 1", Some(false)),
        ("true = 'true'", Some(false)),
        ("true = true", Some(true)),
        ("NULL = 0", Some(false)),
        ("[1, [2]] = [1.0, [2]]", Some(true)),
        ("[1] = [1, 2]", Some(false)),
        ("{'a': [1]} = {'a': [1.0]}", Some(true)),
        ("{'a': 1} = {'a': 1, 'b': 2}", Some(false)),
        ("{'a': 1} = [1]", Some(false)),
    ];
    for (expr, want) in cases {
        assert_eq!(v2(expr), want.map(|b| json!(b)), "{expr}");
        let ne = expr.replacen(" = ", " <> ", 1);
        assert_eq!(v2(&ne), want.map(|b| json!(!b)), "{ne}");
    }
}

#[test]
fn ordering_is_numeric_only() {
    assert_eq!(v1("2 > 1.5"), Some(json!(true)));
    assert_eq!(v1("'2' > 10"), Some(json!(false)));
    assert_eq!(v1("'2.5' >= '2.50'"), Some(json!(true)));
    assert_eq!(v1("-1 < -0.5"), Some(json!(true)));
    assert_eq!(v1("'b' > 'a'"), None);
    assert_eq!(v1("true > false"), None);
    assert_eq!(v2("[2] > [1]"), None);
}

#[test]
fn logic_follows_awss_tables() {
    assert_eq!(v1("true AND 'TRUE'"), Some(json!(true)));
    assert_eq!(v1("'false' OR 'False'"), Some(json!(false)));
    assert_eq!(v1("NOT 'true'"), Some(json!(false)));
    // Every operand must be a Boolean, even where the answer is known.
    assert_eq!(v1("false AND 'maybe'"), None);
    assert_eq!(v1("true OR 0"), None);
    assert_eq!(v1("NOT NULL"), None);
}

#[test]
fn string_plus_concatenates() {
    assert_eq!(v1("'3' + 1"), Some(json!("31")));
    assert_eq!(v1("1 + '3'"), Some(json!("13")));
    assert_eq!(v1("'a' + 'b' + 1 + 2"), Some(json!("ab12")));
    assert_eq!(v1("1 + 2 + 'a'"), Some(json!("3a")));
    assert_eq!(v1("'3' - 1"), Some(json!(2)));
    assert_eq!(v1("'3' * '2'"), Some(json!(6)));
    assert_eq!(v1("'x' - 1"), None);
}

#[test]
fn arithmetic_edge_cases() {
    assert_eq!(v1("7 % -3"), Some(json!(1)));
    assert_eq!(v1("-7 / 2"), Some(json!(-3)));
    assert_eq!(v1("7.5 % 2"), Some(json!(1.5)));
    assert_eq!(v1("1 % 0"), None);
    assert_eq!(v1("1.0 / 0"), None);
    assert_eq!(v1("- '2.5'"), Some(json!(-2.5)));
}

#[test]
fn cast_table() {
    let cases: &[(&str, Option<serde_json::Value>)] = &[
        ("cast(1.9 AS Int)", Some(json!(1))),
        ("cast(-1.9 AS Integer)", Some(json!(-1))),
        ("cast('7' AS Int)", Some(json!(7))),
        ("cast('x' AS Int)", None),
        ("cast(false AS Int)", Some(json!(0))),
        ("cast(NULL AS Int)", None),
        ("cast(true AS Double)", Some(json!(1.0))),
        ("cast(1 AS Double)", Some(json!(1.0))),
        ("cast(0.1 AS Double)", Some(json!(0.1))),
        ("cast(3 AS varchar)", Some(json!("3"))),
        ("cast(3 AS nvarchar)", Some(json!("3"))),
        ("cast(3 AS Text)", Some(json!("3"))),
        ("cast(3 AS Ntext)", Some(json!("3"))),
        ("cast('x' AS String)", Some(json!("x"))),
        ("cast(1e3 AS String)", Some(json!("1E+3"))),
    ];
    for (expr, want) in cases {
        assert_eq!(&v1(expr), want, "{expr}");
    }
    assert_eq!(v2("cast([1] AS Int)"), None);
    assert_eq!(v2("cast(2 AS Bool)"), Some(json!(true)));
    assert_eq!(v2("cast(0.0 AS Boolean)"), Some(json!(false)));
    assert_eq!(v2("cast('yes' AS Boolean)"), None);
    assert_eq!(v2("cast('2.50' AS Decimal)"), Some(json!(2.5)));
    assert_eq!(v2("cast(1.0 AS Double)"), Some(json!(1)));
    assert!(parse_error(V1, "SELECT cast(1 AS Boolean) FROM 'a'").contains("2016-03-23"));
    assert!(parse_error(V2, "SELECT cast(1 AS Date) FROM 'a'").contains("unknown type Date"));
}

#[test]
fn big_json_numbers() {
    let payload =
        r#"{"big": 123456789012345678901234567890, "u": 18446744073709551615, "tiny": 1e-300}"#;
    assert_eq!(
        eval_in(V1, "cast(u AS String)", payload),
        Some(json!("18446744073709551615"))
    );
    assert_eq!(
        eval_in(V1, "u", payload),
        Some(json!(18446744073709551615u64))
    );
    assert_eq!(eval_in(V1, "big > 1e29", payload), Some(json!(true)));
    assert_eq!(eval_in(V1, "tiny > 0", payload), Some(json!(true)));
}

#[test]
fn where_needs_true() {
    let sql = |cond: &str| format!("SELECT 1 AS x FROM 'a/b' WHERE {cond}");
    for (cond, passes) in [
        ("true", true),
        ("'TRUE'", true),
        ("false", false),
        ("1", false),
        ("'yes'", false),
        ("NULL", false),
        ("missing", false),
    ] {
        assert_eq!(run(V1, &sql(cond), b"{}").is_some(), passes, "{cond}");
    }
}

#[test]
fn output_shapes() {
    assert_eq!(
        run(V2, "SELECT VALUE 'x' FROM 'a/b'", b"{}"),
        Some(Output::Json(json!("x")))
    );
    assert_eq!(
        run(V2, "SELECT VALUE * FROM 'a/b'", br#"{"a":1}"#),
        Some(Output::Json(json!({"a": 1})))
    );
    assert_eq!(
        run(V2, "SELECT VALUE * FROM 'a/b'", b"\x01\x02"),
        Some(Output::Bytes(vec![1, 2]))
    );
    assert_eq!(
        run(V1, "SELECT * FROM 'a/b'", b"[1, 2]"),
        Some(Output::Json(json!([1, 2])))
    );
    assert_eq!(
        run(V1, "SELECT *, 1 AS one FROM 'a/b'", b"[1, 2]"),
        Some(Output::Json(json!({"one": 1})))
    );
    assert_eq!(
        run(V1, "SELECT *, 1 AS one FROM 'a/b'", b"hello"),
        Some(Output::Json(json!({"one": 1})))
    );
    assert_eq!(
        run(V1, "SELECT * FROM 'a/b'", b"\"just a string\""),
        Some(Output::Bytes(b"\"just a string\"".to_vec()))
    );
    assert_eq!(
        run(
            V1,
            "SELECT a AS x.y, b AS x.z, c AS x FROM 'a/b'",
            br#"{"a":1,"b":2}"#
        ),
        Some(Output::Json(json!({"x": {"y": 1, "z": 2}})))
    );
    assert_eq!(
        run(V1, "SELECT 1 AS x, 2 AS x.y FROM 'a/b'", b"{}"),
        Some(Output::Json(json!({"x": {"y": 2}})))
    );
    assert_eq!(
        run(V1, "SELECT *, * FROM 'a/b'", br#"{"a":1}"#),
        Some(Output::Json(json!({"a": 1})))
    );
    assert_eq!(
        run(V1, "SELECT 1 + 1, 'x' FROM 'a/b'", b"{}"),
        Some(Output::Json(json!({"_1": 2, "_2": "x"})))
    );
    let out = run(V1, "SELECT * FROM 'a/b'", b"\x00\xff").unwrap();
    assert_eq!(out.content_type(), "application/octet-stream");
    assert_eq!(out.to_bytes(), b"\x00\xff");
    let out = run(V1, "SELECT a FROM 'a/b'", br#"{"a":"b"}"#).unwrap();
    assert_eq!(out.content_type(), "application/json");
    assert_eq!(out.to_bytes(), br#"{"a":"b"}"#);
}

#[test]
fn nested_selects() {
    let payload =
        br#"{"rows": [{"n": 1, "v": "a"}, {"n": 2, "v": "b"}, 3], "one": {"n": 5, "c": [7, 8]}}"#;
    let out = |sql: &str| run(V2, sql, payload);
    assert_eq!(
        out("SELECT (SELECT VALUE v FROM rows WHERE n > 1) AS r FROM 'a/b'"),
        Some(Output::Json(json!({"r": ["b"]})))
    );
    assert_eq!(
        out("SELECT (SELECT n AS m, v AS deep.v FROM rows WHERE n = 1) AS r FROM 'a/b'"),
        Some(Output::Json(json!({"r": [{"m": 1, "deep": {"v": "a"}}]})))
    );
    assert_eq!(
        out("SELECT (SELECT VALUE * FROM rows) AS r FROM 'a/b'"),
        Some(Output::Json(
            json!({"r": [{"n": 1, "v": "a"}, {"n": 2, "v": "b"}, 3]})
        ))
    );
    // An Object FROM is one row, and the result is not wrapped.
    assert_eq!(
        out("SELECT (SELECT n FROM one) AS r FROM 'a/b'"),
        Some(Output::Json(json!({"r": {"n": 5}})))
    );
    assert_eq!(
        out("SELECT (SELECT VALUE c FROM one) AS r FROM 'a/b'"),
        Some(Output::Json(json!({"r": [7, 8]})))
    );
    assert_eq!(
        out("SELECT (SELECT VALUE n FROM missing) AS r FROM 'a/b'"),
        Some(Output::Json(json!({})))
    );
    assert!(
        out("SELECT * FROM 'a/b' WHERE get((SELECT VALUE n FROM rows WHERE v = 'b'), 0) = 2")
            .is_some()
    );
}
