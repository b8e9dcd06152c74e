//! The job being worked on, kept in the state directory (`job.json`,
//! replaced atomically) so that a canary killed in the middle of a job
//! resumes it, or fails it cleanly, when it comes back.

use super::protocol::{Report, ReportStatus};
use super::rotation::{self, Journal, Phase};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A job started this many times without an end (the canary died during
/// it each time) is reported FAILED instead of being tried again.
pub const MAX_STARTS: u32 = 3;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct JobState {
    pub job_id: String,
    #[serde(default)]
    pub execution_number: Option<u64>,
    /// How many times this canary started the job.
    pub starts: u32,
    /// A rotation's progress, while one runs.
    #[serde(default)]
    pub rotation: Option<Journal>,
    /// The outcome, decided and not yet acknowledged by the service.
    #[serde(default)]
    pub report: Option<Report>,
    /// A CSR rotation's key (PEM), made here and kept until the rotation
    /// ends, so that a restart asks for the same certificate. The file is
    /// 0600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csr_key: Option<String>,
}

impl JobState {
    pub fn new(job_id: &str, execution_number: Option<u64>) -> Self {
        Self {
            job_id: job_id.to_string(),
            execution_number,
            starts: 0,
            rotation: None,
            report: None,
            csr_key: None,
        }
    }

    /// After a restart: the report a rotation that had connected owes, or
    /// the failure of a job that keeps dying.
    pub fn settle_after_restart(&mut self) {
        if self.report.is_some() {
            return;
        }
        if let Some(j) = &self.rotation {
            if j.phase == Phase::Confirmed {
                self.report = Some(
                    Report::new(ReportStatus::Succeeded).detail("certificateId", &j.certificate_id),
                );
                return;
            }
        }
        if self.starts >= MAX_STARTS {
            self.report = Some(Report::new(ReportStatus::Failed).detail(
                "reason",
                format!(
                    "the canary stopped {} times while running this job; not trying again",
                    self.starts
                ),
            ));
        }
    }
}

/// Where the job state lives.
#[derive(Clone, Debug)]
pub struct Store {
    path: PathBuf,
}

impl Store {
    pub const FILE: &'static str = "job.json";

    pub fn new(state_dir: &Path) -> Self {
        Self {
            path: state_dir.join(Self::FILE),
        }
    }

    /// The job in progress, if any. A file that does not parse (written by
    /// a later version?) is set aside rather than blocking the agent.
    pub fn load(&self) -> std::io::Result<Option<JobState>> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        match serde_json::from_slice(&bytes) {
            Ok(state) => Ok(Some(state)),
            Err(e) => {
                let aside = self.path.with_extension("json.unreadable");
                tracing::error!(path = %self.path.display(), error = %e, "the job state does not parse; set aside");
                std::fs::rename(&self.path, aside)?;
                Ok(None)
            }
        }
    }

    pub fn save(&self, state: &JobState) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(state).map_err(std::io::Error::other)?;
        rotation::write_atomic(&self.path, &bytes, true)
    }

    pub fn clear(&self) -> std::io::Result<()> {
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_survives_a_restart_and_settles() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        assert_eq!(store.load().unwrap(), None);
        let mut s = JobState::new("rotate-1", Some(1));
        s.starts = 1;
        s.rotation = Some(Journal {
            phase: Phase::Confirmed,
            previous_certificate_id: "a".repeat(64),
            certificate_id: "b".repeat(64),
        });
        store.save(&s).unwrap();
        let mut back = store.load().unwrap().unwrap();
        assert_eq!(back, s);
        back.settle_after_restart();
        let report = back.report.unwrap();
        assert_eq!(report.status, ReportStatus::Succeeded);
        assert_eq!(report.details["certificateId"], "b".repeat(64));

        let mut dying = JobState::new("scan", None);
        dying.starts = MAX_STARTS;
        dying.settle_after_restart();
        assert_eq!(dying.report.unwrap().status, ReportStatus::Failed);

        std::fs::write(dir.path().join(Store::FILE), b"{broken").unwrap();
        assert_eq!(store.load().unwrap(), None);
        store.clear().unwrap();
    }
}
