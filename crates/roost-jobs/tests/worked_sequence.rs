//! AWS's worked notify / notify-next sequence (the reference's section
//! 5.7), played on one thing's executions with the pure core: after each
//! step, exactly the notifications AWS publishes.

use roost_jobs::pending::{changes, pending, Notifications};
use roost_jobs::reply::{list_notification, next_notification};
use roost_jobs::{Execution, ExecutionStatus, Update};
use serde_json::{json, Value};

struct Thing {
    executions: Vec<Execution>,
    now: i64,
}

impl Thing {
    /// Applies `change` at the next second; returns what would be published.
    fn step(
        &mut self,
        change: impl FnOnce(&mut Vec<Execution>, i64),
    ) -> (Option<Value>, Option<Value>) {
        self.now += 1000;
        let before = pending(&self.executions);
        change(&mut self.executions, self.now);
        let after = pending(&self.executions);
        let Notifications { list, next } = changes(&before, &after);
        let notify = list.then(|| list_notification(&after, self.now));
        let notify_next = next.then(|| {
            let first = after.first().map(|s| {
                let e = self
                    .executions
                    .iter()
                    .find(|e| e.job_id == s.job_id)
                    .unwrap();
                (e, json!({"operation": e.job_id}))
            });
            next_notification(first, self.now)
        });
        (notify, notify_next)
    }
}

fn job(executions: &mut [Execution], id: &str) -> usize {
    executions.iter().position(|e| e.job_id == id).unwrap()
}

fn listed(notify: &Option<Value>, status: &str) -> Vec<String> {
    notify.as_ref().unwrap()["jobs"][status]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|s| s["jobId"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn next_job(notify_next: &Option<Value>) -> Option<(String, String, u64)> {
    let execution = &notify_next.as_ref().unwrap()["execution"];
    execution.get("jobId").map(|_| {
        (
            execution["jobId"].as_str().unwrap().to_string(),
            execution["status"].as_str().unwrap().to_string(),
            execution["versionNumber"].as_u64().unwrap(),
        )
    })
}

#[test]
fn aws_worked_notification_sequence() {
    let mut thing = Thing {
        executions: Vec::new(),
        now: 1_517_016_947_000,
    };
    let update = |status| Update {
        status,
        ..Update::default()
    };

    // 1. job1 created: notify lists QUEUED[job1]; notify-next sends job1.
    let (notify, next) = thing.step(|e, now| e.push(Execution::queued("job1", "T", 1, now)));
    assert_eq!(listed(&notify, "QUEUED"), ["job1"]);
    assert_eq!(next_job(&next), Some(("job1".into(), "QUEUED".into(), 1)));
    assert_eq!(
        next.unwrap()["execution"]["jobDocument"],
        json!({"operation": "job1"})
    );

    // 2. job2 created: notify lists QUEUED[job1, job2]; no notify-next.
    let (notify, next) = thing.step(|e, now| e.push(Execution::queued("job2", "T", 1, now)));
    assert_eq!(listed(&notify, "QUEUED"), ["job1", "job2"]);
    assert!(next.is_none());

    // 3. job1 starts: nothing at all.
    let (notify, next) = thing.step(|e, now| {
        let i = job(e, "job1");
        e[i].start(None, None, None, now).unwrap()
    });
    assert!(notify.is_none() && next.is_none());

    // 4. job3 created: notify lists IN_PROGRESS[job1], QUEUED[job2, job3]; no notify-next.
    let (notify, next) = thing.step(|e, now| e.push(Execution::queued("job3", "T", 1, now)));
    assert_eq!(listed(&notify, "IN_PROGRESS"), ["job1"]);
    assert_eq!(listed(&notify, "QUEUED"), ["job2", "job3"]);
    assert!(next.is_none());

    // 5. job1 succeeds: notify lists QUEUED[job2, job3]; notify-next sends job2.
    let (notify, next) = thing.step(|e, now| {
        let i = job(e, "job1");
        e[i].update(&update(ExecutionStatus::Succeeded), None, now)
            .unwrap()
    });
    assert_eq!(listed(&notify, "QUEUED"), ["job2", "job3"]);
    assert!(listed(&notify, "IN_PROGRESS").is_empty());
    assert_eq!(next_job(&next), Some(("job2".into(), "QUEUED".into(), 1)));

    // 6. job3 starts (ahead of job2): notify-next sends job3 at version 2; no notify.
    let (notify, next) = thing.step(|e, now| {
        let i = job(e, "job3");
        e[i].update(&update(ExecutionStatus::InProgress), None, now)
            .unwrap()
    });
    assert!(notify.is_none());
    assert_eq!(
        next_job(&next),
        Some(("job3".into(), "IN_PROGRESS".into(), 2))
    );

    // 7. job2 rejected: notify lists IN_PROGRESS[job3]; no notify-next.
    let (notify, next) = thing.step(|e, now| {
        let i = job(e, "job2");
        e[i].update(&update(ExecutionStatus::Rejected), None, now)
            .unwrap()
    });
    assert_eq!(listed(&notify, "IN_PROGRESS"), ["job3"]);
    assert!(listed(&notify, "QUEUED").is_empty());
    assert!(next.is_none());

    // 8. job3 force-deleted: notify says "jobs": {}; notify-next only the timestamp.
    let (notify, next) = thing.step(|e, _| {
        let i = job(e, "job3");
        e.remove(i);
    });
    assert_eq!(notify.unwrap()["jobs"], json!({}));
    let next = next.unwrap();
    assert_eq!(
        next.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["timestamp"]
    );
}
