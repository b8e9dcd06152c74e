//! What a honeypot service saw (an [`Attempt`]) and what the canary reports
//! (an [`Incident`]): the JSON published to the gateway.
//!
//! The payload keeps the scenario's shape, a top-level `message` object with
//! `clientAddress` and `serverPort`, so the scenario's rules (`SELECT * …`,
//! `SELECT message as msg …`) work on it unchanged. Pure: no I/O, no clock.

use serde_json::{json, Map, Value};
use std::net::SocketAddr;
use time::OffsetDateTime;

/// The longest text kept of any one field an attacker sent (a password, a
/// user agent, a command): enough to read it, bounded so that an attacker
/// cannot make an incident large.
pub const MAX_FIELD_CHARS: usize = 512;

/// One intrusion attempt, as a honeypot service recorded it.
#[derive(Clone, Debug, PartialEq)]
pub struct Attempt {
    /// The service's name (`http`, `ssh`, …): `ServiceKind::name`.
    pub service: &'static str,
    pub source: SocketAddr,
    pub server_port: u16,
    pub at: OffsetDateTime,
    /// What was tried, service by service (path, user agent, command …).
    pub details: Map<String, Value>,
    /// The credential offered, if any: what a summary lists.
    pub credential: Option<Credential>,
}

impl Attempt {
    pub fn new(service: &'static str, source: SocketAddr, server_port: u16) -> Self {
        Self {
            service,
            source,
            server_port,
            at: OffsetDateTime::now_utc(),
            details: Map::new(),
            credential: None,
        }
    }

    /// Adds a detail, its text cut to [`MAX_FIELD_CHARS`].
    pub fn detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_owned(), bounded(value.into()));
        self
    }

    pub fn credential(mut self, credential: Credential) -> Self {
        self.credential = Some(credential);
        self
    }
}

/// A credential an attacker offered.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Credential {
    pub username: String,
    /// The password in clear where the protocol sends it so; for protocols
    /// that send a hash or a challenge response, that (hex) instead.
    pub password: Option<String>,
    /// A public key offered (its OpenSSH fingerprint).
    pub public_key: Option<String>,
}

impl Credential {
    pub fn password(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: cut(username.into()),
            password: Some(cut(password.into())),
            public_key: None,
        }
    }

    pub fn username(username: impl Into<String>) -> Self {
        Self {
            username: cut(username.into()),
            password: None,
            public_key: None,
        }
    }

    pub fn public_key(username: impl Into<String>, fingerprint: impl Into<String>) -> Self {
        Self {
            username: cut(username.into()),
            password: None,
            public_key: Some(cut(fingerprint.into())),
        }
    }

    pub fn to_json(&self) -> Value {
        let mut object = Map::new();
        object.insert("username".into(), self.username.clone().into());
        if let Some(password) = &self.password {
            object.insert("password".into(), password.clone().into());
        }
        if let Some(key) = &self.public_key {
            object.insert("publicKey".into(), key.clone().into());
        }
        Value::Object(object)
    }
}

/// What the canary publishes: one attempt, a summary of a source's attempts
/// over a window, or incidents folded together when the outbox was full.
#[derive(Clone, Debug, PartialEq)]
pub struct Incident {
    pub id: uuid::Uuid,
    pub kind: IncidentKind,
    pub service: &'static str,
    /// The attacker's address (for a fold of several sources, the first).
    pub client_address: String,
    pub server_port: u16,
    pub at: OffsetDateTime,
    /// How many attempts this incident stands for.
    pub attempts: u64,
    pub details: Map<String, Value>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IncidentKind {
    /// One attempt, reported at once.
    Attempt,
    /// The attempts from one source over a window after its first.
    Summary,
    /// Incidents folded together because the outbox was full.
    Folded,
}

impl IncidentKind {
    pub fn name(self) -> &'static str {
        match self {
            IncidentKind::Attempt => "attempt",
            IncidentKind::Summary => "summary",
            IncidentKind::Folded => "folded",
        }
    }
}

impl Incident {
    /// The attempt as an incident of its own.
    pub fn of_attempt(attempt: &Attempt) -> Self {
        let mut details = attempt.details.clone();
        if let Some(credential) = &attempt.credential {
            details.insert(
                "credentials".into(),
                Value::Array(vec![credential.to_json()]),
            );
        }
        Self {
            id: uuid::Uuid::new_v4(),
            kind: IncidentKind::Attempt,
            service: attempt.service,
            client_address: attempt.source.ip().to_string(),
            server_port: attempt.server_port,
            at: attempt.at,
            attempts: 1,
            details,
        }
    }

    /// The published JSON; `canary` is the thing name.
    pub fn to_json(&self, canary: &str) -> Value {
        json!({
            "message": {
                "clientAddress": self.client_address,
                "serverPort": self.server_port,
            },
            "incidentId": self.id.to_string(),
            "timestamp": timestamp(self.at),
            "service": self.service,
            "canary": canary,
            "kind": self.kind.name(),
            "attempts": self.attempts,
            "details": Value::Object(self.details.clone()),
        })
    }

    pub fn to_payload(&self, canary: &str) -> Vec<u8> {
        // Serialising a `Value` cannot fail.
        serde_json::to_vec(&self.to_json(canary)).unwrap_or_default()
    }
}

/// RFC 3339 in UTC with milliseconds, as AWS writes timestamps.
pub fn timestamp(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond()
    )
}

/// Text cut to [`MAX_FIELD_CHARS`] characters (never inside a character).
pub fn cut(text: String) -> String {
    match text.char_indices().nth(MAX_FIELD_CHARS) {
        Some((end, _)) => text[..end].to_owned(),
        None => text,
    }
}

/// Bytes an attacker sent, as text: UTF-8 where it is, escaped where not,
/// cut to [`MAX_FIELD_CHARS`].
pub fn printable(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    cut(text.escape_debug().to_string())
}

fn bounded(value: Value) -> Value {
    match value {
        Value::String(s) => Value::String(cut(s)),
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .take(MAX_FIELD_CHARS / 8)
                .map(bounded)
                .collect(),
        ),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .take(MAX_FIELD_CHARS / 8)
                .map(|(k, v)| (cut(k), bounded(v)))
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> SocketAddr {
        "203.0.113.9:51515".parse().unwrap()
    }

    #[test]
    fn an_attempt_keeps_the_scenario_shape() {
        let attempt = Attempt::new("http", source(), 8080)
            .detail("path", "/login")
            .credential(Credential::password("admin", "hunter2"));
        let json = Incident::of_attempt(&attempt).to_json("iot-webinar-device");
        assert_eq!(json["message"]["clientAddress"], "203.0.113.9");
        assert_eq!(json["message"]["serverPort"], 8080);
        assert_eq!(json["service"], "http");
        assert_eq!(json["canary"], "iot-webinar-device");
        assert_eq!(json["kind"], "attempt");
        assert_eq!(json["attempts"], 1);
        assert_eq!(json["details"]["path"], "/login");
        assert_eq!(json["details"]["credentials"][0]["username"], "admin");
        assert_eq!(json["details"]["credentials"][0]["password"], "hunter2");
        assert!(uuid::Uuid::parse_str(json["incidentId"].as_str().unwrap()).is_ok());
        let ts = json["timestamp"].as_str().unwrap();
        assert!(ts.ends_with('Z') && ts.len() == 24, "{ts}");
    }

    #[test]
    fn attacker_text_is_bounded() {
        let long = "x".repeat(10_000);
        let attempt = Attempt::new("tcp", source(), 9).detail("first", long.clone());
        assert_eq!(
            attempt.details["first"].as_str().unwrap().len(),
            MAX_FIELD_CHARS
        );
        let credential = Credential::password(long.clone(), "é".repeat(1000));
        assert_eq!(credential.username.len(), MAX_FIELD_CHARS);
        assert_eq!(
            credential.password.unwrap().chars().count(),
            MAX_FIELD_CHARS
        );
        assert_eq!(printable(b"ab\x00\xffc"), "ab\\0\u{fffd}c");
    }
}
