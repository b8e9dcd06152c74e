//! Event log options and per-target levels (SQLite migration 0006).

use super::super::{begin_write, This, WriteOne};
use crate::error::{RegistryError, Result};
use crate::store::logging::{LoggingStore, StoredLoggingLevel, StoredLoggingOptions};
use async_trait::async_trait;
use sqlx::Row;

#[async_trait]
impl LoggingStore for This {
    async fn logging_options(&self) -> Result<Option<StoredLoggingOptions>> {
        let row = sqlx::query(
            "SELECT role_arn, default_log_level, disable_all_logs FROM v2_logging_options WHERE id = 1",
        )
        .fetch_optional(&self.read)
        .await?;
        Ok(row.map(|r| StoredLoggingOptions {
            role_arn: r.get("role_arn"),
            default_log_level: r.get("default_log_level"),
            disable_all_logs: r.get::<bool, _>("disable_all_logs"),
        }))
    }

    async fn put_logging_options(&self, options: &StoredLoggingOptions) -> Result<()> {
        sqlx::query(
            "INSERT INTO v2_logging_options (id, role_arn, default_log_level, disable_all_logs)
             VALUES (1, $1, $2, $3)
             ON CONFLICT (id) DO UPDATE SET role_arn = excluded.role_arn,
                 default_log_level = excluded.default_log_level,
                 disable_all_logs = excluded.disable_all_logs",
        )
        .bind(&options.role_arn)
        .bind(&options.default_log_level)
        .bind(options.disable_all_logs)
        .write_one(&self.write)
        .await?;
        Ok(())
    }

    async fn logging_levels(&self) -> Result<Vec<StoredLoggingLevel>> {
        let rows = sqlx::query(
            "SELECT target_type, target_name, log_level FROM v2_logging_levels
             ORDER BY target_type, target_name",
        )
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .iter()
            .map(|r| StoredLoggingLevel {
                target_type: r.get("target_type"),
                target_name: r.get("target_name"),
                log_level: r.get("log_level"),
            })
            .collect())
    }

    async fn put_logging_level(
        &self,
        level: &StoredLoggingLevel,
        max_targets: usize,
    ) -> Result<()> {
        let mut tx = begin_write(&self.write).await?;
        let exists: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM v2_logging_levels WHERE target_type = $1 AND target_name = $2",
        )
        .bind(&level.target_type)
        .bind(&level.target_name)
        .fetch_one(&mut *tx)
        .await?;
        if exists == 0 {
            let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM v2_logging_levels")
                .fetch_one(&mut *tx)
                .await?;
            if count as usize >= max_targets {
                return Err(RegistryError::LimitExceeded(format!(
                    "at most {max_targets} log targets may have a level"
                )));
            }
        }
        sqlx::query(
            "INSERT INTO v2_logging_levels (target_type, target_name, log_level) VALUES ($1, $2, $3)
             ON CONFLICT (target_type, target_name) DO UPDATE SET log_level = excluded.log_level",
        )
        .bind(&level.target_type)
        .bind(&level.target_name)
        .bind(&level.log_level)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_logging_level(&self, target_type: &str, target_name: &str) -> Result<bool> {
        let done = sqlx::query(
            "DELETE FROM v2_logging_levels WHERE target_type = $1 AND target_name = $2",
        )
        .bind(target_type)
        .bind(target_name)
        .write_one(&self.write)
        .await?;
        Ok(done.rows_affected() > 0)
    }
}
