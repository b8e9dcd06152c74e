//! The record: one event in AWS IoT's `AWSIotLogsV2` shape, written as one
//! JSON line and read back by `roost logs`.

use crate::config::LogLevel;
use base64::Engine;
use serde::{Deserialize, Serialize};
use std::fmt;
use time::format_description::FormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

/// The most payload bytes a DEBUG record carries; the rest is cut and the
/// record says so (`payloadTruncated`).
pub const MAX_LOGGED_PAYLOAD: usize = 4096;

/// AWS's timestamp: UTC, milliseconds, a space between date and time.
const TIMESTAMP: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day] [hour]:[minute]:[second].[subsecond digits:3]");

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    Connect,
    Disconnect,
    #[serde(rename = "Publish-In")]
    PublishIn,
    #[serde(rename = "Publish-Out")]
    PublishOut,
    Subscribe,
    RuleMatch,
    RuleExecution,
    JobExecution,
}

impl EventType {
    pub const ALL: [EventType; 8] = [
        EventType::Connect,
        EventType::Disconnect,
        EventType::PublishIn,
        EventType::PublishOut,
        EventType::Subscribe,
        EventType::RuleMatch,
        EventType::RuleExecution,
        EventType::JobExecution,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Connect => "Connect",
            EventType::Disconnect => "Disconnect",
            EventType::PublishIn => "Publish-In",
            EventType::PublishOut => "Publish-Out",
            EventType::Subscribe => "Subscribe",
            EventType::RuleMatch => "RuleMatch",
            EventType::RuleExecution => "RuleExecution",
            EventType::JobExecution => "JobExecution",
        }
    }

    /// AWS's name, compared without regard to case (`publish-in` works on
    /// the command line).
    pub fn parse(s: &str) -> Option<EventType> {
        EventType::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s))
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    Success,
    Failure,
}

/// How the client reached Roost.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Protocol {
    #[serde(rename = "MQTT")]
    Mqtt,
    #[serde(rename = "HTTP")]
    Http,
}

/// One event. Field names and spellings are `AWSIotLogsV2`'s; `payload`
/// (and `payloadTruncated`) are Roost's, present only at DEBUG.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub timestamp: String,
    #[serde(with = "level_serde")]
    pub log_level: LogLevel,
    pub trace_id: String,
    pub account_id: String,
    pub status: Status,
    pub event_type: EventType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
    /// The message, UTF-8 as is, anything else as `base64:<…>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub payload_truncated: bool,
}

mod level_serde {
    use crate::config::LogLevel;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(level: &LogLevel, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(level.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<LogLevel, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Event {
    /// A new event at `unix_millis`. Its level follows its status: a
    /// failure is an ERROR, a success INFO (see [`Event::at_level`]).
    pub fn new(
        unix_millis: i64,
        trace_id: String,
        account_id: &str,
        event_type: EventType,
        status: Status,
    ) -> Event {
        Event {
            timestamp: format_timestamp(unix_millis),
            log_level: match status {
                Status::Success => LogLevel::Info,
                Status::Failure => LogLevel::Error,
            },
            trace_id,
            account_id: account_id.to_owned(),
            status,
            event_type,
            protocol: None,
            client_id: None,
            principal_id: None,
            source_ip: None,
            source_port: None,
            topic_name: None,
            reason: None,
            details: None,
            payload: None,
            payload_truncated: false,
        }
    }

    pub fn at_level(mut self, level: LogLevel) -> Event {
        self.log_level = level;
        self
    }

    pub fn protocol(mut self, protocol: Protocol) -> Event {
        self.protocol = Some(protocol);
        self
    }

    pub fn client_id(mut self, client_id: impl Into<String>) -> Event {
        self.client_id = Some(client_id.into());
        self
    }

    pub fn principal_id(mut self, principal_id: impl Into<String>) -> Event {
        self.principal_id = Some(principal_id.into());
        self
    }

    pub fn source(mut self, peer: std::net::SocketAddr) -> Event {
        self.source_ip = Some(peer.ip().to_string());
        self.source_port = Some(peer.port());
        self
    }

    pub fn topic(mut self, topic: impl Into<String>) -> Event {
        self.topic_name = Some(topic.into());
        self
    }

    pub fn reason(mut self, reason: impl Into<String>) -> Event {
        self.reason = Some(reason.into());
        self
    }

    pub fn details(mut self, details: impl Into<String>) -> Event {
        self.details = Some(details.into());
        self
    }

    /// Attaches the message. Callers attach it only when the client's level
    /// is DEBUG; at most [`MAX_LOGGED_PAYLOAD`] bytes are kept.
    pub fn payload(mut self, payload: &[u8]) -> Event {
        let kept = &payload[..payload.len().min(MAX_LOGGED_PAYLOAD)];
        self.payload_truncated = kept.len() < payload.len();
        self.payload = Some(match std::str::from_utf8(kept) {
            Ok(text) => text.to_owned(),
            Err(_) => format!(
                "base64:{}",
                base64::engine::general_purpose::STANDARD.encode(kept)
            ),
        });
        self
    }

    /// The JSON line (without its newline).
    pub fn to_json_line(&self) -> String {
        // An Event has only strings, numbers and enums: it always
        // serializes.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a line written by [`Event::to_json_line`].
    pub fn from_json_line(line: &str) -> Option<Event> {
        serde_json::from_str(line).ok()
    }

    /// The event's time in Unix milliseconds, if its timestamp reads.
    pub fn unix_millis(&self) -> Option<i64> {
        let at = PrimitiveDateTime::parse(&self.timestamp, TIMESTAMP).ok()?;
        Some((at.assume_utc().unix_timestamp_nanos() / 1_000_000) as i64)
    }
}

/// `unix_millis` in AWS's log timestamp format.
pub fn format_timestamp(unix_millis: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_millis) * 1_000_000)
        .ok()
        .and_then(|at| at.format(TIMESTAMP).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_has_aws_field_names() {
        let event = Event::new(
            1_500_000_000_123,
            "t-1".into(),
            "000000000000",
            EventType::PublishIn,
            Status::Failure,
        )
        .protocol(Protocol::Mqtt)
        .client_id("sensor-1")
        .source("10.1.2.3:4567".parse().unwrap())
        .topic("a/b")
        .reason("AUTHORIZATION_FAILURE");
        let line = event.to_json_line();
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["timestamp"], "2017-07-14 02:40:00.123");
        assert_eq!(value["logLevel"], "ERROR");
        assert_eq!(value["eventType"], "Publish-In");
        assert_eq!(value["status"], "Failure");
        assert_eq!(value["protocol"], "MQTT");
        assert_eq!(value["clientId"], "sensor-1");
        assert_eq!(value["sourceIp"], "10.1.2.3");
        assert_eq!(value["sourcePort"], 4567);
        assert_eq!(value["topicName"], "a/b");
        assert!(value.get("payload").is_none());
        assert!(value.get("payloadTruncated").is_none());
        assert_eq!(Event::from_json_line(&line), Some(event.clone()));
        assert_eq!(event.unix_millis(), Some(1_500_000_000_123));
    }

    #[test]
    fn payloads_are_bounded_and_binary_safe() {
        let event = Event::new(0, "t".into(), "a", EventType::PublishIn, Status::Success);
        let text = event.clone().payload(b"{\"t\":1}");
        assert_eq!(text.payload.as_deref(), Some("{\"t\":1}"));
        assert!(!text.payload_truncated);
        let binary = event.clone().payload(&[0xff, 0x00]);
        assert_eq!(binary.payload.as_deref(), Some("base64:/wA="));
        let big = event.payload(&vec![b'x'; MAX_LOGGED_PAYLOAD + 1]);
        assert_eq!(big.payload.map(|p| p.len()), Some(MAX_LOGGED_PAYLOAD));
        assert!(big.payload_truncated);
    }

    #[test]
    fn event_types_parse_without_case() {
        assert_eq!(EventType::parse("publish-in"), Some(EventType::PublishIn));
        assert_eq!(EventType::parse("Connect"), Some(EventType::Connect));
        assert_eq!(EventType::parse("PublishIn"), None);
    }
}
