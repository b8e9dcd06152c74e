//! The start-up transaction: the file cleaned up and read back.

use super::rows::{load_ids, load_properties, qos_of, retain_handling_of, unix_to_instant};
use super::{BrokerStore, Loaded, LoadedSession, PersistError};
use crate::message::{unix_ms, Message, Outgoing, Subscription};
use bytes::Bytes;
use roost_mqtt::SubscriptionOptions;
use sqlx::Row;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

impl BrokerStore {
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
            let identifier: Option<i64> = row.get("subscription_identifier");
            let subscription = Subscription {
                options,
                identifier: identifier.and_then(|id| u32::try_from(id).ok()),
            };
            session
                .subscriptions
                .push((row.get("filter"), subscription));
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
                subscription_ids: load_ids(row.get("subscription_ids")),
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
