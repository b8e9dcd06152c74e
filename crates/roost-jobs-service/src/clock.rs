//! The jobs service's clock: what happens because time passed or an
//! execution ended rather than because someone asked. Every tick it times
//! out executions whose deadline came (their deadlines are in the store,
//! so a restart loses none), queues the executions the rollout rates
//! allow, marks REMOVED the executions of things that left a continuous
//! job's groups, and settles jobs: retries, abort, completion.

use crate::{now_ms, JobsService};
use roost_jobs::{Execution, ExecutionStatus, JobStatus, TargetSelection};
use roost_registry::model::PageRequest;
use roost_registry::store::jobs::{ExecutionFilter, JobFilter};
use roost_registry::{RegistryError, Result};
use std::time::Duration;
use tokio::sync::watch;

/// How often the clock looks. Timers fire up to this late (AWS: up to 60 s).
pub const TICK: Duration = Duration::from_secs(1);

/// Time-outs handled per tick; the rest wait for the next one.
const TIMEOUTS_PER_TICK: usize = 256;

/// The comment an aborted job gets.
pub const ABORT_COMMENT: &str = "canceled by its abortConfig: the failure threshold was reached";

impl JobsService {
    /// Runs the clock until `shutdown`.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        loop {
            if let Err(e) = self.tick(now_ms()).await {
                tracing::error!(error = %e, "jobs clock tick failed; trying again at the next");
            }
            tokio::select! {
                _ = tokio::time::sleep(TICK) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// One look at the clock at `now`.
    pub async fn tick(&self, now: i64) -> Result<()> {
        for due in self
            .store()
            .due_job_executions(now, TIMEOUTS_PER_TICK)
            .await?
        {
            let thing = due.thing_name.clone();
            let changed = self
                .on_thing(&thing, async || {
                    self.change_execution(&due.job_id, &thing, Some(due.execution_number), |e| {
                        if e.time_out_if_due(now) {
                            Ok(())
                        } else {
                            Err(())
                        }
                    })
                    .await
                })
                .await?;
            if let Some(Ok(timed_out)) = changed {
                self.after_final(&timed_out).await?;
            }
        }
        let in_progress = JobFilter {
            status: Some(JobStatus::InProgress),
            ..JobFilter::default()
        };
        let mut page = PageRequest::first(100);
        loop {
            let jobs = self.store().list_jobs(&in_progress, &page).await?;
            let Some(last) = jobs.last() else { break };
            page.after = Some(last.job_id.clone());
            let full = jobs.len() == page.limit;
            for job in jobs {
                self.roll_out(&job.job_id, now).await?;
                if job.target_selection == TargetSelection::Continuous {
                    self.remove_departed(&job.job_id, now).await?;
                }
                self.settle(&job.job_id, now).await?;
            }
            if !full {
                break;
            }
        }
        Ok(())
    }

    /// A continuous job's pending executions on things its targets no
    /// longer name become REMOVED.
    async fn remove_departed(&self, job_id: &str, now: i64) -> Result<()> {
        let job = self.job(job_id).await?;
        let targets = self.target_things(&job).await?;
        let filter = ExecutionFilter::OfJob {
            job_id: job_id.to_string(),
            statuses: vec![ExecutionStatus::Queued, ExecutionStatus::InProgress],
        };
        let pending = self
            .store()
            .list_job_executions(&filter, &PageRequest::first(usize::MAX >> 1))
            .await?;
        for e in pending.iter().filter(|e| !targets.contains(&e.thing_name)) {
            self.on_thing(&e.thing_name, async || {
                self.change_execution(job_id, &e.thing_name, Some(e.execution_number), |x| {
                    if x.remove(now) {
                        Ok(())
                    } else {
                        Err(())
                    }
                })
                .await
                .map(drop)
            })
            .await?;
        }
        Ok(())
    }

    /// What follows an execution's end: another attempt if the job's
    /// retry configuration allows one, then the job's abort and completion.
    pub(crate) async fn after_final(&self, ended: &Execution) -> Result<()> {
        let job = match self.job(&ended.job_id).await {
            Ok(job) => job,
            Err(RegistryError::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        let now = now_ms();
        let retries = job.status == JobStatus::InProgress
            && job
                .job_executions_retry_config
                .as_ref()
                .is_some_and(|c| c.retries(ended.status, ended.retry_attempt));
        if retries {
            self.on_thing(&ended.thing_name, async || {
                self.change_execution(
                    &ended.job_id,
                    &ended.thing_name,
                    Some(ended.execution_number),
                    |e| e.requeue(now),
                )
                .await
                .map(drop)
            })
            .await?;
        }
        self.settle(&ended.job_id, now).await
    }

    /// An IN_PROGRESS job whose failures reach an abort criterion is
    /// canceled (its QUEUED executions with it); a snapshot job whose
    /// executions are all final is COMPLETED.
    async fn settle(&self, job_id: &str, now: i64) -> Result<()> {
        let job = self.job(job_id).await?;
        if job.status != JobStatus::InProgress {
            return Ok(());
        }
        let details = self.store().job_process_details(job_id).await?;
        if job.abort_config.as_ref().is_some_and(|a| a.fires(&details)) {
            tracing::info!(job_id, "job aborted by its abortConfig");
            self.store()
                .update_job(
                    job_id,
                    Box::new(move |job| {
                        Ok(job.cancel(false, None, Some(ABORT_COMMENT.to_string()), now)?)
                    }),
                )
                .await?;
            return self.cancel_executions(job_id, false).await;
        }
        if job.clone().complete_if_done(&details, now) {
            self.store()
                .update_job(
                    job_id,
                    Box::new(move |job| {
                        job.complete_if_done(&details, now);
                        Ok(())
                    }),
                )
                .await?;
        }
        Ok(())
    }
}
