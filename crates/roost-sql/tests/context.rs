//! Context functions: what they read from the message, and the
//! non-deterministic ones checked by their properties.

mod support;

use std::collections::HashSet;

use roost_sql::{parse, Context, MqttProperties, Output};
use serde_json::{json, Value};
use support::*;

fn eval_with(ctx: &Context<'_>, expr: &str) -> Option<Value> {
    let sql = format!("SELECT ({expr}) AS r FROM '#'");
    let statement = parse(&sql, V2).unwrap();
    match statement.evaluate(b"{}", ctx).unwrap() {
        Some(Output::Json(Value::Object(mut map))) => map.remove("r"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn topic_levels() {
    let ctx = ctx("foo/bar//baz");
    assert_eq!(eval_with(&ctx, "topic()"), Some(json!("foo/bar//baz")));
    assert_eq!(eval_with(&ctx, "topic(1)"), Some(json!("foo")));
    assert_eq!(eval_with(&ctx, "topic(3)"), Some(json!("")));
    assert_eq!(eval_with(&ctx, "topic(4)"), Some(json!("baz")));
    assert_eq!(eval_with(&ctx, "topic(5)"), None);
    assert_eq!(eval_with(&ctx, "topic(0)"), None);
    assert_eq!(eval_with(&ctx, "topic(-1)"), None);
    assert_eq!(eval_with(&ctx, "topic('2')"), Some(json!("bar")));
    assert_eq!(eval_with(&ctx, "topic(1.6)"), Some(json!("bar")));
    assert_eq!(eval_with(&ctx, "topic('x')"), None);
    assert_eq!(eval_with(&ctx, "topic(1, 2)"), None);
}

#[test]
fn message_identity() {
    let user_properties = vec![
        ("k".to_string(), "v1".to_string()),
        ("other".to_string(), "x".to_string()),
        ("k".to_string(), "v2".to_string()),
    ];
    let ctx = Context {
        topic: "t",
        client_id: Some("dev-1"),
        principal: Some("0123abcd"),
        timestamp_ms: 1_700_000_000_123,
        trace_id: Some("7e146a2c-95b5-6caf-98b9-50e3969734c7"),
        account_id: Some("123456789012"),
        source_ip: Some("203.0.113.7"),
        mqtt: MqttProperties {
            payload_format_indicator: Some(1),
            content_type: Some("application/json"),
            response_topic: Some("reply/here"),
            correlation_data: Some(b"\x01\x02"),
            user_properties: &user_properties,
        },
    };
    assert_eq!(eval_with(&ctx, "clientid()"), Some(json!("dev-1")));
    assert_eq!(eval_with(&ctx, "principal()"), Some(json!("0123abcd")));
    assert_eq!(
        eval_with(&ctx, "timestamp()"),
        Some(json!(1_700_000_000_123i64))
    );
    assert_eq!(
        eval_with(&ctx, "traceid()"),
        Some(json!("7e146a2c-95b5-6caf-98b9-50e3969734c7"))
    );
    assert_eq!(eval_with(&ctx, "accountid()"), Some(json!("123456789012")));
    assert_eq!(eval_with(&ctx, "sourceip()"), Some(json!("203.0.113.7")));
    assert_eq!(
        eval_with(&ctx, "get_mqtt_property('content_type')"),
        Some(json!("application/json"))
    );
    assert_eq!(
        eval_with(&ctx, "get_mqtt_property('format_indicator')"),
        Some(json!("UTF8_DATA"))
    );
    assert_eq!(
        eval_with(&ctx, "get_mqtt_property('response_topic')"),
        Some(json!("reply/here"))
    );
    assert_eq!(
        eval_with(&ctx, "get_mqtt_property('correlation_data')"),
        Some(json!("AQI="))
    );
    assert_eq!(eval_with(&ctx, "get_mqtt_property('nope')"), None);
    assert_eq!(
        eval_with(&ctx, "get_user_properties('k')"),
        Some(json!(["v1", "v2"]))
    );
    assert_eq!(eval_with(&ctx, "get_user_properties('missing')"), None);

    let bare = Context::new("t", 0);
    assert_eq!(eval_with(&bare, "clientid()"), Some(json!("n/a")));
    for f in [
        "principal()",
        "traceid()",
        "accountid()",
        "sourceip()",
        "get_mqtt_property('content_type')",
    ] {
        assert_eq!(eval_with(&bare, f), None, "{f}");
    }
}

#[test]
fn timestamp_is_one_value_per_message() {
    let ctx = ctx("t");
    let statement = parse("SELECT timestamp() AS a, timestamp() AS b FROM 't'", V1).unwrap();
    let Some(Output::Json(out)) = statement.evaluate(b"{}", &ctx).unwrap() else {
        panic!()
    };
    assert_eq!(out["a"], out["b"]);
    assert_eq!(out["a"], json!(ctx.timestamp_ms));
    let template = statement.template("${timestamp()}").unwrap();
    assert_eq!(
        template.render(b"{}", &ctx).unwrap(),
        ctx.timestamp_ms.to_string()
    );
}

#[test]
fn newuuid_is_a_fresh_v4_uuid_per_call() {
    let statement = parse("SELECT newuuid() AS a, newuuid() AS b FROM 't'", V1).unwrap();
    let mut seen = HashSet::new();
    for _ in 0..100 {
        let Some(Output::Json(out)) = statement.evaluate(b"", &ctx("t")).unwrap() else {
            panic!()
        };
        for key in ["a", "b"] {
            let id = out[key].as_str().unwrap().to_string();
            assert_eq!(id.len(), 36);
            let parsed = uuid::Uuid::parse_str(&id).unwrap();
            assert_eq!(parsed.get_version_num(), 4);
            assert_eq!(id, id.to_lowercase());
            assert!(seen.insert(id), "repeated uuid");
        }
    }
}

#[test]
fn rand_is_uniform_in_the_unit_interval() {
    let statement = parse("SELECT rand() AS r FROM 't'", V1).unwrap();
    let mut sum = 0.0;
    let n = 2000;
    for _ in 0..n {
        let Some(Output::Json(out)) = statement.evaluate(b"", &ctx("t")).unwrap() else {
            panic!()
        };
        let r = out["r"].as_f64().unwrap();
        assert!((0.0..1.0).contains(&r), "{r}");
        sum += r;
    }
    let mean = sum / f64::from(n);
    assert!((0.4..0.6).contains(&mean), "mean {mean}");
}

#[test]
fn basic_ingest_topic_is_what_the_caller_passes() {
    // The rules engine strips `$aws/rules/<rule>/`; topic() sees the rest.
    let statement = parse("SELECT topic() AS t, topic(1) AS one FROM 'ignored'", V1).unwrap();
    let out = statement.evaluate(b"{}", &ctx("sensors/7")).unwrap();
    assert_eq!(
        out,
        Some(Output::Json(json!({"t": "sensors/7", "one": "sensors"})))
    );
}
