//! SetV2LoggingOptions, GetV2LoggingOptions, SetV2LoggingLevel,
//! ListV2LoggingLevels and DeleteV2LoggingLevel: the event log's options and
//! per-target levels. Each change is stored first (it survives a restart),
//! then handed to the gateway's live event log.

use super::{listing, required};
use crate::error::{ApiError, ApiResult};
use crate::request::ApiRequest;
use crate::ApiState;
use roost_eventlog::{LogLevel, LogTarget, LoggingOptions, TargetType};
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// ListV2LoggingLevels' page size bounds (AWS: 1 to 250).
const MAX_RESULTS: i64 = 250;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SetOptions {
    role_arn: Option<String>,
    default_log_level: Option<String>,
    disable_all_logs: Option<bool>,
    event_configurations: Option<Vec<Value>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Target {
    target_type: Option<String>,
    target_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SetLevel {
    log_target: Option<Target>,
    log_level: Option<String>,
}

fn level(text: &str) -> ApiResult<LogLevel> {
    text.parse().map_err(|e| ApiError::invalid(format!("{e}")))
}

fn target_type(text: &str) -> ApiResult<TargetType> {
    text.parse().map_err(|e| ApiError::invalid(format!("{e}")))
}

fn target(target_type_text: Option<&str>, name: Option<&str>) -> ApiResult<LogTarget> {
    let t = target_type(required(target_type_text, "targetType")?)?;
    LogTarget::new(t, name).map_err(|e| ApiError::invalid(e.to_string()))
}

pub async fn set_v2_logging_options(state: &ApiState, req: &ApiRequest) -> ApiResult<Value> {
    let body: SetOptions = req.json()?;
    if body.event_configurations.is_some_and(|c| !c.is_empty()) {
        return Err(ApiError::invalid(
            "eventConfigurations are not supported by Roost: set levels per target instead",
        ));
    }
    let log = state.broker().event_log();
    let options = LoggingOptions {
        role_arn: body.role_arn,
        // Absent: the level stays as it is.
        default_log_level: match body.default_log_level.as_deref() {
            Some(text) => level(text)?,
            None => log.config().options.default_log_level,
        },
        disable_all_logs: body.disable_all_logs.unwrap_or(false),
    };
    state.registry().set_v2_logging_options(&options).await?;
    log.update(|config| config.options = options);
    Ok(json!({}))
}

pub async fn get_v2_logging_options(state: &ApiState) -> ApiResult<Value> {
    let config = state.broker().event_log().config();
    let options = &config.options;
    let mut out = Map::new();
    super::put_opt(&mut out, "roleArn", options.role_arn.clone());
    out.insert(
        "defaultLogLevel".into(),
        json!(options.default_log_level.as_str()),
    );
    out.insert("disableAllLogs".into(), json!(options.disable_all_logs));
    Ok(Value::Object(out))
}

pub async fn set_v2_logging_level(state: &ApiState, req: &ApiRequest) -> ApiResult<Value> {
    let body: SetLevel = req.json()?;
    let t = required(body.log_target, "logTarget")?;
    let target = target(t.target_type.as_deref(), t.target_name.as_deref())?;
    let level = level(required(body.log_level.as_deref(), "logLevel")?)?;
    state
        .registry()
        .set_v2_logging_level(&target, level)
        .await?;
    state
        .broker()
        .event_log()
        .update(|config| config.set_level(target, level));
    Ok(json!({}))
}

pub async fn delete_v2_logging_level(state: &ApiState, req: &ApiRequest) -> ApiResult<Value> {
    let target = target(req.query("targetType"), req.query("targetName"))?;
    // Deleting a level that is not set changes nothing and is not an error.
    state.registry().delete_v2_logging_level(&target).await?;
    state.broker().event_log().update(|config| {
        config.delete_level(&target);
    });
    Ok(json!({}))
}

pub async fn list_v2_logging_levels(state: &ApiState, req: &ApiRequest) -> ApiResult<Value> {
    let only = req.query("targetType").map(target_type).transpose()?;
    let max = req.query_i64("maxResults")?.unwrap_or(MAX_RESULTS);
    if !(1..=MAX_RESULTS).contains(&max) {
        return Err(ApiError::invalid(format!(
            "maxResults must be between 1 and {MAX_RESULTS}"
        )));
    }
    let start: usize = match req.query("nextToken") {
        None => 0,
        Some(token) => token
            .parse()
            .map_err(|_| ApiError::invalid(format!("nextToken '{token}' is not valid")))?,
    };
    let config = state.broker().event_log().config();
    // The default level is listed first, as AWS lists it.
    let default = (only.is_none() || only == Some(TargetType::Default)).then(|| {
        json!({
            "logTarget": { "targetType": "DEFAULT" },
            "logLevel": config.options.default_log_level.as_str(),
        })
    });
    let all: Vec<Value> = default
        .into_iter()
        .chain(
            config
                .levels()
                .filter(|(t, _)| only.is_none_or(|o| o == t.target_type))
                .map(|(t, level)| {
                    json!({
                        "logTarget": {
                            "targetType": t.target_type.as_str(),
                            "targetName": t.target_name,
                        },
                        "logLevel": level.as_str(),
                    })
                }),
        )
        .collect();
    let end = all.len().min(start.saturating_add(max as usize));
    let page: Vec<Value> = all.get(start..end).unwrap_or_default().to_vec();
    let next = (end < all.len()).then(|| end.to_string());
    Ok(listing(
        "logTargetConfigurations",
        json!(page),
        "nextToken",
        next,
    ))
}
