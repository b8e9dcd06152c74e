//! The subscription index: replace and remove semantics, shared groups'
//! round-robin, pruning, deep topics, and malformed filters.

use std::collections::BTreeSet;

use roost_topic::*;

fn matched<V>(
    index: &SubscriptionIndex<&'static str, V>,
    topic: &str,
) -> BTreeSet<(String, &'static str)> {
    let mut out = BTreeSet::new();
    index.for_each_match(topic, |filter, subscriber, _| {
        assert!(
            out.insert((filter.to_string(), *subscriber)),
            "{filter} / {subscriber} reported twice"
        );
    });
    out
}

fn set(items: &[(&str, &'static str)]) -> BTreeSet<(String, &'static str)> {
    items.iter().map(|(f, s)| (f.to_string(), *s)).collect()
}

#[test]
fn insert_replaces_and_remove_returns_the_value() {
    let mut index = SubscriptionIndex::new(MatchMode::Aws);
    assert!(index.is_empty());
    assert_eq!(index.insert("a/+", "c1", 0u8), None);
    assert_eq!(index.insert("a/+", "c1", 1u8), Some(0));
    assert_eq!(index.len(), 1);
    assert_eq!(index.get("a/+", &"c1"), Some(&1));
    assert_eq!(index.get("a/+", &"c2"), None);
    assert_eq!(index.get("a/#", &"c1"), None);
    assert_eq!(index.insert("a/+", "c2", 0u8), None);
    assert_eq!(index.insert("a/#", "c1", 0u8), None);
    assert_eq!(index.len(), 3);
    assert_eq!(index.subscriber_count(), 2);
    assert_eq!(index.remove("a/+", &"c1"), Some(1));
    assert_eq!(index.remove("a/+", &"c1"), None);
    assert_eq!(index.remove("a/x", &"c1"), None);
    assert_eq!(index.len(), 2);
    assert_eq!(matched(&index, "a/b"), set(&[("a/+", "c2"), ("a/#", "c1")]));
}

#[test]
fn overlapping_filters_are_reported_once_each() {
    let mut index = SubscriptionIndex::new(MatchMode::Mqtt);
    for filter in ["a/b", "a/+", "+/b", "#", "a/#", "+/+", "a/b/#"] {
        index.insert(filter, "c", ());
    }
    assert_eq!(
        matched(&index, "a/b"),
        set(&[
            ("a/b", "c"),
            ("a/+", "c"),
            ("+/b", "c"),
            ("#", "c"),
            ("a/#", "c"),
            ("+/+", "c"),
            ("a/b/#", "c"),
        ])
    );
    // AWS: `a/b/#` does not match `a/b`.
    let mut aws = SubscriptionIndex::new(MatchMode::Aws);
    for filter in ["a/b", "a/b/#"] {
        aws.insert(filter, "c", ());
    }
    assert_eq!(matched(&aws, "a/b"), set(&[("a/b", "c")]));
    assert_eq!(aws.mode(), MatchMode::Aws);
}

#[test]
fn shared_groups_deliver_to_one_member_round_robin() {
    let mut index = SubscriptionIndex::new(MatchMode::Aws);
    for member in ["m3", "m1", "m2"] {
        index.insert("$share/workers/jobs/+", member, ());
    }
    index.insert("$share/audit/jobs/+", "a1", ());
    index.insert("jobs/+", "plain", ());
    index.insert("jobs/#", "m1", ());
    assert_eq!(index.len(), 6);

    let mut turns = Vec::new();
    for _ in 0..7 {
        let got = matched(&index, "jobs/42");
        let workers: Vec<_> = got
            .iter()
            .filter(|(f, _)| f == "$share/workers/jobs/+")
            .map(|(_, s)| *s)
            .collect();
        assert_eq!(workers.len(), 1, "exactly one worker per message");
        turns.push(workers[0]);
        assert!(got.contains(&("$share/audit/jobs/+".to_string(), "a1")));
        assert!(got.contains(&("jobs/+".to_string(), "plain")));
        assert!(got.contains(&("jobs/#".to_string(), "m1")));
        assert_eq!(got.len(), 4);
    }
    // Members in key order, cycling.
    assert_eq!(turns, ["m1", "m2", "m3", "m1", "m2", "m3", "m1"]);

    // A topic the group does not match does not advance its turn.
    assert!(matched(&index, "other").is_empty());

    // Shared and plain subscriptions of one client to one filter are distinct.
    index.insert("jobs/+", "m2", ());
    assert_eq!(index.len(), 7);
    assert_eq!(index.remove("$share/workers/jobs/+", &"m2"), Some(()));
    assert_eq!(index.get("jobs/+", &"m2"), Some(&()));
    for _ in 0..4 {
        let got = matched(&index, "jobs/1");
        assert!(!got.contains(&("$share/workers/jobs/+".to_string(), "m2")));
    }
    // Same group name under a different filter is a different shared subscription.
    index.insert("$share/workers/jobs/#", "m9", ());
    let got = matched(&index, "jobs/1");
    assert!(got.contains(&("$share/workers/jobs/#".to_string(), "m9")));
}

#[test]
fn removing_everything_prunes_the_trie() {
    let mut index = SubscriptionIndex::new(MatchMode::Aws);
    assert_eq!(index.node_count(), 1);
    let filters = [
        "a/b/c",
        "a/b",
        "a/+/c",
        "a/#",
        "#",
        "+",
        "$share/g/a/b/c",
        "x//y",
        "/",
        "a/b/c/d/e/f/g/h",
    ];
    for (i, filter) in filters.iter().enumerate() {
        index.insert(filter, "c1", i);
        index.insert(filter, "c2", i);
    }
    assert_eq!(index.len(), 2 * filters.len());
    let grown = index.node_count();
    assert!(grown > 10);

    for filter in filters {
        assert!(index.remove(filter, &"c1").is_some());
    }
    assert_eq!(index.node_count(), grown, "c2 still needs every node");
    assert_eq!(index.remove_subscriber(&"c2"), filters.len());
    assert_eq!(index.remove_subscriber(&"c2"), 0);
    assert!(index.is_empty());
    assert_eq!(index.subscriber_count(), 0);
    assert_eq!(index.node_count(), 1);
    assert!(matched(&index, "a/b/c").is_empty());
}

#[test]
fn removing_a_subscriber_leaves_the_others() {
    let mut index = SubscriptionIndex::new(MatchMode::Aws);
    index.insert("t/1/+/audit", "d1", ());
    index.insert("t/+/+/audit", "d1", ());
    index.insert("$share/g/t/#", "d1", ());
    index.insert("t/2/+/audit", "d2", ());
    index.insert("$share/g/t/#", "d2", ());
    let mut filters: Vec<_> = index.filters_of(&"d1").collect();
    filters.sort();
    assert_eq!(filters, ["$share/g/t/#", "t/+/+/audit", "t/1/+/audit"]);
    assert_eq!((index.count_of(&"d1"), index.count_of(&"d2")), (3, 2));
    assert_eq!(index.remove_subscriber(&"d1"), 3);
    assert_eq!(index.filters_of(&"d1").count(), 0);
    assert_eq!(index.count_of(&"d1"), 0);
    assert_eq!(index.len(), 2);
    assert_eq!(
        matched(&index, "t/1/x/audit"),
        set(&[("$share/g/t/#", "d2")])
    );
    for _ in 0..3 {
        assert_eq!(
            matched(&index, "t/2/x/audit"),
            set(&[("t/2/+/audit", "d2"), ("$share/g/t/#", "d2")])
        );
    }
}

#[test]
fn deep_topics_spill_the_match_stack() {
    // 40 levels with both a `+` and an exact child at every level: more frames
    // than the inline stack holds, under general limits.
    let levels = 40;
    let exact: Vec<String> = (0..levels).map(|i| format!("l{i}")).collect();
    let topic = exact.join("/");
    let mut index = SubscriptionIndex::new(MatchMode::Mqtt);
    let mut expected = BTreeSet::new();
    for i in 0..levels {
        // Filter i: levels before i exact, level i `+`, the rest exact.
        let mut parts = exact.clone();
        parts[i] = "+".to_string();
        let filter = parts.join("/");
        index.insert(&filter, "deep", ());
        expected.insert((filter, "deep"));
    }
    index.insert(&topic, "deep", ());
    expected.insert((topic.clone(), "deep"));
    let all_plus = vec!["+"; levels].join("/");
    index.insert(&all_plus, "deep", ());
    expected.insert((all_plus, "deep"));
    assert_eq!(matched(&index, &topic), expected);

    let very_deep = vec!["x"; 20_000].join("/");
    index.insert(&very_deep, "deeper", ());
    index.insert("#", "deeper", ());
    assert_eq!(
        matched(&index, &very_deep),
        set(&[(very_deep.as_str(), "deeper"), ("#", "deeper")])
    );
    assert_eq!(index.remove_subscriber(&"deeper"), 2);
    // Dropping and pruning a 20,000-level branch must not recurse either.
    index.remove_subscriber(&"deep");
    assert_eq!(index.node_count(), 1);
}

#[test]
fn malformed_filters_are_kept_but_never_match() {
    let mut index = SubscriptionIndex::new(MatchMode::Aws);
    assert_eq!(index.insert("a/#/b", "c", 1), None);
    assert_eq!(index.insert("a/#/b", "c", 2), Some(1));
    assert_eq!(index.insert("$share/g", "c", 3), None);
    assert_eq!(index.insert("", "c", 4), None);
    assert_eq!(index.len(), 3);
    assert_eq!(index.get("a/#/b", &"c"), Some(&2));
    for topic in ["a/x/b", "$share/g", "a/#/b"] {
        assert!(matched(&index, topic).is_empty(), "{topic}");
    }
    assert_eq!(index.remove("a/#/b", &"c"), Some(2));
    assert_eq!(index.remove_subscriber(&"c"), 2);
    assert!(index.is_empty());
    assert_eq!(index.node_count(), 1);
}

#[test]
fn invalid_topic_names_match_nothing() {
    let mut index = SubscriptionIndex::new(MatchMode::Mqtt);
    index.insert("#", "c", ());
    index.insert("+", "c", ());
    for topic in ["", "a/+", "#", "a\0"] {
        assert!(matched(&index, topic).is_empty(), "{topic:?}");
    }
    assert_eq!(matched(&index, "a").len(), 2);
}

#[test]
fn routing_works_through_a_shared_reference_across_threads() {
    let mut index = SubscriptionIndex::new(MatchMode::Aws);
    for member in ["w1", "w2"] {
        index.insert("$share/g/work", member, ());
    }
    let index = std::sync::Arc::new(index);
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let index = index.clone();
            std::thread::spawn(move || {
                let mut counts = [0usize; 2];
                for _ in 0..1000 {
                    index.for_each_match("work", |_, s, _| {
                        counts[usize::from(*s == "w2")] += 1;
                    });
                }
                counts
            })
        })
        .collect();
    let mut total = [0usize; 2];
    for handle in handles {
        let counts = handle.join().unwrap();
        total[0] += counts[0];
        total[1] += counts[1];
    }
    // Every turn is handed out exactly once, so the split is exact.
    assert_eq!(total, [1000, 1000]);
}

#[test]
fn a_cluster_node_routes_shared_subscriptions_apart_from_plain_ones() {
    let mut index = SubscriptionIndex::new(MatchMode::Aws);
    index.insert("$share/workers/jobs/+", "w1", ());
    index.insert("$share/workers/jobs/+", "w2", ());
    index.insert("jobs/+", "plain", ());
    let mut shared: Vec<_> = index.shared_filters().collect();
    shared.sort();
    assert_eq!(shared, ["$share/workers/jobs/+"]);

    // Plain matching leaves the group out ...
    let mut plain = Vec::new();
    index.for_each_plain_match("jobs/1", |f, s, _| plain.push((f.to_string(), *s)));
    assert_eq!(plain, [("jobs/+".to_string(), "plain")]);
    // ... which gets its messages one member at a time.
    let mut turns = Vec::new();
    for _ in 0..3 {
        index.pick_shared("$share/workers/jobs/+", |_, s, _| turns.push(*s));
    }
    assert_eq!(turns, ["w1", "w2", "w1"]);
    for unknown in [
        "$share/other/jobs/+",
        "jobs/+",
        "$share/workers/x",
        "$share/g",
    ] {
        index.pick_shared(unknown, |_, s, _| panic!("{unknown} picked {s}"));
    }

    // The list follows the group's life: its last member leaving ends it.
    index.remove("$share/workers/jobs/+", &"w1");
    assert_eq!(index.shared_filters().count(), 1);
    index.remove_subscriber(&"w2");
    assert_eq!(index.shared_filters().count(), 0);
}
