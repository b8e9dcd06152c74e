//! The JSON the jobs service publishes to a device: the accepted and
//! rejected replies and the two notifications (the reference's sections
//! 5.2 to 5.7). Times go out as whole seconds since the epoch (awsiotsdk
//! reads them with `datetime.fromtimestamp`); the job document goes out as
//! a JSON value, not a string.

use crate::execution::Execution;
use crate::pending::{Summary, MAX_LISTED};
use crate::{ErrorCode, ExecutionStatus};
use serde_json::{json, Map, Value};

/// Unix milliseconds as the whole seconds the device API speaks.
pub fn seconds(ms: i64) -> i64 {
    ms.div_euclid(1000)
}

/// A pending list entry: `jobId`, `queuedAt`, `startedAt` (once started),
/// `lastUpdatedAt`, `versionNumber`, `executionNumber`.
pub fn summary(s: &Summary) -> Value {
    let mut fields = Map::new();
    fields.insert("jobId".into(), json!(s.job_id));
    fields.insert("queuedAt".into(), json!(seconds(s.queued_at)));
    if let Some(started) = s.started_at {
        fields.insert("startedAt".into(), json!(seconds(started)));
    }
    fields.insert("lastUpdatedAt".into(), json!(seconds(s.last_updated_at)));
    fields.insert("versionNumber".into(), json!(s.version_number));
    fields.insert("executionNumber".into(), json!(s.execution_number));
    Value::Object(fields)
}

/// A `JobExecution`: what start-next, describe and notify-next carry.
/// `document` is the job document as it goes to the device (placeholders
/// filled in), or `None` when it was not asked for.
pub fn execution(e: &Execution, document: Option<Value>, now: i64) -> Value {
    let mut fields = Map::new();
    fields.insert("jobId".into(), json!(e.job_id));
    fields.insert("thingName".into(), json!(e.thing_name));
    if let Some(document) = document {
        fields.insert("jobDocument".into(), document);
    }
    fields.insert("status".into(), json!(e.status.as_str()));
    if !e.status_details.is_empty() {
        fields.insert("statusDetails".into(), json!(e.status_details));
    }
    fields.insert("queuedAt".into(), json!(seconds(e.queued_at)));
    if let Some(started) = e.started_at {
        fields.insert("startedAt".into(), json!(seconds(started)));
    }
    fields.insert("lastUpdatedAt".into(), json!(seconds(e.last_updated_at)));
    if let Some(left) = e.seconds_before_timed_out(now) {
        fields.insert("approximateSecondsBeforeTimedOut".into(), json!(left));
    }
    fields.insert("versionNumber".into(), json!(e.version_number));
    fields.insert("executionNumber".into(), json!(e.execution_number));
    Value::Object(fields)
}

/// `executionState`: status, details and version.
pub fn execution_state(e: &Execution) -> Value {
    json!({
        "status": e.status.as_str(),
        "statusDetails": e.status_details,
        "versionNumber": e.version_number,
    })
}

/// An accepted reply: `fields`, then `timestamp` and the client token.
pub fn accepted(mut fields: Map<String, Value>, client_token: Option<&str>, now: i64) -> Value {
    fields.insert("timestamp".into(), json!(seconds(now)));
    if let Some(token) = client_token {
        fields.insert("clientToken".into(), json!(token));
    }
    Value::Object(fields)
}

/// A rejected reply. `state` (the execution as it stands) goes with
/// `InvalidStateTransition` and `VersionMismatch` only.
pub fn rejected(
    code: ErrorCode,
    message: &str,
    client_token: Option<&str>,
    state: Option<&Execution>,
    now: i64,
) -> Value {
    let mut fields = Map::new();
    fields.insert("code".into(), json!(code.as_str()));
    fields.insert("message".into(), json!(message));
    if matches!(
        code,
        ErrorCode::InvalidStateTransition | ErrorCode::VersionMismatch
    ) {
        if let Some(e) = state {
            fields.insert("executionState".into(), execution_state(e));
        }
    }
    accepted(fields, client_token, now)
}

/// GetPendingJobExecutions' accepted reply (`pending` as
/// [`crate::pending::pending`] orders it).
pub fn pending_executions(pending: &[Summary], client_token: Option<&str>, now: i64) -> Value {
    let list = |status| -> Vec<Value> {
        pending
            .iter()
            .filter(|s| s.status == status)
            .map(summary)
            .collect()
    };
    let mut fields = Map::new();
    fields.insert(
        "inProgressJobs".into(),
        json!(list(ExecutionStatus::InProgress)),
    );
    fields.insert("queuedJobs".into(), json!(list(ExecutionStatus::Queued)));
    accepted(fields, client_token, now)
}

/// `jobs/notify` (JobExecutionsChanged): the pending executions by status,
/// at most [`MAX_LISTED`], an empty status left out.
pub fn list_notification(pending: &[Summary], now: i64) -> Value {
    let mut jobs = Map::new();
    for s in pending.iter().take(MAX_LISTED) {
        let entry = jobs
            .entry(s.status.as_str())
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(list) = entry {
            list.push(summary(s));
        }
    }
    json!({ "timestamp": seconds(now), "jobs": jobs })
}

/// `jobs/notify-next` (NextJobExecutionChanged): the next execution with
/// its document, or only the timestamp when nothing is pending.
pub fn next_notification(next: Option<(&Execution, Value)>, now: i64) -> Value {
    let mut fields = Map::new();
    fields.insert("timestamp".into(), json!(seconds(now)));
    if let Some((e, document)) = next {
        fields.insert("execution".into(), execution(e, Some(document), now));
    }
    Value::Object(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_execution_as_start_next_returns_it() {
        let mut e = Execution::queued("022", "MyThing", 1, 1_489_096_123_000);
        let details = [("step".to_string(), "downloading".to_string())].into();
        e.start(Some(details), None, None, 1_489_096_200_500)
            .unwrap();
        let got = execution(&e, Some(json!({"operation": "test"})), 1_489_096_200_500);
        assert_eq!(
            got,
            json!({
                "jobId": "022", "thingName": "MyThing",
                "jobDocument": {"operation": "test"},
                "status": "IN_PROGRESS",
                "statusDetails": {"step": "downloading"},
                "queuedAt": 1489096123, "startedAt": 1489096200, "lastUpdatedAt": 1489096200,
                "versionNumber": 2, "executionNumber": 1
            })
        );
    }

    #[test]
    fn a_rejection_carries_the_state_only_for_two_codes() {
        let e = Execution::queued("j", "t", 1, 0);
        let with = rejected(ErrorCode::VersionMismatch, "m", Some("c1"), Some(&e), 5_000);
        assert_eq!(
            with,
            json!({"code": "VersionMismatch", "message": "m", "clientToken": "c1", "timestamp": 5,
                   "executionState": {"status": "QUEUED", "statusDetails": {}, "versionNumber": 1}})
        );
        let without = rejected(ErrorCode::ResourceNotFound, "m", None, Some(&e), 5_000);
        assert_eq!(
            without,
            json!({"code": "ResourceNotFound", "message": "m", "timestamp": 5})
        );
    }

    #[test]
    fn the_list_notification_leaves_out_empty_statuses_and_stops_at_fifteen() {
        assert_eq!(
            list_notification(&[], 7_000),
            json!({"timestamp": 7, "jobs": {}})
        );
        let executions: Vec<Execution> = (0..20)
            .map(|i| Execution::queued(format!("job{i:02}"), "t", 1, i * 1000))
            .collect();
        let listed = list_notification(&crate::pending::pending(&executions), 0);
        let queued = listed["jobs"]["QUEUED"].as_array().unwrap();
        assert_eq!(queued.len(), MAX_LISTED);
        assert_eq!(queued[0]["jobId"], "job00");
        assert!(listed["jobs"].get("IN_PROGRESS").is_none());
    }
}
