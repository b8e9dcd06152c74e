//! The JSON documents SNS sends to http/https (and email-json) subscribers:
//! SubscriptionConfirmation, UnsubscribeConfirmation and Notification, and
//! the text their signature covers. Pure: no I/O, no keys.

use std::collections::BTreeMap;

/// What kind of document an envelope is (`Type`, `x-amz-sns-message-type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageType {
    SubscriptionConfirmation,
    UnsubscribeConfirmation,
    Notification,
}

impl MessageType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SubscriptionConfirmation => "SubscriptionConfirmation",
            Self::UnsubscribeConfirmation => "UnsubscribeConfirmation",
            Self::Notification => "Notification",
        }
    }
}

/// One document's fields before signing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    pub kind: MessageType,
    pub message_id: String,
    pub topic_arn: String,
    pub message: String,
    /// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    pub timestamp: String,
    /// Notification only, and only when the publish had one.
    pub subject: Option<String>,
    /// Confirmations only.
    pub token: Option<String>,
    /// Confirmations only.
    pub subscribe_url: Option<String>,
    /// Notification only.
    pub unsubscribe_url: Option<String>,
    /// Notification only: name → (`DataType`, value); empty means absent.
    pub attributes: BTreeMap<String, (String, String)>,
}

/// The signature fields a signed document carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signed<'a> {
    /// `"1"` (SHA1withRSA) or `"2"` (SHA256withRSA).
    pub version: &'a str,
    /// Base64 of the RSA signature.
    pub signature: &'a str,
    pub cert_url: &'a str,
}

impl Envelope {
    /// The confirmation a new (or still pending) subscription gets.
    pub fn subscription_confirmation(
        topic_arn: &str,
        token: &str,
        subscribe_url: String,
        timestamp: String,
    ) -> Self {
        Self::confirmation(
            MessageType::SubscriptionConfirmation,
            format!(
                "You have chosen to subscribe to the topic {topic_arn}.\nTo confirm the subscription, visit the SubscribeURL included in this message."
            ),
            topic_arn,
            token,
            subscribe_url,
            timestamp,
        )
    }

    /// What a removed http subscription gets.
    pub fn unsubscribe_confirmation(
        topic_arn: &str,
        subscription_arn: &str,
        token: &str,
        subscribe_url: String,
        timestamp: String,
    ) -> Self {
        Self::confirmation(
            MessageType::UnsubscribeConfirmation,
            format!(
                "You have chosen to deactivate subscription {subscription_arn}.\nTo cancel this operation and restore the subscription, visit the SubscribeURL included in this message."
            ),
            topic_arn,
            token,
            subscribe_url,
            timestamp,
        )
    }

    fn confirmation(
        kind: MessageType,
        message: String,
        topic_arn: &str,
        token: &str,
        subscribe_url: String,
        timestamp: String,
    ) -> Self {
        Self {
            kind,
            message_id: uuid::Uuid::new_v4().to_string(),
            topic_arn: topic_arn.to_string(),
            message,
            timestamp,
            subject: None,
            token: Some(token.to_string()),
            subscribe_url: Some(subscribe_url),
            unsubscribe_url: None,
            attributes: BTreeMap::new(),
        }
    }

    /// The fields the signature covers, in their (byte-sorted) order: for a
    /// Notification `Message, MessageId, [Subject,] Timestamp, TopicArn,
    /// Type`; for confirmations `Message, MessageId, SubscribeURL,
    /// Timestamp, Token, TopicArn, Type`.
    fn signed_fields(&self) -> Vec<(&'static str, &str)> {
        let mut fields = vec![("Message", self.message.as_str())];
        fields.push(("MessageId", &self.message_id));
        match self.kind {
            MessageType::Notification => {
                if let Some(subject) = &self.subject {
                    fields.push(("Subject", subject));
                }
                fields.push(("Timestamp", &self.timestamp));
            }
            MessageType::SubscriptionConfirmation | MessageType::UnsubscribeConfirmation => {
                fields.push(("SubscribeURL", self.subscribe_url.as_deref().unwrap_or("")));
                fields.push(("Timestamp", &self.timestamp));
                fields.push(("Token", self.token.as_deref().unwrap_or("")));
            }
        }
        fields.push(("TopicArn", &self.topic_arn));
        fields.push(("Type", self.kind.as_str()));
        fields
    }

    /// The string to sign: `key\nvalue\n` for each signed field.
    pub fn string_to_sign(&self) -> String {
        let mut out = String::new();
        for (key, value) in self.signed_fields() {
            out.push_str(key);
            out.push('\n');
            out.push_str(value);
            out.push('\n');
        }
        out
    }

    /// The JSON body, in AWS's field order and layout (`"Key" : value`,
    /// two-space indent); `signed` adds the signature fields.
    pub fn to_json(&self, signed: Option<&Signed<'_>>) -> String {
        let mut fields: Vec<(&str, serde_json::Value)> = vec![
            ("Type", self.kind.as_str().into()),
            ("MessageId", self.message_id.as_str().into()),
        ];
        if let Some(token) = &self.token {
            fields.push(("Token", token.as_str().into()));
        }
        fields.push(("TopicArn", self.topic_arn.as_str().into()));
        if let Some(subject) = &self.subject {
            fields.push(("Subject", subject.as_str().into()));
        }
        fields.push(("Message", self.message.as_str().into()));
        if let Some(url) = &self.subscribe_url {
            fields.push(("SubscribeURL", url.as_str().into()));
        }
        fields.push(("Timestamp", self.timestamp.as_str().into()));
        if let Some(s) = signed {
            fields.push(("SignatureVersion", s.version.into()));
            fields.push(("Signature", s.signature.into()));
            fields.push(("SigningCertURL", s.cert_url.into()));
        }
        if let Some(url) = &self.unsubscribe_url {
            fields.push(("UnsubscribeURL", url.as_str().into()));
        }
        if !self.attributes.is_empty() {
            let attributes: serde_json::Map<String, serde_json::Value> = self
                .attributes
                .iter()
                .map(|(name, (data_type, value))| {
                    (
                        name.clone(),
                        serde_json::json!({"Type": data_type, "Value": value}),
                    )
                })
                .collect();
            fields.push(("MessageAttributes", attributes.into()));
        }
        let body: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!("  \"{k}\" : {v}"))
            .collect();
        format!("{{\n{}\n}}", body.join(",\n"))
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`, now.
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

    fn notification(subject: Option<&str>) -> Envelope {
        Envelope {
            kind: MessageType::Notification,
            message_id: "45670edf-0798-4702-a972-8d1624a86df3".into(),
            topic_arn: "arn:aws:sns:us-east-1:123456789012:my-topic".into(),
            message: "line1\nline2 \"q\" ü".into(),
            timestamp: "2026-11-30T11:40:01.456Z".into(),
            subject: subject.map(str::to_string),
            token: None,
            subscribe_url: None,
            unsubscribe_url: Some("http://h/?Action=Unsubscribe&SubscriptionArn=x".into()),
            attributes: BTreeMap::new(),
        }
    }

    #[test]
    fn notification_string_to_sign() {
        assert_eq!(
            notification(Some("Hi é")).string_to_sign(),
            "Message\nline1\nline2 \"q\" ü\nMessageId\n45670edf-0798-4702-a972-8d1624a86df3\n\
             Subject\nHi é\nTimestamp\n2026-11-30T11:40:01.456Z\n\
             TopicArn\narn:aws:sns:us-east-1:123456789012:my-topic\nType\nNotification\n"
        );
        // No Subject key at all when the publish had none.
        let text = notification(None).string_to_sign();
        assert!(!text.contains("Subject"));
        assert!(text.starts_with("Message\nline1\nline2 \"q\" ü\nMessageId\n"));
    }

    #[test]
    fn confirmation_string_to_sign_includes_token_and_url() {
        let e = Envelope::subscription_confirmation(
            "arn:aws:sns:us-east-1:1:t",
            "abc",
            "http://h/?Action=ConfirmSubscription&TopicArn=arn:aws:sns:us-east-1:1:t&Token=abc"
                .into(),
            "2026-01-01T00:00:00.000Z".into(),
        );
        let text = e.string_to_sign();
        let keys: Vec<&str> = text.lines().step_by(1).collect();
        assert_eq!(keys[0], "Message");
        assert!(text.contains("\nSubscribeURL\nhttp://h/?Action=ConfirmSubscription&TopicArn=arn:aws:sns:us-east-1:1:t&Token=abc\nTimestamp\n2026-01-01T00:00:00.000Z\nToken\nabc\nTopicArn\narn:aws:sns:us-east-1:1:t\nType\nSubscriptionConfirmation\n"), "{text}");
        assert!(text.starts_with(
            "Message\nYou have chosen to subscribe to the topic arn:aws:sns:us-east-1:1:t.\nTo confirm"
        ));
    }

    #[test]
    fn json_has_aws_fields_and_order() {
        let mut e = notification(None);
        e.attributes
            .insert("k".into(), ("String".into(), "v".into()));
        let json = e.to_json(Some(&Signed {
            version: "1",
            signature: "c2ln",
            cert_url: "http://h/SimpleNotificationService-0.pem",
        }));
        let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(doc["Type"], "Notification");
        assert_eq!(doc["Message"], "line1\nline2 \"q\" ü");
        assert_eq!(doc["SignatureVersion"], "1");
        assert_eq!(doc["MessageAttributes"]["k"]["Value"], "v");
        assert!(doc.get("Subject").is_none() && doc.get("Token").is_none());
        assert!(json.starts_with("{\n  \"Type\" : \"Notification\",\n  \"MessageId\" : "));
        let order: Vec<usize> = [
            "\"TopicArn\"",
            "\"Message\"",
            "\"Timestamp\"",
            "\"Signature\"",
            "\"UnsubscribeURL\"",
        ]
        .iter()
        .map(|k| json.find(k).unwrap())
        .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{json}");
    }

    #[test]
    fn timestamps_have_milliseconds() {
        let t = timestamp();
        assert_eq!(t.len(), 24, "{t}");
        assert!(t.ends_with('Z') && t.as_bytes()[19] == b'.');
    }
}
