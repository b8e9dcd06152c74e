//! What the gateway tells the event log, at the places it already decides:
//! a device refused at the handshake, a CONNECT refused (each with its
//! reason), and (through `connection/log.rs`) a connection's connects,
//! publishes, subscribes and disconnects.
//!
//! Never: build an event nobody will log (the level is checked first), put
//! a payload in one unless the client's level is DEBUG, or put a key, a
//! signature or a password in one (none reaches this module).

use crate::connect::ConnectRefusal;
use crate::tls::DeviceRefusal;
use crate::Shared;
use roost_eventlog::{EventType, LogLevel, Protocol, Status, Subject};
use roost_registry::CertificateRefusal;
use std::net::SocketAddr;

/// AWS's reason for a refused device, and the certificate when known.
fn device_reason(refusal: &DeviceRefusal) -> (&'static str, Option<&str>) {
    match refusal {
        DeviceRefusal::Certificate(
            CertificateRefusal::Unknown(id)
            | CertificateRefusal::NotActive { id, .. }
            | CertificateRefusal::CaNotActive { id, .. },
        ) => ("AUTHENTICATION_FAILURE", Some(id.as_str())),
        DeviceRefusal::NoCertificate => ("AUTHENTICATION_FAILURE", None),
        DeviceRefusal::HandshakeFailed(_) | DeviceRefusal::HandshakeTimeout => {
            ("TLS_HANDSHAKE_FAILURE", None)
        }
        DeviceRefusal::Lookup(_) => ("SERVER_ERROR", None),
    }
}

/// A device refused before CONNECT (its certificate, its handshake).
pub(crate) fn device_refused(
    shared: &Shared,
    refusal: &DeviceRefusal,
    peer: SocketAddr,
    protocol: Protocol,
) {
    let log = shared.event_log();
    let (reason, principal) = device_reason(refusal);
    let level = log.level_for(&Subject {
        source_ip: Some(peer.ip()),
        principal_id: principal,
        ..Default::default()
    });
    if !level.logs(LogLevel::Error) {
        return;
    }
    // A server fault's own words may name files or queries: the server's
    // log has them, the event says only what happened.
    let details = match refusal {
        DeviceRefusal::Lookup(_) => "the registry did not answer (see the server log)".to_owned(),
        other => other.to_string(),
    };
    let mut event = log
        .event(EventType::Connect, Status::Failure)
        .protocol(protocol)
        .source(peer)
        .reason(reason)
        .details(details);
    if let Some(principal) = principal {
        event = event.principal_id(principal);
    }
    log.emit(event);
}

/// A CONNECT refused, with the reason its CONNACK carried.
pub(crate) fn connect_refused(
    shared: &Shared,
    refusal: &ConnectRefusal,
    client_id: &str,
    certificate_id: &str,
    peer: SocketAddr,
) {
    let log = shared.event_log();
    let level = log.level_for(&Subject {
        client_id: Some(client_id),
        source_ip: Some(peer.ip()),
        principal_id: Some(certificate_id),
        thing_groups: &[],
    });
    if !level.logs(LogLevel::Error) {
        return;
    }
    log.emit(
        log.event(EventType::Connect, Status::Failure)
            .protocol(Protocol::Mqtt)
            .client_id(client_id)
            .principal_id(certificate_id)
            .source(peer)
            .reason(refusal.log_reason())
            .details(match refusal {
                ConnectRefusal::Unavailable(_) => {
                    "the registry did not answer (see the server log)".to_owned()
                }
                other => other.to_string(),
            }),
    );
}

/// A device HTTPS publish, logged once its outcome is known: what the event
/// needs is taken before the message is handed over.
pub(crate) struct HttpsPublish {
    level: LogLevel,
    certificate_id: String,
    peer: SocketAddr,
    topic: String,
    /// Only at DEBUG (a reference-counted view, not a copy).
    payload: Option<bytes::Bytes>,
}

impl HttpsPublish {
    pub(crate) fn new(
        shared: &Shared,
        authz: &crate::authz::ConnectionAuthz,
        peer: SocketAddr,
        message: &crate::Message,
    ) -> Self {
        let level = shared.event_log().level_for(&Subject {
            source_ip: Some(peer.ip()),
            principal_id: Some(authz.certificate_id()),
            ..Default::default()
        });
        let logged = level.logs(LogLevel::Error);
        HttpsPublish {
            level,
            certificate_id: if logged {
                authz.certificate_id().to_owned()
            } else {
                String::new()
            },
            peer,
            topic: if logged {
                message.topic.clone()
            } else {
                String::new()
            },
            payload: (level == LogLevel::Debug).then(|| message.payload.clone()),
        }
    }

    pub(crate) fn outcome<T>(self, shared: &Shared, result: &Result<T, crate::PublishRefusal>) {
        let (status, at, reason) = match result {
            Ok(_) => (Status::Success, LogLevel::Info, None),
            Err(crate::PublishRefusal::NotAuthorized) => (
                Status::Failure,
                LogLevel::Error,
                Some("AUTHORIZATION_FAILURE"),
            ),
            Err(crate::PublishRefusal::Unavailable(_) | crate::PublishRefusal::NotSaved) => {
                (Status::Failure, LogLevel::Error, Some("SERVER_ERROR"))
            }
            Err(_) => (Status::Failure, LogLevel::Error, Some("INVALID_REQUEST")),
        };
        if !self.level.logs(at) {
            return;
        }
        let log = shared.event_log();
        let mut event = log
            .event(EventType::PublishIn, status)
            .at_level(at)
            .protocol(Protocol::Http)
            .principal_id(self.certificate_id)
            .source(self.peer)
            .topic(self.topic);
        if let (Some(reason), Err(why)) = (reason, result) {
            let details = match why {
                crate::PublishRefusal::Unavailable(_) => {
                    "the registry did not answer (see the server log)".to_owned()
                }
                other => other.to_string(),
            };
            event = event.reason(reason).details(details);
        }
        if let Some(payload) = &self.payload {
            event = event.payload(payload);
        }
        log.emit(event);
    }
}
