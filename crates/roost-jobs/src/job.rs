//! A job: what CreateJob accepts (its configurations, in AWS's JSON shapes
//! and bounds), the job's own status changes (cancel, delete, complete),
//! its process details, and the decisions its configurations make: how
//! fast executions roll out, when a failed one is retried, when failures
//! abort the job (the reference's sections 4.1 to 4.3).

use crate::document::{self, DocumentError};
use crate::request::is_job_id;
use crate::{ExecutionStatus, JobStatus, TargetSelection};
use serde::{Deserialize, Serialize};

/// `description`: at most this many characters.
pub const MAX_DESCRIPTION: usize = 2028;
/// `comment`: at most this many characters.
pub const MAX_COMMENT: usize = 2028;
/// `reasonCode`: at most this many characters of `[A-Z0-9_]`.
pub const MAX_REASON_CODE: usize = 128;
/// `targets`: at most this many ARNs.
pub const MAX_TARGETS: usize = 100;
/// Retries per device, whatever the criteria say.
pub const MAX_RETRIES: u32 = 10;
/// Executions queued per minute at most (AWS's rollout quota).
pub const MAX_PER_MINUTE: u32 = 1000;

/// Why a job request was refused; each variant one AWS exception.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    InvalidStateTransition(String),
}

impl JobError {
    fn invalid(message: impl Into<String>) -> Self {
        JobError::InvalidRequest(message.into())
    }
}

impl From<DocumentError> for JobError {
    fn from(e: DocumentError) -> Self {
        JobError::InvalidRequest(e.to_string())
    }
}

/// `presignedUrlConfig`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PresignedUrlConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in_sec: Option<i64>,
}

impl PresignedUrlConfig {
    /// How long a presigned URL stays valid: 3600 s unless configured.
    pub fn expires_in_secs(&self) -> i64 {
        self.expires_in_sec.unwrap_or(3600)
    }

    fn check(&self) -> Result<(), JobError> {
        if let Some(arn) = &self.role_arn {
            if !(20..=2048).contains(&arn.len()) {
                return Err(JobError::invalid(
                    "presignedUrlConfig.roleArn must be 20 to 2048 characters",
                ));
            }
        }
        match self.expires_in_sec {
            Some(s) if !(60..=3600).contains(&s) => Err(JobError::invalid(
                "presignedUrlConfig.expiresInSec must be from 60 to 3600",
            )),
            _ => Ok(()),
        }
    }
}

/// `jobExecutionsRolloutConfig`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maximum_per_minute: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exponential_rate: Option<ExponentialRate>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExponentialRate {
    pub base_rate_per_minute: u32,
    pub increment_factor: f64,
    pub rate_increase_criteria: RateIncreaseCriteria,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RateIncreaseCriteria {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number_of_notified_things: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number_of_succeeded_things: Option<u32>,
}

impl RolloutConfig {
    fn check(&self) -> Result<(), JobError> {
        if let Some(max) = self.maximum_per_minute {
            if !(1..=MAX_PER_MINUTE).contains(&max) {
                return Err(JobError::invalid(format!(
                    "jobExecutionsRolloutConfig.maximumPerMinute must be from 1 to {MAX_PER_MINUTE}"
                )));
            }
        }
        if let Some(rate) = &self.exponential_rate {
            if !(1..=MAX_PER_MINUTE).contains(&rate.base_rate_per_minute) {
                return Err(JobError::invalid(format!(
                    "exponentialRate.baseRatePerMinute must be from 1 to {MAX_PER_MINUTE}"
                )));
            }
            let tenths = rate.increment_factor * 10.0;
            if !(1.1..=5.0).contains(&rate.increment_factor)
                || (tenths - tenths.round()).abs() > 1e-9
            {
                return Err(JobError::invalid(
                    "exponentialRate.incrementFactor must be from 1.1 to 5.0, with one decimal",
                ));
            }
            let criteria = &rate.rate_increase_criteria;
            let valid = |n: Option<u32>| n.is_none_or(|n| n >= 1);
            let given = criteria.number_of_notified_things.is_some()
                != criteria.number_of_succeeded_things.is_some();
            if !given
                || !valid(criteria.number_of_notified_things)
                || !valid(criteria.number_of_succeeded_things)
            {
                return Err(JobError::invalid(
                    "exponentialRate.rateIncreaseCriteria takes exactly one of numberOfNotifiedThings or numberOfSucceededThings, at least 1",
                ));
            }
        }
        Ok(())
    }

    /// Executions that may be queued per minute now, given how many have
    /// been queued (`notified`) and how many succeeded so far; `None` for
    /// no limit but AWS's quota. An exponential rate starts at its base
    /// and is multiplied by its factor each time the criterion's count
    /// grows by its step, never past `maximumPerMinute` nor the quota.
    pub fn per_minute(&self, notified: u64, succeeded: u64) -> u32 {
        let cap = self.maximum_per_minute.unwrap_or(MAX_PER_MINUTE);
        let Some(rate) = &self.exponential_rate else {
            return cap;
        };
        let criteria = &rate.rate_increase_criteria;
        let steps = match (
            criteria.number_of_notified_things,
            criteria.number_of_succeeded_things,
        ) {
            (Some(step), _) => notified / u64::from(step.max(1)),
            (None, Some(step)) => succeeded / u64::from(step.max(1)),
            (None, None) => 0,
        };
        let mut per_minute = f64::from(rate.base_rate_per_minute);
        for _ in 0..steps.min(64) {
            per_minute *= rate.increment_factor;
            if per_minute >= f64::from(cap) {
                break;
            }
        }
        (per_minute.floor() as u32).clamp(1, cap)
    }
}

/// What counts as a failure for abort and retry criteria.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FailureType {
    Failed,
    Rejected,
    TimedOut,
    All,
}

/// `abortConfig`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AbortConfig {
    pub criteria_list: Vec<AbortCriteria>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AbortCriteria {
    pub failure_type: FailureType,
    /// Only `CANCEL` exists.
    pub action: String,
    pub threshold_percentage: f64,
    pub min_number_of_executed_things: u32,
}

impl AbortConfig {
    fn check(&self) -> Result<(), JobError> {
        if self.criteria_list.is_empty() {
            return Err(JobError::invalid(
                "abortConfig.criteriaList needs at least one criterion",
            ));
        }
        for c in &self.criteria_list {
            if c.action != "CANCEL" {
                return Err(JobError::invalid(format!(
                    "abortConfig action '{}' is not supported: the only action is CANCEL",
                    c.action
                )));
            }
            if !(0.0..=100.0).contains(&c.threshold_percentage) {
                return Err(JobError::invalid(
                    "abortConfig thresholdPercentage must be from 0 to 100",
                ));
            }
            if c.min_number_of_executed_things < 1 {
                return Err(JobError::invalid(
                    "abortConfig minNumberOfExecutedThings must be at least 1",
                ));
            }
        }
        Ok(())
    }

    /// Whether a criterion fires on these counts: enough executions have
    /// finished, and the share of the failure type among them reaches
    /// the threshold.
    pub fn fires(&self, details: &ProcessDetails) -> bool {
        let executed = details.succeeded + details.failed + details.rejected + details.timed_out;
        self.criteria_list.iter().any(|c| {
            let failures = match c.failure_type {
                FailureType::Failed => details.failed,
                FailureType::Rejected => details.rejected,
                FailureType::TimedOut => details.timed_out,
                FailureType::All => details.failed + details.rejected + details.timed_out,
            };
            executed >= u64::from(c.min_number_of_executed_things)
                && executed > 0
                && failures as f64 * 100.0 >= c.threshold_percentage * executed as f64
        })
    }
}

/// `timeoutConfig`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimeoutConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_progress_timeout_in_minutes: Option<u32>,
}

impl TimeoutConfig {
    fn check(&self) -> Result<(), JobError> {
        match self.in_progress_timeout_in_minutes {
            Some(m) if !(1..=10_080).contains(&m) => Err(JobError::invalid(
                "timeoutConfig.inProgressTimeoutInMinutes must be from 1 to 10080",
            )),
            _ => Ok(()),
        }
    }
}

/// `jobExecutionsRetryConfig`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryConfig {
    pub criteria_list: Vec<RetryCriteria>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryCriteria {
    pub failure_type: FailureType,
    pub number_of_retries: u32,
}

impl RetryConfig {
    fn check(&self, timeout: Option<&TimeoutConfig>) -> Result<(), JobError> {
        if !(1..=2).contains(&self.criteria_list.len()) {
            return Err(JobError::invalid(
                "jobExecutionsRetryConfig.criteriaList takes one or two criteria",
            ));
        }
        let mut total = 0;
        for c in &self.criteria_list {
            if c.failure_type == FailureType::Rejected {
                return Err(JobError::invalid(
                    "REJECTED executions are never retried: use FAILED, TIMED_OUT or ALL",
                ));
            }
            if c.failure_type == FailureType::TimedOut
                && timeout.is_none_or(|t| t.in_progress_timeout_in_minutes.is_none())
            {
                return Err(JobError::invalid(
                    "retrying TIMED_OUT executions needs a timeoutConfig",
                ));
            }
            total += c.number_of_retries;
        }
        if total > MAX_RETRIES {
            return Err(JobError::invalid(format!(
                "jobExecutionsRetryConfig allows at most {MAX_RETRIES} retries in all"
            )));
        }
        Ok(())
    }

    /// Whether an execution that ended `status` after `retry_attempt`
    /// retries is queued again: a criterion for its own failure type
    /// decides, else an `ALL` criterion.
    pub fn retries(&self, status: ExecutionStatus, retry_attempt: u32) -> bool {
        let own = match status {
            ExecutionStatus::Failed => FailureType::Failed,
            ExecutionStatus::TimedOut => FailureType::TimedOut,
            _ => return false,
        };
        let allowed = self
            .criteria_list
            .iter()
            .find(|c| c.failure_type == own)
            .or_else(|| {
                self.criteria_list
                    .iter()
                    .find(|c| c.failure_type == FailureType::All)
            })
            .map_or(0, |c| c.number_of_retries.min(MAX_RETRIES));
        retry_attempt < allowed
    }
}

/// A job's target: a thing, or a thing group (its members and its
/// subgroups' members).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Target {
    Thing(String),
    Group(String),
}

/// Reads a target ARN of this region and account.
pub fn target(arn: &str, arn_prefix: &str) -> Result<Target, JobError> {
    let wrong = || {
        JobError::invalid(format!(
            "target '{arn}' is not a thing or thing group ARN of this account ({arn_prefix}thing/NAME or {arn_prefix}thinggroup/NAME)"
        ))
    };
    let rest = arn.strip_prefix(arn_prefix).ok_or_else(wrong)?;
    let named = |name: &str| !name.is_empty() && name.len() <= 128 && !name.contains('/');
    if let Some(name) = rest.strip_prefix("thing/").filter(|n| named(n)) {
        return Ok(Target::Thing(name.to_string()));
    }
    if let Some(name) = rest.strip_prefix("thinggroup/").filter(|n| named(n)) {
        return Ok(Target::Group(name.to_string()));
    }
    Err(wrong())
}

/// The body of CreateJob (`PUT /jobs/{jobId}`), as the aws CLI and boto3
/// send it. Fields Roost does not implement (templates, scheduling,
/// namespaces) are refused by [`CreateJob::into_job`] rather than ignored.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateJob {
    #[serde(default)]
    pub targets: Vec<String>,
    pub document: Option<String>,
    pub document_source: Option<String>,
    pub target_selection: Option<TargetSelection>,
    /// What UpdateJob may change later.
    #[serde(flatten)]
    pub settings: JobSettings,
    pub job_template_arn: Option<String>,
    pub scheduling_config: Option<serde_json::Value>,
    pub namespace_id: Option<String>,
    pub document_parameters: Option<serde_json::Value>,
    pub tags: Option<serde_json::Value>,
    /// Set by [`CreateJob::with_source_document`].
    #[serde(skip)]
    source_read: bool,
}

/// A job's settings that UpdateJob may change (its whole body), also part
/// of CreateJob's.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobSettings {
    pub description: Option<String>,
    pub presigned_url_config: Option<PresignedUrlConfig>,
    pub job_executions_rollout_config: Option<RolloutConfig>,
    pub abort_config: Option<AbortConfig>,
    pub timeout_config: Option<TimeoutConfig>,
    pub job_executions_retry_config: Option<RetryConfig>,
}

impl JobSettings {
    /// Checks each setting given; a retry of TIMED_OUT executions needs a
    /// timeout, this one's or `current_timeout` (the job's, on update).
    fn check(&self, current_timeout: Option<&TimeoutConfig>) -> Result<(), JobError> {
        if let Some(description) = &self.description {
            if description.chars().count() > MAX_DESCRIPTION
                || description
                    .chars()
                    .any(|c| c.is_control() && c != '\n' && c != '\t')
            {
                return Err(JobError::invalid(format!(
                    "description must be at most {MAX_DESCRIPTION} characters without control characters"
                )));
            }
        }
        if let Some(c) = &self.presigned_url_config {
            c.check()?;
        }
        if let Some(c) = &self.job_executions_rollout_config {
            c.check()?;
        }
        if let Some(c) = &self.abort_config {
            c.check()?;
        }
        if let Some(c) = &self.timeout_config {
            c.check()?;
        }
        if let Some(c) = &self.job_executions_retry_config {
            c.check(self.timeout_config.as_ref().or(current_timeout))?;
        }
        Ok(())
    }
}

/// A stored job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub job_id: String,
    /// The target ARNs as given.
    pub targets: Vec<String>,
    /// The document as stored, placeholders included.
    pub document: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document_source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub target_selection: TargetSelection,
    pub status: JobStatus,
    pub force_canceled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presigned_url_config: Option<PresignedUrlConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_executions_rollout_config: Option<RolloutConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abort_config: Option<AbortConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_config: Option<TimeoutConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_executions_retry_config: Option<RetryConfig>,
    /// Unix milliseconds.
    pub created_at: i64,
    pub last_updated_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<i64>,
    /// Every target thing has had an execution queued (a snapshot job
    /// whose rollout is over); continuous jobs keep looking for new ones.
    #[serde(default)]
    pub all_targets_queued: bool,
}

impl CreateJob {
    /// The document `documentSource` names, read by the caller (who knows
    /// the object store), becomes the job's document.
    pub fn with_source_document(mut self, document: String) -> Self {
        self.document = Some(document);
        self.source_read = true;
        self
    }

    /// Checks the request and makes the job, IN_PROGRESS at `now`. A
    /// `documentSource` must already have been read into `document` by
    /// the caller (it knows the object store); `targets` are checked
    /// against `arn_prefix` (`arn:aws:iot:REGION:ACCOUNT:`).
    pub fn into_job(self, job_id: &str, arn_prefix: &str, now: i64) -> Result<Job, JobError> {
        if !is_job_id(job_id) {
            return Err(JobError::invalid(format!(
                "jobId '{job_id}' must be 1 to 64 characters of a-z, A-Z, 0-9, '_' and '-'"
            )));
        }
        for (given, what) in [
            (self.job_template_arn.is_some(), "jobTemplateArn"),
            (self.scheduling_config.is_some(), "schedulingConfig"),
            (self.namespace_id.is_some(), "namespaceId"),
            (self.document_parameters.is_some(), "documentParameters"),
        ] {
            if given {
                return Err(JobError::invalid(format!(
                    "{what} is not supported by Roost"
                )));
            }
        }
        if self.targets.is_empty() || self.targets.len() > MAX_TARGETS {
            return Err(JobError::invalid(format!(
                "targets must list 1 to {MAX_TARGETS} thing or thing group ARNs"
            )));
        }
        for arn in &self.targets {
            target(arn, arn_prefix)?;
        }
        let document = match (self.document, &self.document_source) {
            (Some(document), None) => document,
            (Some(document), Some(_)) if self.source_read => document,
            (None, Some(_)) => {
                return Err(JobError::invalid(
                    "documentSource must be read into the document before the job is made",
                ))
            }
            _ => {
                return Err(JobError::invalid(
                    "give exactly one of document or documentSource",
                ))
            }
        };
        document::check(&document)?;
        self.settings.check(None)?;
        Ok(Job {
            job_id: job_id.to_string(),
            targets: self.targets,
            document,
            document_source: self.document_source,
            description: self.settings.description,
            target_selection: self.target_selection.unwrap_or_default(),
            status: JobStatus::InProgress,
            force_canceled: false,
            reason_code: None,
            comment: None,
            presigned_url_config: self.settings.presigned_url_config,
            job_executions_rollout_config: self.settings.job_executions_rollout_config,
            abort_config: self.settings.abort_config,
            timeout_config: self.settings.timeout_config,
            job_executions_retry_config: self.settings.job_executions_retry_config,
            created_at: now,
            last_updated_at: now,
            completed_at: None,
            all_targets_queued: false,
        })
    }
}

impl Job {
    /// UpdateJob: replaces each setting the request gives, after checking
    /// them all (a refused update changes nothing). `timeoutConfig` may
    /// change only while no execution has started (`started`).
    pub fn update(&mut self, update: JobSettings, started: bool, now: i64) -> Result<(), JobError> {
        if !matches!(self.status, JobStatus::InProgress | JobStatus::Scheduled) {
            return Err(JobError::invalid(format!(
                "job {} is {}: only a job in progress can be updated",
                self.job_id,
                self.status.as_str()
            )));
        }
        if update.timeout_config.is_some() && started {
            return Err(JobError::invalid(
                "timeoutConfig cannot change once an execution of the job has started",
            ));
        }
        update.check(self.timeout_config.as_ref())?;
        let JobSettings {
            description,
            presigned_url_config,
            job_executions_rollout_config,
            abort_config,
            timeout_config,
            job_executions_retry_config,
        } = update;
        fn replace<T>(slot: &mut Option<T>, new: Option<T>) {
            if new.is_some() {
                *slot = new;
            }
        }
        replace(&mut self.description, description);
        replace(&mut self.presigned_url_config, presigned_url_config);
        replace(
            &mut self.job_executions_rollout_config,
            job_executions_rollout_config,
        );
        replace(&mut self.abort_config, abort_config);
        replace(&mut self.timeout_config, timeout_config);
        replace(
            &mut self.job_executions_retry_config,
            job_executions_retry_config,
        );
        self.last_updated_at = now;
        Ok(())
    }

    /// AssociateTargetsWithJob: more targets for a continuous job in
    /// progress, at most [`MAX_TARGETS`] in all; ARNs already targeted are
    /// kept once.
    pub fn add_targets(
        &mut self,
        targets: Vec<String>,
        arn_prefix: &str,
        now: i64,
    ) -> Result<(), JobError> {
        if self.target_selection != TargetSelection::Continuous
            || self.status != JobStatus::InProgress
        {
            return Err(JobError::invalid(format!(
                "targets can be added only to a CONTINUOUS job in progress; job {} is {} and {}",
                self.job_id,
                match self.target_selection {
                    TargetSelection::Snapshot => "SNAPSHOT",
                    TargetSelection::Continuous => "CONTINUOUS",
                },
                self.status.as_str()
            )));
        }
        if targets.is_empty() {
            return Err(JobError::invalid("targets must list at least one ARN"));
        }
        for arn in &targets {
            target(arn, arn_prefix)?;
        }
        let mut all = self.targets.clone();
        for arn in targets {
            if !all.contains(&arn) {
                all.push(arn);
            }
        }
        if all.len() > MAX_TARGETS {
            return Err(JobError::invalid(format!(
                "a job has at most {MAX_TARGETS} targets; this would make {}",
                all.len()
            )));
        }
        self.targets = all;
        self.last_updated_at = now;
        Ok(())
    }

    /// The in-progress timeout its executions get, if any.
    pub fn in_progress_minutes(&self) -> Option<u32> {
        self.timeout_config
            .as_ref()
            .and_then(|t| t.in_progress_timeout_in_minutes)
    }

    /// CancelJob. `reason_code` and `comment` are checked and recorded. A
    /// canceled job may be canceled again with `force` (to cancel its
    /// IN_PROGRESS executions too); a completed or deleting one may not.
    pub fn cancel(
        &mut self,
        force: bool,
        reason_code: Option<String>,
        comment: Option<String>,
        now: i64,
    ) -> Result<(), JobError> {
        if let Some(code) = &reason_code {
            let ok = !code.is_empty()
                && code.len() <= MAX_REASON_CODE
                && code
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
            if !ok {
                return Err(JobError::invalid(format!(
                    "reasonCode must be 1 to {MAX_REASON_CODE} characters of A-Z, 0-9 and '_'"
                )));
            }
        }
        if comment
            .as_ref()
            .is_some_and(|c| c.chars().count() > MAX_COMMENT)
        {
            return Err(JobError::invalid(format!(
                "comment must be at most {MAX_COMMENT} characters"
            )));
        }
        match self.status {
            JobStatus::InProgress | JobStatus::Scheduled => {}
            JobStatus::Canceled if force => {}
            status => {
                return Err(JobError::InvalidStateTransition(format!(
                    "job {} is {}: it cannot be canceled{}",
                    self.job_id,
                    status.as_str(),
                    if status == JobStatus::Canceled {
                        " again without force"
                    } else {
                        ""
                    }
                )))
            }
        }
        self.status = JobStatus::Canceled;
        self.force_canceled |= force;
        self.reason_code = reason_code.or(self.reason_code.take());
        self.comment = comment.or(self.comment.take());
        self.last_updated_at = now;
        Ok(())
    }

    /// DeleteJob's check: without `force`, only a COMPLETED or CANCELED
    /// job; never one already being deleted.
    pub fn check_delete(&self, force: bool) -> Result<(), JobError> {
        match self.status {
            JobStatus::DeletionInProgress => Err(JobError::InvalidStateTransition(format!(
                "job {} is already being deleted",
                self.job_id
            ))),
            JobStatus::Completed | JobStatus::Canceled => Ok(()),
            _ if force => Ok(()),
            status => Err(JobError::InvalidStateTransition(format!(
                "job {} is {}: delete it with force, or cancel it first",
                self.job_id,
                status.as_str()
            ))),
        }
    }

    /// A SNAPSHOT job in progress whose every target has an execution
    /// (`all_targets_queued`) and whose executions are all final is COMPLETED. `true` when it became so.
    pub fn complete_if_done(&mut self, details: &ProcessDetails, now: i64) -> bool {
        let done = self.status == JobStatus::InProgress
            && self.target_selection == TargetSelection::Snapshot
            && self.all_targets_queued
            && details.queued == 0
            && details.in_progress == 0;
        if done {
            self.status = JobStatus::Completed;
            self.completed_at = Some(now);
            self.last_updated_at = now;
        }
        done
    }
}

/// `jobProcessDetails`: how many executions stand in each status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcessDetails {
    pub queued: u64,
    pub in_progress: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub rejected: u64,
    pub timed_out: u64,
    pub removed: u64,
    pub canceled: u64,
}

impl ProcessDetails {
    /// Adds `count` executions in `status`.
    pub fn add(&mut self, status: ExecutionStatus, count: u64) {
        let slot = match status {
            ExecutionStatus::Queued => &mut self.queued,
            ExecutionStatus::InProgress => &mut self.in_progress,
            ExecutionStatus::Succeeded => &mut self.succeeded,
            ExecutionStatus::Failed => &mut self.failed,
            ExecutionStatus::Rejected => &mut self.rejected,
            ExecutionStatus::TimedOut => &mut self.timed_out,
            ExecutionStatus::Removed => &mut self.removed,
            ExecutionStatus::Canceled => &mut self.canceled,
        };
        *slot += count;
    }

    /// As DescribeJob returns it.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "numberOfCanceledThings": self.canceled,
            "numberOfSucceededThings": self.succeeded,
            "numberOfFailedThings": self.failed,
            "numberOfRejectedThings": self.rejected,
            "numberOfQueuedThings": self.queued,
            "numberOfInProgressThings": self.in_progress,
            "numberOfRemovedThings": self.removed,
            "numberOfTimedOutThings": self.timed_out,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const PREFIX: &str = "arn:aws:iot:eu-west-1:123456789012:";

    fn create(body: serde_json::Value) -> Result<Job, JobError> {
        let request: CreateJob = serde_json::from_value(body).unwrap();
        request.into_job("rotate-job-01", PREFIX, 1_000)
    }

    #[test]
    fn the_scenarios_rotation_job_is_accepted() {
        let job = create(json!({
            "targets": [format!("{PREFIX}thing/canary-1")],
            "document": r#"{"operation": "rotate-cert", "url": "${aws:iot:s3-presigned-url:https://s3.amazonaws.com/iot-webinar-audits/jobs/certs/certificate.pem.crt}"}"#,
            "description": "example cert rotation job",
            "targetSelection": "SNAPSHOT",
            "presignedUrlConfig": {"roleArn": "arn:aws:iam::123456789012:role/jobs", "expiresInSec": 300}
        }))
        .unwrap();
        assert_eq!(job.status, JobStatus::InProgress);
        assert_eq!(job.target_selection, TargetSelection::Snapshot);
        assert_eq!(job.presigned_url_config.unwrap().expires_in_secs(), 300);
        assert_eq!(
            target(&job.targets[0], PREFIX),
            Ok(Target::Thing("canary-1".into()))
        );
    }

    #[test]
    fn bad_requests_say_what_to_fix() {
        let thing = format!("{PREFIX}thing/t");
        let cases = [
            (json!({"targets": [], "document": "{}"}), "targets"),
            (
                json!({"targets": ["arn:aws:iot:us-east-1:1:thing/t"], "document": "{}"}),
                "not a thing or thing group ARN",
            ),
            (
                json!({"targets": [thing], "document": "{"}),
                "not valid JSON",
            ),
            (json!({"targets": [thing]}), "exactly one of document"),
            (
                json!({"targets": [thing], "document": "{}", "presignedUrlConfig": {"expiresInSec": 30}}),
                "expiresInSec",
            ),
            (
                json!({"targets": [thing], "document": "{}", "timeoutConfig": {"inProgressTimeoutInMinutes": 0}}),
                "inProgressTimeoutInMinutes",
            ),
            (
                json!({"targets": [thing], "document": "{}", "jobExecutionsRetryConfig": {"criteriaList": [{"failureType": "TIMED_OUT", "numberOfRetries": 1}]}}),
                "needs a timeoutConfig",
            ),
            (
                json!({"targets": [thing], "document": "{}", "jobExecutionsRetryConfig": {"criteriaList": [{"failureType": "FAILED", "numberOfRetries": 11}]}}),
                "at most 10",
            ),
            (
                json!({"targets": [thing], "document": "{}", "abortConfig": {"criteriaList": [{"failureType": "FAILED", "action": "STOP", "thresholdPercentage": 10, "minNumberOfExecutedThings": 1}]}}),
                "CANCEL",
            ),
            (
                json!({"targets": [thing], "document": "{}", "jobExecutionsRolloutConfig": {"exponentialRate": {"baseRatePerMinute": 5, "incrementFactor": 1.25, "rateIncreaseCriteria": {"numberOfNotifiedThings": 2}}}}),
                "one decimal",
            ),
            (
                json!({"targets": [thing], "document": "{}", "jobTemplateArn": "arn:x"}),
                "not supported",
            ),
        ];
        for (body, says) in cases {
            let err = create(body.clone()).unwrap_err();
            assert!(
                matches!(&err, JobError::InvalidRequest(m) if m.contains(says)),
                "{body} gave {err:?}, expected a message with '{says}'"
            );
        }
        let err = serde_json::from_value::<CreateJob>(json!({"targets": "x"})).unwrap_err();
        assert!(err.to_string().contains("sequence"));
    }

    #[test]
    fn an_exponential_rollout_grows_by_its_factor_up_to_its_maximum() {
        let config: RolloutConfig = serde_json::from_value(json!({
            "maximumPerMinute": 50,
            "exponentialRate": {"baseRatePerMinute": 10, "incrementFactor": 2.0,
                                "rateIncreaseCriteria": {"numberOfNotifiedThings": 5}}
        }))
        .unwrap();
        config.check().unwrap();
        assert_eq!(config.per_minute(0, 0), 10);
        assert_eq!(config.per_minute(4, 0), 10);
        assert_eq!(config.per_minute(5, 0), 20);
        assert_eq!(config.per_minute(10, 0), 40);
        assert_eq!(config.per_minute(15, 0), 50, "capped");
        assert_eq!(config.per_minute(u64::MAX, 0), 50);
        assert_eq!(RolloutConfig::default().per_minute(0, 0), MAX_PER_MINUTE);
        let fixed = RolloutConfig {
            maximum_per_minute: Some(10),
            exponential_rate: None,
        };
        assert_eq!(fixed.per_minute(500, 500), 10);
    }

    #[test]
    fn abort_fires_at_its_threshold_once_enough_have_run() {
        let config: AbortConfig = serde_json::from_value(json!({"criteriaList": [
            {"failureType": "FAILED", "action": "CANCEL", "thresholdPercentage": 50, "minNumberOfExecutedThings": 4}
        ]}))
        .unwrap();
        let mut details = ProcessDetails::default();
        details.add(ExecutionStatus::Failed, 3);
        assert!(!config.fires(&details), "only three executed");
        details.add(ExecutionStatus::Succeeded, 1);
        assert!(config.fires(&details), "3 of 4 failed");
        details.add(ExecutionStatus::Succeeded, 3);
        assert!(!config.fires(&details), "3 of 7 is under half");
        details.add(ExecutionStatus::Queued, 100);
        assert!(!config.fires(&details), "queued ones have not run");
    }

    #[test]
    fn retries_follow_their_own_criterion_else_all() {
        let config: RetryConfig = serde_json::from_value(json!({"criteriaList": [
            {"failureType": "FAILED", "numberOfRetries": 2},
            {"failureType": "ALL", "numberOfRetries": 1}
        ]}))
        .unwrap();
        config
            .check(Some(&TimeoutConfig {
                in_progress_timeout_in_minutes: Some(5),
            }))
            .unwrap();
        assert!(config.retries(ExecutionStatus::Failed, 0));
        assert!(config.retries(ExecutionStatus::Failed, 1));
        assert!(!config.retries(ExecutionStatus::Failed, 2));
        assert!(config.retries(ExecutionStatus::TimedOut, 0));
        assert!(!config.retries(ExecutionStatus::TimedOut, 1));
        assert!(!config.retries(ExecutionStatus::Rejected, 0));
    }

    #[test]
    fn cancel_and_delete_follow_the_jobs_status() {
        let mut job =
            create(json!({"targets": [format!("{PREFIX}thinggroup/fleet")], "document": "{}"}))
                .unwrap();
        job.check_delete(false).unwrap_err();
        job.check_delete(true).unwrap();
        let bad = job.cancel(false, Some("lower".into()), None, 2_000);
        assert!(matches!(bad, Err(JobError::InvalidRequest(_))));
        assert_eq!(job.status, JobStatus::InProgress);
        job.cancel(
            false,
            Some("USER_CANCELED".into()),
            Some("why".into()),
            2_000,
        )
        .unwrap();
        assert_eq!(job.status, JobStatus::Canceled);
        assert!(!job.force_canceled);
        assert!(matches!(
            job.cancel(false, None, None, 3_000),
            Err(JobError::InvalidStateTransition(_))
        ));
        job.cancel(true, None, None, 3_000).unwrap();
        assert!(job.force_canceled);
        assert_eq!(job.reason_code.as_deref(), Some("USER_CANCELED"));
        job.check_delete(false).unwrap();
    }

    #[test]
    fn a_snapshot_job_completes_when_every_execution_is_final() {
        let mut job =
            create(json!({"targets": [format!("{PREFIX}thing/t")], "document": "{}"})).unwrap();
        let mut details = ProcessDetails::default();
        details.add(ExecutionStatus::InProgress, 1);
        job.all_targets_queued = true;
        assert!(!job.complete_if_done(&details, 5));
        let mut done = ProcessDetails::default();
        done.add(ExecutionStatus::Succeeded, 1);
        job.all_targets_queued = false;
        assert!(
            !job.complete_if_done(&done, 5),
            "targets not all queued yet"
        );
        job.all_targets_queued = true;
        assert!(job.complete_if_done(&done, 5));
        assert_eq!(
            (job.status, job.completed_at),
            (JobStatus::Completed, Some(5))
        );
        let mut continuous = create(json!({"targets": [format!("{PREFIX}thing/t")], "document": "{}", "targetSelection": "CONTINUOUS"})).unwrap();
        continuous.all_targets_queued = true;
        assert!(
            !continuous.complete_if_done(&done, 5),
            "a continuous job never completes by itself"
        );
    }

    #[test]
    fn a_document_source_must_be_read_before_the_job_is_made() {
        let body = json!({"targets": [format!("{PREFIX}thing/t")], "documentSource": "https://s3.amazonaws.com/b-1/doc.json"});
        let request: CreateJob = serde_json::from_value(body).unwrap();
        let unread = request.clone().into_job("j", PREFIX, 1).unwrap_err();
        assert!(matches!(unread, JobError::InvalidRequest(m) if m.contains("must be read")));
        let job = request
            .with_source_document(r#"{"operation": "localScan"}"#.into())
            .into_job("j", PREFIX, 1)
            .unwrap();
        assert_eq!(job.document, r#"{"operation": "localScan"}"#);
        assert_eq!(
            job.document_source.as_deref(),
            Some("https://s3.amazonaws.com/b-1/doc.json")
        );
    }

    #[test]
    fn an_update_checks_everything_before_it_changes_anything() {
        let mut job =
            create(json!({"targets": [format!("{PREFIX}thing/t")], "document": "{}"})).unwrap();
        let before = job.clone();
        let settings =
            |body: serde_json::Value| -> JobSettings { serde_json::from_value(body).unwrap() };
        // A valid description beside a bad retry config: nothing changes.
        let bad = settings(
            json!({"description": "new", "jobExecutionsRetryConfig": {"criteriaList": [{"failureType": "TIMED_OUT", "numberOfRetries": 1}]}}),
        );
        assert!(
            matches!(job.update(bad, false, 5), Err(JobError::InvalidRequest(m)) if m.contains("timeoutConfig"))
        );
        assert_eq!(job, before);
        let timeout = settings(json!({"timeoutConfig": {"inProgressTimeoutInMinutes": 5}}));
        assert!(
            job.update(timeout.clone(), true, 5).is_err(),
            "an execution has started"
        );
        job.update(timeout, false, 5).unwrap();
        // Now the retry of time-outs has its timeout, from the job.
        let retry = settings(
            json!({"description": "retried", "jobExecutionsRetryConfig": {"criteriaList": [{"failureType": "TIMED_OUT", "numberOfRetries": 1}]}}),
        );
        job.update(retry, true, 6).unwrap();
        assert_eq!(job.description.as_deref(), Some("retried"));
        assert_eq!(
            job.in_progress_minutes(),
            Some(5),
            "kept: not in the update"
        );
        assert_eq!(job.last_updated_at, 6);
        job.cancel(false, None, None, 7).unwrap();
        assert!(job
            .update(settings(json!({"description": "late"})), false, 8)
            .is_err());
    }

    #[test]
    fn targets_are_added_to_continuous_jobs_only() {
        let mut snapshot =
            create(json!({"targets": [format!("{PREFIX}thing/t")], "document": "{}"})).unwrap();
        assert!(snapshot
            .add_targets(vec![format!("{PREFIX}thing/u")], PREFIX, 5)
            .is_err());
        let mut job = create(json!({"targets": [format!("{PREFIX}thing/t")], "document": "{}", "targetSelection": "CONTINUOUS"})).unwrap();
        job.add_targets(
            vec![format!("{PREFIX}thing/t"), format!("{PREFIX}thinggroup/g")],
            PREFIX,
            5,
        )
        .unwrap();
        assert_eq!(
            job.targets,
            [format!("{PREFIX}thing/t"), format!("{PREFIX}thinggroup/g")]
        );
        assert!(job
            .add_targets(vec!["arn:elsewhere".into()], PREFIX, 6)
            .is_err());
        let many: Vec<String> = (0..MAX_TARGETS)
            .map(|i| format!("{PREFIX}thing/x{i}"))
            .collect();
        assert!(job.add_targets(many, PREFIX, 7).is_err());
        assert_eq!(job.targets.len(), 2, "a refused addition changes nothing");
    }

    #[test]
    fn a_job_keeps_its_fields_through_storage() {
        let job = create(json!({"targets": [format!("{PREFIX}thing/t")], "document": "{}",
            "abortConfig": {"criteriaList": [{"failureType": "ALL", "action": "CANCEL", "thresholdPercentage": 12.5, "minNumberOfExecutedThings": 1}]}}))
        .unwrap();
        let stored = serde_json::to_string(&job).unwrap();
        assert_eq!(serde_json::from_str::<Job>(&stored).unwrap(), job);
    }
}
