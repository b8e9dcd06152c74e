//! The statuses of jobs and job executions, spelled as AWS spells them.

use serde::{Deserialize, Serialize};

/// Where one job execution stands (the reference's section 4.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecutionStatus {
    Queued,
    InProgress,
    Succeeded,
    Failed,
    TimedOut,
    Rejected,
    Removed,
    Canceled,
}

impl ExecutionStatus {
    pub const ALL: [ExecutionStatus; 8] = [
        ExecutionStatus::Queued,
        ExecutionStatus::InProgress,
        ExecutionStatus::Succeeded,
        ExecutionStatus::Failed,
        ExecutionStatus::TimedOut,
        ExecutionStatus::Rejected,
        ExecutionStatus::Removed,
        ExecutionStatus::Canceled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionStatus::Queued => "QUEUED",
            ExecutionStatus::InProgress => "IN_PROGRESS",
            ExecutionStatus::Succeeded => "SUCCEEDED",
            ExecutionStatus::Failed => "FAILED",
            ExecutionStatus::TimedOut => "TIMED_OUT",
            ExecutionStatus::Rejected => "REJECTED",
            ExecutionStatus::Removed => "REMOVED",
            ExecutionStatus::Canceled => "CANCELED",
        }
    }

    /// The status named exactly `name` (AWS's spelling, upper case).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// QUEUED and IN_PROGRESS are pending; every other status is final.
    pub fn is_terminal(self) -> bool {
        !matches!(self, ExecutionStatus::Queued | ExecutionStatus::InProgress)
    }

    /// The statuses a device may set; the others are the service's.
    pub fn is_set_by_device(self) -> bool {
        matches!(
            self,
            ExecutionStatus::InProgress
                | ExecutionStatus::Succeeded
                | ExecutionStatus::Failed
                | ExecutionStatus::Rejected
        )
    }
}

impl std::fmt::Display for ExecutionStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a job stands (the reference's section 4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobStatus {
    InProgress,
    Canceled,
    Completed,
    DeletionInProgress,
    Scheduled,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::InProgress => "IN_PROGRESS",
            JobStatus::Canceled => "CANCELED",
            JobStatus::Completed => "COMPLETED",
            JobStatus::DeletionInProgress => "DELETION_IN_PROGRESS",
            JobStatus::Scheduled => "SCHEDULED",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        [
            JobStatus::InProgress,
            JobStatus::Canceled,
            JobStatus::Completed,
            JobStatus::DeletionInProgress,
            JobStatus::Scheduled,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }
}

/// Whether a job targets the things its groups hold at creation only, or
/// also the things that join them later.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TargetSelection {
    #[default]
    Snapshot,
    Continuous,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_reads_back_from_its_name_and_serde_agrees() {
        for status in ExecutionStatus::ALL {
            assert_eq!(ExecutionStatus::parse(status.as_str()), Some(status));
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                serde_json::json!(status.as_str())
            );
        }
        assert_eq!(ExecutionStatus::parse("in_progress"), None);
        for status in [
            "IN_PROGRESS",
            "CANCELED",
            "COMPLETED",
            "DELETION_IN_PROGRESS",
            "SCHEDULED",
        ] {
            assert_eq!(JobStatus::parse(status).unwrap().as_str(), status);
        }
    }

    #[test]
    fn the_device_sets_four_statuses_and_two_are_pending() {
        let by_device: Vec<_> = ExecutionStatus::ALL
            .into_iter()
            .filter(|s| s.is_set_by_device())
            .collect();
        assert_eq!(
            by_device,
            [
                ExecutionStatus::InProgress,
                ExecutionStatus::Succeeded,
                ExecutionStatus::Failed,
                ExecutionStatus::Rejected
            ]
        );
        let pending: Vec<_> = ExecutionStatus::ALL
            .into_iter()
            .filter(|s| !s.is_terminal())
            .collect();
        assert_eq!(
            pending,
            [ExecutionStatus::Queued, ExecutionStatus::InProgress]
        );
    }
}
