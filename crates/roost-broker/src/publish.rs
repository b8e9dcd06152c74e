//! What may be published where, shared by MQTT, HTTPS publish and the
//! iot-data API, so the three entry points refuse exactly the same things.

use crate::authz::ConnectionAuthz;
use crate::message::Message;
use crate::{Broker, Profile};
use roost_policy::Decision;

/// Why a publish was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PublishRefusal {
    #[error("invalid topic: {0}")]
    InvalidTopic(String),
    #[error("{0}")]
    ReservedTopic(&'static str),
    /// `$SYS` and `$share` (full profile): topics only the server
    /// publishes on, or no topic name at all.
    #[error("clients do not publish to $SYS or $share topics")]
    ServerTopic,
    #[error("the payload is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("QoS {0} is not supported")]
    QosNotSupported(u8),
    #[error("not authorized to publish to this topic")]
    NotAuthorized,
    #[error("the gateway could not load the policies: {0}")]
    Unavailable(String),
    #[error("the gateway could not save the message")]
    NotSaved,
}

/// A topic name a client may publish to. Clients may publish to
/// `$aws/things/<thing>/{jobs,shadow}/…` and `$aws/rules/…` (the services
/// that answer there), never to events, and never retained to a `$` topic.
pub(crate) fn check_topic(
    profile: Profile,
    topic: &str,
    retain: bool,
) -> Result<(), PublishRefusal> {
    roost_topic::validate_topic_name(topic, &profile.topic_limits())
        .map_err(|e| PublishRefusal::InvalidTopic(e.to_string()))?;
    if !roost_topic::is_reserved(topic) {
        return Ok(());
    }
    // AWS never retains on reserved topics; the full profile only protects `$aws/`.
    if retain && (profile == Profile::Aws || topic.starts_with("$aws/")) {
        return Err(PublishRefusal::ReservedTopic(
            "retained messages cannot be published to a reserved ($) topic",
        ));
    }
    if let Some(rest) = topic.strip_prefix("$aws/") {
        let service_topic = rest.starts_with("rules/")
            || rest.strip_prefix("things/").is_some_and(|r| {
                let mut parts = r.splitn(3, '/');
                let (_thing, service) = (parts.next(), parts.next());
                matches!(service, Some("jobs" | "shadow"))
            });
        return if service_topic {
            Ok(())
        } else {
            Err(PublishRefusal::ReservedTopic(
                "this reserved $aws topic cannot be published to",
            ))
        };
    }
    match profile {
        Profile::Aws => Err(PublishRefusal::ReservedTopic(
            "topics starting with $ are reserved",
        )),
        Profile::Full if is_server_topic(topic) => Err(PublishRefusal::ServerTopic),
        Profile::Full => Ok(()),
    }
}

/// `$SYS` is where brokers publish about themselves, and `$share/...` is
/// the form of a shared subscription's filter, never a topic a message
/// is published to (MQTT 5 4.8.2); both are refused as Mosquitto does.
fn is_server_topic(topic: &str) -> bool {
    let first_level = topic.split('/').next().unwrap_or(topic);
    matches!(first_level, "$SYS" | "$share")
}

impl Broker {
    fn check_message(&self, message: &Message) -> Result<(), PublishRefusal> {
        let config = &self.shared.config;
        check_topic(config.profile, &message.topic, message.retain)?;
        if message.payload.len() > config.limits.max_payload_bytes {
            return Err(PublishRefusal::PayloadTooLarge(
                config.limits.max_payload_bytes,
            ));
        }
        if config.profile == Profile::Aws && message.qos == roost_mqtt::QoS::ExactlyOnce {
            return Err(PublishRefusal::QosNotSupported(2));
        }
        Ok(())
    }

    /// Publishes on behalf of a device outside MQTT (HTTPS publish) whose
    /// connection's authorization is `authz`: the same topic rules, and
    /// iot:Publish (plus iot:RetainPublish) under its policies. Thing policy
    /// variables do not resolve here, as in AWS: there is no client id.
    /// Answers, for QoS 1, once what the message changed in the gateway
    /// state is saved.
    pub(crate) async fn publish_as_device(
        &self,
        authz: &ConnectionAuthz,
        message: Message,
    ) -> Result<usize, PublishRefusal> {
        self.check_message(&message)?;
        if authz.publish(&message.topic, message.retain) != Decision::Allowed {
            self.shared
                .metrics
                .publish_denied
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::info!(cert_id = %authz.certificate_id(), action = "iot:Publish", resource = %format!("topic/{}", message.topic), "denied (HTTPS)");
            return Err(PublishRefusal::NotAuthorized);
        }
        self.publish_durably(message).await
    }

    /// Publishes on behalf of the control plane (iot-data Publish, the
    /// republish rule action), whose caller was authenticated by SigV4: the
    /// topic rules apply, policies do not. Answers, for QoS 1, once what the
    /// message changed in the gateway state is saved.
    pub async fn publish_as_service(&self, message: Message) -> Result<usize, PublishRefusal> {
        self.check_message(&message)?;
        self.publish_durably(message).await
    }

    async fn publish_durably(&self, message: Message) -> Result<usize, PublishRefusal> {
        self.shared.publish_durably(message).await.map_err(|_| {
            self.shared
                .metrics
                .state_answers_failed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            PublishRefusal::NotSaved
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_full_profile_keeps_sys_and_share_to_the_server() {
        for topic in ["$SYS", "$SYS/broker/load", "$share", "$share/group/a/b"] {
            assert_eq!(
                check_topic(Profile::Full, topic, false),
                Err(PublishRefusal::ServerTopic),
                "{topic}"
            );
        }
        for topic in ["$SYSTEM/x", "$shared/x", "$other/x", "a/$SYS", "sys"] {
            assert_eq!(check_topic(Profile::Full, topic, false), Ok(()), "{topic}");
        }
        assert!(matches!(
            check_topic(Profile::Aws, "$SYS/x", false),
            Err(PublishRefusal::ReservedTopic(_))
        ));
    }
}
