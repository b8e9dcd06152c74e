//! The deployment file: what a deployment is made of, read from TOML, and
//! the checks that need the whole file (names unique, references that
//! resolve, documents that are JSON). Every error names the file, the line
//! and the field.

use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// A whole deployment.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deployment {
    #[serde(default, rename = "thing_type")]
    pub thing_types: Vec<toml::Spanned<ThingType>>,
    #[serde(default, rename = "thing_group")]
    pub thing_groups: Vec<toml::Spanned<ThingGroup>>,
    #[serde(default, rename = "policy")]
    pub policies: Vec<toml::Spanned<Policy>>,
    #[serde(default, rename = "thing")]
    pub things: Vec<toml::Spanned<Thing>>,
    #[serde(default, rename = "topic")]
    pub topics: Vec<toml::Spanned<Topic>>,
    #[serde(default, rename = "rule")]
    pub rules: Vec<toml::Spanned<Rule>>,
    #[serde(default, rename = "job")]
    pub jobs: Vec<toml::Spanned<Job>>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ThingType {
    pub name: String,
    pub description: Option<String>,
    #[serde(default)]
    pub searchable_attributes: Vec<String>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ThingGroup {
    pub name: String,
    pub description: Option<String>,
    /// The parent group (declared in the file or already there).
    pub parent: Option<String>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub name: String,
    /// The policy document, as JSON text.
    pub document: String,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Thing {
    pub name: String,
    #[serde(rename = "type")]
    pub thing_type: Option<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// Make a certificate for the thing when it has no ACTIVE one; its
    /// files are written to `<certificates dir>/<thing>/`.
    #[serde(default)]
    pub certificate: bool,
    /// Policies attached to the thing's certificates.
    #[serde(default)]
    pub policies: Vec<String>,
}

/// A notification topic and its subscriptions.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Topic {
    pub name: String,
    #[serde(default)]
    pub subscriptions: Vec<Subscription>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(deny_unknown_fields)]
pub struct Subscription {
    pub protocol: String,
    pub endpoint: String,
}

/// A topic rule. `actions` (and `error_action`) are AWS's action objects
/// as TOML tables, passed to CreateTopicRule unchanged.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub name: String,
    pub sql: String,
    pub description: Option<String>,
    #[serde(default)]
    pub disabled: bool,
    pub sql_version: Option<String>,
    #[serde(default)]
    pub actions: Vec<toml::Value>,
    pub error_action: Option<toml::Value>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Job {
    pub id: String,
    /// The job document, as JSON text.
    pub document: String,
    pub description: Option<String>,
    #[serde(default)]
    pub things: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    /// `${aws:iot:s3-presigned-url:…}` placeholders are signed for this
    /// long (60..3600 s).
    pub presigned_url_expires_secs: Option<u64>,
}

/// An error in a deployment file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileError {
    pub file: String,
    pub line: Option<usize>,
    pub field: String,
    pub message: String,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}: {}", self.file, self.field, self.message),
            None => write!(f, "{}: {}: {}", self.file, self.field, self.message),
        }
    }
}

/// Every error found in a file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct FileErrors(pub Vec<FileError>);

impl fmt::Display for FileErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or(message).trim().to_owned()
}

/// AWS's names: things, types and groups `[a-zA-Z0-9:_-]{1,128}`,
/// policies `[\w+=,.@-]{1,128}`, rules `[a-zA-Z0-9_]{1,128}`, topics
/// `[a-zA-Z0-9_-]{1,256}`, jobs `[a-zA-Z0-9_-]{1,64}`.
fn name_ok(kind: &str, name: &str) -> Result<(), String> {
    let (max, ok): (usize, fn(char) -> bool) = match kind {
        "thing" | "thing_type" | "thing_group" => (128, |c| {
            c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-')
        }),
        "policy" => (128, |c| {
            c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '=' | ',' | '.' | '@' | '-')
        }),
        "rule" => (128, |c| c.is_ascii_alphanumeric() || c == '_'),
        "topic" => (256, |c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-')),
        _ => (64, |c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-')),
    };
    if name.is_empty() || name.chars().count() > max || !name.chars().all(ok) {
        return Err(format!("{name:?} is not a valid {kind} name"));
    }
    Ok(())
}

impl Deployment {
    /// Reads and checks a deployment file; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Self, FileErrors> {
        let one = |line, field: String, message| {
            FileErrors(vec![FileError {
                file: file.to_owned(),
                line,
                field,
                message,
            }])
        };
        let deserializer = toml::Deserializer::parse(text).map_err(|e| {
            one(
                e.span().map(|s| line_of(text, s.start)),
                "(syntax)".into(),
                first_line(e.message()),
            )
        })?;
        let deployment: Deployment =
            serde_path_to_error::deserialize(deserializer).map_err(|e| {
                // toml::Spanned shows up in the path as a private field.
                let path = e
                    .path()
                    .to_string()
                    .replace(".$__serde_spanned_private_value", "");
                let inner = e.into_inner();
                one(
                    inner.span().map(|s| line_of(text, s.start)),
                    path,
                    first_line(inner.message()),
                )
            })?;
        deployment.check(file, text)?;
        Ok(deployment)
    }

    fn check(&self, file: &str, text: &str) -> Result<(), FileErrors> {
        let mut errors = Vec::new();
        let mut error = |span: std::ops::Range<usize>, field: String, message: String| {
            errors.push(FileError {
                file: file.to_owned(),
                line: Some(line_of(text, span.start)),
                field,
                message,
            })
        };
        fn names<T>(
            items: &[toml::Spanned<T>],
            name: fn(&T) -> &str,
        ) -> Vec<(usize, std::ops::Range<usize>, &str)> {
            items
                .iter()
                .enumerate()
                .map(|(i, s)| (i, s.span(), name(s.get_ref())))
                .collect()
        }
        let check_names = |kind: &str, list: Vec<(usize, std::ops::Range<usize>, &str)>| {
            let mut seen = BTreeSet::new();
            let mut found = Vec::new();
            for (i, span, name) in list {
                if let Err(m) = name_ok(kind, name) {
                    found.push((span.clone(), format!("{kind}[{i}].name"), m));
                }
                if !seen.insert(name.to_owned()) {
                    found.push((
                        span,
                        format!("{kind}[{i}].name"),
                        format!("{name:?} is declared twice"),
                    ));
                }
            }
            found
        };
        let mut found = Vec::new();
        found.extend(check_names(
            "thing_type",
            names(&self.thing_types, |t| &t.name),
        ));
        found.extend(check_names(
            "thing_group",
            names(&self.thing_groups, |t| &t.name),
        ));
        found.extend(check_names("policy", names(&self.policies, |t| &t.name)));
        found.extend(check_names("thing", names(&self.things, |t| &t.name)));
        found.extend(check_names("topic", names(&self.topics, |t| &t.name)));
        found.extend(check_names("rule", names(&self.rules, |t| &t.name)));
        found.extend(check_names("job", names(&self.jobs, |t| &t.id)));
        for (span, field, message) in found {
            error(span, field, message);
        }
        for (i, p) in self.policies.iter().enumerate() {
            if let Err(e) = serde_json::from_str::<Value>(&p.get_ref().document) {
                error(
                    p.span(),
                    format!("policy[{i}].document"),
                    format!("not JSON: {e}"),
                );
            }
        }
        for (i, j) in self.jobs.iter().enumerate() {
            let job = j.get_ref();
            if let Err(e) = serde_json::from_str::<Value>(&job.document) {
                error(
                    j.span(),
                    format!("job[{i}].document"),
                    format!("not JSON: {e}"),
                );
            }
            if job.things.is_empty() && job.groups.is_empty() {
                error(
                    j.span(),
                    format!("job[{i}]"),
                    "a job needs things or groups to target".into(),
                );
            }
            if job
                .presigned_url_expires_secs
                .is_some_and(|s| !(60..=3600).contains(&s))
            {
                error(
                    j.span(),
                    format!("job[{i}].presigned_url_expires_secs"),
                    "must be between 60 and 3600".into(),
                );
            }
        }
        for (i, r) in self.rules.iter().enumerate() {
            let rule = r.get_ref();
            if rule.actions.is_empty() {
                error(
                    r.span(),
                    format!("rule[{i}].actions"),
                    "a rule needs at least one action".into(),
                );
            }
            for (k, action) in rule.actions.iter().chain(&rule.error_action).enumerate() {
                if action.as_table().is_none_or(|t| t.len() != 1) {
                    error(
                        r.span(),
                        format!("rule[{i}].actions[{k}]"),
                        "an action is a table with one key, the action's kind (s3, sns, republish, http, …)".into(),
                    );
                }
            }
        }
        for (i, g) in self.thing_groups.iter().enumerate() {
            if g.get_ref().parent.as_deref() == Some(g.get_ref().name.as_str()) {
                error(
                    g.span(),
                    format!("thing_group[{i}].parent"),
                    "a group cannot be its own parent".into(),
                );
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(FileErrors(errors))
        }
    }

    pub fn thing_types(&self) -> impl Iterator<Item = &ThingType> {
        self.thing_types.iter().map(|s| s.get_ref())
    }
    pub fn thing_groups(&self) -> impl Iterator<Item = &ThingGroup> {
        self.thing_groups.iter().map(|s| s.get_ref())
    }
    pub fn policies(&self) -> impl Iterator<Item = &Policy> {
        self.policies.iter().map(|s| s.get_ref())
    }
    pub fn things(&self) -> impl Iterator<Item = &Thing> {
        self.things.iter().map(|s| s.get_ref())
    }
    pub fn topics(&self) -> impl Iterator<Item = &Topic> {
        self.topics.iter().map(|s| s.get_ref())
    }
    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter().map(|s| s.get_ref())
    }
    pub fn jobs(&self) -> impl Iterator<Item = &Job> {
        self.jobs.iter().map(|s| s.get_ref())
    }
}

/// A TOML value as JSON (rule actions are AWS's JSON objects written as
/// TOML tables).
pub fn to_json(value: &toml::Value) -> Value {
    match value {
        toml::Value::String(s) => Value::from(s.as_str()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => Value::from(*f),
        toml::Value::Boolean(b) => Value::from(*b),
        toml::Value::Datetime(d) => Value::from(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.iter().map(to_json).collect()),
        toml::Value::Table(t) => {
            Value::Object(t.iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const GOOD: &str = r#"
[[thing_type]]
name = "iot-webinar-type"

[[thing_group]]
name = "iot-webinar-group"

[[policy]]
name = "iot-webinar-policy"
document = '{"Version": "2012-10-17", "Statement": []}'

[[thing]]
name = "iot-webinar-device"
type = "iot-webinar-type"
groups = ["iot-webinar-group"]
attributes = { Owner = "abcde-12345" }
certificate = true
policies = ["iot-webinar-policy"]

[[rule]]
name = "IotWebinarRule"
sql = "SELECT * FROM 'abcde-12345/+/audit'"
actions = [{ s3 = { bucketName = "iot-webinar-audits", key = "${topic()}/${timestamp()}", roleArn = "arn:aws:iam::123456789012:role/r" } }]

[[job]]
id = "local-scan-job-01"
document = '{"operation": "localScan"}'
things = ["iot-webinar-device"]
"#;

    #[test]
    fn a_good_file_reads() {
        let d = Deployment::parse("x.toml", GOOD).unwrap();
        assert_eq!(
            d.things().next().unwrap().attributes["Owner"],
            "abcde-12345"
        );
        let action = to_json(&d.rules().next().unwrap().actions[0]);
        assert_eq!(action["s3"]["bucketName"], "iot-webinar-audits");
    }

    fn error(text: &str) -> String {
        Deployment::parse("x.toml", text).unwrap_err().to_string()
    }

    #[test]
    fn errors_name_the_file_the_line_and_the_field() {
        let e = error("[[thing]]\nname = \"a\"\ncolour = \"red\"\n");
        assert!(
            e.starts_with("x.toml:3: thing[0].colour: unknown field `colour`"),
            "{e}"
        );
        let e = error("[[thing]]\nname = \"a\"\n\n[[thing]]\nname = \"a\"\n");
        assert!(
            e.starts_with("x.toml:4: thing[1].name: \"a\" is declared twice"),
            "{e}"
        );
        let e = error("[[policy]]\nname = \"p\"\ndocument = '{not json'\n");
        assert!(
            e.starts_with("x.toml:1: policy[0].document: not JSON"),
            "{e}"
        );
        let e = error("[[thing]]\nname = \"bad name!\"\n");
        assert!(
            e.contains("thing[0].name: \"bad name!\" is not a valid thing name"),
            "{e}"
        );
        let e = error("[[thing]\n");
        assert!(e.starts_with("x.toml:1: (syntax)"), "{e}");
        let e = error("[[job]]\nid = \"j\"\ndocument = '{}'\n");
        assert!(e.contains("job[0]: a job needs things or groups"), "{e}");
        let e = error("[[rule]]\nname = \"r\"\nsql = \"SELECT 1 FROM 'a'\"\nactions = [{ s3 = {}, sns = {} }]\n");
        assert!(
            e.contains("rule[0].actions[0]: an action is a table with one key"),
            "{e}"
        );
    }

    proptest! {
        #[test]
        fn any_text_is_read_or_refused_without_panic(text in "[a-z_\\[\\]=\"'{}, \n.0-9]{0,200}") {
            let _ = Deployment::parse("x.toml", &text);
        }
    }
}
