//! HTTP/HTTPS delivery: one POST per message to the subscribed URL, with
//! SNS's headers, retried with backoff on a non-2xx answer, a timeout or a
//! connection failure.
//!
//! Policy (every bound named here): each attempt may take
//! [`ATTEMPT_TIMEOUT`]; a message is tried [`MAX_ATTEMPTS`] times, waiting
//! [`FIRST_RETRY_DELAY`] before the first retry and doubling it after each.
//! Redirects are not followed (a 3xx is a failed attempt). URLs are logged
//! without user info or query, which may hold credentials.

use std::time::Duration;

/// How long one POST may take, connection included.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long connecting may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Tries per message: the first POST and three retries.
pub const MAX_ATTEMPTS: u32 = 4;
/// The wait before the first retry; doubled before each later one.
pub const FIRST_RETRY_DELAY: Duration = Duration::from_secs(1);

/// What SNS sends as its `User-Agent`.
pub const USER_AGENT: &str = "Amazon Simple Notification Service Agent";
/// SNS's `Content-Type`, even for JSON bodies.
pub const CONTENT_TYPE: &str = "text/plain; charset=UTF-8";

/// One POST to make. (No `Debug`: the URL and body may carry a
/// confirmation token.)
#[derive(Clone)]
pub struct Post {
    pub url: String,
    /// [`CONTENT_TYPE`] for SNS's messages.
    pub content_type: &'static str,
    /// The `x-amz-sns-*` (or `x-amz-rules-engine-*`) headers.
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

/// Builds the HTTP client: rustls with the system's roots plus `extra_ca_pem`
/// (PEM certificates, for receivers behind a private CA).
pub fn client(extra_ca_pem: Option<&[u8]>) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(ATTEMPT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none());
    if let Some(pem) = extra_ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| format!("reading the subscribers' CA file: {e}"))?;
        if certs.is_empty() {
            return Err("the subscribers' CA file holds no PEM certificate".into());
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .build()
        .map_err(|e| format!("building the HTTP client: {e}"))
}

/// One attempt: Ok on any 2xx.
pub async fn attempt(client: &reqwest::Client, post: &Post) -> Result<(), String> {
    let mut request = client
        .post(&post.url)
        .header("content-type", post.content_type);
    for (name, value) in &post.headers {
        request = request.header(*name, value);
    }
    let response = request.body(post.body.clone()).send().await.map_err(|e| {
        // reqwest's message names the URL; ours is shown redacted instead.
        let cause = if e.is_timeout() {
            "timed out".to_string()
        } else if e.is_connect() {
            "could not connect".to_string()
        } else {
            e.without_url().to_string()
        };
        format!("POST {} failed: {cause}", redacted(&post.url))
    })?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("POST {} answered {status}", redacted(&post.url)))
    }
}

/// The wait before retry number `retry` (1-based).
pub fn retry_delay(retry: u32) -> Duration {
    FIRST_RETRY_DELAY * 2u32.saturating_pow(retry.saturating_sub(1))
}

/// A URL as logs may show it: scheme, host, port and path only.
pub fn redacted(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => format!(
            "{}://{}{}{}",
            u.scheme(),
            u.host_str().unwrap_or(""),
            u.port().map(|p| format!(":{p}")).unwrap_or_default(),
            u.path()
        ),
        Err(_) => "<an invalid URL>".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redacted("https://user:secret@example.com:8443/hook?token=abc"),
            "https://example.com:8443/hook"
        );
        assert_eq!(redacted("http://127.0.0.1/"), "http://127.0.0.1/");
        assert_eq!(redacted("nope"), "<an invalid URL>");
    }

    #[test]
    fn backoff_doubles() {
        assert_eq!(retry_delay(1), FIRST_RETRY_DELAY);
        assert_eq!(retry_delay(2), FIRST_RETRY_DELAY * 2);
        assert_eq!(retry_delay(3), FIRST_RETRY_DELAY * 4);
    }

    #[test]
    fn a_bad_ca_file_is_refused() {
        assert!(client(Some(b"not pem")).is_err());
        assert!(client(None).is_ok());
    }
}
