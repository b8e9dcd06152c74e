//! Registry changes between the nodes that share one PostgreSQL database.
//!
//! The database announces every change itself, in the transaction that
//! makes it (`migrations/postgres/0002_registry_changes.sql`): a trigger
//! bumps `registry_version` and NOTIFYs channel [`CHANNEL`] with the new
//! version, the writer's [`ORIGIN_SETTING`] and the [`Change`]. A committed
//! change is therefore always announced, even if its node dies at once,
//! and a rolled-back one never is. Each node LISTENs and applies the
//! changes other nodes made ([`Registry::apply_remote`]).
//!
//! PostgreSQL keeps no notification for a listener that was away, so a node
//! also polls the version every [`POLL`]: a version it did not hear within
//! [`GRACE`], a gap between the versions it hears, or a dropped LISTEN
//! connection make it re-read everything ([`Registry::resync`]). Each poll
//! that finds it current confirms the registry's
//! [`Freshness`](crate::feed::Freshness); past the configured limit
//! without one, the node is not ready and refuses new connections.

use super::PostgresUrl;
use crate::feed::Change;
use crate::Registry;
use serde::Deserialize;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use std::str::FromStr;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The channel every change of one database is announced on.
pub const CHANNEL: &str = "roost_registry";

/// The connection setting that tells which store (node) made a change.
pub const ORIGIN_SETTING: &str = "roost.node";

/// How often a node reads the registry's version.
pub const POLL: Duration = Duration::from_secs(1);

/// How long a polled version may stay ahead of the notifications heard
/// before the node stops waiting for them and re-reads everything.
pub const GRACE: Duration = Duration::from_secs(2);

/// How long one poll may take.
const POLL_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a node waits before trying its LISTEN connection again.
const RETRY: Duration = Duration::from_secs(1);

/// A notification's payload, as the trigger builds it.
#[derive(Deserialize)]
struct Notice {
    version: i64,
    /// The writer's [`ORIGIN_SETTING`]; none from a session without it.
    node: Option<String>,
    change: Change,
}

/// Carries the other nodes' changes to `registry`, and keeps its
/// freshness (stale after `limit` without a confirmation), until
/// `shutdown` turns true. Fails at once if the database does not answer;
/// afterwards a lost connection is retried and resynced.
pub async fn start(
    url: &PostgresUrl,
    registry: Registry,
    limit: Duration,
    shutdown: watch::Receiver<bool>,
) -> crate::Result<tokio::task::JoinHandle<()>> {
    let options = PgConnectOptions::from_str(url.expose())?.application_name("roost notify");
    // Two connections: the listener keeps one of the pool's for itself.
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(POLL_TIMEOUT)
        .connect_with(options)
        .await?;
    let mut listener = PgListener::connect_with(&pool).await?;
    listener.listen(CHANNEL).await?;
    // Read after listening: a change committed in between is both in this
    // version and heard.
    let heard = read_version(&pool).await?;
    registry.freshness().watch(limit);
    let follower = Follower {
        registry,
        heard,
        behind: None,
    };
    Ok(tokio::spawn(run(follower, pool, listener, shutdown)))
}

async fn read_version(pool: &sqlx::PgPool) -> crate::Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT version FROM registry_version WHERE id = 1")
            .fetch_one(pool)
            .await?,
    )
}

/// What a node knows of the shared registry's changes.
struct Follower {
    registry: Registry,
    /// The highest version heard (or re-read).
    heard: i64,
    /// A polled version above `heard`, and when it was polled.
    behind: Option<(i64, Instant)>,
}

impl Follower {
    fn hear(&mut self, notice: Notice) {
        if notice.version > self.heard + 1 {
            tracing::warn!(
                heard = self.heard,
                version = notice.version,
                "registry change notifications were missed; re-reading everything"
            );
            self.registry.resync();
        }
        self.heard = self.heard.max(notice.version);
        if notice.node.as_deref() != self.registry.origin() {
            self.registry.apply_remote(notice.change);
        }
    }

    fn polled(&mut self, version: i64, now: Instant) {
        if version <= self.heard {
            self.behind = None;
            self.registry.freshness().confirm();
            return;
        }
        match self.behind {
            // A version polled GRACE ago is still unheard: its notification
            // was lost.
            Some((target, since)) if self.heard < target => {
                if now.duration_since(since) >= GRACE {
                    tracing::warn!(
                        heard = self.heard,
                        version,
                        "the registry changed without a notification reaching this node; re-reading everything"
                    );
                    self.resynced(version);
                }
            }
            // Everything polled before was heard since; this version's
            // notification may be on its way (steady writes): wait for it.
            _ => {
                self.behind = Some((version, now));
                self.registry.freshness().confirm();
            }
        }
    }

    fn resynced(&mut self, version: i64) {
        self.registry.resync();
        self.heard = self.heard.max(version);
        self.behind = None;
        self.registry.freshness().confirm();
    }
}

async fn run(
    mut follower: Follower,
    pool: sqlx::PgPool,
    mut listener: PgListener,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut poll = tokio::time::interval(POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let step = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            received = listener.try_recv() => match received {
                Ok(Some(notification)) => Step::Heard(notification.payload().to_string()),
                // The connection dropped: what was notified meanwhile is lost.
                Ok(None) | Err(_) => Step::Lost,
            },
            _ = poll.tick() => Step::Poll,
        };
        match step {
            Step::Heard(payload) => match serde_json::from_str::<Notice>(&payload) {
                Ok(notice) => follower.hear(notice),
                Err(error) => {
                    tracing::warn!(%error, "ignored a registry notification that is not Roost's")
                }
            },
            Step::Poll => match tokio::time::timeout(POLL_TIMEOUT, read_version(&pool)).await {
                Ok(Ok(version)) => follower.polled(version, Instant::now()),
                Ok(Err(error)) => {
                    tracing::warn!(%error, "reading the registry's version failed")
                }
                Err(_) => tracing::warn!("reading the registry's version took too long"),
            },
            Step::Lost => {
                tracing::warn!("lost the registry's LISTEN connection; listening again, then re-reading everything");
                listen_again(&mut listener, &mut shutdown).await;
                match read_version(&pool).await {
                    Ok(version) => follower.resynced(version),
                    // Re-read anyway; the next poll confirms.
                    Err(_) => follower.registry.resync(),
                }
            }
        }
    }
}

enum Step {
    Heard(String),
    Poll,
    Lost,
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
