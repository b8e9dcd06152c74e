//! `cloudwatchLogs`: append the payload as a log event to a Roost log group:
//! `<data-dir>/logs/<group>.log`, one JSON line per event.

use super::ActionError;
use crate::Shared;
use roost_sql::{Context, Output, SqlVersion};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

pub struct LogsAction {
    pub group: String,
}

impl LogsAction {
    pub fn parse(config: &Value, _version: SqlVersion) -> Result<Self, String> {
        let group = config
            .get("logGroupName")
            .and_then(Value::as_str)
            .ok_or("cloudwatchLogs.logGroupName is required")?;
        if group.is_empty()
            || group.len() > 512
            || !group
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-./#".contains(c))
            || group.contains("..")
        {
            return Err(format!("cloudwatchLogs.logGroupName '{group}' is not valid: 1-512 characters of a-z, A-Z, 0-9, '_', '-', '.', '/', '#'"));
        }
        Ok(Self {
            group: group.to_string(),
        })
    }

    pub async fn execute(
        &self,
        shared: &Shared,
        output: &Output,
        _payload: &[u8],
        ctx: &Context<'_>,
    ) -> Result<(), ActionError> {
        let file = shared.config.logs_dir.join(format!(
            "{}.log",
            self.group.trim_start_matches('/').replace('/', "_")
        ));
        let message = match output {
            Output::Json(v) => v.to_string(),
            Output::Bytes(_) => String::from_utf8_lossy(&output.to_bytes()).into_owned(),
        };
        let line = json!({ "timestamp": ctx.timestamp_ms, "message": message }).to_string() + "\n";
        super::private_dir_all(&shared.config.logs_dir)
            .await
            .map_err(|e| ActionError::transient(e.to_string()))?;
        let mut options = tokio::fs::OpenOptions::new();
        options.create(true).append(true);
        // Log events carry the devices' payloads: owner-only, like the objects.
        // (The mode applies when the file is created; an existing file keeps its own.)
        #[cfg(unix)]
        options.mode(0o600);
        let mut f = options
            .open(&file)
            .await
            .map_err(|e| ActionError::transient(e.to_string()))?;
        f.write_all(line.as_bytes())
            .await
            .map_err(|e| ActionError::transient(e.to_string()))?;
        f.flush()
            .await
            .map_err(|e| ActionError::transient(e.to_string()))
    }
}
