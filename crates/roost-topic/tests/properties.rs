//! Property tests: the index agrees with `matches` over everything it holds, its
//! bookkeeping agrees with a plain map after any sequence of changes, and
//! validation never panics or lets a wildcard into a topic name.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use proptest::prelude::*;
use roost_topic::*;

/// Levels drawn from a small alphabet so that filters and topics collide often;
/// includes the empty level, a `$` level and the wildcards.
fn filter_level() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just("+".to_string()),
        2 => Just("a".to_string()),
        2 => Just("b".to_string()),
        1 => Just(String::new()),
        1 => Just("$x".to_string()),
    ]
}

fn topic_level_str() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just("a".to_string()),
        3 => Just("b".to_string()),
        1 => Just(String::new()),
        1 => Just("$x".to_string()),
    ]
}

/// A well-formed filter, sometimes ending in `#`, sometimes shared.
fn filter() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(filter_level(), 0..5),
        any::<bool>(),
        prop::option::weighted(0.25, prop_oneof![Just("g"), Just("h")]),
    )
        .prop_filter_map("empty filter", |(levels, hash, group)| {
            let mut levels = levels;
            if hash {
                levels.push("#".to_string());
            }
            if levels.is_empty() {
                return None;
            }
            let inner = levels.join("/");
            if inner.is_empty() {
                // A lone empty level is the empty string: not a filter. `/` is.
                return None;
            }
            Some(match group {
                Some(g) => format!("$share/{g}/{inner}"),
                None => inner,
            })
        })
}

fn topic() -> impl Strategy<Value = String> {
    prop::collection::vec(topic_level_str(), 1..6)
        .prop_map(|levels| levels.join("/"))
        .prop_filter("empty topic", |t| !t.is_empty())
}

fn mode() -> impl Strategy<Value = MatchMode> {
    prop_oneof![Just(MatchMode::Aws), Just(MatchMode::Mqtt)]
}

/// Plain (filter, subscriber) matches, and each matching shared filter with the
/// members one of which must be chosen.
type Expected = (BTreeSet<(String, u8)>, BTreeMap<String, BTreeSet<u8>>);

/// Brute force: what the index should report for `topic`.
fn expected(subs: &HashMap<(String, u8), u32>, topic: &str, mode: MatchMode) -> Expected {
    let mut plain = BTreeSet::new();
    let mut shared: BTreeMap<String, BTreeSet<u8>> = BTreeMap::new();
    for (filter, subscriber) in subs.keys() {
        if !matches(filter, topic, mode) {
            continue;
        }
        if filter.starts_with("$share/") {
            shared
                .entry(filter.clone())
                .or_default()
                .insert(*subscriber);
        } else {
            plain.insert((filter.clone(), *subscriber));
        }
    }
    (plain, shared)
}

fn check_against_model(
    index: &SubscriptionIndex<u8, u32>,
    model: &HashMap<(String, u8), u32>,
    topic: &str,
    mode: MatchMode,
) -> Result<(), TestCaseError> {
    let (plain, shared) = expected(model, topic, mode);
    let mut got_plain = BTreeSet::new();
    let mut got_shared: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    index.for_each_match(topic, |filter, subscriber, value| {
        assert_eq!(
            model.get(&(filter.to_string(), *subscriber)),
            Some(value),
            "reported value is the stored one"
        );
        if filter.starts_with("$share/") {
            got_shared
                .entry(filter.to_string())
                .or_default()
                .push(*subscriber);
        } else {
            assert!(
                got_plain.insert((filter.to_string(), *subscriber)),
                "reported twice"
            );
        }
    });
    prop_assert_eq!(&got_plain, &plain, "plain matches for {:?}", topic);
    prop_assert_eq!(
        got_shared.keys().collect::<Vec<_>>(),
        shared.keys().collect::<Vec<_>>(),
        "shared groups for {:?}",
        topic
    );
    for (filter, chosen) in &got_shared {
        prop_assert_eq!(chosen.len(), 1, "one member of {} per message", filter);
        prop_assert!(shared[filter].contains(&chosen[0]));
    }
    Ok(())
}

#[derive(Clone, Debug)]
enum Op {
    Insert(String, u8, u32),
    Remove(String, u8),
    RemoveSubscriber(u8),
}

fn op() -> impl Strategy<Value = Op> {
    let subscriber = 0u8..4;
    prop_oneof![
        4 => (filter(), subscriber.clone(), any::<u32>()).prop_map(|(f, s, v)| Op::Insert(f, s, v)),
        2 => (filter(), subscriber.clone()).prop_map(|(f, s)| Op::Remove(f, s)),
        1 => subscriber.prop_map(Op::RemoveSubscriber),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn index_agrees_with_brute_force_matching(
        filters in prop::collection::vec((filter(), 0u8..6), 0..24),
        topics in prop::collection::vec(topic(), 1..8),
        mode in mode(),
    ) {
        let mut index = SubscriptionIndex::new(mode);
        let mut model = HashMap::new();
        for (i, (filter, subscriber)) in filters.into_iter().enumerate() {
            let value = i as u32;
            prop_assert_eq!(
                index.insert(&filter, subscriber, value),
                model.insert((filter, subscriber), value)
            );
        }
        for topic in &topics {
            check_against_model(&index, &model, topic, mode)?;
        }
    }

    #[test]
    fn insert_remove_sequences_leave_no_stale_entries(
        ops in prop::collection::vec(op(), 0..40),
        topics in prop::collection::vec(topic(), 1..6),
        mode in mode(),
    ) {
        let mut index = SubscriptionIndex::new(mode);
        let mut model: HashMap<(String, u8), u32> = HashMap::new();
        for op in ops {
            match op {
                Op::Insert(filter, subscriber, value) => prop_assert_eq!(
                    index.insert(&filter, subscriber, value),
                    model.insert((filter, subscriber), value)
                ),
                Op::Remove(filter, subscriber) => prop_assert_eq!(
                    index.remove(&filter, &subscriber),
                    model.remove(&(filter, subscriber))
                ),
                Op::RemoveSubscriber(subscriber) => {
                    let before = model.len();
                    model.retain(|(_, s), _| *s != subscriber);
                    prop_assert_eq!(index.remove_subscriber(&subscriber), before - model.len());
                }
            }
            prop_assert_eq!(index.len(), model.len());
        }
        for ((filter, subscriber), value) in &model {
            prop_assert_eq!(index.get(filter, subscriber), Some(value));
        }
        for subscriber in 0u8..4 {
            let mut got: Vec<_> = index.filters_of(&subscriber).map(str::to_string).collect();
            got.sort();
            let mut want: Vec<_> = model
                .keys()
                .filter(|(_, s)| *s == subscriber)
                .map(|(f, _)| f.clone())
                .collect();
            want.sort();
            prop_assert_eq!(got, want);
        }
        for topic in &topics {
            check_against_model(&index, &model, topic, mode)?;
        }
        // Emptying the index returns the trie to its root alone.
        for subscriber in 0u8..4 {
            index.remove_subscriber(&subscriber);
        }
        prop_assert!(index.is_empty());
        prop_assert_eq!(index.node_count(), 1);
    }

    #[test]
    fn validation_never_panics(text in any::<String>(), limit in 0usize..300, levels in 0usize..10) {
        let limits = TopicLimits { max_bytes: limit, max_levels: levels };
        for limits in [limits, TopicLimits::aws(), TopicLimits::general()] {
            let _ = validate_topic_name(&text, &limits);
            if let Ok(parsed) = validate_topic_filter(&text, &limits) {
                // What validates is a part of the input, and within the limits.
                prop_assert!(text.ends_with(parsed.filter));
                prop_assert!(!parsed.filter.is_empty());
            }
        }
        for mode in [MatchMode::Aws, MatchMode::Mqtt] {
            let _ = matches(&text, &text, mode);
            let _ = matches("#", &text, mode);
        }
    }

    #[test]
    fn wildcard_heavy_strings_never_panic(text in "[ab/+#$\u{0}]{0,24}") {
        for limits in [TopicLimits::aws(), TopicLimits::general()] {
            let _ = validate_topic_filter(&text, &limits);
            let _ = validate_topic_filter(&format!("$share/{text}"), &limits);
            let name_ok = validate_topic_name(&text, &limits).is_ok();
            prop_assert!(!(name_ok && (text.contains('+') || text.contains('#'))));
        }
        let mut index = SubscriptionIndex::new(MatchMode::Mqtt);
        index.insert(&text, 0u8, ());
        index.for_each_match(&text, |_, _, _| {});
        prop_assert_eq!(index.remove(&text, &0), Some(()));
        prop_assert_eq!(index.node_count(), 1);
    }

    #[test]
    fn a_topic_name_never_contains_wildcards(text in any::<String>()) {
        for limits in [TopicLimits::aws(), TopicLimits::general()] {
            if validate_topic_name(&text, &limits).is_ok() {
                prop_assert!(!text.is_empty());
                prop_assert!(!text.contains(['+', '#', '\0']));
                // A valid topic name is also a valid filter, and matches itself.
                let parsed = validate_topic_filter(&text, &limits);
                prop_assert!(parsed.is_ok() || text.starts_with("$share/"));
                if !text.starts_with("$share/") {
                    prop_assert!(matches(&text, &text, MatchMode::Aws));
                    prop_assert!(matches(&text, &text, MatchMode::Mqtt));
                }
            }
        }
    }

    #[test]
    fn shared_filters_match_like_their_inner_filter(
        inner in filter().prop_filter("not shared", |f| !f.starts_with("$share/")),
        topic in topic(),
        mode in mode(),
    ) {
        let shared = format!("$share/grp/{inner}");
        prop_assert_eq!(matches(&shared, &topic, mode), matches(&inner, &topic, mode));
    }

    #[test]
    fn aws_and_mqtt_differ_only_on_the_parent_level(
        filter in filter(),
        topic in topic(),
    ) {
        let aws = matches(&filter, &topic, MatchMode::Aws);
        let mqtt = matches(&filter, &topic, MatchMode::Mqtt);
        // Everything AWS matches, MQTT matches too.
        prop_assert!(!aws || mqtt);
        if mqtt && !aws {
            // ... and the extra match is `<parent>/#` against `<parent>`.
            let inner = validate_topic_filter(&filter, &TopicLimits::general()).unwrap().filter;
            let parent = inner.strip_suffix("/#");
            prop_assert!(parent.is_some(), "{} vs {}", filter, topic);
            prop_assert!(matches(parent.unwrap(), &topic, MatchMode::Aws));
        }
    }
}
