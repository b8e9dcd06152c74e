//! Jobs and job executions in SQLite (migration 0005): each record kept
//! whole as JSON, with the columns that lists filter and sort on beside it.

use super::SqliteStore;
use crate::error::{RegistryError, Result};
use crate::model::PageRequest;
use crate::store::jobs::{ExecutionFilter, JobFilter, JobStore};
use crate::store::Change;
use async_trait::async_trait;
use roost_jobs::job::{Job, ProcessDetails};
use roost_jobs::{Execution, ExecutionStatus};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

fn record<T: serde::de::DeserializeOwned>(row: &SqliteRow) -> Result<T> {
    serde_json::from_str(row.get::<&str, _>("record"))
        .map_err(|e| RegistryError::Internal(format!("a stored job record does not read: {e}")))
}

fn text<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("job records serialise")
}

/// Paging key of an execution, as [`crate::store::jobs::execution_key`]
/// builds it, in SQL.
const THING_KEY: &str = "thing_name || '/' || printf('%020d', execution_number)";
const JOB_KEY: &str = "job_id || '/' || printf('%020d', execution_number)";

fn statuses_sql(statuses: &[ExecutionStatus]) -> String {
    if statuses.is_empty() {
        return String::new();
    }
    let names: Vec<String> = statuses
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect();
    format!(" AND status IN ({})", names.join(", "))
}

fn page_limit(page: &PageRequest) -> i64 {
    i64::try_from(page.limit).unwrap_or(i64::MAX)
}

#[async_trait]
impl JobStore for SqliteStore {
    async fn create_job(&self, job: &Job) -> Result<()> {
        let done = sqlx::query(
            "INSERT INTO jobs (job_id, status, target_selection, created_at, record) VALUES (?, ?, ?, ?, ?) ON CONFLICT (job_id) DO NOTHING",
        )
        .bind(&job.job_id)
        .bind(job.status.as_str())
        .bind(text(&job.target_selection))
        .bind(job.created_at)
        .bind(text(job))
        .execute(&self.write)
        .await?;
        if done.rows_affected() == 0 {
            return Err(RegistryError::AlreadyExists {
                message: format!("Job {} already exists", job.job_id),
                resource_id: Some(job.job_id.clone()),
                resource_arn: None,
            });
        }
        Ok(())
    }

    async fn get_job(&self, job_id: &str) -> Result<Option<Job>> {
        sqlx::query("SELECT record FROM jobs WHERE job_id = ?")
            .bind(job_id)
            .fetch_optional(&self.read)
            .await?
            .map(|row| record(&row))
            .transpose()
    }

    async fn list_jobs(&self, filter: &JobFilter, page: &PageRequest) -> Result<Vec<Job>> {
        let rows = sqlx::query(
            "SELECT record FROM jobs WHERE (?1 IS NULL OR job_id > ?1) AND (?2 IS NULL OR status = ?2) AND (?3 IS NULL OR target_selection = ?3) ORDER BY job_id LIMIT ?4",
        )
        .bind(&page.after)
        .bind(filter.status.map(|s| s.as_str()))
        .bind(filter.target_selection.as_ref().map(text))
        .bind(page_limit(page))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(record).collect()
    }

    async fn update_job(&self, job_id: &str, change: Change<Job>) -> Result<Job> {
        let mut tx = self.write.begin().await?;
        let row = sqlx::query("SELECT record FROM jobs WHERE job_id = ?")
            .bind(job_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| RegistryError::not_found(format!("Job {job_id} does not exist")))?;
        let mut job: Job = record(&row)?;
        change(&mut job)?;
        sqlx::query("UPDATE jobs SET status = ?, record = ? WHERE job_id = ?")
            .bind(job.status.as_str())
            .bind(text(&job))
            .bind(job_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(job)
    }

    async fn delete_job(&self, job_id: &str) -> Result<()> {
        let mut tx = self.write.begin().await?;
        sqlx::query("DELETE FROM job_executions WHERE job_id = ?")
            .bind(job_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM jobs WHERE job_id = ?")
            .bind(job_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn insert_job_execution(&self, e: &Execution) -> Result<()> {
        let done = sqlx::query(
            "INSERT INTO job_executions (job_id, thing_name, execution_number, status, queued_at, deadline, record) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(&e.job_id)
        .bind(&e.thing_name)
        .bind(e.execution_number as i64)
        .bind(e.status.as_str())
        .bind(e.queued_at)
        .bind(e.deadline())
        .bind(text(e))
        .execute(&self.write)
        .await?;
        if done.rows_affected() == 0 {
            return Err(RegistryError::AlreadyExists {
                message: format!(
                    "Job execution {} of job {} on thing {} already exists",
                    e.execution_number, e.job_id, e.thing_name
                ),
                resource_id: None,
                resource_arn: None,
            });
        }
        Ok(())
    }

    async fn get_job_execution(
        &self,
        job_id: &str,
        thing_name: &str,
        number: Option<u64>,
    ) -> Result<Option<Execution>> {
        sqlx::query(
            "SELECT record FROM job_executions WHERE job_id = ?1 AND thing_name = ?2 AND (?3 IS NULL OR execution_number = ?3) ORDER BY execution_number DESC LIMIT 1",
        )
        .bind(job_id)
        .bind(thing_name)
        .bind(number.map(|n| n as i64))
        .fetch_optional(&self.read)
        .await?
        .map(|row| record(&row))
        .transpose()
    }

    async fn replace_job_execution(&self, e: &Execution, read_version: u64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE job_executions SET status = ?, queued_at = ?, deadline = ?, record = ? WHERE job_id = ? AND thing_name = ? AND execution_number = ? AND json_extract(record, '$.versionNumber') = ?",
        )
        .bind(e.status.as_str())
        .bind(e.queued_at)
        .bind(e.deadline())
        .bind(text(e))
        .bind(&e.job_id)
        .bind(&e.thing_name)
        .bind(e.execution_number as i64)
        .bind(read_version as i64)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_job_execution(
        &self,
        job_id: &str,
        thing_name: &str,
        number: u64,
    ) -> Result<bool> {
        let done = sqlx::query(
            "DELETE FROM job_executions WHERE job_id = ? AND thing_name = ? AND execution_number = ?",
        )
        .bind(job_id)
        .bind(thing_name)
        .bind(number as i64)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn list_job_executions(
        &self,
        filter: &ExecutionFilter,
        page: &PageRequest,
    ) -> Result<Vec<Execution>> {
        let rows = match filter {
            ExecutionFilter::OfJob { job_id, statuses } => {
                let sql = format!(
                    "SELECT record FROM job_executions WHERE job_id = ?1 AND (?2 IS NULL OR {THING_KEY} > ?2){} ORDER BY {THING_KEY} LIMIT ?3",
                    statuses_sql(statuses)
                );
                sqlx::query(&sql)
                    .bind(job_id)
                    .bind(&page.after)
                    .bind(page_limit(page))
                    .fetch_all(&self.read)
                    .await?
            }
            ExecutionFilter::OfThing {
                thing_name,
                job_id,
                statuses,
            } => {
                let sql = format!(
                    "SELECT record FROM job_executions WHERE thing_name = ?1 AND (?2 IS NULL OR job_id = ?2) AND (?3 IS NULL OR {JOB_KEY} > ?3){} ORDER BY {JOB_KEY} LIMIT ?4",
                    statuses_sql(statuses)
                );
                sqlx::query(&sql)
                    .bind(thing_name)
                    .bind(job_id)
                    .bind(&page.after)
                    .bind(page_limit(page))
                    .fetch_all(&self.read)
                    .await?
            }
        };
        rows.iter().map(record).collect()
    }

    async fn pending_job_executions(&self, thing_name: &str) -> Result<Vec<Execution>> {
        let rows = sqlx::query(
            "SELECT record FROM job_executions WHERE thing_name = ? AND status IN ('QUEUED', 'IN_PROGRESS') ORDER BY queued_at",
        )
        .bind(thing_name)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(record).collect()
    }

    async fn job_process_details(&self, job_id: &str) -> Result<ProcessDetails> {
        let rows = sqlx::query(
            "SELECT status, COUNT(*) AS n FROM job_executions WHERE job_id = ? GROUP BY status",
        )
        .bind(job_id)
        .fetch_all(&self.read)
        .await?;
        let mut details = ProcessDetails::default();
        for row in rows {
            if let Some(status) = ExecutionStatus::parse(row.get("status")) {
                details.add(status, row.get::<i64, _>("n").max(0) as u64);
            }
        }
        Ok(details)
    }

    async fn due_job_executions(&self, now: i64, limit: usize) -> Result<Vec<Execution>> {
        let rows = sqlx::query(
            "SELECT record FROM job_executions WHERE deadline IS NOT NULL AND deadline <= ? ORDER BY deadline LIMIT ?",
        )
        .bind(now)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(record).collect()
    }

    async fn next_job_deadline(&self) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT MIN(deadline) FROM job_executions WHERE deadline IS NOT NULL",
        )
        .fetch_one(&self.read)
        .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::jobs::execution_key;
    use roost_jobs::job::CreateJob;
    use roost_jobs::{JobStatus, Update};

    const PREFIX: &str = "arn:aws:iot:us-east-1:000000000000:";

    async fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("roost.db"))
            .await
            .unwrap();
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

    #[tokio::test]
    async fn jobs_are_created_once_listed_in_order_and_changed_atomically() {
        let (_dir, store) = store().await;
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

    #[tokio::test]
    async fn executions_are_replaced_only_from_the_version_they_were_read_at() {
        let (_dir, store) = store().await;
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

    #[tokio::test]
    async fn executions_list_by_job_and_by_thing_with_paging() {
        let (_dir, store) = store().await;
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

    #[tokio::test]
    async fn jobs_survive_reopening_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("roost.db");
        {
            let store = SqliteStore::open(&path).await.unwrap();
            store.create_job(&job("kept")).await.unwrap();
            let mut e = Execution::queued("kept", "t1", 1, 1_000);
            store.insert_job_execution(&e).await.unwrap();
            e.start(None, None, Some(5), 2_000).unwrap();
            assert!(store.replace_job_execution(&e, 1).await.unwrap());
        }
        let store = SqliteStore::open(&path).await.unwrap();
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
}
