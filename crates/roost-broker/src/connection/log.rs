//! A connection's events for the event log: what its level logs, built only
//! when logged. The level is the connection's own (`event_level`),
//! recomputed only when the logging configuration changes.

use super::*;
use roost_eventlog::{Event, EventType, LogLevel, Protocol, Status};

impl<R, W> Conn<R, W>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    /// Hands an event at `level` about this connection to the event log if
    /// the connection's level logs it. `build` adds the event's own fields;
    /// its flag says the level is DEBUG (a payload may be attached).
    pub(super) fn log_event(
        &self,
        event_type: EventType,
        status: Status,
        level: LogLevel,
        build: impl FnOnce(Event, bool) -> Event,
    ) {
        let log = self.broker.shared.event_log();
        let current = self.event_level.level(log);
        if !current.logs(level) {
            return;
        }
        let mut event = log
            .event(event_type, status)
            .at_level(level)
            .protocol(Protocol::Mqtt)
            .source(self.peer);
        // The connection's own copies: an event shares them, copies nothing.
        event.client_id = self.event_level.client_id().cloned();
        event.principal_id = self.event_level.principal_id().cloned();
        log.emit(build(event, current == LogLevel::Debug));
    }

    /// Publish-In: allowed (INFO, the payload at DEBUG) or denied (ERROR).
    pub(super) fn log_publish_in(&self, topic: &str, payload: &[u8], allowed: bool) {
        self.log_publish(EventType::PublishIn, "iot:Publish", topic, payload, allowed);
    }

    /// Publish-Out: a message written to this client (INFO, the payload at
    /// DEBUG) or withheld because its policy denies iot:Receive (ERROR).
    pub(super) fn log_publish_out(&self, topic: &str, payload: &[u8], allowed: bool) {
        self.log_publish(
            EventType::PublishOut,
            "iot:Receive",
            topic,
            payload,
            allowed,
        );
    }

    /// A publish in either direction: `action` is the policy action that
    /// denied it when `allowed` is false.
    fn log_publish(
        &self,
        event_type: EventType,
        action: &str,
        topic: &str,
        payload: &[u8],
        allowed: bool,
    ) {
        if allowed {
            self.log_event(event_type, Status::Success, LogLevel::Info, |e, debug| {
                let e = e.topic(topic);
                if debug {
                    e.payload(payload)
                } else {
                    e
                }
            });
        } else {
            self.log_event(event_type, Status::Failure, LogLevel::Error, |e, _| {
                e.topic(topic)
                    .reason("AUTHORIZATION_FAILURE")
                    .details(format!("{action} denied on topic/{topic}"))
            });
        }
    }

    /// Subscribe, per topic filter, with the SUBACK's answer.
    pub(super) fn log_subscribe(&self, filter: &str, code: ReasonCode) {
        let (status, level, reason) = match code {
            ReasonCode::Success | ReasonCode::GrantedQoS1 | ReasonCode::GrantedQoS2 => {
                (Status::Success, LogLevel::Info, None)
            }
            ReasonCode::NotAuthorized => (
                Status::Failure,
                LogLevel::Error,
                Some("AUTHORIZATION_FAILURE"),
            ),
            ReasonCode::QuotaExceeded => (Status::Failure, LogLevel::Error, Some("QUOTA_EXCEEDED")),
            _ => (
                Status::Failure,
                LogLevel::Error,
                Some("INVALID_TOPIC_FILTER"),
            ),
        };
        self.log_event(EventType::Subscribe, status, level, |e, _| {
            let e = e.topic(filter);
            match reason {
                Some(reason) => e.reason(reason),
                None => e,
            }
        });
    }

    /// Disconnect with AWS's disconnect reason: a failure (ERROR) when the
    /// gateway closed it for something the client did or lost.
    pub(super) fn log_disconnect(&self, close: Close) {
        let failure = matches!(
            close,
            Close::ProtocolError(_)
                | Close::Forbidden
                | Close::Kicked(Kick::CertificateRevoked | Kick::CertificateExpired)
        );
        let (status, level) = if failure {
            (Status::Failure, LogLevel::Error)
        } else {
            (Status::Success, LogLevel::Info)
        };
        self.log_event(EventType::Disconnect, status, level, |e, _| {
            e.reason(close.disconnect_reason())
        });
    }
}

/// The level holder for a new connection. Thing groups are looked up only
/// when some group has a level of its own (one registry read per CONNECT
/// then; none otherwise).
pub(super) async fn connection_level(
    shared: &crate::Shared,
    client_id: &str,
    peer: SocketAddr,
    authz: &ConnectionAuthz,
) -> roost_eventlog::ConnectionLevel {
    let log = shared.event_log();
    let groups = if log
        .config()
        .has_targets(roost_eventlog::TargetType::ThingGroup)
    {
        match shared.registry.thing_groups_with_ancestors(client_id).await {
            Ok(groups) => groups,
            Err(e) => {
                // Logged at the levels that do not need the groups.
                tracing::warn!(error = %e, "reading the thing's groups for its event log level failed");
                Vec::new()
            }
        }
    } else {
        Vec::new()
    };
    roost_eventlog::ConnectionLevel::new(
        Some(client_id.into()),
        Some(peer.ip()),
        Some(authz.certificate_id().into()),
        groups,
    )
}
