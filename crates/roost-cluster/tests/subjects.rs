//! The encoding held to MQTT's own matching: NATS, matching the encoded
//! subjects by its rules, must deliver exactly what `roost_topic::matches`
//! says a filter matches, and every subject must decode to its topic.

use proptest::prelude::*;
use roost_cluster::{SubjectError, SubjectSpace};
use roost_topic::{matches, MatchMode};

/// NATS's subject matching: `*` is one token, a last `>` one or more.
fn nats_matches(subscription: &str, subject: &str) -> bool {
    let mut want = subscription.split('.');
    let mut got = subject.split('.');
    loop {
        match (want.next(), got.next()) {
            (Some(">"), Some(_)) => return want.next().is_none(),
            (Some("*"), Some(_)) => {}
            (Some(w), Some(g)) if w == g => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Levels from a small alphabet, so that filters and topics often meet,
/// with the bytes the encoding must escape.
fn level() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("a".to_owned()),
        Just("b".to_owned()),
        Just("$a".to_owned()),
        Just("a.b".to_owned()),
        Just("*".to_owned()),
        Just(">".to_owned()),
        Just("=".to_owned()),
        Just("é".to_owned()),
    ]
}

fn topic() -> impl Strategy<Value = String> {
    prop::collection::vec(level(), 1..5)
        .prop_map(|levels| levels.join("/"))
        .prop_filter("a topic is not empty", |topic| !topic.is_empty())
}

fn filter() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(prop_oneof![3 => level(), 1 => Just("+".to_owned())], 0..4),
        any::<bool>(),
    )
        .prop_filter_map("a filter has a level", |(mut levels, hash)| {
            if hash {
                levels.push("#".to_owned());
            }
            let filter = levels.join("/");
            (!filter.is_empty()).then_some(filter)
        })
}

proptest! {
    #[test]
    fn nats_routes_exactly_what_mqtt_matches(filter in filter(), topic in topic(), mqtt in any::<bool>()) {
        let mode = if mqtt { MatchMode::Mqtt } else { MatchMode::Aws };
        let space = SubjectSpace::new("roost.c1").unwrap();
        let subject = space.topic_subject(&topic).unwrap();
        let subs = space.filter_subscriptions(&filter, mode).unwrap();
        let hits = subs.subjects.iter().filter(|s| nats_matches(s, &subject)).count();
        prop_assert_eq!(hits > 0, matches(&filter, &topic, mode), "{} {} {:?}", filter, topic, subs);
        // Never two subscriptions of one filter for one message.
        prop_assert!(hits <= 1);
    }

    #[test]
    fn every_topic_comes_back(topic in "[^\u{0}+#]{1,40}") {
        let space = SubjectSpace::new("roost").unwrap();
        let subject = space.topic_subject(&topic).unwrap();
        prop_assert!(subject.split('.').all(|t| !t.is_empty()));
        prop_assert!(subject.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-=".contains(&b)));
        prop_assert_eq!(space.topic_of(&subject).unwrap(), topic);
    }

    #[test]
    fn every_key_comes_back(text in "\\PC{0,40}") {
        let key = roost_cluster::key(&text);
        prop_assert!(!key.is_empty());
        prop_assert!(key.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-=".contains(&b)));
        prop_assert_eq!(roost_cluster::unkey(&key).unwrap(), text);
    }

    #[test]
    fn a_key_names_one_text(key in "[A-Za-z0-9=_/.-]{1,24}") {
        if let Ok(text) = roost_cluster::unkey(&key) {
            prop_assert_eq!(roost_cluster::key(&text), key);
        }
    }

    #[test]
    fn a_subject_names_one_topic(subject in "roost\\.[md]\\.[A-Za-z0-9=._*>-]{0,24}") {
        let space = SubjectSpace::new("roost").unwrap();
        if let Ok(topic) = space.topic_of(&subject) {
            prop_assert_eq!(space.topic_subject(&topic).unwrap(), subject);
        }
    }

    #[test]
    fn no_string_panics(s in ".{0,60}") {
        let space = SubjectSpace::new("roost").unwrap();
        let _ = space.topic_of(&s);
        let _ = space.topic_subject(&s);
        let _ = space.filter_subscriptions(&s, MatchMode::Mqtt);
    }
}

#[test]
fn shared_subscriptions_become_queue_groups() {
    let space = SubjectSpace::new("roost").unwrap();
    let subs = space
        .filter_subscriptions("$share/g.1/+/x", MatchMode::Aws)
        .unwrap();
    assert_eq!(subs.subjects, ["roost.m.*.x"]);
    assert_eq!(subs.queue_group.as_deref(), Some("g=2E1=2F=2B=2Fx"));
    // Two shared subscriptions of one group name are two queue groups.
    let other = space
        .filter_subscriptions("$share/g.1/+/y", MatchMode::Aws)
        .unwrap();
    assert_ne!(other.queue_group, subs.queue_group);
    assert!(matches!(
        space.filter_subscriptions("$share/g", MatchMode::Aws),
        Err(SubjectError::Topic(_))
    ));
}
