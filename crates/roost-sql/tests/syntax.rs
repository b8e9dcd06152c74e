//! The parser: what is accepted, what is rejected and where, and printing.

mod support;

use roost_sql::{parse, SqlErrorKind, SqlVersion};
use serde_json::json;
use support::*;

#[test]
fn versions_parse_by_name() {
    assert_eq!("2015-10-08".parse::<SqlVersion>().unwrap(), V1);
    assert_eq!("2016-03-23".parse::<SqlVersion>().unwrap(), V2);
    assert_eq!("beta".parse::<SqlVersion>().unwrap(), V2);
    assert!("2017-01-01".parse::<SqlVersion>().is_err());
    assert_eq!(SqlVersion::default(), V1);
    assert_eq!(V2.to_string(), "2016-03-23");
}

#[test]
fn keywords_are_case_insensitive() {
    let s = parse(
        "select VALUE color from 'a/b' Where temperature > 1 aNd TRUE",
        V1,
    )
    .unwrap();
    assert_eq!(s.from_topic(), "a/b");
    let s = parse("SeLeCt a As b FrOm 'x'", V1).unwrap();
    assert_eq!(s.from_topic(), "x");
}

#[test]
fn errors_have_positions() {
    let err = parse("SELECT a FROM 'x' WHERE", V1).unwrap_err();
    assert_eq!((err.line, err.column), (1, 24));
    assert!(
        err.to_string()
            .starts_with("line 1, column 24: unexpected end of input"),
        "{err}"
    );
    let err = parse("SELECT a,\n  b ~ c FROM 'x'", V1).unwrap_err();
    assert_eq!((err.line, err.column), (2, 5));
    assert!(matches!(err.kind, SqlErrorKind::InvalidCharacter('~')));
    let err = parse("SELECT 'unterminated FROM 'x'", V1).unwrap_err();
    assert_eq!(err.column, 28);
    assert!(err.to_string().contains("unexpected 'x'"), "{err}");
    let err = parse("SELECT a FROM 'x' garbage", V1).unwrap_err();
    assert!(
        err.to_string().contains("expected end of statement"),
        "{err}"
    );
}

#[test]
fn rejected_syntax() {
    for sql in [
        "SELECT FROM 'a'",
        "SELECT a FROM",
        "SELECT a b FROM 'a'",
        "SELECT 1 = 1 = 1 FROM 'a'",
        "SELECT a || b FROM 'a'",
        "SELECT a FROM 'a' -- comment",
        "SELECT a FROM 'a' WHERE a IS NULL",
        "SELECT a FROM 'a' WHERE a IN (1, 2)",
        "SELECT 12abc FROM 'a'",
        "SELECT a. FROM 'a'",
        "SELECT (a FROM 'a'",
        "SELECT CASE END FROM 'a'",
        "SELECT @undefined FROM 'a'",
        "SELECT * FROM ''",
        "SELECT * FROM 'a/+b'",
        "SELECT * FROM '$share/g/a'",
        "SELECT * FROM 'x' WHERE",
        "SELECT VALUE a AS b FROM 'a'",
    ] {
        assert!(parse(sql, V2).is_err(), "{sql} parsed");
    }
}

#[test]
fn accepted_syntax() {
    for sql in [
        "SELECT * FROM 'a'",
        "SELECT *",
        "SELECT a FROM a/b/#",
        "SELECT a FROM \"a/b\"",
        "SELECT a != 1 AS x FROM 'a'",
        "SELECT a <> 1 AS x FROM 'a'",
        "SELECT a['k'][0].b AS x FROM 'a'",
        "SELECT CASE WHEN a > 1 THEN 'big' ELSE 'small' END AS size FROM 'a'",
        "SELECT 'it''s' AS s, \"dq\" AS d FROM 'a'",
        "SELECT -a, - -1, NOT NOT true FROM 'a'",
        "SELECT 1.5e3, 2E-2, 7 FROM 'a'",
        "SELECT a AS 'weird-key' FROM 'a'",
        "SET @a = 1, @b = @a + 1 SELECT @b FROM 'a'",
        "SELECT * FROM '$aws/things/+/shadow/update/accepted'",
        "SELECT * FROM '$aws/rules/my_rule'",
        "  SELECT\n\t*\nFROM\n'a'  ",
    ] {
        if let Err(e) = parse(sql, V2) {
            panic!("{sql}: {e}");
        }
    }
}

#[test]
fn value_keyword_versus_a_field_called_value() {
    assert_eq!(eval_in(V2, "value", r#"{"value": 3}"#), Some(json!(3)));
    let out = |sql: &str| run(V2, sql, br#"{"value": 3, "x": 4}"#);
    assert_eq!(
        out("SELECT value FROM 'a/b'"),
        Some(roost_sql::Output::Json(json!({"value": 3})))
    );
    assert_eq!(
        out("SELECT value, x FROM 'a/b'"),
        Some(roost_sql::Output::Json(json!({"value": 3, "x": 4})))
    );
    assert_eq!(
        out("SELECT (value) - 1 AS v FROM 'a/b'"),
        Some(roost_sql::Output::Json(json!({"v": 2})))
    );
    assert_eq!(
        out("SELECT VALUE -x FROM 'a/b'"),
        Some(roost_sql::Output::Json(json!(-4)))
    );
    assert_eq!(
        out("SELECT VALUE [x, value] FROM 'a/b'"),
        Some(roost_sql::Output::Json(json!([4, 3])))
    );
    assert_eq!(
        out("SELECT value * 2 AS v FROM 'a/b'"),
        Some(roost_sql::Output::Json(json!({"v": 6})))
    );
    assert_eq!(
        out("SELECT VALUE x FROM 'a/b'"),
        Some(roost_sql::Output::Json(json!(4)))
    );
    assert_eq!(
        out("SELECT VALUE (value) FROM 'a/b'"),
        Some(roost_sql::Output::Json(json!(3)))
    );
    assert_eq!(
        out("SELECT VALUE * FROM 'a/b'"),
        Some(roost_sql::Output::Json(json!({"value": 3, "x": 4})))
    );
}

#[test]
fn nesting_is_bounded_without_overflowing_the_stack() {
    let deep = format!(
        "SELECT {}1{} FROM 'a'",
        "(".repeat(10_000),
        ")".repeat(10_000)
    );
    assert!(matches!(
        parse(&deep, V2).unwrap_err().kind,
        SqlErrorKind::TooDeep(_)
    ));
    let chain = format!("SELECT 1{} FROM 'a'", " + 1".repeat(10_000));
    assert!(matches!(
        parse(&chain, V2).unwrap_err().kind,
        SqlErrorKind::TooDeep(_)
    ));
    let negs = format!("SELECT {}1 FROM 'a'", "-".repeat(10_000));
    assert!(matches!(
        parse(&negs, V2).unwrap_err().kind,
        SqlErrorKind::TooDeep(_)
    ));
    let arrays = format!(
        "SELECT {}{} FROM 'a'",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    assert!(matches!(
        parse(&arrays, V2).unwrap_err().kind,
        SqlErrorKind::TooDeep(_)
    ));
    // A long but reasonable chain is fine.
    let ok = format!("SELECT 0{} AS n FROM 'a'", " + 1".repeat(200));
    assert_eq!(
        run(V2, &ok, b"{}"),
        Some(roost_sql::Output::Json(json!({"n": 200})))
    );
    let long = format!("SELECT '{}' FROM 'a'", "x".repeat(300 * 1024));
    assert!(matches!(
        parse(&long, V2).unwrap_err().kind,
        SqlErrorKind::TooLong(_)
    ));
}

#[test]
fn display_round_trips() {
    for sql in [
        "SELECT * FROM 'abcde-12345/+/audit'",
        "SELECT message AS msg, topic(1) AS tenant_id FROM '+/audit'",
        "SELECT VALUE -x FROM 'a'",
        "SELECT VALUE [1, 'two', {'k': 3.50}] FROM 'a'",
        "SELECT a.b[0].c AS x.y, 'it''s\\n' AS 'odd key' FROM 'a' WHERE NOT (a > 1 AND b <> 'x') OR c = NULL",
        "SET @v = cast(a AS Decimal) SELECT CASE @v WHEN 1 THEN 'one' ELSE 'many' END AS k FROM 'a/#'",
        "SELECT (SELECT VALUE n FROM e WHERE v > 1) AS sensors, regexp_replace(s, '\\d+', '#') FROM 'x'",
        "SELECT value, -(-1), 1e-7, 12345678901234567890123 FROM 'a'",
        "SELECT (value[0]), value.x FROM 'a'",
        "SELECT * FROM 'a' WHERE CASE WHEN x THEN true END",
    ] {
        let first = parse(sql, V2).unwrap_or_else(|e| panic!("{sql}: {e}"));
        let printed = first.to_string();
        let second = parse(&printed, V2).unwrap_or_else(|e| panic!("{printed}: {e}"));
        assert_eq!(second.to_string(), printed, "{sql}");
    }
}

#[test]
fn statements_and_templates_can_be_shared_across_threads() {
    fn shareable<T: Send + Sync + Clone + 'static>() {}
    shareable::<roost_sql::Statement>();
    shareable::<roost_sql::Template>();
    let statement = parse(
        "SELECT upper(a) AS u FROM 'a/b' WHERE regexp_matches(a, '^x')",
        V2,
    )
    .unwrap();
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let statement = statement.clone();
            std::thread::spawn(move || {
                let payload = format!(r#"{{"a": "x{i}"}}"#);
                statement.evaluate(payload.as_bytes(), &ctx("a/b")).unwrap()
            })
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(
            h.join().unwrap(),
            Some(roost_sql::Output::Json(json!({"u": format!("X{i}")})))
        );
    }
}
