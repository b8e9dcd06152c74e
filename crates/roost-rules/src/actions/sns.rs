//! `sns`: publish the rule output to a Roost SNS topic; every confirmed
//! subscriber gets it (a mail, or an http POST). `messageFormat` RAW
//! (default) sends the output as text; JSON reads it as an SNS
//! `MessageStructure=json` document (`default`, optionally per-protocol
//! entries such as `email` or `https`). Mails are waited for, so a transient
//! SMTP failure retries the action; http deliveries retry on their own.

use super::{template, ActionError};
use crate::Shared;
use roost_notify::{Publication, PublishError};
use roost_registry::sns::MessageText;
use roost_sql::{Context, Output, SqlVersion, Template};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Raw,
    Json,
}

pub struct SnsAction {
    pub target_text: String,
    target: Template,
    format: Format,
}

impl SnsAction {
    pub fn parse(config: &Value, version: SqlVersion) -> Result<Self, String> {
        let target = template(config, "targetArn", version).map_err(|e| format!("sns.{e}"))?;
        // Recorded for compatibility; Roost does not assume roles.
        config
            .get("roleArn")
            .and_then(Value::as_str)
            .ok_or("sns.roleArn is required")?;
        let format = match config.get("messageFormat").and_then(Value::as_str) {
            None | Some("RAW") => Format::Raw,
            Some("JSON") => Format::Json,
            Some(other) => {
                return Err(format!(
                    "sns.messageFormat must be RAW or JSON, got '{other}'"
                ))
            }
        };
        Ok(Self {
            target_text: config["targetArn"].as_str().unwrap_or_default().to_string(),
            target,
            format,
        })
    }

    pub async fn execute(
        &self,
        shared: &Shared,
        output: &Output,
        payload: &[u8],
        ctx: &Context<'_>,
    ) -> Result<(), ActionError> {
        let Some(notifier) = &shared.config.sns else {
            return Err(ActionError::permanent(
                "SNS is not configured on this server",
            ));
        };
        let arn = self
            .target
            .render(payload, ctx)
            .map_err(|e| ActionError::permanent(format!("rendering the targetArn: {e}")))?;
        let text = String::from_utf8_lossy(&output.to_bytes()).into_owned();
        let message = match self.format {
            Format::Raw => MessageText::plain(text),
            Format::Json => MessageText::parse(&text, Some("json")).map_err(|e| {
                ActionError::permanent(format!("messageFormat JSON: the rule output: {e}"))
            })?,
        };
        let publication = Publication::new(message, None, Default::default());
        match notifier.publish(&arn, &publication).await {
            Ok(_) => Ok(()),
            Err(PublishError::Rejected(registry_error)) => Err(ActionError::permanent(format!(
                "Failed to publish to SNS topic {arn}: {registry_error}"
            ))),
            Err(PublishError::Mail(mail)) => {
                let message = format!("Failed to deliver SNS message to {arn}: {}", mail.message);
                Err(if mail.transient {
                    ActionError::transient(message)
                } else {
                    ActionError::permanent(message)
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        let ok = serde_json::json!({"targetArn": "arn:aws:sns:us-east-1:1:t", "roleArn": "arn:aws:iam::1:role/r"});
        let a = SnsAction::parse(&ok, SqlVersion::default()).unwrap();
        assert_eq!(a.format, Format::Raw);
        let bad = serde_json::json!({"targetArn": "x", "roleArn": "r", "messageFormat": "XML"});
        assert!(SnsAction::parse(&bad, SqlVersion::default()).is_err());
        assert!(SnsAction::parse(
            &serde_json::json!({"targetArn": "x"}),
            SqlVersion::default()
        )
        .is_err());
    }
}
