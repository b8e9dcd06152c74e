//! SNS-compatible notification topics and subscriptions: names, ARNs,
//! validation and AWS's semantics (idempotent CreateTopic, pending email
//! subscriptions confirmed by token, DeleteTopic removing subscriptions).
//! Delivery (SMTP) lives in [`crate::mail`].

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
pub const PROTOCOLS: &[&str] = &["email", "email-json"];

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

fn new_token() -> String {
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
        if !email_address(endpoint) {
            return Err(invalid("Email address"));
        }
        for (k, v) in &attributes {
            check_subscription_attribute(k, v)?;
        }
        let existing = self
            .store
            .sns_list_subscriptions(Some(&topic.name))
            .await?
            .into_iter()
            .find(|s| s.protocol == protocol && s.endpoint.eq_ignore_ascii_case(endpoint));
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
    pub async fn sns_unsubscribe(&self, arn: &str, authenticated: bool) -> Result<()> {
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
        Ok(())
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
}
