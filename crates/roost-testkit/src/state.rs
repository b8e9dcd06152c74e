//! `gateway.db` as a test sees it: what the gateway's writer has committed,
//! read from the file with SQL of our own, so a test checks what a restart
//! would find rather than what the gateway says it saved. And a lock that
//! holds the writer back, so a test can see what waits for a commit.

use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{Connection, Row, SqliteConnection, SqlitePool};
use std::path::{Path, PathBuf};

/// A session row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SavedSession {
    pub client_id: String,
    pub expiry_secs: i64,
    /// A client was connected when the row was written.
    pub connected: bool,
    /// Its subscriptions' filters, in order.
    pub filters: Vec<String>,
}

/// A message queued for a session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SavedMessage {
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: i64,
}

/// Read access to `gateway.db`.
pub struct StateDb {
    path: PathBuf,
    pool: SqlitePool,
}

impl StateDb {
    pub(crate) async fn open(path: &Path) -> StateDb {
        let options = SqliteConnectOptions::new().filename(path).read_only(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .expect("opening gateway.db");
        StateDb {
            path: path.to_path_buf(),
            pool,
        }
    }

    /// The session of `client_id` (the newest row, as a restart reads it).
    pub async fn session(&self, client_id: &str) -> Option<SavedSession> {
        let row = sqlx::query(
            "SELECT id, expiry_secs, disconnected_at IS NULL AS connected FROM sessions \
             WHERE client_id = ? ORDER BY id DESC LIMIT 1",
        )
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await
        .expect("reading sessions")?;
        let id: i64 = row.get("id");
        let filters = sqlx::query(
            "SELECT filter FROM session_subscriptions WHERE session_id = ? ORDER BY filter",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .expect("reading subscriptions")
        .iter()
        .map(|r| r.get("filter"))
        .collect();
        Some(SavedSession {
            client_id: client_id.to_string(),
            expiry_secs: row.get("expiry_secs"),
            connected: row.get("connected"),
            filters,
        })
    }

    /// The messages queued for `client_id`'s session, in order.
    pub async fn messages(&self, client_id: &str) -> Vec<SavedMessage> {
        sqlx::query(
            "SELECT topic, payload, qos FROM session_messages WHERE session_id = \
             (SELECT MAX(id) FROM sessions WHERE client_id = ?) ORDER BY seq",
        )
        .bind(client_id)
        .fetch_all(&self.pool)
        .await
        .expect("reading queued messages")
        .iter()
        .map(|r| SavedMessage {
            topic: r.get("topic"),
            payload: r.get("payload"),
            qos: r.get("qos"),
        })
        .collect()
    }

    /// Takes SQLite's write lock on `gateway.db` until the hold is
    /// released: the gateway's writer waits (its busy timeout is 5 s), so
    /// nothing it commits meanwhile is committed. Release it well within
    /// those 5 s, or the writer fails and retries (which the gateway
    /// reports as a failed commit).
    pub async fn hold_writes(&self) -> WriteHold {
        let options = SqliteConnectOptions::new().filename(&self.path);
        let mut conn = SqliteConnection::connect_with(&options)
            .await
            .expect("opening gateway.db");
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut conn)
            .await
            .expect("taking gateway.db's write lock");
        WriteHold { conn }
    }
}

/// The write lock of [`StateDb::hold_writes`]; it changes nothing.
pub struct WriteHold {
    conn: SqliteConnection,
}

impl WriteHold {
    pub async fn release(mut self) {
        sqlx::query("ROLLBACK")
            .execute(&mut self.conn)
            .await
            .expect("releasing gateway.db's write lock");
        let _ = self.conn.close().await;
    }
}
