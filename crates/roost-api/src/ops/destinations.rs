//! Topic rule destinations: CreateTopicRuleDestination,
//! ConfirmTopicRuleDestination, GetTopicRuleDestination,
//! ListTopicRuleDestinations, UpdateTopicRuleDestination,
//! DeleteTopicRuleDestination.

use super::{listing, put_opt, required};
use crate::error::{ApiError, ApiResult};
use crate::request::ApiRequest;
use crate::{epoch_seconds, ApiState};
use roost_registry::destinations::TopicRuleDestination;
use serde::Deserialize;
use serde_json::{json, Map, Value};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateDestination {
    destination_configuration: Option<Configuration>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Configuration {
    http_url_configuration: Option<HttpUrlConfiguration>,
    vpc_configuration: Option<Value>,
    #[serde(rename = "influxDBConfiguration")]
    influx_db_configuration: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct HttpUrlConfiguration {
    confirmation_url: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UpdateDestination {
    arn: Option<String>,
    status: Option<String>,
}

/// The members a destination and its summary share; `url_key` is where the
/// confirmation URL goes (`httpUrlProperties` or `httpUrlSummary`).
fn destination_json(d: &TopicRuleDestination, url_key: &str) -> Value {
    let mut out = Map::new();
    out.insert("arn".into(), json!(d.arn));
    out.insert("status".into(), json!(d.status.as_str()));
    out.insert("createdAt".into(), epoch_seconds(d.created_at));
    out.insert("lastUpdatedAt".into(), epoch_seconds(d.last_updated_at));
    put_opt(&mut out, "statusReason", d.status_reason.clone());
    out.insert(
        url_key.into(),
        json!({ "confirmationUrl": d.confirmation_url }),
    );
    Value::Object(out)
}

/// A label that is a whole path tail (`{arn+}`, `{confirmationToken+}`):
/// the segments joined again.
pub(crate) fn greedy(segments: &[&str]) -> String {
    segments.join("/")
}

pub async fn create_topic_rule_destination(state: &ApiState, req: &ApiRequest) -> ApiResult<Value> {
    let body: CreateDestination = req.json()?;
    let config = required(body.destination_configuration, "destinationConfiguration")?;
    if config.vpc_configuration.is_some() || config.influx_db_configuration.is_some() {
        return Err(ApiError::invalid(
            "only httpUrlConfiguration destinations are supported by Roost (VPC and InfluxDB destinations need AWS)",
        ));
    }
    let http = required(
        config.http_url_configuration,
        "destinationConfiguration.httpUrlConfiguration",
    )?;
    let url = required(
        http.confirmation_url,
        "destinationConfiguration.httpUrlConfiguration.confirmationUrl",
    )?;
    let destination = state.registry().create_topic_rule_destination(&url).await?;
    Ok(json!({ "topicRuleDestination": destination_json(&destination, "httpUrlProperties") }))
}

pub async fn confirm_topic_rule_destination(state: &ApiState, token: &str) -> ApiResult<Value> {
    state
        .registry()
        .confirm_topic_rule_destination(token)
        .await?;
    Ok(json!({}))
}

pub async fn get_topic_rule_destination(state: &ApiState, arn: &str) -> ApiResult<Value> {
    let destination = state.registry().get_topic_rule_destination(arn).await?;
    Ok(json!({ "topicRuleDestination": destination_json(&destination, "httpUrlProperties") }))
}

pub async fn list_topic_rule_destinations(state: &ApiState, req: &ApiRequest) -> ApiResult<Value> {
    let page = state
        .registry()
        .list_topic_rule_destinations(req.query("nextToken"), req.query_i64("maxResults")?)
        .await?;
    let items = page
        .items
        .iter()
        .map(|d| destination_json(d, "httpUrlSummary"))
        .collect();
    Ok(listing(
        "destinationSummaries",
        Value::Array(items),
        "nextToken",
        page.next_token,
    ))
}

pub async fn update_topic_rule_destination(state: &ApiState, req: &ApiRequest) -> ApiResult<Value> {
    let body: UpdateDestination = req.json()?;
    let arn = required(body.arn, "arn")?;
    let status = required(body.status, "status")?;
    state
        .registry()
        .update_topic_rule_destination(&arn, &status)
        .await?;
    Ok(json!({}))
}

pub async fn delete_topic_rule_destination(state: &ApiState, arn: &str) -> ApiResult<Value> {
    state.registry().delete_topic_rule_destination(arn).await?;
    Ok(json!({}))
}
