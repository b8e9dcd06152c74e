//! Values to and from their columns: instants as wall-clock milliseconds,
//! QoS and retain handling as numbers, the forwardable MQTT 5 properties as
//! JSON.

use crate::message::unix_ms;
use base64::Engine;
use bytes::Bytes;
use roost_mqtt::{PayloadFormat, PublishProperties, QoS, RetainHandling};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant, SystemTime};

/// An `Instant` as wall-clock milliseconds, and back: Instants do not survive a restart.
pub(super) fn instant_to_unix(at: Instant, now: Instant, wall: SystemTime) -> i64 {
    if at >= now {
        unix_ms(wall + (at - now))
    } else {
        unix_ms(wall.checked_sub(now - at).unwrap_or(std::time::UNIX_EPOCH))
    }
}

pub(crate) fn unix_to_instant(ms: i64, now: Instant, wall: SystemTime) -> Instant {
    let wall_ms = unix_ms(wall);
    if ms >= wall_ms {
        now + Duration::from_millis((ms - wall_ms) as u64)
    } else {
        now.checked_sub(Duration::from_millis((wall_ms - ms) as u64))
            .unwrap_or(now)
    }
}

pub(super) fn qos_of(n: i64) -> QoS {
    QoS::from_u8(n.clamp(0, 2) as u8).unwrap_or(QoS::AtMostOnce)
}

/// The forwardable MQTT 5 properties, as stored.
#[derive(Serialize, Deserialize, Default)]
struct StoredProperties {
    #[serde(skip_serializing_if = "Option::is_none")]
    utf8: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_topic: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    correlation_data: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    user_properties: Vec<(String, String)>,
}

pub(super) fn store_properties(p: &PublishProperties) -> String {
    let stored = StoredProperties {
        utf8: p.payload_format_indicator.map(|f| f == PayloadFormat::Utf8),
        content_type: p.content_type.clone(),
        response_topic: p.response_topic.clone(),
        correlation_data: p
            .correlation_data
            .as_ref()
            .map(|d| base64::engine::general_purpose::STANDARD.encode(d)),
        user_properties: p.user_properties.clone(),
    };
    serde_json::to_string(&stored).expect("properties serialise")
}

pub(super) fn load_properties(text: &str) -> PublishProperties {
    let stored: StoredProperties = serde_json::from_str(text).unwrap_or_default();
    PublishProperties {
        payload_format_indicator: stored.utf8.map(|u| {
            if u {
                PayloadFormat::Utf8
            } else {
                PayloadFormat::Unspecified
            }
        }),
        content_type: stored.content_type,
        response_topic: stored.response_topic,
        correlation_data: stored
            .correlation_data
            .and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok())
            .map(Bytes::from),
        user_properties: stored.user_properties,
        ..Default::default()
    }
}

pub(super) fn retain_handling_of(n: i64) -> RetainHandling {
    match n {
        1 => RetainHandling::SendIfNewSubscription,
        2 => RetainHandling::DoNotSend,
        _ => RetainHandling::SendAtSubscribe,
    }
}

/// Subscription identifiers as stored: decimal, comma-separated.
pub(super) fn store_ids(ids: &[u32]) -> String {
    ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

/// What does not parse is left out: an identifier is only ever echoed.
pub(super) fn load_ids(text: &str) -> Vec<u32> {
    text.split(',').filter_map(|id| id.parse().ok()).collect()
}
