//! Topic rules as control-plane resources: names, storage, enable/disable.
//! What a rule's SQL and actions mean is the rules engine's business; the
//! registry checks them through a validator the engine provides.

use crate::error::{RegistryError, Result};
use crate::model::*;
use crate::{paged, validate, Registry, RegistryEvent};
use serde_json::Value;

/// A stored topic rule.
#[derive(Clone, Debug, PartialEq)]
pub struct TopicRule {
    pub name: String,
    /// The TopicRulePayload as accepted (without `ruleDisabled`).
    pub payload: Value,
    pub disabled: bool,
    pub created_at: Millis,
}

impl TopicRule {
    pub fn sql(&self) -> &str {
        self.payload["sql"].as_str().unwrap_or_default()
    }
}

/// Checks a TopicRulePayload before it is stored (SQL parses, actions are
/// supported) and returns warnings worth telling the user; supplied by the
/// rules engine so the registry needs no knowledge of IoT SQL.
#[async_trait::async_trait]
pub trait RuleValidator: Send + Sync {
    async fn validate(
        &self,
        name: &str,
        payload: &Value,
    ) -> std::result::Result<Vec<String>, RegistryError>;
    /// The topic filter of the rule's FROM clause (ListTopicRules' topicPattern).
    fn topic_pattern(&self, payload: &Value) -> Option<String>;
    /// The confirmation URLs (without templates) of the rule's http actions:
    /// AWS creates a topic rule destination for each one that has none.
    fn destination_urls(&self, _payload: &Value) -> Vec<String> {
        Vec::new()
    }
}

/// Rule names: `[a-zA-Z0-9_]+`, 1–128.
pub fn rule_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 128
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(RegistryError::invalid(format!(
            "Rule name '{name}' is not valid: it must be 1 to 128 characters of [a-zA-Z0-9_]"
        )));
    }
    Ok(())
}

impl Registry {
    async fn check_rule(&self, name: &str, payload: &Value) -> Result<(Value, bool, Vec<String>)> {
        rule_name(name)?;
        let Some(object) = payload.as_object() else {
            return Err(RegistryError::invalid(
                "topicRulePayload must be a JSON object",
            ));
        };
        let mut stored = object.clone();
        let disabled = match stored.remove("ruleDisabled") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => b,
            Some(_) => return Err(RegistryError::invalid("ruleDisabled must be true or false")),
        };
        let stored = Value::Object(stored);
        // Without the engine's validator nothing could vouch for the SQL:
        // refuse rather than store a rule that may never run.
        let Some(validator) = self.rule_validator() else {
            return Err(RegistryError::Internal(
                "topic rule validator not installed".into(),
            ));
        };
        let warnings = validator.validate(name, &stored).await?;
        Ok((stored, disabled, warnings))
    }

    /// Creates the destinations a stored rule's http actions need (after the
    /// rule is stored, so a refused rule leaves no destination behind).
    async fn rule_destinations(&self, payload: &Value) -> Result<()> {
        let urls = self
            .rule_validator()
            .map(|v| v.destination_urls(payload))
            .unwrap_or_default();
        self.ensure_topic_rule_destinations(&urls).await
    }

    /// The warnings CreateTopicRule would give for `payload`, without
    /// storing anything (Roost's own `roost rules check` and `roost plan`).
    pub async fn check_topic_rule(&self, name: &str, payload: &Value) -> Result<Vec<String>> {
        Ok(self.check_rule(name, payload).await?.2)
    }

    /// CreateTopicRule; returns warnings (e.g. a FROM that no policy lets
    /// any device publish to) for the caller to log or show.
    pub async fn create_topic_rule(&self, name: &str, payload: &Value) -> Result<Vec<String>> {
        let (stored, disabled, warnings) = self.check_rule(name, payload).await?;
        let rule = TopicRule {
            name: name.to_string(),
            payload: stored,
            disabled,
            created_at: now_millis(),
        };
        self.store.create_topic_rule(&rule).await?;
        self.publish(RegistryEvent::RulesChanged);
        self.rule_destinations(&rule.payload).await?;
        Ok(warnings)
    }

    pub async fn replace_topic_rule(&self, name: &str, payload: &Value) -> Result<Vec<String>> {
        let (stored, disabled, warnings) = self.check_rule(name, payload).await?;
        self.store
            .replace_topic_rule(name, &stored, disabled)
            .await?;
        self.publish(RegistryEvent::RulesChanged);
        self.rule_destinations(&stored).await?;
        Ok(warnings)
    }

    pub async fn get_topic_rule(&self, name: &str) -> Result<TopicRule> {
        rule_name(name)?;
        self.store
            .get_topic_rule(name)
            .await?
            .ok_or_else(|| RegistryError::not_found(format!("Rule {name} does not exist")))
    }

    pub async fn delete_topic_rule(&self, name: &str) -> Result<()> {
        rule_name(name)?;
        self.store.delete_topic_rule(name).await?;
        self.publish(RegistryEvent::RulesChanged);
        Ok(())
    }

    pub async fn set_topic_rule_disabled(&self, name: &str, disabled: bool) -> Result<()> {
        rule_name(name)?;
        self.store.set_topic_rule_disabled(name, disabled).await?;
        self.publish(RegistryEvent::RulesChanged);
        Ok(())
    }

    /// The topic filter a rule's FROM names, as ListTopicRules shows it.
    pub fn rule_topic_pattern(&self, payload: &Value) -> Option<String> {
        self.rule_validator().and_then(|v| v.topic_pattern(payload))
    }

    /// Every rule, enabled or not (the rules engine loads them all).
    pub async fn all_topic_rules(&self) -> Result<Vec<TopicRule>> {
        self.store
            .list_topic_rules(&PageRequest::first(usize::MAX >> 1))
            .await
    }

    pub async fn list_topic_rules(
        &self,
        topic: Option<&str>,
        disabled: Option<bool>,
        token: Option<&str>,
        max: Option<i64>,
    ) -> Result<Page<TopicRule>> {
        let limit = validate::page_size(max.map(|m| m.min(250)), 50)?;
        let matcher = self.rule_validator();
        let rules: Vec<TopicRule> = self
            .all_topic_rules()
            .await?
            .into_iter()
            .filter(|r| disabled.is_none_or(|d| r.disabled == d))
            .filter(|r| match (topic, &matcher) {
                (Some(t), Some(m)) => m.topic_pattern(&r.payload).as_deref() == Some(t),
                _ => true,
            })
            .collect();
        paged(
            token,
            limit,
            true,
            |r: &TopicRule| r.name.clone(),
            |p| async move {
                Ok(rules
                    .into_iter()
                    .filter(|r| p.after.as_ref().is_none_or(|a| &r.name > a))
                    .take(p.limit)
                    .collect())
            },
        )
        .await
    }
}
