//! What CreateTopicRule and ReplaceTopicRule check before a rule is stored,
//! and the warnings Roost adds where AWS stays silent.

use crate::actions::Action;
use roost_registry::{Registry, RegistryError};
use roost_sql::SqlVersion;
use serde_json::Value;

/// Validates topic rules for the registry.
pub struct Validator {
    /// The registry this validator is installed in (a reference cycle that
    /// lives as long as the process, which is what both are for).
    registry: Registry,
}

/// AWS allows at most 10 actions per rule.
const MAX_ACTIONS: usize = 10;

impl Validator {
    pub fn new(registry: Registry) -> Self {
        Self { registry }
    }

    /// Warns when no policy attached anywhere lets a device publish to a
    /// topic the rule's FROM matches: AWS accepts such a rule and it never
    /// fires for device messages (the scenario's bonus `'+/audit'` against
    /// its three-level topics is the classic case).
    async fn unreachable_from(&self, statement: &roost_sql::Statement) -> Option<String> {
        let settings = self.registry.settings();
        let topic_arn_prefix = format!(
            "arn:aws:iot:{}:{}:topic/",
            settings.region, settings.account
        );
        let filter = statement.from_topic();
        let mut marker = None;
        loop {
            let page = self
                .registry
                .list_policies(marker.as_deref(), Some(250), true)
                .await
                .ok()?;
            for policy in &page.items {
                let attached = self
                    .registry
                    .list_targets_for_policy(&policy.name, None, Some(1))
                    .await
                    .ok()?;
                if attached.items.is_empty() {
                    continue;
                }
                let (_, version) = self.registry.get_policy(&policy.name).await.ok()?;
                let doc: Value = serde_json::from_str(&version.document).ok()?;
                if publish_resources(&doc)
                    .iter()
                    .any(|r| may_publish_to(r, &topic_arn_prefix, filter))
                {
                    return None;
                }
            }
            match page.next_token {
                Some(t) => marker = Some(t),
                None => break,
            }
        }
        Some(format!(
            "FROM '{}' matches no topic that an attached policy lets a device publish to; the rule will only see messages published by the service (iot-data, republish). Check the number of topic levels and the wildcards.",
            filter
        ))
    }
}

/// A resource of an Allow statement that grants `iot:Publish`.
#[derive(Debug, PartialEq, Eq)]
enum PublishResource {
    /// `NotResource`: everything but some resources, which is too much to
    /// call any topic unreachable.
    Any,
    /// A `Resource` pattern; `variables` when `${...}` are policy variables
    /// (a `2012-10-17` document) rather than text.
    Pattern { text: String, variables: bool },
}

/// The resources the Allow statements of a policy grant `iot:Publish` on.
/// Conditions are ignored: the check asks whether any device could ever
/// publish there, so it errs towards "yes".
fn publish_resources(doc: &Value) -> Vec<PublishResource> {
    let statements = match &doc["Statement"] {
        Value::Array(a) => a.iter().collect(),
        s @ Value::Object(_) => vec![s],
        _ => return Vec::new(),
    };
    let as_list = |v: &Value| -> Vec<String> {
        match v {
            Value::String(s) => vec![s.clone()],
            Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        }
    };
    // Action names are case-insensitive globs (`iot:*`, `iot:Pub*`, `*`).
    let names_publish = |pattern: &str| {
        let pattern: Vec<char> = pattern.to_ascii_lowercase().chars().collect();
        let action: Vec<char> = "iot:publish".chars().collect();
        glob(&pattern, &action)
    };
    let variables = doc["Version"] == "2012-10-17";
    let mut out = Vec::new();
    for st in statements {
        if st["Effect"] != "Allow" {
            continue;
        }
        let publishes = match st.get("NotAction") {
            Some(not) => !as_list(not).iter().any(|a| names_publish(a)),
            None => as_list(&st["Action"]).iter().any(|a| names_publish(a)),
        };
        if !publishes {
            continue;
        }
        if st.get("NotResource").is_some() {
            out.push(PublishResource::Any);
            continue;
        }
        for text in as_list(&st["Resource"]) {
            out.push(PublishResource::Pattern { text, variables });
        }
    }
    out
}

/// Plain glob over characters (`*` any run, `?` one character), for action names.
fn glob(pattern: &[char], text: &[char]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut retry: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                retry = Some((p, t));
                p += 1;
            }
            Some(&c) if c == '?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match retry {
                Some((rp, rt)) => {
                    retry = Some((rp, rt + 1));
                    p = rp + 1;
                    t = rt + 1;
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

/// Whether some topic matched by the rule's FROM `filter` is one the policy
/// resource lets a device publish to. Both sides are turned into automata
/// over the characters of the topic's ARN (`topic_arn_prefix` + topic) and
/// intersected, so nothing depends on example topics:
///
/// - resource: `*` any run of characters (levels included), `?` one
///   character, `${*}`/`${?}`/`${$}` (and `$(*)`…) the literal character, and
///   a policy variable any non-empty text within one level (a level made only
///   of a variable is any one level; a variable inside a level any text
///   there; never a `/`), since its value is one thing name, attribute, id…;
/// - filter: `+` any one level, `#` the rest (AWS's: `a/#` does not match
///   `a`), and a first-level wildcard never matches a `$` topic.
fn may_publish_to(resource: &PublishResource, topic_arn_prefix: &str, filter: &str) -> bool {
    match resource {
        PublishResource::Any => true,
        PublishResource::Pattern { text, variables } => {
            if text == "*" {
                return true;
            }
            let Some(filter) = Nfa::filter(topic_arn_prefix, filter) else {
                return false;
            };
            Nfa::resource(text, *variables).intersects(&filter)
        }
    }
}

/// Which characters one step of a pattern accepts. Topic names never hold
/// `+`, `#` or NUL, so no class but an exact character accepts those (and an
/// exact one only meets itself).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Char(char),
    /// Any character of a topic name.
    Any,
    /// Any but `/`: stays within one level.
    InLevel,
    /// Any but `/` and `$`: the first character under a first-level wildcard.
    InLevelNotDollar,
    /// Any but `$`.
    AnyNotDollar,
}

impl Class {
    fn accepts(self, c: char) -> bool {
        let in_topic = !matches!(c, '+' | '#' | '\0');
        match self {
            Class::Char(x) => x == c,
            Class::Any => in_topic,
            Class::InLevel => in_topic && c != '/',
            Class::InLevelNotDollar => in_topic && c != '/' && c != '$',
            Class::AnyNotDollar => in_topic && c != '$',
        }
    }

    /// Whether one character satisfies both. Every class but `Char` accepts
    /// plain letters, so two of them always meet.
    fn meets(self, other: Class) -> bool {
        match (self, other) {
            (Class::Char(c), o) | (o, Class::Char(c)) => o.accepts(c),
            _ => true,
        }
    }
}

/// A small nondeterministic automaton: per state, its character steps and
/// its empty steps. State 0 starts; `accept` accepts.
struct Nfa {
    steps: Vec<Vec<(Class, usize)>>,
    empty: Vec<Vec<usize>>,
    accept: usize,
}

impl Nfa {
    fn new() -> Self {
        Self {
            steps: vec![Vec::new()],
            empty: vec![Vec::new()],
            accept: 0,
        }
    }

    fn state(&mut self) -> usize {
        self.steps.push(Vec::new());
        self.empty.push(Vec::new());
        self.steps.len() - 1
    }

    /// Exactly one character of `class` after `from`.
    fn one(&mut self, from: usize, class: Class) -> usize {
        let to = self.state();
        self.steps[from].push((class, to));
        to
    }

    /// Any number of characters of `class` after `from` (a fresh state, so
    /// the loop never leaks into what came before).
    fn many(&mut self, from: usize, class: Class) -> usize {
        let to = self.state();
        self.empty[from].push(to);
        self.steps[to].push((class, to));
        to
    }

    fn literal(&mut self, mut at: usize, text: &str) -> usize {
        for c in text.chars() {
            at = self.one(at, Class::Char(c));
        }
        at
    }

    /// A policy resource, over the whole ARN.
    fn resource(text: &str, variables: bool) -> Nfa {
        let mut nfa = Nfa::new();
        let mut at = 0;
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            if variables && c == '$' {
                let escaped = match rest.as_bytes() {
                    [b'$', b'{', e @ (b'*' | b'?' | b'$'), b'}', ..]
                    | [b'$', b'(', e @ (b'*' | b'?' | b'$'), b')', ..] => Some(char::from(*e)),
                    _ => None,
                };
                if let Some(e) = escaped {
                    at = nfa.one(at, Class::Char(e));
                    rest = &rest[4..];
                    continue;
                }
                if let Some(close) = rest.strip_prefix("${").and_then(|b| b.find('}')) {
                    at = nfa.one(at, Class::InLevel);
                    at = nfa.many(at, Class::InLevel);
                    rest = &rest[close + 3..];
                    continue;
                }
            }
            at = match c {
                '*' => nfa.many(at, Class::Any),
                '?' => nfa.one(at, Class::Any),
                c => nfa.one(at, Class::Char(c)),
            };
            rest = &rest[c.len_utf8()..];
        }
        nfa.accept = at;
        nfa
    }

    /// The ARNs of the topics `filter` matches; `None` for an empty or
    /// malformed filter (it matches nothing).
    fn filter(topic_arn_prefix: &str, filter: &str) -> Option<Nfa> {
        // The same reading as matching: limits were checked by the SQL
        // parser, and a shared subscription's group is not part of the topic.
        let filter =
            roost_topic::validate_topic_filter(filter, &roost_topic::TopicLimits::general())
                .ok()?
                .filter;
        let mut nfa = Nfa::new();
        let mut at = nfa.literal(0, topic_arn_prefix);
        for (i, level) in filter.split('/').enumerate() {
            if i > 0 {
                at = nfa.one(at, Class::Char('/'));
            }
            at = match (i, level) {
                // A topic is never empty, and `#` first never matches `$…`.
                (0, "#") => {
                    let first = nfa.one(at, Class::AnyNotDollar);
                    nfa.many(first, Class::Any)
                }
                (_, "#") => nfa.many(at, Class::Any),
                // An empty first level, or one that does not start with `$`.
                (0, "+") => {
                    let first = nfa.one(at, Class::InLevelNotDollar);
                    let more = nfa.many(first, Class::InLevel);
                    let join = nfa.state();
                    nfa.empty[more].push(join);
                    nfa.empty[at].push(join);
                    join
                }
                (_, "+") => nfa.many(at, Class::InLevel),
                (_, text) => nfa.literal(at, text),
            };
        }
        nfa.accept = at;
        Some(nfa)
    }

    /// Whether some text is accepted by both: a search of the product
    /// automaton, each pair of states visited once.
    fn intersects(&self, other: &Nfa) -> bool {
        let width = other.steps.len();
        let mut seen = vec![false; self.steps.len() * width];
        let mut todo = vec![(0usize, 0usize)];
        seen[0] = true;
        while let Some((a, b)) = todo.pop() {
            if a == self.accept && b == other.accept {
                return true;
            }
            let mut next = Vec::new();
            next.extend(self.empty[a].iter().map(|&a2| (a2, b)));
            next.extend(other.empty[b].iter().map(|&b2| (a, b2)));
            for &(ca, a2) in &self.steps[a] {
                for &(cb, b2) in &other.steps[b] {
                    if ca.meets(cb) {
                        next.push((a2, b2));
                    }
                }
            }
            for (a2, b2) in next {
                let slot = &mut seen[a2 * width + b2];
                if !*slot {
                    *slot = true;
                    todo.push((a2, b2));
                }
            }
        }
        false
    }
}

fn sql_version(payload: &Value) -> Result<SqlVersion, RegistryError> {
    match payload.get("awsIotSqlVersion") {
        None | Some(Value::Null) => Ok(SqlVersion::default()),
        Some(Value::String(v)) => v.parse().map_err(|_| {
            RegistryError::InvalidRequest(format!(
                "awsIotSqlVersion '{v}' is not valid: use 2015-10-08 or 2016-03-23"
            ))
        }),
        Some(_) => Err(RegistryError::InvalidRequest(
            "awsIotSqlVersion must be a string".into(),
        )),
    }
}

#[async_trait::async_trait]
impl roost_registry::rules::RuleValidator for Validator {
    async fn validate(&self, _name: &str, payload: &Value) -> Result<Vec<String>, RegistryError> {
        let invalid = |m: String| RegistryError::InvalidRequest(m);
        for key in payload
            .as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
        {
            if !matches!(
                key.as_str(),
                "sql" | "description" | "actions" | "awsIotSqlVersion" | "errorAction"
            ) {
                return Err(invalid(format!(
                    "unknown member '{key}' in topicRulePayload"
                )));
            }
        }
        let sql = payload["sql"]
            .as_str()
            .ok_or_else(|| invalid("sql is required".into()))?;
        let version = sql_version(payload)?;
        let statement =
            roost_sql::parse(sql, version).map_err(|e| RegistryError::SqlParse(e.to_string()))?;
        if payload
            .get("description")
            .is_some_and(|d| !d.is_string() && !d.is_null())
        {
            return Err(invalid("description must be a string".into()));
        }
        let actions = match &payload["actions"] {
            Value::Array(a) => a,
            Value::Null => return Err(invalid("actions is required (it may be empty)".into())),
            _ => return Err(invalid("actions must be a list".into())),
        };
        if actions.len() > MAX_ACTIONS {
            return Err(invalid(format!(
                "a rule may have at most {MAX_ACTIONS} actions, got {}",
                actions.len()
            )));
        }
        let mut warnings = Vec::new();
        for (i, entry) in actions.iter().enumerate() {
            Action::parse(entry, version).map_err(|e| invalid(format!("actions[{i}]: {e}")))?;
            if let Some(key) = entry.pointer("/s3/key").and_then(Value::as_str) {
                if key.contains("timestamp()")
                    && !key.contains("newuuid()")
                    && !key.contains("traceid()")
                {
                    warnings.push(format!(
                        "actions[{i}].s3.key '{key}' is unique only per millisecond: two messages on one topic in the same millisecond overwrite each other; add ${{newuuid()}} to keep both"
                    ));
                }
            }
        }
        if let Some(entry) = payload.get("errorAction").filter(|e| !e.is_null()) {
            Action::parse(entry, version).map_err(|e| invalid(format!("errorAction: {e}")))?;
        }
        warnings.extend(self.unreachable_from(&statement).await);
        Ok(warnings)
    }

    fn destination_urls(&self, payload: &Value) -> Vec<String> {
        let Ok(version) = sql_version(payload) else {
            return Vec::new();
        };
        let actions = payload["actions"].as_array().into_iter().flatten();
        let error_action = payload.get("errorAction").filter(|e| !e.is_null());
        let mut urls: Vec<String> = actions
            .chain(error_action)
            .filter_map(|entry| Action::parse(entry, version).ok())
            .filter_map(|a| a.destination_url().map(str::to_string))
            .collect();
        urls.sort();
        urls.dedup();
        urls
    }

    fn topic_pattern(&self, payload: &Value) -> Option<String> {
        let version = sql_version(payload).ok()?;
        let statement = roost_sql::parse(payload["sql"].as_str()?, version).ok()?;
        Some(statement.from_topic().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use roost_registry::rules::RuleValidator as _;
    use serde_json::json;

    const PREFIX: &str = "arn:aws:iot:us-east-1:000000000000:topic/";

    /// Whether a `2012-10-17` resource lets a device publish to a topic `filter` matches.
    fn reaches(resource: &str, filter: &str) -> bool {
        let resource = PublishResource::Pattern {
            text: format!("{PREFIX}{resource}"),
            variables: true,
        };
        may_publish_to(&resource, PREFIX, filter)
    }

    /// The scenario's policy (tests/python/fixtures/iot-webinar-policy-v2.json).
    fn scenario_policy() -> Value {
        json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["iot:Connect"], "Resource": "arn:aws:iot:us-east-1:000000000000:client/${iot:Connection.Thing.ThingName}"},
            {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"], "Resource": [
                "arn:aws:iot:us-east-1:000000000000:topic/${iot:Connection.Thing.Attributes[Owner]}/${iot:Connection.Thing.ThingName}/audit",
                "arn:aws:iot:us-east-1:000000000000:topic/$aws/things/${iot:Connection.Thing.ThingName}/jobs/*"
            ]},
            {"Effect": "Allow", "Action": ["iot:Subscribe"], "Resource": "arn:aws:iot:us-east-1:000000000000:topicfilter/$aws/things/${iot:Connection.Thing.ThingName}/jobs/*"}
        ]})
    }

    fn scenario_reaches(filter: &str) -> bool {
        publish_resources(&scenario_policy())
            .iter()
            .any(|r| may_publish_to(r, PREFIX, filter))
    }

    #[test]
    fn the_scenario_rule_is_reachable_and_the_bonus_rule_is_not() {
        // The reference scenario's own rule: a literal tenant before the variables.
        assert!(scenario_reaches("abcde-12345/+/audit"));
        assert!(scenario_reaches("abcde-12345/iot-webinar-device/audit"));
        assert!(scenario_reaches("+/+/audit"));
        assert!(scenario_reaches("abcde-12345/#"));
        assert!(scenario_reaches("$aws/things/+/jobs/#"));
        // Its bonus rule: two levels where the policy has three.
        assert!(!scenario_reaches("+/audit"));
        assert!(!scenario_reaches("abcde-12345/audit"));
        assert!(!scenario_reaches("abcde-12345/+/other"));
        assert!(!scenario_reaches("abcde-12345/+/audit/more"));
        assert_eq!(
            publish_resources(&scenario_policy()).len(),
            2,
            "Connect and Subscribe grant no publishing"
        );
    }

    #[test]
    fn a_level_made_of_a_variable_is_any_one_level() {
        let own = "${iot:Connection.Thing.ThingName}/telemetry";
        for filter in ["dev-1/telemetry", "+/telemetry", "#", "dev-1/#", "+/+"] {
            assert!(reaches(own, filter), "{filter}");
        }
        for filter in [
            "a/b/telemetry",
            "+/+/telemetry",
            "dev-1",
            "dev-1/other",
            "telemetry",
        ] {
            assert!(!reaches(own, filter), "{filter}");
        }
    }

    #[test]
    fn a_variable_inside_a_level_is_any_text_there_but_never_a_slash() {
        let inside = "tenant-${iot:Connection.Thing.Attributes[Owner]}-x/data";
        for filter in ["tenant-abc-x/data", "+/data", "tenant-42-x/#", "#"] {
            assert!(reaches(inside, filter), "{filter}");
        }
        // Not across a `/`, not empty, and the text around it stays.
        for filter in [
            "tenant-a/b-x/data",
            "tenant--x/data",
            "other-abc-x/data",
            "tenant-abc-y/data",
            "tenant-abc-x/+/data",
        ] {
            assert!(!reaches(inside, filter), "{filter}");
        }
        // Two variables in one level, and a variable beside a `*` (which does cross levels).
        assert!(reaches("${iot:ClientId}-${iot:ClientId}/x", "a-b/x"));
        assert!(!reaches("${iot:ClientId}-${iot:ClientId}/x", "ab/x"));
        assert!(reaches("${iot:ClientId}/*", "dev/a/b/c"));
        assert!(!reaches("${iot:ClientId}/*", "dev"));
    }

    #[test]
    fn wildcards_and_escapes_in_resources() {
        assert!(reaches("*", "anything/at/all"));
        assert!(reaches("a/*", "a/b/c/d"));
        assert!(reaches("a/?", "a/+"));
        assert!(!reaches("a/?", "a/bc"));
        assert!(reaches("a${*}b", "a*b"));
        assert!(!reaches("a${*}b", "axb"));
        assert!(reaches("$(?)/${$}x", "?/$x"));
        // `+` and `#` in a resource are literal characters no topic name holds.
        assert!(!reaches("a/+", "a/+"));
        assert!(!reaches("a/#", "a/#"));
        // A first-level wildcard never matches a `$` topic.
        assert!(!reaches("$aws/things/${iot:ClientId}/jobs/*", "#"));
        assert!(!reaches(
            "$aws/things/${iot:ClientId}/jobs/*",
            "+/things/+/jobs/#"
        ));
        assert!(reaches("*", "#"));
        assert!(!reaches("$*", "#"));
        // `a/#` does not match `a` (AWS's reading), and an empty level is a level.
        assert!(!reaches("a", "a/#"));
        assert!(reaches("/x", "+/x"));
    }

    #[test]
    fn the_whole_arn_is_matched() {
        let any_region = PublishResource::Pattern {
            text: "arn:aws:iot:*:*:topic/a".into(),
            variables: true,
        };
        assert!(may_publish_to(&any_region, PREFIX, "a"));
        let other_region = PublishResource::Pattern {
            text: "arn:aws:iot:eu-west-1:000000000000:topic/a".into(),
            variables: true,
        };
        assert!(!may_publish_to(&other_region, PREFIX, "a"));
        let topicfilter = PublishResource::Pattern {
            text: "arn:aws:iot:us-east-1:000000000000:topicfilter/a".into(),
            variables: true,
        };
        assert!(!may_publish_to(&topicfilter, PREFIX, "a"));
    }

    #[test]
    fn legacy_documents_have_no_variables() {
        let doc = |version: Option<&str>| {
            let mut d = json!({"Statement": {"Effect": "Allow", "Action": "iot:Publish", "Resource": format!("{PREFIX}${{iot:ClientId}}")}});
            if let Some(v) = version {
                d["Version"] = json!(v);
            }
            d
        };
        let reach = |d: &Value, filter: &str| {
            publish_resources(d)
                .iter()
                .any(|r| may_publish_to(r, PREFIX, filter))
        };
        assert!(reach(&doc(Some("2012-10-17")), "dev-1"));
        assert!(!reach(&doc(None), "dev-1"));
        assert!(!reach(&doc(Some("2008-10-17")), "dev-1"));
        assert!(reach(&doc(None), "${iot:ClientId}"));
    }

    #[test]
    fn which_statements_grant_publishing() {
        let grants =
            |statement: Value| !publish_resources(&json!({"Statement": statement})).is_empty();
        for action in [
            json!("iot:Publish"),
            json!("IOT:PUBLISH"),
            json!("iot:Pub*"),
            json!("iot:?ublish"),
            json!("*"),
            json!(["iot:Connect", "iot:*"]),
        ] {
            assert!(
                grants(json!({"Effect": "Allow", "Action": action, "Resource": "*"})),
                "{action}"
            );
        }
        assert!(!grants(
            json!({"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"})
        ));
        assert!(!grants(
            json!({"Effect": "Deny", "Action": "iot:Publish", "Resource": "*"})
        ));
        assert!(grants(
            json!({"Effect": "Allow", "NotAction": "iot:Connect", "Resource": "*"})
        ));
        assert!(!grants(
            json!({"Effect": "Allow", "NotAction": "iot:P*", "Resource": "*"})
        ));
        assert_eq!(
            publish_resources(
                &json!({"Statement": {"Effect": "Allow", "Action": "iot:Publish", "NotResource": "x"}})
            ),
            vec![PublishResource::Any]
        );
    }

    #[test]
    fn action_globs() {
        let g = |p: &str, t: &str| {
            glob(
                &p.chars().collect::<Vec<_>>(),
                &t.chars().collect::<Vec<_>>(),
            )
        };
        assert!(g("iot:*", "iot:publish"));
        assert!(g("*", ""));
        assert!(g("*:*h", "iot:publish"));
        assert!(!g("iot:p", "iot:publish"));
        assert!(!g("iot:publish?", "iot:publish"));
    }

    /// Through the registry, as CreateTopicRule runs it: the scenario policy
    /// attached to a certificate.
    #[tokio::test]
    async fn the_validator_warns_for_the_bonus_rule_only() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(dir.path(), Default::default())
            .await
            .unwrap();
        let cert = registry.create_keys_and_certificate(true).await.unwrap();
        registry
            .create_policy("iot-webinar-policy", &scenario_policy().to_string())
            .await
            .unwrap();
        let arn = format!(
            "arn:aws:iot:us-east-1:000000000000:cert/{}",
            cert.certificate.id
        );
        registry
            .attach_policy("iot-webinar-policy", &arn)
            .await
            .unwrap();
        let validator = Validator::new(registry.clone());
        let warnings = |sql: &str| {
            let payload = json!({"sql": sql, "actions": []});
            let validator = &validator;
            async move { validator.validate("r", &payload).await.unwrap() }
        };
        let unreachable = |w: &Vec<String>| w.iter().any(|w| w.contains("matches no topic"));
        assert!(!unreachable(
            &warnings("SELECT * FROM 'abcde-12345/+/audit'").await
        ));
        assert!(unreachable(
            &warnings("SELECT message as msg, topic(1) as tenant_id FROM '+/audit'").await
        ));
    }
}
