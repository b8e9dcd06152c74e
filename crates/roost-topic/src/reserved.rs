//! Reserved (`$`) topics, AWS IoT Basic Ingest, and picking levels out of a topic.
//!
//! For: the few facts about a topic's *shape* that the broker and the rules engine
//! need besides matching: is it reserved, is it a Basic Ingest publish (and to which
//! rule), what is its n-th level (`topic(n)` in IoT SQL).
//! Never: decide who may use a reserved topic. That is the policy engine's job, and
//! which `$aws/...` operations exist is the broker's.

/// What every Basic Ingest topic starts with: `$aws/rules/<ruleName>/<rest>` goes
/// straight to rule `<ruleName>` and is never delivered to subscribers.
pub const BASIC_INGEST_PREFIX: &str = "$aws/rules/";

/// The longest rule name AWS accepts (`CreateTopicRule`, pattern `[a-zA-Z0-9_]+`).
pub const MAX_RULE_NAME_BYTES: usize = 128;

/// Whether `topic` is reserved: it starts with `$` (`$aws/...`, `$share/...`, or any
/// other). Filters that start with a wildcard never match such topics, and AWS lets
/// clients use them only as each service allows.
pub fn is_reserved(topic: &str) -> bool {
    topic.starts_with('$')
}

/// A Basic Ingest topic taken apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BasicIngest<'a> {
    /// The rule the message is for.
    pub rule_name: &'a str,
    /// The part after `$aws/rules/<ruleName>/`: what the rule's `topic()` sees,
    /// and the only part that counts toward the topic limits. Empty for
    /// `$aws/rules/<ruleName>` and `$aws/rules/<ruleName>/`.
    pub topic: &'a str,
}

/// Splits a Basic Ingest topic (`$aws/rules/<ruleName>[/<rest>]`) into rule name and
/// rest; `None` for any other topic, including one whose rule name could not be a
/// rule's (empty, over [`MAX_RULE_NAME_BYTES`], or outside `[A-Za-z0-9_]`). Checking
/// the name here is what keeps the limit exemption bounded: only a real rule name's
/// worth of prefix goes uncounted.
pub fn basic_ingest(topic: &str) -> Option<BasicIngest<'_>> {
    let after = topic.strip_prefix(BASIC_INGEST_PREFIX)?;
    let (rule_name, rest) = match after.find('/') {
        Some(slash) => (&after[..slash], &after[slash + 1..]),
        None => (after, ""),
    };
    let valid_name = !rule_name.is_empty()
        && rule_name.len() <= MAX_RULE_NAME_BYTES
        && rule_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    valid_name.then_some(BasicIngest {
        rule_name,
        topic: rest,
    })
}

/// The `n`-th level of `topic`, counting from 1 as IoT SQL's `topic(n)` does:
/// `topic_level("foo/bar/baz", 1) == Some("foo")`. `None` for 0 or past the end.
/// An empty level (`a//b`) is `Some("")`.
pub fn topic_level(topic: &str, n: usize) -> Option<&str> {
    topic.split('/').nth(n.checked_sub(1)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_ingest_needs_a_real_rule_name() {
        assert_eq!(
            basic_ingest("$aws/rules/my_rule_1/a/b"),
            Some(BasicIngest {
                rule_name: "my_rule_1",
                topic: "a/b"
            })
        );
        assert_eq!(
            basic_ingest("$aws/rules/r"),
            Some(BasicIngest {
                rule_name: "r",
                topic: ""
            })
        );
        assert_eq!(basic_ingest("$aws/rules/r/").map(|b| b.topic), Some(""));
        assert_eq!(basic_ingest("$aws/rules/"), None);
        assert_eq!(basic_ingest("$aws/rules//x"), None);
        assert_eq!(basic_ingest("$aws/rules/bad-name/x"), None);
        assert_eq!(basic_ingest("$aws/rules/+/x"), None);
        assert_eq!(basic_ingest("$AWS/rules/r/x"), None);
        assert_eq!(basic_ingest("aws/rules/r/x"), None);
        let long = format!("$aws/rules/{}/x", "r".repeat(MAX_RULE_NAME_BYTES));
        assert!(basic_ingest(&long).is_some());
        let too_long = format!("$aws/rules/{}/x", "r".repeat(MAX_RULE_NAME_BYTES + 1));
        assert_eq!(basic_ingest(&too_long), None);
    }

    #[test]
    fn reserved_is_a_leading_dollar() {
        assert!(is_reserved("$aws/things/t/shadow/update"));
        assert!(is_reserved("$share/g/x"));
        assert!(is_reserved("$"));
        assert!(!is_reserved("a/$aws"));
        assert!(!is_reserved(""));
    }

    #[test]
    fn topic_levels_count_from_one() {
        assert_eq!(topic_level("foo/bar/baz", 1), Some("foo"));
        assert_eq!(topic_level("foo/bar/baz", 3), Some("baz"));
        assert_eq!(topic_level("foo/bar/baz", 4), None);
        assert_eq!(topic_level("foo/bar/baz", 0), None);
        assert_eq!(topic_level("a//b", 2), Some(""));
        assert_eq!(topic_level("/a", 1), Some(""));
    }
}
