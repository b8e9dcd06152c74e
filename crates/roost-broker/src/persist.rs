//! Gateway state that survives a restart: persistent sessions (their
//! subscriptions and queued messages) and retained messages, in their own
//! SQLite file beside the registry's.
//!
//! The live state is in memory; it is written here as a snapshot when Roost
//! stops and periodically while it runs, and read back at start. A crash
//! loses what changed since the last snapshot (the interval is configurable);
//! a graceful stop loses nothing.

use crate::router::Message;
use crate::session::Outgoing;
use crate::{Broker, Shared};
use base64::Engine;
use bytes::Bytes;
use roost_mqtt::{PayloadFormat, PublishProperties, QoS, RetainHandling, SubscriptionOptions};
use serde::{Deserialize, Serialize};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{Row, SqlitePool};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, thiserror::Error)]
#[error("gateway state storage: {0}")]
pub struct PersistError(String);

impl From<sqlx::Error> for PersistError {
    fn from(e: sqlx::Error) -> Self {
        Self(e.to_string())
    }
}

impl From<sqlx::migrate::MigrateError> for PersistError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        Self(e.to_string())
    }
}

pub struct BrokerStore {
    pool: SqlitePool,
}

fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// An `Instant` as wall-clock milliseconds, and back: Instants do not survive a restart.
fn instant_to_unix(at: Instant, now: Instant, wall: SystemTime) -> i64 {
    if at >= now {
        unix_ms(wall + (at - now))
    } else {
        unix_ms(wall.checked_sub(now - at).unwrap_or(UNIX_EPOCH))
    }
}

fn unix_to_instant(ms: i64, now: Instant, wall: SystemTime) -> Instant {
    let wall_ms = unix_ms(wall);
    if ms >= wall_ms {
        now + Duration::from_millis((ms - wall_ms) as u64)
    } else {
        now.checked_sub(Duration::from_millis((wall_ms - ms) as u64))
            .unwrap_or(now)
    }
}

fn qos_of(n: i64) -> QoS {
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

fn store_properties(p: &PublishProperties) -> String {
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

fn load_properties(text: &str) -> PublishProperties {
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

#[derive(Serialize, Deserialize)]
struct StoredSubscription {
    filter: String,
    qos: u8,
    no_local: bool,
    retain_as_published: bool,
    retain_handling: u8,
}

impl BrokerStore {
    pub const FILE: &'static str = "gateway.db";

    /// Opens (creating, mode 0600) and migrates the gateway's state file.
    pub async fn open(path: &Path) -> Result<Self, PersistError> {
        if !path.exists() {
            roost_registry::pki::write_private_file(path, b"")
                .map_err(|e| PersistError(e.to_string()))?;
        }
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self { pool })
    }
}

impl Broker {
    /// Writes every persistent session and retained message, replacing the
    /// previous snapshot in one transaction.
    pub async fn save_state(&self, store: &BrokerStore) -> Result<SavedCounts, PersistError> {
        let snapshot = self.shared.snapshot();
        let mut tx = store.pool.begin().await?;
        sqlx::query("DELETE FROM session_messages")
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM sessions")
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM retained")
            .execute(&mut *tx)
            .await?;
        let counts = SavedCounts {
            sessions: snapshot.sessions.len(),
            messages: snapshot.sessions.iter().map(|s| s.queue.len()).sum(),
            retained: snapshot.retained.len(),
        };
        for s in snapshot.sessions {
            sqlx::query("INSERT INTO sessions (client_id, expiry_secs, disconnected_at, subscriptions) VALUES (?, ?, ?, ?)")
                .bind(&s.client_id)
                .bind(s.expiry_secs)
                .bind(s.disconnected_at)
                .bind(serde_json::to_string(&s.subscriptions).expect("subscriptions serialise"))
                .execute(&mut *tx)
                .await?;
            for (seq, (outgoing, expires_at)) in s.queue.into_iter().enumerate() {
                sqlx::query(
                    "INSERT INTO session_messages (client_id, seq, topic, payload, qos, retain, dup, properties, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(&s.client_id)
                .bind(seq as i64)
                .bind(&outgoing.message.topic)
                .bind(outgoing.message.payload.as_ref())
                .bind(outgoing.qos as i64)
                .bind(outgoing.retain)
                .bind(outgoing.dup)
                .bind(store_properties(&outgoing.message.properties))
                .bind(expires_at)
                .execute(&mut *tx)
                .await?;
            }
        }
        for (message, expires_at) in snapshot.retained {
            sqlx::query("INSERT INTO retained (topic, payload, qos, properties, expires_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)")
                .bind(&message.topic)
                .bind(message.payload.as_ref())
                .bind(message.qos as i64)
                .bind(store_properties(&message.properties))
                .bind(expires_at)
                .bind(unix_ms(SystemTime::now()))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(counts)
    }

    /// Reads the last snapshot back: sessions come back detached, with their
    /// subscriptions in the index and their queues intact.
    pub async fn restore_state(&self, store: &BrokerStore) -> Result<SavedCounts, PersistError> {
        let now = Instant::now();
        let wall = SystemTime::now();
        let mut counts = SavedCounts::default();
        for row in sqlx::query("SELECT * FROM retained")
            .fetch_all(&store.pool)
            .await?
        {
            let expires_at: Option<i64> = row.get("expires_at");
            if expires_at.is_some_and(|e| e <= unix_ms(wall)) {
                continue;
            }
            let mut message = Message::new(
                row.get::<String, _>("topic"),
                Bytes::from(row.get::<Vec<u8>, _>("payload")),
                qos_of(row.get("qos")),
            );
            message.retain = true;
            message.properties = load_properties(row.get("properties"));
            message.expires_at = expires_at.map(|e| unix_to_instant(e, now, wall));
            self.shared.router.retain(&Arc::new(message));
            counts.retained += 1;
        }
        for row in sqlx::query("SELECT * FROM sessions")
            .fetch_all(&store.pool)
            .await?
        {
            let client_id: String = row.get("client_id");
            let expiry = Duration::from_secs(row.get::<i64, _>("expiry_secs").max(0) as u64);
            let disconnected_at = unix_to_instant(row.get("disconnected_at"), now, wall);
            if now.saturating_duration_since(disconnected_at) >= expiry {
                continue;
            }
            let subscriptions: Vec<StoredSubscription> =
                serde_json::from_str(row.get("subscriptions")).unwrap_or_default();
            let messages =
                sqlx::query("SELECT * FROM session_messages WHERE client_id = ? ORDER BY seq")
                    .bind(&client_id)
                    .fetch_all(&store.pool)
                    .await?;
            let (session, _) = self.shared.sessions.open(&client_id, true);
            let mut state = session.lock();
            state.expiry = expiry;
            state.disconnected_at = Some(disconnected_at);
            for s in subscriptions {
                let options = SubscriptionOptions {
                    qos: qos_of(i64::from(s.qos)),
                    no_local: s.no_local,
                    retain_as_published: s.retain_as_published,
                    retain_handling: match s.retain_handling {
                        1 => RetainHandling::SendIfNewSubscription,
                        2 => RetainHandling::DoNotSend,
                        _ => RetainHandling::SendAtSubscribe,
                    },
                };
                self.shared.router.subscribe(&s.filter, &client_id, options);
                state.subscriptions.insert(s.filter, options);
            }
            for m in messages {
                let expires_at: Option<i64> = m.get("expires_at");
                let mut message = Message::new(
                    m.get::<String, _>("topic"),
                    Bytes::from(m.get::<Vec<u8>, _>("payload")),
                    qos_of(m.get("qos")),
                );
                message.properties = load_properties(m.get("properties"));
                message.expires_at = expires_at.map(|e| unix_to_instant(e, now, wall));
                let outgoing = Outgoing {
                    qos: message.qos,
                    message: Arc::new(message),
                    retain: m.get("retain"),
                    dup: m.get("dup"),
                };
                state.queued_bytes += outgoing.message.payload.len();
                state.queue.push_back(outgoing);
                counts.messages += 1;
            }
            drop(state);
            counts.sessions += 1;
        }
        Ok(counts)
    }
}

/// How much a save or restore moved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SavedCounts {
    pub sessions: usize,
    pub messages: usize,
    pub retained: usize,
}

pub(crate) struct SessionSnapshot {
    client_id: String,
    expiry_secs: i64,
    disconnected_at: i64,
    subscriptions: Vec<StoredSubscription>,
    queue: Vec<(Outgoing, Option<i64>)>,
}

pub(crate) struct Snapshot {
    sessions: Vec<SessionSnapshot>,
    retained: Vec<(Arc<Message>, Option<i64>)>,
}

impl Shared {
    /// Persistent sessions (attached ones as if they disconnected now, with
    /// their in-flight messages first) and retained messages.
    fn snapshot(&self) -> Snapshot {
        let now = Instant::now();
        let wall = SystemTime::now();
        let expires = |m: &Message| m.expires_at.map(|at| instant_to_unix(at, now, wall));
        let mut sessions = Vec::new();
        for session in self.sessions.all() {
            let state = session.lock();
            if state.expiry.is_zero() {
                continue;
            }
            let disconnected_at = state
                .disconnected_at
                .map(|at| instant_to_unix(at, now, wall))
                .unwrap_or_else(|| unix_ms(wall));
            let mut queue: Vec<(Outgoing, Option<i64>)> = state
                .inflight
                .iter()
                .filter(|i| !i.released)
                .map(|i| {
                    let mut o = i.outgoing.clone();
                    o.dup = true;
                    (o, None)
                })
                .chain(state.queue.iter().map(|o| (o.clone(), None)))
                .filter(|(o, _)| o.qos != QoS::AtMostOnce)
                .collect();
            for (o, e) in &mut queue {
                *e = expires(&o.message);
            }
            sessions.push(SessionSnapshot {
                client_id: session.client_id.clone(),
                expiry_secs: state.expiry.as_secs() as i64,
                disconnected_at,
                subscriptions: state
                    .subscriptions
                    .iter()
                    .map(|(filter, o)| StoredSubscription {
                        filter: filter.clone(),
                        qos: o.qos as u8,
                        no_local: o.no_local,
                        retain_as_published: o.retain_as_published,
                        retain_handling: o.retain_handling as u8,
                    })
                    .collect(),
                queue,
            });
        }
        let retained = self.router.retained_topics().into_iter().map(|(m, _)| {
            let e = expires(&m);
            (m, e)
        });
        Snapshot {
            sessions,
            retained: retained.collect(),
        }
    }
}
