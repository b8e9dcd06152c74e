//! The confirmation message of a topic rule destination, as AWS IoT sends
//! it: a POST to the confirmation URL with the token added as the
//! `confirmationToken` query parameter, the `x-amz-rules-engine-*` headers
//! and a JSON body carrying the ARN, the token and an `enableUrl` that
//! confirms the destination when opened (an unsigned GET of Roost's
//! ConfirmTopicRuleDestination path). Delivered like SNS's http messages:
//! in the background, bounded, retried; if it cannot be delivered the
//! destination goes to ERROR.

use crate::{http, Delivery, Notifier};
use roost_registry::destinations::{DestinationConfirmer, TopicRuleDestination};
use std::sync::Arc;

/// The `x-amz-rules-engine-message-type` (and `messageType`) of a confirmation.
pub const MESSAGE_TYPE: &str = "DestinationConfirmation";

/// The confirmation POST for `destination`: pure, so its shape is tested
/// without a network.
pub fn confirmation_post(
    destination: &TopicRuleDestination,
    token: &str,
    enable_url: &str,
) -> Result<http::Post, String> {
    let mut url = reqwest::Url::parse(&destination.confirmation_url)
        .map_err(|e| format!("the confirmation URL does not parse: {e}"))?;
    url.query_pairs_mut()
        .append_pair("confirmationToken", token);
    let body = serde_json::json!({
        "arn": destination.arn,
        "confirmationToken": token,
        "enableUrl": enable_url,
        "messageType": MESSAGE_TYPE,
    });
    Ok(http::Post {
        url: url.to_string(),
        content_type: "application/json",
        headers: vec![
            ("x-amz-rules-engine-message-type", MESSAGE_TYPE.to_string()),
            (
                "x-amz-rules-engine-destination-arn",
                destination.arn.clone(),
            ),
        ],
        body: body.to_string(),
    })
}

impl Notifier {
    /// The link that confirms a destination: Roost's ConfirmTopicRuleDestination
    /// path, which answers unsigned GETs (the token is the credential).
    pub fn enable_url(&self, token: &str) -> String {
        format!("{}/confirmdestination/{token}", self.base_url)
    }

    /// Sends a destination's confirmation message in the background.
    pub fn send_destination_confirmation(
        self: &Arc<Self>,
        destination: &TopicRuleDestination,
        token: &str,
    ) -> Result<(), String> {
        let post = confirmation_post(destination, token, &self.enable_url(token));
        let delivery = Delivery::Destination {
            arn: destination.arn.clone(),
            token: token.to_string(),
        };
        self.spawn_http(delivery, async move { post })
    }
}

/// Installed in the registry at start: destinations' confirmation messages
/// go through the notifier's bounded http deliveries.
pub struct DestinationConfirmations(pub Arc<Notifier>);

impl DestinationConfirmer for DestinationConfirmations {
    fn send_confirmation(
        &self,
        destination: &TopicRuleDestination,
        token: &str,
    ) -> Result<(), String> {
        self.0.send_destination_confirmation(destination, token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use roost_registry::destinations::DestinationStatus;

    #[test]
    fn the_confirmation_is_shaped_as_aws_sends_it() {
        let destination = TopicRuleDestination {
            arn: "arn:aws:iot:us-east-1:000000000000:ruledestination/http/x".into(),
            confirmation_url: "https://example.com/in?tenant=a".into(),
            status: DestinationStatus::InProgress,
            status_reason: None,
            token_sha256: String::new(),
            created_at: 0,
            last_updated_at: 0,
        };
        let post =
            confirmation_post(&destination, "tok", "http://roost/confirmdestination/tok").unwrap();
        assert_eq!(
            post.url,
            "https://example.com/in?tenant=a&confirmationToken=tok"
        );
        assert_eq!(post.content_type, "application/json");
        assert_eq!(
            post.headers,
            vec![
                ("x-amz-rules-engine-message-type", MESSAGE_TYPE.to_string()),
                (
                    "x-amz-rules-engine-destination-arn",
                    destination.arn.clone()
                ),
            ]
        );
        let body: serde_json::Value = serde_json::from_str(&post.body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"arn": destination.arn, "confirmationToken": "tok",
                "enableUrl": "http://roost/confirmdestination/tok", "messageType": "DestinationConfirmation"})
        );
        // Logs show the URL without its query, so never the token.
        assert!(!http::redacted(&post.url).contains("tok"));
    }
}
