//! Event logs in the shape of AWS IoT's `AWSIotLogsV2`: what happened to a
//! device (connected, refused, published, denied, disconnected), to a rule
//! (matched, an action failed) and to a job execution, one JSON object per
//! event.
//!
//! What this crate is for: deciding and describing. [`Event`] is the record
//! and its JSON line; [`LogLevel`], [`LogTarget`] and [`LoggingConfig`] are
//! AWS's logging options and per-target levels, and
//! [`LoggingConfig::level_for`] picks the level that applies to one client
//! (the most specific target wins). [`EventLog`] is the handle the gateway
//! holds: the live configuration, a per-connection level that costs two
//! atomic loads on the publish path ([`ConnectionLevel`]), and a bounded
//! queue towards whatever writes the events, whose overflow is counted.
//!
//! What it must never do: any I/O, block the caller, or let a payload into a
//! record unless the level for that client is DEBUG. Records hold no keys,
//! signatures or passwords: nothing here accepts one.
#![forbid(unsafe_code)]

mod config;
mod event;
mod handle;
mod since;

pub use config::{
    ConfigError, LogLevel, LogTarget, LoggingConfig, LoggingOptions, Subject, TargetType,
    MAX_TARGET_NAME_LEN,
};
pub use event::{Event, EventType, Protocol, Status, Timestamp, MAX_LOGGED_PAYLOAD};
pub use handle::{ConnectionLevel, EventLog, EventLogCounters, QUEUE_CAPACITY};
pub use since::{parse_since, SinceError};
/// An event's trace id: a UUID, written in its hyphenated form.
pub use uuid::Uuid as TraceId;
