//! Closing: telling the client why (MQTT 5), the session detached or
//! ended, the will authorized when it is sent (and never for a connection
//! closed because its certificate is no longer valid), the lifecycle event.

use super::*;

/// The message a will becomes: published as its client, under its
/// certificate (the expiry instant is set when it is sent).
pub(crate) fn will_message(will: Will, client_id: &str, principal: &str) -> Message {
    Message {
        topic: will.topic,
        payload: will.payload,
        qos: will.qos,
        retain: will.retain,
        properties: PublishProperties {
            payload_format_indicator: will.properties.payload_format_indicator,
            message_expiry_interval: will.properties.message_expiry_interval,
            content_type: will.properties.content_type,
            response_topic: will.properties.response_topic,
            correlation_data: will.properties.correlation_data,
            user_properties: will.properties.user_properties,
            ..Default::default()
        },
        publisher: Some(client_id.to_string()),
        principal: Some(principal.to_string()),
        expires_at: None,
        stored_seq: 0,
    }
}

/// Whether a will may go out now: the certificate still ACTIVE and
/// iot:Publish (and iot:RetainPublish) on its topic allowed by the policies
/// as they are now. A refusal is counted and logged.
pub(super) async fn will_allowed(
    authz: &mut ConnectionAuthz,
    broker: &Broker,
    will: &Message,
) -> bool {
    let why = match authz.ensure_fresh().await {
        Ok(_) if authz.publish(&will.topic, will.retain) == Decision::Allowed => return true,
        Ok(_) => "the policies no longer allow publishing it".to_string(),
        Err(e) => e.to_string(),
    };
    broker
        .shared
        .metrics
        .wills_refused
        .fetch_add(1, Ordering::Relaxed);
    tracing::info!(client_id = will.publisher.as_deref().unwrap_or(""), topic = %will.topic, reason = %why, "will not sent");
    false
}

impl<R, W> Conn<R, W>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    /// Ends the connection: tell the client why (MQTT 5), publish the will
    /// unless the client disconnected cleanly, detach or end the session,
    /// announce the disconnect.
    pub(super) async fn finish(mut self, close: Close) {
        let shared = self.broker.shared.clone();
        if self.protocol == ProtocolVersion::V5 {
            let reason = match close {
                Close::ProtocolError(code) => Some(code),
                Close::Forbidden => Some(ReasonCode::NotAuthorized),
                Close::StateNotSaved | Close::NotStored => Some(ReasonCode::UnspecifiedError),
                Close::KeepAliveTimeout => Some(ReasonCode::KeepAliveTimeout),
                Close::Kicked(Kick::TakenOver) => Some(ReasonCode::SessionTakenOver),
                Close::Kicked(Kick::CertificateRevoked | Kick::CertificateExpired) => {
                    Some(ReasonCode::NotAuthorized)
                }
                // A cluster node's clients have the other nodes to go to.
                Close::Kicked(Kick::Shutdown) if shared.peer_link.get().is_some() => {
                    Some(ReasonCode::UseAnotherServer)
                }
                Close::Kicked(Kick::Shutdown) => Some(ReasonCode::ServerShuttingDown),
                Close::Kicked(Kick::SlowConsumer) => Some(ReasonCode::QuotaExceeded),
                Close::ClientDisconnect { .. } | Close::ConnectionLost => None,
            };
            if let Some(reason) = reason {
                self.wbuf.clear();
                if self.encode(&Packet::Disconnect(Disconnect::new(reason))) {
                    write_all(&mut self.writer, &mut self.wbuf, CLOSING_WRITE).await;
                }
            }
        } else if !self.wbuf.is_empty() && !matches!(close, Close::Kicked(_)) {
            // (Kicked, the buffer may be half written already.)
            write_all(&mut self.writer, &mut self.wbuf, CLOSING_WRITE).await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), self.writer.shutdown()).await;
        match close {
            Close::Kicked(Kick::TakenOver) => {}
            Close::Kicked(Kick::CertificateRevoked) => {
                shared
                    .metrics
                    .kicked_certificate
                    .fetch_add(1, Ordering::Relaxed);
            }
            Close::Kicked(Kick::CertificateExpired) => {
                shared
                    .metrics
                    .kicked_expired
                    .fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
        shared
            .metrics
            .connections_current
            .fetch_sub(1, Ordering::Relaxed);

        // Detach the session; end it now if it does not outlive the connection.
        if self.session.detach(self.live.conn_id, shared.journal()) {
            shared.end_session(&self.session);
        }
        if close.sends_will() {
            if let Some(will) = self.will.take() {
                let mut message =
                    will_message(will.clone(), &self.client_id, self.authz.certificate_id());
                message.expires_at = will
                    .properties
                    .message_expiry_interval
                    .map(|s| Instant::now() + Duration::from_secs(u64::from(s)));
                // MQTT 5 Will Delay: the will goes out when the delay passes
                // or the session ends, whichever is first (spec 3.1.3.2.2),
                // unless the client is back before.
                let session_left = self.session.lock().expiry;
                let delay = Duration::from_secs(u64::from(
                    will.properties.will_delay_interval.unwrap_or(0),
                ))
                .min(session_left);
                // The will is authorized when it is sent, not only at
                // CONNECT: a certificate revoked or a policy detached since
                // then stops it.
                if delay.is_zero() {
                    if will_allowed(&mut self.authz, &self.broker, &message).await {
                        self.broker.publish(message);
                    }
                } else {
                    let broker = self.broker.clone();
                    let session = self.session.clone();
                    let mut authz = self.authz.clone();
                    let (client_id, conn_id) = (self.client_id.clone(), self.live.conn_id);
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        if session.lock().owner.is_none()
                            && will_allowed(&mut authz, &broker, &message).await
                        {
                            broker.publish(message);
                        }
                        // Until now the cluster's record kept the will.
                        crate::cluster::connection_closed(&broker.shared, &client_id, conn_id);
                    });
                    return self.closed(close);
                }
            }
        }
        crate::cluster::connection_closed(&shared, &self.client_id, self.live.conn_id);
        self.closed(close);
    }

    /// The lifecycle event and the logs of a connection that ended.
    fn closed(self, close: Close) {
        if events::publishable(&self.client_id) {
            let client_initiated = matches!(close, Close::ClientDisconnect { .. });
            let (topic, body) = events::disconnected(
                &self.client_id,
                &self.session_identifier,
                self.authz.certificate_id(),
                client_initiated,
                close.disconnect_reason(),
                0,
            );
            self.broker
                .publish(Message::new(topic, body, QoS::AtLeastOnce));
        }
        self.log_disconnect(close);
        tracing::info!(reason = close.disconnect_reason(), "disconnected");
    }
}
