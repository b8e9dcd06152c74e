//! Arbitrary bytes as a policy document: parsing must never panic, and whatever
//! parses must evaluate without panicking, with `decide` and `evaluate` agreeing.

#![no_main]

use std::collections::BTreeMap;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use roost_policy::{
    client_arn, parse_policy, thing_arn, topic_arn, topicfilter_arn, Action, CertificateContext,
    ConnectionContext, NamedPolicy, PreparedPolicies, Request, ThingContext,
};

const REGION: &str = "us-east-1";
const ACCOUNT: &str = "000000000000";
const CLIENT: &str = "iot-webinar-device";

fn context() -> ConnectionContext {
    ConnectionContext {
        region: REGION.into(),
        account: ACCOUNT.into(),
        client_id: Some(CLIENT.into()),
        source_ip: Some("198.51.100.4".parse().unwrap()),
        domain_name: Some("localhost".into()),
        thing: Some(ThingContext {
            name: CLIENT.into(),
            type_name: Some("iot-webinar-type".into()),
            attributes: BTreeMap::from([("Owner".to_string(), "abcde-12345".to_string())]),
        }),
        certificate: Some(CertificateContext {
            id: "0".repeat(64),
            serial_number: "10525622389124227206".into(),
            subject: vec![
                ("CommonName".into(), CLIENT.into()),
                ("Country".into(), "US".into()),
                ("Country".into(), "CA".into()),
            ],
            issuer: vec![("CommonName".into(), "Roost Root CA".into())],
            subject_alt_names: vec![("DNSName".into(), "device.example.com".into())],
            issuer_alt_names: vec![],
        }),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(policy) = parse_policy(text) else {
        return;
    };
    let ctx = context();
    let prepared = PreparedPolicies::prepare(
        vec![NamedPolicy {
            name: "fuzzed".into(),
            policy: Arc::new(policy),
        }],
        &ctx,
    );
    let requests = [
        (Action::Connect, client_arn(REGION, ACCOUNT, CLIENT)),
        (
            Action::Publish,
            topic_arn(REGION, ACCOUNT, "abcde-12345/iot-webinar-device/audit"),
        ),
        (
            Action::Receive,
            topic_arn(REGION, ACCOUNT, "$aws/things/iot-webinar-device/jobs/get"),
        ),
        (
            Action::Subscribe,
            topicfilter_arn(REGION, ACCOUNT, "$aws/things/+/jobs/#"),
        ),
        (Action::GetThingShadow, thing_arn(REGION, ACCOUNT, CLIENT)),
    ];
    let connect_attributes: &[&str] = &["PersistentConnect", "LastWill"];
    let current_time: &[&str] = &["2024-06-01T12:00:00Z"];
    let context_values: &[(&str, &[&str])] = &[
        ("iot:ConnectAttributes", connect_attributes),
        ("aws:CurrentTime", current_time),
    ];
    for (action, resource) in &requests {
        for values in [&[][..], context_values] {
            let request = Request {
                action: *action,
                resource,
                context_values: values,
            };
            assert_eq!(
                prepared.decide(&request),
                prepared.evaluate(&request).decision
            );
        }
    }
});
