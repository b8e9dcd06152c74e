//! Topic name and filter validation: the MQTT placement rules, shared
//! subscriptions, and AWS's limits with the Basic Ingest exemption.

use roost_topic::*;

fn aws() -> TopicLimits {
    TopicLimits::aws()
}

#[test]
fn presets() {
    assert_eq!(TopicLimits::default(), TopicLimits::aws());
    assert_eq!(
        TopicLimits::aws(),
        TopicLimits {
            max_bytes: 256,
            max_levels: 8
        }
    );
    assert_eq!(TopicLimits::general().max_bytes, 65_535);
    assert_eq!(TopicLimits::general().max_levels, usize::MAX);
}

#[test]
fn topic_names_accept_empty_levels_spaces_and_dollars() {
    for topic in [
        "a",
        "/",
        "a//b",
        "/a",
        "a/",
        "//",
        "sensor/temperature/room 1",
        "$aws/things/t/shadow/update",
        "$share/g/x",
        "émoji/🌡",
        "a$/b",
    ] {
        assert_eq!(validate_topic_name(topic, &aws()), Ok(()), "{topic:?}");
    }
}

#[test]
fn topic_names_refuse_wildcards_nul_and_emptiness() {
    let cases: &[(&str, TopicError)] = &[
        ("", TopicError::Empty),
        ("a/+", TopicError::WildcardInTopicName),
        ("+", TopicError::WildcardInTopicName),
        ("a/#", TopicError::WildcardInTopicName),
        ("sport+", TopicError::WildcardInTopicName),
        ("a#b", TopicError::WildcardInTopicName),
        ("a\0b", TopicError::NullCharacter),
        ("\0", TopicError::NullCharacter),
    ];
    for (topic, err) in cases {
        assert_eq!(
            validate_topic_name(topic, &aws()),
            Err(err.clone()),
            "{topic:?}"
        );
    }
}

#[test]
fn filters_follow_the_wildcard_placement_rules() {
    for filter in [
        "#",
        "+",
        "a/#",
        "a/+",
        "+/+",
        "/+",
        "+/",
        "a/+/b/#",
        "+/#",
        "a//b",
        "/a",
        "a/",
        "/",
        "sport/tennis/+",
        "$aws/things/+/shadow/update/accepted",
        "$SYS/#",
    ] {
        let parsed = validate_topic_filter(filter, &aws());
        assert_eq!(
            parsed,
            Ok(Filter {
                share_group: None,
                filter
            }),
            "{filter:?}"
        );
    }
    let cases: &[(&str, TopicError)] = &[
        ("", TopicError::Empty),
        ("sport+", TopicError::MisplacedSingleLevelWildcard),
        ("+sport", TopicError::MisplacedSingleLevelWildcard),
        ("a/b+/c", TopicError::MisplacedSingleLevelWildcard),
        ("++", TopicError::MisplacedSingleLevelWildcard),
        ("a/#/b", TopicError::MisplacedMultiLevelWildcard),
        ("#/", TopicError::MisplacedMultiLevelWildcard),
        ("a/#/", TopicError::MisplacedMultiLevelWildcard),
        ("sport#", TopicError::MisplacedMultiLevelWildcard),
        ("a/b#", TopicError::MisplacedMultiLevelWildcard),
        ("#a", TopicError::MisplacedMultiLevelWildcard),
        ("##", TopicError::MisplacedMultiLevelWildcard),
        ("+#", TopicError::MisplacedSingleLevelWildcard),
        ("a\0", TopicError::NullCharacter),
    ];
    for (filter, err) in cases {
        assert_eq!(
            validate_topic_filter(filter, &aws()),
            Err(err.clone()),
            "{filter:?}"
        );
    }
}

#[test]
fn shared_subscriptions_are_split_and_checked() {
    let ok: &[(&str, &str, &str)] = &[
        ("$share/g/#", "g", "#"),
        ("$share/g/a/+/b", "g", "a/+/b"),
        ("$share/group-1/sensor/#", "group-1", "sensor/#"),
        ("$share/g//", "g", "/"),
        (
            "$share/g/$aws/things/+/shadow/update",
            "g",
            "$aws/things/+/shadow/update",
        ),
        ("$share/g/$share/h/x", "g", "$share/h/x"),
    ];
    for (text, group, inner) in ok {
        let parsed = validate_topic_filter(text, &aws()).unwrap();
        assert_eq!(parsed.share_group, Some(*group), "{text:?}");
        assert_eq!(parsed.filter, *inner, "{text:?}");
        assert!(parsed.is_shared());
    }
    let bad: &[(&str, TopicError)] = &[
        ("$share//x", TopicError::InvalidShareName),
        ("$share/", TopicError::InvalidShareName),
        ("$share/g+/x", TopicError::InvalidShareName),
        ("$share/+/x", TopicError::InvalidShareName),
        ("$share/#/x", TopicError::InvalidShareName),
        ("$share/g", TopicError::MissingSharedFilter),
        ("$share/g/", TopicError::MissingSharedFilter),
        ("$share/g/a/#/b", TopicError::MisplacedMultiLevelWildcard),
        ("$share/g/a+", TopicError::MisplacedSingleLevelWildcard),
        ("$share/g\0/x", TopicError::NullCharacter),
    ];
    for (text, err) in bad {
        assert_eq!(
            validate_topic_filter(text, &aws()),
            Err(err.clone()),
            "{text:?}"
        );
    }
    // Not the shared-subscription prefix: ordinary filters.
    for text in ["$share", "$shared/g/x", "$SHARE/g/x", "a/$share/g/x"] {
        let parsed = validate_topic_filter(text, &aws()).unwrap();
        assert_eq!(parsed.share_group, None, "{text:?}");
        assert_eq!(parsed.filter, text);
    }
}

#[test]
fn wildcard_detection() {
    let has = |f: &str| validate_topic_filter(f, &aws()).unwrap().has_wildcards();
    assert!(has("a/+"));
    assert!(has("#"));
    assert!(has("$share/g/a/#"));
    assert!(!has("a/b"));
    assert!(!has("$share/g/a/b"));
}

#[test]
fn length_limit_is_in_bytes() {
    let at = "a".repeat(256);
    let over = "a".repeat(257);
    assert_eq!(validate_topic_name(&at, &aws()), Ok(()));
    assert_eq!(
        validate_topic_name(&over, &aws()),
        Err(TopicError::TooLong {
            length: 257,
            limit: 256
        })
    );
    // 128 two-byte characters are 256 bytes; one more is over.
    let wide = "é".repeat(128);
    assert_eq!(validate_topic_name(&wide, &aws()), Ok(()));
    let wider = "é".repeat(129);
    assert!(matches!(
        validate_topic_name(&wider, &aws()),
        Err(TopicError::TooLong { length: 258, .. })
    ));
    assert!(validate_topic_filter(&format!("{}/#", "a".repeat(254)), &aws()).is_ok());
    assert!(validate_topic_filter(&format!("{}/#", "a".repeat(255)), &aws()).is_err());
    // General limits: MQTT's 65,535.
    assert_eq!(validate_topic_name(&over, &TopicLimits::general()), Ok(()));
    let huge = "a".repeat(65_536);
    assert!(matches!(
        validate_topic_name(&huge, &TopicLimits::general()),
        Err(TopicError::TooLong { .. })
    ));
}

#[test]
fn level_limit_counts_slashes() {
    let seven_slashes = "a/b/c/d/e/f/g/h";
    let eight_slashes = "a/b/c/d/e/f/g/h/i";
    assert_eq!(validate_topic_name(seven_slashes, &aws()), Ok(()));
    assert_eq!(
        validate_topic_name(eight_slashes, &aws()),
        Err(TopicError::TooManyLevels {
            levels: 9,
            limit: 8
        })
    );
    // Empty levels count like any other.
    assert_eq!(validate_topic_name("///////", &aws()), Ok(()));
    assert!(validate_topic_name("////////", &aws()).is_err());
    assert!(validate_topic_filter("+/+/+/+/+/+/+/#", &aws()).is_ok());
    assert!(validate_topic_filter("+/+/+/+/+/+/+/+/#", &aws()).is_err());
    assert_eq!(
        validate_topic_name(eight_slashes, &TopicLimits::general()),
        Ok(())
    );
    let deep = vec!["x"; 10_000].join("/");
    assert_eq!(validate_topic_name(&deep, &TopicLimits::general()), Ok(()));
}

#[test]
fn basic_ingest_prefix_is_not_counted() {
    // 3 slashes of prefix plus 7 more: allowed only because the prefix is exempt.
    let topic = "$aws/rules/my_rule/a/b/c/d/e/f/g/h";
    assert_eq!(validate_topic_name(topic, &aws()), Ok(()));
    assert!(matches!(
        validate_topic_name("$aws/rules/my_rule/a/b/c/d/e/f/g/h/i", &aws()),
        Err(TopicError::TooManyLevels { levels: 9, .. })
    ));
    // The same depth outside Basic Ingest is refused.
    assert!(validate_topic_name("$aws/things/my_rule/a/b/c/d/e/f/g/h", &aws()).is_err());
    // Bytes: 256 after the prefix are fine.
    let rest = "r".repeat(256);
    let name = "n".repeat(MAX_RULE_NAME_BYTES);
    assert_eq!(
        validate_topic_name(&format!("$aws/rules/{name}/{rest}"), &aws()),
        Ok(())
    );
    assert!(validate_topic_name(&format!("$aws/rules/{name}/{rest}x"), &aws()).is_err());
    // A name that cannot be a rule's gets no exemption, so the prefix counts.
    let long_name = "n".repeat(MAX_RULE_NAME_BYTES + 1);
    let short_rest = "r".repeat(150);
    assert!(validate_topic_name(&format!("$aws/rules/{name}/{short_rest}"), &aws()).is_ok());
    assert!(matches!(
        validate_topic_name(&format!("$aws/rules/{long_name}/{short_rest}"), &aws()),
        Err(TopicError::TooLong { length: 291, .. })
    ));
    assert!(validate_topic_name("$aws/rules/bad-name/a/b/c/d/e/f", &aws()).is_err());
    // Filters get the same exemption.
    assert!(validate_topic_filter("$aws/rules/my_rule/a/b/c/d/e/f/g/#", &aws()).is_ok());
    assert!(validate_topic_filter("$aws/rules/+/a/b/c/d/e/f/g/#", &aws()).is_err());
}

#[test]
fn shared_prefix_is_not_counted_but_the_group_is_bounded() {
    let filter = "$share/g/a/b/c/d/e/f/g/#";
    assert_eq!(
        validate_topic_filter(filter, &aws()).map(|f| f.filter),
        Ok("a/b/c/d/e/f/g/#")
    );
    assert!(validate_topic_filter("$share/g/a/b/c/d/e/f/g/h/#", &aws()).is_err());
    let inner = "a".repeat(256);
    assert!(validate_topic_filter(&format!("$share/g/{inner}"), &aws()).is_ok());
    assert!(validate_topic_filter(&format!("$share/g/{inner}a"), &aws()).is_err());
    let group = "g".repeat(257);
    assert_eq!(
        validate_topic_filter(&format!("$share/{group}/x"), &aws()),
        Err(TopicError::ShareNameTooLong {
            length: 257,
            limit: 256
        })
    );
}

#[test]
fn errors_do_not_echo_the_topic() {
    let secret = "tenant-secret/device";
    let err = validate_topic_name(&format!("{secret}/+"), &aws()).unwrap_err();
    assert!(!err.to_string().contains("tenant-secret"));
    assert_eq!(
        TopicError::TooLong {
            length: 300,
            limit: 256
        }
        .to_string(),
        "topic is 300 bytes long; the limit is 256"
    );
}
