//! Matching tables for both modes, and the IoT SQL FROM-clause cases the rules
//! engine relies on. Each row is checked with `matches` and through a
//! `SubscriptionIndex` holding just that filter, so the two cannot drift apart.

use roost_topic::*;

use MatchMode::{Aws, Mqtt};

/// (filter, topic, matches in AWS mode, matches in MQTT mode)
const TABLE: &[(&str, &str, bool, bool)] = &[
    // Exact levels; case matters.
    ("a/b", "a/b", true, true),
    ("a/b", "a/c", false, false),
    ("a/b", "a/b/c", false, false),
    ("a/b/c", "a/b", false, false),
    ("sensor", "Sensor", false, false),
    ("a/b", "a/b/", false, false),
    // Empty levels are levels.
    ("a//b", "a//b", true, true),
    ("a//b", "a/b", false, false),
    ("/a", "/a", true, true),
    ("/a", "a", false, false),
    ("a/", "a/", true, true),
    ("a/", "a", false, false),
    ("/", "/", true, true),
    // `+`: exactly one level, possibly empty.
    ("a/+", "a/b", true, true),
    ("a/+", "a/", true, true),
    ("a/+", "a", false, false),
    ("a/+", "a/b/c", false, false),
    ("+", "a", true, true),
    ("+", "/", false, false),
    ("+/+", "/", true, true),
    ("/+", "/finance", true, true),
    ("+/+", "/finance", true, true),
    ("+", "/finance", false, false),
    ("a/+/c", "a//c", true, true),
    ("+/b", "/b", true, true),
    ("sport/tennis/+", "sport/tennis/player1", true, true),
    (
        "sport/tennis/+",
        "sport/tennis/player1/ranking",
        false,
        false,
    ),
    ("sport/+", "sport", false, false),
    ("sport/+", "sport/", true, true),
    // `#`: the one place AWS and MQTT differ is the parent level itself.
    ("sensor/#", "sensor/", true, true),
    ("sensor/#", "sensor/temperature", true, true),
    ("sensor/#", "sensor/temperature/room1", true, true),
    ("sensor/#", "sensor", false, true),
    ("sensor/#", "Sensor/temperature", false, false),
    ("sensor/#", "sensors", false, false),
    (
        "sport/tennis/player1/#",
        "sport/tennis/player1",
        false,
        true,
    ),
    (
        "sport/tennis/player1/#",
        "sport/tennis/player1/ranking",
        true,
        true,
    ),
    (
        "sport/tennis/player1/#",
        "sport/tennis/player1/score/wimbledon",
        true,
        true,
    ),
    ("a/b/#", "a", false, false),
    ("#", "a", true, true),
    ("#", "/", true, true),
    ("#", "a/b/c", true, true),
    ("+/#", "a", false, true),
    ("+/#", "a/", true, true),
    ("+/#", "a/b/c", true, true),
    ("a/+/#", "a/b", false, true),
    ("a/+/#", "a/b/c", true, true),
    ("/#", "/", true, true),
    ("/#", "", false, false),
    ("//#", "/", false, true),
    // `$` topics: never matched by a filter whose first level is a wildcard.
    ("#", "$SYS/broker", false, false),
    ("#", "$aws/things/t/shadow/update", false, false),
    ("+/#", "$aws/things", false, false),
    ("+/things/t", "$aws/things/t", false, false),
    ("+", "$", false, false),
    ("$aws/#", "$aws/things/t", true, true),
    ("$aws/#", "$aws", false, true),
    (
        "$aws/things/+/shadow/update",
        "$aws/things/t/shadow/update",
        true,
        true,
    ),
    ("$SYS/+", "$SYS/x", true, true),
    // Only the first character of the topic matters for the `$` rule.
    ("#", "a/$b", true, true),
    ("+/+", "a/$b", true, true),
    // Shared filters match what follows the group.
    ("$share/g/a/+", "a/b", true, true),
    ("$share/g/#", "a/b", true, true),
    ("$share/g/#", "$aws/x", false, false),
    ("$share/g/a/#", "a", false, true),
    ("$share/g/a/b", "$share/g/a/b", false, false),
    // `$share` alone is an ordinary literal filter.
    ("$share", "$share", true, true),
    // Malformed filters and topic names match nothing.
    ("a/#/b", "a/x/b", false, false),
    ("sport+", "sport+", false, false),
    ("$share/g", "$share/g", false, false),
    ("a/+", "a/+", false, false),
    ("+", "", false, false),
    ("", "", false, false),
];

fn via_index(filter: &str, topic: &str, mode: MatchMode) -> bool {
    let mut index = SubscriptionIndex::new(mode);
    index.insert(filter, 1u8, ());
    let mut hits = 0;
    index.for_each_match(topic, |f, _, _| {
        assert_eq!(f, filter);
        hits += 1;
    });
    assert!(hits <= 1);
    hits == 1
}

#[test]
fn matching_table() {
    for &(filter, topic, aws, mqtt) in TABLE {
        assert_eq!(
            matches(filter, topic, Aws),
            aws,
            "AWS: {filter:?} vs {topic:?}"
        );
        assert_eq!(
            matches(filter, topic, Mqtt),
            mqtt,
            "MQTT: {filter:?} vs {topic:?}"
        );
        assert_eq!(
            via_index(filter, topic, Aws),
            aws,
            "index AWS: {filter:?} vs {topic:?}"
        );
        assert_eq!(
            via_index(filter, topic, Mqtt),
            mqtt,
            "index MQTT: {filter:?} vs {topic:?}"
        );
    }
}

#[test]
fn default_mode_is_aws() {
    assert_eq!(MatchMode::default(), Aws);
}

/// The FROM-clause examples of AWS's IoT SQL reference (docs/topics.md).
#[test]
fn sql_from_clause_cases() {
    // `'a/#'` matches `a/b`, `a/c` and `a/e/f`.
    for topic in ["a/b", "a/c", "a/e/f"] {
        assert!(matches("a/#", topic, Aws), "{topic}");
    }
    // `sensor/#` matches `sensor/`, `sensor/temperature`, `sensor/temperature/room1`,
    // but not `sensor` (the broker's rule, followed for rules too).
    for topic in ["sensor/", "sensor/temperature", "sensor/temperature/room1"] {
        assert!(matches("sensor/#", topic, Aws), "{topic}");
    }
    assert!(!matches("sensor/#", "sensor", Aws));
    // `topic/+` matches one level only, and levels are compared whole.
    assert!(matches("topic/+", "topic/a", Aws));
    assert!(!matches("topic/+", "topic/a/b", Aws));
    assert!(!matches("topic/+", "topic-2/x", Aws));
    // `+` in several levels, combined with `#`.
    assert!(matches("a/+/c/+/#", "a/b/c/d/e", Aws));
    assert!(!matches("a/+/c/+/#", "a/b/x/d/e", Aws));
    // Case-sensitive, exact per level.
    assert!(!matches("Topic/+", "topic/a", Aws));
    // `$` topics are reachable by naming them literally, never through a leading
    // wildcard.
    let shadow = "$aws/things/my-thing/shadow/update/accepted";
    assert!(matches("$aws/things/+/shadow/update/accepted", shadow, Aws));
    assert!(!matches("#", shadow, Aws));
    assert!(!matches("+/things/+/shadow/update/accepted", shadow, Aws));
    // Basic Ingest: the rule is named by the topic and `topic()` sees the rest.
    let ingest = basic_ingest("$aws/rules/BuildingTelemetry/building/7/temp").unwrap();
    assert_eq!(ingest.rule_name, "BuildingTelemetry");
    assert_eq!(ingest.topic, "building/7/temp");
    assert_eq!(topic_level(ingest.topic, 1), Some("building"));
    assert_eq!(topic_level("foo/bar/baz", 1), Some("foo"));
}
