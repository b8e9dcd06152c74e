//! Gateway state that survives a restart: persistent sessions (their
//! subscriptions and queued QoS 1/2 messages) and retained messages, in
//! their own SQLite file beside the registry's.
//!
//! The live state is in memory. Every change to its durable part reaches
//! this file as it happens: the journal (`journal.rs`) carries it to one
//! writer task, which hands what is waiting here as one batch, written in
//! one transaction ([`BrokerStore::apply`], `write.rs`). At start,
//! [`Broker::open_state`](crate::Broker::open_state) (`state.rs`) has it
//! cleaned up and read back (`read.rs`), then starts the writer.
//!
//! What a commit survives depends on [`StateSync`]: the file is in WAL mode;
//! with `normal` a commit is in the operating system's hands when it
//! returns (it survives the process being killed, not a power loss); with
//! `full` it is also fsynced (it survives a power loss too, at the price of
//! one fsync per transaction).
//!
//! Never: hold anything of a clean session or a QoS 0 delivery, or keep a
//! row that the memory it records no longer has once its batch is committed.
//!
//! Here: the file and its schema. `plan.rs` coalesces a batch of journal
//! changes into what is left to write, `rows.rs` converts values to and from
//! their columns, `write.rs` and `read.rs` are the two transactions.

mod plan;
mod read;
mod rows;
mod write;

pub(crate) use rows::unix_to_instant;

use crate::journal::Journal;
use crate::message::{Message, Outgoing, Subscription};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Rows per multi-row statement (10 values a row, far below SQLite's limit).
const ROWS_PER_STATEMENT: usize = 64;

#[derive(Debug, thiserror::Error)]
#[error("gateway state storage: {0}")]
pub struct PersistError(String);

impl PersistError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

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

/// A session read back at start.
pub(crate) struct LoadedSession {
    pub id: u64,
    pub client_id: String,
    pub expiry: Duration,
    pub disconnected_at: i64,
    pub subscriptions: Vec<(String, Subscription)>,
    /// In `seq` order.
    pub messages: Vec<Outgoing>,
}

/// Everything read back at start.
pub(crate) struct Loaded {
    pub sessions: Vec<LoadedSession>,
    /// With when each was set (Unix ms).
    pub retained: Vec<(Message, i64)>,
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
    pub(crate) journal: Arc<Journal>,
    pub(crate) task: tokio::task::JoinHandle<()>,
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

#[cfg(test)]
mod tests;
