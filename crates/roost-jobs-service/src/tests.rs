//! The service over a real registry (SQLite in a temporary directory) and
//! the real URL signer; notifications are read from a recording outbox
//! (the broker's delivery of them is tested end to end in the Python
//! suite).

use crate::presign::LocalSigner;
use crate::{JobsService, Outbox};
use roost_jobs::job::CreateJob;
use roost_jobs::{ExecutionStatus, JobStatus, Update, MINUTE_MS};
use roost_registry::{GroupMembership, Registry, Settings};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Recorded(Mutex<Vec<(String, Value)>>);

impl Outbox for Recorded {
    fn publish(&self, topic: String, payload: Vec<u8>) {
        let value = serde_json::from_slice(&payload).expect("notifications are JSON");
        self.0.lock().unwrap().push((topic, value));
    }
}

impl Recorded {
    fn take(&self) -> Vec<(String, Value)> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    service: JobsService,
    outbox: Arc<Recorded>,
}

const PREFIX: &str = "arn:aws:iot:us-east-1:000000000000:";

async fn fixture(things: &[&str]) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(dir.path(), Settings::default())
        .await
        .unwrap();
    registry
        .create_thing_group("fleet", None, None, BTreeMap::new())
        .await
        .unwrap();
    for thing in things {
        registry
            .create_thing(thing, None, BTreeMap::new())
            .await
            .unwrap();
        join(&registry, thing).await;
    }
    let outbox = Arc::new(Recorded::default());
    let signer = LocalSigner::load_or_create(dir.path(), "http://127.0.0.1:9080").unwrap();
    let service = JobsService::new(registry, outbox.clone(), Arc::new(signer));
    Fixture {
        _dir: dir,
        service,
        outbox,
    }
}

async fn join(registry: &Registry, thing: &str) {
    registry
        .add_thing_to_thing_group(&GroupMembership {
            thing_group_name: Some("fleet".into()),
            thing_group_arn: None,
            thing_name: Some(thing.into()),
            thing_arn: None,
        })
        .await
        .unwrap();
}

fn request(body: Value) -> CreateJob {
    serde_json::from_value(body).unwrap()
}

fn to_group(extra: Value) -> CreateJob {
    let mut body = json!({
        "targets": [format!("{PREFIX}thinggroup/fleet")],
        "document": r#"{"operation": "rotate-cert", "url": "${aws:iot:s3-presigned-url:https://s3.amazonaws.com/audits/certs/new.pem}"}"#,
    });
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    request(body)
}

fn statuses(
    f: &Fixture,
    job: &str,
    things: &[&str],
) -> impl std::future::Future<Output = Vec<ExecutionStatus>> {
    let service = f.service.clone();
    let job = job.to_string();
    let things: Vec<String> = things.iter().map(|t| t.to_string()).collect();
    async move {
        let mut out = Vec::new();
        for thing in things {
            out.push(
                service
                    .describe_job_execution(&job, &thing, None)
                    .await
                    .unwrap()
                    .status,
            );
        }
        out
    }
}

#[tokio::test]
async fn a_job_to_a_group_reaches_every_member_with_its_document_signed() {
    let f = fixture(&["a", "b", "c"]).await;
    f.service
        .create_job(
            "rotate",
            to_group(json!({"presignedUrlConfig": {"expiresInSec": 300}})),
        )
        .await
        .unwrap();
    assert_eq!(
        statuses(&f, "rotate", &["a", "b", "c"]).await,
        [ExecutionStatus::Queued; 3]
    );
    let sent = f.outbox.take();
    let topics: Vec<&str> = sent.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        topics,
        [
            "$aws/things/a/jobs/notify",
            "$aws/things/a/jobs/notify-next",
            "$aws/things/b/jobs/notify",
            "$aws/things/b/jobs/notify-next",
            "$aws/things/c/jobs/notify",
            "$aws/things/c/jobs/notify-next"
        ]
    );
    assert_eq!(sent[0].1["jobs"]["QUEUED"][0]["jobId"], "rotate");
    let next = &sent[1].1["execution"];
    assert_eq!(next["status"], "QUEUED");
    assert_eq!(next["versionNumber"], 1);
    let url = next["jobDocument"]["url"].as_str().unwrap();
    assert!(
        url.starts_with("http://127.0.0.1:9080/objects/audits/certs/new.pem?expires="),
        "{url}"
    );
    // The stored document keeps its placeholder.
    assert!(f
        .service
        .job_document("rotate")
        .await
        .unwrap()
        .contains("${aws:iot:s3-presigned-url:"));
    let described = f.service.describe_job("rotate").await.unwrap();
    assert_eq!(described.details.queued, 3);
    assert!(described.job.all_targets_queued);
}

#[tokio::test]
async fn targets_that_do_not_exist_are_refused_and_nothing_is_stored() {
    let f = fixture(&["a"]).await;
    let err = f
        .service
        .create_job(
            "j",
            request(json!({"targets": [format!("{PREFIX}thing/ghost")], "document": "{}"})),
        )
        .await
        .unwrap_err();
    assert_eq!(err.aws_code(), "ResourceNotFoundException");
    assert_eq!(
        f.service.describe_job("j").await.unwrap_err().aws_code(),
        "ResourceNotFoundException"
    );
    f.service
        .create_job(
            "j",
            request(json!({"targets": [format!("{PREFIX}thing/a")], "document": "{}"})),
        )
        .await
        .unwrap();
    let again = f
        .service
        .create_job(
            "j",
            request(json!({"targets": [format!("{PREFIX}thing/a")], "document": "{}"})),
        )
        .await
        .unwrap_err();
    assert_eq!(again.aws_code(), "ResourceAlreadyExistsException");
}

#[tokio::test]
async fn cancel_takes_queued_executions_and_in_progress_ones_with_force() {
    let f = fixture(&["a", "b"]).await;
    f.service
        .create_job("j", to_group(json!({})))
        .await
        .unwrap();
    f.service
        .change_execution("j", "a", None, |e| e.start(None, None, None, 1))
        .await
        .unwrap();
    f.outbox.take();
    let job = f
        .service
        .cancel_job("j", false, Some("NOT_NEEDED".into()), None)
        .await
        .unwrap();
    assert_eq!(job.status, JobStatus::Canceled);
    assert_eq!(
        statuses(&f, "j", &["a", "b"]).await,
        [ExecutionStatus::InProgress, ExecutionStatus::Canceled]
    );
    // b's list emptied: notify with no jobs, notify-next with no execution.
    let sent = f.outbox.take();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].1["jobs"], json!({}));
    assert!(sent[1].1.get("execution").is_none());
    f.service.cancel_job("j", true, None, None).await.unwrap();
    assert_eq!(
        statuses(&f, "j", &["a", "b"]).await,
        [ExecutionStatus::Canceled; 2]
    );
    let a = f
        .service
        .describe_job_execution("j", "a", None)
        .await
        .unwrap();
    assert!(a.force_canceled);
    f.service.delete_job("j", false).await.unwrap();
    assert_eq!(
        f.service.describe_job("j").await.unwrap_err().aws_code(),
        "ResourceNotFoundException"
    );
}

#[tokio::test]
async fn an_execution_past_its_timeout_is_timed_out_and_retried_by_the_config() {
    let f = fixture(&["a"]).await;
    f.service
        .create_job(
            "j",
            to_group(json!({
                "timeoutConfig": {"inProgressTimeoutInMinutes": 1},
                "jobExecutionsRetryConfig": {"criteriaList": [{"failureType": "TIMED_OUT", "numberOfRetries": 1}]}
            })),
        )
        .await
        .unwrap();
    let started = 1_000_000;
    f.service
        .change_execution("j", "a", None, |e| e.start(None, None, Some(1), started))
        .await
        .unwrap();
    f.service.tick(started + MINUTE_MS - 1).await.unwrap();
    assert_eq!(
        statuses(&f, "j", &["a"]).await,
        [ExecutionStatus::InProgress]
    );
    f.service.tick(started + MINUTE_MS).await.unwrap();
    // Timed out, then queued again as attempt 1.
    let e = f
        .service
        .describe_job_execution("j", "a", None)
        .await
        .unwrap();
    assert_eq!((e.status, e.retry_attempt), (ExecutionStatus::Queued, 1));
    // The second time out is final.
    f.service
        .change_execution("j", "a", None, |e| e.start(None, None, Some(1), started))
        .await
        .unwrap();
    f.service.tick(started + MINUTE_MS).await.unwrap();
    let e = f
        .service
        .describe_job_execution("j", "a", None)
        .await
        .unwrap();
    assert_eq!((e.status, e.retry_attempt), (ExecutionStatus::TimedOut, 1));
    // Every execution final: the snapshot job is complete.
    let job = f.service.describe_job("j").await.unwrap().job;
    assert_eq!(job.status, JobStatus::Completed);
}

#[tokio::test]
async fn an_abort_config_cancels_the_job_when_failures_pass_its_threshold() {
    let f = fixture(&["a", "b", "c"]).await;
    f.service
        .create_job(
            "j",
            to_group(json!({"abortConfig": {"criteriaList": [
                {"failureType": "FAILED", "action": "CANCEL", "thresholdPercentage": 50, "minNumberOfExecutedThings": 2}
            ]}})),
        )
        .await
        .unwrap();
    let fail = Update {
        status: ExecutionStatus::Failed,
        ..Update::default()
    };
    for thing in ["a", "b"] {
        let ended = f
            .service
            .change_execution("j", thing, None, |e| e.update(&fail, None, 5))
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        f.service.after_final(&ended).await.unwrap();
    }
    let job = f.service.describe_job("j").await.unwrap().job;
    assert_eq!(job.status, JobStatus::Canceled);
    assert_eq!(job.comment.as_deref(), Some(crate::clock::ABORT_COMMENT));
    assert_eq!(statuses(&f, "j", &["c"]).await, [ExecutionStatus::Canceled]);
}

#[tokio::test]
async fn a_continuous_job_reaches_things_that_join_later_and_leaves_those_that_go() {
    let f = fixture(&["a"]).await;
    f.service
        .create_job("j", to_group(json!({"targetSelection": "CONTINUOUS"})))
        .await
        .unwrap();
    let registry = f.service.registry().clone();
    registry
        .create_thing("late", None, BTreeMap::new())
        .await
        .unwrap();
    join(&registry, "late").await;
    f.service.tick(crate::now_ms()).await.unwrap();
    assert_eq!(
        statuses(&f, "j", &["late"]).await,
        [ExecutionStatus::Queued]
    );
    registry
        .remove_thing_from_thing_group(&GroupMembership {
            thing_group_name: Some("fleet".into()),
            thing_group_arn: None,
            thing_name: Some("a".into()),
            thing_arn: None,
        })
        .await
        .unwrap();
    f.service.tick(crate::now_ms()).await.unwrap();
    assert_eq!(statuses(&f, "j", &["a"]).await, [ExecutionStatus::Removed]);
    let job = f.service.describe_job("j").await.unwrap().job;
    assert_eq!(
        job.status,
        JobStatus::InProgress,
        "continuous jobs never complete"
    );
}

#[tokio::test]
async fn the_rollout_rate_holds_executions_back() {
    let f = fixture(&["a", "b", "c", "d", "e"]).await;
    f.service
        .create_job(
            "j",
            to_group(json!({"jobExecutionsRolloutConfig": {"maximumPerMinute": 2}})),
        )
        .await
        .unwrap();
    let count = |f: &Fixture| {
        let service = f.service.clone();
        async move { service.describe_job("j").await.unwrap().details.queued }
    };
    assert_eq!(count(&f).await, 2);
    f.service.tick(crate::now_ms()).await.unwrap();
    assert_eq!(count(&f).await, 2, "the same minute");
    f.service
        .tick(crate::now_ms() + MINUTE_MS + 1)
        .await
        .unwrap();
    assert_eq!(count(&f).await, 4);
    f.service
        .tick(crate::now_ms() + 2 * MINUTE_MS + 2)
        .await
        .unwrap();
    assert_eq!(count(&f).await, 5);
    assert!(
        f.service
            .describe_job("j")
            .await
            .unwrap()
            .job
            .all_targets_queued
    );
}

#[tokio::test]
async fn a_retry_config_queues_a_failed_execution_again() {
    let f = fixture(&["a"]).await;
    f.service
        .create_job(
            "j",
            to_group(json!({"jobExecutionsRetryConfig": {"criteriaList": [{"failureType": "FAILED", "numberOfRetries": 1}]}})),
        )
        .await
        .unwrap();
    let fail = Update {
        status: ExecutionStatus::Failed,
        ..Update::default()
    };
    for attempt in 0..2 {
        let ended = f
            .service
            .change_execution("j", "a", None, |e| e.update(&fail, None, 5))
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(ended.retry_attempt, attempt);
        f.service.after_final(&ended).await.unwrap();
    }
    // Once retried, then final: FAILED at attempt 1, and the job complete.
    let e = f
        .service
        .describe_job_execution("j", "a", None)
        .await
        .unwrap();
    assert_eq!((e.status, e.retry_attempt), (ExecutionStatus::Failed, 1));
    assert_eq!(
        f.service.describe_job("j").await.unwrap().job.status,
        JobStatus::Completed
    );
}
