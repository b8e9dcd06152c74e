//! The parsers never panic, and what is written reads back the same.

use proptest::prelude::*;
use roost_eventlog::{
    parse_since, Event, EventType, LogLevel, LogTarget, LoggingConfig, Status, Subject, TargetType,
};

fn level() -> impl Strategy<Value = LogLevel> {
    prop::sample::select(LogLevel::ALL.to_vec())
}

fn event_type() -> impl Strategy<Value = EventType> {
    prop::sample::select(EventType::ALL.to_vec())
}

proptest! {
    #[test]
    fn since_never_panics(text in "\\PC{0,12}") {
        let _ = parse_since(&text);
    }

    #[test]
    fn since_reads_what_it_names(count in 0u64..300, unit in prop::sample::select(vec![('s', 1u64), ('m', 60), ('h', 3600), ('d', 86_400)])) {
        let parsed = parse_since(&format!("{count}{}", unit.0)).unwrap();
        prop_assert_eq!(parsed.as_secs(), count * unit.1);
    }

    #[test]
    fn levels_and_types_round_trip(l in level(), t in prop::sample::select(TargetType::ALL.to_vec()), e in event_type()) {
        prop_assert_eq!(l.as_str().parse::<LogLevel>().unwrap(), l);
        prop_assert_eq!(t.as_str().parse::<TargetType>().unwrap(), t);
        prop_assert_eq!(EventType::parse(e.as_str()), Some(e));
    }

    #[test]
    fn level_and_type_parsers_never_panic(text in "\\PC{0,20}") {
        let _ = text.parse::<LogLevel>();
        let _ = text.parse::<TargetType>();
        let _ = EventType::parse(&text);
    }

    #[test]
    fn target_names_are_checked_without_panicking(
        t in prop::sample::select(TargetType::ALL.to_vec()),
        name in prop::option::of("\\PC{0,140}"),
    ) {
        if let Ok(target) = LogTarget::new(t, name.as_deref()) {
            prop_assert!(!target.target_name.is_empty());
            prop_assert!(target.target_name.chars().count() <= 128);
            prop_assert!(t != TargetType::Default);
        }
    }

    #[test]
    fn a_client_id_target_decides_for_that_client_only(
        id in "[a-zA-Z0-9_-]{1,20}",
        other in "[a-zA-Z0-9_-]{1,20}",
        default in level(),
        specific in level(),
    ) {
        prop_assume!(id != other);
        let mut config = LoggingConfig::new(roost_eventlog::LoggingOptions {
            default_log_level: default,
            ..Default::default()
        });
        config.set_level(LogTarget::new(TargetType::ClientId, Some(&id)).unwrap(), specific);
        let subject = |c| Subject { client_id: Some(c), ..Default::default() };
        prop_assert_eq!(config.level_for(&subject(&id)), specific);
        prop_assert_eq!(config.level_for(&subject(&other)), default);
        prop_assert_eq!(config.most_verbose(), default.max(specific));
    }

    #[test]
    fn records_round_trip(
        millis in 0i64..4_102_444_800_000,
        e in event_type(),
        failure in any::<bool>(),
        client in prop::option::of("\\PC{0,30}"),
        topic in prop::option::of("\\PC{0,30}"),
        reason in prop::option::of("\\PC{0,30}"),
        payload in prop::option::of(prop::collection::vec(any::<u8>(), 0..64)),
    ) {
        let status = if failure { Status::Failure } else { Status::Success };
        let mut event = Event::new(millis, uuid::Uuid::from_u128(7), "000000000000".into(), e, status);
        if let Some(c) = client { event = event.client_id(c); }
        if let Some(t) = topic { event = event.topic(t); }
        if let Some(r) = reason { event = event.reason(r); }
        if let Some(p) = payload { event = event.payload(&p); }
        let line = event.to_json_line();
        prop_assert!(!line.contains('\n'));
        prop_assert_eq!(Event::from_json_line(&line), Some(event.clone()));
        prop_assert_eq!(event.unix_millis(), Some(millis));
    }

    #[test]
    fn reading_any_line_never_panics(line in "\\PC{0,200}") {
        let _ = Event::from_json_line(&line);
    }
}
