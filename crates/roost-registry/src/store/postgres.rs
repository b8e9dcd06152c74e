//! The store on PostgreSQL, for deployments that already run it (and, in a
//! later step, for several Roost nodes sharing one registry).
//!
//! It runs the statements in `sql/`, shared with the SQLite store, against
//! the schema in `migrations/postgres/`. SQLite serialises every write
//! transaction through its single writer; here every write (a transaction,
//! or a statement on its own) first takes one transaction-scoped advisory
//! lock, so writes are serialised the same way, across every process using
//! the database. Row locks
//! (`SELECT … FOR UPDATE`) would not do: the invariants also cover rows that
//! do not exist yet (a name being created, a count under a limit, a
//! hierarchy being extended). Reads use their own pool and never wait.

use crate::error::{RegistryError, Result};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};
use std::str::FromStr;
use std::time::Duration;

// Deliberately compiled once per engine (see sql/mod.rs).
#[allow(clippy::duplicate_mod)]
#[path = "sql/mod.rs"]
mod sql;

pub mod notify;

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

/// Where the PostgreSQL store is: a `postgres://` (or `postgresql://`)
/// URL. Its `Debug` and `Display` forms hide the password, so it can be
/// logged and shown in errors.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresUrl(String);

impl PostgresUrl {
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let url = url::Url::parse(text).map_err(|e| {
            format!("not a URL ({e}); expected postgres://user:password@host:port/database")
        })?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err(format!(
                "the scheme is {:?}; expected postgres://user:password@host:port/database",
                url.scheme()
            ));
        }
        Ok(Self(text.to_string()))
    }

    /// The URL as given, password included: for connecting only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with any password replaced by `***`.
    pub fn masked(&self) -> String {
        let Ok(mut url) = url::Url::parse(&self.0) else {
            return "postgres://***".into();
        };
        if url.password().is_some() {
            let _ = url.set_password(Some("***"));
        }
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let hidden = k.eq_ignore_ascii_case("password");
                (
                    k.into_owned(),
                    if hidden { "***".into() } else { v.into_owned() },
                )
            })
            .collect();
        if !pairs.is_empty() {
            url.query_pairs_mut().clear().extend_pairs(pairs);
        }
        url.into()
    }
}

impl std::fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.masked())
    }
}

impl std::fmt::Display for PostgresUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.masked())
    }
}

pub struct PostgresStore {
    read: PgPool,
    write: PgPool,
    /// This store's `roost.node` setting on every connection: the changes
    /// it makes carry it in their notifications ([`notify`]), so that the
    /// node recognises its own.
    origin: String,
}

impl PostgresStore {
    /// Connects to the database at `url` and brings its schema up to date.
    pub async fn connect(url: &PostgresUrl) -> Result<Self> {
        let origin = uuid::Uuid::new_v4().simple().to_string();
        let options = PgConnectOptions::from_str(url.expose())?
            .application_name("roost")
            .options([(notify::ORIGIN_SETTING, origin.as_str())]);
        // One connection first, so that a wrong address, password or
        // database name is reported as such (a pool would only time out).
        let probe = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options))
            .await
            .map_err(|_| {
                RegistryError::Internal(format!(
                    "storage: no answer from PostgreSQL at {url} within {}s",
                    CONNECT_TIMEOUT.as_secs()
                ))
            })??;
        let _ = probe.close().await;
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
        Ok(Self {
            read,
            write,
            origin,
        })
    }
}

impl PostgresStore {
    /// The `roost.node` setting of this store's connections.
    pub fn origin(&self) -> &str {
        &self.origin
    }
}

/// A statement that writes on its own, outside any transaction.
trait WriteOne {
    async fn write_one(self, write: &PgPool) -> Result<sqlx::postgres::PgQueryResult>;
}

impl WriteOne for sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments> {
    /// A transaction of its own under the write lock, so that it cannot
    /// fall between another writer's check and its write.
    async fn write_one(self, write: &PgPool) -> Result<sqlx::postgres::PgQueryResult> {
        let mut tx = begin_write(write).await?;
        let done = self.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(done)
    }
}

/// A read transaction whose statements all see one snapshot, as SQLite's do.
async fn begin_read(read: &PgPool) -> Result<sqlx::Transaction<'static, sqlx::Postgres>> {
    let mut tx = read.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
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

#[cfg(test)]
mod tests {
    use super::PostgresUrl;

    #[test]
    fn urls_are_checked_and_shown_without_their_password() {
        let url = PostgresUrl::parse("postgres://roost:s3cret@db.example:5432/roost").unwrap();
        assert_eq!(url.masked(), "postgres://roost:***@db.example:5432/roost");
        assert_eq!(format!("{url:?} {url}").matches("s3cret").count(), 0);
        let query = PostgresUrl::parse("postgresql://db/roost?user=r&password=s3cret").unwrap();
        assert!(!query.masked().contains("s3cret"));
        assert_eq!(
            url.expose(),
            "postgres://roost:s3cret@db.example:5432/roost"
        );
        for bad in ["", "db.example:5432", "mysql://db/roost", "postgres://[::1"] {
            assert!(PostgresUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
