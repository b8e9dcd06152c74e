//! Property tests of the jobs core: the request readers and topic
//! classifier never panic and read back what they are given; the state
//! machine only ever moves forward (each accepted change raises the
//! version by one, a refused change changes nothing, a final execution
//! stays final for the device); placeholders are all replaced.

use proptest::prelude::*;
use roost_jobs::document::{check, substitute};
use roost_jobs::request::{self, classify, JobRef, JobsTopic, Operation};
use roost_jobs::{Execution, ExecutionStatus, StepTimeout, Update};

fn status() -> impl Strategy<Value = ExecutionStatus> {
    prop::sample::select(ExecutionStatus::ALL.to_vec())
}

#[derive(Clone, Debug)]
enum Change {
    Start(Option<u32>),
    Update(ExecutionStatus, Option<u64>, Option<u32>),
    Cancel(bool, Option<u64>),
    TimeOut(i64),
    Remove,
    Requeue,
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        proptest::option::of(1u32..100).prop_map(Change::Start),
        (
            status(),
            proptest::option::of(0u64..8),
            proptest::option::of(1u32..100)
        )
            .prop_map(|(s, v, step)| Change::Update(s, v, step)),
        (any::<bool>(), proptest::option::of(0u64..8)).prop_map(|(f, v)| Change::Cancel(f, v)),
        (0i64..10_000_000).prop_map(Change::TimeOut),
        Just(Change::Remove),
        Just(Change::Requeue),
    ]
}

proptest! {
    #[test]
    fn the_readers_never_panic_on_any_bytes(payload in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = request::update(&payload);
        let _ = request::start_next(&payload);
        let _ = request::describe(&payload);
        let _ = request::get_pending(&payload);
    }

    #[test]
    fn the_readers_never_panic_on_any_json_object(
        fields in prop::collection::btree_map(
            prop::sample::select(vec!["status", "statusDetails", "expectedVersion", "executionNumber",
                "includeJobDocument", "includeJobExecutionState", "stepTimeoutInMinutes", "clientToken", "other"]),
            prop_oneof![
                Just(serde_json::Value::Null),
                any::<bool>().prop_map(serde_json::Value::from),
                any::<i64>().prop_map(serde_json::Value::from),
                any::<f64>().prop_map(serde_json::Value::from),
                ".{0,20}".prop_map(serde_json::Value::from),
                prop::collection::btree_map(".{0,5}", ".{0,5}", 0..12)
                    .prop_map(|m| serde_json::to_value(m).unwrap()),
            ],
            0..8,
        )
    ) {
        let payload = serde_json::to_vec(&fields).unwrap();
        let parsed = request::update(&payload);
        if let Ok(update) = parsed.request {
            prop_assert!(fields.contains_key("status"));
            if let Some(details) = update.update.status_details {
                prop_assert!(details.len() <= request::MAX_STATUS_DETAILS);
            }
        }
        let _ = request::start_next(&payload);
        let _ = request::describe(&payload);
    }

    #[test]
    fn client_tokens_come_back_whatever_else_is_wrong(token in "[ -~]{1,64}", junk in any::<i64>()) {
        let payload = serde_json::json!({"clientToken": token, "status": junk});
        let parsed = request::update(payload.to_string().as_bytes());
        prop_assert_eq!(parsed.client_token, Some(token));
        prop_assert!(parsed.request.is_err());
    }

    #[test]
    fn request_topics_read_back(
        thing in "[a-zA-Z0-9:_-]{1,128}",
        job in "[a-zA-Z0-9_-]{1,64}",
        which in 0..5u8,
    ) {
        let (topic, operation) = match which {
            0 => (format!("$aws/things/{thing}/jobs/get"), Operation::GetPending),
            1 => (format!("$aws/things/{thing}/jobs/start-next"), Operation::StartNext),
            2 => (format!("$aws/things/{thing}/jobs/$next/get"), Operation::Describe(JobRef::Next)),
            3 => (format!("$aws/things/{thing}/jobs/{job}/get"), Operation::Describe(JobRef::Id(&job))),
            _ => (format!("$aws/things/{thing}/jobs/{job}/update"), Operation::Update(&job)),
        };
        // "get" and "start-next" are job ids too: describe of job "get" reads as such.
        prop_assert_eq!(classify(&topic), Some(JobsTopic::Request { thing_name: &thing, operation }));
    }

    #[test]
    fn the_classifier_never_panics(topic in "(\\$aws/things/)?[a-z$/+#:_-]{0,40}") {
        let _ = classify(&topic);
    }

    #[test]
    fn the_state_machine_only_moves_forward(changes in prop::collection::vec(change(), 0..30)) {
        let mut e = Execution::queued("job", "thing", 1, 0);
        let mut now = 0;
        for change in changes {
            now += 1000;
            let before = e.clone();
            let accepted = match change {
                Change::Start(step) => e.start(None, step.map(StepTimeout::Minutes), Some(50), now).is_ok() && e != before,
                Change::Update(status, expected, step) => {
                    let update = Update { status, expected_version: expected, step_timeout: step.map(StepTimeout::Minutes), ..Update::default() };
                    let result = e.update(&update, Some(50), now);
                    if before.status.is_terminal() {
                        prop_assert!(result.is_err(), "a final execution took a device update");
                    }
                    result.is_ok()
                }
                Change::Cancel(force, expected) => e.cancel(force, expected, now).is_ok(),
                Change::TimeOut(at) => e.time_out_if_due(at),
                Change::Remove => e.remove(now),
                Change::Requeue => e.requeue(now).is_ok(),
            };
            if accepted {
                prop_assert_eq!(e.version_number, before.version_number + 1);
            } else {
                prop_assert_eq!(&e, &before, "a refused change changed the execution");
            }
            if let (Some(step), Some(limit)) = (e.step_deadline, e.in_progress_deadline) {
                prop_assert!(e.deadline() == Some(step.min(limit)));
            }
            if e.status.is_terminal() {
                prop_assert_eq!(e.deadline(), None);
            }
        }
    }

    #[test]
    fn every_placeholder_is_replaced_and_the_document_stays_json(
        keys in prop::collection::vec("[a-z0-9/._-]{1,20}", 0..5),
        signed in "[ -~]{0,40}",
    ) {
        let fields: Vec<String> = keys.iter().enumerate().map(|(i, key)| {
            format!(r#""f{i}": "${{aws:iot:s3-presigned-url:https://s3.amazonaws.com/bucket-{i}/{key}}}""#)
        }).collect();
        let document = format!("{{{}}}", fields.join(","));
        check(&document).unwrap();
        let out = substitute(&document, |_| signed.clone()).unwrap();
        let unreplaced = out.contains("${aws:iot:s3-presigned-url:");
        prop_assert!(!unreplaced, "a placeholder is left in {}", out);
        let value: serde_json::Value = serde_json::from_str(&out).unwrap();
        for i in 0..keys.len() {
            prop_assert_eq!(value[format!("f{i}")].as_str(), Some(signed.as_str()));
        }
    }
}
