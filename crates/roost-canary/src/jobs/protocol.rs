//! The device side of AWS IoT's MQTT jobs API, as data: the topics of one
//! thing, the requests the agent sends and the replies and notifications it
//! reads. No I/O.
//!
//! Replies are matched to requests by `clientToken`; every request carries
//! a fresh one, so a late reply to an abandoned request is recognised and
//! ignored.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// The jobs topics of one thing.
#[derive(Clone, Debug)]
pub struct Topics {
    prefix: String,
}

/// What an incoming jobs message is.
#[derive(Debug, PartialEq)]
pub enum Incoming {
    /// `notify-next`: the next pending execution changed.
    NotifyNext(NextNotification),
    /// `start-next/accepted`.
    StartNextAccepted(StartNextReply),
    /// `{job}/update/accepted`.
    UpdateAccepted {
        job_id: String,
        token: Option<String>,
    },
    /// Any `/rejected`.
    Rejected { request: String, error: ErrorReply },
    /// Another jobs topic (`notify`, a reply to someone else's request...).
    Other,
}

impl Topics {
    pub fn new(thing: &str) -> Self {
        Self {
            prefix: format!("$aws/things/{thing}/jobs/"),
        }
    }

    pub fn notify_next(&self) -> String {
        format!("{}notify-next", self.prefix)
    }

    pub fn start_next(&self) -> String {
        format!("{}start-next", self.prefix)
    }

    pub fn update(&self, job_id: &str) -> String {
        format!("{}{job_id}/update", self.prefix)
    }

    /// The filters the agent subscribes to: notifications and the replies
    /// to its own requests (the service sends replies to the requester
    /// anyway; the subscription is what the AWS SDKs do, and what makes the
    /// replies arrive on brokers that route them like any message).
    pub fn subscriptions(&self) -> [String; 3] {
        [
            self.notify_next(),
            format!("{}start-next/+", self.prefix),
            format!("{}+/update/+", self.prefix),
        ]
    }

    /// Reads a message that arrived on `topic`.
    pub fn classify(&self, topic: &str, payload: &[u8]) -> Result<Incoming, String> {
        let Some(rest) = topic.strip_prefix(&self.prefix) else {
            return Ok(Incoming::Other);
        };
        let parse_err = |e: serde_json::Error| format!("{topic}: {e}");
        if rest == "notify-next" {
            return serde_json::from_slice(payload)
                .map(Incoming::NotifyNext)
                .map_err(parse_err);
        }
        if let Some(request) = rest.strip_suffix("/rejected") {
            return serde_json::from_slice(payload)
                .map(|error| Incoming::Rejected {
                    request: request.to_string(),
                    error,
                })
                .map_err(parse_err);
        }
        if rest == "start-next/accepted" {
            return serde_json::from_slice(payload)
                .map(Incoming::StartNextAccepted)
                .map_err(parse_err);
        }
        if let Some(job_id) = rest.strip_suffix("/update/accepted") {
            let reply: TokenOnly = serde_json::from_slice(payload).map_err(parse_err)?;
            return Ok(Incoming::UpdateAccepted {
                job_id: job_id.to_string(),
                token: reply.client_token,
            });
        }
        Ok(Incoming::Other)
    }
}

#[derive(Deserialize)]
struct TokenOnly {
    #[serde(rename = "clientToken")]
    client_token: Option<String>,
}

/// One job execution as start-next and notify-next give it.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Execution {
    pub job_id: String,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub job_document: Option<Value>,
    #[serde(default)]
    pub version_number: Option<u64>,
    #[serde(default)]
    pub execution_number: Option<u64>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NextNotification {
    #[serde(default)]
    pub execution: Option<Execution>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StartNextReply {
    #[serde(default)]
    pub execution: Option<Execution>,
    #[serde(default)]
    pub client_token: Option<String>,
}

/// A `/rejected` reply.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ErrorReply {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub client_token: Option<String>,
    #[serde(default)]
    pub execution_state: Option<ExecutionState>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionState {
    #[serde(default)]
    pub status: Option<String>,
}

impl ErrorReply {
    /// The execution is already terminal or gone: a report sent again after
    /// a lost reply lands here, and there is nothing left to do for it.
    pub fn execution_is_settled(&self) -> bool {
        match self.code.as_str() {
            "ResourceNotFound" | "TerminalStateReached" => true,
            "InvalidStateTransition" => self
                .execution_state
                .as_ref()
                .and_then(|s| s.status.as_deref())
                .is_some_and(|s| !matches!(s, "QUEUED" | "IN_PROGRESS")),
            _ => false,
        }
    }
}

/// A terminal or progress report for the job being worked on.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Report {
    pub status: ReportStatus,
    pub details: BTreeMap<String, String>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReportStatus {
    InProgress,
    Succeeded,
    Failed,
    Rejected,
}

impl ReportStatus {
    pub fn name(self) -> &'static str {
        match self {
            Self::InProgress => "IN_PROGRESS",
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
            Self::Rejected => "REJECTED",
        }
    }

    pub fn is_terminal(self) -> bool {
        !matches!(self, Self::InProgress)
    }
}

/// The most statusDetails pairs, and the longest value, the service takes.
const MAX_DETAILS: usize = 10;
const MAX_VALUE_CHARS: usize = 1024;

impl Report {
    pub fn new(status: ReportStatus) -> Self {
        Self {
            status,
            details: BTreeMap::new(),
        }
    }

    /// Adds a detail, cut to what the service accepts (values of at most
    /// 1,024 characters without control characters, ten pairs at most: a
    /// report the service would refuse would leave the job hanging).
    pub fn detail(mut self, key: &str, value: impl AsRef<str>) -> Self {
        if self.details.len() >= MAX_DETAILS && !self.details.contains_key(key) {
            return self;
        }
        let mut value: String = value
            .as_ref()
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(MAX_VALUE_CHARS)
            .collect();
        if value.is_empty() {
            value.push('-');
        }
        self.details.insert(key.to_string(), value);
        self
    }

    /// The update request's payload.
    pub fn payload(&self, execution_number: Option<u64>, token: &str) -> Vec<u8> {
        let mut body = Map::new();
        body.insert("status".into(), json!(self.status.name()));
        if !self.details.is_empty() {
            body.insert("statusDetails".into(), json!(self.details));
        }
        if let Some(n) = execution_number {
            body.insert("executionNumber".into(), json!(n));
        }
        body.insert("clientToken".into(), json!(token));
        serde_json::to_vec(&Value::Object(body)).expect("a JSON map serialises")
    }
}

/// The start-next request's payload.
pub fn start_next_payload(token: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({ "clientToken": token })).expect("a JSON map serialises")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn topics() -> Topics {
        Topics::new("canary-1")
    }

    #[test]
    fn start_next_accepted_with_and_without_an_execution() {
        let t = topics();
        let reply = br#"{"execution":{"jobId":"j1","status":"IN_PROGRESS","jobDocument":{"operation":"localScan"},"versionNumber":2,"executionNumber":1,"queuedAt":1,"lastUpdatedAt":2},"timestamp":3,"clientToken":"c1"}"#;
        let Incoming::StartNextAccepted(r) = t
            .classify("$aws/things/canary-1/jobs/start-next/accepted", reply)
            .unwrap()
        else {
            panic!("not start-next accepted")
        };
        let e = r.execution.unwrap();
        assert_eq!(e.job_id, "j1");
        assert_eq!(e.execution_number, Some(1));
        assert_eq!(e.job_document.unwrap()["operation"], "localScan");
        assert_eq!(r.client_token.as_deref(), Some("c1"));
        let empty = t
            .classify(
                "$aws/things/canary-1/jobs/start-next/accepted",
                br#"{"timestamp":3,"clientToken":"c2"}"#,
            )
            .unwrap();
        assert!(matches!(
            empty,
            Incoming::StartNextAccepted(StartNextReply {
                execution: None,
                ..
            })
        ));
    }

    #[test]
    fn notify_next_and_an_empty_notification() {
        let t = topics();
        let n = t
            .classify(
                "$aws/things/canary-1/jobs/notify-next",
                br#"{"timestamp":1,"execution":{"jobId":"j2","status":"QUEUED","jobDocument":{"operation":"x"}}}"#,
            )
            .unwrap();
        assert!(
            matches!(n, Incoming::NotifyNext(NextNotification { execution: Some(ref e) }) if e.job_id == "j2")
        );
        let n = t
            .classify(
                "$aws/things/canary-1/jobs/notify-next",
                br#"{"timestamp":1}"#,
            )
            .unwrap();
        assert_eq!(
            n,
            Incoming::NotifyNext(NextNotification { execution: None })
        );
    }

    #[test]
    fn rejections_name_their_request_and_say_when_the_execution_is_settled() {
        let t = topics();
        let r = t
            .classify(
                "$aws/things/canary-1/jobs/j1/update/rejected",
                br#"{"code":"InvalidStateTransition","message":"terminal","clientToken":"c9","executionState":{"status":"SUCCEEDED","versionNumber":3}}"#,
            )
            .unwrap();
        let Incoming::Rejected { request, error } = r else {
            panic!("not a rejection")
        };
        assert_eq!(request, "j1/update");
        assert!(error.execution_is_settled());
        let throttled = ErrorReply {
            code: "RequestThrottled".into(),
            message: String::new(),
            client_token: None,
            execution_state: None,
        };
        assert!(!throttled.execution_is_settled());
        let in_progress: ErrorReply = serde_json::from_str(
            r#"{"code":"InvalidStateTransition","executionState":{"status":"IN_PROGRESS"}}"#,
        )
        .unwrap();
        assert!(!in_progress.execution_is_settled());
    }

    #[test]
    fn other_things_and_other_topics_are_not_ours() {
        let t = topics();
        assert_eq!(
            t.classify("$aws/things/canary-2/jobs/notify-next", b"{}")
                .unwrap(),
            Incoming::Other
        );
        assert_eq!(
            t.classify("$aws/things/canary-1/jobs/notify", b"{}")
                .unwrap(),
            Incoming::Other
        );
        assert!(t
            .classify("$aws/things/canary-1/jobs/notify-next", b"not json")
            .is_err());
    }

    #[test]
    fn reports_carry_status_details_within_the_services_limits() {
        let mut r = Report::new(ReportStatus::Failed).detail("reason", "line\nbreak");
        for i in 0..20 {
            r = r.detail(&format!("k{i}"), "v");
        }
        assert_eq!(r.details.len(), 10);
        assert_eq!(r.details["reason"], "line break");
        let long = Report::new(ReportStatus::Failed).detail("reason", "x".repeat(5000));
        assert_eq!(long.details["reason"].len(), 1024);
        let body: Value = serde_json::from_slice(&r.payload(Some(2), "t1")).unwrap();
        assert_eq!(body["status"], "FAILED");
        assert_eq!(body["executionNumber"], 2);
        assert_eq!(body["clientToken"], "t1");
        assert!(body["statusDetails"].is_object());
    }

    proptest! {
        #[test]
        fn any_payload_on_any_jobs_topic_is_read_or_refused_without_panic(
            rest in "[a-z/+$-]{0,40}",
            payload in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            let _ = topics().classify(&format!("$aws/things/canary-1/jobs/{rest}"), &payload);
        }
    }
}
