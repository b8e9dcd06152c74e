//! Rule actions: parsed once from the TopicRulePayload, executed per
//! message with the rule's SELECT output. Each action says whether a failure
//! is worth retrying.

mod http;
mod logs;
mod republish;
mod s3;
mod sns;

use crate::Shared;
use roost_sql::{Context, Output, SqlVersion, Template};
use serde_json::Value;

/// What an action failure looks like to the retry loop and the error action.
#[derive(Debug, Clone)]
pub struct ActionError {
    /// Worth another try (I/O hiccup, 5xx, timeout), or final (bad input).
    pub transient: bool,
    pub message: String,
}

impl ActionError {
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            transient: true,
            message: message.into(),
        }
    }
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            transient: false,
            message: message.into(),
        }
    }
}

/// One configured action.
pub enum Action {
    S3(s3::S3Action),
    Republish(republish::RepublishAction),
    Http(http::HttpAction),
    CloudwatchLogs(logs::LogsAction),
    Sns(sns::SnsAction),
}

/// Action types AWS has that need an AWS service Roost does not provide.
const AWS_ONLY: &[&str] = &[
    "dynamoDB",
    "dynamoDBv2",
    "lambda",
    "sqs",
    "kinesis",
    "firehose",
    "cloudwatchMetric",
    "cloudwatchAlarm",
    "elasticsearch",
    "openSearch",
    "salesforce",
    "iotAnalytics",
    "iotEvents",
    "iotSiteWise",
    "stepFunctions",
    "timestream",
    "kafka",
    "location",
    "influxDB",
];

/// Creates `dir` and its missing parents as 0700. What the actions write
/// under the data directory (objects, log events, the error action's copies)
/// is the devices' data, and the data directory may sit where other local
/// users can look. Directories that already exist keep their mode.
pub(crate) async fn private_dir_all(dir: &std::path::Path) -> std::io::Result<()> {
    let mut builder = tokio::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    builder.mode(0o700);
    builder.create(dir).await
}

pub(crate) fn template(
    value: &Value,
    field: &str,
    version: SqlVersion,
) -> Result<Template, String> {
    let text = value
        .get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{field} is required"))?;
    roost_sql::parse_template(text, version).map_err(|e| format!("{field}: {e}"))
}

impl Action {
    /// Parses one `{"<type>": {...}}` entry of `actions` or `errorAction`.
    pub fn parse(entry: &Value, version: SqlVersion) -> Result<Action, String> {
        let object = entry
            .as_object()
            .filter(|o| o.len() == 1)
            .ok_or("each action must be an object with exactly one action type")?;
        let (kind, config) = object.iter().next().expect("one entry");
        let parsed = match kind.as_str() {
            "s3" => Action::S3(s3::S3Action::parse(config, version)?),
            "republish" => Action::Republish(republish::RepublishAction::parse(config, version)?),
            "http" => Action::Http(http::HttpAction::parse(config, version)?),
            "cloudwatchLogs" => Action::CloudwatchLogs(logs::LogsAction::parse(config, version)?),
            "sns" => Action::Sns(sns::SnsAction::parse(config, version)?),
            other if AWS_ONLY.contains(&other) => {
                return Err(format!("the {other} action is not supported by Roost: it needs an AWS service (use s3, republish, http, cloudwatchLogs, sns)"))
            }
            other => return Err(format!("unknown action type '{other}'")),
        };
        Ok(parsed)
    }

    /// The name the error action reports (`S3Action`, `RepublishAction`, …).
    pub fn failed_action_name(&self) -> &'static str {
        match self {
            Action::S3(_) => "S3Action",
            Action::Republish(_) => "RepublishAction",
            Action::Http(_) => "HttpAction",
            Action::CloudwatchLogs(_) => "CloudwatchLogsAction",
            Action::Sns(_) => "SnsAction",
        }
    }

    /// The confirmation URL (without templates) of an http action: the
    /// topic rule destination CreateTopicRule makes sure exists.
    pub fn destination_url(&self) -> Option<&str> {
        match self {
            Action::Http(a) => a.destination_url.as_deref(),
            _ => None,
        }
    }

    /// The resource the error action reports (bucket, topic, URL, log group).
    pub fn resource(&self) -> String {
        match self {
            Action::S3(a) => a.bucket.clone(),
            Action::Republish(a) => a.topic_text.clone(),
            Action::Http(a) => a.url_text.clone(),
            Action::CloudwatchLogs(a) => a.group.clone(),
            Action::Sns(a) => a.target_text.clone(),
        }
    }

    pub async fn execute(
        &self,
        shared: &Shared,
        output: &Output,
        payload: &[u8],
        ctx: &Context<'_>,
    ) -> Result<(), ActionError> {
        match self {
            Action::S3(a) => a.execute(shared, output, payload, ctx).await,
            Action::Republish(a) => a.execute(shared, output, payload, ctx).await,
            Action::Http(a) => a.execute(shared, output, payload, ctx).await,
            Action::CloudwatchLogs(a) => a.execute(shared, output, payload, ctx).await,
            Action::Sns(a) => a.execute(shared, output, payload, ctx).await,
        }
    }
}
