//! Sessions: what the broker keeps per client id — subscriptions, the
//! bounded queue of messages waiting for delivery, and the QoS 1 messages
//! in flight — across connections when the session is persistent.

use crate::metrics::Metrics;
use crate::router::Message;
use crate::Limits;
use roost_mqtt::{QoS, SubscriptionOptions};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// A message on its way to one subscriber.
#[derive(Clone, Debug)]
pub(crate) struct Outgoing {
    pub message: Arc<Message>,
    /// The QoS it is delivered at: the lower of the publish and the subscription.
    pub qos: QoS,
    /// The RETAIN flag as sent to this subscriber.
    pub retain: bool,
    /// Set when the message is sent again after a reconnect.
    pub dup: bool,
}

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
    pub subscriptions: HashMap<String, SubscriptionOptions>,
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
}

impl SessionState {
    /// A packet id not in flight.
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
    pub client_id: String,
    pub state: Mutex<SessionState>,
    /// Wakes the attached connection when something was queued.
    pub wake: Notify,
}

impl Session {
    fn new(client_id: &str) -> Self {
        Self {
            client_id: client_id.to_string(),
            state: Mutex::new(SessionState::default()),
            wake: Notify::new(),
        }
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, SessionState> {
        self.state.lock().expect("session lock")
    }

    /// Queues a message for delivery. A detached session keeps only QoS 1
    /// messages (as AWS does); a full queue refuses the message, counted.
    pub fn enqueue(&self, outgoing: Outgoing, limits: &Limits, metrics: &Metrics) -> bool {
        {
            let mut state = self.lock();
            if state.owner.is_none() && outgoing.qos == QoS::AtMostOnce {
                return false;
            }
            let size = outgoing.message.payload.len();
            if state.queue.len() >= limits.max_queued_messages
                || state.queued_bytes + size > limits.max_queued_bytes
            {
                let counter = if outgoing.qos == QoS::AtMostOnce {
                    &metrics.dropped_qos0_backlog
                } else {
                    &metrics.dropped_queue_full
                };
                counter.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(client_id = %self.client_id, queued = state.queue.len(), "session queue full: message dropped");
                return false;
            }
            state.queued_bytes += size;
            state.queue.push_back(outgoing);
        }
        self.wake.notify_one();
        true
    }

    /// Takes the next message to send, if the in-flight window allows
    /// (QoS 0 messages need no window).
    pub fn next_to_send(&self, window: usize) -> Option<Outgoing> {
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
        Some(next)
    }

    /// Records a QoS 1/2 message as in flight and returns its packet id.
    pub fn start_inflight(&self, outgoing: &Outgoing) -> u16 {
        let mut state = self.lock();
        let packet_id = state.next_packet_id();
        state.inflight.push_back(Inflight {
            packet_id,
            outgoing: outgoing.clone(),
            released: false,
        });
        packet_id
    }

    /// PUBACK (QoS 1) or PUBCOMP (QoS 2) arrived: the message is done.
    pub fn complete(&self, packet_id: u16, qos2: bool) -> bool {
        let mut state = self.lock();
        let before = state.inflight.len();
        state
            .inflight
            .retain(|i| i.packet_id != packet_id || (qos2 && !i.released));
        before != state.inflight.len()
    }

    /// PUBREC arrived for a QoS 2 message.
    pub fn release(&self, packet_id: u16) -> bool {
        let mut state = self.lock();
        match state.inflight.iter_mut().find(|i| i.packet_id == packet_id) {
            Some(entry) => {
                entry.released = true;
                true
            }
            None => false,
        }
    }

    /// A connection attaches: messages that were in flight are sent again
    /// first (DUP), except QoS 2 ones already released, which only need their
    /// PUBREL again. Returns those packet ids.
    pub fn attach(&self, conn_id: u64, expiry: Duration) -> Vec<u16> {
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
        ids
    }

    /// The connection `conn_id` ends. Returns true when the session ends with it.
    pub fn detach(&self, conn_id: u64) -> bool {
        let mut state = self.lock();
        if state.owner != Some(conn_id) {
            return false;
        }
        state.owner = None;
        state.disconnected_at = Some(Instant::now());
        state.expiry.is_zero()
    }
}

/// All sessions by client id.
#[derive(Default)]
pub(crate) struct SessionTable {
    sessions: Mutex<HashMap<String, Arc<Session>>>,
}

impl SessionTable {
    pub fn get(&self, client_id: &str) -> Option<Arc<Session>> {
        self.sessions
            .lock()
            .expect("session table lock")
            .get(client_id)
            .cloned()
    }

    /// The session for `client_id`: the existing one (true) unless
    /// `clean_start`, else a new one (false).
    pub fn open(&self, client_id: &str, clean_start: bool) -> (Arc<Session>, bool) {
        let mut sessions = self.sessions.lock().expect("session table lock");
        if !clean_start {
            if let Some(existing) = sessions.get(client_id) {
                return (existing.clone(), true);
            }
        }
        let session = Arc::new(Session::new(client_id));
        sessions.insert(client_id.to_string(), session.clone());
        (session, false)
    }

    /// Removes the session if it is still this one.
    pub fn remove_if(&self, session: &Arc<Session>) -> bool {
        let mut sessions = self.sessions.lock().expect("session table lock");
        match sessions.get(&session.client_id) {
            Some(current) if Arc::ptr_eq(current, session) => {
                sessions.remove(&session.client_id);
                true
            }
            _ => false,
        }
    }

    pub fn len(&self) -> usize {
        self.sessions.lock().expect("session table lock").len()
    }

    pub fn all(&self) -> Vec<Arc<Session>> {
        self.sessions
            .lock()
            .expect("session table lock")
            .values()
            .cloned()
            .collect()
    }

    /// Detached persistent sessions whose expiry has passed.
    pub fn expired(&self, now: Instant) -> Vec<Arc<Session>> {
        let sessions = self.sessions.lock().expect("session table lock");
        sessions
            .values()
            .filter(|s| {
                let state = s.lock();
                state.owner.is_none()
                    && state
                        .disconnected_at
                        .is_some_and(|at| now.duration_since(at) >= state.expiry)
            })
            .cloned()
            .collect()
    }
}
