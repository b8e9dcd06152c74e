//! Property tests: the parser and the evaluator never panic, `decide` and `evaluate`
//! agree, resource matching agrees with a naive matcher, a Deny always wins, and
//! `${iot:CertificateId}` names the connection's own certificate and no other.

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use serde_json::{json, Map, Value};

use roost_policy::{
    parse_policy, Action, CertificateContext, ConnectionContext, Decision, NamedPolicy,
    PreparedPolicies, Request, ThingContext,
};

// ---------------------------------------------------------------- generators

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let keys = prop_oneof![
        Just("Version".to_string()),
        Just("Statement".to_string()),
        Just("Effect".to_string()),
        Just("Action".to_string()),
        Just("NotAction".to_string()),
        Just("Resource".to_string()),
        Just("NotResource".to_string()),
        Just("Condition".to_string()),
        Just("StringLike".to_string()),
        Just("ForAnyValue:StringEquals".to_string()),
        Just("iot:ClientId".to_string()),
        "[a-zA-Z:]{0,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|n| json!(n)),
        Just(json!("2012-10-17")),
        Just(json!("Allow")),
        Just(json!("Deny")),
        Just(json!("iot:*")),
        Just(json!("*")),
        Just(json!("arn:aws:iot:*:*:topic/${iot:ClientId}")),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((keys.clone(), inner), 0..5)
                .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn action() -> impl Strategy<Value = Action> {
    prop::sample::select(Action::ALL.to_vec())
}

fn action_entry() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("*".to_string()),
        Just("iot:*".to_string()),
        Just("iot:Get*".to_string()),
        Just("IOT:publish".to_string()),
        Just("iot:?eceive".to_string()),
        Just("greengrass:*".to_string()),
        action().prop_map(|a| a.name().to_string()),
    ]
}

/// Resource path pieces: literals, globs, MQTT wildcards, variables and escapes.
fn path_piece() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "a",
        "b",
        "dev-1",
        "/",
        "*",
        "?",
        "+",
        "#",
        "$aws",
        "${iot:ClientId}",
        "${iot:Connection.Thing.ThingName}",
        "${iot:Connection.Thing.Attributes[Owner]}",
        "${iot:Certificate.Subject.CommonName}",
        "${iot:Certificate.Subject.Country.List}",
        "${iot:CertificateId}",
        "${aws:SourceIp}",
        "${*}",
        "$(?)",
        "${unknown:Var}",
    ])
}

fn resource_entry() -> impl Strategy<Value = String> {
    let kind = prop::sample::select(vec!["client", "topic", "topicfilter", "thing", "*"]);
    (
        kind,
        prop::collection::vec(path_piece(), 0..5),
        any::<bool>(),
    )
        .prop_map(|(kind, pieces, star_region)| {
            let region = if star_region { "*" } else { "us-east-1" };
            format!(
                "arn:aws:iot:{region}:000000000000:{kind}/{}",
                pieces.concat()
            )
        })
}

fn condition() -> impl Strategy<Value = (String, String, Value)> {
    let operator = prop::sample::select(vec![
        "StringEquals",
        "StringNotEquals",
        "StringEqualsIgnoreCase",
        "StringLike",
        "ForAnyValue:StringLike",
        "ForAllValues:StringEquals",
        "StringNotLikeIfExists",
        "Bool",
        "Null",
        "IpAddress",
        "NotIpAddress",
        "NumericLessThan",
        "DateGreaterThan",
        "ArnLike",
    ]);
    let key = prop::sample::select(vec![
        "iot:ClientId",
        "aws:SourceIp",
        "iot:Connection.Thing.IsAttached",
        "iot:Connection.Thing.Attributes[Owner]",
        "iot:Certificate.Subject.Country.List",
        "iot:ConnectAttributes",
        "iot:LastWillTopic",
        "aws:CurrentTime",
        "n",
    ]);
    (operator, key).prop_flat_map(|(operator, key)| {
        let values: BoxedStrategy<Vec<String>> = match operator {
            "Bool" | "Null" => {
                prop::collection::vec(prop::sample::select(vec!["true", "false"]), 1..3)
                    .prop_map(|v| v.into_iter().map(String::from).collect())
                    .boxed()
            }
            "IpAddress" | "NotIpAddress" => prop::collection::vec(
                prop::sample::select(vec!["10.0.0.0/8", "198.51.100.4", "::/0"]),
                1..3,
            )
            .prop_map(|v| v.into_iter().map(String::from).collect())
            .boxed(),
            "NumericLessThan" => {
                prop::collection::vec((-5i32..5).prop_map(|n| n.to_string()), 1..3).boxed()
            }
            "DateGreaterThan" => prop::collection::vec(
                prop::sample::select(vec!["2024-01-01T00:00:00Z", "1700000000"])
                    .prop_map(String::from),
                1..3,
            )
            .boxed(),
            "ArnLike" => prop::collection::vec(resource_entry(), 1..3).boxed(),
            _ => prop::collection::vec(
                prop::sample::select(vec![
                    "dev-1",
                    "*",
                    "d?v-1",
                    "LastWill",
                    "${iot:ClientId}",
                    "US",
                    "true",
                ])
                .prop_map(String::from),
                1..3,
            )
            .boxed(),
        };
        values.prop_map(move |values| (operator.to_string(), key.to_string(), json!(values)))
    })
}

fn statement() -> impl Strategy<Value = Value> {
    (
        any::<bool>(),
        any::<bool>(),
        prop::collection::vec(action_entry(), 1..4),
        any::<bool>(),
        prop::collection::vec(resource_entry(), 1..3),
        prop::collection::vec(condition(), 0..3),
    )
        .prop_map(
            |(deny, not_action, actions, not_resource, resources, conditions)| {
                let mut s = Map::new();
                s.insert("Effect".into(), json!(if deny { "Deny" } else { "Allow" }));
                s.insert(
                    if not_action { "NotAction" } else { "Action" }.into(),
                    json!(actions),
                );
                s.insert(
                    if not_resource {
                        "NotResource"
                    } else {
                        "Resource"
                    }
                    .into(),
                    json!(resources),
                );
                if !conditions.is_empty() {
                    let mut block = Map::new();
                    for (operator, key, values) in conditions {
                        let keys = block.entry(operator).or_insert_with(|| json!({}));
                        keys[key] = values;
                    }
                    s.insert("Condition".into(), Value::Object(block));
                }
                Value::Object(s)
            },
        )
}

fn policy_document() -> impl Strategy<Value = String> {
    let version = prop::sample::select(vec![Some("2012-10-17"), Some("2008-10-17"), None]);
    (version, prop::collection::vec(statement(), 1..4)).prop_map(|(version, statements)| {
        let mut doc = Map::new();
        if let Some(v) = version {
            doc.insert("Version".into(), json!(v));
        }
        doc.insert("Statement".into(), Value::Array(statements));
        Value::Object(doc).to_string()
    })
}

/// Generated documents that parse (the size limit refuses a few big ones).
fn policies() -> impl Strategy<Value = Vec<NamedPolicy>> {
    prop::collection::vec(policy_document(), 0..4).prop_map(|docs| {
        docs.iter()
            .enumerate()
            .filter_map(|(i, d)| parse_policy(d).ok().map(|p| named(&format!("p{i}"), p)))
            .collect()
    })
}

fn named(name: &str, policy: roost_policy::Policy) -> NamedPolicy {
    NamedPolicy {
        name: name.to_string(),
        policy: Arc::new(policy),
    }
}

fn context() -> impl Strategy<Value = ConnectionContext> {
    let client = prop::sample::select(vec![
        Some("dev-1"),
        Some("*"),
        Some("#"),
        Some("a/b"),
        Some(""),
        None,
    ]);
    let owner = prop::sample::select(vec![None, Some("a"), Some("t*")]);
    (client, any::<bool>(), owner, any::<bool>(), any::<bool>()).prop_map(
        |(client, attached, owner, with_cert, with_ip)| ConnectionContext {
            region: "us-east-1".into(),
            account: "000000000000".into(),
            client_id: client.map(String::from),
            source_ip: with_ip.then(|| "198.51.100.4".parse().unwrap()),
            domain_name: None,
            thing: attached.then(|| ThingContext {
                name: client.unwrap_or("dev-1").to_string(),
                type_name: None,
                attributes: owner
                    .map(|o| BTreeMap::from([("Owner".to_string(), o.to_string())]))
                    .unwrap_or_default(),
            }),
            certificate: with_cert.then(|| CertificateContext {
                id: "0".repeat(64),
                serial_number: "12345".into(),
                subject: vec![
                    ("CommonName".into(), "dev-1".into()),
                    ("Country".into(), "US".into()),
                    ("Country".into(), "CA".into()),
                ],
                ..Default::default()
            }),
        },
    )
}

fn request_resource() -> impl Strategy<Value = String> {
    let kind = prop::sample::select(vec!["client", "topic", "topicfilter", "thing"]);
    let piece = prop::sample::select(vec![
        "a",
        "b",
        "dev-1",
        "/",
        "+",
        "#",
        "$aws",
        "*",
        "US",
        "${iot:ClientId}",
    ]);
    (kind, prop::collection::vec(piece, 0..6)).prop_map(|(kind, pieces)| {
        format!(
            "arn:aws:iot:us-east-1:000000000000:{kind}/{}",
            pieces.concat()
        )
    })
}

fn request_context() -> impl Strategy<Value = Vec<(&'static str, Vec<&'static str>)>> {
    let entry = prop_oneof![
        prop::collection::vec(
            prop::sample::select(vec!["PersistentConnect", "LastWill"]),
            0..3
        )
        .prop_map(|v| ("iot:ConnectAttributes", v)),
        prop::sample::select(vec![
            "arn:aws:iot:us-east-1:000000000000:topic/a",
            "nonsense"
        ])
        .prop_map(|v| ("iot:LastWillTopic", vec![v])),
        prop::sample::select(vec!["2024-06-01T00:00:00Z", "garbage"])
            .prop_map(|v| ("aws:CurrentTime", vec![v])),
        prop::sample::select(vec!["-3", "4.5", "x"]).prop_map(|v| ("n", vec![v])),
    ];
    prop::collection::vec(entry, 0..3)
}

/// Runs one request with the request-level context built from owned parts.
fn with_request<R>(
    action: Action,
    resource: &str,
    values: &[(&'static str, Vec<&'static str>)],
    f: impl FnOnce(&Request<'_>) -> R,
) -> R {
    let borrowed: Vec<(&str, &[&str])> = values.iter().map(|(k, v)| (*k, v.as_slice())).collect();
    let request = Request {
        action,
        resource,
        context_values: &borrowed,
    };
    f(&request)
}

/// The obvious exponential glob definition, over characters.
fn reference_glob(pattern: &[char], text: &[char]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some(('*', rest)) => (0..=text.len()).any(|skip| reference_glob(rest, &text[skip..])),
        Some(('?', rest)) => !text.is_empty() && reference_glob(rest, &text[1..]),
        Some((c, rest)) => text.first() == Some(c) && reference_glob(rest, &text[1..]),
    }
}

// ---------------------------------------------------------------- properties

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parse_never_panics_on_arbitrary_text(text in any::<String>()) {
        let _ = parse_policy(&text);
    }

    #[test]
    fn parse_never_panics_on_json_shaped_text(text in r#"[{}\[\]":,\\$ a-zA-Z0-9.*?-]{0,200}"#) {
        let _ = parse_policy(&text);
    }

    #[test]
    fn parse_never_panics_on_arbitrary_json(value in arbitrary_json()) {
        if let Err(e) = parse_policy(&value.to_string()) {
            // Every refusal says something.
            prop_assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn generated_policies_mostly_parse(doc in policy_document()) {
        // The generator only writes grammatical documents: the size limit is the
        // only acceptable reason to refuse one.
        match parse_policy(&doc) {
            Ok(_) => {}
            Err(roost_policy::MalformedPolicy::TooLong { .. }) => {}
            Err(e) => prop_assert!(false, "{} refused: {}", doc, e),
        }
    }

    #[test]
    fn evaluation_never_panics_and_decide_agrees_with_evaluate(
        policies in policies(),
        ctx in context(),
        action in action(),
        resource in request_resource(),
        values in request_context(),
    ) {
        let prepared = PreparedPolicies::prepare(policies, &ctx);
        with_request(action, &resource, &values, |request| {
            let decision = prepared.decide(request);
            let e = prepared.evaluate(request);
            prop_assert_eq!(decision, e.decision);
            match decision {
                Decision::Allowed => prop_assert!(!e.allowed_by.is_empty() && e.explicitly_denied_by.is_empty()),
                Decision::ExplicitDeny => prop_assert!(!e.explicitly_denied_by.is_empty()),
                Decision::ImplicitDeny => prop_assert!(e.allowed_by.is_empty() && e.explicitly_denied_by.is_empty()),
            }
            for name in e.allowed_by.iter().chain(&e.explicitly_denied_by) {
                prop_assert!(prepared.policy_names().contains(name));
            }
            Ok(())
        })?;
    }

    #[test]
    fn a_matching_deny_always_wins(
        policies in policies(),
        ctx in context(),
        action in action(),
        resource in request_resource(),
        values in request_context(),
        deny_action in prop::sample::select(vec!["*", "exact"]),
    ) {
        // A Deny naming exactly this action and resource (escaping its wildcards).
        let escaped = resource.replace('$', "${$}").replace('*', "${*}").replace('?', "${?}");
        let deny_action = if deny_action == "*" { "*".to_string() } else { action.name().to_string() };
        let deny = json!({
            "Version": "2012-10-17",
            "Statement": {"Effect": "Deny", "Action": deny_action, "Resource": escaped}
        });
        let deny = parse_policy(&deny.to_string()).unwrap();
        let mut with_deny = policies.clone();
        with_deny.push(named("deny", deny));
        let prepared = PreparedPolicies::prepare(with_deny, &ctx);
        with_request(action, &resource, &values, |request| {
            prop_assert_eq!(prepared.decide(request), Decision::ExplicitDeny);
            let e = prepared.evaluate(request);
            prop_assert!(e.explicitly_denied_by.contains(&"deny".to_string()));
            Ok(())
        })?;
    }

    #[test]
    fn adding_deny_statements_never_grants_and_adding_allows_never_lifts_a_deny(
        policies in policies(),
        extra in policy_document(),
        ctx in context(),
        action in action(),
        resource in request_resource(),
        values in request_context(),
    ) {
        let Ok(extra) = parse_policy(&extra) else { return Ok(()) };
        let before = with_request(action, &resource, &values, |r| {
            PreparedPolicies::prepare(policies.clone(), &ctx).decide(r)
        });
        let mut more = policies.clone();
        more.push(named("extra", extra));
        let after = with_request(action, &resource, &values, |r| PreparedPolicies::prepare(more, &ctx).decide(r));
        // A union can only add matches: an explicit deny stays, an allow stays
        // unless a deny arrives.
        match before {
            Decision::ExplicitDeny => prop_assert_eq!(after, Decision::ExplicitDeny),
            Decision::Allowed => prop_assert_ne!(after, Decision::ImplicitDeny),
            Decision::ImplicitDeny => {}
        }
    }

    #[test]
    fn resource_matching_agrees_with_a_naive_glob(
        pattern in "[ab/:+#*?é{}$]{0,10}",
        text in "[ab/:+#é{}$]{0,12}",
    ) {
        // A legacy document, so the pattern is a pure glob with no variables.
        let doc = json!({"Statement": {"Effect": "Allow", "Action": "iot:Publish", "Resource": format!("arn:{pattern}")}});
        let policy = parse_policy(&doc.to_string()).unwrap();
        let prepared = PreparedPolicies::prepare(vec![named("p", policy)], &ConnectionContext::default());
        let resource = format!("arn:{text}");
        let allowed = prepared.decide(&Request::new(Action::Publish, &resource)) == Decision::Allowed;
        let p: Vec<char> = pattern.chars().collect();
        let t: Vec<char> = text.chars().collect();
        prop_assert_eq!(allowed, reference_glob(&p, &t), "{} vs {}", pattern, text);
    }
    #[test]
    fn certificate_id_allows_the_own_certificate_topic_only(
        id in "[0-9a-f]{64}",
        other in "[0-9a-f]{64}",
        prefix in prop::sample::select(vec!["", "certs/", "a/b/"]),
        suffix in prop::sample::select(vec!["", "/telemetry", "/*"]),
    ) {
        // AWS's certificate policy example: one topic per certificate id.
        let doc = json!({"Version": "2012-10-17", "Statement": {
            "Effect": "Allow", "Action": "iot:Publish",
            "Resource": format!("arn:aws:iot:us-east-1:000000000000:topic/{prefix}${{iot:CertificateId}}{suffix}"),
        }});
        let policy = parse_policy(&doc.to_string()).unwrap();
        let ctx = ConnectionContext {
            region: "us-east-1".into(),
            account: "000000000000".into(),
            client_id: Some("dev-1".into()),
            certificate: Some(CertificateContext { id: id.clone(), ..Default::default() }),
            ..Default::default()
        };
        let prepared = PreparedPolicies::prepare(vec![named("p", policy.clone())], &ctx);
        let tail = suffix.replace('*', "x");
        let topic = |cert: &str| format!("arn:aws:iot:us-east-1:000000000000:topic/{prefix}{cert}{tail}");
        prop_assert_eq!(prepared.decide(&Request::new(Action::Publish, &topic(&id))), Decision::Allowed);
        if other != id {
            prop_assert_eq!(prepared.decide(&Request::new(Action::Publish, &topic(&other))), Decision::ImplicitDeny);
        }
        // The variable's own text is never a topic that matches.
        prop_assert_eq!(
            prepared.decide(&Request::new(Action::Publish, &topic("${iot:CertificateId}"))),
            Decision::ImplicitDeny
        );
        // Without a certificate the variable has no value: nothing is allowed.
        let anonymous = ConnectionContext { certificate: None, ..ctx };
        let prepared = PreparedPolicies::prepare(vec![named("p", policy)], &anonymous);
        prop_assert_eq!(prepared.decide(&Request::new(Action::Publish, &topic(&id))), Decision::ImplicitDeny);
    }
}
