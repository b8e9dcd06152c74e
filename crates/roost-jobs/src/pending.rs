//! A thing's pending job executions (QUEUED and IN_PROGRESS): their
//! order, which one is next, and when `jobs/notify` and `jobs/notify-next`
//! must tell the device (the reference's section 5.7).
//!
//! The rule, from AWS's worked example: `notify` goes out when an
//! execution joins or leaves the pending list (not when one merely
//! starts or reports progress); `notify-next` when the identity of the
//! next execution changes (not its details). The caller takes the list
//! before and after a change and asks [`changes`].

use crate::execution::Execution;
use crate::ExecutionStatus;

/// Most executions one `jobs/notify` lists.
pub const MAX_LISTED: usize = 15;

/// What the pending lists say of one execution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    pub job_id: String,
    pub execution_number: u64,
    pub status: ExecutionStatus,
    pub queued_at: i64,
    pub started_at: Option<i64>,
    pub last_updated_at: i64,
    pub version_number: u64,
}

impl From<&Execution> for Summary {
    fn from(e: &Execution) -> Self {
        Self {
            job_id: e.job_id.clone(),
            execution_number: e.execution_number,
            status: e.status,
            queued_at: e.queued_at,
            started_at: e.started_at,
            last_updated_at: e.last_updated_at,
            version_number: e.version_number,
        }
    }
}

impl Summary {
    fn key(&self) -> (&str, u64) {
        (&self.job_id, self.execution_number)
    }
}

/// A thing's pending executions from any executions of it: IN_PROGRESS
/// first, then QUEUED, each oldest queued first (job id breaks ties).
pub fn pending<'a>(executions: impl IntoIterator<Item = &'a Execution>) -> Vec<Summary> {
    let mut pending: Vec<Summary> = executions
        .into_iter()
        .filter(|e| !e.status.is_terminal())
        .map(Summary::from)
        .collect();
    pending.sort_by(|a, b| {
        let rank = |s: &Summary| u8::from(s.status != ExecutionStatus::InProgress);
        (rank(a), a.queued_at, &a.job_id, a.execution_number).cmp(&(
            rank(b),
            b.queued_at,
            &b.job_id,
            b.execution_number,
        ))
    });
    pending
}

/// Which notifications a change of a thing's pending list calls for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Notifications {
    /// `jobs/notify`: an execution joined or left the list.
    pub list: bool,
    /// `jobs/notify-next`: another execution (or none) is next.
    pub next: bool,
}

/// Compares the pending list (as [`pending`] orders it) before and after
/// a change.
pub fn changes(before: &[Summary], after: &[Summary]) -> Notifications {
    let mut keys_before: Vec<_> = before.iter().map(Summary::key).collect();
    let mut keys_after: Vec<_> = after.iter().map(Summary::key).collect();
    keys_before.sort_unstable();
    keys_after.sort_unstable();
    Notifications {
        list: keys_before != keys_after,
        next: before.first().map(Summary::key) != after.first().map(Summary::key),
    }
}
