//! The store on PostgreSQL, for deployments that already run it (and, in a
//! later step, for several Roost nodes sharing one registry).
//!
//! It runs the statements in `sql/`, shared with the SQLite store, against
//! the schema in `migrations/postgres/`. SQLite serialises every write
//! transaction through its single writer; here each write transaction first
//! takes one transaction-scoped advisory lock, so they are serialised the
//! same way, across every process using the database. Row locks
//! (`SELECT … FOR UPDATE`) would not do: the invariants also cover rows that
//! do not exist yet (a name being created, a count under a limit, a
//! hierarchy being extended). Reads use their own pool and never wait.

use crate::error::Result;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use std::str::FromStr;
use std::time::Duration;

// Deliberately compiled once per engine (see sql/mod.rs).
#[allow(clippy::duplicate_mod)]
#[path = "sql/mod.rs"]
mod sql;

type DbRow = sqlx::postgres::PgRow;
type DbConn = sqlx::PgConnection;
type This = PostgresStore;

/// A thing attribute named by `$2`, as text (NULL when the thing has none).
const THING_ATTRIBUTE: &str = "(attributes::jsonb ->> $2)";
/// An execution record's version number.
const EXECUTION_VERSION: &str = "(record::jsonb ->> 'versionNumber')::bigint";
/// Paging keys of an execution, as [`super::jobs::execution_key`] builds
/// them, compared byte by byte as SQLite does.
const THING_KEY: &str =
    "(thing_name || '/' || lpad(execution_number::text, 20, '0')) COLLATE \"C\"";
const JOB_KEY: &str = "(job_id || '/' || lpad(execution_number::text, 20, '0')) COLLATE \"C\"";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Readers a registry keeps open: enough for the API and the gateway's lookups.
const READ_CONNECTIONS: u32 = 8;
/// Writers: one, as with SQLite; the advisory lock orders them across processes.
const WRITE_CONNECTIONS: u32 = 1;
/// How long opening waits for the server before giving up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The advisory lock every write transaction holds ("roost" in ASCII).
const WRITE_LOCK: i64 = 0x0072_6f6f_7374;

pub struct PostgresStore {
    read: PgPool,
    write: PgPool,
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user:password@host/db`)
    /// and brings its schema up to date.
    pub async fn connect(url: &str) -> Result<Self> {
        let options = PgConnectOptions::from_str(url)?.application_name("roost");
        let write = PgPoolOptions::new()
            .max_connections(WRITE_CONNECTIONS)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_with(options.clone())
            .await?;
        MIGRATOR.run(&write).await?;
        let read = PgPoolOptions::new()
            .max_connections(READ_CONNECTIONS)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_with(options)
            .await?;
        Ok(Self { read, write })
    }
}

/// A write transaction holding the registry's write lock until it ends.
async fn begin_write(write: &PgPool) -> Result<sqlx::Transaction<'static, sqlx::Postgres>> {
    let mut tx = write.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(WRITE_LOCK)
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}
