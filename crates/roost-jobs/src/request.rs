//! The device jobs API's requests (the reference's section 5): which
//! `$aws/things/{thing}/jobs/...` topic asks for what, and what its JSON
//! payload says. Read as leniently as AWS reads them, because the SDKs
//! differ: AWSIoTPythonSDK sends `expectedVersion` and `executionNumber`
//! as strings, and `{}` or nothing when it has no client token.
//!
//! A payload's `clientToken` is read before anything else can fail, so a
//! refusal still carries it back (awsiotsdk v2 matches replies by it alone).

use crate::execution::{StatusDetails, StepTimeout, Update};
use crate::{ErrorCode, ExecutionStatus};
use serde_json::{Map, Value};

/// `statusDetails`: at most this many pairs...
pub const MAX_STATUS_DETAILS: usize = 10;
/// ...keys of 1 to this many characters of `[a-zA-Z0-9:_-]`...
pub const MAX_STATUS_DETAIL_KEY: usize = 128;
/// ...and values of 1 to this many characters, no control characters.
pub const MAX_STATUS_DETAIL_VALUE: usize = 1024;
/// `clientToken`: at most this many characters.
pub const MAX_CLIENT_TOKEN: usize = 64;
/// `stepTimeoutInMinutes`: 1 to this, or -1.
pub const MAX_STEP_MINUTES: u32 = 10_080;
/// Thing names: 1 to this many characters of `[a-zA-Z0-9:_-]`.
pub const MAX_THING_NAME: usize = 128;
/// Job ids: 1 to this many characters of `[a-zA-Z0-9_-]`.
pub const MAX_JOB_ID: usize = 64;

/// Which execution a DescribeJobExecution names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobRef<'a> {
    /// `$next`: the one start-next would take.
    Next,
    Id(&'a str),
}

/// The four requests a device can publish.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation<'a> {
    /// `jobs/get`: GetPendingJobExecutions.
    GetPending,
    /// `jobs/start-next`: StartNextPendingJobExecution.
    StartNext,
    /// `jobs/{jobId}/get`: DescribeJobExecution.
    Describe(JobRef<'a>),
    /// `jobs/{jobId}/update`: UpdateJobExecution.
    Update(&'a str),
}

/// What a topic under `$aws/things/{thing}/jobs/` is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobsTopic<'a> {
    /// A request, answered on `<topic>/accepted` or `<topic>/rejected`.
    Request {
        thing_name: &'a str,
        operation: Operation<'a>,
    },
    /// `notify`, `notify-next` and the reply topics: only the service
    /// publishes there.
    ServiceOnly { thing_name: &'a str },
    /// In the jobs namespace but no API of it: answered `InvalidTopic` on
    /// `<topic>/rejected`.
    Invalid,
}

const PREFIX: &str = "$aws/things/";

/// Classifies `topic`; `None` when it is not under
/// `$aws/things/{thing}/jobs` at all.
pub fn classify(topic: &str) -> Option<JobsTopic<'_>> {
    let rest = topic.strip_prefix(PREFIX)?;
    let (thing_name, rest) = rest.split_once('/')?;
    let rest = match rest.strip_prefix("jobs") {
        Some("") => return Some(JobsTopic::Invalid),
        Some(rest) => rest.strip_prefix('/')?,
        None => return None,
    };
    if !is_thing_name(thing_name) {
        return Some(JobsTopic::Invalid);
    }
    let levels: Vec<&str> = rest.split('/').collect();
    let operation = match levels.as_slice() {
        ["notify" | "notify-next"] => return Some(JobsTopic::ServiceOnly { thing_name }),
        [.., "accepted" | "rejected"] if levels.len() >= 2 => {
            return Some(JobsTopic::ServiceOnly { thing_name })
        }
        ["get"] => Operation::GetPending,
        ["start-next"] => Operation::StartNext,
        ["$next", "get"] => Operation::Describe(JobRef::Next),
        [job, "get"] if is_job_id(job) => Operation::Describe(JobRef::Id(job)),
        [job, "update"] if is_job_id(job) => Operation::Update(job),
        _ => return Some(JobsTopic::Invalid),
    };
    Some(JobsTopic::Request {
        thing_name,
        operation,
    })
}

/// The topic a request is answered on.
pub fn reply_topic(request_topic: &str, accepted: bool) -> String {
    let suffix = if accepted { "accepted" } else { "rejected" };
    format!("{request_topic}/{suffix}")
}

/// `$aws/things/{thing}/jobs/notify`.
pub fn notify_topic(thing_name: &str) -> String {
    format!("{PREFIX}{thing_name}/jobs/notify")
}

/// `$aws/things/{thing}/jobs/notify-next`.
pub fn notify_next_topic(thing_name: &str) -> String {
    format!("{PREFIX}{thing_name}/jobs/notify-next")
}

pub fn is_thing_name(name: &str) -> bool {
    (1..=MAX_THING_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'-'))
}

pub fn is_job_id(id: &str) -> bool {
    (1..=MAX_JOB_ID).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
}

/// A request that cannot be served as asked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct RequestError {
    pub code: ErrorCode,
    pub message: String,
}

impl RequestError {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self {
            code: ErrorCode::InvalidRequest,
            message: message.into(),
        }
    }
}

/// A request's payload, read: its client token (whatever else failed) and
/// the request, or why it cannot be served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed<T> {
    pub client_token: Option<String>,
    pub request: Result<T, RequestError>,
}

/// StartNextPendingJobExecution's fields.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StartNext {
    pub status_details: Option<StatusDetails>,
    pub step_timeout: Option<StepTimeout>,
}

/// DescribeJobExecution's fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Describe {
    pub execution_number: Option<u64>,
    /// Defaults to true.
    pub include_job_document: bool,
}

/// UpdateJobExecution's fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpdateRequest {
    pub update: Update,
    pub execution_number: Option<u64>,
    /// Both default to false.
    pub include_job_execution_state: bool,
    pub include_job_document: bool,
}

/// GetPendingJobExecutions: nothing but the client token.
pub fn get_pending(payload: &[u8]) -> Parsed<()> {
    parse(payload, |_| Ok(()))
}

pub fn start_next(payload: &[u8]) -> Parsed<StartNext> {
    parse(payload, |fields| {
        Ok(StartNext {
            status_details: status_details(fields)?,
            step_timeout: step_timeout(fields)?,
        })
    })
}

pub fn describe(payload: &[u8]) -> Parsed<Describe> {
    parse(payload, |fields| {
        Ok(Describe {
            execution_number: number(fields, "executionNumber")?,
            include_job_document: flag(fields, "includeJobDocument")?.unwrap_or(true),
        })
    })
}

pub fn update(payload: &[u8]) -> Parsed<UpdateRequest> {
    parse(payload, |fields| {
        let status = match present(fields, "status") {
            None => return Err(RequestError::invalid("status is required")),
            Some(Value::String(s)) => ExecutionStatus::parse(s).ok_or_else(|| {
                RequestError::invalid(format!(
                    "status '{s}' is not one of IN_PROGRESS, SUCCEEDED, FAILED, REJECTED"
                ))
            })?,
            Some(_) => return Err(RequestError::invalid("status must be a string")),
        };
        Ok(UpdateRequest {
            update: Update {
                status,
                status_details: status_details(fields)?,
                expected_version: number(fields, "expectedVersion")?,
                step_timeout: step_timeout(fields)?,
            },
            execution_number: number(fields, "executionNumber")?,
            include_job_execution_state: flag(fields, "includeJobExecutionState")?.unwrap_or(false),
            include_job_document: flag(fields, "includeJobDocument")?.unwrap_or(false),
        })
    })
}

/// Reads the payload as a JSON object (nothing at all counts as `{}`),
/// takes its client token, then the request's own fields.
fn parse<T>(
    payload: &[u8],
    read: impl FnOnce(&Map<String, Value>) -> Result<T, RequestError>,
) -> Parsed<T> {
    let fields = match object(payload) {
        Ok(fields) => fields,
        Err(e) => {
            return Parsed {
                client_token: None,
                request: Err(e),
            }
        }
    };
    match client_token(&fields) {
        Ok(client_token) => Parsed {
            client_token,
            request: read(&fields),
        },
        Err(e) => Parsed {
            client_token: None,
            request: Err(e),
        },
    }
}

fn object(payload: &[u8]) -> Result<Map<String, Value>, RequestError> {
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    let invalid_json = |what: &str| RequestError {
        code: ErrorCode::InvalidJson,
        message: format!("the payload is not valid JSON: {what}"),
    };
    let text = std::str::from_utf8(payload).map_err(|_| invalid_json("not UTF-8"))?;
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(fields)) => Ok(fields),
        Ok(_) => Err(RequestError::invalid("the payload must be a JSON object")),
        Err(e) => Err(invalid_json(&e.to_string())),
    }
}

/// A field that is there and not `null`.
fn present<'a>(fields: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    fields.get(name).filter(|v| !v.is_null())
}

fn client_token(fields: &Map<String, Value>) -> Result<Option<String>, RequestError> {
    match present(fields, "clientToken") {
        None => Ok(None),
        Some(Value::String(s)) if s.chars().count() <= MAX_CLIENT_TOKEN => Ok(Some(s.clone())),
        Some(Value::String(_)) => Err(RequestError::invalid(format!(
            "clientToken is longer than {MAX_CLIENT_TOKEN} characters"
        ))),
        Some(_) => Err(RequestError::invalid("clientToken must be a string")),
    }
}

/// A non-negative integer, as a JSON number or a string of digits.
fn number(fields: &Map<String, Value>, name: &str) -> Result<Option<u64>, RequestError> {
    let Some(value) = present(fields, name) else {
        return Ok(None);
    };
    let n = match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    n.map(Some)
        .ok_or_else(|| RequestError::invalid(format!("{name} must be a non-negative integer")))
}

fn flag(fields: &Map<String, Value>, name: &str) -> Result<Option<bool>, RequestError> {
    match present(fields, name) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(RequestError::invalid(format!(
            "{name} must be true or false"
        ))),
    }
}

fn step_timeout(fields: &Map<String, Value>) -> Result<Option<StepTimeout>, RequestError> {
    let Some(value) = present(fields, "stepTimeoutInMinutes") else {
        return Ok(None);
    };
    let minutes = match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    match minutes {
        Some(-1) => Ok(Some(StepTimeout::Cancel)),
        Some(m) if (1..=i64::from(MAX_STEP_MINUTES)).contains(&m) => {
            Ok(Some(StepTimeout::Minutes(m as u32)))
        }
        _ => Err(RequestError::invalid(format!(
            "stepTimeoutInMinutes must be -1 or from 1 to {MAX_STEP_MINUTES}"
        ))),
    }
}

fn status_details(fields: &Map<String, Value>) -> Result<Option<StatusDetails>, RequestError> {
    let Some(value) = present(fields, "statusDetails") else {
        return Ok(None);
    };
    let Value::Object(map) = value else {
        return Err(RequestError::invalid("statusDetails must be an object"));
    };
    if map.len() > MAX_STATUS_DETAILS {
        return Err(RequestError::invalid(format!(
            "statusDetails holds {} pairs; at most {MAX_STATUS_DETAILS} are allowed",
            map.len()
        )));
    }
    let mut details = StatusDetails::new();
    for (key, value) in map {
        let key_ok = (1..=MAX_STATUS_DETAIL_KEY).contains(&key.chars().count())
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'-'));
        if !key_ok {
            return Err(RequestError::invalid(format!(
                "statusDetails key '{}' must be 1 to {MAX_STATUS_DETAIL_KEY} characters of a-z, A-Z, 0-9, ':', '_', '-'",
                key.chars().take(MAX_STATUS_DETAIL_KEY).collect::<String>()
            )));
        }
        let Value::String(text) = value else {
            return Err(RequestError::invalid(format!(
                "statusDetails value of '{key}' must be a string"
            )));
        };
        let value_ok = (1..=MAX_STATUS_DETAIL_VALUE).contains(&text.chars().count())
            && !text.chars().any(char::is_control);
        if !value_ok {
            return Err(RequestError::invalid(format!(
                "statusDetails value of '{key}' must be 1 to {MAX_STATUS_DETAIL_VALUE} characters without control characters"
            )));
        }
        details.insert(key.clone(), text.clone());
    }
    Ok(Some(details))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_four_requests_and_their_topics() {
        let request = |topic| match classify(topic) {
            Some(JobsTopic::Request {
                thing_name,
                operation,
            }) => Some((thing_name, operation)),
            _ => None,
        };
        assert_eq!(
            request("$aws/things/canary-1/jobs/get"),
            Some(("canary-1", Operation::GetPending))
        );
        assert_eq!(
            request("$aws/things/canary-1/jobs/start-next"),
            Some(("canary-1", Operation::StartNext))
        );
        assert_eq!(
            request("$aws/things/canary-1/jobs/$next/get"),
            Some(("canary-1", Operation::Describe(JobRef::Next)))
        );
        assert_eq!(
            request("$aws/things/canary-1/jobs/rotate_cert-2/get"),
            Some(("canary-1", Operation::Describe(JobRef::Id("rotate_cert-2"))))
        );
        assert_eq!(
            request("$aws/things/canary-1/jobs/scan/update"),
            Some(("canary-1", Operation::Update("scan")))
        );
        assert_eq!(
            reply_topic("$aws/things/canary-1/jobs/scan/update", true),
            "$aws/things/canary-1/jobs/scan/update/accepted"
        );
    }

    #[test]
    fn service_topics_invalid_topics_and_other_topics() {
        for topic in [
            "$aws/things/t/jobs/notify",
            "$aws/things/t/jobs/notify-next",
            "$aws/things/t/jobs/get/accepted",
            "$aws/things/t/jobs/j/update/rejected",
        ] {
            assert_eq!(
                classify(topic),
                Some(JobsTopic::ServiceOnly { thing_name: "t" }),
                "{topic}"
            );
        }
        for topic in [
            "$aws/things/t/jobs",
            "$aws/things/t/jobs/",
            "$aws/things/t/jobs/foo",
            "$aws/things/t/jobs/$next/update",
            "$aws/things/t/jobs/j/get/extra",
            "$aws/things/t/jobs/bad.id/get",
            "$aws/things/bad thing/jobs/get",
            "$aws/things//jobs/get",
        ] {
            assert_eq!(classify(topic), Some(JobsTopic::Invalid), "{topic}");
        }
        for topic in [
            "$aws/things/t/shadow/get",
            "$aws/things/t",
            "things/t/jobs/get",
            "$aws/things/t/jobsx/get",
        ] {
            assert_eq!(classify(topic), None, "{topic}");
        }
    }

    #[test]
    fn an_empty_payload_is_an_empty_request() {
        for payload in [&b""[..], b"  ", b"{}"] {
            let parsed = describe(payload);
            assert_eq!(parsed.client_token, None);
            assert_eq!(
                parsed.request,
                Ok(Describe {
                    execution_number: None,
                    include_job_document: true
                })
            );
        }
    }

    #[test]
    fn numbers_come_as_numbers_or_as_strings() {
        // AWSIoTPythonSDK v1's update.
        let parsed = update(
            br#"{"status":"IN_PROGRESS","expectedVersion":"2","executionNumber":"1","clientToken":"dev-1"}"#,
        );
        assert_eq!(parsed.client_token.as_deref(), Some("dev-1"));
        let request = parsed.request.unwrap();
        assert_eq!(request.update.expected_version, Some(2));
        assert_eq!(request.execution_number, Some(1));
        assert!(!request.include_job_document && !request.include_job_execution_state);
        // awsiotsdk v2's.
        let request = update(br#"{"status":"SUCCEEDED","expectedVersion":3,"includeJobExecutionState":true,"stepTimeoutInMinutes":-1}"#)
            .request
            .unwrap();
        assert_eq!(request.update.expected_version, Some(3));
        assert_eq!(request.update.step_timeout, Some(StepTimeout::Cancel));
        assert!(request.include_job_execution_state);
    }

    #[test]
    fn bad_payloads_get_the_codes_aws_gives_and_keep_the_client_token() {
        let code = |p: Parsed<UpdateRequest>| p.request.unwrap_err().code;
        assert_eq!(code(update(b"{not json")), ErrorCode::InvalidJson);
        assert_eq!(code(update(b"\xff\xfe")), ErrorCode::InvalidJson);
        assert_eq!(code(update(b"[1]")), ErrorCode::InvalidRequest);
        let parsed = update(br#"{"clientToken":"c1"}"#);
        assert_eq!(parsed.client_token.as_deref(), Some("c1"));
        assert_eq!(parsed.request.unwrap_err().message, "status is required");
        for bad in [
            r#"{"status":"DONE"}"#,
            r#"{"status":1}"#,
            r#"{"status":"IN_PROGRESS","expectedVersion":-1}"#,
            r#"{"status":"IN_PROGRESS","expectedVersion":"x"}"#,
            r#"{"status":"IN_PROGRESS","stepTimeoutInMinutes":0}"#,
            r#"{"status":"IN_PROGRESS","stepTimeoutInMinutes":10081}"#,
            r#"{"status":"IN_PROGRESS","statusDetails":{"k":1}}"#,
            r#"{"status":"IN_PROGRESS","statusDetails":{"k":""}}"#,
            r#"{"status":"IN_PROGRESS","statusDetails":{"bad key":"v"}}"#,
            r#"{"status":"IN_PROGRESS","statusDetails":{"k":"a\nb"}}"#,
            r#"{"status":"IN_PROGRESS","statusDetails":["k"]}"#,
            r#"{"status":"IN_PROGRESS","includeJobDocument":"yes"}"#,
            r#"{"status":"IN_PROGRESS","clientToken":7}"#,
        ] {
            assert_eq!(
                code(update(bad.as_bytes())),
                ErrorCode::InvalidRequest,
                "{bad}"
            );
        }
        let eleven: Map<String, Value> = (0..11)
            .map(|i| (format!("k{i}"), Value::String("v".into())))
            .collect();
        let payload =
            serde_json::json!({"status": "FAILED", "statusDetails": eleven, "clientToken": "t"});
        let parsed = update(payload.to_string().as_bytes());
        assert_eq!(parsed.client_token.as_deref(), Some("t"));
        assert_eq!(parsed.request.unwrap_err().code, ErrorCode::InvalidRequest);
    }

    #[test]
    fn start_next_takes_details_and_a_step_timer() {
        let request =
            start_next(br#"{"statusDetails":{"step":"download"},"stepTimeoutInMinutes":"30"}"#)
                .request
                .unwrap();
        assert_eq!(request.step_timeout, Some(StepTimeout::Minutes(30)));
        assert_eq!(
            request
                .status_details
                .unwrap()
                .get("step")
                .map(String::as_str),
            Some("download")
        );
        assert_eq!(get_pending(b"{}").request, Ok(()));
    }
}
