//! Arbitrary text as topic names and filters: validation must never panic or let a
//! wildcard into a topic name, and the subscription index must agree with
//! `matches` over everything it holds, then prune back to its root.
//!
//! Input: the first byte picks the match mode and limits; the rest is UTF-8 text,
//! one string per line. Every line is inserted as a filter (subscriber = its line
//! number) and then routed as a topic.

#![no_main]

use std::collections::{BTreeMap, BTreeSet};

use libfuzzer_sys::fuzz_target;
use roost_topic::{
    matches, validate_topic_filter, validate_topic_name, MatchMode, SubscriptionIndex, TopicLimits,
};

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let mode = if control & 1 == 0 {
        MatchMode::Aws
    } else {
        MatchMode::Mqtt
    };
    let limits = if control & 2 == 0 {
        TopicLimits::aws()
    } else {
        TopicLimits::general()
    };
    let lines: Vec<&str> = text.split('\n').take(64).collect();

    for line in &lines {
        if validate_topic_name(line, &limits).is_ok() {
            assert!(!line.is_empty());
            assert!(!line.contains(['+', '#', '\0']));
        }
        if let Ok(filter) = validate_topic_filter(line, &limits) {
            assert!(!filter.filter.is_empty());
            assert!(line.ends_with(filter.filter));
        }
    }

    let mut index = SubscriptionIndex::new(mode);
    for (n, line) in lines.iter().enumerate() {
        index.insert(line, n, ());
    }
    for topic in &lines {
        let mut plain = BTreeSet::new();
        let mut shared: BTreeMap<&str, BTreeSet<usize>> = BTreeMap::new();
        for (n, filter) in lines.iter().enumerate() {
            if matches(filter, topic, mode) {
                if filter.starts_with("$share/") {
                    shared.entry(filter).or_default().insert(n);
                } else {
                    plain.insert((*filter, n));
                }
            }
        }
        let mut got_plain = BTreeSet::new();
        let mut got_shared: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        index.for_each_match(topic, |filter, subscriber, _| {
            if filter.starts_with("$share/") {
                got_shared
                    .entry(filter.to_string())
                    .or_default()
                    .push(*subscriber);
            } else {
                assert!(got_plain.insert((filter.to_string(), *subscriber)));
            }
        });
        let plain: BTreeSet<(String, usize)> =
            plain.into_iter().map(|(f, n)| (f.to_string(), n)).collect();
        assert_eq!(got_plain, plain);
        assert_eq!(got_shared.len(), shared.len());
        for (filter, chosen) in &got_shared {
            assert_eq!(chosen.len(), 1);
            assert!(shared[filter.as_str()].contains(&chosen[0]));
        }
    }

    assert_eq!(index.len(), lines.len());
    for n in 0..lines.len() {
        assert_eq!(index.remove_subscriber(&n), 1);
    }
    assert!(index.is_empty());
    assert_eq!(index.node_count(), 1);
});
