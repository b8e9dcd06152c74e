//! Substitution templates.

mod support;

use roost_sql::{parse, parse_template, Context};
use support::*;

fn render(text: &str, payload: &str) -> String {
    parse_template(text, V2)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .render(payload.as_bytes(), &ctx("some/topic"))
        .unwrap()
}

#[test]
fn documented_templates() {
    let ctx = Context {
        client_id: Some("c1"),
        ..Context::new("some/topic", 1_460_685_389_000)
    };
    let t = parse_template("${topic()}/${timestamp()}", V2).unwrap();
    assert_eq!(t.render(b"{}", &ctx).unwrap(), "some/topic/1460685389000");
    let t = parse_template("arn:aws:sns:us-east-1:123456789012:${topic()}", V1).unwrap();
    assert_eq!(
        t.render(b"{}", &ctx).unwrap(),
        "arn:aws:sns:us-east-1:123456789012:some/topic"
    );
    let t = parse_template(
        "${replace(topic(), '/', '-') + '-' + timestamp() + '-' + newuuid()}",
        V2,
    )
    .unwrap();
    let out = t.render(b"{}", &ctx).unwrap();
    assert!(out.starts_with("some-topic-1460685389000-"), "{out}");
    assert_eq!(out.len(), "some-topic-1460685389000-".len() + 36);
}

#[test]
fn values_render_as_text() {
    let payload =
        r#"{"s": "x", "i": 3, "d": 2.5, "b": true, "n": null, "a": [1, "q"], "o": {"k": 1}}"#;
    assert_eq!(
        render("${s}|${i}|${d}|${b}|${n}|${missing}|${a}|${o}", payload),
        "x|3|2.5|true|||[1,\"q\"]|{\"k\":1}"
    );
}

#[test]
fn literal_text_is_kept() {
    assert_eq!(render("no templates here", "{}"), "no templates here");
    assert!(parse_template("plain", V1).unwrap().is_constant());
    assert_eq!(
        render("$$aws/things/${s}/shadow/update", r#"{"s": "t1"}"#),
        "$$aws/things/t1/shadow/update"
    );
    assert_eq!(
        render("cost: $5 and {braces}", "{}"),
        "cost: $5 and {braces}"
    );
    assert_eq!(render("", "{}"), "");
    assert_eq!(render("${'}'}${ {'a': '}'}.a }", "{}"), "}}");
}

#[test]
fn templates_read_the_incoming_payload() {
    // Not the SELECT output: aliases are not visible.
    let statement = parse("SELECT a AS renamed FROM 't'", V2).unwrap();
    let t = statement.template("${renamed}-${a}").unwrap();
    assert_eq!(t.render(br#"{"a": 1}"#, &ctx("t")).unwrap(), "-1");
    // Binary payloads: fields are Undefined, so empty.
    assert_eq!(render("device/${device_id}", "\u{1}\u{2}"), "device/");
}

#[test]
fn set_variables_are_visible_to_statement_templates() {
    let statement = parse("SET @id = upper(device) SELECT * FROM 't'", V2).unwrap();
    let t = statement.template("devices/${@id}/${lower(@id)}").unwrap();
    assert_eq!(
        t.render(br#"{"device": "ab"}"#, &ctx("t")).unwrap(),
        "devices/AB/ab"
    );
    let err = parse_template("${@id}", V2).unwrap_err();
    assert!(err.to_string().contains("unknown variable @id"), "{err}");
}

#[test]
fn template_errors_say_where() {
    let err = parse_template("a/${topic(}", V2).unwrap_err();
    assert_eq!((err.line, err.column), (1, 11));
    let err = parse_template("a/${topic()", V2).unwrap_err();
    assert!(
        err.to_string()
            .contains("unterminated substitution template"),
        "{err}"
    );
    let err = parse_template("x\n${get_secret('s', 'SecretString', 'arn')}", V2).unwrap_err();
    assert_eq!(err.line, 2);
    assert_eq!(err.unsupported_function(), Some("get_secret"));
    assert!(parse_template("${}", V2).is_err());
}
