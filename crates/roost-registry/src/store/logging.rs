//! The storage boundary for event log options and per-target levels
//! (SetV2LoggingOptions, SetV2LoggingLevel). Values are kept as AWS spells
//! them; the registry checks them with `roost-eventlog` before they get here.

use crate::error::Result;
use async_trait::async_trait;

/// The stored SetV2LoggingOptions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredLoggingOptions {
    pub role_arn: Option<String>,
    pub default_log_level: String,
    pub disable_all_logs: bool,
}

/// One stored per-target level.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredLoggingLevel {
    pub target_type: String,
    pub target_name: String,
    pub log_level: String,
}

#[async_trait]
pub trait LoggingStore {
    /// `None` until SetV2LoggingOptions was first called.
    async fn logging_options(&self) -> Result<Option<StoredLoggingOptions>>;
    async fn put_logging_options(&self, options: &StoredLoggingOptions) -> Result<()>;
    /// Every level, ordered by type and name (bounded by `put_logging_level`).
    async fn logging_levels(&self) -> Result<Vec<StoredLoggingLevel>>;
    /// Sets a target's level; a new target beyond `max_targets` is
    /// LimitExceeded (replacing one never is).
    async fn put_logging_level(&self, level: &StoredLoggingLevel, max_targets: usize)
        -> Result<()>;
    /// Whether the target had a level.
    async fn delete_logging_level(&self, target_type: &str, target_name: &str) -> Result<bool>;
}
