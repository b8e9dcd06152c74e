//! What one authorization decision costs on the broker's hot path.
//!
//! Method: the reference scenario's second policy (the one devices run with),
//! prepared once for the scenario's device, then `decide` for the requests the broker
//! makes most: an allowed publish, a denied publish (another tenant's topic), a
//! connect and a jobs subscribe. `prepare` is measured too, since it runs once per
//! CONNECT. ARNs are built outside the timed loop, as the broker builds each once per
//! packet. Run: `cargo bench -p roost-policy --bench evaluate -- --quick`.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use roost_policy::{
    client_arn, parse_policy, topic_arn, topicfilter_arn, Action, ConnectionContext, Decision,
    NamedPolicy, PreparedPolicies, Request, ThingContext,
};

const POLICY: &str = include_str!("../tests/fixtures/iot-webinar-policy-v2.json");
const REGION: &str = "us-east-1";
const ACCOUNT: &str = "000000000000";

fn context() -> ConnectionContext {
    ConnectionContext {
        region: REGION.into(),
        account: ACCOUNT.into(),
        client_id: Some("iot-webinar-device".into()),
        source_ip: Some("198.51.100.4".parse().unwrap()),
        domain_name: Some("localhost".into()),
        thing: Some(ThingContext {
            name: "iot-webinar-device".into(),
            type_name: Some("iot-webinar-type".into()),
            attributes: BTreeMap::from([("Owner".to_string(), "abcde-12345".to_string())]),
        }),
        certificate: None,
    }
}

fn bench(c: &mut Criterion) {
    let policy = Arc::new(parse_policy(POLICY).unwrap());
    let policies = vec![NamedPolicy {
        name: "iot-webinar-policy".into(),
        policy,
    }];
    let ctx = context();
    let prepared = PreparedPolicies::prepare(policies.clone(), &ctx);

    let allowed = topic_arn(REGION, ACCOUNT, "abcde-12345/iot-webinar-device/audit");
    let denied = topic_arn(REGION, ACCOUNT, "other-tenant/iot-webinar-device/audit");
    let connect = client_arn(REGION, ACCOUNT, "iot-webinar-device");
    let subscribe = topicfilter_arn(REGION, ACCOUNT, "$aws/things/iot-webinar-device/jobs/get/+");
    let cases = [
        (
            "decide/publish allowed",
            Action::Publish,
            &allowed,
            Decision::Allowed,
        ),
        (
            "decide/publish denied",
            Action::Publish,
            &denied,
            Decision::ImplicitDeny,
        ),
        (
            "decide/connect",
            Action::Connect,
            &connect,
            Decision::Allowed,
        ),
        (
            "decide/subscribe jobs",
            Action::Subscribe,
            &subscribe,
            Decision::Allowed,
        ),
    ];
    for (name, action, resource, expected) in cases {
        let request = Request::new(action, resource);
        assert_eq!(prepared.decide(&request), expected, "{name}");
        c.bench_function(name, |b| b.iter(|| prepared.decide(black_box(&request))));
    }

    c.bench_function("prepare/scenario policy", |b| {
        b.iter(|| PreparedPolicies::prepare(black_box(policies.clone()), black_box(&ctx)))
    });
    c.bench_function("parse/scenario policy", |b| {
        b.iter(|| parse_policy(black_box(POLICY)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
