//! Topic rules: CreateTopicRule, GetTopicRule, ReplaceTopicRule,
//! DeleteTopicRule, ListTopicRules, EnableTopicRule, DisableTopicRule.

use super::listing;
use crate::error::{ApiError, ApiResult};
use crate::request::ApiRequest;
use crate::{epoch_seconds, ApiState};
use serde_json::{json, Value};

fn payload(req: &ApiRequest) -> ApiResult<Value> {
    let value: Value = req.json()?;
    if !value.is_object() {
        return Err(ApiError::invalid(
            "the body must be a TopicRulePayload object",
        ));
    }
    Ok(value)
}

fn log_warnings(name: &str, warnings: &[String]) {
    for w in warnings {
        tracing::warn!(rule = %name, "{w}");
    }
}

pub async fn create_topic_rule(state: &ApiState, req: &ApiRequest, name: &str) -> ApiResult<Value> {
    let warnings = state
        .registry()
        .create_topic_rule(name, &payload(req)?)
        .await?;
    log_warnings(name, &warnings);
    Ok(json!({}))
}

pub async fn replace_topic_rule(
    state: &ApiState,
    req: &ApiRequest,
    name: &str,
) -> ApiResult<Value> {
    let warnings = state
        .registry()
        .replace_topic_rule(name, &payload(req)?)
        .await?;
    log_warnings(name, &warnings);
    Ok(json!({}))
}

/// Roost's own `POST /roost/check-topic-rule/{name}`: the warnings
/// CreateTopicRule would log for this payload (a FROM no device may publish
/// to, an s3 key that can collide, …), or its error; nothing is stored.
pub async fn check_topic_rule(state: &ApiState, req: &ApiRequest, name: &str) -> ApiResult<Value> {
    let warnings = state
        .registry()
        .check_topic_rule(name, &payload(req)?)
        .await?;
    Ok(json!({ "ruleName": name, "warnings": warnings }))
}

fn rule_arn(state: &ApiState, name: &str) -> String {
    let s = state.registry().settings();
    format!("arn:aws:iot:{}:{}:rule/{name}", s.region, s.account)
}

pub async fn get_topic_rule(state: &ApiState, name: &str) -> ApiResult<Value> {
    let rule = state.registry().get_topic_rule(name).await?;
    let mut body = rule.payload.clone();
    if let Some(o) = body.as_object_mut() {
        o.insert("ruleName".into(), json!(rule.name));
        o.insert("ruleDisabled".into(), json!(rule.disabled));
        o.insert("createdAt".into(), epoch_seconds(rule.created_at));
        o.entry("awsIotSqlVersion").or_insert(json!("2015-10-08"));
    }
    Ok(json!({ "ruleArn": rule_arn(state, &rule.name), "rule": body }))
}

pub async fn delete_topic_rule(state: &ApiState, name: &str) -> ApiResult<Value> {
    state.registry().delete_topic_rule(name).await?;
    Ok(json!({}))
}

pub async fn set_disabled(state: &ApiState, name: &str, disabled: bool) -> ApiResult<Value> {
    state
        .registry()
        .set_topic_rule_disabled(name, disabled)
        .await?;
    Ok(json!({}))
}

pub async fn list_topic_rules(state: &ApiState, req: &ApiRequest) -> ApiResult<Value> {
    let page = state
        .registry()
        .list_topic_rules(
            req.query("topic"),
            req.query_bool("ruleDisabled")?,
            req.query("nextToken"),
            req.query_i64("maxResults")?,
        )
        .await?;
    let rules = page
        .items
        .iter()
        .map(|r| {
            json!({
                "ruleArn": rule_arn(state, &r.name),
                "ruleName": r.name,
                "topicPattern": state.registry().rule_topic_pattern(&r.payload),
                "createdAt": epoch_seconds(r.created_at),
                "ruleDisabled": r.disabled,
            })
        })
        .collect();
    Ok(listing(
        "rules",
        Value::Array(rules),
        "nextToken",
        page.next_token,
    ))
}
