//! Delivery of notification-topic (SNS) messages to subscribers: email over
//! SMTP, http/https POSTs, and the message signatures SNS puts on its JSON
//! documents; and of the confirmation messages of topic rule destinations
//! (`destination`), through the same bounded http deliveries.
//!
//! The [`Notifier`] is the one place deliveries go through: it bounds how
//! many sends run at once ([`MAX_CONCURRENT_SENDS`]) and how many
//! background deliveries (http messages, confirmation mails) may wait
//! ([`MAX_PENDING_DELIVERIES`]), counts what was
//! sent and what failed, and logs failures. It exists with or without an
//! SMTP server (http subscribers need none). It never decides who is
//! subscribed (that is the registry's) and never logs a confirmation token,
//! a password or a URL's query in full.
#![forbid(unsafe_code)]

pub mod destination;
pub mod envelope;
pub mod http;
pub mod mail;
pub mod signing;

use envelope::{Envelope, MessageType, Signed};
use mail::{MailError, Mailer, SmtpConfig};
use roost_registry::sns::{MessageAttribute, MessageText, SnsSubscription, SnsTopic};
use roost_registry::{Registry, RegistryError};
use signing::Signer;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{OnceCell, Semaphore};

/// Sends (mails and POST attempts) in flight at once, across all topics.
pub const MAX_CONCURRENT_SENDS: usize = 8;
/// Background deliveries accepted but not finished (http messages waiting
/// for a send slot or a retry, confirmation mails waiting for a send slot).
/// Past this, new ones are dropped, logged and counted as failed.
pub const MAX_PENDING_DELIVERIES: usize = 1024;

/// How the notifier is set up.
#[derive(Debug, Clone)]
pub struct NotifierConfig {
    /// `None`: email subscriptions work but every mail fails, saying why.
    pub smtp: Option<SmtpConfig>,
    /// The sender address of mails.
    pub smtp_from: String,
    /// Where confirm / unsubscribe links and SigningCertURL point
    /// (`http://host:port`, the API's address).
    pub base_url: String,
    /// Where the signing key and certificate are kept.
    pub data_dir: PathBuf,
    /// Extra CA certificates (PEM) trusted for https subscribers.
    pub subscriber_ca_pem: Option<Vec<u8>>,
}

/// Delivery counters.
#[derive(Debug, Default)]
pub struct Counters {
    pub mail_sent: AtomicU64,
    pub mail_failed: AtomicU64,
    /// http/https messages a subscriber accepted (2xx), retries included.
    pub http_sent: AtomicU64,
    /// http/https messages given up on (after the last retry, or dropped).
    pub http_failed: AtomicU64,
    /// Topic rule destination confirmations the confirmation URL accepted.
    pub destination_confirmations_sent: AtomicU64,
    /// Topic rule destination confirmations given up on (the destination
    /// goes to ERROR).
    pub destination_confirmations_failed: AtomicU64,
}

/// What a background http delivery is, for its counters and its log lines.
/// (No `Debug`: it holds a confirmation token.)
enum Delivery {
    /// An SNS message to an http/https subscriber.
    Sns { subscription: String },
    /// The confirmation message of a topic rule destination, with the token
    /// it carries (to tell the registry which challenge failed).
    Destination { arn: String, token: String },
}

/// Why a publish was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The registry refused it (no such topic, bad message): not worth a retry.
    #[error(transparent)]
    Rejected(#[from] RegistryError),
    /// A mail could not be sent (after every subscriber was tried).
    #[error("{}", .0.message)]
    Mail(MailError),
}

/// One published message as it is delivered: the same MessageId and
/// Timestamp for every subscriber and every retry.
#[derive(Clone, Debug)]
pub struct Publication {
    pub message_id: String,
    pub text: MessageText,
    pub subject: Option<String>,
    pub attributes: BTreeMap<String, MessageAttribute>,
    pub timestamp: String,
}

impl Publication {
    pub fn new(
        text: MessageText,
        subject: Option<String>,
        attributes: BTreeMap<String, MessageAttribute>,
    ) -> Self {
        Self {
            message_id: uuid::Uuid::new_v4().to_string(),
            text,
            subject,
            attributes,
            timestamp: envelope::timestamp(),
        }
    }
}

/// Delivers SNS messages. Shared as `Arc<Notifier>`.
pub struct Notifier {
    registry: Registry,
    mailer: Mailer,
    http: reqwest::Client,
    base_url: String,
    data_dir: PathBuf,
    /// Created (or loaded) the first time a message is signed.
    signer: OnceCell<Arc<Signer>>,
    permits: Arc<Semaphore>,
    pending: Arc<Semaphore>,
    pub counters: Counters,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("smtp", &self.mailer.configured())
            .field("from", self.mailer.sender())
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl Notifier {
    pub fn new(registry: Registry, config: NotifierConfig) -> Result<Self, String> {
        Ok(Self {
            registry,
            mailer: Mailer::new(config.smtp.as_ref(), &config.smtp_from)?,
            http: http::client(config.subscriber_ca_pem.as_deref())?,
            base_url: config.base_url.trim_end_matches('/').to_string(),
            data_dir: config.data_dir,
            signer: OnceCell::new(),
            permits: Arc::new(Semaphore::new(MAX_CONCURRENT_SENDS)),
            pending: Arc::new(Semaphore::new(MAX_PENDING_DELIVERIES)),
            counters: Counters::default(),
        })
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The link that confirms a subscription (the API's unsigned GET form),
    /// the topic ARN with literal colons as SNS writes it.
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

    /// The signer, loading or creating its key on a blocking thread the
    /// first time.
    async fn signer(&self) -> Result<Arc<Signer>, String> {
        self.signer
            .get_or_try_init(|| async {
                let dir = self.data_dir.clone();
                tokio::task::spawn_blocking(move || Signer::load_or_create(&dir))
                    .await
                    .map_err(|e| format!("message signing: {e}"))?
                    .map(Arc::new)
                    .map_err(|e| e.to_string())
            })
            .await
            .cloned()
    }

    /// The signing certificate's PEM when `file_name` is its published name.
    /// Never creates a key: before the first signed message (and with no key
    /// on disk) no certificate URL was ever handed out.
    pub async fn signing_certificate(&self, file_name: &str) -> Option<String> {
        if self.signer.get().is_none() && !self.data_dir.join(Signer::KEY_FILE).exists() {
            return None;
        }
        let signer = self.signer().await.ok()?;
        (signer.certificate_file_name() == file_name).then(|| signer.certificate_pem().to_string())
    }

    /// The signed JSON document, with the topic's SignatureVersion.
    async fn signed_json(&self, envelope: &Envelope, version: &str) -> Result<String, String> {
        let signer = self.signer().await?;
        let signature = signer.sign(version, &envelope.string_to_sign());
        let cert_url = format!("{}/{}", self.base_url, signer.certificate_file_name());
        Ok(envelope.to_json(Some(&Signed {
            version,
            signature: &signature,
            cert_url: &cert_url,
        })))
    }

    async fn send_mail(
        &self,
        from_name: &str,
        to: &str,
        subject: &str,
        body: String,
    ) -> Result<(), MailError> {
        let result = match self.permits.acquire().await {
            Ok(_permit) => self.mailer.send(from_name, to, subject, body).await,
            Err(_) => Err(MailError {
                transient: false,
                message: "the notifier is shut down".into(),
            }),
        };
        match &result {
            Ok(()) => {
                self.counters.mail_sent.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(to, subject, "mail sent");
            }
            Err(e) => {
                self.counters.mail_failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(to, subject, error = %e.message, transient = e.transient, "sending a mail failed");
            }
        }
        result
    }

    /// The POST of one message to an http subscriber, with SNS's headers.
    fn post(sub: &SnsSubscription, doc: &Envelope, body: String) -> http::Post {
        http::Post {
            url: sub.endpoint.clone(),
            content_type: http::CONTENT_TYPE,
            headers: vec![
                ("x-amz-sns-message-type", doc.kind.as_str().to_string()),
                ("x-amz-sns-message-id", doc.message_id.clone()),
                ("x-amz-sns-topic-arn", doc.topic_arn.clone()),
                ("x-amz-sns-subscription-arn", sub.arn.clone()),
            ],
            body,
        }
    }

    /// Signs `doc` (with `version`, or the topic's SignatureVersion) and
    /// POSTs it to an http subscriber in the background.
    fn spawn_signed_post(
        self: &Arc<Self>,
        sub: &SnsSubscription,
        doc: Envelope,
        version: Option<String>,
    ) {
        let (this, s) = (self.clone(), sub.clone());
        let delivery = Delivery::Sns {
            subscription: sub.arn.clone(),
        };
        // A refused delivery is counted and logged already.
        let _ = self.spawn_http(delivery, async move {
            let version = match version {
                Some(v) => v,
                None => this.signature_version(&doc.topic_arn).await,
            };
            let body = this.signed_json(&doc, &version).await?;
            Ok(Self::post(&s, &doc, body))
        });
    }

    /// Runs an http delivery in the background: `prepare` builds the POST
    /// (signing may load the key), then it is tried with retries. Refused,
    /// logged and counted (Err with the reason) when too many deliveries
    /// are waiting already.
    fn spawn_http<F>(self: &Arc<Self>, delivery: Delivery, prepare: F) -> Result<(), String>
    where
        F: std::future::Future<Output = Result<http::Post, String>> + Send + 'static,
    {
        let Ok(slot) = self.pending.clone().try_acquire_owned() else {
            let reason = "dropped: too many deliveries are waiting";
            match &delivery {
                Delivery::Sns { subscription } => {
                    self.counters.http_failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        subscription,
                        limit = MAX_PENDING_DELIVERIES,
                        "http delivery {reason}"
                    );
                }
                Delivery::Destination { arn, .. } => {
                    self.counters
                        .destination_confirmations_failed
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        arn,
                        limit = MAX_PENDING_DELIVERIES,
                        "destination confirmation {reason}"
                    );
                }
            }
            return Err(reason.into());
        };
        let this = self.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let result = match prepare.await {
                Ok(post) => this.post_with_retries(&post).await,
                Err(e) => Err(e),
            };
            this.delivered(delivery, result).await;
        });
        Ok(())
    }

    /// Counts and logs how a background http delivery ended; a destination
    /// whose confirmation never arrived goes to ERROR.
    async fn delivered(&self, delivery: Delivery, result: Result<(), String>) {
        let c = &self.counters;
        match (delivery, result) {
            (Delivery::Sns { .. }, Ok(())) => {
                c.http_sent.fetch_add(1, Ordering::Relaxed);
            }
            (Delivery::Sns { subscription }, Err(e)) => {
                c.http_failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(subscription, error = %e, "http delivery failed");
            }
            (Delivery::Destination { arn, .. }, Ok(())) => {
                c.destination_confirmations_sent
                    .fetch_add(1, Ordering::Relaxed);
                tracing::info!(arn, "topic rule destination confirmation delivered");
            }
            (Delivery::Destination { arn, token }, Err(e)) => {
                c.destination_confirmations_failed
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(arn, error = %e, "topic rule destination confirmation could not be delivered");
                if let Err(e) = self
                    .registry
                    .topic_rule_destination_unreachable(&arn, &token, &e)
                    .await
                {
                    tracing::error!(arn, error = %e, "recording the failed confirmation failed");
                }
            }
        }
    }

    /// Tries a POST up to [`http::MAX_ATTEMPTS`] times. A send slot is held
    /// only while a request is in flight, not while waiting to retry.
    async fn post_with_retries(&self, post: &http::Post) -> Result<(), String> {
        let mut attempt = 1;
        loop {
            let result = match self.permits.acquire().await {
                Ok(_permit) => http::attempt(&self.http, post).await,
                Err(_) => return Err("the notifier is shut down".into()),
            };
            match result {
                Ok(()) => {
                    tracing::debug!(url = %http::redacted(&post.url), attempt, "http message delivered");
                    return Ok(());
                }
                Err(e) if attempt >= http::MAX_ATTEMPTS => {
                    return Err(format!("{e} (after {attempt} attempts)"));
                }
                Err(e) => {
                    let delay = http::retry_delay(attempt);
                    tracing::info!(error = %e, attempt, retry_in_ms = delay.as_millis() as u64, "http delivery will be retried");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
            }
        }
    }

    /// Sends the confirmation message of a pending subscription, off the
    /// request path: a mail for email/email-json, a signed POST for http.
    pub fn send_confirmation(self: &Arc<Self>, sub: &SnsSubscription) {
        let topic_arn = self.registry.sns_topic_arn(&sub.topic_name);
        let link = self.confirm_url(&topic_arn, &sub.token);
        let doc = Envelope::subscription_confirmation(
            &topic_arn,
            &sub.token,
            link.clone(),
            envelope::timestamp(),
        );
        if sub.is_http() {
            self.spawn_signed_post(sub, doc, None);
            return;
        }
        let Ok(slot) = self.pending.clone().try_acquire_owned() else {
            self.counters.mail_failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                subscription = %sub.arn,
                limit = MAX_PENDING_DELIVERIES,
                "confirmation mail dropped: too many deliveries are waiting"
            );
            return;
        };
        let this = self.clone();
        let (json, to) = (sub.protocol == "email-json", sub.endpoint.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let body = if json {
                let version = this.signature_version(&doc.topic_arn).await;
                match this.signed_json(&doc, &version).await {
                    Ok(body) => body,
                    Err(e) => {
                        this.counters.mail_failed.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(to, error = %e, "sending a mail failed");
                        return;
                    }
                }
            } else {
                mail::confirmation_text(&topic_arn, &link)
            };
            let _ = this
                .send_mail(
                    mail::CONFIRMATION_SENDER,
                    &to,
                    mail::CONFIRMATION_SUBJECT,
                    body,
                )
                .await;
        });
    }

    /// Tells a removed http subscriber (SNS's UnsubscribeConfirmation, with a
    /// fresh token). Email subscribers get nothing, as in SNS.
    pub fn send_unsubscribe_confirmation(self: &Arc<Self>, sub: &SnsSubscription) {
        if !sub.is_http() {
            return;
        }
        let topic_arn = self.registry.sns_topic_arn(&sub.topic_name);
        let token = roost_registry::sns::new_token();
        let doc = Envelope::unsubscribe_confirmation(
            &topic_arn,
            &sub.arn,
            &token,
            self.confirm_url(&topic_arn, &token),
            envelope::timestamp(),
        );
        self.spawn_signed_post(sub, doc, None);
    }

    /// The topic's SignatureVersion; "1" when the topic is gone meanwhile.
    async fn signature_version(&self, topic_arn: &str) -> String {
        match self.registry.sns_topic(topic_arn).await {
            Ok(topic) => topic.signature_version().to_string(),
            Err(_) => "1".into(),
        }
    }

    /// Publishes to a topic (by ARN): checks the message, then delivers it
    /// to every confirmed subscriber ([`Notifier::deliver`]).
    pub async fn publish(
        self: &Arc<Self>,
        topic_arn: &str,
        publication: &Publication,
    ) -> Result<usize, PublishError> {
        let topic = self.registry.sns_topic(topic_arn).await?;
        roost_registry::sns::check_publish(
            &topic,
            &publication.text.default,
            publication.subject.as_deref(),
        )?;
        let subs = self.registry.sns_subscriptions(Some(topic_arn)).await?;
        self.deliver(&topic, &subs, publication)
            .await
            .map_err(PublishError::Mail)
    }

    /// Delivers one message to the confirmed subscribers among `subs`:
    /// http subscribers in the background (each with its retries), mails
    /// one after another, waiting for them. Returns how many subscribers
    /// were sent (or, for http, handed) the message, or the first mail
    /// failure once every subscriber was tried.
    pub async fn deliver(
        self: &Arc<Self>,
        topic: &SnsTopic,
        subs: &[SnsSubscription],
        publication: &Publication,
    ) -> Result<usize, MailError> {
        let topic_arn = self.registry.sns_topic_arn(&topic.name);
        let mut delivered = 0;
        let mut first_error = None;
        // One mail at a time per publish keeps a big topic from taking every
        // send slot; publishes still run side by side.
        for sub in subs.iter().filter(|s| s.confirmed) {
            let text = publication.text.for_protocol(&sub.protocol);
            let doc = Envelope {
                kind: MessageType::Notification,
                message_id: publication.message_id.clone(),
                topic_arn: topic_arn.clone(),
                message: text.to_string(),
                timestamp: publication.timestamp.clone(),
                subject: publication.subject.clone(),
                token: None,
                subscribe_url: None,
                unsubscribe_url: Some(self.unsubscribe_url(&sub.arn)),
                attributes: publication
                    .attributes
                    .iter()
                    .map(|(k, a)| (k.clone(), (a.data_type.clone(), a.value.clone())))
                    .collect(),
            };
            if sub.is_http() {
                self.deliver_http(sub, topic, doc);
                delivered += 1;
                continue;
            }
            let body = if sub.protocol == "email-json" {
                match self.signed_json(&doc, topic.signature_version()).await {
                    Ok(body) => body,
                    Err(e) => {
                        self.counters.mail_failed.fetch_add(1, Ordering::Relaxed);
                        first_error.get_or_insert(MailError {
                            transient: true,
                            message: e,
                        });
                        continue;
                    }
                }
            } else {
                mail::notification_text(text, doc.unsubscribe_url.as_deref().unwrap_or(""))
            };
            let from_name = topic.display_name().unwrap_or(mail::CONFIRMATION_SENDER);
            let subject = publication
                .subject
                .as_deref()
                .unwrap_or(mail::DEFAULT_SUBJECT);
            match self
                .send_mail(from_name, &sub.endpoint, subject, body)
                .await
            {
                Ok(()) => delivered += 1,
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(delivered),
        }
    }

    /// A Notification to an http subscriber: the signed JSON document, or
    /// with RawMessageDelivery the bare message (no attributes, unsigned).
    fn deliver_http(self: &Arc<Self>, sub: &SnsSubscription, topic: &SnsTopic, doc: Envelope) {
        if !sub.raw_message_delivery() {
            self.spawn_signed_post(sub, doc, Some(topic.signature_version().to_string()));
            return;
        }
        let mut post = Self::post(sub, &doc, doc.message.clone());
        post.headers.push(("x-amz-sns-rawdelivery", "true".into()));
        let delivery = Delivery::Sns {
            subscription: sub.arn.clone(),
        };
        // A refused delivery is counted and logged already.
        let _ = self.spawn_http(delivery, async move { Ok(post) });
    }
}
