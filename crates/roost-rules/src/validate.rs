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
        let mut candidates = Vec::new();
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
                candidates.extend(publish_topics(&doc));
            }
            match page.next_token {
                Some(t) => marker = Some(t),
                None => break,
            }
        }
        if candidates.iter().any(|c| c.is_none()) {
            return None; // some policy allows publishing to any topic
        }
        let topics: Vec<String> = candidates.into_iter().flatten().collect();
        if topics.iter().any(|t| statement.matches_topic(t)) {
            return None;
        }
        Some(format!(
            "FROM '{}' matches no topic that an attached policy lets a device publish to; the rule will only see messages published by the service (iot-data, republish). Check the number of topic levels and the wildcards.",
            statement.from_topic()
        ))
    }
}

/// Example topics the Allow iot:Publish statements of a policy permit:
/// variables become one level, `*` becomes one, two or three levels.
/// `None` stands for "any topic".
fn publish_topics(doc: &Value) -> Vec<Option<String>> {
    let statements = match &doc["Statement"] {
        Value::Array(a) => a.clone(),
        s @ Value::Object(_) => vec![s.clone()],
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
    let mut out = Vec::new();
    for st in statements {
        if st["Effect"] != "Allow" {
            continue;
        }
        let publishes = as_list(&st["Action"]).iter().any(|a| {
            let a = a.to_ascii_lowercase();
            a == "*" || a == "iot:*" || a == "iot:publish" || a == "iot:pub*"
        });
        if !publishes {
            continue;
        }
        for resource in as_list(&st["Resource"]) {
            if resource == "*" {
                out.push(None);
                continue;
            }
            let Some((_, topic)) = resource.split_once(":topic/") else {
                continue;
            };
            let mut t = String::new();
            let mut rest = topic;
            while let Some(start) = rest.find("${") {
                t.push_str(&rest[..start]);
                t.push('x');
                rest = rest[start..]
                    .find('}')
                    .map(|end| &rest[start + end + 1..])
                    .unwrap_or("");
            }
            t.push_str(rest);
            if t == "*" {
                out.push(None);
                continue;
            }
            for fill in ["x", "x/x", "x/x/x"] {
                out.push(Some(t.replace('*', fill).replace('?', "x")));
            }
        }
    }
    out
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
    use serde_json::json;

    #[test]
    fn publish_topics_of_the_scenario_policy() {
        let doc = json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["iot:Connect"], "Resource": "arn:aws:iot:us-east-1:000000000000:client/${iot:Connection.Thing.ThingName}"},
            {"Effect": "Allow", "Action": ["iot:Publish"], "Resource": "arn:aws:iot:us-east-1:000000000000:topic/${iot:Connection.Thing.Attributes[Owner]}/${iot:Connection.Thing.ThingName}/audit"}
        ]});
        let topics = publish_topics(&doc);
        assert!(
            topics.contains(&Some("x/x/audit".to_string())),
            "{topics:?}"
        );
        let any = json!({"Statement": {"Effect": "Allow", "Action": "iot:*", "Resource": "*"}});
        assert_eq!(publish_topics(&any), vec![None]);
    }
}
