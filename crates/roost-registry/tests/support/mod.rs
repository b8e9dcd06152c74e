//! One suite, every store: each test of the registry and of the stores is
//! written once, against a [`TestStore`], and `on_each_store!` declares it
//! once per backend (`sqlite::name`, `postgres::name`), the way rustls runs
//! one API suite per crypto provider.
//!
//! PostgreSQL tests get their server from `ROOST_TEST_POSTGRES_URL` (or the
//! libpq `PG*` variables) and create a fresh database each, so they run in
//! parallel. Without a server they fail under `CI=true` and are skipped
//! with a notice otherwise: never passed in silence.

#![allow(dead_code)]

use roost_registry::store::postgres::{PostgresStore, PostgresUrl};
use roost_registry::store::sqlite::SqliteStore;
use roost_registry::store::Store;
use roost_registry::{Registry, Settings};
use sqlx::Connection;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

/// Where a test keeps its registry.
pub enum TestStore {
    /// `roost.db` in the test's own directory.
    Sqlite,
    /// A database created for this test.
    Postgres { url: PostgresUrl },
}

impl TestStore {
    /// A fresh PostgreSQL database, or `None` (with a notice) when no server
    /// is configured outside CI.
    pub async fn postgres(test: &str) -> Option<Self> {
        let Some(server) = server_url() else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{test}: ROOST_TEST_POSTGRES_URL (or PGHOST) is not set; CI must run the PostgreSQL tests (scripts/with-postgres)"
            );
            // Straight to stderr: the test harness would swallow eprintln!.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test} on PostgreSQL: set ROOST_TEST_POSTGRES_URL (see scripts/with-postgres)"
            );
            return None;
        };
        let name = format!("roost_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(server.as_str())
            .await
            .expect("connect to the test PostgreSQL server");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("create a test database");
        let _ = admin.close().await;
        let mut url = server;
        url.set_path(&name);
        Some(Self::Postgres {
            url: PostgresUrl::parse(url.as_str()).expect("a PostgreSQL URL"),
        })
    }

    pub async fn open(&self, dir: &Path) -> Registry {
        match self {
            Self::Sqlite => Registry::open(dir, Settings::default()).await,
            Self::Postgres { url } => Registry::open_postgres(dir, url, Settings::default()).await,
        }
        .expect("open the registry")
    }

    /// The bare store, for tests of the storage boundary itself.
    pub async fn store(&self, dir: &Path) -> Arc<dyn Store> {
        match self {
            Self::Sqlite => Arc::new(
                SqliteStore::open(&dir.join(Registry::DATABASE_FILE))
                    .await
                    .expect("open the SQLite store"),
            ),
            Self::Postgres { url } => Arc::new(
                PostgresStore::connect(url)
                    .await
                    .expect("connect the PostgreSQL store"),
            ),
        }
    }
}

impl TestStore {
    /// Whether `needle` is anywhere in what the store keeps.
    pub async fn holds(&self, dir: &Path, needle: &str) -> bool {
        match self {
            Self::Sqlite => ["roost.db", "roost.db-wal"].iter().any(|file| {
                let bytes = std::fs::read(dir.join(file)).unwrap_or_default();
                bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
            }),
            Self::Postgres { url } => {
                let mut conn = sqlx::PgConnection::connect(url.expose())
                    .await
                    .expect("connect");
                let tables: Vec<String> = sqlx::query_scalar(
                    "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
                )
                .fetch_all(&mut conn)
                .await
                .expect("list tables");
                for table in tables {
                    let found: i64 = sqlx::query_scalar(&format!(
                        "SELECT COUNT(*) FROM {table} t WHERE strpos(t::text, $1) > 0"
                    ))
                    .bind(needle)
                    .fetch_one(&mut conn)
                    .await
                    .expect("search a table");
                    if found > 0 {
                        return true;
                    }
                }
                false
            }
        }
    }
}

/// The server to create test databases on: `ROOST_TEST_POSTGRES_URL`, or
/// one built from the libpq variables `pg_virtualenv` exports.
fn server_url() -> Option<url::Url> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if let Some(url) = var("ROOST_TEST_POSTGRES_URL") {
        return Some(url::Url::parse(&url).expect("ROOST_TEST_POSTGRES_URL is a URL"));
    }
    let host = var("PGHOST")?;
    let mut url = url::Url::parse("postgres://localhost/postgres").expect("a literal URL");
    url.set_host(Some(&host)).expect("PGHOST is a host name");
    if let Some(port) = var("PGPORT").and_then(|p| p.parse().ok()) {
        let _ = url.set_port(Some(port));
    }
    let _ = url.set_username(&var("PGUSER").unwrap_or_else(|| "postgres".into()));
    let _ = url.set_password(var("PGPASSWORD").as_deref());
    Some(url)
}

/// Declares each listed `async fn test(store: TestStore)` once per backend.
macro_rules! on_each_store {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    super::$test($crate::support::TestStore::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    if let Some(store) = $crate::support::TestStore::postgres(stringify!($test)).await {
                        super::$test(store).await
                    }
                }
            )*
        }
    };
}
