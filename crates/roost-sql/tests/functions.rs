//! The function library, family by family, beyond the documented examples in
//! `cases.json`: argument conversions, Undefined for bad arguments, bounds.

mod support;

use serde_json::json;
use support::*;

#[test]
fn math() {
    assert_eq!(v2("abs(-2.5)"), Some(json!(2.5)));
    assert_eq!(v2("abs('x')"), None);
    assert_eq!(v2("sqrt(-1)"), None);
    assert_eq!(v2("ln(-1)"), None);
    assert_eq!(v2("power(10, 400)"), None);
    assert_eq!(v2("power('2', '10')"), Some(json!(1024)));
    assert_eq!(v2("exp(true)"), None);
    assert_eq!(v2("ceil(5)"), Some(json!(5)));
    assert_eq!(v2("ceil('1.1')"), Some(json!(2)));
    assert_eq!(v2("floor(-0.5)"), Some(json!(-1)));
    assert_eq!(v2("round(2.5)"), Some(json!(3)));
    assert_eq!(v2("round(-2.5)"), Some(json!(-3)));
    assert_eq!(v2("round(NULL)"), None);
    assert_eq!(v2("sign(0.0)"), Some(json!(0)));
    assert_eq!(v2("sign('3')"), Some(json!(1)));
    assert_eq!(v2("mod(-8, 3)"), Some(json!(-2)));
    assert_eq!(v2("mod(8.5, 3)"), Some(json!(2.5)));
    assert_eq!(v2("mod(8, 0)"), None);
    assert_eq!(v2("trunc(-2.789, 1)"), Some(json!(-2.7)));
    assert_eq!(v2("trunc(2.789, -3)"), Some(json!(2)));
    assert_eq!(v2("trunc(2.789, 99)"), Some(json!(2.789)));
    assert_eq!(v2("trunc(7, 2)"), Some(json!(7)));
    assert_eq!(v2("nanvl(NULL, 1)"), Some(json!(1)));
    assert_eq!(v2("nanvl('s', 1)"), Some(json!("s")));
    assert_eq!(v2("bitand(13.9, '5')"), Some(json!(5)));
    assert_eq!(v2("bitor(true, 1)"), None);
    assert_eq!(v2("bitnot(-1)"), Some(json!(0)));
    assert_eq!(v2("atan2(0, -1)"), Some(json!(std::f64::consts::PI)));
}

#[test]
fn strings() {
    assert_eq!(v2("chr(48)"), Some(json!("0")));
    assert_eq!(v2("chr(65.9)"), Some(json!("A")));
    assert_eq!(v2("chr(200)"), None);
    assert_eq!(v2("chr(-1)"), None);
    assert_eq!(v2("concat('a')"), Some(json!("a")));
    assert_eq!(v2("concat(1, 2, 3)"), Some(json!("123")));
    assert_eq!(v2("concat('a', NULL)"), None);
    assert_eq!(v2("concat()"), None);
    assert_eq!(v2("concat([1], [[2]])"), Some(json!([1, [2]])));
    assert_eq!(v2("endswith(123, 3)"), Some(json!(true)));
    assert_eq!(v2("startswith(NULL, 'a')"), None);
    assert_eq!(v2("indexof('héllo', 'l')"), Some(json!(2)));
    assert_eq!(v2("indexof('abc', '')"), Some(json!(0)));
    assert_eq!(v2("length('héllo')"), Some(json!(5)));
    assert_eq!(v2("numbytes('héllo')"), Some(json!(6)));
    assert_eq!(v2("length(NULL)"), None);
    assert_eq!(v2("upper('straße')"), Some(json!("STRASSE")));
    assert_eq!(v2("lower(1.5)"), Some(json!("1.5")));
    assert_eq!(v2("lpad('a', -3)"), Some(json!("a")));
    assert_eq!(v2("length(lpad('a', 5000))"), Some(json!(1001)));
    assert_eq!(v2("rpad('a', '2')"), Some(json!("a  ")));
    assert_eq!(v2("trim('\t x \n')"), Some(json!("x")));
    assert_eq!(v2("ltrim(5)"), Some(json!("5")));
    assert_eq!(v2("replace('aaa', 'a', 'bb')"), Some(json!("bbbbbb")));
    assert_eq!(v2("replace('abc', '', '-')"), Some(json!("-a-b-c-")));
    assert_eq!(v2("replace(12321, 2, 'x')"), Some(json!("1x3x1")));
    assert_eq!(v2("substring('héllo', 1, 3)"), Some(json!("él")));
    assert_eq!(v2("substring('abc', 1, 'x')"), None);
    assert_eq!(v2("get('abc', 1)"), Some(json!("b")));
    assert_eq!(v2("get('abc', 3)"), None);
    assert_eq!(v2("get({'a': 1}, 1)"), None);
    assert_eq!(v2("get([1, 2], -1)"), None);
    assert_eq!(v2("get(5, 0)"), None);
    assert_eq!(
        eval_in(V2, "get(*, 'my key')", r#"{"my key": 3}"#),
        Some(json!(3))
    );
    assert_eq!(eval_in(V2, "a['b']", r#"{"a": {"b": 4}}"#), Some(json!(4)));
}

#[test]
fn regular_expressions() {
    assert_eq!(v2("regexp_matches('abc', '^b')"), Some(json!(false)));
    assert_eq!(v2("regexp_matches('abc123', '\\d+')"), Some(json!(true)));
    assert_eq!(v2("regexp_matches('abab', '(ab)\\1')"), Some(json!(true)));
    assert_eq!(
        v2("regexp_matches('price: 5', '(?<=price: )\\d')"),
        Some(json!(true))
    );
    assert_eq!(v2("regexp_substr('abc', 'x')"), None);
    assert_eq!(v2("regexp_substr('a1b22', '[0-9]+')"), Some(json!("1")));
    assert_eq!(
        v2("regexp_replace('a1b22', '[0-9]', '#')"),
        Some(json!("a#b##"))
    );
    assert_eq!(
        v2("regexp_replace('abc', 'x*', '-')"),
        Some(json!("-a-b-c-"))
    );
    assert_eq!(
        v2("regexp_replace('2020-04-03', '(\\d+)-(\\d+)-(\\d+)', '$3/$2/$1')"),
        Some(json!("03/04/2020"))
    );
    assert_eq!(v2("regexp_replace('ab', '(a)', '$10')"), Some(json!("a0b")));
    assert_eq!(
        v2("regexp_replace('ab', '(?<first>a)', '[${first}]')"),
        Some(json!("[a]b"))
    );
    assert_eq!(v2("regexp_replace('ab', 'a', '\\$1')"), Some(json!("$1b")));
    assert_eq!(v2("regexp_replace('ab', 'a', '$2')"), None);
    assert_eq!(v2("regexp_replace('ab', 'a', '$')"), None);
    // A pattern from the payload is compiled per message; a bad one is
    // Undefined, not an error.
    assert_eq!(
        eval_in(V2, "regexp_matches('abc', p)", r#"{"p": "b+"}"#),
        Some(json!(true))
    );
    assert_eq!(
        eval_in(V2, "regexp_matches('abc', p)", r#"{"p": "("}"#),
        None
    );
    // A literal one that cannot compile is rejected up front.
    assert!(
        parse_error(V2, "SELECT regexp_matches(a, '(') AS m FROM 't'")
            .contains("invalid regular expression")
    );
}

#[test]
fn regex_backtracking_is_bounded() {
    // Patterns that backtrack exponentially on a near-miss give up after a
    // bounded number of steps: the rule goes on (false or Undefined) instead
    // of hanging on one message.
    let s = "a".repeat(64);
    let payload = format!(r#"{{"s": "{s}!"}}"#);
    for pattern in ["^(a|a?)+(?=b)", "^(a+)+\\1b", "^(a*)*(?!a)b"] {
        let started = std::time::Instant::now();
        let got = eval_in(V2, &format!("regexp_matches(s, '{pattern}')"), &payload);
        assert!(
            matches!(got, None | Some(serde_json::Value::Bool(false))),
            "{pattern}: {got:?}"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "{pattern} took {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn encodings_and_hashes() {
    assert_eq!(v2("encode(12, 'base64')"), Some(json!("MTI=")));
    assert_eq!(v2("encode('x', 'hex')"), None);
    assert_eq!(v2("decode('aGk', 'base64')"), Some(json!("hi")));
    assert_eq!(v2("decode('WzEsMi4wXQ==', 'base64')"), Some(json!([1, 2])));
    assert_eq!(
        v2("decode(encode('{\"a\": {\"b\": 7}}', 'base64'), 'base64').a.b"),
        Some(json!(7))
    );
    assert_eq!(v2("decode('/w==', 'base64')"), Some(json!("\u{fffd}")));
    assert_eq!(
        eval_in(V2, "encode(*, 'base64')", r#"{"a":1}"#),
        Some(json!("eyJhIjoxfQ=="))
    );
    assert_eq!(v2("md5(NULL)"), None);
    assert_eq!(
        v2("sha256(1)"),
        Some(json!(
            "6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b"
        ))
    );
    assert!(
        parse_error(V2, "SELECT decode(*, 'proto', 'b', 'k', 'f', 'm') FROM 't'")
            .contains("not supported by Roost")
    );
}

#[test]
fn transform() {
    assert_eq!(
        v2("transform('enrichArray', {'k': 1}, [{'a': 1}, 5, {'k': 0}])"),
        Some(json!([{"a": 1, "k": 1}, {"k": 1}]))
    );
    assert_eq!(v2("transform('other', {'k': 1}, [{'a': 1}])"), None);
    assert_eq!(v2("transform('enrichArray', 1, [{'a': 1}])"), None);
    let big = format!(
        r#"{{"o": {{"pad": "{}"}}, "a": [{{}}, {{}}, {{}}]}}"#,
        "x".repeat(50_000)
    );
    assert_eq!(eval_in(V2, "transform('enrichArray', o, a)", &big), None);
}

#[test]
fn time_functions() {
    assert_eq!(v2("parse_time('yyyy-MM-dd', 0)"), Some(json!("1970-01-01")));
    assert_eq!(
        v2("parse_time('HH:mm Z', 0, '+05:30')"),
        Some(json!("05:30 +0530"))
    );
    assert_eq!(
        v2("parse_time('EEEE d MMMM yyyy', 1585903518000, 'Europe/Paris')"),
        Some(json!("Friday 3 April 2020"))
    );
    assert_eq!(v2("parse_time('yyyy', 0, 'Not/AZone')"), None);
    assert_eq!(v2("parse_time('qqq', 0)"), None);
    assert_eq!(v2("parse_time('yyyy', 'soon')"), None);
    assert_eq!(
        v2("time_to_epoch('2020-04-03T08:45:18Z', \"yyyy-MM-dd'T'HH:mm:ssX\")"),
        Some(json!(1585903518000i64))
    );
    assert_eq!(
        v2("time_to_epoch('03/04/2020 10:45 PM +0200', 'dd/MM/yyyy hh:mm a Z')"),
        Some(json!(1585946700000i64))
    );
    assert_eq!(v2("time_to_epoch('1970-001', 'yyyy-DDD')"), Some(json!(0)));
    assert_eq!(v2("time_to_epoch('garbage', 'yyyy')"), None);
    // Round trip through both.
    assert_eq!(
        v2("time_to_epoch(parse_time('yyyy-MM-dd HH:mm:ss.SSS', 1196705730592), 'yyyy-MM-dd HH:mm:ss.SSS')"),
        Some(json!(1196705730592i64))
    );
}

#[test]
fn get_or_default() {
    assert_eq!(v2("get_or_default(missing, 'd')"), Some(json!("d")));
    assert_eq!(v2("get_or_default(NULL, 'd')"), Some(json!("d")));
    assert_eq!(v2("get_or_default(0, 'd')"), Some(json!(0)));
}

#[test]
fn version_gated_functions() {
    for f in [
        "indexof('a', 'a')",
        "length('a')",
        "numbytes('a')",
        "isUndefined(1)",
        "encode('a', 'base64')",
        "decode('YQ==', 'base64')",
        "transform('enrichArray', 1, 2)",
        "parse_time('y', 0)",
        "time_to_epoch('1', 'y')",
        "get_mqtt_property('content_type')",
        "get_user_properties('k')",
    ] {
        let sql = format!("SELECT {f} AS x FROM 'a'");
        assert!(
            parse_error(V1, &sql).contains("requires SQL version 2016-03-23"),
            "{f}"
        );
        assert!(roost_sql::parse(&sql, V2).is_ok(), "{f}");
    }
    for f in [
        "abs(1)",
        "lower('a')",
        "isNull(1)",
        "md5('a')",
        "topic()",
        "sql_version()",
        "get_or_default(1, 2)",
    ] {
        let sql = format!("SELECT {f} AS x FROM 'a'");
        assert!(roost_sql::parse(&sql, V1).is_ok(), "{f}");
    }
    assert_eq!(v1("sql_version()"), Some(json!("2015-10-08")));
}

#[test]
fn function_names_ignore_case() {
    assert_eq!(v2("ISNULL(NULL)"), Some(json!(true)));
    assert_eq!(v2("IsUndefined(missing)"), Some(json!(true)));
    assert_eq!(v2("Upper('a')"), Some(json!("A")));
}

#[test]
fn aws_service_functions_are_named_in_the_error() {
    for (name, args) in [
        ("get_dynamodb", "'t', 'k', 'v', 'arn'"),
        ("aws_lambda", "'arn', *"),
        ("get_secret", "'id', 'SecretString', 'arn'"),
        ("get_thing_shadow", "'thing', 'arn'"),
        ("get_registry_data", "'describeThing', 'thing', 'arn'"),
        ("machinelearning_predict", "'model', 'arn', *"),
    ] {
        let sql = format!("SELECT {name}({args}) AS x FROM 'a'");
        let err = roost_sql::parse(&sql, V2).unwrap_err();
        assert_eq!(err.unsupported_function(), Some(name));
        assert!(
            err.to_string()
                .contains(&format!("not supported by Roost: {name}")),
            "{err}"
        );
    }
}
