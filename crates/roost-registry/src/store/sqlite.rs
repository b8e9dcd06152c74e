//! The embedded store: one SQLite file in WAL mode.
//!
//! Writes go through a pool of exactly one connection, so write transactions
//! are serialised by the pool instead of failing with SQLITE_BUSY; reads use
//! their own pool and see the last committed state. The statements are the
//! ones in `sql/`, shared with the PostgreSQL store.

use crate::error::Result;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

// Deliberately compiled once per engine (see sql/mod.rs).
#[allow(clippy::duplicate_mod)]
#[path = "sql/mod.rs"]
mod sql;

type DbRow = sqlx::sqlite::SqliteRow;
type DbConn = sqlx::SqliteConnection;
type This = SqliteStore;

/// A thing attribute named by `$2`, as text (NULL when the thing has none).
const THING_ATTRIBUTE: &str = "json_extract(attributes, '$.\"' || $2 || '\"')";
/// An execution record's version number.
const EXECUTION_VERSION: &str = "json_extract(record, '$.versionNumber')";
/// Paging keys of an execution, as [`super::jobs::execution_key`] builds them.
const THING_KEY: &str = "thing_name || '/' || printf('%020d', execution_number)";
const JOB_KEY: &str = "job_id || '/' || printf('%020d', execution_number)";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Readers a registry keeps open: enough for the API and the gateway's lookups.
const READ_CONNECTIONS: u32 = 8;
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

pub struct SqliteStore {
    read: SqlitePool,
    write: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed, mode 0600) and migrates the database file.
    pub async fn open(path: &Path) -> Result<Self> {
        if !path.exists() {
            crate::pki::write_private_file(path, b"")?;
        }
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        MIGRATOR.run(&write).await?;
        let read = SqlitePoolOptions::new()
            .max_connections(READ_CONNECTIONS)
            .connect_with(options.read_only(true))
            .await?;
        Ok(Self { read, write })
    }
}

/// A statement that writes on its own, outside any transaction.
trait WriteOne {
    async fn write_one(self, write: &SqlitePool) -> Result<sqlx::sqlite::SqliteQueryResult>;
}

impl<'q> WriteOne for sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    /// The one-connection pool serialises it with every other write.
    async fn write_one(self, write: &SqlitePool) -> Result<sqlx::sqlite::SqliteQueryResult> {
        Ok(self.execute(write).await?)
    }
}

/// A read transaction: SQLite's reads see one snapshot throughout.
async fn begin_read(read: &SqlitePool) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
    Ok(read.begin().await?)
}

/// A write transaction: the one-connection pool already serialises them.
async fn begin_write(write: &SqlitePool) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
    Ok(write.begin().await?)
}
