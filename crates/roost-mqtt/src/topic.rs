//! Topic syntax the specification requires of every packet (section 4.7 and
//! 4.8.2): no wildcards in topic names, wildcards that occupy whole levels in
//! topic filters, and the `$share/{ShareName}/{filter}` form of MQTT 5.
//!
//! Only syntax lives here. Matching, `$`-topic rules, AWS's level count and
//! reserved `$aws/` topics belong to the topic and broker crates.

/// A topic name a PUBLISH or a will may carry: at least one character and
/// no wildcard.
#[cfg(test)]
fn is_valid_topic_name(topic: &str) -> bool {
    !topic.is_empty() && !has_wildcard(topic)
}

pub(crate) fn has_wildcard(topic: &str) -> bool {
    topic.bytes().any(|b| b == b'+' || b == b'#')
}

/// A topic filter a SUBSCRIBE or UNSUBSCRIBE may carry. With `shared` (MQTT
/// 5), a filter starting with `$share/` must be a well-formed shared
/// subscription; in MQTT 3.1.1 it is an ordinary filter.
pub(crate) fn is_valid_topic_filter(filter: &str, shared: bool) -> bool {
    if shared {
        if let Some(rest) = filter.strip_prefix("$share/") {
            // The ShareName ends at the first '/', so it cannot hold one.
            return match rest.split_once('/') {
                Some((share_name, inner)) => {
                    !share_name.is_empty() && !has_wildcard(share_name) && levels_valid(inner)
                }
                None => false,
            };
        }
    }
    levels_valid(filter)
}

/// Whether a (valid, MQTT 5) filter names a shared subscription.
pub(crate) fn is_shared_subscription(filter: &str) -> bool {
    filter.starts_with("$share/")
}

fn levels_valid(filter: &str) -> bool {
    if filter.is_empty() {
        return false;
    }
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        if level.contains('#') && (level != "#" || levels.peek().is_some()) {
            return false;
        }
        if level.contains('+') && level != "+" {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_examples() {
        // Section 4.7.1.2 and 4.7.1.3 of MQTT 5.0.
        for valid in [
            "sport/tennis/player1/#",
            "sport/#",
            "#",
            "sport/tennis/#",
            "+",
            "+/tennis/#",
            "sport/+/player1",
            "/finance",
            "/",
            "+/+",
            "a//b",
        ] {
            assert!(is_valid_topic_filter(valid, true), "{valid}");
        }
        for invalid in [
            "sport/tennis#",
            "sport/tennis/#/ranking",
            "sport+",
            "",
            "#/",
        ] {
            assert!(!is_valid_topic_filter(invalid, true), "{invalid}");
        }
    }

    #[test]
    fn shared_subscriptions() {
        assert!(is_valid_topic_filter(
            "$share/consumer1/sport/tennis/+",
            true
        ));
        assert!(is_valid_topic_filter("$share/consumer1//finance", true));
        assert!(!is_valid_topic_filter("$share//sport", true));
        assert!(!is_valid_topic_filter("$share/group", true));
        assert!(!is_valid_topic_filter("$share/group/", true));
        assert!(!is_valid_topic_filter("$share/gr+oup/a", true));
        // In 3.1.1 it is just a filter.
        assert!(is_valid_topic_filter("$share/group", false));
    }

    #[test]
    fn names() {
        assert!(is_valid_topic_name("a/b"));
        assert!(is_valid_topic_name("$aws/things/t/shadow/update"));
        assert!(!is_valid_topic_name(""));
        assert!(!is_valid_topic_name("a/+"));
        assert!(!is_valid_topic_name("a/#"));
    }
}
