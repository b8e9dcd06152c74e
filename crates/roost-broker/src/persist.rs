//! Gateway state that survives a restart: persistent sessions (their
//! subscriptions and queued QoS 1/2 messages) and retained messages, in
//! their own SQLite file beside the registry's.
//!
//! The live state is in memory. Every change to its durable part reaches
//! this file as it happens: the journal (`journal.rs`) carries it to one
//! writer task, which hands what is waiting here as one batch, written in
//! one transaction ([`BrokerStore::apply`]). At start, [`Broker::open_state`]
//! cleans the file up, reads it back and starts the writer.
//!
//! What a commit survives depends on [`StateSync`]: the file is in WAL mode;
//! with `normal` a commit is in the operating system's hands when it
//! returns (it survives the process being killed, not a power loss); with
//! `full` it is also fsynced (it survives a power loss too, at the price of
//! one fsync per transaction).
//!
//! Never: hold anything of a clean session or a QoS 0 delivery, or keep a
//! row that the memory it records no longer has once its batch is committed.

use crate::journal::{self, Journal, Op, StateUnavailable};
use crate::router::Message;
use crate::session::{unix_ms, Outgoing};
use crate::{Broker, Shared};
use base64::Engine;
use bytes::Bytes;
use roost_mqtt::{PayloadFormat, PublishProperties, QoS, RetainHandling, SubscriptionOptions};
use serde::{Deserialize, Serialize};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Rows per multi-row statement (9 values a row, far below SQLite's limit).
const ROWS_PER_STATEMENT: usize = 64;

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

/// How hard a commit to `gateway.db` is pushed to the disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StateSync {
    /// SQLite `synchronous=NORMAL` in WAL mode: no fsync per commit. A
    /// committed change survives the process being killed (the OS has the
    /// pages), not a power loss or kernel crash, which may lose the last
    /// commits (the file stays consistent).
    #[default]
    Normal,
    /// SQLite `synchronous=FULL`: the WAL is fsynced at every commit, so a
    /// committed change survives a power loss too.
    Full,
}

impl FromStr for StateSync {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "normal" => Ok(StateSync::Normal),
            "full" => Ok(StateSync::Full),
            other => Err(format!(
                "unknown state sync '{other}': use 'normal' or 'full'"
            )),
        }
    }
}

pub struct BrokerStore {
    pool: SqlitePool,
}

/// An `Instant` as wall-clock milliseconds, and back: Instants do not survive a restart.
fn instant_to_unix(at: Instant, now: Instant, wall: SystemTime) -> i64 {
    if at >= now {
        unix_ms(wall + (at - now))
    } else {
        unix_ms(wall.checked_sub(now - at).unwrap_or(std::time::UNIX_EPOCH))
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

fn retain_handling_of(n: i64) -> RetainHandling {
    match n {
        1 => RetainHandling::SendIfNewSubscription,
        2 => RetainHandling::DoNotSend,
        _ => RetainHandling::SendAtSubscribe,
    }
}

type MessageKey = (u64, u64);

/// A persistent session's row.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SessionRow {
    client_id: String,
    expiry_secs: u64,
    disconnected_at: Option<i64>,
}

/// What one batch of changes leaves in the file, with the changes that
/// cancel out removed: a message queued and acknowledged within the batch
/// is never written, a message queued and sent is written with DUP, a
/// session ended takes everything else it did with it, and the last change
/// to a subscription or retained topic wins. What is left commutes, so it
/// is written in any order.
#[derive(Debug, Default)]
struct Plan {
    ended: BTreeSet<u64>,
    sessions: BTreeMap<u64, SessionRow>,
    /// `None`: unsubscribed.
    subscriptions: BTreeMap<(u64, String), Option<SubscriptionOptions>>,
    queued: BTreeMap<MessageKey, Outgoing>,
    sent: BTreeSet<MessageKey>,
    done: BTreeSet<MessageKey>,
    /// An empty payload clears the topic.
    retained: BTreeMap<String, (Arc<Message>, i64)>,
}

impl Plan {
    fn of(ops: &[Op]) -> Self {
        let mut plan = Plan::default();
        for op in ops {
            match op {
                Op::Session {
                    id,
                    client_id,
                    expiry_secs,
                    disconnected_at,
                } => {
                    let row = SessionRow {
                        client_id: client_id.clone(),
                        expiry_secs: *expiry_secs,
                        disconnected_at: *disconnected_at,
                    };
                    plan.sessions.insert(*id, row);
                }
                Op::SessionEnded { id } => {
                    plan.ended.insert(*id);
                }
                Op::Subscribed {
                    session,
                    filter,
                    options,
                } => {
                    plan.subscriptions
                        .insert((*session, filter.clone()), Some(*options));
                }
                Op::Unsubscribed { session, filter } => {
                    plan.subscriptions.insert((*session, filter.clone()), None);
                }
                Op::Queued { session, outgoing } => {
                    plan.queued
                        .insert((*session, outgoing.seq), outgoing.clone());
                }
                Op::Sent { session, seq } => match plan.queued.get_mut(&(*session, *seq)) {
                    Some(outgoing) => outgoing.dup = true,
                    None => {
                        plan.sent.insert((*session, *seq));
                    }
                },
                Op::Done { session, seq } => {
                    let key = (*session, *seq);
                    if plan.queued.remove(&key).is_none() {
                        plan.sent.remove(&key);
                        plan.done.insert(key);
                    }
                }
                Op::Retained { message, set_at } => {
                    plan.retained
                        .insert(message.topic.clone(), (message.clone(), *set_at));
                }
            }
        }
        if !plan.ended.is_empty() {
            let ended = &plan.ended;
            plan.sessions.retain(|id, _| !ended.contains(id));
            plan.subscriptions.retain(|(id, _), _| !ended.contains(id));
            plan.queued.retain(|(id, _), _| !ended.contains(id));
            plan.sent.retain(|(id, _)| !ended.contains(id));
            plan.done.retain(|(id, _)| !ended.contains(id));
        }
        plan
    }
}

/// A session read back at start.
pub(crate) struct LoadedSession {
    id: u64,
    client_id: String,
    expiry: Duration,
    disconnected_at: i64,
    subscriptions: Vec<(String, SubscriptionOptions)>,
    /// In `seq` order.
    messages: Vec<Outgoing>,
}

/// Everything read back at start.
pub(crate) struct Loaded {
    sessions: Vec<LoadedSession>,
    /// With when each was set (Unix ms).
    retained: Vec<(Message, i64)>,
}

impl BrokerStore {
    pub const FILE: &'static str = "gateway.db";

    /// Opens (creating, mode 0600) and migrates the gateway's state file.
    pub async fn open(path: &Path, sync: StateSync) -> Result<Self, PersistError> {
        if !path.exists() {
            roost_registry::pki::write_private_file(path, b"")
                .map_err(|e| PersistError(e.to_string()))?;
        }
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match sync {
                StateSync::Normal => SqliteSynchronous::Normal,
                StateSync::Full => SqliteSynchronous::Full,
            })
            // Multi-row statements of every size up to ROWS_PER_STATEMENT,
            // three kinds, stay prepared.
            .statement_cache_capacity(4 * ROWS_PER_STATEMENT)
            .foreign_keys(true);
        // One connection: the writer is the only one writing, and start-up
        // reads before it starts.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self { pool })
    }

    /// Writes one batch of changes in one transaction.
    pub(crate) async fn apply(&self, ops: &[Op]) -> Result<(), PersistError> {
        let plan = Plan::of(ops);
        let now = Instant::now();
        let wall = SystemTime::now();
        let mut tx = self.pool.begin().await?;
        for id in &plan.ended {
            for sql in [
                "DELETE FROM session_messages WHERE session_id = ?",
                "DELETE FROM session_subscriptions WHERE session_id = ?",
                "DELETE FROM sessions WHERE id = ?",
            ] {
                sqlx::query(sql).bind(*id as i64).execute(&mut *tx).await?;
            }
        }
        for (id, row) in &plan.sessions {
            sqlx::query(
                "INSERT INTO sessions (id, client_id, expiry_secs, disconnected_at) VALUES (?, ?, ?, ?)
                 ON CONFLICT (id) DO UPDATE SET client_id = excluded.client_id,
                     expiry_secs = excluded.expiry_secs, disconnected_at = excluded.disconnected_at",
            )
            .bind(*id as i64)
            .bind(&row.client_id)
            .bind(row.expiry_secs as i64)
            .bind(row.disconnected_at)
            .execute(&mut *tx)
            .await?;
        }
        for ((id, filter), options) in &plan.subscriptions {
            let query = match options {
                Some(o) => sqlx::query(
                    "INSERT OR REPLACE INTO session_subscriptions
                     (session_id, filter, qos, no_local, retain_as_published, retain_handling)
                     VALUES (?, ?, ?, ?, ?, ?)",
                )
                .bind(*id as i64)
                .bind(filter)
                .bind(o.qos as i64)
                .bind(o.no_local)
                .bind(o.retain_as_published)
                .bind(o.retain_handling as i64),
                None => sqlx::query(
                    "DELETE FROM session_subscriptions WHERE session_id = ? AND filter = ?",
                )
                .bind(*id as i64)
                .bind(filter),
            };
            query.execute(&mut *tx).await?;
        }
        let queued: Vec<_> = plan.queued.iter().collect();
        for chunk in queued.chunks(ROWS_PER_STATEMENT) {
            let mut insert = QueryBuilder::<Sqlite>::new(
                "INSERT OR REPLACE INTO session_messages
                 (session_id, seq, topic, payload, qos, retain, dup, properties, expires_at) ",
            );
            insert.push_values(chunk, |mut row, ((id, seq), outgoing)| {
                let message = &outgoing.message;
                row.push_bind(*id as i64)
                    .push_bind(*seq as i64)
                    .push_bind(message.topic.as_str())
                    .push_bind(message.payload.as_ref())
                    .push_bind(outgoing.qos as i64)
                    .push_bind(outgoing.retain)
                    .push_bind(outgoing.dup)
                    .push_bind(store_properties(&message.properties))
                    .push_bind(message.expires_at.map(|at| instant_to_unix(at, now, wall)));
            });
            insert.build().execute(&mut *tx).await?;
        }
        for (keys, statement) in [
            (&plan.sent, "UPDATE session_messages SET dup = 1"),
            (&plan.done, "DELETE FROM session_messages"),
        ] {
            let keys: Vec<_> = keys.iter().collect();
            for chunk in keys.chunks(ROWS_PER_STATEMENT) {
                let mut query = QueryBuilder::<Sqlite>::new(statement);
                query.push(" WHERE (session_id, seq) IN (");
                query.push_values(chunk, |mut row, (id, seq)| {
                    row.push_bind(*id as i64).push_bind(*seq as i64);
                });
                query.push(")");
                query.build().execute(&mut *tx).await?;
            }
        }
        for (topic, (message, set_at)) in &plan.retained {
            if message.payload.is_empty() {
                sqlx::query("DELETE FROM retained WHERE topic = ?")
                    .bind(topic)
                    .execute(&mut *tx)
                    .await?;
                continue;
            }
            sqlx::query(
                "INSERT OR REPLACE INTO retained (topic, payload, qos, properties, expires_at, updated_at)
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(topic)
            .bind(message.payload.as_ref())
            .bind(message.qos as i64)
            .bind(store_properties(&message.properties))
            .bind(message.expires_at.map(|at| instant_to_unix(at, now, wall)))
            .bind(*set_at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Cleans the file up and reads it back, in one transaction: sessions
    /// that were connected when Roost stopped count as disconnected now;
    /// expired sessions, messages and retained messages go, and so do rows
    /// an interrupted run left without their session.
    pub(crate) async fn load(&self) -> Result<Loaded, PersistError> {
        let now = Instant::now();
        let wall = SystemTime::now();
        let now_ms = unix_ms(wall);
        let mut tx = self.pool.begin().await?;
        let cleanup: [(&str, bool); 7] = [
            ("UPDATE sessions SET disconnected_at = ? WHERE disconnected_at IS NULL", true),
            // Rows of sessions that a takeover replaced in a race: the newest is live.
            ("DELETE FROM sessions WHERE id NOT IN (SELECT MAX(id) FROM sessions GROUP BY client_id)", false),
            ("DELETE FROM sessions WHERE disconnected_at + expiry_secs * 1000 <= ?", true),
            ("DELETE FROM session_subscriptions WHERE session_id NOT IN (SELECT id FROM sessions)", false),
            ("DELETE FROM session_messages WHERE session_id NOT IN (SELECT id FROM sessions)", false),
            ("DELETE FROM session_messages WHERE expires_at <= ?", true),
            ("DELETE FROM retained WHERE expires_at <= ?", true),
        ];
        for (sql, binds_now) in cleanup {
            let query = sqlx::query(sql);
            let query = if binds_now { query.bind(now_ms) } else { query };
            query.execute(&mut *tx).await?;
        }
        let mut retained = Vec::new();
        for row in sqlx::query("SELECT * FROM retained ORDER BY topic")
            .fetch_all(&mut *tx)
            .await?
        {
            let mut message = Message::new(
                row.get::<String, _>("topic"),
                Bytes::from(row.get::<Vec<u8>, _>("payload")),
                qos_of(row.get("qos")),
            );
            message.retain = true;
            message.properties = load_properties(row.get("properties"));
            let expires_at: Option<i64> = row.get("expires_at");
            message.expires_at = expires_at.map(|e| unix_to_instant(e, now, wall));
            retained.push((message, row.get("updated_at")));
        }
        let mut sessions: BTreeMap<u64, LoadedSession> = BTreeMap::new();
        for row in sqlx::query("SELECT * FROM sessions")
            .fetch_all(&mut *tx)
            .await?
        {
            let id = row.get::<i64, _>("id") as u64;
            sessions.insert(
                id,
                LoadedSession {
                    id,
                    client_id: row.get("client_id"),
                    expiry: Duration::from_secs(row.get::<i64, _>("expiry_secs").max(0) as u64),
                    disconnected_at: row.get("disconnected_at"),
                    subscriptions: Vec::new(),
                    messages: Vec::new(),
                },
            );
        }
        for row in sqlx::query("SELECT * FROM session_subscriptions ORDER BY session_id, filter")
            .fetch_all(&mut *tx)
            .await?
        {
            let Some(session) = sessions.get_mut(&(row.get::<i64, _>("session_id") as u64)) else {
                continue;
            };
            let options = SubscriptionOptions {
                qos: qos_of(row.get("qos")),
                no_local: row.get("no_local"),
                retain_as_published: row.get("retain_as_published"),
                retain_handling: retain_handling_of(row.get("retain_handling")),
            };
            session.subscriptions.push((row.get("filter"), options));
        }
        for row in sqlx::query("SELECT * FROM session_messages ORDER BY session_id, seq")
            .fetch_all(&mut *tx)
            .await?
        {
            let Some(session) = sessions.get_mut(&(row.get::<i64, _>("session_id") as u64)) else {
                continue;
            };
            let expires_at: Option<i64> = row.get("expires_at");
            let mut message = Message::new(
                row.get::<String, _>("topic"),
                Bytes::from(row.get::<Vec<u8>, _>("payload")),
                qos_of(row.get("qos")),
            );
            message.properties = load_properties(row.get("properties"));
            message.expires_at = expires_at.map(|e| unix_to_instant(e, now, wall));
            let outgoing = Outgoing {
                qos: message.qos,
                message: Arc::new(message),
                retain: row.get("retain"),
                dup: row.get("dup"),
                seq: row.get::<i64, _>("seq") as u64,
            };
            session.messages.push(outgoing);
        }
        tx.commit().await?;
        Ok(Loaded {
            sessions: sessions.into_values().collect(),
            retained,
        })
    }
}

/// How much gateway state was read back at start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StateCounts {
    pub sessions: usize,
    pub messages: usize,
    pub retained: usize,
}

/// The running writer of the gateway state; [`StateWriter::finish`] commits
/// what is left and ends it.
pub struct StateWriter {
    journal: Arc<Journal>,
    task: tokio::task::JoinHandle<()>,
}

impl StateWriter {
    /// Commits every change made so far and stops the writer. Call it once
    /// the connections are closed.
    pub async fn finish(self) {
        self.journal.stop();
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "the gateway state writer panicked");
        }
    }
}

impl Broker {
    /// Reads the gateway state back (sessions come back detached, with their
    /// subscriptions in the index and their queues in their original order)
    /// and from now on writes every change to it as it happens. Once only,
    /// before any listener serves.
    pub async fn open_state(
        &self,
        store: BrokerStore,
    ) -> Result<(StateCounts, StateWriter), PersistError> {
        if self.shared.journal.get().is_some() {
            return Err(PersistError("the gateway state is already open".into()));
        }
        let loaded = store.load().await?;
        let counts = self.shared.restore(loaded);
        let journal = Arc::new(Journal::new(journal::QUEUE_CAPACITY));
        if self.shared.journal.set(journal.clone()).is_err() {
            return Err(PersistError("the gateway state is already open".into()));
        }
        let task = tokio::spawn(journal::run_writer(
            journal.clone(),
            store,
            self.shared.clone(),
        ));
        Ok((counts, StateWriter { journal, task }))
    }
}

impl Shared {
    fn restore(&self, loaded: Loaded) -> StateCounts {
        let now = Instant::now();
        let wall = SystemTime::now();
        let mut counts = StateCounts::default();
        for (message, set_at) in loaded.retained {
            self.router.restore_retained(Arc::new(message), set_at);
            counts.retained += 1;
        }
        for loaded in loaded.sessions {
            let session = self.sessions.restore(&loaded.client_id, loaded.id);
            let mut state = session.lock();
            state.durable = true;
            state.expiry = loaded.expiry;
            state.disconnected_at = Some(unix_to_instant(loaded.disconnected_at, now, wall));
            for (filter, options) in loaded.subscriptions {
                self.router.subscribe(&filter, &loaded.client_id, options);
                state.subscriptions.insert(filter, options);
            }
            for outgoing in loaded.messages {
                state.next_seq = state.next_seq.max(outgoing.seq);
                state.queued_bytes += outgoing.message.payload.len();
                state.queue.push_back(outgoing);
                counts.messages += 1;
            }
            drop(state);
            counts.sessions += 1;
        }
        counts
    }

    /// The journal, once the gateway state is open.
    pub(crate) fn journal(&self) -> Option<&Journal> {
        self.journal.get().map(|j| &**j)
    }

    /// Routes a message and, for QoS 1/2, waits until what it changed in the
    /// durable state (queued for persistent sessions, retained) is committed;
    /// QoS 0 only waits for room in the journal. For the entry points that
    /// answer after publishing (HTTPS, iot-data, republish).
    pub(crate) async fn publish_durably(
        &self,
        message: Message,
    ) -> Result<usize, StateUnavailable> {
        let qos = message.qos;
        let routed = self.route(message);
        let matched = routed.matched;
        if let (Some(ticket), Some(journal)) = (routed.ticket, self.journal()) {
            if qos == QoS::AtMostOnce {
                journal.wait_room(&self.metrics).await?;
            } else {
                journal.wait(ticket).await?;
            }
        }
        Ok(matched)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outgoing(seq: u64, topic: &str) -> Outgoing {
        Outgoing {
            message: Arc::new(Message::new(topic, &b"payload"[..], QoS::AtLeastOnce)),
            qos: QoS::AtLeastOnce,
            retain: false,
            dup: false,
            seq,
        }
    }

    fn queued(session: u64, seq: u64) -> Op {
        Op::Queued {
            session,
            outgoing: outgoing(seq, &format!("t/{seq}")),
        }
    }

    fn session(id: u64, client_id: &str, disconnected_at: Option<i64>) -> Op {
        Op::Session {
            id,
            client_id: client_id.into(),
            expiry_secs: 3600,
            disconnected_at,
        }
    }

    fn retained(topic: &str, payload: &'static [u8]) -> Op {
        let mut message = Message::new(topic, payload, QoS::AtLeastOnce);
        message.retain = true;
        Op::Retained {
            message: Arc::new(message),
            set_at: 1,
        }
    }

    #[test]
    fn a_batch_keeps_only_what_outlives_it() {
        let plan = Plan::of(&[
            session(1, "a", None),
            queued(1, 1),
            queued(1, 2),
            queued(1, 3),
            Op::Sent { session: 1, seq: 1 },
            Op::Done { session: 1, seq: 1 },
            Op::Sent { session: 1, seq: 2 },
            // Rows committed by earlier batches.
            Op::Sent { session: 1, seq: 0 },
            Op::Sent { session: 2, seq: 7 },
            Op::Done { session: 2, seq: 7 },
        ]);
        assert_eq!(
            plan.queued.keys().copied().collect::<Vec<_>>(),
            [(1, 2), (1, 3)]
        );
        assert!(
            plan.queued[&(1, 2)].dup,
            "queued and sent: written with DUP"
        );
        assert!(!plan.queued[&(1, 3)].dup);
        assert_eq!(plan.sent.iter().copied().collect::<Vec<_>>(), [(1, 0)]);
        assert_eq!(plan.done.iter().copied().collect::<Vec<_>>(), [(2, 7)]);
        assert_eq!(plan.sessions[&1].disconnected_at, None);
    }

    #[test]
    fn an_ended_session_takes_its_changes_with_it_and_last_changes_win() {
        let plan = Plan::of(&[
            session(1, "a", None),
            Op::Subscribed {
                session: 1,
                filter: "x/#".into(),
                options: SubscriptionOptions::qos(QoS::AtLeastOnce),
            },
            queued(1, 1),
            Op::Done { session: 1, seq: 0 },
            Op::SessionEnded { id: 1 },
            session(2, "a", None),
            session(2, "a", Some(5)),
            Op::Subscribed {
                session: 2,
                filter: "y".into(),
                options: SubscriptionOptions::qos(QoS::AtLeastOnce),
            },
            Op::Unsubscribed {
                session: 2,
                filter: "y".into(),
            },
            retained("r", b"one"),
            retained("r", b""),
            retained("s", b"two"),
        ]);
        assert_eq!(plan.ended.iter().copied().collect::<Vec<_>>(), [1]);
        assert_eq!(plan.sessions.keys().copied().collect::<Vec<_>>(), [2]);
        assert_eq!(plan.sessions[&2].disconnected_at, Some(5));
        assert_eq!(
            plan.subscriptions.iter().collect::<Vec<_>>(),
            [(&(2, "y".to_string()), &None)]
        );
        assert!(plan.queued.is_empty() && plan.done.is_empty());
        assert!(plan.retained["r"].0.payload.is_empty());
        assert_eq!(plan.retained["s"].0.payload.as_ref(), b"two");
    }

    async fn open(dir: &tempfile::TempDir) -> BrokerStore {
        BrokerStore::open(&dir.path().join(BrokerStore::FILE), StateSync::Normal)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn the_store_reads_back_what_batches_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir).await;
        let mut properties = PublishProperties {
            content_type: Some("text/plain".into()),
            correlation_data: Some(Bytes::from_static(b"\x00\x01")),
            user_properties: vec![("k".into(), "v".into())],
            ..Default::default()
        };
        properties.payload_format_indicator = Some(PayloadFormat::Utf8);
        let mut with_properties = outgoing(3, "t/3");
        Arc::get_mut(&mut with_properties.message)
            .unwrap()
            .properties = properties.clone();
        store
            .apply(&[
                session(4, "alive", None),
                Op::Subscribed {
                    session: 4,
                    filter: "t/#".into(),
                    options: SubscriptionOptions {
                        qos: QoS::AtLeastOnce,
                        no_local: true,
                        retain_as_published: true,
                        retain_handling: RetainHandling::DoNotSend,
                    },
                },
                queued(4, 1),
                queued(4, 2),
                Op::Queued {
                    session: 4,
                    outgoing: with_properties,
                },
                session(9, "gone", Some(1)),
                queued(9, 1),
                retained("r/1", b"kept"),
                retained("r/2", b"cleared later"),
            ])
            .await
            .unwrap();
        store
            .apply(&[
                Op::Sent { session: 4, seq: 1 },
                Op::Done { session: 4, seq: 2 },
                queued(4, 4),
                Op::SessionEnded { id: 9 },
                retained("r/2", b""),
                // A row left by a session a takeover replaced: the newest wins.
                session(3, "alive", Some(1)),
                queued(3, 1),
            ])
            .await
            .unwrap();
        let loaded = store.load().await.unwrap();
        assert_eq!(loaded.sessions.len(), 1);
        let s = &loaded.sessions[0];
        assert_eq!((s.id, s.client_id.as_str()), (4, "alive"));
        assert!(
            s.disconnected_at > 0,
            "connected at the stop: disconnected at the start"
        );
        assert_eq!(s.subscriptions.len(), 1);
        assert!(s.subscriptions[0].1.no_local);
        assert_eq!(
            s.subscriptions[0].1.retain_handling,
            RetainHandling::DoNotSend
        );
        let seqs: Vec<_> = s.messages.iter().map(|o| (o.seq, o.dup)).collect();
        assert_eq!(seqs, [(1, true), (3, false), (4, false)]);
        let p = &s.messages[1].message.properties;
        assert_eq!(p.content_type, properties.content_type);
        assert_eq!(p.correlation_data, properties.correlation_data);
        assert_eq!(p.user_properties, properties.user_properties);
        assert_eq!(p.payload_format_indicator, Some(PayloadFormat::Utf8));
        let topics: Vec<_> = loaded
            .retained
            .iter()
            .map(|(m, _)| m.topic.as_str())
            .collect();
        assert_eq!(topics, ["r/1"]);
        // The clean-up was written: the file no longer has the dead rows.
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM session_messages")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(rows, 3);
    }

    #[tokio::test]
    async fn expired_sessions_and_messages_are_not_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir).await;
        let mut expired = outgoing(2, "t/2");
        Arc::get_mut(&mut expired.message).unwrap().expires_at =
            Some(Instant::now() - Duration::from_secs(1));
        store
            .apply(&[
                Op::Session {
                    id: 1,
                    client_id: "old".into(),
                    expiry_secs: 60,
                    disconnected_at: Some(unix_ms(SystemTime::now()) - 61_000),
                },
                queued(1, 1),
                session(2, "fresh", Some(unix_ms(SystemTime::now()))),
                queued(2, 1),
                Op::Queued {
                    session: 2,
                    outgoing: expired,
                },
            ])
            .await
            .unwrap();
        let loaded = store.load().await.unwrap();
        assert_eq!(loaded.sessions.len(), 1);
        assert_eq!(loaded.sessions[0].client_id, "fresh");
        assert_eq!(loaded.sessions[0].messages.len(), 1);
    }

    #[tokio::test]
    async fn the_first_version_s_snapshot_is_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(BrokerStore::FILE);
        {
            let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
                .unwrap()
                .create_if_missing(true);
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(options)
                .await
                .unwrap();
            // Only the first migration, as the previous version left it.
            let first = &MIGRATOR.migrations[0];
            sqlx::raw_sql(&first.sql).execute(&pool).await.unwrap();
            sqlx::query(
                "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL,
                 installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, success BOOLEAN NOT NULL,
                 checksum BLOB NOT NULL, execution_time BIGINT NOT NULL)",
            )
            .execute(&pool)
            .await
            .unwrap();
            sqlx::query("INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (?, ?, 1, ?, 0)")
                .bind(first.version)
                .bind(&*first.description)
                .bind(&*first.checksum)
                .execute(&pool)
                .await
                .unwrap();
            let now = unix_ms(SystemTime::now());
            sqlx::query("INSERT INTO sessions VALUES ('dev', 3600, ?, ?)")
                .bind(now)
                .bind(r#"[{"filter":"a/#","qos":1,"no_local":false,"retain_as_published":true,"retain_handling":0}]"#)
                .execute(&pool)
                .await
                .unwrap();
            for seq in 0..3i64 {
                sqlx::query(
                    "INSERT INTO session_messages VALUES ('dev', ?, ?, x'00', 1, 0, ?, '{}', NULL)",
                )
                .bind(seq)
                .bind(format!("a/{seq}"))
                .bind(seq == 0)
                .execute(&pool)
                .await
                .unwrap();
            }
            pool.close().await;
        }
        let store = open(&dir).await;
        let loaded = store.load().await.unwrap();
        assert_eq!(loaded.sessions.len(), 1);
        let s = &loaded.sessions[0];
        assert_eq!(s.client_id, "dev");
        assert_eq!(s.subscriptions.len(), 1);
        assert!(s.subscriptions[0].1.retain_as_published);
        let topics: Vec<_> = s
            .messages
            .iter()
            .map(|o| (o.message.topic.as_str(), o.seq, o.dup))
            .collect();
        assert_eq!(
            topics,
            [("a/0", 1, true), ("a/1", 2, false), ("a/2", 3, false)]
        );
    }
}
