//! Email delivery for SNS topics over SMTP (lettre, rustls): the
//! subscription confirmation mail and notifications to confirmed email
//! subscribers. Sends are bounded by a semaphore; failures are logged and
//! counted. The SMTP password never reaches a log line.

use crate::error::{RegistryError, Result};
use crate::sns::{SnsSubscription, SnsTopic};
use crate::Registry;
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// lettre's address type, for callers checking a sender address.
pub mod lettre_address {
    pub use lettre::Address;
}

/// Mails being sent at once, across all topics.
pub const MAX_CONCURRENT_SENDS: usize = 8;
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain SMTP (local relays, tests).
    None,
    /// SMTP then STARTTLS (required).
    StartTls,
    /// TLS from the first byte (SMTPS).
    Tls,
}

/// `smtp://[user:pass@]host:port[?tls=none|starttls|tls]`.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub credentials: Option<(String, String)>,
}

// Hand-written so the password never reaches a log line.
impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("user", &self.credentials.as_ref().map(|(u, _)| u))
            .finish()
    }
}

fn decode(s: &str) -> std::result::Result<String, String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| "the SMTP URL's user or password is not valid percent-encoded UTF-8".into())
}

impl SmtpConfig {
    /// Parses an SMTP URL. Errors never contain the password.
    pub fn parse(url: &str) -> std::result::Result<Self, String> {
        let rest = url
            .strip_prefix("smtp://")
            .ok_or("the SMTP URL must start with smtp://")?;
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let credentials = match userinfo {
            Some(u) => {
                let (user, pass) = u
                    .split_once(':')
                    .ok_or("the SMTP URL's user info must be user:password")?;
                Some((decode(user)?, decode(pass)?))
            }
            None => None,
        };
        let mut tls = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("tls", "none")) => tls = Some(SmtpTls::None),
                Some(("tls", "starttls")) => tls = Some(SmtpTls::StartTls),
                Some(("tls", "tls")) => tls = Some(SmtpTls::Tls),
                _ => {
                    return Err(format!(
                        "unknown SMTP URL parameter '{pair}' (use tls=none|starttls|tls)"
                    ))
                }
            }
        }
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (
                h,
                Some(
                    p.parse::<u16>()
                        .map_err(|_| format!("the SMTP port '{p}' is not a port number"))?,
                ),
            ),
            None => (hostport, None),
        };
        if host.is_empty() {
            return Err("the SMTP URL needs a host".into());
        }
        let tls = tls.unwrap_or(SmtpTls::StartTls);
        let port = port.unwrap_or(match tls {
            SmtpTls::None => 25,
            SmtpTls::StartTls => 587,
            SmtpTls::Tls => 465,
        });
        Ok(Self {
            host: host.to_string(),
            port,
            tls,
            credentials,
        })
    }
}

/// A delivery failure: worth retrying (connection, 4xx) or not (5xx, bad address).
#[derive(Debug, Clone)]
pub struct MailError {
    pub transient: bool,
    pub message: String,
}

/// Delivery counters.
#[derive(Debug, Default)]
pub struct MailCounters {
    pub sent: AtomicU64,
    pub failed: AtomicU64,
}

/// Sends SNS mails. Cheap to share (`Arc`).
pub struct Notifier {
    registry: Registry,
    transport: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from_address: lettre::Address,
    /// Where confirm / unsubscribe links point (`http://host:port`).
    base_url: String,
    permits: Arc<tokio::sync::Semaphore>,
    pub counters: MailCounters,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("smtp", &self.transport.is_some())
            .field("from", &self.from_address)
            .field("base_url", &self.base_url)
            .finish()
    }
}

impl Notifier {
    /// `smtp: None` means no mail can be sent: subscriptions still work,
    /// every send fails (logged and counted).
    pub fn new(
        registry: Registry,
        smtp: Option<&SmtpConfig>,
        from: &str,
        base_url: &str,
    ) -> std::result::Result<Self, String> {
        let from_address: lettre::Address = from
            .parse()
            .map_err(|e| format!("the sender address '{from}' is not valid: {e}"))?;
        let transport = match smtp {
            None => None,
            Some(c) => {
                let mut builder = match c.tls {
                    SmtpTls::None => {
                        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&c.host)
                    }
                    SmtpTls::StartTls => {
                        AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&c.host)
                            .map_err(|e| format!("SMTP TLS setup: {e}"))?
                    }
                    SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&c.host)
                        .map_err(|e| format!("SMTP TLS setup: {e}"))?,
                };
                builder = builder.port(c.port).timeout(Some(SMTP_TIMEOUT));
                if let Some((user, pass)) = &c.credentials {
                    builder = builder.credentials(Credentials::new(user.clone(), pass.clone()));
                }
                Some(builder.build())
            }
        };
        Ok(Self {
            registry,
            transport,
            from_address,
            base_url: base_url.trim_end_matches('/').to_string(),
            permits: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_SENDS)),
            counters: MailCounters::default(),
        })
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The link that confirms a subscription (the API's unsigned GET form).
    pub fn confirm_url(&self, topic_arn: &str, token: &str) -> String {
        format!(
            "{}/?Action=ConfirmSubscription&TopicArn={topic_arn}&Token={token}",
            self.base_url
        )
    }

    pub fn unsubscribe_url(&self, subscription_arn: &str) -> String {
        format!(
            "{}/?Action=Unsubscribe&SubscriptionArn={subscription_arn}",
            self.base_url
        )
    }

    async fn send(
        &self,
        from_name: &str,
        to: &str,
        subject: &str,
        body: String,
    ) -> std::result::Result<(), MailError> {
        let result = self.send_inner(from_name, to, subject, body).await;
        match &result {
            Ok(()) => {
                self.counters.sent.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(to, subject, "mail sent");
            }
            Err(e) => {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(to, subject, error = %e.message, transient = e.transient, "sending a mail failed");
            }
        }
        result
    }

    async fn send_inner(
        &self,
        from_name: &str,
        to: &str,
        subject: &str,
        body: String,
    ) -> std::result::Result<(), MailError> {
        let permanent = |message: String| MailError {
            transient: false,
            message,
        };
        let Some(transport) = &self.transport else {
            return Err(permanent(
                "no SMTP server is configured (roost serve --smtp-url)".into(),
            ));
        };
        let to: lettre::Address = to
            .parse()
            .map_err(|e| permanent(format!("the address '{to}' is not valid: {e}")))?;
        let message = Message::builder()
            .from(Mailbox::new(
                Some(from_name.to_string()),
                self.from_address.clone(),
            ))
            .to(Mailbox::new(None, to))
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|e| permanent(format!("building the mail: {e}")))?;
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| permanent("the mailer is shut down".into()))?;
        transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| MailError {
                transient: !e.is_permanent(),
                message: format!("SMTP: {e}"),
            })
    }

    /// Sends the confirmation mail for a pending subscription, off the
    /// request path.
    pub fn send_confirmation(self: &Arc<Self>, sub: &SnsSubscription) {
        let this = self.clone();
        let topic_arn = self.registry.sns_topic_arn(&sub.topic_name);
        let link = self.confirm_url(&topic_arn, &sub.token);
        let body = if sub.protocol == "email-json" {
            serde_json::to_string_pretty(&serde_json::json!({
                "Type": "SubscriptionConfirmation",
                "MessageId": uuid::Uuid::new_v4().to_string(),
                "Token": sub.token,
                "TopicArn": topic_arn,
                "Message": format!("You have chosen to subscribe to the topic {topic_arn}.\nTo confirm the subscription, visit the SubscribeURL included in this message."),
                "SubscribeURL": link,
                "Timestamp": timestamp(),
            }))
            .unwrap_or_default()
        } else {
            format!(
                "You have chosen to subscribe to the topic: \n{topic_arn}\n\n\
                 To confirm this subscription, click or visit the link below (If this was in error no action is necessary): \n\
                 {link}\n\n\
                 Please do not reply directly to this email. This message was sent by Roost.\n"
            )
        };
        let to = sub.endpoint.clone();
        tokio::spawn(async move {
            let _ = this
                .send(
                    "AWS Notifications",
                    &to,
                    "AWS Notification - Subscription Confirmation",
                    body,
                )
                .await;
        });
    }

    /// Publishes to a topic (by ARN), delivering to every confirmed
    /// subscriber and waiting for the sends. NotFound / InvalidParameter
    /// come back as `Err(Ok(registry error))`; a failed send as
    /// `Err(Err(mail error))` after every subscriber was tried.
    pub async fn publish(
        &self,
        topic_arn: &str,
        message: &str,
        subject: Option<&str>,
        message_id: &str,
    ) -> std::result::Result<usize, std::result::Result<RegistryError, MailError>> {
        let topic = self.registry.sns_topic(topic_arn).await.map_err(Ok)?;
        check_message(&topic, message, subject).map_err(Ok)?;
        let subs = self
            .registry
            .sns_subscriptions(Some(topic_arn))
            .await
            .map_err(Ok)?;
        self.deliver(&topic, &subs, message, subject, message_id)
            .await
            .map_err(Err)
    }

    /// Delivers one message to the confirmed subscribers among `subs`.
    pub async fn deliver(
        &self,
        topic: &SnsTopic,
        subs: &[SnsSubscription],
        message: &str,
        subject: Option<&str>,
        message_id: &str,
    ) -> std::result::Result<usize, MailError> {
        let topic_arn = self.registry.sns_topic_arn(&topic.name);
        let from_name = topic.display_name().unwrap_or("AWS Notifications");
        let subject_text = subject.unwrap_or("AWS Notification Message");
        let sends = subs.iter().filter(|s| s.confirmed).map(|sub| {
            let unsubscribe = self.unsubscribe_url(&sub.arn);
            let body = if sub.protocol == "email-json" {
                let mut doc = serde_json::json!({
                    "Type": "Notification",
                    "MessageId": message_id,
                    "TopicArn": topic_arn,
                    "Message": message,
                    "Timestamp": timestamp(),
                    "UnsubscribeURL": unsubscribe,
                });
                if let Some(s) = subject {
                    doc["Subject"] = serde_json::json!(s);
                }
                serde_json::to_string_pretty(&doc).unwrap_or_default()
            } else {
                format!(
                    "{message}\n\n--\nIf you wish to stop receiving notifications from this topic, please click or visit the link below to unsubscribe:\n{unsubscribe}\n\nPlease do not reply directly to this email. This message was sent by Roost.\n"
                )
            };
            self.send(from_name, &sub.endpoint, subject_text, body)
        });
        let results = one_after_another(sends).await;
        let mut delivered = 0;
        let mut first_error = None;
        for r in results {
            match r {
                Ok(()) => delivered += 1,
                Err(e) => {
                    if first_error.is_none() {
                        first_error = Some(e);
                    }
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(delivered),
        }
    }
}

/// Message checks of Publish: non-empty, within the topic's size limit,
/// a valid Subject.
pub fn check_message(topic: &SnsTopic, message: &str, subject: Option<&str>) -> Result<()> {
    if message.is_empty() {
        return Err(RegistryError::invalid("Invalid parameter: Empty message"));
    }
    let limit = topic
        .attributes
        .get("MaximumMessageSize")
        .and_then(|v| v.parse().ok())
        .unwrap_or(crate::sns::DEFAULT_MAX_MESSAGE_SIZE);
    if message.len() > limit {
        return Err(RegistryError::invalid(
            "Invalid parameter: Message too long",
        ));
    }
    if let Some(s) = subject {
        crate::sns::subject(s)?;
    }
    Ok(())
}

/// Runs the sends one after another and collects their results in order.
async fn one_after_another<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in futures {
        set.push(Box::pin(f));
    }
    let mut out = Vec::with_capacity(set.len());
    // One mail at a time per publish keeps a big topic from taking every
    // permit of the semaphore; publishes still run side by side.
    for f in set {
        out.push(f.await);
    }
    out
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn timestamp() -> String {
    let now = time::OffsetDateTime::now_utc();
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    now.format(&fmt).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls() {
        let c = SmtpConfig::parse("smtp://127.0.0.1:2525?tls=none").unwrap();
        assert_eq!(
            (c.host.as_str(), c.port, c.tls),
            ("127.0.0.1", 2525, SmtpTls::None)
        );
        assert!(c.credentials.is_none());
        let c = SmtpConfig::parse("smtp://me%40x.org:p%3Ass@mail.example.com").unwrap();
        assert_eq!(c.port, 587);
        assert_eq!(c.tls, SmtpTls::StartTls);
        assert_eq!(c.credentials, Some(("me@x.org".into(), "p:ss".into())));
        assert!(!format!("{c:?}").contains("p:ss"));
        assert!(SmtpConfig::parse("http://x").is_err());
        assert!(SmtpConfig::parse("smtp://x:99999").is_err());
        let e = SmtpConfig::parse("smtp://u:secret@h:1?tls=bogus").unwrap_err();
        assert!(!e.contains("secret"));
    }
}
