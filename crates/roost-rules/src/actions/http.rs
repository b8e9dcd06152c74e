//! `http`: POST the payload to a URL. Retried on 429 and 5xx (as AWS).
//!
//! Only to a URL a confirmed topic rule destination covers: the URL may be
//! a substitution template, so without that check a message could choose
//! where the rule sends data. As in AWS, a templated `url` needs a
//! `confirmationUrl` that is a prefix of it; without one the url itself is
//! the confirmation URL (and CreateTopicRule creates its destination).

use super::{template, ActionError};
use crate::Shared;
use roost_notify::http::redacted;
use roost_registry::destinations::{check_confirmation_url, covers};
use roost_sql::{Context, Output, SqlVersion, Template};
use serde_json::Value;
use std::time::Duration;
use url::Url;

pub struct HttpAction {
    pub url_text: String,
    url: Template,
    /// The action's `confirmationUrl`, or, when it has none, its url.
    confirmation: Template,
    /// The confirmation URL when it has no template: the destination
    /// CreateTopicRule makes sure exists.
    pub destination_url: Option<String>,
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
        let (confirmation_text, confirmation) = match config.get("confirmationUrl") {
            None | Some(Value::Null) if !url.is_constant() => {
                return Err(format!(
                    "http.url '{url_text}' holds a substitution template, so http.confirmationUrl is required: the URL of a topic rule destination that is a prefix of every URL the template can produce"
                ))
            }
            None | Some(Value::Null) => (url_text.clone(), url.clone()),
            Some(_) => (
                config["confirmationUrl"]
                    .as_str()
                    .ok_or("http.confirmationUrl must be a string")?
                    .to_string(),
                template(config, "confirmationUrl", version)
                    .map_err(|e| format!("http.{e}"))?,
            ),
        };
        // AWS's rule, on the texts as written.
        if !url_text.starts_with(&confirmation_text) {
            return Err(format!(
                "http.confirmationUrl '{confirmation_text}' must be a prefix of http.url '{url_text}'"
            ));
        }
        let destination_url = if confirmation.is_constant() {
            let parsed =
                check_confirmation_url(&confirmation_text).map_err(|e| format!("http.{e}"))?;
            // Both fixed: the url must lie under the prefix as it will be
            // checked when a message is sent, or the action could never send.
            if url.is_constant() && !Url::parse(&url_text).is_ok_and(|u| covers(&parsed, &u)) {
                return Err(format!(
                    "http.url '{url_text}' does not lie under http.confirmationUrl '{confirmation_text}' (the prefix must end at a '/', '?' or the end of the URL)"
                ));
            }
            Some(confirmation_text)
        } else {
            None
        };
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
            confirmation,
            destination_url,
            headers,
        })
    }

    /// The URL to POST to, once it is known to lie under the action's
    /// confirmation URL and under an ENABLED topic rule destination; a
    /// final failure (error action) otherwise, and nothing is sent. The
    /// parsed URL is what is sent, so the check sees what the server gets.
    async fn allowed_url(
        &self,
        shared: &Shared,
        payload: &[u8],
        ctx: &Context<'_>,
    ) -> Result<Url, ActionError> {
        let render = |t: &Template, what: &str| {
            t.render(payload, ctx)
                .map_err(|e| ActionError::permanent(format!("rendering the {what}: {e}")))
        };
        let text = render(&self.url, "url")?;
        let url = Url::parse(&text).map_err(|e| {
            ActionError::permanent(format!("the rendered url is not a valid URL: {e}"))
        })?;
        let confirmation = render(&self.confirmation, "confirmationUrl")?;
        if !Url::parse(&confirmation).is_ok_and(|c| covers(&c, &url)) {
            return Err(ActionError::permanent(format!(
                "not sent: the rendered url {} is not under the action's confirmationUrl {}",
                redacted(url.as_str()),
                redacted(&confirmation)
            )));
        }
        let allowed = shared.destinations.allows(&url).await.map_err(|e| {
            ActionError::transient(format!("reading the topic rule destinations: {e}"))
        })?;
        if !allowed {
            return Err(ActionError::permanent(format!(
                "not sent: no ENABLED topic rule destination covers {} (create one with CreateTopicRuleDestination and confirm it, or enable it with UpdateTopicRuleDestination)",
                redacted(url.as_str())
            )));
        }
        Ok(url)
    }

    pub async fn execute(
        &self,
        shared: &Shared,
        output: &Output,
        payload: &[u8],
        ctx: &Context<'_>,
    ) -> Result<(), ActionError> {
        let url = self.allowed_url(shared, payload, ctx).await?;
        let content_type = output.content_type();
        let mut request = shared
            .http
            .post(url.clone())
            .timeout(TIMEOUT)
            .header("content-type", content_type);
        for (key, value) in &self.headers {
            let value = value
                .render(payload, ctx)
                .map_err(|e| ActionError::permanent(format!("rendering header {key}: {e}")))?;
            request = request.header(key.as_str(), value);
        }
        let response = request.body(output.to_bytes()).send().await.map_err(|e| {
            // reqwest's error names the URL too: only its kind is kept.
            let kind = if e.is_timeout() {
                "timed out"
            } else if e.is_connect() {
                "could not connect"
            } else {
                "failed"
            };
            ActionError::transient(format!("POST {} {kind}", redacted(url.as_str())))
        })?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else if status.as_u16() == 429 || status.is_server_error() {
            Err(ActionError::transient(format!(
                "POST {} answered {status}",
                redacted(url.as_str())
            )))
        } else {
            Err(ActionError::permanent(format!(
                "POST {} answered {status}",
                redacted(url.as_str())
            )))
        }
    }
}
