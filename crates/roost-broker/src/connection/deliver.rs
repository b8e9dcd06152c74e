//! Delivery: the session's queue written to the client within its receive
//! window, each message checked against iot:Receive with the connection's
//! policies made fresh first.

use super::*;

impl<R, W> Conn<R, W>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    /// Re-reads the connection's policies when a change that may concern it
    /// was made since they were read (counted); the registry failing to
    /// answer ends the connection rather than deciding on stale policies.
    pub(super) async fn fresh_authorization(&mut self) -> Result<(), Close> {
        match self.authz.ensure_fresh().await {
            Ok(false) => Ok(()),
            Ok(true) => {
                self.shared()
                    .metrics
                    .authorization_refreshes
                    .fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(AuthzError::Refused(why)) => {
                tracing::info!(reason = %why, "closing: certificate no longer ACTIVE");
                Err(Close::Kicked(Kick::CertificateRevoked))
            }
            Err(e) => {
                tracing::error!(error = %e, "closing: the registry did not answer for this connection's policies");
                Err(Close::Kicked(Kick::Shutdown))
            }
        }
    }

    /// Writes queued messages while the client's receive window allows.
    pub(super) async fn deliver(&mut self) -> Result<(), Close> {
        let window = self
            .client_receive_max
            .min(usize::from(self.shared().config.limits.max_inflight));
        self.fresh_authorization().await?;
        let mut batch = 0;
        let limits = &self.broker.shared.config.limits;
        let resume_below = (limits.max_queued_messages / 2, limits.max_queued_bytes / 2);
        while let Some(outgoing) = self.session.next_to_send(window, resume_below) {
            let now = Instant::now();
            let journal = self.broker.shared.journal();
            if outgoing.message.expired(now) {
                self.shared()
                    .metrics
                    .dropped_expired
                    .fetch_add(1, Ordering::Relaxed);
                self.session.discard(&outgoing, journal);
                continue;
            }
            if self.authz.receive(&outgoing.message.topic) != Decision::Allowed {
                self.shared()
                    .metrics
                    .receive_denied
                    .fetch_add(1, Ordering::Relaxed);
                tracing::debug!(topic = %outgoing.message.topic, "delivery skipped: iot:Receive denied");
                self.log_publish_out(&outgoing.message.topic, &outgoing.message.payload, false);
                self.session.discard(&outgoing, journal);
                continue;
            }
            let packet_id = (outgoing.qos != QoS::AtMostOnce)
                .then(|| self.session.start_inflight(&outgoing, journal));
            let mut properties: PublishProperties = outgoing.message.properties.clone();
            properties.topic_alias = None;
            properties
                .subscription_identifiers
                .clone_from(&outgoing.subscription_ids);
            if let Some(at) = outgoing.message.expires_at {
                properties.message_expiry_interval =
                    Some(at.saturating_duration_since(now).as_secs().max(1) as u32);
            }
            let publish = Packet::Publish(Publish {
                dup: outgoing.dup,
                qos: outgoing.qos,
                retain: outgoing.retain,
                topic: outgoing.message.topic.clone(),
                packet_id,
                payload: outgoing.message.payload.clone(),
                properties,
            });
            if self.encode(&publish) {
                self.shared()
                    .metrics
                    .messages_delivered
                    .fetch_add(1, Ordering::Relaxed);
                self.log_publish_out(&outgoing.message.topic, &outgoing.message.payload, true);
            } else {
                // Larger than the client's Maximum Packet Size: it can never
                // be delivered to this client, and is done for it as if it
                // had been (spec 3.1.2.11.4).
                self.shared()
                    .metrics
                    .dropped_too_large
                    .fetch_add(1, Ordering::Relaxed);
                if let Some(id) = packet_id {
                    let journal = self.broker.shared.journal();
                    self.session.complete(id, false, journal);
                }
            }
            batch += 1;
            if batch >= DELIVERY_BATCH {
                self.flush().await?;
                batch = 0;
            }
        }
        self.flush().await
    }
}
