//! The policy grammar (reference 1.1): from document text to a checked [`Policy`].
//!
//! Everything that can be known without a connection is checked here, so that a
//! policy accepted by CreatePolicy cannot fail later for a reason its author could
//! have been told about. This module must never evaluate anything, and must never
//! accept a document it only half understands: unknown keys are errors, not ignored.

use std::str::FromStr;

use crate::action::{self, ActionSet};
use crate::condition::{self, Condition};
use crate::error::{MalformedPolicy, MAX_POLICY_CHARS};
use crate::json::{self, quote, Json};
use crate::template::Template;

/// The policy language version a document declares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PolicyVersion {
    /// `"2012-10-17"`: policy variables are substituted.
    V2012,
    /// `"2008-10-17"`: legacy, `${...}` is plain text.
    V2008,
    /// No `Version` key: legacy, as in IAM.
    Unspecified,
}

impl PolicyVersion {
    /// The `Version` string, or `None` when the document has none.
    pub fn as_str(self) -> Option<&'static str> {
        match self {
            PolicyVersion::V2012 => Some("2012-10-17"),
            PolicyVersion::V2008 => Some("2008-10-17"),
            PolicyVersion::Unspecified => None,
        }
    }

    /// Whether `${...}` policy variables are substituted.
    pub fn substitutes_variables(self) -> bool {
        self == PolicyVersion::V2012
    }
}

/// `Allow` or `Deny`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Effect {
    Allow,
    Deny,
}

impl Effect {
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Allow => "Allow",
            Effect::Deny => "Deny",
        }
    }
}

/// A parsed, validated policy document. Immutable; share it with `Arc`.
#[derive(Clone, Debug)]
pub struct Policy {
    version: PolicyVersion,
    id: Option<String>,
    statements: Vec<Statement>,
}

/// One statement of a [`Policy`].
#[derive(Clone, Debug)]
pub struct Statement {
    sid: Option<String>,
    effect: Effect,
    /// `Action` or `NotAction`, already turned into the actions it covers.
    pub(crate) actions: ActionSet,
    pub(crate) resources: Resources,
    pub(crate) conditions: Vec<Condition>,
}

/// `Resource` (`negated == false`) or `NotResource` entries.
#[derive(Clone, Debug)]
pub(crate) struct Resources {
    pub(crate) negated: bool,
    pub(crate) entries: Vec<Template>,
}

impl Policy {
    pub fn version(&self) -> PolicyVersion {
        self.version
    }

    /// The optional top-level `Id`.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    pub fn statements(&self) -> &[Statement] {
        &self.statements
    }
}

impl Statement {
    pub fn sid(&self) -> Option<&str> {
        self.sid.as_deref()
    }

    pub fn effect(&self) -> Effect {
        self.effect
    }
}

impl FromStr for Policy {
    type Err = MalformedPolicy;

    fn from_str(document: &str) -> Result<Policy, MalformedPolicy> {
        parse_policy(document)
    }
}

/// Parses and validates a policy document as CreatePolicy/CreatePolicyVersion must.
pub fn parse_policy(document: &str) -> Result<Policy, MalformedPolicy> {
    // Checked before parsing so that the JSON parser's work is bounded too.
    let length = document.chars().filter(|c| !c.is_whitespace()).count();
    if length == 0 {
        return Err(MalformedPolicy::Empty);
    }
    if length > MAX_POLICY_CHARS {
        return Err(MalformedPolicy::TooLong {
            length,
            limit: MAX_POLICY_CHARS,
        });
    }
    let root = json::parse(document)?;
    const ROOT: &str = "policy document";
    let Json::Object(fields) = &root else {
        return Err(MalformedPolicy::at(
            ROOT,
            format!("expected a JSON object, found {}", root.describe()),
        ));
    };
    refuse_duplicates(fields, ROOT)?;
    let mut version = PolicyVersion::Unspecified;
    let mut id = None;
    let mut statement = None;
    for (key, value) in fields {
        match key.as_str() {
            "Version" => {
                version = match value {
                    Json::String(v) if v == "2012-10-17" => PolicyVersion::V2012,
                    Json::String(v) if v == "2008-10-17" => PolicyVersion::V2008,
                    other => {
                        return Err(MalformedPolicy::at(
                            "Version",
                            format!(
                                "expected \"2012-10-17\" or \"2008-10-17\", found {}",
                                other.describe()
                            ),
                        ))
                    }
                }
            }
            "Id" => id = Some(string(value, "Id")?),
            "Statement" => statement = Some(value),
            other => return Err(unknown_key(ROOT, other, &["Version", "Id", "Statement"])),
        }
    }
    let Some(statement) = statement else {
        return Err(MalformedPolicy::at(ROOT, "missing \"Statement\""));
    };
    let statements = match statement {
        Json::Array(items) if items.is_empty() => {
            return Err(MalformedPolicy::at(
                "Statement",
                "must hold at least one statement",
            ));
        }
        Json::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| parse_statement(item, &format!("Statement[{i}]"), version))
            .collect::<Result<Vec<_>, _>>()?,
        single => vec![parse_statement(single, "Statement", version)?],
    };
    Ok(Policy {
        version,
        id,
        statements,
    })
}

const STATEMENT_KEYS: [&str; 7] = [
    "Sid",
    "Effect",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
];

fn parse_statement(
    json: &Json,
    path: &str,
    version: PolicyVersion,
) -> Result<Statement, MalformedPolicy> {
    let Json::Object(fields) = json else {
        return Err(MalformedPolicy::at(
            path,
            format!("expected a statement object, found {}", json.describe()),
        ));
    };
    refuse_duplicates(fields, path)?;
    let field = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v);
    for (key, _) in fields {
        if !STATEMENT_KEYS.contains(&key.as_str()) {
            if key == "Principal" || key == "NotPrincipal" {
                return Err(MalformedPolicy::at(
                    path,
                    format!(
                        "{} is not allowed: an IoT policy applies to the certificates and thing groups it is attached to",
                        quote(key)
                    ),
                ));
            }
            return Err(unknown_key(path, key, &STATEMENT_KEYS));
        }
    }
    let sid = field("Sid")
        .map(|v| string(v, &format!("{path}.Sid")))
        .transpose()?;
    let effect = match field("Effect") {
        None => return Err(MalformedPolicy::at(path, "missing \"Effect\"")),
        Some(Json::String(e)) if e == "Allow" => Effect::Allow,
        Some(Json::String(e)) if e == "Deny" => Effect::Deny,
        Some(other) => {
            return Err(MalformedPolicy::at(
                format!("{path}.Effect"),
                format!("expected \"Allow\" or \"Deny\", found {}", other.describe()),
            ))
        }
    };
    let (action_key, action_value) = one_of(
        path,
        field("Action"),
        field("NotAction"),
        "Action",
        "NotAction",
    )?;
    let action_path = format!("{path}.{action_key}");
    let mut actions = ActionSet::default();
    for (entry, entry_path) in strings(action_value, &action_path)? {
        if let Some(message) = action::shape_error(&entry) {
            return Err(MalformedPolicy::at(
                entry_path,
                format!("{message}, found {}", quote(&entry)),
            ));
        }
        actions = actions.union(ActionSet::matching(&entry));
    }
    if action_key == "NotAction" {
        actions = actions.complement();
    }
    let (resource_key, resource_value) = one_of(
        path,
        field("Resource"),
        field("NotResource"),
        "Resource",
        "NotResource",
    )?;
    let resource_path = format!("{path}.{resource_key}");
    let mut entries = Vec::new();
    for (entry, entry_path) in strings(resource_value, &resource_path)? {
        if entry != "*" && !entry.starts_with("arn:") {
            return Err(MalformedPolicy::at(
                entry_path,
                format!(
                    "expected an ARN (\"arn:aws:iot:...\") or \"*\", found {}",
                    quote(&entry)
                ),
            ));
        }
        entries.push(template(&entry, &entry_path, version)?);
    }
    let conditions = match field("Condition") {
        Some(block) => condition::parse_block(
            block,
            &format!("{path}.Condition"),
            version.substitutes_variables(),
        )?,
        None => Vec::new(),
    };
    Ok(Statement {
        sid,
        effect,
        actions,
        resources: Resources {
            negated: resource_key == "NotResource",
            entries,
        },
        conditions,
    })
}

fn template(text: &str, path: &str, version: PolicyVersion) -> Result<Template, MalformedPolicy> {
    if version.substitutes_variables() {
        Template::parse(text).map_err(|m| MalformedPolicy::at(path, m))
    } else {
        Ok(Template::legacy(text))
    }
}

/// Exactly one of an element and its `Not` form must be present.
fn one_of<'j>(
    path: &str,
    plain: Option<&'j Json>,
    not: Option<&'j Json>,
    plain_name: &'static str,
    not_name: &'static str,
) -> Result<(&'static str, &'j Json), MalformedPolicy> {
    match (plain, not) {
        (Some(v), None) => Ok((plain_name, v)),
        (None, Some(v)) => Ok((not_name, v)),
        (Some(_), Some(_)) => Err(MalformedPolicy::at(
            path,
            format!("has both \"{plain_name}\" and \"{not_name}\"; use one"),
        )),
        (None, None) => Err(MalformedPolicy::at(
            path,
            format!("missing \"{plain_name}\" (or \"{not_name}\")"),
        )),
    }
}

fn string(json: &Json, path: &str) -> Result<String, MalformedPolicy> {
    match json {
        Json::String(s) => Ok(s.clone()),
        other => Err(MalformedPolicy::at(
            path,
            format!("expected a string, found {}", other.describe()),
        )),
    }
}

/// A string or a non-empty array of strings, each with its own path.
fn strings(json: &Json, path: &str) -> Result<Vec<(String, String)>, MalformedPolicy> {
    match json {
        Json::String(s) => Ok(vec![(s.clone(), path.to_string())]),
        Json::Array(items) if items.is_empty() => Err(MalformedPolicy::at(path, "empty list")),
        Json::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let item_path = format!("{path}[{i}]");
                string(item, &item_path).map(|s| (s, item_path))
            })
            .collect(),
        other => Err(MalformedPolicy::at(
            path,
            format!(
                "expected a string or an array of strings, found {}",
                other.describe()
            ),
        )),
    }
}

pub(crate) fn refuse_duplicates(
    fields: &[(String, Json)],
    path: &str,
) -> Result<(), MalformedPolicy> {
    for (i, (key, _)) in fields.iter().enumerate() {
        if fields[..i].iter().any(|(earlier, _)| earlier == key) {
            return Err(MalformedPolicy::at(
                path,
                format!("duplicate key {}", quote(key)),
            ));
        }
    }
    Ok(())
}

fn unknown_key(path: &str, key: &str, known: &[&str]) -> MalformedPolicy {
    let message = match known.iter().find(|k| k.eq_ignore_ascii_case(key)) {
        Some(k) => format!(
            "unknown key {} (keys are case-sensitive: did you mean \"{k}\"?)",
            quote(key)
        ),
        None => {
            let list: Vec<String> = known.iter().map(|k| format!("\"{k}\"")).collect();
            format!(
                "unknown key {}; expected one of {}",
                quote(key),
                list.join(", ")
            )
        }
    };
    MalformedPolicy::at(path, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Action;

    fn err(document: &str) -> String {
        parse_policy(document).unwrap_err().to_string()
    }

    const MINIMAL: &str = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}}"#;

    #[test]
    fn minimal_documents() {
        let p = parse_policy(MINIMAL).unwrap();
        assert_eq!(p.version(), PolicyVersion::V2012);
        assert_eq!(p.statements().len(), 1);
        assert_eq!(p.statements()[0].effect(), Effect::Allow);
        assert!(p.statements()[0].actions.contains(Action::Connect));
        assert!(!p.statements()[0].actions.contains(Action::Publish));

        let p: Policy = r#"{"Id":"x","Statement":[{"Sid":"s1","Effect":"Deny","NotAction":["iot:Connect"],"NotResource":"arn:aws:iot:*"}]}"#
            .parse()
            .unwrap();
        assert_eq!(p.version(), PolicyVersion::Unspecified);
        assert_eq!(p.id(), Some("x"));
        assert_eq!(p.statements()[0].sid(), Some("s1"));
        assert!(p.statements()[0].actions.contains(Action::Publish));
        assert!(!p.statements()[0].actions.contains(Action::Connect));
        assert!(p.statements()[0].resources.negated);
    }

    #[test]
    fn version_rules() {
        let legacy = parse_policy(&MINIMAL.replace("2012-10-17", "2008-10-17")).unwrap();
        assert_eq!(legacy.version(), PolicyVersion::V2008);
        assert!(!legacy.version().substitutes_variables());
        assert_eq!(
            err(&MINIMAL.replace("2012-10-17", "2012-10-18")),
            "Version: expected \"2012-10-17\" or \"2008-10-17\", found \"2012-10-18\""
        );
        assert!(err(&MINIMAL.replace("\"2012-10-17\"", "2012")).contains("found number 2012"));
        // Legacy documents keep `${` as text, even unterminated.
        assert!(parse_policy(
            r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"arn:${x"}}"#
        )
        .is_ok());
        assert!(err(r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"arn:${x"}}"#)
            .starts_with("Statement.Resource: unterminated policy variable"));
    }

    #[test]
    fn effect_errors_name_the_statement() {
        let doc = r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"iot:Connect","Resource":"*"},
            {"Effect":"allow","Action":"iot:Connect","Resource":"*"}]}"#;
        assert_eq!(
            err(doc),
            "Statement[1].Effect: expected \"Allow\" or \"Deny\", found \"allow\""
        );
        assert_eq!(
            err(r#"{"Statement":[{"Action":"iot:Connect","Resource":"*"}]}"#),
            "Statement[0]: missing \"Effect\""
        );
        assert!(
            err(r#"{"Statement":{"Effect":1,"Action":"*","Resource":"*"}}"#)
                .contains("found number 1")
        );
    }

    #[test]
    fn grammar_errors() {
        let cases = [
            ("", "policy document is empty"),
            ("  \n ", "policy document is empty"),
            ("[]", "policy document: expected a JSON object, found an array"),
            ("{}", "policy document: missing \"Statement\""),
            (r#"{"Statement":[]}"#, "Statement: must hold at least one statement"),
            (r#"{"Statement":"x"}"#, "Statement: expected a statement object, found \"x\""),
            (r#"{"Statement":[1]}"#, "Statement[0]: expected a statement object, found number 1"),
            (
                r#"{"statement":[]}"#,
                "policy document: unknown key \"statement\" (keys are case-sensitive: did you mean \"Statement\"?)",
            ),
            (
                r#"{"Statement":[],"Extra":1}"#,
                "policy document: unknown key \"Extra\"; expected one of \"Version\", \"Id\", \"Statement\"",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Foo":1}}"#,
                "Statement: unknown key \"Foo\"; expected one of \"Sid\", \"Effect\", \"Action\", \"NotAction\", \"Resource\", \"NotResource\", \"Condition\"",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}}"#,
                "Statement: \"Principal\" is not allowed: an IoT policy applies to the certificates and thing groups it is attached to",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Resource":"*"}}"#,
                "Statement: missing \"Action\" (or \"NotAction\")",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Action":"*","NotAction":"*","Resource":"*"}}"#,
                "Statement: has both \"Action\" and \"NotAction\"; use one",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Action":"*"}}"#,
                "Statement: missing \"Resource\" (or \"NotResource\")",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","NotResource":"*"}}"#,
                "Statement: has both \"Resource\" and \"NotResource\"; use one",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Action":["iot:Connect",7],"Resource":"*"}}"#,
                "Statement.Action[1]: expected a string, found number 7",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Action":[],"Resource":"*"}}"#,
                "Statement.Action: empty list",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Action":{"a":1},"Resource":"*"}}"#,
                "Statement.Action: expected a string or an array of strings, found an object",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Action":"Publish","Resource":"*"}}"#,
                "Statement.Action: expected an action such as \"iot:Publish\", \"iot:*\" or \"*\", found \"Publish\"",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":["*","topic/a"]}}"#,
                "Statement.Resource[1]: expected an ARN (\"arn:aws:iot:...\") or \"*\", found \"topic/a\"",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Effect":"Deny"}}"#,
                "Statement: duplicate key \"Effect\"",
            ),
            (
                r#"{"Statement":{"Sid":1,"Effect":"Allow","Action":"*","Resource":"*"}}"#,
                "Statement.Sid: expected a string, found number 1",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"Foo":{"k":"v"}}}}"#,
                "Statement.Condition: unknown condition operator \"Foo\"",
            ),
            (
                r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":[]}}"#,
                "Statement.Condition: expected an object of condition operators, found an array",
            ),
        ];
        for (document, expected) in cases {
            assert_eq!(err(document), expected, "{document}");
        }
    }

    #[test]
    fn invalid_json_reports_line_and_column() {
        let doc = "{\n  \"Statement\": [\n    {,\n  ]\n}";
        let e = err(doc);
        assert!(e.starts_with("invalid JSON at line 3 column 6: "), "{e}");
    }

    #[test]
    fn size_limit_ignores_whitespace() {
        // Pad a valid document with a long Sid to exactly the limit, then one over.
        let base = r#"{"Statement":{"Sid":"","Effect":"Allow","Action":"*","Resource":"*"}}"#;
        let room = MAX_POLICY_CHARS - base.len();
        let at_limit = base.replace("\"Sid\":\"\"", &format!("\"Sid\":\"{}\"", "a".repeat(room)));
        assert!(parse_policy(&at_limit).is_ok());
        let spaced = at_limit.replace(',', " ,\n\t ");
        assert!(parse_policy(&spaced).is_ok());
        let over = at_limit.replace("\"Sid\":\"", "\"Sid\":\"a");
        assert_eq!(
            err(&over),
            format!("policy document is 2049 characters long not counting whitespace; the limit is {MAX_POLICY_CHARS}")
        );
    }

    #[test]
    fn condition_values_may_be_numbers_and_booleans() {
        let doc = r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*",
            "Condition":{"Bool":{"iot:Connection.Thing.IsAttached":true},"NumericLessThan":{"n":[1,2.5]}}}}"#;
        assert!(parse_policy(doc).is_ok());
    }

    #[test]
    fn other_services_and_unknown_actions_are_accepted_but_match_nothing() {
        let doc = r#"{"Statement":{"Effect":"Allow","Action":["greengrass:*","iot:Publlish"],"Resource":"*"}}"#;
        let p = parse_policy(doc).unwrap();
        assert_eq!(p.statements()[0].actions, ActionSet::default());
    }
}
