//! Registry changes between the nodes that share one PostgreSQL database:
//! each node NOTIFYs its own changes ([`crate::feed`]) on one channel and
//! LISTENs there for the others'. PostgreSQL delivers a notification after
//! its transaction commits, in order, to every listener; it keeps none for
//! a listener that was away, so a node whose LISTEN connection dropped
//! listens again and then resyncs (treats everything as changed).

use super::PostgresUrl;
use crate::feed::Change;
use crate::Registry;
use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use std::str::FromStr;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// The channel every node of one database NOTIFYs and LISTENs on.
pub const CHANNEL: &str = "roost_registry";

/// How long a node waits before trying its LISTEN connection again.
const RETRY: Duration = Duration::from_secs(1);

/// A notification's payload: who made the change, and the change.
#[derive(Serialize, Deserialize)]
struct Notice {
    node: String,
    change: Change,
}

/// Carries `registry`'s changes to the other nodes and theirs to it,
/// until `shutdown` turns true. Fails at once if the database does not
/// answer; afterwards a lost connection is retried and resynced.
pub async fn start(
    url: &PostgresUrl,
    registry: Registry,
    changes: mpsc::Receiver<Change>,
    shutdown: watch::Receiver<bool>,
) -> crate::Result<tokio::task::JoinHandle<()>> {
    let options = PgConnectOptions::from_str(url.expose())?.application_name("roost notify");
    // Two connections: the listener keeps one of the pool's for itself.
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await?;
    let mut listener = PgListener::connect_with(&pool).await?;
    listener.listen(CHANNEL).await?;
    let node = uuid::Uuid::new_v4().to_string();
    Ok(tokio::spawn(run(
        node, pool, listener, registry, changes, shutdown,
    )))
}

async fn run(
    node: String,
    pool: sqlx::PgPool,
    mut listener: PgListener,
    registry: Registry,
    mut changes: mpsc::Receiver<Change>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let step = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            change = changes.recv() => match change {
                Some(change) => Step::Announce(change),
                None => return,
            },
            received = listener.try_recv() => match received {
                Ok(Some(notification)) => Step::Heard(notification.payload().to_string()),
                // The connection dropped: what was notified meanwhile is lost.
                Ok(None) | Err(_) => Step::Lost,
            },
        };
        match step {
            Step::Announce(change) => announce(&pool, &node, change).await,
            Step::Heard(payload) => match serde_json::from_str::<Notice>(&payload) {
                Ok(notice) if notice.node == node => {}
                Ok(notice) => registry.apply_remote(notice.change),
                Err(error) => {
                    tracing::warn!(%error, "ignored a registry notification that is not Roost's")
                }
            },
            Step::Lost => {
                tracing::warn!("lost the registry's LISTEN connection; listening again, then re-reading everything");
                listen_again(&mut listener, &mut shutdown).await;
                registry.resync();
            }
        }
    }
}

enum Step {
    Announce(Change),
    Heard(String),
    Lost,
}

async fn announce(pool: &sqlx::PgPool, node: &str, change: Change) {
    let notice = Notice {
        node: node.to_string(),
        change,
    };
    let sent = match serde_json::to_string(&notice) {
        Ok(payload) => sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(payload)
            .execute(pool)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(error) = sent {
        tracing::warn!(%error, "a registry change could not be announced to the other nodes");
    }
}

/// Listens again, retrying every [`RETRY`] until the database answers or
/// the node stops.
async fn listen_again(listener: &mut PgListener, shutdown: &mut watch::Receiver<bool>) {
    loop {
        match listener.listen(CHANNEL).await {
            Ok(()) => return,
            Err(error) => {
                tracing::warn!(%error, "listening for registry changes again failed; retrying")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(RETRY) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}
