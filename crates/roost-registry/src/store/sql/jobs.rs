//! Jobs and job executions (SQLite migration 0005): each record kept whole
//! as JSON text, with the columns that lists filter and sort on beside it.

use super::super::{begin_write, DbRow, This, WriteOne, EXECUTION_VERSION, JOB_KEY, THING_KEY};
use crate::error::{RegistryError, Result};
use crate::model::PageRequest;
use crate::store::jobs::{ExecutionFilter, JobFilter, JobStore};
use crate::store::Change;
use async_trait::async_trait;
use roost_jobs::job::{Job, ProcessDetails};
use roost_jobs::{Execution, ExecutionStatus};
use sqlx::Row;

fn record<T: serde::de::DeserializeOwned>(row: &DbRow) -> Result<T> {
    serde_json::from_str(row.get::<&str, _>("record"))
        .map_err(|e| RegistryError::Internal(format!("a stored job record does not read: {e}")))
}

fn text<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("job records serialise")
}

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
impl JobStore for This {
    async fn create_job(&self, job: &Job) -> Result<()> {
        let done = sqlx::query(
            "INSERT INTO jobs (job_id, status, target_selection, created_at, record) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (job_id) DO NOTHING",
        )
        .bind(&job.job_id)
        .bind(job.status.as_str())
        .bind(text(&job.target_selection))
        .bind(job.created_at)
        .bind(text(job))
        .write_one(&self.write)
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
        sqlx::query("SELECT record FROM jobs WHERE job_id = $1")
            .bind(job_id)
            .fetch_optional(&self.read)
            .await?
            .map(|row| record(&row))
            .transpose()
    }

    async fn list_jobs(&self, filter: &JobFilter, page: &PageRequest) -> Result<Vec<Job>> {
        let rows = sqlx::query(
            "SELECT record FROM jobs WHERE ($1 IS NULL OR job_id > $1) AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR target_selection = $3) ORDER BY job_id LIMIT $4",
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
        let mut tx = begin_write(&self.write).await?;
        let row = sqlx::query("SELECT record FROM jobs WHERE job_id = $1")
            .bind(job_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| RegistryError::not_found(format!("Job {job_id} does not exist")))?;
        let mut job: Job = record(&row)?;
        change(&mut job)?;
        sqlx::query("UPDATE jobs SET status = $1, record = $2 WHERE job_id = $3")
            .bind(job.status.as_str())
            .bind(text(&job))
            .bind(job_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(job)
    }

    async fn delete_job(&self, job_id: &str) -> Result<()> {
        let mut tx = begin_write(&self.write).await?;
        sqlx::query("DELETE FROM job_executions WHERE job_id = $1")
            .bind(job_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM jobs WHERE job_id = $1")
            .bind(job_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn insert_job_execution(&self, e: &Execution) -> Result<()> {
        let done = sqlx::query(
            "INSERT INTO job_executions (job_id, thing_name, execution_number, status, queued_at, deadline, record) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        )
        .bind(&e.job_id)
        .bind(&e.thing_name)
        .bind(e.execution_number as i64)
        .bind(e.status.as_str())
        .bind(e.queued_at)
        .bind(e.deadline())
        .bind(text(e))
        .write_one(&self.write)
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
            "SELECT record FROM job_executions WHERE job_id = $1 AND thing_name = $2 AND ($3 IS NULL OR execution_number = $3) ORDER BY execution_number DESC LIMIT 1",
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
        let sql = format!(
            "UPDATE job_executions SET status = $1, queued_at = $2, deadline = $3, record = $4 WHERE job_id = $5 AND thing_name = $6 AND execution_number = $7 AND {EXECUTION_VERSION} = $8",
        );
        let done = sqlx::query(&sql)
            .bind(e.status.as_str())
            .bind(e.queued_at)
            .bind(e.deadline())
            .bind(text(e))
            .bind(&e.job_id)
            .bind(&e.thing_name)
            .bind(e.execution_number as i64)
            .bind(read_version as i64)
            .write_one(&self.write)
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
            "DELETE FROM job_executions WHERE job_id = $1 AND thing_name = $2 AND execution_number = $3",
        )
        .bind(job_id)
        .bind(thing_name)
        .bind(number as i64)
        .write_one(&self.write)
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
                    "SELECT record FROM job_executions WHERE job_id = $1 AND ($2 IS NULL OR {THING_KEY} > $2){} ORDER BY {THING_KEY} LIMIT $3",
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
                    "SELECT record FROM job_executions WHERE thing_name = $1 AND ($2 IS NULL OR job_id = $2) AND ($3 IS NULL OR {JOB_KEY} > $3){} ORDER BY {JOB_KEY} LIMIT $4",
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
            "SELECT record FROM job_executions WHERE thing_name = $1 AND status IN ('QUEUED', 'IN_PROGRESS') ORDER BY queued_at",
        )
        .bind(thing_name)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(record).collect()
    }

    async fn job_process_details(&self, job_id: &str) -> Result<ProcessDetails> {
        let rows = sqlx::query(
            "SELECT status, COUNT(*) AS n FROM job_executions WHERE job_id = $1 GROUP BY status",
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
            "SELECT record FROM job_executions WHERE deadline IS NOT NULL AND deadline <= $1 ORDER BY deadline LIMIT $2",
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
