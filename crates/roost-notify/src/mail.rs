//! Email over SMTP (lettre, rustls): the transport, the sender address, and
//! the texts of the confirmation and notification mails. The SMTP password
//! never reaches a log line or an error message.

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::Duration;

/// lettre's address type, for callers checking a sender address.
pub use lettre::Address;

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

/// A delivery failure: worth retrying (connection, 4xx) or not (5xx, bad
/// address, no server).
#[derive(Debug, Clone)]
pub struct MailError {
    pub transient: bool,
    pub message: String,
}

impl MailError {
    fn permanent(message: impl Into<String>) -> Self {
        Self {
            transient: false,
            message: message.into(),
        }
    }
}

/// The SMTP side of the notifier: `None` transport when no server is
/// configured (every send then fails with a message saying so).
pub(crate) struct Mailer {
    transport: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from_address: Address,
}

impl Mailer {
    pub(crate) fn new(smtp: Option<&SmtpConfig>, from: &str) -> Result<Self, String> {
        let from_address: Address = from
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
            transport,
            from_address,
        })
    }

    pub(crate) fn configured(&self) -> bool {
        self.transport.is_some()
    }

    pub(crate) fn sender(&self) -> &Address {
        &self.from_address
    }

    /// Builds and sends one plain-text mail.
    pub(crate) async fn send(
        &self,
        from_name: &str,
        to: &str,
        subject: &str,
        body: String,
    ) -> Result<(), MailError> {
        let Some(transport) = &self.transport else {
            return Err(MailError::permanent(
                "no SMTP server is configured (roost serve --smtp-url)",
            ));
        };
        let to: Address = to
            .parse()
            .map_err(|e| MailError::permanent(format!("the address '{to}' is not valid: {e}")))?;
        let message = Message::builder()
            .from(Mailbox::new(
                Some(from_name.to_string()),
                self.from_address.clone(),
            ))
            .to(Mailbox::new(None, to))
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|e| MailError::permanent(format!("building the mail: {e}")))?;
        transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| MailError {
                transient: !e.is_permanent(),
                message: format!("SMTP: {e}"),
            })
    }
}

/// The sender name of confirmation mails (SNS's, whatever the topic).
pub(crate) const CONFIRMATION_SENDER: &str = "AWS Notifications";
pub(crate) const CONFIRMATION_SUBJECT: &str = "AWS Notification - Subscription Confirmation";
/// The subject of a notification published without one.
pub(crate) const DEFAULT_SUBJECT: &str = "AWS Notification Message";

/// The plain-text confirmation mail.
pub(crate) fn confirmation_text(topic_arn: &str, link: &str) -> String {
    format!(
        "You have chosen to subscribe to the topic: \n{topic_arn}\n\n\
         To confirm this subscription, click or visit the link below (If this was in error no action is necessary): \n\
         {link}\n\n\
         Please do not reply directly to this email. This message was sent by Roost.\n"
    )
}

/// The plain-text notification mail: the message, then the unsubscribe link.
pub(crate) fn notification_text(message: &str, unsubscribe_url: &str) -> String {
    format!(
        "{message}\n\n--\nIf you wish to stop receiving notifications from this topic, please click or visit the link below to unsubscribe:\n{unsubscribe_url}\n\nPlease do not reply directly to this email. This message was sent by Roost.\n"
    )
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
