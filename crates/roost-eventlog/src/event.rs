//! The record: one event in AWS IoT's `AWSIotLogsV2` shape, written as one
//! JSON line and read back by `roost logs`.

use crate::config::LogLevel;
use base64::Engine;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;
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
    pub timestamp: Timestamp,
    #[serde(with = "level_serde")]
    pub log_level: LogLevel,
    pub trace_id: uuid::Uuid,
    pub account_id: Arc<str>,
    pub status: Status,
    pub event_type: EventType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<Arc<str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_id: Option<Arc<str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<std::net::IpAddr>,
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
        trace_id: uuid::Uuid,
        account_id: Arc<str>,
        event_type: EventType,
        status: Status,
    ) -> Event {
        Event {
            timestamp: Timestamp(unix_millis),
            log_level: match status {
                Status::Success => LogLevel::Info,
                Status::Failure => LogLevel::Error,
            },
            trace_id,
            account_id,
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

    pub fn client_id(mut self, client_id: impl Into<Arc<str>>) -> Event {
        self.client_id = Some(client_id.into());
        self
    }

    pub fn principal_id(mut self, principal_id: impl Into<Arc<str>>) -> Event {
        self.principal_id = Some(principal_id.into());
        self
    }

    pub fn source(mut self, peer: std::net::SocketAddr) -> Event {
        self.source_ip = Some(peer.ip().to_canonical());
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
        let mut line = Vec::new();
        self.write_json_line(&mut line);
        // serde_json writes UTF-8.
        String::from_utf8(line).unwrap_or_default()
    }

    /// Appends the JSON line (without its newline) to `out`: the bytes
    /// `serde_json` writes for this event (a property test holds the two
    /// together), without its per-byte escaping of the fields that cannot
    /// need it (the time, the trace id, the address, the enums).
    pub fn write_json_line(&self, out: &mut Vec<u8>) {
        use std::io::Write as _;
        let mut text = [0u8; 23];
        self.timestamp.write_to(&mut text);
        out.extend_from_slice(b"{\"timestamp\":\"");
        out.extend_from_slice(&text);
        out.extend_from_slice(b"\",\"logLevel\":\"");
        out.extend_from_slice(self.log_level.as_str().as_bytes());
        out.extend_from_slice(b"\",\"traceId\":\"");
        out.extend_from_slice(
            self.trace_id
                .hyphenated()
                .encode_lower(&mut uuid::Uuid::encode_buffer())
                .as_bytes(),
        );
        out.extend_from_slice(b"\",\"accountId\":");
        push_json_str(out, &self.account_id);
        out.extend_from_slice(match self.status {
            Status::Success => b",\"status\":\"Success\",\"eventType\":\"",
            Status::Failure => b",\"status\":\"Failure\",\"eventType\":\"",
        });
        out.extend_from_slice(self.event_type.as_str().as_bytes());
        out.push(b'"');
        if let Some(protocol) = self.protocol {
            out.extend_from_slice(match protocol {
                Protocol::Mqtt => b",\"protocol\":\"MQTT\"",
                Protocol::Http => b",\"protocol\":\"HTTP\"",
            });
        }
        if let Some(client_id) = &self.client_id {
            out.extend_from_slice(b",\"clientId\":");
            push_json_str(out, client_id);
        }
        if let Some(principal_id) = &self.principal_id {
            out.extend_from_slice(b",\"principalId\":");
            push_json_str(out, principal_id);
        }
        // Writing to a Vec cannot fail.
        if let Some(ip) = self.source_ip {
            let _ = write!(out, ",\"sourceIp\":\"{ip}\"");
        }
        if let Some(port) = self.source_port {
            let _ = write!(out, ",\"sourcePort\":{port}");
        }
        for (name, value) in [
            (&b",\"topicName\":"[..], &self.topic_name),
            (b",\"reason\":", &self.reason),
            (b",\"details\":", &self.details),
            (b",\"payload\":", &self.payload),
        ] {
            if let Some(value) = value {
                out.extend_from_slice(name);
                push_json_str(out, value);
            }
        }
        if self.payload_truncated {
            out.extend_from_slice(b",\"payloadTruncated\":true");
        }
        out.push(b'}');
    }

    /// Reads a line written by [`Event::to_json_line`].
    pub fn from_json_line(line: &str) -> Option<Event> {
        serde_json::from_str(line).ok()
    }

    /// The event's time in Unix milliseconds.
    pub fn unix_millis(&self) -> Option<i64> {
        Some(self.timestamp.0)
    }
}

/// `text` as a JSON string, escaped as `serde_json` escapes it; most
/// strings need no escaping and are copied whole.
fn push_json_str(out: &mut Vec<u8>, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = text.as_bytes();
    out.push(b'"');
    if !bytes.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\') {
        out.extend_from_slice(bytes);
    } else {
        for &b in bytes {
            match b {
                b'"' => out.extend_from_slice(b"\\\""),
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                0x08 => out.extend_from_slice(b"\\b"),
                0x0c => out.extend_from_slice(b"\\f"),
                0..0x20 => out.extend_from_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(b >> 4)],
                    HEX[usize::from(b & 0xf)],
                ]),
                _ => out.push(b),
            }
        }
    }
    out.push(b'"');
}

/// When an event happened, in Unix milliseconds; written (and read) in
/// AWS's format. Formatting waits for the writer: the gateway's tasks only
/// read the clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The time in AWS's format, the date and time of day of the last
    /// second formatted being kept for the next event in the same second.
    fn write_to(self, out: &mut [u8; 23]) {
        thread_local! {
            static LAST_SECOND: std::cell::Cell<(i64, [u8; 19])> =
                const { std::cell::Cell::new((i64::MIN, [0; 19])) };
        }
        let second = self.0.div_euclid(1000);
        let millis = self.0.rem_euclid(1000) as u16;
        let (cached, mut prefix) = LAST_SECOND.get();
        if cached != second {
            let text = format_timestamp(second * 1000);
            match text.as_bytes().get(..19) {
                Some(bytes) => prefix.copy_from_slice(bytes),
                None => prefix = *b"0000-00-00 00:00:00",
            }
            LAST_SECOND.set((second, prefix));
        }
        out[..19].copy_from_slice(&prefix);
        out[19] = b'.';
        out[20] = b'0' + (millis / 100) as u8;
        out[21] = b'0' + (millis / 10 % 10) as u8;
        out[22] = b'0' + (millis % 10) as u8;
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = [0u8; 23];
        self.write_to(&mut text);
        f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut text = [0u8; 23];
        self.write_to(&mut text);
        s.serialize_str(std::str::from_utf8(&text).map_err(serde::ser::Error::custom)?)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let at = PrimitiveDateTime::parse(&text, TIMESTAMP).map_err(serde::de::Error::custom)?;
        Ok(Timestamp(
            (at.assume_utc().unix_timestamp_nanos() / 1_000_000) as i64,
        ))
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
            uuid::Uuid::from_u128(1),
            "000000000000".into(),
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
        let event = Event::new(
            0,
            uuid::Uuid::nil(),
            "a".into(),
            EventType::PublishIn,
            Status::Success,
        );
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

    #[test]
    fn timestamps_in_one_second_share_its_prefix_and_keep_their_millis() {
        assert_eq!(
            Timestamp(1_500_000_000_123).to_string(),
            "2017-07-14 02:40:00.123"
        );
        assert_eq!(
            Timestamp(1_500_000_000_007).to_string(),
            "2017-07-14 02:40:00.007"
        );
        assert_eq!(
            Timestamp(1_500_000_001_000).to_string(),
            "2017-07-14 02:40:01.000"
        );
        assert_eq!(Timestamp(999).to_string(), "1970-01-01 00:00:00.999");
    }

    proptest::proptest! {
        /// Any time from 1970 to 9999 is written as AWS writes it and reads
        /// back to the same millisecond, whatever was formatted before it.
        #[test]
        fn timestamps_read_back(ms in 0i64..253_402_300_800_000, before in 0i64..253_402_300_800_000) {
            let _ = Timestamp(before).to_string();
            let text = Timestamp(ms).to_string();
            proptest::prop_assert_eq!(&text, &format_timestamp(ms));
            let json = serde_json::to_string(&Timestamp(ms)).unwrap();
            proptest::prop_assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), Timestamp(ms));
        }
    }

    fn any_text() -> impl proptest::strategy::Strategy<Value = Option<String>> {
        proptest::option::of(proptest::string::string_regex("(?s).{0,24}").unwrap())
    }

    proptest::proptest! {
        /// The hand-written line is, byte for byte, what serde_json writes,
        /// and reads back to the same event.
        #[test]
        fn the_written_line_is_serde_jsons(
            ms in 0i64..253_402_300_800_000,
            trace in proptest::prelude::any::<u128>(),
            account in "[0-9]{12}|\\PC{0,4}",
            failure in proptest::prelude::any::<bool>(),
            kind in 0usize..EventType::ALL.len(),
            level in 0u8..5,
            http in proptest::option::of(proptest::prelude::any::<bool>()),
            client in any_text(),
            principal in any_text(),
            ip in proptest::option::of(proptest::prelude::any::<std::net::IpAddr>()),
            port in proptest::option::of(proptest::prelude::any::<u16>()),
            topic in any_text(),
            reason in any_text(),
            details in any_text(),
            payload in proptest::option::of(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..32)),
        ) {
            let status = if failure { Status::Failure } else { Status::Success };
            let mut event = Event::new(ms, uuid::Uuid::from_u128(trace), account.as_str().into(), EventType::ALL[kind], status)
                .at_level(LogLevel::from_u8(level));
            event.protocol = http.map(|h| if h { Protocol::Http } else { Protocol::Mqtt });
            event.client_id = client.map(Into::into);
            event.principal_id = principal.map(Into::into);
            event.source_ip = ip;
            event.source_port = port;
            event.topic_name = topic;
            event.reason = reason;
            event.details = details;
            if let Some(payload) = payload {
                event = event.payload(&payload);
            }
            let line = event.to_json_line();
            proptest::prop_assert_eq!(&line, &serde_json::to_string(&event).unwrap());
            proptest::prop_assert_eq!(Event::from_json_line(&line), Some(event));
        }
    }
}
