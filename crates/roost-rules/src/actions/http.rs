//! `http`: POST the payload to a URL. Retried on 429 and 5xx (as AWS).

use super::{template, ActionError};
use crate::Shared;
use roost_sql::{Context, Output, SqlVersion, Template};
use serde_json::Value;
use std::time::Duration;

pub struct HttpAction {
    pub url_text: String,
    url: Template,
    headers: Vec<(String, Template)>,
}

/// How long one HTTP action may take.
const TIMEOUT: Duration = Duration::from_secs(10);

impl HttpAction {
    pub fn parse(config: &Value, version: SqlVersion) -> Result<Self, String> {
        let url = template(config, "url", version).map_err(|e| format!("http.{e}"))?;
        let url_text = config["url"].as_str().unwrap_or_default().to_string();
        if !(url_text.starts_with("https://") || url_text.starts_with("http://")) {
            return Err(
                "http.url must start with https:// (or http:// for a local endpoint)".into(),
            );
        }
        if config.get("auth").is_some() {
            return Err("http.auth (SigV4 to AWS services) is not supported by Roost".into());
        }
        let mut headers = Vec::new();
        for h in config
            .get("headers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let key = h
                .get("key")
                .and_then(Value::as_str)
                .ok_or("http.headers[].key is required")?;
            headers.push((
                key.to_string(),
                template(h, "value", version).map_err(|e| format!("http.headers[].{e}"))?,
            ));
        }
        Ok(Self {
            url_text,
            url,
            headers,
        })
    }

    pub async fn execute(
        &self,
        shared: &Shared,
        output: &Output,
        payload: &[u8],
        ctx: &Context<'_>,
    ) -> Result<(), ActionError> {
        let url = self
            .url
            .render(payload, ctx)
            .map_err(|e| ActionError::permanent(format!("rendering the url: {e}")))?;
        let content_type = output.content_type();
        let mut request = shared
            .http
            .post(&url)
            .timeout(TIMEOUT)
            .header("content-type", content_type);
        for (key, value) in &self.headers {
            let value = value
                .render(payload, ctx)
                .map_err(|e| ActionError::permanent(format!("rendering header {key}: {e}")))?;
            request = request.header(key.as_str(), value);
        }
        let response = request
            .body(output.to_bytes())
            .send()
            .await
            .map_err(|e| ActionError::transient(format!("POST {url} failed: {e}")))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else if status.as_u16() == 429 || status.is_server_error() {
            Err(ActionError::transient(format!(
                "POST {url} answered {status}"
            )))
        } else {
            Err(ActionError::permanent(format!(
                "POST {url} answered {status}"
            )))
        }
    }
}
