//! The gateway state at run time: opened once at start (read back into the
//! sessions and the router, then the journal's writer started), and the
//! entry points that publish and wait for what they changed to be durable.

use crate::journal::{self, Journal, StateUnavailable};
use crate::message::Message;
use crate::persist::{
    unix_to_instant, BrokerStore, Loaded, PersistError, StateCounts, StateWriter,
};
use crate::session::Session;
use crate::{Broker, Shared};
use roost_mqtt::QoS;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

impl Broker {
    /// Reads the gateway state back (sessions come back detached, with their
    /// subscriptions in the index and their queues in their original order)
    /// and from now on writes every change to it as it happens. Once only,
    /// before any listener serves.
    pub async fn open_state(
        &self,
        store: BrokerStore,
    ) -> Result<(StateCounts, StateWriter), PersistError> {
        if self.shared.journal.get().is_some() {
            return Err(PersistError::new("the gateway state is already open"));
        }
        let loaded = store.load().await?;
        let counts = self.shared.restore(loaded);
        let journal = Arc::new(Journal::new(journal::QUEUE_CAPACITY));
        if self.shared.journal.set(journal.clone()).is_err() {
            return Err(PersistError::new("the gateway state is already open"));
        }
        let task = tokio::spawn(journal::run_writer(
            journal.clone(),
            store,
            self.shared.metrics.clone(),
        ));
        Ok((counts, StateWriter { journal, task }))
    }
}

impl Shared {
    fn restore(&self, loaded: Loaded) -> StateCounts {
        let now = Instant::now();
        let wall = SystemTime::now();
        let mut counts = StateCounts::default();
        // A cluster node has the cluster's retained messages, which may
        // have changed while it was down.
        if !self.keeps_retained_in_cluster() {
            for (message, set_at) in loaded.retained {
                self.router.restore_retained(Arc::new(message), set_at);
                counts.retained += 1;
            }
        }
        for loaded in loaded.sessions {
            let session = self.sessions.restore(&loaded.client_id, loaded.id);
            for (filter, subscription) in loaded.subscriptions {
                self.router
                    .subscribe(&session, &filter, subscription, usize::MAX, None);
            }
            let mut state = session.lock();
            state.durable = true;
            state.expiry = loaded.expiry;
            state.disconnected_at = Some(unix_to_instant(loaded.disconnected_at, now, wall));
            for outgoing in loaded.messages {
                state.next_seq = state.next_seq.max(outgoing.seq);
                state.queued_bytes += outgoing.message.payload.len();
                state.queue.push_back(outgoing);
                counts.messages += 1;
            }
            drop(state);
            counts.sessions += 1;
        }
        counts
    }

    /// Flow control for the publishers that answer once published (HTTPS,
    /// iot-data, republish), as an MQTT publisher's socket stops being read:
    /// the answer waits until the subscribers left past their queue's mark
    /// have room, or the slow-consumer timeout cuts them off.
    async fn wait_for_subscribers(&self, full: Vec<Arc<Session>>) {
        if full.is_empty() {
            return;
        }
        self.metrics
            .publishers_slowed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let deadline = tokio::time::Instant::now() + self.config.limits.slow_consumer_timeout;
        for session in full {
            if tokio::time::timeout_at(deadline, session.wait_room())
                .await
                .is_err()
            {
                self.cut_slow_consumer(&session);
            }
        }
    }

    /// The journal, once the gateway state is open.
    pub(crate) fn journal(&self) -> Option<&Journal> {
        self.journal.get().map(|j| &**j)
    }

    /// Routes a message and, for QoS 1/2, waits until what it changed in the
    /// durable state (queued for persistent sessions, retained) is committed;
    /// QoS 0 only waits for room in the journal. For the entry points that
    /// answer after publishing (HTTPS, iot-data, republish).
    pub(crate) async fn publish_durably(
        &self,
        message: Message,
    ) -> Result<usize, StateUnavailable> {
        let qos = message.qos;
        let routed = self.route(message);
        let matched = routed.matched;
        self.wait_for_subscribers(routed.full).await;
        if let (Some(ticket), Some(journal)) = (routed.ticket, self.journal()) {
            if qos == QoS::AtMostOnce {
                journal.wait_room(&self.metrics).await?;
            } else {
                journal.wait(ticket).await?;
            }
        }
        // On a cluster node, a QoS 1/2 message is answered once stored.
        if let Some(confirmation) = routed.stored {
            if !confirmation.done().await {
                return Err(StateUnavailable);
            }
        }
        Ok(matched)
    }
}
