//! One job execution and the changes it may go through (the reference's
//! section 4.5): the device moves it to IN_PROGRESS and on to SUCCEEDED,
//! FAILED or REJECTED; the service queues, cancels, times out, removes and
//! retries it. Every accepted change raises `version_number` by one (the
//! service's changes too, so a device holding an old version learns of
//! them); every refused change leaves the execution as it was.
//!
//! Times are Unix milliseconds, passed in: this module never reads a clock.

use crate::{ErrorCode, ExecutionStatus};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One minute in the unit of this crate's times.
pub const MINUTE_MS: i64 = 60_000;

/// A device's `statusDetails`: string keys to string values, at most ten
/// (checked where requests are read, [`crate::request`]).
pub type StatusDetails = BTreeMap<String, String>;

/// `stepTimeoutInMinutes`: a new step timer, or -1 to cancel the current one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepTimeout {
    Minutes(u32),
    Cancel,
}

/// A device's UpdateJobExecution, as far as the execution is concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Update {
    pub status: ExecutionStatus,
    /// Replaces the stored details when present; kept when absent.
    pub status_details: Option<StatusDetails>,
    pub expected_version: Option<u64>,
    pub step_timeout: Option<StepTimeout>,
}

impl Default for Update {
    /// An IN_PROGRESS update that changes nothing else.
    fn default() -> Self {
        Self {
            status: ExecutionStatus::InProgress,
            status_details: None,
            expected_version: None,
            step_timeout: None,
        }
    }
}

/// Why a change was refused; [`TransitionError::code`] is the code the
/// device is answered with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("status {0} can only be set by the service; a device sets IN_PROGRESS, SUCCEEDED, FAILED or REJECTED")]
    NotSetByDevice(ExecutionStatus),
    #[error("the job execution is {from}: it cannot become {to}")]
    InvalidTransition {
        from: ExecutionStatus,
        to: ExecutionStatus,
    },
    #[error("expected version {expected}, but the job execution is at version {current}")]
    VersionMismatch { expected: u64, current: u64 },
    #[error("the job execution is IN_PROGRESS: it can be canceled only with force")]
    NeedsForce,
}

impl TransitionError {
    pub fn code(&self) -> ErrorCode {
        match self {
            TransitionError::NotSetByDevice(_) => ErrorCode::InvalidRequest,
            TransitionError::InvalidTransition { .. } | TransitionError::NeedsForce => {
                ErrorCode::InvalidStateTransition
            }
            TransitionError::VersionMismatch { .. } => ErrorCode::VersionMismatch,
        }
    }
}

/// One execution of one job on one thing. Stored as its JSON (serde).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Execution {
    pub job_id: String,
    pub thing_name: String,
    /// Which execution of this job on this thing: 1 for the first.
    pub execution_number: u64,
    pub status: ExecutionStatus,
    pub status_details: StatusDetails,
    pub queued_at: i64,
    pub started_at: Option<i64>,
    pub last_updated_at: i64,
    /// The optimistic-lock counter: 1 when queued.
    pub version_number: u64,
    /// How many times a failed or timed-out attempt was queued again.
    pub retry_attempt: u32,
    /// Canceled with `force`.
    pub force_canceled: bool,
    /// When the in-progress timer fires: set when the execution starts,
    /// never changed after.
    pub in_progress_deadline: Option<i64>,
    /// When the current step timer fires. The execution times out at the
    /// earlier of the two ([`Execution::deadline`]), so a step timer never
    /// extends the in-progress one.
    pub step_deadline: Option<i64>,
}

impl Execution {
    /// A new execution, QUEUED at `now`.
    pub fn queued(
        job_id: impl Into<String>,
        thing_name: impl Into<String>,
        execution_number: u64,
        now: i64,
    ) -> Self {
        Self {
            job_id: job_id.into(),
            thing_name: thing_name.into(),
            execution_number,
            status: ExecutionStatus::Queued,
            status_details: StatusDetails::new(),
            queued_at: now,
            started_at: None,
            last_updated_at: now,
            version_number: 1,
            retry_attempt: 0,
            force_canceled: false,
            in_progress_deadline: None,
            step_deadline: None,
        }
    }

    /// When it times out if nothing else happens first.
    pub fn deadline(&self) -> Option<i64> {
        match (self.in_progress_deadline, self.step_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// `approximateSecondsBeforeTimedOut`: only while a timer runs.
    pub fn seconds_before_timed_out(&self, now: i64) -> Option<i64> {
        if self.status.is_terminal() {
            return None;
        }
        self.deadline()
            .map(|at| (at.saturating_sub(now) / 1000).max(0))
    }

    /// StartNextPendingJobExecution on this execution (the next one): a
    /// QUEUED execution starts, with `status_details` if given; an
    /// IN_PROGRESS one keeps its details and only takes the step timer.
    pub fn start(
        &mut self,
        status_details: Option<StatusDetails>,
        step_timeout: Option<StepTimeout>,
        in_progress_minutes: Option<u32>,
        now: i64,
    ) -> Result<(), TransitionError> {
        match self.status {
            ExecutionStatus::Queued => {
                self.begin(in_progress_minutes, now);
                if let Some(details) = status_details {
                    self.status_details = details;
                }
            }
            ExecutionStatus::InProgress if step_timeout.is_none() => return Ok(()),
            ExecutionStatus::InProgress => {}
            from => {
                return Err(TransitionError::InvalidTransition {
                    from,
                    to: ExecutionStatus::InProgress,
                })
            }
        }
        self.set_step(step_timeout, now);
        self.touch(now);
        Ok(())
    }

    /// UpdateJobExecution from the device.
    pub fn update(
        &mut self,
        update: &Update,
        in_progress_minutes: Option<u32>,
        now: i64,
    ) -> Result<(), TransitionError> {
        if !update.status.is_set_by_device() {
            return Err(TransitionError::NotSetByDevice(update.status));
        }
        if self.status.is_terminal() {
            return Err(TransitionError::InvalidTransition {
                from: self.status,
                to: update.status,
            });
        }
        self.check_version(update.expected_version)?;
        if self.status == ExecutionStatus::Queued && update.status == ExecutionStatus::InProgress {
            self.begin(in_progress_minutes, now);
        }
        if let Some(details) = &update.status_details {
            self.status_details = details.clone();
        }
        if update.status.is_terminal() {
            self.stop_timers();
        } else {
            self.set_step(update.step_timeout, now);
        }
        self.status = update.status;
        self.touch(now);
        Ok(())
    }

    /// CancelJob / CancelJobExecution: a QUEUED execution is canceled; an
    /// IN_PROGRESS one only with `force`.
    pub fn cancel(
        &mut self,
        force: bool,
        expected_version: Option<u64>,
        now: i64,
    ) -> Result<(), TransitionError> {
        if self.status.is_terminal() {
            return Err(TransitionError::InvalidTransition {
                from: self.status,
                to: ExecutionStatus::Canceled,
            });
        }
        self.check_version(expected_version)?;
        if self.status == ExecutionStatus::InProgress && !force {
            return Err(TransitionError::NeedsForce);
        }
        self.force_canceled = force;
        self.finish(ExecutionStatus::Canceled, now);
        Ok(())
    }

    /// Times the execution out if it is IN_PROGRESS and its deadline has
    /// come; `true` when it did.
    pub fn time_out_if_due(&mut self, now: i64) -> bool {
        let due = self.status == ExecutionStatus::InProgress
            && self.deadline().is_some_and(|at| now >= at);
        if due {
            self.finish(ExecutionStatus::TimedOut, now);
        }
        due
    }

    /// The thing is no longer a target (it left the group of a continuous
    /// job, or was deleted): a pending execution becomes REMOVED. `true`
    /// when it did.
    pub fn remove(&mut self, now: i64) -> bool {
        if self.status.is_terminal() {
            return false;
        }
        self.finish(ExecutionStatus::Removed, now);
        true
    }

    /// A retry: a FAILED or TIMED_OUT execution is queued again as a new
    /// attempt (same execution number, `retry_attempt` one higher, fresh
    /// details and timers, at the back of the queue).
    pub fn requeue(&mut self, now: i64) -> Result<(), TransitionError> {
        if !matches!(
            self.status,
            ExecutionStatus::Failed | ExecutionStatus::TimedOut
        ) {
            return Err(TransitionError::InvalidTransition {
                from: self.status,
                to: ExecutionStatus::Queued,
            });
        }
        self.status = ExecutionStatus::Queued;
        self.retry_attempt += 1;
        self.status_details.clear();
        self.started_at = None;
        self.queued_at = now;
        self.stop_timers();
        self.touch(now);
        Ok(())
    }

    fn check_version(&self, expected: Option<u64>) -> Result<(), TransitionError> {
        match expected {
            Some(expected) if expected != self.version_number => {
                Err(TransitionError::VersionMismatch {
                    expected,
                    current: self.version_number,
                })
            }
            _ => Ok(()),
        }
    }

    fn begin(&mut self, in_progress_minutes: Option<u32>, now: i64) {
        self.status = ExecutionStatus::InProgress;
        self.started_at = Some(now);
        self.in_progress_deadline =
            in_progress_minutes.map(|m| now.saturating_add(i64::from(m) * MINUTE_MS));
    }

    fn set_step(&mut self, step: Option<StepTimeout>, now: i64) {
        match step {
            Some(StepTimeout::Minutes(m)) => {
                self.step_deadline = Some(now.saturating_add(i64::from(m) * MINUTE_MS));
            }
            Some(StepTimeout::Cancel) => self.step_deadline = None,
            None => {}
        }
    }

    fn stop_timers(&mut self) {
        self.in_progress_deadline = None;
        self.step_deadline = None;
    }

    fn finish(&mut self, status: ExecutionStatus, now: i64) {
        self.status = status;
        self.stop_timers();
        self.touch(now);
    }

    fn touch(&mut self, now: i64) {
        self.version_number += 1;
        self.last_updated_at = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ExecutionStatus::*;

    fn update(status: ExecutionStatus) -> Update {
        Update {
            status,
            ..Update::default()
        }
    }

    fn details(pairs: &[(&str, &str)]) -> StatusDetails {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn start_next_moves_a_queued_execution_to_in_progress_at_version_two() {
        let mut e = Execution::queued("job1", "thing", 1, 1_000);
        e.start(Some(details(&[("step", "download")])), None, None, 5_000)
            .unwrap();
        assert_eq!(e.status, InProgress);
        assert_eq!(e.version_number, 2);
        assert_eq!(e.started_at, Some(5_000));
        assert_eq!(e.last_updated_at, 5_000);
        assert_eq!(e.status_details, details(&[("step", "download")]));
        assert_eq!(e.deadline(), None);
    }

    #[test]
    fn start_next_on_an_in_progress_execution_keeps_its_details() {
        let mut e = Execution::queued("job1", "thing", 1, 0);
        e.start(Some(details(&[("a", "1")])), None, None, 10)
            .unwrap();
        let before = e.clone();
        e.start(Some(details(&[("b", "2")])), None, None, 20)
            .unwrap();
        assert_eq!(e, before, "nothing changes, not even the version");
        e.start(None, Some(StepTimeout::Minutes(5)), None, 30)
            .unwrap();
        assert_eq!(e.status_details, details(&[("a", "1")]));
        assert_eq!(e.step_deadline, Some(30 + 5 * MINUTE_MS));
        assert_eq!(e.version_number, 3);
    }

    #[test]
    fn updates_replace_details_only_when_given_and_raise_the_version() {
        let mut e = Execution::queued("job1", "thing", 1, 0);
        let mut u = update(InProgress);
        u.status_details = Some(details(&[("progress", "10%")]));
        e.update(&u, None, 10).unwrap();
        assert_eq!(e.version_number, 2);
        e.update(&update(InProgress), None, 20).unwrap();
        assert_eq!(e.status_details, details(&[("progress", "10%")]));
        assert_eq!(e.version_number, 3);
        assert_eq!(e.started_at, Some(10), "started once");
        let mut u = update(Succeeded);
        u.status_details = Some(details(&[("result", "ok")]));
        u.expected_version = Some(3);
        e.update(&u, None, 30).unwrap();
        assert_eq!(e.status, Succeeded);
        assert_eq!(e.status_details, details(&[("result", "ok")]));
        assert_eq!(e.version_number, 4);
    }

    #[test]
    fn a_queued_execution_may_go_straight_to_a_final_status() {
        for to in [Succeeded, Failed, Rejected] {
            let mut e = Execution::queued("job1", "thing", 1, 0);
            e.update(&update(to), None, 10).unwrap();
            assert_eq!(e.status, to);
            assert_eq!(e.started_at, None);
        }
    }

    #[test]
    fn the_device_cannot_set_the_services_statuses() {
        for to in [Queued, TimedOut, Removed, Canceled] {
            let mut e = Execution::queued("job1", "thing", 1, 0);
            let before = e.clone();
            let err = e.update(&update(to), None, 10).unwrap_err();
            assert_eq!(err, TransitionError::NotSetByDevice(to));
            assert_eq!(err.code(), ErrorCode::InvalidRequest);
            assert_eq!(e, before);
        }
    }

    #[test]
    fn a_final_execution_refuses_every_device_update() {
        for terminal in [Succeeded, Failed, Rejected, TimedOut, Removed, Canceled] {
            for to in [InProgress, Succeeded, Failed, Rejected] {
                let mut e = Execution::queued("job1", "thing", 1, 0);
                e.status = terminal;
                let before = e.clone();
                let err = e.update(&update(to), None, 10).unwrap_err();
                assert_eq!(err.code(), ErrorCode::InvalidStateTransition);
                assert_eq!(e, before);
                assert!(e.start(None, None, None, 10).is_err());
                assert_eq!(e, before);
            }
        }
    }

    #[test]
    fn a_stale_expected_version_is_a_version_mismatch() {
        let mut e = Execution::queued("job1", "thing", 1, 0);
        let mut u = update(InProgress);
        u.expected_version = Some(2);
        let err = e.update(&u, None, 10).unwrap_err();
        assert_eq!(
            err,
            TransitionError::VersionMismatch {
                expected: 2,
                current: 1
            }
        );
        assert_eq!(err.code(), ErrorCode::VersionMismatch);
        assert_eq!(e.version_number, 1);
        u.expected_version = Some(1);
        e.update(&u, None, 10).unwrap();
    }

    #[test]
    fn the_step_timer_never_outlasts_the_in_progress_timer() {
        let mut e = Execution::queued("job1", "thing", 1, 0);
        // 10 minutes in progress at most; a 60-minute step changes nothing.
        e.start(None, Some(StepTimeout::Minutes(60)), Some(10), 0)
            .unwrap();
        assert_eq!(e.deadline(), Some(10 * MINUTE_MS));
        assert_eq!(e.seconds_before_timed_out(MINUTE_MS), Some(540));
        // A shorter step comes first; -1 cancels it again.
        let mut u = update(InProgress);
        u.step_timeout = Some(StepTimeout::Minutes(2));
        e.update(&u, Some(10), MINUTE_MS).unwrap();
        assert_eq!(e.deadline(), Some(3 * MINUTE_MS));
        u.step_timeout = Some(StepTimeout::Cancel);
        e.update(&u, Some(10), 2 * MINUTE_MS).unwrap();
        assert_eq!(
            e.deadline(),
            Some(10 * MINUTE_MS),
            "the in-progress timer stays"
        );
    }

    #[test]
    fn an_execution_times_out_at_its_deadline_and_not_before() {
        let mut e = Execution::queued("job1", "thing", 1, 0);
        assert!(
            !e.time_out_if_due(i64::MAX),
            "a queued execution has no timer"
        );
        e.start(None, None, Some(1), 0).unwrap();
        assert!(!e.time_out_if_due(MINUTE_MS - 1));
        assert!(e.time_out_if_due(MINUTE_MS));
        assert_eq!(e.status, TimedOut);
        assert_eq!(e.version_number, 3);
        assert_eq!(e.seconds_before_timed_out(MINUTE_MS), None);
        assert!(!e.time_out_if_due(2 * MINUTE_MS), "once");
    }

    #[test]
    fn cancel_takes_queued_executions_and_in_progress_ones_only_with_force() {
        let mut queued = Execution::queued("job1", "thing", 1, 0);
        queued.cancel(false, None, 10).unwrap();
        assert_eq!((queued.status, queued.force_canceled), (Canceled, false));

        let mut running = Execution::queued("job1", "thing", 1, 0);
        running.start(None, None, None, 5).unwrap();
        let err = running.cancel(false, None, 10).unwrap_err();
        assert_eq!(err, TransitionError::NeedsForce);
        assert_eq!(running.status, InProgress);
        assert_eq!(
            running.cancel(true, Some(1), 10).unwrap_err().code(),
            ErrorCode::VersionMismatch
        );
        running.cancel(true, Some(2), 10).unwrap();
        assert_eq!((running.status, running.force_canceled), (Canceled, true));
        // The device learns of it at its next update.
        let err = running.update(&update(Succeeded), None, 20).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidStateTransition);
        assert!(running.cancel(true, None, 30).is_err(), "already final");
    }

    #[test]
    fn removal_ends_pending_executions_only() {
        let mut e = Execution::queued("job1", "thing", 1, 0);
        assert!(e.remove(10));
        assert_eq!(e.status, Removed);
        assert!(!e.remove(20));
        assert_eq!(e.version_number, 2);
    }

    #[test]
    fn a_retry_queues_a_failed_or_timed_out_attempt_again() {
        let mut e = Execution::queued("job1", "thing", 1, 0);
        e.start(Some(details(&[("a", "b")])), None, Some(5), 10)
            .unwrap();
        e.update(&update(Failed), None, 20).unwrap();
        e.requeue(30).unwrap();
        assert_eq!(e.status, Queued);
        assert_eq!(e.retry_attempt, 1);
        assert_eq!(e.execution_number, 1);
        assert_eq!(e.queued_at, 30);
        assert_eq!((e.started_at, e.deadline()), (None, None));
        assert!(e.status_details.is_empty());
        for never in [Rejected, Removed, Canceled, Succeeded, Queued, InProgress] {
            let mut other = Execution::queued("job1", "thing", 1, 0);
            other.status = never;
            assert!(other.requeue(10).is_err(), "{never} is never retried");
        }
    }
}
