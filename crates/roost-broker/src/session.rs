//! Sessions: what the broker keeps per client id — the
//! bounded queue of messages waiting for delivery, and the QoS 1 messages
//! in flight — across connections when the session is persistent.
//!
//! A persistent session is also *durable* when the gateway state is open:
//! every change to what would survive a restart is pushed to the journal in
//! the critical section that makes it, so the journal follows memory
//! exactly. A clean session is never durable, and its paths here only test
//! that flag: no journal, no extra lock, no allocation.

use crate::journal::{Journal, Op};
use crate::message::{unix_ms, Outgoing, Subscription};
use crate::metrics::Metrics;
use crate::sync::Locked;
use crate::Limits;
use roost_mqtt::QoS;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::Notify;

/// A message sent to the client and not yet fully acknowledged.
#[derive(Clone, Debug)]
pub(crate) struct Inflight {
    pub packet_id: u16,
    pub outgoing: Outgoing,
    /// QoS 2: PUBREC received and PUBREL sent; waiting for PUBCOMP.
    pub released: bool,
}

#[derive(Debug, Default)]
pub(crate) struct SessionState {
    pub queue: VecDeque<Outgoing>,
    pub queued_bytes: usize,
    /// QoS 1 and 2 messages sent and not yet acknowledged, in send order.
    pub inflight: VecDeque<Inflight>,
    next_packet_id: u16,
    /// QoS 2 packet ids received from the client and not yet released
    /// (PUBREL): kept with the session so a retransmission after a reconnect
    /// is not delivered twice.
    pub inbound_qos2: std::collections::HashSet<u16>,
    /// 0: the session ends with its connection.
    pub expiry: Duration,
    /// The connection currently attached, if any.
    pub owner: Option<u64>,
    pub disconnected_at: Option<Instant>,
    /// Changes are journaled: the session is persistent and the gateway
    /// state is open. Once a session stops being durable it never is again.
    pub durable: bool,
    /// The `seq` the next journaled message gets.
    pub next_seq: u64,
    /// The queue went past its mark while connected: publishers feeding it
    /// wait for room until it has drained to half (or its connection ends).
    pub pressured: bool,
}

impl SessionState {
    /// A packet id not in flight.
    /// Detached for longer than its expiry: the session is over, whether or
    /// not the housekeeping sweep has removed it yet.
    pub fn expired(&self, now: Instant) -> bool {
        self.owner.is_none()
            && self
                .disconnected_at
                .is_some_and(|at| now.duration_since(at) >= self.expiry)
    }

    pub fn next_packet_id(&mut self) -> u16 {
        loop {
            self.next_packet_id = self.next_packet_id.wrapping_add(1).max(1);
            let id = self.next_packet_id;
            if !self.inflight.iter().any(|i| i.packet_id == id) {
                return id;
            }
        }
    }
}

pub(crate) struct Session {
    /// Names the session in the gateway state; never reused while Roost runs.
    pub id: u64,
    pub client_id: String,
    pub state: Mutex<SessionState>,
    /// Wakes the attached connection when something was queued (or, for a
    /// publisher, when the changes its answers wait for are committed).
    pub wake: Arc<Notify>,
    /// Wakes the publishers waiting for room in this session's queue.
    pub room: Notify,
}

/// What became of a message offered to a session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Enqueued {
    /// The journal ticket, when the message was journaled.
    pub ticket: Option<u64>,
    /// The queue is past its mark: the publisher should wait for room.
    pub full: bool,
}

impl Session {
    fn new(id: u64, client_id: &str) -> Self {
        Self {
            id,
            client_id: client_id.to_string(),
            state: Mutex::new(SessionState::default()),
            wake: Arc::new(Notify::new()),
            room: Notify::new(),
        }
    }

    /// The journal, when this session's changes go to it.
    pub fn journal_of<'j>(
        state: &SessionState,
        journal: Option<&'j Journal>,
    ) -> Option<&'j Journal> {
        journal.filter(|_| state.durable)
    }

    fn session_op(&self, state: &SessionState, disconnected_at: Option<i64>) -> Op {
        Op::Session {
            id: self.id,
            client_id: self.client_id.clone(),
            expiry_secs: state.expiry.as_secs(),
            disconnected_at,
        }
    }

    /// Marks the session not durable; journals its end if it was.
    fn stop_journaling(&self, state: &mut SessionState, journal: Option<&Journal>) -> Option<u64> {
        let journal = Self::journal_of(state, journal)?;
        state.durable = false;
        Some(journal.push(Op::SessionEnded { id: self.id }))
    }

    /// The session's state (a lock that survives a panic: `crate::sync`).
    pub fn lock(&self) -> std::sync::MutexGuard<'_, SessionState> {
        self.state.locked()
    }

    /// Whether a publisher slowed by this session may go on: its queue has
    /// drained to half its mark, or no connection is reading it any more.
    pub fn has_room(&self) -> bool {
        let state = self.lock();
        !state.pressured || state.owner.is_none()
    }

    /// Waits until [`Session::has_room`].
    pub async fn wait_room(&self) {
        let notified = self.room.notified();
        tokio::pin!(notified);
        // Registered before the check: a wake-up between the two is not lost.
        notified.as_mut().enable();
        if !self.has_room() {
            notified.await;
        }
    }

    /// Queues a message for delivery, up to twice the queue's mark; past
    /// the mark, a connected session says so, so that the publisher slows
    /// down. A detached session keeps only QoS 1 messages (as AWS does).
    /// What does not fit is dropped, counted.
    pub fn enqueue(
        &self,
        mut outgoing: Outgoing,
        limits: &Limits,
        metrics: &Metrics,
        journal: Option<&Journal>,
    ) -> Enqueued {
        let (ticket, full) = {
            let mut state = self.lock();
            if state.owner.is_none() && outgoing.qos == QoS::AtMostOnce {
                return Enqueued::default();
            }
            let size = outgoing.message.payload.len();
            // Room past the mark: for the message each slowed publisher adds
            // before it stops, and for what a slow consumer's persistent
            // session keeps once it is disconnected.
            if state.queue.len() >= 2 * limits.max_queued_messages
                || state.queued_bytes + size > 2 * limits.max_queued_bytes
            {
                let counter = if outgoing.qos == QoS::AtMostOnce {
                    &metrics.dropped_qos0_backlog
                } else {
                    &metrics.dropped_queue_full
                };
                counter.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(client_id = %self.client_id, queued = state.queue.len(), "session queue full: message dropped");
                return Enqueued::default();
            }
            let ticket = match Self::journal_of(&state, journal) {
                Some(journal) if outgoing.qos != QoS::AtMostOnce => {
                    state.next_seq += 1;
                    outgoing.seq = state.next_seq;
                    Some(journal.push(Op::Queued {
                        session: self.id,
                        outgoing: outgoing.clone(),
                    }))
                }
                _ => None,
            };
            state.queued_bytes += size;
            state.queue.push_back(outgoing);
            let full = state.owner.is_some()
                && (state.queue.len() >= limits.max_queued_messages
                    || state.queued_bytes >= limits.max_queued_bytes);
            state.pressured |= full;
            (ticket, full)
        };
        self.wake.notify_one();
        Enqueued { ticket, full }
    }

    /// A queued message will not be delivered (expired, or the client may
    /// not receive it).
    pub fn discard(&self, outgoing: &Outgoing, journal: Option<&Journal>) {
        if outgoing.seq == 0 || journal.is_none() {
            return;
        }
        let state = self.lock();
        if let Some(journal) = Self::journal_of(&state, journal) {
            journal.push(Op::Done {
                session: self.id,
                seq: outgoing.seq,
            });
        }
    }

    /// Takes the next message to send, if the in-flight window allows
    /// (QoS 0 messages need no window).
    /// Once the queue is back under `resume_below` (messages, bytes), the
    /// publishers slowed by it are woken.
    pub fn next_to_send(&self, window: usize, resume_below: (usize, usize)) -> Option<Outgoing> {
        let mut state = self.lock();
        if state.inflight.len() >= window
            && state
                .queue
                .front()
                .is_some_and(|o| o.qos != QoS::AtMostOnce)
        {
            return None;
        }
        let next = state.queue.pop_front()?;
        state.queued_bytes -= next.message.payload.len();
        // Drained to half its mark: the publishers waiting may go on. (Half,
        // not the mark itself: it spares them a wake-up per message.)
        if state.pressured
            && state.queue.len() <= resume_below.0
            && state.queued_bytes <= resume_below.1
        {
            state.pressured = false;
            self.room.notify_waiters();
        }
        Some(next)
    }

    /// Records a QoS 1/2 message as in flight and returns its packet id.
    pub fn start_inflight(&self, outgoing: &Outgoing, journal: Option<&Journal>) -> u16 {
        let mut state = self.lock();
        let packet_id = state.next_packet_id();
        state.inflight.push_back(Inflight {
            packet_id,
            outgoing: outgoing.clone(),
            released: false,
        });
        if outgoing.seq != 0 {
            if let Some(journal) = Self::journal_of(&state, journal) {
                journal.push(Op::Sent {
                    session: self.id,
                    seq: outgoing.seq,
                });
            }
        }
        packet_id
    }

    /// PUBACK (QoS 1) or PUBCOMP (QoS 2) arrived: the message is done.
    pub fn complete(&self, packet_id: u16, qos2: bool, journal: Option<&Journal>) -> bool {
        let mut state = self.lock();
        let Some(at) = state
            .inflight
            .iter()
            .position(|i| i.packet_id == packet_id && (!qos2 || i.released))
        else {
            return false;
        };
        let entry = state.inflight.remove(at).expect("position is in range");
        // A released QoS 2 message was journaled done at its PUBREC.
        if !entry.released && entry.outgoing.seq != 0 {
            if let Some(journal) = Self::journal_of(&state, journal) {
                journal.push(Op::Done {
                    session: self.id,
                    seq: entry.outgoing.seq,
                });
            }
        }
        true
    }

    /// PUBREC arrived for a QoS 2 message: the client has it, only the
    /// PUBREL/PUBCOMP exchange is left.
    pub fn release(&self, packet_id: u16, journal: Option<&Journal>) -> bool {
        let mut state = self.lock();
        let Some(entry) = state.inflight.iter_mut().find(|i| i.packet_id == packet_id) else {
            return false;
        };
        let newly = !entry.released;
        entry.released = true;
        let seq = entry.outgoing.seq;
        if newly && seq != 0 {
            if let Some(journal) = Self::journal_of(&state, journal) {
                journal.push(Op::Done {
                    session: self.id,
                    seq,
                });
            }
        }
        true
    }

    /// A connection attaches: messages that were in flight are sent again
    /// first (DUP), except QoS 2 ones already released, which only need their
    /// PUBREL again. Returns those packet ids. With `journal`, a persistent
    /// session is (or becomes) durable; resumed with expiry 0 it stops
    /// being durable, since it now ends with this connection. A session that
    /// starts being durable journals its `subscriptions` (the router's).
    pub fn attach(
        &self,
        conn_id: u64,
        expiry: Duration,
        journal: Option<&Journal>,
        subscriptions: impl FnOnce() -> Vec<(String, Subscription)>,
    ) -> Vec<u16> {
        let mut state = self.lock();
        state.owner = Some(conn_id);
        state.disconnected_at = None;
        state.expiry = expiry;
        let (released, unacked): (Vec<Inflight>, Vec<Inflight>) =
            state.inflight.drain(..).partition(|i| i.released);
        for entry in unacked.into_iter().rev() {
            let mut outgoing = entry.outgoing;
            outgoing.dup = true;
            state.queued_bytes += outgoing.message.payload.len();
            state.queue.push_front(outgoing);
        }
        let ids = released.iter().map(|i| i.packet_id).collect();
        state.inflight.extend(released);
        match journal {
            _ if expiry.is_zero() => {
                self.stop_journaling(&mut state, journal);
            }
            Some(journal) if state.durable => {
                journal.push(self.session_op(&state, None));
            }
            Some(journal) => self.start_journaling(&mut state, journal, subscriptions()),
            None => {}
        }
        ids
    }

    /// Journals everything a session holds that survives a restart and
    /// marks it durable. Only a new session normally gets here (with nothing
    /// yet); the rest covers one that was not durable before.
    fn start_journaling(
        &self,
        state: &mut SessionState,
        journal: &Journal,
        subscriptions: Vec<(String, Subscription)>,
    ) {
        state.durable = true;
        journal.push(self.session_op(state, None));
        for (filter, subscription) in subscriptions {
            journal.push(Op::Subscribed {
                session: self.id,
                filter,
                subscription,
            });
        }
        let SessionState {
            queue, next_seq, ..
        } = state;
        for outgoing in queue.iter_mut().filter(|o| o.qos != QoS::AtMostOnce) {
            *next_seq += 1;
            outgoing.seq = *next_seq;
            journal.push(Op::Queued {
                session: self.id,
                outgoing: outgoing.clone(),
            });
        }
    }

    /// The connection `conn_id` ends. Returns true when the session ends with it.
    pub fn detach(&self, conn_id: u64, journal: Option<&Journal>) -> bool {
        let mut state = self.lock();
        if state.owner != Some(conn_id) {
            return false;
        }
        state.owner = None;
        state.disconnected_at = Some(Instant::now());
        // Nobody reads the queue now: publishers waiting for room go on
        // (what the session keeps offline is bounded as it always is).
        state.pressured = false;
        self.room.notify_waiters();
        if let Some(journal) = Self::journal_of(&state, journal) {
            journal.push(self.session_op(&state, Some(unix_ms(SystemTime::now()))));
        }
        state.expiry.is_zero()
    }

    /// The client changed the session expiry (MQTT 5 DISCONNECT). The
    /// caller has checked that a session ending with its connection does not
    /// ask to outlive it.
    pub fn set_expiry(&self, expiry: Duration, journal: Option<&Journal>) {
        let mut state = self.lock();
        state.expiry = expiry;
        if expiry.is_zero() {
            self.stop_journaling(&mut state, journal);
        } else if let Some(journal) = Self::journal_of(&state, journal) {
            journal.push(self.session_op(&state, None));
        }
    }

    /// The session is over (clean start, expiry, or its connection ended).
    pub fn end(&self, journal: Option<&Journal>) {
        let mut state = self.lock();
        self.stop_journaling(&mut state, journal);
    }
}

/// All sessions by client id.
#[derive(Default)]
pub(crate) struct SessionTable {
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    /// The id of the last session created.
    last_id: AtomicU64,
}

impl SessionTable {
    pub fn get(&self, client_id: &str) -> Option<Arc<Session>> {
        self.sessions.locked().get(client_id).cloned()
    }

    /// The session for `client_id`: the existing one (true) unless
    /// `clean_start`, else a new one (false).
    pub fn open(&self, client_id: &str, clean_start: bool) -> (Arc<Session>, bool) {
        let mut sessions = self.sessions.locked();
        if !clean_start {
            if let Some(existing) = sessions.get(client_id) {
                return (existing.clone(), true);
            }
        }
        let id = self.last_id.fetch_add(1, Ordering::Relaxed) + 1;
        let session = Arc::new(Session::new(id, client_id));
        sessions.insert(client_id.to_string(), session.clone());
        (session, false)
    }

    /// Puts back a session read from the gateway state, under its saved id.
    pub fn restore(&self, client_id: &str, id: u64) -> Arc<Session> {
        self.last_id.fetch_max(id, Ordering::Relaxed);
        let session = Arc::new(Session::new(id, client_id));
        let mut sessions = self.sessions.locked();
        sessions.insert(client_id.to_string(), session.clone());
        session
    }

    /// Removes the session if it is still this one.
    pub fn remove_if(&self, session: &Arc<Session>) -> bool {
        let mut sessions = self.sessions.locked();
        match sessions.get(&session.client_id) {
            Some(current) if Arc::ptr_eq(current, session) => {
                sessions.remove(&session.client_id);
                true
            }
            _ => false,
        }
    }

    pub fn len(&self) -> usize {
        self.sessions.locked().len()
    }

    pub fn all(&self) -> Vec<Arc<Session>> {
        self.sessions.locked().values().cloned().collect()
    }

    /// Detached persistent sessions whose expiry has passed.
    pub fn expired(&self, now: Instant) -> Vec<Arc<Session>> {
        let sessions = self.sessions.locked();
        sessions
            .values()
            .filter(|s| s.lock().expired(now))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;
    use crate::{Limits, Profile};

    fn limits(mark: usize) -> Limits {
        Limits {
            max_queued_messages: mark,
            ..Limits::for_profile(Profile::Aws)
        }
    }

    fn outgoing(qos: QoS) -> Outgoing {
        Outgoing {
            message: Arc::new(Message::new("t", "x", qos)),
            qos,
            retain: false,
            subscription_ids: Vec::new(),
            dup: false,
            seq: 0,
        }
    }

    fn connected() -> Session {
        let session = Session::new(1, "sub");
        session.attach(7, Duration::ZERO, None, Vec::new);
        session
    }

    #[test]
    fn past_its_mark_a_connected_queue_holds_publishers_until_half_drained() {
        let (limits, metrics) = (limits(4), Metrics::default());
        let session = connected();
        for _ in 0..3 {
            let e = session.enqueue(outgoing(QoS::AtLeastOnce), &limits, &metrics, None);
            assert!(!e.full);
        }
        assert!(session.has_room());
        let e = session.enqueue(outgoing(QoS::AtLeastOnce), &limits, &metrics, None);
        assert!(e.full, "the fourth message reaches the mark");
        assert!(!session.has_room());
        let resume_below = (2, usize::MAX);
        session.next_to_send(100, resume_below);
        assert!(!session.has_room(), "three left: above half the mark");
        session.next_to_send(100, resume_below);
        assert!(session.has_room(), "two left: publishers go on");
    }

    #[test]
    fn a_queue_holds_twice_its_mark_and_counts_what_does_not_fit() {
        let (limits, metrics) = (limits(4), Metrics::default());
        let session = connected();
        for _ in 0..8 {
            session.enqueue(outgoing(QoS::AtLeastOnce), &limits, &metrics, None);
        }
        assert_eq!(session.lock().queue.len(), 8);
        session.enqueue(outgoing(QoS::AtLeastOnce), &limits, &metrics, None);
        session.enqueue(outgoing(QoS::AtMostOnce), &limits, &metrics, None);
        assert_eq!(session.lock().queue.len(), 8);
        assert_eq!(metrics.dropped_queue_full.load(Ordering::Relaxed), 1);
        assert_eq!(metrics.dropped_qos0_backlog.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_detached_session_never_holds_a_publisher() {
        let (limits, metrics) = (limits(2), Metrics::default());
        let session = connected();
        session.enqueue(outgoing(QoS::AtLeastOnce), &limits, &metrics, None);
        session.enqueue(outgoing(QoS::AtLeastOnce), &limits, &metrics, None);
        assert!(!session.has_room());
        session.detach(7, None);
        assert!(session.has_room());
        // Offline it keeps QoS 1 up to twice the mark and never asks to wait.
        let e = session.enqueue(outgoing(QoS::AtLeastOnce), &limits, &metrics, None);
        assert!(!e.full);
        assert_eq!(session.lock().queue.len(), 3);
        let e = session.enqueue(outgoing(QoS::AtMostOnce), &limits, &metrics, None);
        assert_eq!(e, Enqueued::default());
    }
}
