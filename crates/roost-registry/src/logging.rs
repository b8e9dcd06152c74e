//! Event log settings: SetV2LoggingOptions and the per-target levels of
//! SetV2LoggingLevel, checked with `roost-eventlog` and kept in the store so
//! that they survive a restart.

use crate::error::{RegistryError, Result};
use crate::store::logging::{StoredLoggingLevel, StoredLoggingOptions};
use crate::Registry;
use roost_eventlog::{ConfigError, LogLevel, LogTarget, LoggingConfig, LoggingOptions};

/// Log targets that may have a level of their own (AWS's limit is per
/// account and region; this one bounds the table and every listing).
pub const MAX_LOG_TARGETS: usize = 1000;

impl From<ConfigError> for RegistryError {
    fn from(e: ConfigError) -> Self {
        RegistryError::InvalidRequest(e.to_string())
    }
}

fn stored_corrupt(what: &str, e: ConfigError) -> RegistryError {
    RegistryError::Internal(format!("a stored {what} does not read: {e}"))
}

impl Registry {
    /// The configuration to log with: the stored options (or `fallback`,
    /// the configuration file's, when none were ever set) and every stored
    /// level.
    pub async fn logging_config(&self, fallback: &LoggingOptions) -> Result<LoggingConfig> {
        let options = match self.store.logging_options().await? {
            Some(stored) => LoggingOptions {
                role_arn: stored.role_arn,
                default_log_level: stored
                    .default_log_level
                    .parse()
                    .map_err(|e| stored_corrupt("default log level", e))?,
                disable_all_logs: stored.disable_all_logs,
            },
            None => fallback.clone(),
        };
        let mut config = LoggingConfig::new(options);
        for stored in self.store.logging_levels().await? {
            let target = LogTarget::new(
                stored
                    .target_type
                    .parse()
                    .map_err(|e| stored_corrupt("log target", e))?,
                Some(&stored.target_name),
            )
            .map_err(|e| stored_corrupt("log target", e))?;
            let level = stored
                .log_level
                .parse()
                .map_err(|e| stored_corrupt("log level", e))?;
            config.set_level(target, level);
        }
        Ok(config)
    }

    pub async fn set_v2_logging_options(&self, options: &LoggingOptions) -> Result<()> {
        self.store
            .put_logging_options(&StoredLoggingOptions {
                role_arn: options.role_arn.clone(),
                default_log_level: options.default_log_level.as_str().to_owned(),
                disable_all_logs: options.disable_all_logs,
            })
            .await
    }

    pub async fn set_v2_logging_level(&self, target: &LogTarget, level: LogLevel) -> Result<()> {
        self.store
            .put_logging_level(
                &StoredLoggingLevel {
                    target_type: target.target_type.as_str().to_owned(),
                    target_name: target.target_name.clone(),
                    log_level: level.as_str().to_owned(),
                },
                MAX_LOG_TARGETS,
            )
            .await
    }

    /// Whether the target had a level.
    pub async fn delete_v2_logging_level(&self, target: &LogTarget) -> Result<bool> {
        self.store
            .delete_logging_level(target.target_type.as_str(), &target.target_name)
            .await
    }
}
