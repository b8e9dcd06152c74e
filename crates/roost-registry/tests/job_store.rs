//! The job store (jobs, executions, their paging and optimistic versions)
//! on each real store.

#[macro_use]
mod support;

use roost_jobs::job::CreateJob;
use roost_jobs::job::Job;
use roost_jobs::{Execution, ExecutionStatus};
use roost_jobs::{JobStatus, Update};
use roost_registry::model::PageRequest;
use roost_registry::store::jobs::{execution_key, ExecutionFilter, JobFilter};
use support::TestStore;

const PREFIX: &str = "arn:aws:iot:us-east-1:000000000000:";

async fn store(
    backend: &TestStore,
) -> (
    tempfile::TempDir,
    std::sync::Arc<dyn roost_registry::store::Store>,
) {
    let dir = tempfile::tempdir().unwrap();
    let store = backend.store(dir.path()).await;
    (dir, store)
}

fn job(id: &str) -> Job {
    let request: CreateJob = serde_json::from_value(serde_json::json!({
        "targets": [format!("{PREFIX}thing/t1")],
        "document": "{\"operation\": \"localScan\"}",
        "timeoutConfig": {"inProgressTimeoutInMinutes": 5},
    }))
    .unwrap();
    request.into_job(id, PREFIX, 1_000).unwrap()
}

async fn jobs_are_created_once_listed_in_order_and_changed_atomically(backend: TestStore) {
    let (_dir, store) = store(&backend).await;
    for id in ["job-b", "job-a", "job-c"] {
        store.create_job(&job(id)).await.unwrap();
    }
    let again = store.create_job(&job("job-a")).await.unwrap_err();
    assert_eq!(again.aws_code(), "ResourceAlreadyExistsException");
    let page = store
        .list_jobs(&JobFilter::default(), &PageRequest::first(2))
        .await
        .unwrap();
    let ids: Vec<_> = page.iter().map(|j| j.job_id.as_str()).collect();
    assert_eq!(ids, ["job-a", "job-b"]);
    let rest = PageRequest {
        after: Some("job-b".into()),
        ..PageRequest::first(10)
    };
    assert_eq!(
        store
            .list_jobs(&JobFilter::default(), &rest)
            .await
            .unwrap()
            .len(),
        1
    );

    let canceled = store
        .update_job(
            "job-b",
            Box::new(|j| Ok(j.cancel(false, None, None, 2_000)?)),
        )
        .await
        .unwrap();
    assert_eq!(canceled.status, JobStatus::Canceled);
    let only_canceled = JobFilter {
        status: Some(JobStatus::Canceled),
        ..JobFilter::default()
    };
    let listed = store
        .list_jobs(&only_canceled, &PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(listed, [canceled]);
    // A refused change leaves the job as it was.
    let refused = store
        .update_job(
            "job-b",
            Box::new(|j| Ok(j.cancel(false, None, None, 3_000)?)),
        )
        .await
        .unwrap_err();
    assert_eq!(refused.aws_code(), "InvalidStateTransitionException");
    assert_eq!(
        store
            .get_job("job-b")
            .await
            .unwrap()
            .unwrap()
            .last_updated_at,
        2_000
    );
}

async fn executions_are_replaced_only_from_the_version_they_were_read_at(backend: TestStore) {
    let (_dir, store) = store(&backend).await;
    store.create_job(&job("scan")).await.unwrap();
    let queued = Execution::queued("scan", "t1", 1, 1_000);
    store.insert_job_execution(&queued).await.unwrap();
    assert!(store.insert_job_execution(&queued).await.is_err());

    let mut started = queued.clone();
    started.start(None, None, Some(5), 2_000).unwrap();
    assert!(store.replace_job_execution(&started, 1).await.unwrap());
    // A second writer that read version 1 too loses.
    let mut other = queued.clone();
    other
        .update(
            &Update {
                status: roost_jobs::ExecutionStatus::Rejected,
                ..Update::default()
            },
            None,
            2_500,
        )
        .unwrap();
    assert!(!store.replace_job_execution(&other, 1).await.unwrap());
    let stored = store
        .get_job_execution("scan", "t1", None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored, started);

    // Its in-progress deadline is where the timers find it.
    assert_eq!(
        store.next_job_deadline().await.unwrap(),
        Some(2_000 + 5 * 60_000)
    );
    assert!(store
        .due_job_executions(2_000, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store.due_job_executions(400_000, 10).await.unwrap(),
        [started.clone()]
    );

    let details = store.job_process_details("scan").await.unwrap();
    assert_eq!((details.in_progress, details.queued), (1, 0));
    assert_eq!(store.pending_job_executions("t1").await.unwrap(), [started]);
}

async fn executions_list_by_job_and_by_thing_with_paging(backend: TestStore) {
    let (_dir, store) = store(&backend).await;
    for id in ["j1", "j2"] {
        store.create_job(&job(id)).await.unwrap();
        for thing in ["t1", "t2", "t3"] {
            store
                .insert_job_execution(&Execution::queued(id, thing, 1, 1_000))
                .await
                .unwrap();
        }
    }
    let of_job = ExecutionFilter::OfJob {
        job_id: "j1".into(),
        statuses: vec![],
    };
    let first = store
        .list_job_executions(&of_job, &PageRequest::first(2))
        .await
        .unwrap();
    assert_eq!(
        first
            .iter()
            .map(|e| e.thing_name.as_str())
            .collect::<Vec<_>>(),
        ["t1", "t2"]
    );
    let next = PageRequest {
        after: Some(execution_key(&of_job, &first[1])),
        ..PageRequest::first(2)
    };
    let second = store.list_job_executions(&of_job, &next).await.unwrap();
    assert_eq!(
        second
            .iter()
            .map(|e| e.thing_name.as_str())
            .collect::<Vec<_>>(),
        ["t3"]
    );

    let of_thing = ExecutionFilter::OfThing {
        thing_name: "t2".into(),
        job_id: None,
        statuses: vec![ExecutionStatus::Queued],
    };
    let listed = store
        .list_job_executions(&of_thing, &PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(
        listed.iter().map(|e| e.job_id.as_str()).collect::<Vec<_>>(),
        ["j1", "j2"]
    );
    let none = ExecutionFilter::OfThing {
        thing_name: "t2".into(),
        job_id: Some("j1".into()),
        statuses: vec![ExecutionStatus::Succeeded],
    };
    assert!(store
        .list_job_executions(&none, &PageRequest::first(10))
        .await
        .unwrap()
        .is_empty());

    store.delete_job("j1").await.unwrap();
    assert!(store.get_job("j1").await.unwrap().is_none());
    assert!(store
        .get_job_execution("j1", "t1", Some(1))
        .await
        .unwrap()
        .is_none());
    assert_eq!(store.pending_job_executions("t1").await.unwrap().len(), 1);
}

async fn jobs_survive_reopening_the_database(backend: TestStore) {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = backend.store(dir.path()).await;
        store.create_job(&job("kept")).await.unwrap();
        let mut e = Execution::queued("kept", "t1", 1, 1_000);
        store.insert_job_execution(&e).await.unwrap();
        e.start(None, None, Some(5), 2_000).unwrap();
        assert!(store.replace_job_execution(&e, 1).await.unwrap());
    }
    let store = backend.store(dir.path()).await;
    assert_eq!(store.get_job("kept").await.unwrap().unwrap(), job("kept"));
    let e = store
        .get_job_execution("kept", "t1", Some(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (e.version_number, e.status),
        (2, ExecutionStatus::InProgress)
    );
}

on_each_store!(
    jobs_are_created_once_listed_in_order_and_changed_atomically,
    executions_are_replaced_only_from_the_version_they_were_read_at,
    executions_list_by_job_and_by_thing_with_paging,
    jobs_survive_reopening_the_database,
);
