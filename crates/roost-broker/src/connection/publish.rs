//! PUBLISH from the client: topic aliases and checks, iot:Publish, routing,
//! and the answer (at once, or held until its durable changes are
//! committed). Flow control: a publish that leaves a subscriber's queue
//! past its mark stops this connection reading until that queue has room,
//! or until the slow-consumer timeout disconnects the subscriber.

use super::*;

/// An answer to a QoS 1/2 PUBLISH held until `ticket` is committed and,
/// on a cluster node that stores messages, the message is `stored`.
#[derive(Clone, Debug)]
pub(super) struct HeldAck {
    packet_id: u16,
    qos: QoS,
    reason: ReasonCode,
    ticket: u64,
    stored: Option<Arc<crate::cluster::Confirmation>>,
}

impl HeldAck {
    /// Whether its changes are saved and its message stored: `None` while
    /// either is undecided.
    fn outcome(&self, progress: Option<&crate::journal::Progress>) -> Option<Result<(), Close>> {
        let saved = match progress {
            Some(progress) => progress.outcome(self.ticket)?.is_ok(),
            None => true,
        };
        let stored = match &self.stored {
            Some(confirmation) => confirmation.outcome()?,
            None => true,
        };
        Some(match (saved, stored) {
            (true, true) => Ok(()),
            (false, _) => Err(Close::StateNotSaved),
            (true, false) => Err(Close::NotStored),
        })
    }
}

/// What a QoS 1/2 PUBLISH is to the flow it arrives in.
enum Inbound {
    New,
    /// A QoS 2 message still awaiting its PUBREL: answered with this reason.
    Repeated(ReasonCode),
}

/// Completes when `session`, if any, has room for its publishers again.
pub(super) async fn room_in(session: Option<Arc<Session>>) {
    match session {
        Some(session) => session.wait_room().await,
        None => std::future::pending().await,
    }
}

impl<R, W> Conn<R, W>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    pub(super) async fn on_publish(&mut self, mut publish: Publish) -> Result<(), Close> {
        let profile = self.shared().config.profile;
        // Topic aliases (MQTT 5): set or resolve.
        if let Some(alias) = publish.properties.topic_alias.take() {
            if alias == 0 || alias > self.shared().config.limits.topic_alias_maximum {
                return Err(Close::ProtocolError(ReasonCode::TopicAliasInvalid));
            }
            if publish.topic.is_empty() {
                match self.aliases.get(&alias) {
                    Some(topic) => publish.topic = topic.clone(),
                    None => return Err(Close::ProtocolError(ReasonCode::ProtocolError)),
                }
            } else {
                self.aliases.insert(alias, publish.topic.clone());
            }
        }
        match crate::publish::check_topic(profile, &publish.topic, publish.retain) {
            Ok(()) => {}
            Err(crate::PublishRefusal::InvalidTopic(_)) => {
                return Err(Close::ProtocolError(ReasonCode::TopicNameInvalid))
            }
            Err(crate::PublishRefusal::ServerTopic) => {
                self.refuse_server_topic(&publish);
                return Ok(());
            }
            Err(why) => {
                tracing::info!(topic = %publish.topic, %why, "closing: publish to a reserved topic");
                return Err(Close::ProtocolError(ReasonCode::TopicNameInvalid));
            }
        }
        if publish.qos == QoS::ExactlyOnce && profile == Profile::Aws {
            tracing::info!("closing: QoS 2 PUBLISH (not supported in the aws profile)");
            return Err(Close::ProtocolError(ReasonCode::QoSNotSupported));
        }
        self.fresh_authorization().await?;
        let allowed = self.authz.publish(&publish.topic, publish.retain) == Decision::Allowed;
        self.log_publish_in(&publish.topic, &publish.payload, allowed);
        if !allowed {
            self.shared()
                .metrics
                .publish_denied
                .fetch_add(1, Ordering::Relaxed);
            tracing::info!(action = "iot:Publish", resource = %format!("topic/{}", publish.topic), "denied");
            // MQTT 5 can say no; 3.1.1 cannot, and AWS closes the connection.
            return match (self.protocol, publish.packet_id) {
                (ProtocolVersion::V5, Some(packet_id)) => {
                    self.ack(publish.qos, packet_id, ReasonCode::NotAuthorized);
                    Ok(())
                }
                (ProtocolVersion::V5, None) => Ok(()),
                _ => Err(Close::Forbidden),
            };
        }
        if let Some(packet_id) = publish.packet_id {
            if let Inbound::Repeated(reason) = self.admit_inbound(&publish, packet_id)? {
                // Not routed again.
                return self.ack_in_order(QoS::ExactlyOnce, packet_id, reason).await;
            }
        }
        if let Some(service) = self.shared().device_service_for(&publish.topic) {
            return self.ask_service(service, publish).await;
        }
        let expires_at = publish
            .properties
            .message_expiry_interval
            .map(|s| Instant::now() + Duration::from_secs(u64::from(s)));
        let mut properties = publish.properties;
        properties.subscription_identifiers.clear();
        let message = Message {
            topic: publish.topic,
            payload: publish.payload,
            qos: publish.qos,
            retain: publish.retain,
            properties,
            publisher: Some(self.client_id.clone()),
            principal: Some(self.authz.certificate_id().to_string()),
            expires_at,
            stored_seq: 0,
        };
        let routed = self.shared().route(message);
        let (delivered, ticket, stored) = (routed.matched, routed.ticket, routed.stored);
        // Subscribers on other nodes are not counted here.
        let delivered = delivered.max(usize::from(routed.forwarded));
        self.slow_down(routed.full);
        let Some(packet_id) = publish.packet_id else {
            // QoS 0 waits for nothing but room in the journal.
            if ticket.is_some() {
                self.wait_for_room().await?;
            }
            return Ok(());
        };
        let reason = if delivered == 0 && self.protocol == ProtocolVersion::V5 {
            ReasonCode::NoMatchingSubscribers
        } else {
            ReasonCode::Success
        };
        if ticket.is_none() && stored.is_none() && self.held_acks.is_empty() {
            // Nothing durable changed (clean sessions): answer at once.
            self.ack(publish.qos, packet_id, reason);
            return Ok(());
        }
        self.hold_ack(HeldAck {
            packet_id,
            qos: publish.qos,
            reason,
            ticket: ticket.unwrap_or(0),
            stored,
        })
        .await
    }

    /// Inbound flow control and QoS 2 state for a QoS 1/2 PUBLISH: a QoS 2
    /// packet id still awaiting its PUBREL repeats that message, which is
    /// answered with a PUBREC and never routed again [MQTT-4.3.3-10]: Success
    /// for a retransmission (DUP), 0x91 (Packet Identifier in use) in MQTT 5
    /// for a new message reusing the id [MQTT-2.2.1-3]. A new message past
    /// the Receive Maximum the CONNACK announced (unanswered QoS 1, QoS 2
    /// without PUBCOMP) is a DISCONNECT 0x93 [MQTT-3.3.4-9]. Otherwise a
    /// QoS 2 message now awaits its PUBREL.
    fn admit_inbound(&mut self, publish: &Publish, packet_id: u16) -> Result<Inbound, Close> {
        let v5 = self.protocol == ProtocolVersion::V5;
        let receive_maximum = usize::from(self.shared().config.limits.max_inflight.max(1));
        let held_qos1 = self
            .held_acks
            .iter()
            .filter(|held| held.qos == QoS::AtLeastOnce)
            .count();
        let mut session = self.session.lock();
        if publish.qos == QoS::ExactlyOnce && session.inbound_qos2.contains(&packet_id) {
            return Ok(Inbound::Repeated(match publish.dup || !v5 {
                true => ReasonCode::Success,
                false => ReasonCode::PacketIdentifierInUse,
            }));
        }
        if v5 && session.inbound_qos2.len() + held_qos1 >= receive_maximum {
            tracing::info!(receive_maximum, "closing: Receive Maximum exceeded");
            return Err(Close::ProtocolError(ReasonCode::ReceiveMaximumExceeded));
        }
        if publish.qos == QoS::ExactlyOnce {
            session.inbound_qos2.insert(packet_id);
        }
        Ok(Inbound::New)
    }

    /// A PUBLISH to `$SYS` or `$share` (full profile) is not routed, and
    /// the connection stays, as with Mosquitto: MQTT 5 says so (0x87 Not
    /// authorized); 3.1.1 cannot, so the message is acknowledged and
    /// dropped. Counted with the refused publishes.
    fn refuse_server_topic(&mut self, publish: &Publish) {
        self.shared()
            .metrics
            .publish_denied
            .fetch_add(1, Ordering::Relaxed);
        tracing::info!(topic = %publish.topic, "publish to a $SYS or $share topic dropped");
        if let Some(packet_id) = publish.packet_id {
            let reason = match self.protocol {
                ProtocolVersion::V5 => ReasonCode::NotAuthorized,
                _ => ReasonCode::Success,
            };
            self.ack(publish.qos, packet_id, reason);
        }
    }

    /// Holds a PUBLISH's answer until its durable changes are committed
    /// (answers go out in PUBLISH order, so one with nothing durable waits
    /// behind the ones before it). At most the in-flight window is held;
    /// past it, reading stops until the oldest is committed.
    /// Answers a PUBLISH that changed nothing durable: at once, or after
    /// the answers still held, in order.
    pub(super) async fn ack_in_order(
        &mut self,
        qos: QoS,
        packet_id: u16,
        reason: ReasonCode,
    ) -> Result<(), Close> {
        if self.held_acks.is_empty() {
            self.ack(qos, packet_id, reason);
            return Ok(());
        }
        self.hold_ack(HeldAck {
            packet_id,
            qos,
            reason,
            ticket: 0,
            stored: None,
        })
        .await
    }

    pub(super) async fn hold_ack(&mut self, mut held: HeldAck) -> Result<(), Close> {
        if let Some(last) = self.held_acks.back() {
            held.ticket = held.ticket.max(last.ticket);
        }
        self.held_acks.push_back(held);
        self.release_acks()?;
        let limit = usize::from(self.shared().config.limits.max_inflight.max(1));
        if self.held_acks.len() >= limit {
            if let Some(oldest) = self.held_acks.front().cloned() {
                // Its fate is reported either way; release_acks reads it.
                if let Some(journal) = self.broker.shared.journal() {
                    let _ = journal.wait(oldest.ticket).await;
                }
                if let Some(confirmation) = &oldest.stored {
                    confirmation.done().await;
                }
            }
            self.release_acks()?;
        }
        self.wait_for_room().await
    }

    /// Sends the held answers whose changes are committed, in order: PUBACK
    /// as decided, or, when their transaction failed, PUBACK 0x80 (MQTT 5)
    /// or a closed connection (3.1.1, which cannot say so). Asks the journal
    /// to wake the session when the oldest still held is decided.
    pub(super) fn release_acks(&mut self) -> Result<(), Close> {
        let progress = self.broker.shared.journal().map(|j| j.progress());
        while let Some(held) = self.held_acks.front().cloned() {
            match held.outcome(progress.as_ref()) {
                None => break,
                Some(Ok(())) => {
                    self.held_acks.pop_front();
                    self.ack(held.qos, held.packet_id, held.reason);
                }
                Some(Err(close)) => {
                    self.held_acks.pop_front();
                    self.shared()
                        .metrics
                        .state_answers_failed
                        .fetch_add(1, Ordering::Relaxed);
                    let why = match close {
                        Close::NotStored => "the cluster's stream did not store it",
                        _ => "the gateway state could not be saved",
                    };
                    tracing::warn!(packet_id = held.packet_id, why, "publish not acknowledged");
                    if self.protocol != ProtocolVersion::V5 {
                        return Err(close);
                    }
                    if held.qos == QoS::ExactlyOnce {
                        // The flow ends here: a resend is a new message.
                        self.session.lock().inbound_qos2.remove(&held.packet_id);
                    }
                    self.ack(held.qos, held.packet_id, ReasonCode::UnspecifiedError);
                }
            }
        }
        if let (Some(held), Some(journal)) = (self.held_acks.front(), self.broker.shared.journal())
        {
            if held.ticket > self.wake_ticket {
                self.wake_ticket = held.ticket;
                journal.wake_when_done(held.ticket, &self.session.wake);
            }
        }
        if let Some(confirmation) = self.held_acks.front().and_then(|h| h.stored.as_ref()) {
            confirmation.wake_when_done(&self.session.wake);
        }
        Ok(())
    }

    /// A publish left the sessions `full` past their queue's mark: this
    /// publisher's socket is not read until they have room, so each
    /// publisher adds at most the one message that crossed the mark (its
    /// answer goes out: it is queued). Its own session never slows it: it
    /// could not drain while this connection waits.
    pub(super) fn slow_down(&mut self, full: Vec<Arc<Session>>) {
        let mut added = false;
        for session in full {
            if Arc::ptr_eq(&session, &self.session)
                || self
                    .waiting_for_room
                    .iter()
                    .any(|s| Arc::ptr_eq(s, &session))
            {
                continue;
            }
            self.waiting_for_room.push(session);
            added = true;
        }
        if self.waiting_for_room.is_empty() {
            return;
        }
        if added && self.slowed_since.is_none() {
            self.slowed_since = Some(Instant::now());
            self.shared()
                .metrics
                .publishers_slowed
                .fetch_add(1, Ordering::Relaxed);
        }
        self.read_paused = true;
    }

    /// Drops the sessions that have room again; once none is left, reading
    /// resumes with what was left buffered.
    pub(super) async fn check_room(&mut self) -> Result<(), Close> {
        self.waiting_for_room.retain(|s| !s.has_room());
        if !self.waiting_for_room.is_empty() {
            return Ok(());
        }
        self.slowed_since = None;
        if std::mem::take(&mut self.read_paused) {
            // The client's silence while unread was ours, not its.
            self.last_received = Instant::now();
            self.handle_buffered().await?;
        }
        Ok(())
    }

    /// The slow-consumer timeout passed: the subscribers still without room
    /// are disconnected (the documented policy: a persistent session keeps
    /// what was queued for the client's return).
    pub(super) fn cut_slow_consumers(&mut self) {
        for session in &self.waiting_for_room {
            self.broker.shared.cut_slow_consumer(session);
        }
        // Waits on for them to detach (which gives room); not again.
        self.slowed_since = None;
    }

    /// Backpressure: waits while the journal's queue is full.
    pub(super) async fn wait_for_room(&self) -> Result<(), Close> {
        let shared = &self.broker.shared;
        match shared.journal() {
            Some(journal) => journal
                .wait_room(&shared.metrics)
                .await
                .map_err(|_| Close::StateNotSaved),
            None => Ok(()),
        }
    }

    /// Waits until the subscription changes up to `ticket` are committed
    /// (a SUBACK or UNSUBACK promises they survive a restart).
    pub(super) async fn wait_saved(&mut self, ticket: Option<u64>) -> Result<(), Close> {
        let (Some(ticket), Some(journal)) = (ticket, self.broker.shared.journal()) else {
            return Ok(());
        };
        if journal.wait(ticket).await.is_err() {
            self.shared()
                .metrics
                .state_answers_failed
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!("closing: subscriptions could not be saved");
            return Err(Close::StateNotSaved);
        }
        // Answers held for earlier PUBLISHes are committed too: they go first.
        self.release_acks()
    }

    pub(super) fn ack(&mut self, qos: QoS, packet_id: u16, reason_code: ReasonCode) {
        let packet = match qos {
            QoS::ExactlyOnce => Packet::PubRec(PubRec {
                packet_id,
                reason_code,
                properties: Default::default(),
            }),
            _ => Packet::PubAck(PubAck {
                packet_id,
                reason_code,
                properties: Default::default(),
            }),
        };
        self.encode(&packet);
    }
}
