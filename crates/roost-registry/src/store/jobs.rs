//! The storage boundary for jobs and job executions. What a change means
//! is decided by the pure core (`roost-jobs`); the store keeps records
//! and makes each write atomic: a job changes under its own lock, an
//! execution is replaced only if nobody changed it since it was read (its
//! version number, which every change raises, is the check).

use crate::error::Result;
use crate::model::PageRequest;
use async_trait::async_trait;
use roost_jobs::job::{Job, ProcessDetails};
use roost_jobs::{Execution, ExecutionStatus, JobStatus, TargetSelection};

use super::Change;

/// Which jobs ListJobs returns.
#[derive(Clone, Debug, Default)]
pub struct JobFilter {
    pub status: Option<JobStatus>,
    pub target_selection: Option<TargetSelection>,
}

/// Which executions a listing returns: of one job (paged by thing name
/// and execution number) or of one thing (paged by job id and execution
/// number), in any of `statuses` (all when empty).
#[derive(Clone, Debug)]
pub enum ExecutionFilter {
    OfJob {
        job_id: String,
        statuses: Vec<ExecutionStatus>,
    },
    OfThing {
        thing_name: String,
        job_id: Option<String>,
        statuses: Vec<ExecutionStatus>,
    },
}

/// The paging key of an execution in a listing under `filter`.
pub fn execution_key(filter: &ExecutionFilter, e: &Execution) -> String {
    let name = match filter {
        ExecutionFilter::OfJob { .. } => &e.thing_name,
        ExecutionFilter::OfThing { .. } => &e.job_id,
    };
    format!("{name}/{:020}", e.execution_number)
}

#[async_trait]
pub trait JobStore: Send + Sync {
    /// Stores a new job; `AlreadyExists` when its id is taken.
    async fn create_job(&self, job: &Job) -> Result<()>;
    async fn get_job(&self, job_id: &str) -> Result<Option<Job>>;
    /// Jobs in job id order.
    async fn list_jobs(&self, filter: &JobFilter, page: &PageRequest) -> Result<Vec<Job>>;
    /// Applies `change` to the stored job atomically; `NotFound` if none.
    async fn update_job(&self, job_id: &str, change: Change<Job>) -> Result<Job>;
    /// Deletes the job and every execution of it.
    async fn delete_job(&self, job_id: &str) -> Result<()>;

    /// Stores a new execution; `AlreadyExists` when that (job, thing,
    /// execution number) is taken.
    async fn insert_job_execution(&self, execution: &Execution) -> Result<()>;
    /// One execution; the latest of the job on the thing when `number` is
    /// `None`.
    async fn get_job_execution(
        &self,
        job_id: &str,
        thing_name: &str,
        number: Option<u64>,
    ) -> Result<Option<Execution>>;
    /// Replaces an execution if it is still at `read_version`; `false`
    /// when it changed meanwhile (read it again and redo the change), or
    /// is gone.
    async fn replace_job_execution(&self, execution: &Execution, read_version: u64)
        -> Result<bool>;
    /// `true` when it existed.
    async fn delete_job_execution(
        &self,
        job_id: &str,
        thing_name: &str,
        number: u64,
    ) -> Result<bool>;
    async fn list_job_executions(
        &self,
        filter: &ExecutionFilter,
        page: &PageRequest,
    ) -> Result<Vec<Execution>>;
    /// A thing's pending (QUEUED, IN_PROGRESS) executions, of every job.
    async fn pending_job_executions(&self, thing_name: &str) -> Result<Vec<Execution>>;
    /// How many executions of the job stand in each status.
    async fn job_process_details(&self, job_id: &str) -> Result<ProcessDetails>;
    /// Executions whose deadline is at or before `now`, earliest first.
    async fn due_job_executions(&self, now: i64, limit: usize) -> Result<Vec<Execution>>;
    /// The earliest deadline of any execution, to sleep until.
    async fn next_job_deadline(&self) -> Result<Option<i64>>;
}
