//! The writer's transaction: one batch of changes, coalesced, written whole.

use super::plan::Plan;
use super::rows::{instant_to_unix, store_ids, store_properties};
use super::{BrokerStore, PersistError, ROWS_PER_STATEMENT};
use crate::journal::{Op, Sink};
use crate::message::Subscription;
use sqlx::{QueryBuilder, Sqlite};
use std::time::{Instant, SystemTime};

impl Sink for BrokerStore {
    type Error = PersistError;
    async fn apply(&self, batch: &[Op]) -> Result<(), PersistError> {
        BrokerStore::apply(self, batch).await
    }
}

impl BrokerStore {
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
                Some(Subscription {
                    options: o,
                    identifier,
                }) => sqlx::query(
                    "INSERT OR REPLACE INTO session_subscriptions
                     (session_id, filter, qos, no_local, retain_as_published, retain_handling,
                      subscription_identifier)
                     VALUES (?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(*id as i64)
                .bind(filter)
                .bind(o.qos as i64)
                .bind(o.no_local)
                .bind(o.retain_as_published)
                .bind(o.retain_handling as i64)
                .bind(identifier.map(i64::from)),
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
                 (session_id, seq, topic, payload, qos, retain, dup, properties, expires_at,
                  subscription_ids) ",
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
                    .push_bind(message.expires_at.map(|at| instant_to_unix(at, now, wall)))
                    .push_bind(store_ids(&outgoing.subscription_ids));
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
}
