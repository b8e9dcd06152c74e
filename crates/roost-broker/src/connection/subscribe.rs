//! SUBSCRIBE and UNSUBSCRIBE: each filter validated and authorized
//! (iot:Subscribe), the session and the router updated, retained messages
//! queued after the SUBACK, lifecycle events published.

use super::*;

impl<R, W> Conn<R, W>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    pub(super) async fn on_subscribe(&mut self, subscribe: Subscribe) -> Result<(), Close> {
        let profile = self.shared().config.profile;
        // Subscription identifiers (spec 3.8.2.1.2): the full profile keeps
        // them with the subscriptions; AWS IoT does not support them.
        let identifier = subscribe.properties.subscription_identifier;
        if identifier.is_some() && profile == Profile::Aws {
            return Err(Close::ProtocolError(
                ReasonCode::SubscriptionIdentifiersNotSupported,
            ));
        }
        self.fresh_authorization().await?;
        let max_subscriptions = self.shared().config.limits.max_subscriptions;
        let mut codes = Vec::with_capacity(subscribe.filters.len());
        let mut granted_filters = Vec::new();
        let mut retained = Vec::new();
        let mut ticket = None;
        for (filter, mut options) in subscribe.filters {
            let code = match roost_topic::validate_topic_filter(&filter, &profile.topic_limits()) {
                Err(_) => ReasonCode::TopicFilterInvalid,
                Ok(_) if self.authz.subscribe(&filter) != Decision::Allowed => {
                    self.shared()
                        .metrics
                        .subscribe_denied
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::info!(action = "iot:Subscribe", resource = %format!("topicfilter/{filter}"), "denied");
                    ReasonCode::NotAuthorized
                }
                Ok(parsed) => {
                    if profile == Profile::Aws && options.qos == QoS::ExactlyOnce {
                        options.qos = QoS::AtLeastOnce;
                    }
                    let shared = &self.broker.shared;
                    let subscription = Subscription {
                        options,
                        identifier,
                    };
                    let changed = shared.router.subscribe(
                        &self.session,
                        &filter,
                        subscription,
                        max_subscriptions,
                        shared.journal(),
                    );
                    match changed {
                        None => ReasonCode::QuotaExceeded,
                        Some((is_new, saved)) => {
                            ticket = ticket.max(saved);
                            let send_retained = match options.retain_handling {
                                roost_mqtt::RetainHandling::SendAtSubscribe => true,
                                roost_mqtt::RetainHandling::SendIfNewSubscription => is_new,
                                roost_mqtt::RetainHandling::DoNotSend => false,
                            };
                            if send_retained && parsed.share_group.is_none() {
                                for message in self.shared().router.retained_for(&filter) {
                                    retained.push(Outgoing {
                                        qos: message.qos.min(options.qos),
                                        retain: true,
                                        subscription_ids: identifier.into_iter().collect(),
                                        dup: false,
                                        seq: 0,
                                        message,
                                    });
                                }
                            }
                            granted_filters.push(filter.clone());
                            ReasonCode::granted(options.qos)
                        }
                    }
                }
            };
            self.log_subscribe(&filter, code);
            codes.push(code);
        }
        self.wait_saved(ticket).await?;
        let suback = Packet::SubAck(SubAck {
            packet_id: subscribe.packet_id,
            reason_codes: codes,
            properties: Default::default(),
        });
        self.encode(&suback);
        // Retained messages go after the SUBACK, through the normal queue.
        let shared = &self.broker.shared;
        for outgoing in retained {
            self.session.enqueue(
                outgoing,
                &shared.config.limits,
                &shared.metrics,
                shared.journal(),
            );
        }
        if !granted_filters.is_empty() && events::publishable(&self.client_id) {
            let (topic, body) = events::subscription(
                &self.client_id,
                &self.session_identifier,
                self.authz.certificate_id(),
                true,
                &granted_filters,
            );
            self.broker
                .publish(Message::new(topic, body, QoS::AtLeastOnce));
        }
        Ok(())
    }

    pub(super) async fn on_unsubscribe(&mut self, unsubscribe: Unsubscribe) -> Result<(), Close> {
        let mut codes = Vec::with_capacity(unsubscribe.filters.len());
        let mut ticket = None;
        for filter in &unsubscribe.filters {
            let shared = &self.broker.shared;
            let (existed, saved) =
                shared
                    .router
                    .unsubscribe(&self.session, filter, shared.journal());
            ticket = ticket.max(saved);
            codes.push(if existed {
                ReasonCode::Success
            } else {
                ReasonCode::NoSubscriptionExisted
            });
        }
        self.wait_saved(ticket).await?;
        let unsuback = Packet::UnsubAck(UnsubAck {
            packet_id: unsubscribe.packet_id,
            reason_codes: if self.protocol == ProtocolVersion::V5 {
                codes
            } else {
                Vec::new()
            },
            properties: Default::default(),
        });
        self.encode(&unsuback);
        if events::publishable(&self.client_id) {
            let (topic, body) = events::subscription(
                &self.client_id,
                &self.session_identifier,
                self.authz.certificate_id(),
                false,
                &unsubscribe.filters,
            );
            self.broker
                .publish(Message::new(topic, body, QoS::AtLeastOnce));
        }
        Ok(())
    }
}
