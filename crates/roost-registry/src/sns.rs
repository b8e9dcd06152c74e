//! SNS-compatible notification topics and subscriptions: names, ARNs,
//! validation and AWS's semantics (idempotent CreateTopic, pending email
//! subscriptions confirmed by token, DeleteTopic removing subscriptions),
//! and what a published message is (its per-protocol texts, attributes).
//! Delivery (SMTP, HTTP, signatures) lives in the `roost-notify` crate; this
//! module never sends anything.

use crate::error::{RegistryError, Result};
use crate::model::*;
use crate::Registry;
use std::collections::BTreeMap;

/// A stored topic.
#[derive(Clone, Debug, PartialEq)]
pub struct SnsTopic {
    pub name: String,
    pub attributes: BTreeMap<String, String>,
    pub created_at: Millis,
}

impl SnsTopic {
    /// The topic's DisplayName, if set and not empty.
    pub fn display_name(&self) -> Option<&str> {
        self.attributes
            .get("DisplayName")
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }
}

/// A stored subscription. The ARN is assigned at Subscribe, even while the
/// subscription waits for confirmation.
#[derive(Clone, Debug, PartialEq)]
pub struct SnsSubscription {
    pub arn: String,
    pub topic_name: String,
    pub protocol: String,
    pub endpoint: String,
    /// The current confirmation token (hex).
    pub token: String,
    pub confirmed: bool,
    pub attributes: BTreeMap<String, String>,
    pub created_at: Millis,
}

/// Protocols Roost delivers to.
pub const PROTOCOLS: &[&str] = &["email", "email-json", "http", "https"];

/// The longest endpoint URL an http/https subscription may have.
pub const MAX_ENDPOINT_URL_LEN: usize = 2048;

impl SnsSubscription {
    /// Whether this subscriber gets HTTP POSTs (`http` or `https`).
    pub fn is_http(&self) -> bool {
        matches!(self.protocol.as_str(), "http" | "https")
    }

    /// `RawMessageDelivery=true`: notifications carry the bare message.
    pub fn raw_message_delivery(&self) -> bool {
        self.attributes
            .get("RawMessageDelivery")
            .is_some_and(|v| v == "true")
    }
}

impl SnsTopic {
    /// The topic's `SignatureVersion`: `"1"` (SHA-1, the default) or `"2"` (SHA-256).
    pub fn signature_version(&self) -> &str {
        match self.attributes.get("SignatureVersion").map(String::as_str) {
            Some("2") => "2",
            _ => "1",
        }
    }
}

/// A published message's text for each protocol: with
/// `MessageStructure=json` a JSON object whose string `default` entry every
/// protocol gets unless it has its own string entry (`email`, `http`, ...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageText {
    pub default: String,
    pub per_protocol: BTreeMap<String, String>,
}

impl MessageText {
    /// The same text for every protocol.
    pub fn plain(text: impl Into<String>) -> Self {
        Self {
            default: text.into(),
            per_protocol: BTreeMap::new(),
        }
    }

    /// Publish's `Message` under its `MessageStructure` (none or `json`).
    pub fn parse(message: &str, structure: Option<&str>) -> Result<Self> {
        match structure {
            None => Ok(Self::plain(message)),
            Some("json") => {
                let doc: serde_json::Map<String, serde_json::Value> = serde_json::from_str(message)
                    .map_err(|_| {
                        invalid("Message Structure - JSON message body failed to parse")
                    })?;
                let default = doc
                    .get("default")
                    .and_then(|v| v.as_str())
                    .ok_or_else(|| {
                        invalid("Message Structure - No default entry in JSON message body")
                    })?
                    .to_string();
                let per_protocol = doc
                    .iter()
                    .filter(|(k, _)| k.as_str() != "default")
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect();
                Ok(Self {
                    default,
                    per_protocol,
                })
            }
            Some(_) => Err(invalid("MessageStructure")),
        }
    }

    /// What a subscriber of `protocol` gets.
    pub fn for_protocol(&self, protocol: &str) -> &str {
        self.per_protocol
            .get(protocol)
            .map(String::as_str)
            .unwrap_or(&self.default)
    }
}

/// A Publish message attribute, as SNS's JSON envelopes show it: the
/// `DataType` and the `StringValue`, or the base64 of the `BinaryValue`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageAttribute {
    pub data_type: String,
    pub value: String,
}

/// Publish's message checks: non-empty, within the topic's size limit, a
/// valid Subject.
pub fn check_publish(topic: &SnsTopic, message: &str, subject: Option<&str>) -> Result<()> {
    if message.is_empty() {
        return Err(invalid("Empty message"));
    }
    let limit = topic
        .attributes
        .get("MaximumMessageSize")
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_MAX_MESSAGE_SIZE);
    if message.len() > limit {
        return Err(invalid("Message too long"));
    }
    if let Some(s) = subject {
        self::subject(s)?;
    }
    Ok(())
}

/// Topic attributes that may be set (CreateTopic, SetTopicAttributes).
const TOPIC_ATTRIBUTES: &[&str] = &[
    "DisplayName",
    "Policy",
    "DeliveryPolicy",
    "SignatureVersion",
    "TracingConfig",
    "KmsMasterKeyId",
    "MaximumMessageSize",
    "ApplicationSuccessFeedbackRoleArn",
    "ApplicationSuccessFeedbackSampleRate",
    "ApplicationFailureFeedbackRoleArn",
    "HTTPSuccessFeedbackRoleArn",
    "HTTPSuccessFeedbackSampleRate",
    "HTTPFailureFeedbackRoleArn",
    "LambdaSuccessFeedbackRoleArn",
    "LambdaSuccessFeedbackSampleRate",
    "LambdaFailureFeedbackRoleArn",
    "SQSSuccessFeedbackRoleArn",
    "SQSSuccessFeedbackSampleRate",
    "SQSFailureFeedbackRoleArn",
    "FirehoseSuccessFeedbackRoleArn",
    "FirehoseSuccessFeedbackSampleRate",
    "FirehoseFailureFeedbackRoleArn",
];

/// Subscription attributes that may be set.
const SUBSCRIPTION_ATTRIBUTES: &[&str] = &[
    "DeliveryPolicy",
    "FilterPolicy",
    "FilterPolicyScope",
    "RawMessageDelivery",
    "RedrivePolicy",
    "SubscriptionRoleArn",
    "ReplayPolicy",
];

/// The default message size limit (bytes).
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 262_144;

fn invalid(what: &str) -> RegistryError {
    RegistryError::invalid(format!("Invalid parameter: {what}"))
}

fn topic_missing() -> RegistryError {
    RegistryError::not_found("Topic does not exist")
}

/// Topic names: 1–256 of `[A-Za-z0-9_-]` (FIFO topics are not supported).
pub fn topic_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 256
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(invalid("Topic Name"));
    }
    Ok(())
}

/// A plausible email address: one `@`, non-empty local part and a dotted
/// or plain host, no spaces or control characters.
pub fn email_address(address: &str) -> bool {
    let Some((local, domain)) = address.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && address.len() <= 254
        && !domain.contains('@')
        && !address.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';' | '"')
        })
        && domain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
}

/// Publish's Subject: fewer than 100 characters, no line breaks or controls.
pub fn subject(subject: &str) -> Result<()> {
    if subject.is_empty() || subject.chars().count() >= 100 || subject.chars().any(char::is_control)
    {
        return Err(invalid("Subject"));
    }
    Ok(())
}

/// An http/https endpoint: an absolute URL of the subscription's scheme
/// with a host, no spaces or control characters. SNS's own messages.
pub fn http_endpoint(protocol: &str, endpoint: &str) -> Result<()> {
    if !endpoint
        .get(..protocol.len() + 3)
        .is_some_and(|p| p.eq_ignore_ascii_case(&format!("{protocol}://")))
    {
        return Err(invalid("Endpoint must match the specified protocol"));
    }
    let host = endpoint[protocol.len() + 3..]
        .split(['/', '?', '#'])
        .next()
        .unwrap_or("")
        .rsplit('@')
        .next()
        .unwrap_or("");
    if endpoint.len() > MAX_ENDPOINT_URL_LEN
        || host.is_empty()
        || host.starts_with(':')
        || endpoint
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(invalid("Endpoint Reason: not a valid URL"));
    }
    Ok(())
}

/// A fresh confirmation token: 32 random bytes, hex.
pub fn new_token() -> String {
    let bytes = [
        uuid::Uuid::new_v4().into_bytes(),
        uuid::Uuid::new_v4().into_bytes(),
    ]
    .concat();
    hex::encode(bytes)
}

impl Registry {
    /// `arn:aws:sns:<region>:<account>:<name>`.
    pub fn sns_topic_arn(&self, name: &str) -> String {
        format!(
            "arn:aws:sns:{}:{}:{name}",
            self.settings.region, self.settings.account
        )
    }

    /// The topic name in a topic ARN of this region and account.
    pub fn sns_topic_name(&self, arn: &str) -> Result<String> {
        let prefix = format!(
            "arn:aws:sns:{}:{}:",
            self.settings.region, self.settings.account
        );
        let name = arn
            .strip_prefix(&prefix)
            .ok_or_else(|| invalid("TopicArn"))?;
        topic_name(name).map_err(|_| invalid("TopicArn"))?;
        Ok(name.to_string())
    }

    /// The topic an ARN names; NotFound when it does not exist.
    pub async fn sns_topic(&self, arn: &str) -> Result<SnsTopic> {
        let name = self.sns_topic_name(arn)?;
        self.store
            .sns_get_topic(&name)
            .await?
            .ok_or_else(topic_missing)
    }

    /// CreateTopic: idempotent; returns the topic ARN.
    pub async fn sns_create_topic(
        &self,
        name: &str,
        attributes: BTreeMap<String, String>,
    ) -> Result<String> {
        topic_name(name)?;
        for (k, v) in &attributes {
            check_topic_attribute(k, v)?;
        }
        let stored = self
            .store
            .sns_create_topic(&SnsTopic {
                name: name.to_string(),
                attributes: attributes.clone(),
                created_at: now_millis(),
            })
            .await?;
        if !attributes.is_empty() && stored.attributes != attributes {
            return Err(invalid(
                "Attributes Reason: Topic already exists with different attributes",
            ));
        }
        Ok(self.sns_topic_arn(name))
    }

    /// DeleteTopic: removes the topic and its subscriptions; idempotent.
    pub async fn sns_delete_topic(&self, arn: &str) -> Result<()> {
        let name = self.sns_topic_name(arn)?;
        self.store.sns_delete_topic(&name).await
    }

    /// ListTopics: every topic ARN, by name.
    pub async fn sns_list_topics(&self) -> Result<Vec<String>> {
        Ok(self
            .store
            .sns_list_topics()
            .await?
            .iter()
            .map(|t| self.sns_topic_arn(&t.name))
            .collect())
    }

    /// SetTopicAttributes.
    pub async fn sns_set_topic_attribute(&self, arn: &str, name: &str, value: &str) -> Result<()> {
        let mut topic = self.sns_topic(arn).await?;
        check_topic_attribute(name, value)?;
        topic.attributes.insert(name.to_string(), value.to_string());
        self.store
            .sns_set_topic_attributes(&topic.name, &topic.attributes)
            .await
    }

    /// GetTopicAttributes: the stored attributes plus the computed ones.
    pub async fn sns_topic_attributes(&self, arn: &str) -> Result<BTreeMap<String, String>> {
        let topic = self.sns_topic(arn).await?;
        let subs = self.store.sns_list_subscriptions(Some(&topic.name)).await?;
        let confirmed = subs.iter().filter(|s| s.confirmed).count();
        let mut out = topic.attributes.clone();
        out.insert("TopicArn".into(), self.sns_topic_arn(&topic.name));
        out.insert("Owner".into(), self.settings.account.clone());
        out.entry("DisplayName".into()).or_default();
        out.insert("SubscriptionsConfirmed".into(), confirmed.to_string());
        out.insert(
            "SubscriptionsPending".into(),
            (subs.len() - confirmed).to_string(),
        );
        out.insert("SubscriptionsDeleted".into(), "0".into());
        Ok(out)
    }

    /// Subscribe. Returns the subscription and whether a confirmation
    /// message must be sent (new or still pending).
    pub async fn sns_subscribe(
        &self,
        topic_arn: &str,
        protocol: &str,
        endpoint: &str,
        attributes: BTreeMap<String, String>,
    ) -> Result<(SnsSubscription, bool)> {
        let topic = self.sns_topic(topic_arn).await?;
        if !PROTOCOLS.contains(&protocol) {
            return Err(RegistryError::invalid(format!(
                "Invalid parameter: Protocol Reason: {protocol} is not supported by Roost (supported: {})",
                PROTOCOLS.join(", ")
            )));
        }
        match protocol {
            "http" | "https" => http_endpoint(protocol, endpoint)?,
            _ if !email_address(endpoint) => return Err(invalid("Email address")),
            _ => {}
        }
        for (k, v) in &attributes {
            check_subscription_attribute(k, v)?;
        }
        let existing = self
            .store
            .sns_list_subscriptions(Some(&topic.name))
            .await?
            .into_iter()
            .find(|s| {
                // Mail addresses compare without case; URLs' paths have case.
                s.protocol == protocol
                    && if s.is_http() {
                        s.endpoint == endpoint
                    } else {
                        s.endpoint.eq_ignore_ascii_case(endpoint)
                    }
            });
        if let Some(mut sub) = existing {
            if sub.confirmed {
                return Ok((sub, false));
            }
            sub.token = new_token();
            self.store.sns_update_subscription(&sub).await?;
            return Ok((sub, true));
        }
        let sub = SnsSubscription {
            arn: format!("{topic_arn}:{}", uuid::Uuid::new_v4()),
            topic_name: topic.name.clone(),
            protocol: protocol.to_string(),
            endpoint: endpoint.to_string(),
            token: new_token(),
            confirmed: false,
            attributes,
            created_at: now_millis(),
        };
        self.store.sns_insert_subscription(&sub).await?;
        Ok((sub, true))
    }

    /// ConfirmSubscription: the token must belong to a subscription of
    /// that topic. Confirming twice returns the ARN again.
    pub async fn sns_confirm_subscription(
        &self,
        topic_arn: &str,
        token: &str,
        authenticated: bool,
    ) -> Result<SnsSubscription> {
        let topic = self.sns_topic(topic_arn).await?;
        if token.is_empty() || token.len() > 1024 {
            return Err(invalid("Token"));
        }
        let mut sub = self
            .store
            .sns_list_subscriptions(Some(&topic.name))
            .await?
            .into_iter()
            .find(|s| s.token == token)
            .ok_or_else(|| invalid("Token"))?;
        if !sub.confirmed {
            sub.confirmed = true;
            sub.attributes.insert(
                "ConfirmationWasAuthenticated".into(),
                authenticated.to_string(),
            );
            self.store.sns_update_subscription(&sub).await?;
        }
        Ok(sub)
    }

    /// One subscription by ARN.
    pub async fn sns_subscription(&self, arn: &str) -> Result<SnsSubscription> {
        let (topic_arn, id) = arn
            .rsplit_once(':')
            .ok_or_else(|| invalid("SubscriptionArn"))?;
        self.sns_topic_name(topic_arn)
            .map_err(|_| invalid("SubscriptionArn"))?;
        if uuid::Uuid::parse_str(id).is_err() {
            return Err(invalid("SubscriptionArn"));
        }
        self.store
            .sns_get_subscription(arn)
            .await?
            .ok_or_else(|| RegistryError::not_found("Subscription does not exist"))
    }

    /// Unsubscribe. `authenticated` says whether the call was signed: a
    /// subscription confirmed with AuthenticateOnUnsubscribe needs that.
    /// Returns the removed subscription (http subscribers are told).
    pub async fn sns_unsubscribe(&self, arn: &str, authenticated: bool) -> Result<SnsSubscription> {
        let sub = self.sns_subscription(arn).await?;
        if !authenticated
            && sub
                .attributes
                .get("AuthenticateOnUnsubscribe")
                .is_some_and(|v| v == "true")
        {
            return Err(RegistryError::invalid(
                "Invalid parameter: this subscription can only be removed by a signed request",
            ));
        }
        self.store.sns_delete_subscription(arn).await?;
        Ok(sub)
    }

    /// ListSubscriptionsByTopic (`Some`) or ListSubscriptions (`None`).
    pub async fn sns_subscriptions(&self, topic_arn: Option<&str>) -> Result<Vec<SnsSubscription>> {
        match topic_arn {
            Some(arn) => {
                let topic = self.sns_topic(arn).await?;
                self.store.sns_list_subscriptions(Some(&topic.name)).await
            }
            None => self.store.sns_list_subscriptions(None).await,
        }
    }

    /// GetSubscriptionAttributes.
    pub async fn sns_subscription_attributes(&self, arn: &str) -> Result<BTreeMap<String, String>> {
        let sub = self.sns_subscription(arn).await?;
        let mut out: BTreeMap<String, String> = sub
            .attributes
            .iter()
            .filter(|(k, _)| k.as_str() != "AuthenticateOnUnsubscribe")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        out.insert("SubscriptionArn".into(), sub.arn.clone());
        out.insert("TopicArn".into(), self.sns_topic_arn(&sub.topic_name));
        out.insert("Owner".into(), self.settings.account.clone());
        out.insert("Protocol".into(), sub.protocol.clone());
        out.insert("Endpoint".into(), sub.endpoint.clone());
        out.insert("PendingConfirmation".into(), (!sub.confirmed).to_string());
        out.entry("ConfirmationWasAuthenticated".into())
            .or_insert_with(|| "false".into());
        out.entry("RawMessageDelivery".into())
            .or_insert_with(|| "false".into());
        Ok(out)
    }

    /// SetSubscriptionAttributes.
    pub async fn sns_set_subscription_attribute(
        &self,
        arn: &str,
        name: &str,
        value: &str,
    ) -> Result<()> {
        let mut sub = self.sns_subscription(arn).await?;
        check_subscription_attribute(name, value)?;
        sub.attributes.insert(name.to_string(), value.to_string());
        self.store.sns_update_subscription(&sub).await
    }

    /// Marks a subscription so Unsubscribe needs a signed request.
    pub async fn sns_require_authenticated_unsubscribe(&self, arn: &str) -> Result<()> {
        let mut sub = self.sns_subscription(arn).await?;
        sub.attributes
            .insert("AuthenticateOnUnsubscribe".into(), "true".into());
        sub.attributes
            .insert("ConfirmationWasAuthenticated".into(), "true".into());
        self.store.sns_update_subscription(&sub).await
    }
}

fn check_topic_attribute(name: &str, value: &str) -> Result<()> {
    if !TOPIC_ATTRIBUTES.contains(&name) {
        return Err(RegistryError::invalid(format!(
            "Invalid parameter: AttributeName Reason: {name} is not a valid topic attribute"
        )));
    }
    let ok = match name {
        "SignatureVersion" => matches!(value, "1" | "2"),
        "MaximumMessageSize" => value
            .parse::<usize>()
            .is_ok_and(|n| (1024..=1_048_576).contains(&n)),
        "DisplayName" => value.chars().count() <= 100 && !value.chars().any(char::is_control),
        "Policy" | "DeliveryPolicy" => serde_json::from_str::<serde_json::Value>(value).is_ok(),
        _ => true,
    };
    if !ok {
        return Err(RegistryError::invalid(format!(
            "Invalid parameter: Attributes Reason: {name} has an invalid value"
        )));
    }
    Ok(())
}

fn check_subscription_attribute(name: &str, value: &str) -> Result<()> {
    if !SUBSCRIPTION_ATTRIBUTES.contains(&name) {
        return Err(RegistryError::invalid(format!(
            "Invalid parameter: AttributeName Reason: {name} is not a valid subscription attribute"
        )));
    }
    if name == "RawMessageDelivery" && !matches!(value, "true" | "false") {
        return Err(invalid(
            "Attributes Reason: RawMessageDelivery must be true or false",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_addresses() {
        assert!(topic_name("alerts-1_x").is_ok());
        assert!(topic_name("").is_err());
        assert!(topic_name("a.fifo").is_err());
        assert!(topic_name(&"a".repeat(257)).is_err());
        assert!(email_address("ops@example.com"));
        assert!(!email_address("ops"));
        assert!(!email_address("a b@example.com"));
        assert!(!email_address("a@b@c"));
        assert!(subject("Hello").is_ok());
        assert!(subject("a\nb").is_err());
        assert!(subject(&"x".repeat(100)).is_err());
    }

    #[test]
    fn http_endpoints() {
        assert!(http_endpoint("http", "http://127.0.0.1:8080/hook?x=1").is_ok());
        assert!(http_endpoint("https", "HTTPS://user:pw@example.com/").is_ok());
        for (protocol, url) in [
            ("http", "https://example.com/"),
            ("https", "http://example.com/"),
            ("http", "example.com"),
            ("http", "http://"),
            ("http", "http:///path"),
            ("http", "http://exa mple.com/"),
        ] {
            assert!(http_endpoint(protocol, url).is_err(), "{protocol} {url}");
        }
        let e = http_endpoint("http", "https://x").unwrap_err().to_string();
        assert_eq!(
            e,
            "Invalid parameter: Endpoint must match the specified protocol"
        );
    }

    #[test]
    fn message_structure() {
        let plain = MessageText::parse("hi", None).unwrap();
        assert_eq!(plain.for_protocol("https"), "hi");
        let m = MessageText::parse(
            r#"{"default":"d","email":"e","http":"h","sqs":{"x":1}}"#,
            Some("json"),
        )
        .unwrap();
        assert_eq!(
            (
                m.for_protocol("email"),
                m.for_protocol("http"),
                m.for_protocol("https"),
                m.for_protocol("sqs")
            ),
            ("e", "h", "d", "d")
        );
        assert!(MessageText::parse(r#"{"email":"e"}"#, Some("json")).is_err());
        assert!(MessageText::parse("nope", Some("json")).is_err());
        assert!(MessageText::parse("x", Some("xml")).is_err());
    }
}
