//! What evaluating one rule on one message costs.
//!
//! Method: the scenario's audit message (a five-member JSON object, 111
//! bytes) through three rules, parsed once outside the timed loop: the
//! scenario's `SELECT *` passthrough (payload parsed, moved into the
//! output), the bonus rule (two fields picked, `topic(1)`), and a
//! function-heavy rule (arithmetic, string functions, a hash, CASE, a
//! literal regular expression, WHERE). Each timed call is one
//! `Statement::evaluate`, output dropped included. A fourth figure renders an
//! S3-style key template. Target: at least 1,000,000 evaluations per second
//! on one core for the first rule (under 1 µs each).
//! Run: `cargo bench -p roost-sql --bench evaluate -- --quick`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use roost_sql::{parse, Context, SqlVersion};

const AUDIT: &[u8] = br#"{"message": "intrusion attempt", "source_ip": "203.0.113.7", "port": 3389, "service": "rdp", "timestamp": 1764499200}"#;
const TOPIC: &str = "abcde-12345/sensor-1/audit";

fn bench(c: &mut Criterion) {
    let ctx = Context {
        client_id: Some("sensor-1"),
        ..Context::new(TOPIC, 1_764_499_200_123)
    };
    let rules = [
        ("select_star", "SELECT * FROM 'abcde-12345/+/audit'", SqlVersion::V2015_10_08),
        (
            "bonus_fields_and_topic",
            "SELECT message as msg, topic(1) as tenant_id FROM '+/+/audit'",
            SqlVersion::V2016_03_23,
        ),
        (
            "function_heavy",
            "SELECT upper(service) AS svc, concat(source_ip, ':', port) AS endpoint, \
             sha256(message) AS digest, port * 2 + 1 AS p, \
             CASE service WHEN 'rdp' THEN 'remote-desktop' WHEN 'ssh' THEN 'shell' ELSE 'other' END AS kind, \
             regexp_matches(source_ip, '^203\\.0\\.113\\.') AS test_net, \
             substring(message, 0, 9) AS head, timestamp * 1000 AS ms, topic(1) AS tenant \
             FROM '+/+/audit' WHERE port > 1024 AND startswith(message, 'intrusion')",
            SqlVersion::V2016_03_23,
        ),
    ];
    let mut group = c.benchmark_group("evaluate");
    group.throughput(Throughput::Elements(1));
    for (name, sql, version) in rules {
        let statement = parse(sql, version).expect("benchmark SQL parses");
        assert!(statement.matches_topic(TOPIC));
        assert!(statement.evaluate(AUDIT, &ctx).unwrap().is_some());
        group.bench_function(name, |b| {
            b.iter(|| statement.evaluate(black_box(AUDIT), black_box(&ctx)))
        });
    }
    let statement = parse("SELECT * FROM '+/+/audit'", SqlVersion::V2016_03_23).unwrap();
    let template = statement
        .template("${topic(1)}/audit/${timestamp()}-${port}.json")
        .unwrap();
    group.bench_function("template_s3_key", |b| {
        b.iter(|| template.render(black_box(AUDIT), black_box(&ctx)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
