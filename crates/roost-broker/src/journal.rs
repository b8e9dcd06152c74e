//! The journal: every change to durable gateway state (persistent sessions,
//! their subscriptions and QoS 1/2 messages, retained messages), in the order
//! it happened in memory, on its way to `gateway.db` through one writer task
//! that commits whatever is waiting in one transaction (group commit).
//!
//! A change is pushed in the same critical section that makes it in memory
//! (under the session's lock, or the retained messages' lock), so the journal
//! is the in-memory history in order: a subscriber's PUBACK can never reach
//! the writer before the insert of the message it acknowledges. Pushing never
//! waits (it happens under a std mutex); the queue's bound is enforced at the
//! producers' next await point instead: a publisher whose change found the
//! queue at or over its capacity waits for room before it reads on
//! ([`Journal::wait_room`]). The queue therefore holds at most its capacity
//! plus one publish's changes per producer, plus the sent/done marks of
//! messages already counted in it (each queued message makes at most one of
//! each).
//!
//! Every change gets a ticket (its position in the journal). A publisher that
//! must not answer before its changes are durable waits until the writer has
//! committed its highest ticket ([`Journal::wait`]); a connection with
//! PUBACKs held back registers its session to be woken when they are
//! ([`Journal::wake_when_done`]).
//!
//! Clean sessions and QoS 0 deliveries never reach this module: the callers
//! only push for sessions marked durable, so the clean-session paths take no
//! lock and allocate nothing here.
//!
//! Never: drop a change, reorder a session's changes, or report a ticket
//! committed before its transaction is.

use crate::message::{Message, Outgoing, Subscription};
use crate::metrics::Metrics;
use crate::sync::Locked;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, Notify};

/// Changes waiting for the writer before producers are held back.
pub(crate) const QUEUE_CAPACITY: usize = 16_384;
/// The most changes committed in one transaction.
pub(crate) const MAX_BATCH: usize = 4_096;
/// The first wait before a failed commit is tried again; it doubles up to
/// [`MAX_RETRY_DELAY`].
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(50);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);
/// Tries of a failing commit once Roost is stopping, before what is left
/// is given up (and said so, loudly).
const RETRIES_WHEN_STOPPING: u32 = 5;

/// One change to durable state. Sessions are named by their durable id, not
/// their client id, so that what an ended session left can never be taken
/// for a later session's with the same client id.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    /// A persistent session exists: created, resumed, its expiry changed,
    /// or its connection ended (`disconnected_at`, Unix ms; `None` while
    /// connected).
    Session {
        id: u64,
        client_id: String,
        expiry_secs: u64,
        disconnected_at: Option<i64>,
    },
    /// The session ended: it and everything it held go.
    SessionEnded {
        id: u64,
    },
    Subscribed {
        session: u64,
        filter: String,
        subscription: Subscription,
    },
    Unsubscribed {
        session: u64,
        filter: String,
    },
    /// A QoS 1/2 message was queued for the session (`outgoing.seq`).
    Queued {
        session: u64,
        outgoing: Outgoing,
    },
    /// The message was sent: after a restart it goes again with DUP.
    Sent {
        session: u64,
        seq: u64,
    },
    /// The message needs no more delivery: acknowledged, expired, refused.
    Done {
        session: u64,
        seq: u64,
    },
    /// A retained message was set (`set_at`, Unix ms) or, with an empty
    /// payload, cleared.
    Retained {
        message: Arc<Message>,
        set_at: i64,
    },
}

/// Why a change could not be made durable.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("the gateway state could not be saved")]
pub struct StateUnavailable;

/// What the writer has done so far, by ticket.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Progress {
    /// Every ticket up to this one is committed.
    pub committed: u64,
    /// Every ticket up to this one was in a transaction that failed at least
    /// once (it is retried; waiters are told it failed).
    pub failed_through: u64,
    /// The last attempt failed: every ticket not yet committed is told so
    /// at once, including those the writer has not tried yet (it is stuck
    /// retrying the batch before them).
    pub failing: bool,
}

impl Progress {
    /// `Some(result)` once the ticket's fate is known.
    pub fn outcome(&self, ticket: u64) -> Option<Result<(), StateUnavailable>> {
        if self.committed >= ticket {
            Some(Ok(()))
        } else if self.failing || self.failed_through >= ticket {
            Some(Err(StateUnavailable))
        } else {
            None
        }
    }
}

#[derive(Default)]
struct Queue {
    ops: VecDeque<Op>,
    /// Tickets handed out: the ticket of the last op pushed.
    pushed: u64,
}

pub(crate) struct Journal {
    queue: Mutex<Queue>,
    /// The queue's length, readable without its lock.
    len: AtomicUsize,
    capacity: usize,
    writer_wake: Notify,
    progress: watch::Sender<Progress>,
    /// Connections that hold answers back until a ticket is done, by the
    /// signal that wakes each (its session's `wake`).
    waiters: Mutex<Vec<(u64, Arc<Notify>)>>,
    stopping: AtomicBool,
}

impl Journal {
    pub fn new(capacity: usize) -> Self {
        Self {
            queue: Mutex::new(Queue::default()),
            len: AtomicUsize::new(0),
            capacity: capacity.max(1),
            writer_wake: Notify::new(),
            progress: watch::channel(Progress::default()).0,
            waiters: Mutex::new(Vec::new()),
            stopping: AtomicBool::new(false),
        }
    }

    /// Appends a change and returns its ticket. Never waits: callers hold
    /// the lock of the state the change describes.
    pub fn push(&self, op: Op) -> u64 {
        let (ticket, was_empty) = {
            let mut queue = self.queue.locked();
            let was_empty = queue.ops.is_empty();
            queue.ops.push_back(op);
            queue.pushed += 1;
            self.len.store(queue.ops.len(), Ordering::Relaxed);
            (queue.pushed, was_empty)
        };
        if was_empty {
            // A permit is kept if the writer is busy: no lost wake-up.
            self.writer_wake.notify_one();
        }
        ticket
    }

    pub fn over_capacity(&self) -> bool {
        self.len.load(Ordering::Relaxed) >= self.capacity
    }

    pub fn progress(&self) -> Progress {
        *self.progress.borrow()
    }

    /// Waits until every change up to `ticket` is committed, or reports that
    /// its transaction failed.
    pub async fn wait(&self, ticket: u64) -> Result<(), StateUnavailable> {
        let mut rx = self.progress.subscribe();
        let progress = rx
            .wait_for(|p| p.outcome(ticket).is_some())
            .await
            .map_err(|_| StateUnavailable)?;
        progress.outcome(ticket).unwrap_or(Err(StateUnavailable))
    }

    /// Waits while the queue is at or over its capacity (backpressure). Fails
    /// instead of waiting on when the writer's last commit failed: the
    /// producer is then told, rather than held indefinitely.
    pub async fn wait_room(&self, metrics: &Metrics) -> Result<(), StateUnavailable> {
        if !self.over_capacity() {
            return Ok(());
        }
        metrics.state_queue_waits.fetch_add(1, Ordering::Relaxed);
        let mut rx = self.progress.subscribe();
        loop {
            if !self.over_capacity() {
                return Ok(());
            }
            if rx.borrow_and_update().failing {
                return Err(StateUnavailable);
            }
            if rx.changed().await.is_err() {
                return Err(StateUnavailable);
            }
        }
    }

    /// Notifies `wake` (a session's connection) once `ticket`'s fate is known.
    pub fn wake_when_done(&self, ticket: u64, wake: &Arc<Notify>) {
        // Checked under the waiters' lock: the writer moves progress before
        // it takes that lock, so either it finds this waiter or this check
        // sees its progress. No wake-up is lost.
        let mut waiters = self.waiters.locked();
        if self.progress().outcome(ticket).is_some() {
            drop(waiters);
            wake.notify_one();
            return;
        }
        waiters.push((ticket, wake.clone()));
    }

    /// Up to `max` changes and the ticket of the last; waits for some.
    /// `None` once stopping and nothing is left.
    async fn take(&self, max: usize) -> Option<(Vec<Op>, u64)> {
        loop {
            {
                let mut queue = self.queue.locked();
                if !queue.ops.is_empty() {
                    let n = queue.ops.len().min(max);
                    let batch: Vec<Op> = queue.ops.drain(..n).collect();
                    self.len.store(queue.ops.len(), Ordering::Relaxed);
                    let last = queue.pushed - queue.ops.len() as u64;
                    return Some((batch, last));
                }
                if self.stopping.load(Ordering::Acquire) {
                    return None;
                }
            }
            self.writer_wake.notified().await;
        }
    }

    fn finish_batch(&self, last: u64, committed: bool) {
        self.progress.send_modify(|p| {
            if committed {
                p.committed = p.committed.max(last);
                p.failing = false;
            } else {
                p.failed_through = p.failed_through.max(last);
                p.failing = true;
            }
        });
        let progress = self.progress();
        let mut waiters = self.waiters.locked();
        waiters.retain(|(ticket, wake)| {
            if progress.outcome(*ticket).is_some() {
                wake.notify_one();
                false
            } else {
                true
            }
        });
    }

    /// Tells the writer to commit what is left and end.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        self.writer_wake.notify_one();
    }
}

/// Where the writer commits batches: the gateway state file
/// (`persist::BrokerStore`). A batch is written whole or not at all.
pub(crate) trait Sink {
    type Error: std::fmt::Display;
    async fn apply(&self, batch: &[Op]) -> Result<(), Self::Error>;
}

/// The writer: takes what is waiting (up to [`MAX_BATCH`]), commits it in
/// one transaction, repeats; a failed commit is logged, counted and retried
/// with backoff, and the producers waiting on it are told it failed. Ends
/// after [`Journal::stop`] once everything is committed.
pub(crate) async fn run_writer<S: Sink>(journal: Arc<Journal>, store: S, metrics: Arc<Metrics>) {
    while let Some((batch, last)) = journal.take(MAX_BATCH).await {
        let mut delay = FIRST_RETRY_DELAY;
        let mut tries = 0u32;
        loop {
            tries += 1;
            match store.apply(&batch).await {
                Ok(()) => {
                    metrics.state_commits.fetch_add(1, Ordering::Relaxed);
                    metrics
                        .state_changes_committed
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    metrics
                        .state_largest_batch
                        .fetch_max(batch.len() as u64, Ordering::Relaxed);
                    journal.finish_batch(last, true);
                    if tries > 1 {
                        tracing::warn!(
                            changes = batch.len(),
                            tries,
                            "gateway state saved after failures"
                        );
                    }
                    break;
                }
                Err(e) => {
                    metrics
                        .state_commit_failures
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, changes = batch.len(), tries, retry_in = ?delay,
                        "SAVING GATEWAY STATE FAILED: QoS 1 publishes are answered with errors until it succeeds");
                    journal.finish_batch(last, false);
                    if journal.stopping.load(Ordering::Acquire) && tries >= RETRIES_WHEN_STOPPING {
                        tracing::error!(
                            changes = batch.len(),
                            "GATEWAY STATE LOST: stopping with changes that could not be saved"
                        );
                        break;
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(MAX_RETRY_DELAY);
                }
            }
        }
    }
    let count = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    tracing::info!(
        commits = count(&metrics.state_commits),
        changes = count(&metrics.state_changes_committed),
        largest_batch = count(&metrics.state_largest_batch),
        failures = count(&metrics.state_commit_failures),
        producer_waits = count(&metrics.state_queue_waits),
        "gateway state writer stopped"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(seq: u64) -> Op {
        Op::Done { session: 1, seq }
    }

    #[tokio::test]
    async fn tickets_follow_pushes_and_batches_take_what_waits() {
        let journal = Journal::new(4);
        assert_eq!(journal.push(done(1)), 1);
        assert_eq!(journal.push(done(2)), 2);
        assert_eq!(journal.push(done(3)), 3);
        let (batch, last) = journal.take(2).await.unwrap();
        assert_eq!((batch.len(), last), (2, 2));
        assert_eq!(journal.push(done(4)), 4);
        let (batch, last) = journal.take(10).await.unwrap();
        assert_eq!((batch.len(), last), (2, 4));
        journal.stop();
        assert!(journal.take(10).await.is_none());
    }

    #[tokio::test]
    async fn waiters_learn_commits_and_failures() {
        let journal = Arc::new(Journal::new(4));
        let t1 = journal.push(done(1));
        let t2 = journal.push(done(2));
        let waiting = {
            let journal = journal.clone();
            tokio::spawn(async move { journal.wait(t2).await })
        };
        journal.finish_batch(t1, true);
        assert_eq!(journal.wait(t1).await, Ok(()));
        assert!(!waiting.is_finished());
        journal.finish_batch(t2, false);
        assert_eq!(waiting.await.unwrap(), Err(StateUnavailable));
        // While the writer is failing, later changes are refused at once.
        let t3 = journal.push(done(3));
        assert_eq!(journal.wait(t3).await, Err(StateUnavailable));
        // A retry that succeeds makes the ticket committed after all, and
        // later ones wait again.
        journal.finish_batch(t2, true);
        assert_eq!(journal.wait(t2).await, Ok(()));
        assert_eq!(journal.progress().outcome(t3), None);
    }

    #[tokio::test]
    async fn a_full_queue_holds_producers_until_the_writer_drains_it() {
        let journal = Arc::new(Journal::new(2));
        let metrics = Metrics::default();
        journal.push(done(1));
        assert_eq!(journal.wait_room(&metrics).await, Ok(()));
        let t = journal.push(done(2));
        assert!(journal.over_capacity());
        let waiting = {
            let journal = journal.clone();
            tokio::spawn(async move { journal.wait_room(&Metrics::default()).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        let (_, last) = journal.take(10).await.unwrap();
        journal.finish_batch(last.max(t), true);
        assert_eq!(waiting.await.unwrap(), Ok(()));
        // A failing writer turns waiting into an error instead.
        journal.push(done(3));
        journal.push(done(4));
        journal.finish_batch(1, false);
        assert_eq!(journal.wait_room(&metrics).await, Err(StateUnavailable));
        assert_eq!(metrics.state_queue_waits.load(Ordering::Relaxed), 1);
    }
}
