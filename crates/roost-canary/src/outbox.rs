//! The on-disk outbox: every incident is written here (SQLite, WAL,
//! `synchronous=FULL`: fsynced at commit) before it is published, and
//! removed only when the gateway has acknowledged it. The aggregator's open
//! windows are kept in the same file, written in the same transaction as
//! the incidents they follow, so a killed canary loses no count.
//!
//! Bounded by bytes: when full, the oldest incidents are folded into one
//! incident that carries their count and their attempts (counted, logged),
//! never dropped silently.

use crate::aggregate::{Changes, Folded, Key};
use crate::incident::{timestamp, Incident, IncidentKind};
use serde_json::{Map, Value};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;

/// The `service` of an incident that folds others together.
pub const FOLD_SERVICE: &str = "canary";

#[derive(Debug, thiserror::Error)]
#[error("outbox: {0}")]
pub struct OutboxError(#[from] sqlx::Error);

/// One incident waiting for the gateway's acknowledgement.
#[derive(Clone, Debug)]
pub struct Pending {
    pub seq: i64,
    pub payload: Vec<u8>,
    /// The attempts the incident stands for.
    pub attempts: u64,
}

/// What a commit did beyond writing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Folding {
    /// Incidents folded to make room.
    pub incidents: u64,
    /// The attempts they stood for.
    pub attempts: u64,
}

pub struct Outbox {
    pool: SqlitePool,
    max_bytes: u64,
    bytes: u64,
    count: u64,
    thing: String,
}

impl Outbox {
    pub const FILE: &'static str = "outbox.db";

    /// Opens (creating) the outbox in `path`; `thing` is the canary's name
    /// in the incidents it writes itself (folds).
    pub async fn open(path: &Path, max_bytes: u64, thing: &str) -> Result<Self, OutboxError> {
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await?;
        for statement in [
            "CREATE TABLE IF NOT EXISTS incident (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                incident_id TEXT NOT NULL,
                service TEXT NOT NULL,
                client_address TEXT NOT NULL,
                attempts INTEGER NOT NULL,
                created_at TEXT NOT NULL,
                payload BLOB NOT NULL)",
            "CREATE TABLE IF NOT EXISTS open_window (
                source TEXT PRIMARY KEY,
                state TEXT NOT NULL)",
        ] {
            sqlx::query(statement).execute(&pool).await?;
        }
        let row = sqlx::query("SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM incident")
            .fetch_one(&pool)
            .await?;
        Ok(Self {
            pool,
            max_bytes,
            count: row.try_get::<i64, _>(0)? as u64,
            bytes: row.try_get::<i64, _>(1)? as u64,
            thing: thing.to_owned(),
        })
    }

    /// Incidents waiting and their bytes.
    pub fn depth(&self) -> (u64, u64) {
        (self.count, self.bytes)
    }

    /// The windows a previous run left open.
    pub async fn open_windows(&self) -> Result<Vec<(Key, Folded)>, OutboxError> {
        let rows = sqlx::query("SELECT source, state FROM open_window")
            .fetch_all(&self.pool)
            .await?;
        let mut windows = Vec::with_capacity(rows.len());
        for row in &rows {
            let (source, state): (&str, &str) = (row.try_get(0)?, row.try_get(1)?);
            match (Key::from_text(source), serde_json::from_str(state)) {
                (Some(key), Ok(folded)) => windows.push((key, folded)),
                _ => tracing::warn!(
                    source,
                    "an open window in the outbox could not be read; left out"
                ),
            }
        }
        Ok(windows)
    }

    /// Writes `incidents` and the window `changes` in one transaction,
    /// folding the oldest incidents first if they would not fit.
    pub async fn commit(
        &mut self,
        incidents: &[Incident],
        changes: &Changes,
    ) -> Result<Folding, OutboxError> {
        let rows: Vec<(&Incident, Vec<u8>)> = incidents
            .iter()
            .map(|i| (i, i.to_payload(&self.thing)))
            .collect();
        let incoming: u64 = rows.iter().map(|(_, p)| p.len() as u64).sum();
        let mut tx = self.pool.begin().await?;
        let mut folding = Folding::default();
        let mut bytes = self.bytes;
        let mut count = self.count;
        if bytes + incoming > self.max_bytes && count > 0 {
            // Room for this batch and a tenth of the outbox to spare, so
            // that a full outbox folds now and then, not at every commit.
            let need = bytes + incoming + self.max_bytes / 10 - self.max_bytes;
            let (folded, freed, fold) = self.fold_oldest(&mut tx, need).await?;
            folding = folded;
            bytes -= freed;
            count -= folding.incidents;
            let payload = fold.to_payload(&self.thing);
            insert(&mut tx, &fold, &payload).await?;
            bytes += payload.len() as u64;
            count += 1;
        }
        for (incident, payload) in &rows {
            insert(&mut tx, incident, payload).await?;
        }
        for (source, folded) in &changes.upserts {
            let state = serde_json::to_string(folded).unwrap_or_default();
            sqlx::query(
                "INSERT INTO open_window (source, state) VALUES (?, ?)
                 ON CONFLICT (source) DO UPDATE SET state = excluded.state",
            )
            .bind(source)
            .bind(state)
            .execute(&mut *tx)
            .await?;
        }
        for source in &changes.removes {
            sqlx::query("DELETE FROM open_window WHERE source = ?")
                .bind(source)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.bytes = bytes + incoming;
        self.count = count + rows.len() as u64;
        Ok(folding)
    }

    /// Removes the oldest incidents until `need` bytes are free; returns
    /// what was folded, the bytes freed and the incident that stands for
    /// them.
    async fn fold_oldest(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
        need: u64,
    ) -> Result<(Folding, u64, Incident), OutboxError> {
        let mut folding = Folding::default();
        let mut freed = 0u64;
        let mut by_service: BTreeMap<String, u64> = BTreeMap::new();
        let mut first: Option<(String, String)> = None;
        let mut last_at = String::new();
        let mut last_seq = 0i64;
        // Oldest first, a page at a time, until enough is freed.
        while freed < need {
            let rows = sqlx::query(
                "SELECT seq, service, client_address, attempts, created_at, LENGTH(payload)
                 FROM incident WHERE seq > ? ORDER BY seq LIMIT 256",
            )
            .bind(last_seq)
            .fetch_all(&mut **tx)
            .await?;
            if rows.is_empty() {
                break;
            }
            for row in rows {
                last_seq = row.try_get(0)?;
                let attempts = row.try_get::<i64, _>(3)? as u64;
                *by_service.entry(row.try_get::<String, _>(1)?).or_default() += attempts;
                let at: String = row.try_get(4)?;
                if first.is_none() {
                    first = Some((row.try_get(2)?, at.clone()));
                }
                last_at = at;
                folding.incidents += 1;
                folding.attempts += attempts;
                freed += row.try_get::<i64, _>(5)? as u64;
                if freed >= need {
                    break;
                }
            }
        }
        sqlx::query("DELETE FROM incident WHERE seq <= ?")
            .bind(last_seq)
            .execute(&mut **tx)
            .await?;
        let (client_address, first_at) = first.unwrap_or_default();
        let mut details = Map::new();
        details.insert("reason".into(), "the outbox was full".into());
        details.insert("incidentsFolded".into(), folding.incidents.into());
        details.insert("firstTimestamp".into(), first_at.into());
        details.insert("lastTimestamp".into(), last_at.into());
        details.insert(
            "attemptsByService".into(),
            Value::Object(by_service.into_iter().map(|(k, v)| (k, v.into())).collect()),
        );
        let fold = Incident {
            id: uuid::Uuid::new_v4(),
            kind: IncidentKind::Folded,
            service: FOLD_SERVICE,
            client_address,
            server_port: 0,
            at: time::OffsetDateTime::now_utc(),
            attempts: folding.attempts,
            details,
        };
        Ok((folding, freed, fold))
    }

    /// Up to `limit` incidents after `after`, oldest first.
    pub async fn next(&self, after: i64, limit: u32) -> Result<Vec<Pending>, OutboxError> {
        let rows = sqlx::query(
            "SELECT seq, payload, attempts FROM incident WHERE seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|row| {
                Ok(Pending {
                    seq: row.try_get(0)?,
                    payload: row.try_get(1)?,
                    attempts: row.try_get::<i64, _>(2)? as u64,
                })
            })
            .collect()
    }

    /// Removes acknowledged incidents (those already folded away are gone).
    pub async fn remove(&mut self, seqs: &[i64]) -> Result<(), OutboxError> {
        if seqs.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        let mut bytes = 0u64;
        let mut count = 0u64;
        for seq in seqs {
            let row = sqlx::query("DELETE FROM incident WHERE seq = ? RETURNING LENGTH(payload)")
                .bind(seq)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(row) = row {
                bytes += row.try_get::<i64, _>(0)? as u64;
                count += 1;
            }
        }
        tx.commit().await?;
        self.bytes = self.bytes.saturating_sub(bytes);
        self.count = self.count.saturating_sub(count);
        Ok(())
    }

    pub async fn close(self) {
        self.pool.close().await;
    }
}

async fn insert(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    incident: &Incident,
    payload: &[u8],
) -> Result<(), OutboxError> {
    sqlx::query(
        "INSERT INTO incident (incident_id, service, client_address, attempts, created_at, payload)
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(incident.id.to_string())
    .bind(incident.service)
    .bind(&incident.client_address)
    .bind(incident.attempts as i64)
    .bind(timestamp(incident.at))
    .bind(payload)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incident::Attempt;

    fn incident(n: u16) -> Incident {
        let attempt = Attempt::new("http", format!("10.0.0.1:{n}").parse().unwrap(), 80)
            .detail("padding", "x".repeat(400));
        Incident::of_attempt(&attempt)
    }

    #[tokio::test]
    async fn incidents_stay_until_removed_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(Outbox::FILE);
        let mut outbox = Outbox::open(&path, 1 << 20, "c").await.unwrap();
        let batch: Vec<Incident> = (0..5).map(incident).collect();
        outbox.commit(&batch, &Changes::default()).await.unwrap();
        let pending = outbox.next(0, 10).await.unwrap();
        assert_eq!(pending.len(), 5);
        outbox
            .remove(&[pending[0].seq, pending[2].seq])
            .await
            .unwrap();
        assert_eq!(outbox.depth().0, 3);
        outbox.close().await;

        let outbox = Outbox::open(&path, 1 << 20, "c").await.unwrap();
        assert_eq!(outbox.depth().0, 3);
        let left = outbox.next(0, 10).await.unwrap();
        let ids: Vec<String> = left
            .iter()
            .map(|p| {
                serde_json::from_slice::<Value>(&p.payload).unwrap()["incidentId"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(ids, [1, 3, 4].map(|i| batch[i].id.to_string()));
        assert_eq!(outbox.next(left[1].seq, 10).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_full_outbox_folds_its_oldest_and_counts_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(Outbox::FILE);
        let max = 64 * 1024;
        let mut outbox = Outbox::open(&path, max, "c").await.unwrap();
        let mut folded = Folding::default();
        let total = 400u64;
        for n in 0..total as u16 {
            let f = outbox
                .commit(&[incident(n)], &Changes::default())
                .await
                .unwrap();
            folded.incidents += f.incidents;
            folded.attempts += f.attempts;
        }
        assert!(folded.incidents > 0);
        assert!(outbox.depth().1 <= max, "{:?}", outbox.depth());
        // Every attempt is still counted: those waiting plus those folded.
        let pending = outbox.next(0, 10_000).await.unwrap();
        let attempts: u64 = pending
            .iter()
            .map(|p| {
                serde_json::from_slice::<Value>(&p.payload).unwrap()["attempts"]
                    .as_u64()
                    .unwrap()
            })
            .sum();
        assert_eq!(attempts, total);
        let folds: Vec<Value> = pending
            .iter()
            .map(|p| serde_json::from_slice::<Value>(&p.payload).unwrap())
            .filter(|j| j["kind"] == "folded")
            .collect();
        assert!(!folds.is_empty());
        assert_eq!(folds[0]["details"]["reason"], "the outbox was full");
    }

    #[tokio::test]
    async fn open_windows_are_kept_with_the_incidents() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(Outbox::FILE);
        let mut outbox = Outbox::open(&path, 1 << 20, "c").await.unwrap();
        let folded = Folded {
            attempts: 7,
            client_address: "10.0.0.1".into(),
            ..Folded::default()
        };
        let changes = Changes {
            upserts: vec![("ssh|10.0.0.1".into(), folded.clone())],
            removes: vec![],
        };
        outbox.commit(&[], &changes).await.unwrap();
        let windows = outbox.open_windows().await.unwrap();
        assert_eq!(
            windows,
            vec![(Key::Source("ssh", "10.0.0.1".parse().unwrap()), folded)]
        );
        let changes = Changes {
            upserts: vec![],
            removes: vec!["ssh|10.0.0.1".into()],
        };
        outbox.commit(&[], &changes).await.unwrap();
        assert!(outbox.open_windows().await.unwrap().is_empty());
    }
}
