//! A message as it travels between nodes: an MQTT 5 PUBLISH in roost-mqtt's
//! codec, on the subject its topic encodes to. The subject and the
//! PUBLISH's topic must agree, which a message from anything but a Roost
//! node of this space is unlikely to manage.

use bytes::{Bytes, BytesMut};
use roost_broker::Message;
use roost_cluster::SubjectSpace;
use roost_mqtt::{Limits, Packet, ProtocolVersion, Publish, QoS};
use std::time::{Duration, Instant};

/// Why a body from NATS is not a message of this space.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("subject: {0}")]
    Subject(#[from] roost_cluster::SubjectError),
    #[error("body: {0}")]
    Body(String),
    #[error("the body's topic is not the subject's")]
    TopicMismatch,
    #[error("the message's expiry has passed")]
    Expired,
}

/// The body for `message`; `None` when its MQTT 5 expiry has passed.
pub fn encode(message: &Message, now: Instant) -> Result<Option<Bytes>, EnvelopeError> {
    let mut properties = message.properties.clone();
    properties.topic_alias = None;
    properties.subscription_identifiers.clear();
    if let Some(at) = message.expires_at {
        let left = at.saturating_duration_since(now);
        if left.is_zero() {
            return Ok(None);
        }
        // Rounded up: a message never expires sooner on another node.
        let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        properties.message_expiry_interval = Some(u32::try_from(secs).unwrap_or(u32::MAX));
    }
    let publish = Publish {
        dup: false,
        qos: message.qos,
        retain: message.retain,
        topic: message.topic.clone(),
        packet_id: (message.qos != QoS::AtMostOnce).then_some(1),
        payload: message.payload.clone(),
        properties,
    };
    let mut body = BytesMut::new();
    roost_mqtt::encode(&Packet::Publish(publish), ProtocolVersion::V5, &mut body)
        .map_err(|e| EnvelopeError::Body(e.to_string()))?;
    Ok(Some(body.freeze()))
}

/// The message a body on `subject` carries.
pub fn decode(
    space: &SubjectSpace,
    subject: &str,
    body: &[u8],
    now: Instant,
) -> Result<Message, EnvelopeError> {
    let topic = space.topic_of(subject)?;
    let mut buf = BytesMut::from(body);
    let packet = roost_mqtt::decode(
        &mut buf,
        Some(ProtocolVersion::V5),
        &Limits::protocol_maximum(),
    )
    .map_err(|e| EnvelopeError::Body(e.to_string()))?;
    let publish = match packet {
        Some(Packet::Publish(publish)) if buf.is_empty() => publish,
        Some(Packet::Publish(_)) => {
            return Err(EnvelopeError::Body("bytes after the PUBLISH".into()))
        }
        Some(_) => return Err(EnvelopeError::Body("not a PUBLISH".into())),
        None => return Err(EnvelopeError::Body("a truncated PUBLISH".into())),
    };
    if publish.topic != topic {
        return Err(EnvelopeError::TopicMismatch);
    }
    let expires_at = match publish.properties.message_expiry_interval {
        Some(0) => return Err(EnvelopeError::Expired),
        Some(secs) => Some(now + Duration::from_secs(u64::from(secs))),
        None => None,
    };
    let mut message = Message::new(publish.topic, publish.payload, publish.qos);
    message.retain = publish.retain;
    message.properties = publish.properties;
    message.expires_at = expires_at;
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use roost_mqtt::UserProperties;

    fn space() -> SubjectSpace {
        SubjectSpace::new("roost").unwrap()
    }

    #[test]
    fn a_message_crosses_with_its_properties_and_expiry() {
        let now = Instant::now();
        let mut message = Message::new("a.b//$x", &b"payload"[..], QoS::AtLeastOnce);
        message.retain = true;
        message.properties.content_type = Some("text/plain".into());
        message.properties.correlation_data = Some(Bytes::from_static(b"c"));
        message.properties.user_properties = UserProperties::from(vec![("k".into(), "v".into())]);
        message.expires_at = Some(now + Duration::from_millis(1500));
        message.publisher = Some("client".into());
        let body = encode(&message, now).unwrap().unwrap();
        let subject = space().topic_subject(&message.topic).unwrap();
        let back = decode(&space(), &subject, &body, now).unwrap();
        assert_eq!(back.topic, message.topic);
        assert_eq!(back.payload, message.payload);
        assert_eq!((back.qos, back.retain), (QoS::AtLeastOnce, true));
        assert_eq!(back.properties.content_type.as_deref(), Some("text/plain"));
        assert_eq!(
            back.properties.user_properties,
            message.properties.user_properties
        );
        // 1.5 s left is 2 s on the other node: rounded up, never down.
        assert_eq!(back.expires_at, Some(now + Duration::from_secs(2)));
        // Who published it stays on the node that accepted it.
        assert_eq!(back.publisher, None);
    }

    #[test]
    fn an_expired_message_is_not_sent() {
        let now = Instant::now();
        let mut message = Message::new("t", &b""[..], QoS::AtMostOnce);
        message.expires_at = Some(now);
        assert!(encode(&message, now).unwrap().is_none());
    }

    #[test]
    fn bodies_that_are_not_ours_are_refused() {
        let s = space();
        let body = encode(
            &Message::new("a", &b"x"[..], QoS::AtMostOnce),
            Instant::now(),
        )
        .unwrap()
        .unwrap();
        let now = Instant::now();
        assert!(matches!(
            decode(&s, "roost.m.b", &body, now),
            Err(EnvelopeError::TopicMismatch)
        ));
        assert!(matches!(
            decode(&s, "other.m.a", &body, now),
            Err(EnvelopeError::Subject(_))
        ));
        assert!(matches!(
            decode(&s, "roost.m.a", b"hello", now),
            Err(EnvelopeError::Body(_))
        ));
        assert!(matches!(
            decode(&s, "roost.m.a", &body[..body.len() - 1], now),
            Err(EnvelopeError::Body(_))
        ));
        let mut twice = body.to_vec();
        twice.extend_from_slice(&body);
        assert!(matches!(
            decode(&s, "roost.m.a", &twice, now),
            Err(EnvelopeError::Body(_))
        ));
    }
}
