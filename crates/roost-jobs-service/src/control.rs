//! The jobs control plane (the reference's sections 4.2 and 4.3):
//! CreateJob, DescribeJob, ListJobs, GetJobDocument, CancelJob, DeleteJob,
//! DescribeJobExecution, ListJobExecutionsForJob/ForThing,
//! CancelJobExecution and DeleteJobExecution, with what each does to the
//! executions and the notifications that follow. Rollout, timers, retries
//! and abort are the service's clock (`clock.rs`).

use crate::{now_ms, JobsService};
use roost_jobs::job::{target, CreateJob, Job, JobSettings, ProcessDetails, Target};
use roost_jobs::{Execution, ExecutionStatus, JobStatus, TransitionError};
use roost_registry::model::{Page, PageRequest};
use roost_registry::store::jobs::{execution_key, ExecutionFilter, JobFilter};
use roost_registry::{paged, RegistryError, Result};
use std::collections::{BTreeMap, BTreeSet};

/// DescribeJob's answer: the job and how its executions stand.
#[derive(Clone, Debug)]
pub struct JobDescription {
    pub job: Job,
    pub details: ProcessDetails,
}

/// A page of executions and the filter it was taken under.
pub struct ExecutionListing {
    pub page: Page<Execution>,
}

/// A transition refused by the pure core, as the control plane reports it.
pub(crate) fn transition_error(e: TransitionError) -> RegistryError {
    match e {
        TransitionError::VersionMismatch { .. } => RegistryError::VersionConflict(e.to_string()),
        TransitionError::NotSetByDevice(_) => RegistryError::InvalidRequest(e.to_string()),
        TransitionError::InvalidTransition { .. } | TransitionError::NeedsForce => {
            RegistryError::InvalidStateTransition(e.to_string())
        }
    }
}

/// Page sizes: AWS's default and maximum for job listings.
const DEFAULT_PAGE: i64 = 50;
const MAX_PAGE: i64 = 250;

fn page_size(max: Option<i64>) -> Result<usize> {
    match max {
        None => Ok(DEFAULT_PAGE as usize),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n as usize),
        Some(n) => Err(RegistryError::InvalidRequest(format!(
            "maxResults {n} is out of range: it must be from 1 to {MAX_PAGE}"
        ))),
    }
}

fn not_found_execution(job_id: &str, thing: &str) -> RegistryError {
    RegistryError::NotFound(format!("No job execution of job {job_id} on thing {thing}"))
}

impl JobsService {
    /// CreateJob: checks the request and its targets (every thing and
    /// group must exist), stores the job and queues its first executions.
    pub async fn create_job(&self, job_id: &str, request: CreateJob) -> Result<Job> {
        let now = now_ms();
        let job = request.into_job(job_id, self.arn_prefix(), now)?;
        self.check_targets_exist(&job.targets).await?;
        self.store().create_job(&job).await?;
        self.roll_out(&job.job_id, now).await?;
        Ok(job)
    }

    /// Every target ARN names a thing or group that exists (else
    /// ResourceNotFoundException).
    async fn check_targets_exist(&self, targets: &[String]) -> Result<()> {
        for arn in targets {
            match target(arn, self.arn_prefix())? {
                Target::Thing(name) => {
                    self.registry().describe_thing(&name).await?;
                }
                Target::Group(name) => {
                    self.registry().describe_thing_group(&name).await?;
                }
            }
        }
        Ok(())
    }

    /// UpdateJob: the settings given replace the job's; `timeoutConfig`
    /// only while none of its executions has run.
    pub async fn update_job(&self, job_id: &str, settings: JobSettings) -> Result<Job> {
        let d = self.store().job_process_details(job_id).await?;
        let started = d.in_progress + d.succeeded + d.failed + d.rejected + d.timed_out > 0;
        let now = now_ms();
        self.store()
            .update_job(
                job_id,
                Box::new(move |job| Ok(job.update(settings, started, now)?)),
            )
            .await
    }

    /// AssociateTargetsWithJob: more targets for a continuous job (each
    /// must exist); their things are queued at the job's rollout rate.
    pub async fn associate_targets(&self, job_id: &str, targets: Vec<String>) -> Result<Job> {
        for arn in &targets {
            target(arn, self.arn_prefix())?;
        }
        self.check_targets_exist(&targets).await?;
        let now = now_ms();
        let prefix = self.arn_prefix().to_string();
        let job = self
            .store()
            .update_job(
                job_id,
                Box::new(move |job| Ok(job.add_targets(targets, &prefix, now)?)),
            )
            .await?;
        self.roll_out(job_id, now).await?;
        Ok(job)
    }

    /// Every thing the job's targets name now: the things, and every
    /// member of each group and of its subgroups.
    pub(crate) async fn target_things(&self, job: &Job) -> Result<BTreeSet<String>> {
        let mut things = BTreeSet::new();
        for arn in &job.targets {
            match target(arn, self.arn_prefix())? {
                Target::Thing(name) => {
                    things.insert(name);
                }
                Target::Group(group) => {
                    let mut token: Option<String> = None;
                    loop {
                        let page = match self
                            .registry()
                            .list_things_in_thing_group(&group, true, token.as_deref(), Some(250))
                            .await
                        {
                            Ok(page) => page,
                            // A group deleted since: it targets no one now.
                            Err(RegistryError::NotFound(_)) => break,
                            Err(e) => return Err(e),
                        };
                        things.extend(page.items);
                        match page.next_token {
                            Some(next) => token = Some(next),
                            None => break,
                        }
                    }
                }
            }
        }
        Ok(things)
    }

    pub async fn describe_job(&self, job_id: &str) -> Result<JobDescription> {
        let job = self.job(job_id).await?;
        let details = self.store().job_process_details(job_id).await?;
        Ok(JobDescription { job, details })
    }

    /// ListJobs; with `thing_group`, only the jobs that target that group.
    pub async fn list_jobs(
        &self,
        filter: JobFilter,
        thing_group: Option<&str>,
        token: Option<&str>,
        max: Option<i64>,
    ) -> Result<Page<Job>> {
        let limit = page_size(max)?;
        let key = |job: &Job| job.job_id.clone();
        let Some(group) = thing_group else {
            return paged(token, limit, true, key, |page| async move {
                self.store().list_jobs(&filter, &page).await
            })
            .await;
        };
        let arn = format!("{}thinggroup/{group}", self.arn_prefix());
        let mut targeting = Vec::new();
        let mut page = PageRequest::first(500);
        loop {
            let batch = self.store().list_jobs(&filter, &page).await?;
            let Some(last) = batch.last() else { break };
            page.after = Some(last.job_id.clone());
            let full = batch.len() == page.limit;
            targeting.extend(batch.into_iter().filter(|job| job.targets.contains(&arn)));
            if !full {
                break;
            }
        }
        paged(token, limit, true, key, |page| async move {
            Ok(targeting
                .into_iter()
                .filter(|job| page.after.as_ref().is_none_or(|after| job.job_id > *after))
                .take(page.limit)
                .collect())
        })
        .await
    }

    /// GetJobDocument: the document as stored, placeholders included.
    pub async fn job_document(&self, job_id: &str) -> Result<String> {
        Ok(self.job(job_id).await?.document)
    }

    /// Every execution of a job, all pages.
    async fn all_executions(&self, job_id: &str) -> Result<Vec<Execution>> {
        let filter = ExecutionFilter::OfJob {
            job_id: job_id.to_string(),
            statuses: Vec::new(),
        };
        let mut all = Vec::new();
        let mut page = PageRequest::first(500);
        loop {
            let batch = self.store().list_job_executions(&filter, &page).await?;
            let Some(last) = batch.last() else { break };
            page.after = Some(execution_key(&filter, last));
            let full = batch.len() == page.limit;
            all.extend(batch);
            if !full {
                break;
            }
        }
        Ok(all)
    }

    /// CancelJob: the job becomes CANCELED; its QUEUED executions are
    /// canceled, and its IN_PROGRESS ones too with `force`.
    pub async fn cancel_job(
        &self,
        job_id: &str,
        force: bool,
        reason_code: Option<String>,
        comment: Option<String>,
    ) -> Result<Job> {
        let now = now_ms();
        let job = self
            .store()
            .update_job(
                job_id,
                Box::new(move |job| Ok(job.cancel(force, reason_code, comment, now)?)),
            )
            .await?;
        self.cancel_executions(job_id, force).await?;
        Ok(job)
    }

    /// Cancels the job's pending executions (IN_PROGRESS ones only with
    /// `force`), each under its thing's lock.
    pub(crate) async fn cancel_executions(&self, job_id: &str, force: bool) -> Result<()> {
        for e in self.all_executions(job_id).await? {
            if e.status.is_terminal() || (e.status == ExecutionStatus::InProgress && !force) {
                continue;
            }
            let thing = e.thing_name.clone();
            self.on_thing(&thing, async || {
                let now = now_ms();
                self.change_execution(job_id, &thing, Some(e.execution_number), |x| {
                    match x.status {
                        ExecutionStatus::InProgress if !force => Ok(()),
                        s if s.is_terminal() => Ok(()),
                        _ => x.cancel(force, None, now),
                    }
                })
                .await
                .map(drop)
            })
            .await?;
        }
        Ok(())
    }

    /// DeleteJob: without `force` only a COMPLETED or CANCELED job. Its
    /// executions go with it; devices with one pending are told.
    pub async fn delete_job(&self, job_id: &str, force: bool) -> Result<()> {
        self.store()
            .update_job(
                job_id,
                Box::new(move |job| {
                    job.check_delete(force)?;
                    job.status = JobStatus::DeletionInProgress;
                    Ok(())
                }),
            )
            .await?;
        for e in self.all_executions(job_id).await? {
            let thing = e.thing_name.clone();
            self.on_thing(&thing, async || {
                self.store()
                    .delete_job_execution(job_id, &thing, e.execution_number)
                    .await
                    .map(drop)
            })
            .await?;
        }
        self.store().delete_job(job_id).await
    }

    /// DescribeJobExecution (control plane): the latest execution when no
    /// number is given.
    pub async fn describe_job_execution(
        &self,
        job_id: &str,
        thing: &str,
        number: Option<u64>,
    ) -> Result<Execution> {
        self.store()
            .get_job_execution(job_id, thing, number)
            .await?
            .ok_or_else(|| not_found_execution(job_id, thing))
    }

    /// ListJobExecutionsForJob (`OfJob`) or ListJobExecutionsForThing
    /// (`OfThing`). The job or thing must exist.
    pub async fn list_job_executions(
        &self,
        filter: ExecutionFilter,
        token: Option<&str>,
        max: Option<i64>,
    ) -> Result<ExecutionListing> {
        let limit = page_size(max)?;
        match &filter {
            ExecutionFilter::OfJob { job_id, .. } => {
                self.job(job_id).await?;
            }
            ExecutionFilter::OfThing { thing_name, .. } => {
                self.registry().describe_thing(thing_name).await?;
            }
        }
        let key_filter = filter.clone();
        let page = paged(
            token,
            limit,
            true,
            move |e: &Execution| execution_key(&key_filter, e),
            |page| async move { self.store().list_job_executions(&filter, &page).await },
        )
        .await?;
        Ok(ExecutionListing { page })
    }

    /// CancelJobExecution: QUEUED becomes CANCELED, IN_PROGRESS only with
    /// `force`; `status_details` replace the execution's when given.
    pub async fn cancel_job_execution(
        &self,
        job_id: &str,
        thing: &str,
        force: bool,
        expected_version: Option<u64>,
        status_details: Option<BTreeMap<String, String>>,
    ) -> Result<()> {
        self.job(job_id).await?;
        self.on_thing(thing, async || {
            let now = now_ms();
            let changed = self
                .change_execution(job_id, thing, None, |e| {
                    e.cancel(force, expected_version, now)?;
                    if let Some(details) = &status_details {
                        e.status_details = details.clone();
                    }
                    Ok::<(), TransitionError>(())
                })
                .await?;
            match changed {
                None => Err(not_found_execution(job_id, thing)),
                Some(Err((e, _))) => Err(transition_error(e)),
                Some(Ok(_)) => Ok(()),
            }
        })
        .await
    }

    /// DeleteJobExecution: a final execution, or any with `force`.
    pub async fn delete_job_execution(
        &self,
        job_id: &str,
        thing: &str,
        number: u64,
        force: bool,
    ) -> Result<()> {
        self.on_thing(thing, async || {
            let e = self
                .store()
                .get_job_execution(job_id, thing, Some(number))
                .await?
                .ok_or_else(|| not_found_execution(job_id, thing))?;
            if !e.status.is_terminal() && !force {
                return Err(RegistryError::InvalidStateTransition(format!(
                    "the job execution is {}: delete it with force, or wait until it is final",
                    e.status
                )));
            }
            self.store()
                .delete_job_execution(job_id, thing, number)
                .await
                .map(drop)
        })
        .await
    }

    /// Queues executions of an IN_PROGRESS job for target things that have
    /// none yet, as many as its rollout rate allows this minute; marks a
    /// snapshot job's rollout done when every target has one.
    pub(crate) async fn roll_out(&self, job_id: &str, now: i64) -> Result<()> {
        let job = self.job(job_id).await?;
        if job.status != JobStatus::InProgress
            || (job.all_targets_queued
                && job.target_selection == roost_jobs::TargetSelection::Snapshot)
        {
            return Ok(());
        }
        let targets = self.target_things(&job).await?;
        let existing = self.all_executions(job_id).await?;
        let queued_things: BTreeSet<&str> =
            existing.iter().map(|e| e.thing_name.as_str()).collect();
        let details = self.store().job_process_details(job_id).await?;
        let rate = job
            .job_executions_rollout_config
            .clone()
            .unwrap_or_default()
            .per_minute(existing.len() as u64, details.succeeded);
        let last_minute = existing
            .iter()
            .filter(|e| e.retry_attempt == 0 && e.queued_at > now - roost_jobs::MINUTE_MS)
            .count() as u32;
        let mut budget = rate.saturating_sub(last_minute);
        let mut waiting = false;
        for thing in targets
            .iter()
            .filter(|t| !queued_things.contains(t.as_str()))
        {
            if budget == 0 {
                waiting = true;
                break;
            }
            self.on_thing(thing, async || {
                match self
                    .store()
                    .insert_job_execution(&Execution::queued(job_id, thing.as_str(), 1, now))
                    .await
                {
                    // Queued meanwhile by another tick: nothing to do.
                    Err(RegistryError::AlreadyExists { .. }) => Ok(()),
                    other => other,
                }
            })
            .await?;
            budget -= 1;
        }
        if !waiting && job.target_selection == roost_jobs::TargetSelection::Snapshot {
            self.store()
                .update_job(
                    job_id,
                    Box::new(|job| {
                        job.all_targets_queued = true;
                        Ok(())
                    }),
                )
                .await?;
        }
        Ok(())
    }
}
