//! The reference scenario's two policies ("IoT Policy Creation" and "Policy Update"),
//! as a truth table: who may connect, publish, subscribe and receive.

use std::collections::BTreeMap;
use std::sync::Arc;

use roost_policy::{
    client_arn, parse_policy, topic_arn, topicfilter_arn, Action, ConnectionContext, Decision,
    NamedPolicy, PreparedPolicies, Request, ThingContext,
};

const V1: &str = include_str!("fixtures/iot-webinar-policy-v1.json");
const V2: &str = include_str!("fixtures/iot-webinar-policy-v2.json");
const REGION: &str = "us-east-1";
const ACCOUNT: &str = "000000000000";
const THING: &str = "iot-webinar-device";

fn policy(name: &str, document: &str) -> NamedPolicy {
    NamedPolicy {
        name: name.to_string(),
        policy: Arc::new(parse_policy(document).expect("scenario policy parses")),
    }
}

/// A connection with client id `client_id`; the thing is attached only when it is
/// the scenario's thing and `owner` is given.
fn connection(client_id: &str, owner: Option<&str>) -> ConnectionContext {
    let thing = (client_id == THING).then(|| ThingContext {
        name: THING.to_string(),
        type_name: Some("iot-webinar-type".to_string()),
        attributes: owner
            .map(|o| BTreeMap::from([("Owner".to_string(), o.to_string())]))
            .unwrap_or_default(),
    });
    ConnectionContext {
        region: REGION.into(),
        account: ACCOUNT.into(),
        client_id: Some(client_id.into()),
        source_ip: Some("198.51.100.4".parse().unwrap()),
        domain_name: Some("localhost".into()),
        thing,
        certificate: None,
    }
}

fn prepare(documents: &[(&str, &str)], ctx: &ConnectionContext) -> PreparedPolicies {
    PreparedPolicies::prepare(documents.iter().map(|(n, d)| policy(n, d)).collect(), ctx)
}

fn decide(p: &PreparedPolicies, action: Action, resource: &str) -> Decision {
    let request = Request::new(action, resource);
    let decision = p.decide(&request);
    assert_eq!(
        decision,
        p.evaluate(&request).decision,
        "{action} {resource}"
    );
    decision
}

fn topic(t: &str) -> String {
    topic_arn(REGION, ACCOUNT, t)
}

fn filter(f: &str) -> String {
    topicfilter_arn(REGION, ACCOUNT, f)
}

use Decision::{Allowed, ExplicitDeny, ImplicitDeny};

#[test]
fn v1_connect_only_as_the_thing() {
    let device = prepare(
        &[("iot-webinar-policy", V1)],
        &connection(THING, Some("abcde-12345")),
    );
    assert_eq!(
        decide(
            &device,
            Action::Connect,
            &client_arn(REGION, ACCOUNT, THING)
        ),
        Allowed
    );
    // Same certificate, another client id: the broker finds no thing of that name.
    let other = prepare(
        &[("iot-webinar-policy", V1)],
        &connection("other-device", None),
    );
    assert_eq!(
        decide(
            &other,
            Action::Connect,
            &client_arn(REGION, ACCOUNT, "other-device")
        ),
        ImplicitDeny
    );
    // Even a resource naming the thing does not help without the thing attached.
    assert_eq!(
        decide(&other, Action::Connect, &client_arn(REGION, ACCOUNT, THING)),
        ImplicitDeny
    );
    // A client id that differs from the connection's thing is not covered.
    assert_eq!(
        decide(
            &device,
            Action::Connect,
            &client_arn(REGION, ACCOUNT, "other-device")
        ),
        ImplicitDeny
    );
}

#[test]
fn v1_publish_only_to_own_tenant_audit_topic() {
    let p = prepare(
        &[("iot-webinar-policy", V1)],
        &connection(THING, Some("abcde-12345")),
    );
    let table = [
        ("abcde-12345/iot-webinar-device/audit", Allowed),
        ("abcde-12345/other-device/audit", ImplicitDeny),
        ("other-tenant/iot-webinar-device/audit", ImplicitDeny),
        ("abcde-12345/iot-webinar-device/other", ImplicitDeny),
        ("abcde-12345/iot-webinar-device/audit/more", ImplicitDeny),
        ("abcde-12345/+/audit", ImplicitDeny),
        ("ABCDE-12345/iot-webinar-device/audit", ImplicitDeny),
    ];
    for (t, expected) in table {
        assert_eq!(
            decide(&p, Action::Publish, &topic(t)),
            expected,
            "publish {t}"
        );
    }
    // v1 grants nothing else.
    assert_eq!(
        decide(
            &p,
            Action::Receive,
            &topic("abcde-12345/iot-webinar-device/audit")
        ),
        ImplicitDeny
    );
    assert_eq!(
        decide(
            &p,
            Action::Subscribe,
            &filter("$aws/things/iot-webinar-device/jobs/*")
        ),
        ImplicitDeny
    );
    assert_eq!(
        decide(
            &p,
            Action::RetainPublish,
            &topic("abcde-12345/iot-webinar-device/audit")
        ),
        ImplicitDeny
    );
}

#[test]
fn v2_jobs_topics_for_the_own_thing_only() {
    let p = prepare(
        &[("iot-webinar-policy", V2)],
        &connection(THING, Some("abcde-12345")),
    );
    let subscribe = [
        ("$aws/things/iot-webinar-device/jobs/*", Allowed),
        ("$aws/things/iot-webinar-device/jobs/get/+", Allowed),
        ("$aws/things/iot-webinar-device/jobs/notify-next", Allowed),
        (
            "$aws/things/iot-webinar-device/jobs/+/update/accepted",
            Allowed,
        ),
        ("$aws/things/iot-webinar-device/jobs/#", Allowed),
        ("$aws/things/other-device/jobs/*", ImplicitDeny),
        ("$aws/things/other-device/jobs/get/+", ImplicitDeny),
        ("$aws/things/+/jobs/#", ImplicitDeny),
        ("$aws/things/iot-webinar-device/#", ImplicitDeny),
        ("$aws/things/iot-webinar-device/shadow/get", ImplicitDeny),
        ("abcde-12345/iot-webinar-device/audit", ImplicitDeny),
    ];
    for (f, expected) in subscribe {
        assert_eq!(
            decide(&p, Action::Subscribe, &filter(f)),
            expected,
            "subscribe {f}"
        );
    }
    let publish_and_receive = [
        ("abcde-12345/iot-webinar-device/audit", Allowed),
        ("$aws/things/iot-webinar-device/jobs/get", Allowed),
        ("$aws/things/iot-webinar-device/jobs/start-next", Allowed),
        (
            "$aws/things/iot-webinar-device/jobs/job-1/update/accepted",
            Allowed,
        ),
        ("$aws/things/other-device/jobs/get", ImplicitDeny),
        ("abcde-12345/other-device/audit", ImplicitDeny),
    ];
    for (t, expected) in publish_and_receive {
        assert_eq!(
            decide(&p, Action::Publish, &topic(t)),
            expected,
            "publish {t}"
        );
        assert_eq!(
            decide(&p, Action::Receive, &topic(t)),
            expected,
            "receive {t}"
        );
    }
    // A topic filter resource is not a topic resource.
    assert_eq!(
        decide(
            &p,
            Action::Publish,
            &filter("$aws/things/iot-webinar-device/jobs/get")
        ),
        ImplicitDeny
    );
    assert_eq!(
        decide(&p, Action::Connect, &client_arn(REGION, ACCOUNT, THING)),
        Allowed
    );
}

#[test]
fn changed_owner_attribute_moves_the_tenant_topic() {
    let p = prepare(
        &[("iot-webinar-policy", V2)],
        &connection(THING, Some("fghij-67890")),
    );
    assert_eq!(
        decide(
            &p,
            Action::Publish,
            &topic("abcde-12345/iot-webinar-device/audit")
        ),
        ImplicitDeny
    );
    assert_eq!(
        decide(
            &p,
            Action::Publish,
            &topic("fghij-67890/iot-webinar-device/audit")
        ),
        Allowed
    );
}

#[test]
fn missing_owner_attribute_denies_the_audit_topic_but_not_the_jobs_topics() {
    let p = prepare(&[("iot-webinar-policy", V2)], &connection(THING, None));
    let e = p.evaluate(&Request::new(
        Action::Publish,
        &topic("abcde-12345/iot-webinar-device/audit"),
    ));
    assert_eq!(e.decision, ImplicitDeny);
    assert_eq!(
        e.missing_context_values,
        ["iot:Connection.Thing.Attributes[Owner]"]
    );
    assert_eq!(
        decide(
            &p,
            Action::Publish,
            &topic("$aws/things/iot-webinar-device/jobs/get")
        ),
        Allowed
    );
}

#[test]
fn no_thing_attached_denies_everything() {
    let p = prepare(
        &[("iot-webinar-policy", V2)],
        &connection("iot-webinar-device-2", None),
    );
    let requests = [
        (
            Action::Connect,
            client_arn(REGION, ACCOUNT, "iot-webinar-device-2"),
        ),
        (
            Action::Publish,
            topic("abcde-12345/iot-webinar-device-2/audit"),
        ),
        (
            Action::Subscribe,
            filter("$aws/things/iot-webinar-device-2/jobs/*"),
        ),
        (
            Action::Receive,
            topic("$aws/things/iot-webinar-device-2/jobs/get/accepted"),
        ),
    ];
    for (action, resource) in &requests {
        let e = p.evaluate(&Request::new(*action, resource));
        assert_eq!(e.decision, ImplicitDeny, "{action} {resource}");
        assert!(e.allowed_by.is_empty());
        assert!(
            e.missing_context_values
                .contains(&"iot:Connection.Thing.ThingName".to_string()),
            "{:?}",
            e.missing_context_values
        );
    }
    // Also the thing's own client id, when the certificate is not attached to it.
    let mut detached = connection(THING, Some("abcde-12345"));
    detached.thing = None;
    let p = prepare(&[("iot-webinar-policy", V2)], &detached);
    assert_eq!(
        decide(&p, Action::Connect, &client_arn(REGION, ACCOUNT, THING)),
        ImplicitDeny
    );
    assert_eq!(
        decide(
            &p,
            Action::Publish,
            &topic("abcde-12345/iot-webinar-device/audit")
        ),
        ImplicitDeny
    );
}

#[test]
fn an_added_deny_policy_overrides_the_allow() {
    const DENY_AUDIT: &str = r#"{
        "Version": "2012-10-17",
        "Statement": {
            "Effect": "Deny",
            "Action": "iot:Publish",
            "Resource": "arn:aws:iot:us-east-1:000000000000:topic/*/${iot:Connection.Thing.ThingName}/audit"
        }
    }"#;
    let ctx = connection(THING, Some("abcde-12345"));
    let p = prepare(
        &[("iot-webinar-policy", V2), ("quarantine", DENY_AUDIT)],
        &ctx,
    );
    let audit = topic("abcde-12345/iot-webinar-device/audit");
    let e = p.evaluate(&Request::new(Action::Publish, &audit));
    assert_eq!(e.decision, ExplicitDeny);
    assert_eq!(e.allowed_by, ["iot-webinar-policy"]);
    assert_eq!(e.explicitly_denied_by, ["quarantine"]);
    assert_eq!(
        p.decide(&Request::new(Action::Publish, &audit)),
        ExplicitDeny
    );
    // Order of attachment does not matter.
    let p = prepare(
        &[("quarantine", DENY_AUDIT), ("iot-webinar-policy", V2)],
        &ctx,
    );
    assert_eq!(decide(&p, Action::Publish, &audit), ExplicitDeny);
    // What the deny does not cover stays allowed.
    assert_eq!(decide(&p, Action::Receive, &audit), Allowed);
    assert_eq!(
        decide(
            &p,
            Action::Publish,
            &topic("$aws/things/iot-webinar-device/jobs/get")
        ),
        Allowed
    );
    assert_eq!(p.policy_names(), ["quarantine", "iot-webinar-policy"]);
}

#[test]
fn client_ids_cannot_inject_wildcards() {
    // AWS's warning about `${iot:ClientId}` in a topic filter: the value is matched
    // literally, so a client id of `*` grants exactly the filter `*`, not everything.
    const DOC: &str = r#"{
        "Version": "2012-10-17",
        "Statement": {
            "Effect": "Allow",
            "Action": ["iot:Subscribe"],
            "Resource": "arn:aws:iot:us-east-1:000000000000:topicfilter/dev/${iot:ClientId}"
        }
    }"#;
    let p = prepare(&[("p", DOC)], &connection("*", None));
    assert_eq!(decide(&p, Action::Subscribe, &filter("dev/*")), Allowed);
    assert_eq!(
        decide(&p, Action::Subscribe, &filter("dev/other")),
        ImplicitDeny
    );
    let p = prepare(&[("p", DOC)], &connection("#", None));
    assert_eq!(decide(&p, Action::Subscribe, &filter("dev/#")), Allowed);
}
