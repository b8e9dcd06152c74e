//! Does one topic filter match one topic name.
//!
//! For: the rules engine (one FROM filter per rule), authorization helpers, and as
//! the plain statement of the semantics that [`crate::SubscriptionIndex`] must
//! agree with (the property tests hold it to this function).
//! Never: allocate, or panic on any pair of strings; a malformed filter or topic
//! simply matches nothing.

use crate::validate::{is_topic_name_syntax, parse_filter};

/// Which flavour of `#` matching applies.
///
/// The two differ in exactly one case: whether `parent/#` matches `parent` itself.
/// Everything else (including `parent/#` matching `parent/`, an empty last level)
/// is the same.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MatchMode {
    /// AWS IoT Core: `#` matches the levels below its parent but not the parent
    /// itself, so `sensor/#` matches `sensor/` and `sensor/a`, not `sensor`. AWS
    /// documents this for broker subscriptions; Roost uses it for rules' FROM
    /// filters too (UNCONFIRMED there, see `docs/topics.md`).
    #[default]
    Aws,
    /// The MQTT specification: `sensor/#` also matches `sensor`.
    Mqtt,
}

/// Whether `filter` matches the topic name `topic`.
///
/// `filter` may be a shared subscription (`$share/<group>/<filter>`); the part
/// after the group is what is matched. A filter whose first level is `+` or `#`
/// does not match a topic starting with `$` (MQTT's rule, which keeps `#`
/// subscribers away from `$aws/...` traffic). A malformed filter (see
/// [`crate::validate_topic_filter`]) or topic name (empty, or containing `+`, `#`
/// or U+0000) matches nothing. Limits are not checked: the caller validated both
/// strings against its own.
pub fn matches(filter: &str, topic: &str, mode: MatchMode) -> bool {
    match parse_filter(filter) {
        Ok(parsed) => is_topic_name_syntax(topic) && matches_wellformed(parsed.filter, topic, mode),
        Err(_) => false,
    }
}

/// Matching proper, for a filter and topic already known to be well-formed.
fn matches_wellformed(filter: &str, topic: &str, mode: MatchMode) -> bool {
    if topic.starts_with('$') && filter.starts_with(['+', '#']) {
        return false;
    }
    let mut filter_levels = filter.split('/');
    let mut topic_levels = topic.split('/');
    loop {
        match (filter_levels.next(), topic_levels.next()) {
            (Some("#"), Some(_)) => return true,
            // The topic ended at the level `#` hangs from.
            (Some("#"), None) => return mode == MatchMode::Mqtt,
            (Some("+"), Some(_)) => {}
            (Some(want), Some(got)) if want == got => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_inputs_match_nothing() {
        for mode in [MatchMode::Aws, MatchMode::Mqtt] {
            assert!(!matches("a/#/b", "a/x/b", mode));
            assert!(!matches("", "", mode));
            assert!(!matches("+", "", mode));
            assert!(!matches("a/+", "a/+", mode));
            assert!(!matches("a/#", "a/#", mode));
            assert!(!matches("$share/g", "$share/g", mode));
            assert!(!matches("#", "a\0b", mode));
        }
    }
}
