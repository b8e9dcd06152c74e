//! CONNECT decided in one place: the client id, session expiry and keep
//! alive the client gets, its will checked, its certificate's status read
//! again and its policies asked for `iot:Connect`. Every refusal is a
//! [`ConnectRefusal`], and each maps to its CONNACK reason code in
//! [`ConnectRefusal::reason_code`] only (as rustls maps its errors to
//! alerts in one place).
//!
//! Never: write to the client (the caller answers), or let a client in on
//! a certificate that is not ACTIVE now.

use crate::authz::{AuthzError, ConnectionAuthz};
use crate::tls::DeviceCertificate;
use crate::{Profile, Shared};
use roost_mqtt::{Connect, ProtocolVersion, QoS, ReasonCode};
use roost_policy::Decision;
use roost_registry::{CertificateRefusal, RegistryError};
use std::net::SocketAddr;
use std::time::Duration;

/// Why a CONNECT was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectRefusal {
    #[error("empty client id (MQTT 3.1.1 in the aws profile)")]
    EmptyClientId,
    /// MQTT 5 enhanced authentication: Roost offers no method.
    #[error("authentication method {0:?} (none is supported)")]
    AuthenticationMethod(String),
    #[error("invalid will topic")]
    InvalidWillTopic,
    #[error("will QoS 2 (not in the aws profile)")]
    WillQos2,
    #[error("certificate: {0}")]
    Certificate(CertificateRefusal),
    #[error("iot:Connect denied")]
    ConnectDenied,
    #[error("will topic not authorized for iot:Publish")]
    WillDenied,
    /// The registry did not answer: the server's fault, not the client's.
    #[error("loading the connection's policies failed: {0}")]
    Unavailable(RegistryError),
}

impl ConnectRefusal {
    /// The event log's reason (AWS's vocabulary where it has a word).
    pub(crate) fn log_reason(&self) -> &'static str {
        match self {
            ConnectRefusal::EmptyClientId => "INVALID_CLIENT_ID",
            ConnectRefusal::AuthenticationMethod(_) => "BAD_AUTHENTICATION_METHOD",
            ConnectRefusal::InvalidWillTopic => "INVALID_WILL_TOPIC",
            ConnectRefusal::WillQos2 => "QOS_NOT_SUPPORTED",
            ConnectRefusal::Certificate(_) => "AUTHENTICATION_FAILURE",
            ConnectRefusal::ConnectDenied | ConnectRefusal::WillDenied => "AUTHORIZATION_FAILURE",
            ConnectRefusal::Unavailable(_) => "SERVER_ERROR",
        }
    }

    /// The CONNACK reason (MQTT 5 terms; 3.1.1 clients get the nearest of
    /// their return codes).
    pub(crate) fn reason_code(&self) -> ReasonCode {
        match self {
            ConnectRefusal::EmptyClientId => ReasonCode::ClientIdentifierNotValid,
            ConnectRefusal::AuthenticationMethod(_) => ReasonCode::BadAuthenticationMethod,
            ConnectRefusal::InvalidWillTopic => ReasonCode::TopicNameInvalid,
            ConnectRefusal::WillQos2 => ReasonCode::QoSNotSupported,
            ConnectRefusal::Certificate(_)
            | ConnectRefusal::ConnectDenied
            | ConnectRefusal::WillDenied => ReasonCode::NotAuthorized,
            ConnectRefusal::Unavailable(_) => ReasonCode::ServerUnavailable,
        }
    }
}

/// What an accepted CONNECT gets.
pub(crate) struct Granted {
    pub client_id: String,
    /// The id the server chose, for an empty one (MQTT 5's Assigned Client
    /// Identifier).
    pub assigned_client_id: Option<String>,
    /// The session expiry asked for, and the one granted (bounded).
    pub requested_expiry: Duration,
    pub expiry: Duration,
    /// Seconds; 0: none.
    pub keep_alive: u16,
    /// The keep alive granted when it differs from the one asked for.
    pub server_keep_alive: Option<u16>,
    pub authz: ConnectionAuthz,
}

/// Decides `connect` from a client presenting `certificate` from `peer`.
pub(crate) async fn decide(
    shared: &Shared,
    certificate: &DeviceCertificate,
    peer: SocketAddr,
    connect: &Connect,
) -> Result<Granted, ConnectRefusal> {
    let config = &shared.config;
    let limits = &config.limits;
    let protocol = connect.protocol;

    // Client id: AWS allows 1–128 bytes; an empty one is assigned for MQTT 5
    // (and for 3.1.1 clean sessions in the full profile, as the spec allows).
    let mut assigned_client_id = None;
    let client_id = if !connect.client_id.is_empty() {
        connect.client_id.clone()
    } else if protocol == ProtocolVersion::V5 || config.profile == Profile::Full {
        let id = format!("roost-{}", uuid::Uuid::new_v4().simple());
        assigned_client_id = Some(id.clone());
        id
    } else {
        return Err(ConnectRefusal::EmptyClientId);
    };

    // Enhanced authentication (spec 4.12): the client names a method the
    // server must support; Roost authenticates by certificate only.
    if let Some(method) = &connect.properties.authentication_method {
        return Err(ConnectRefusal::AuthenticationMethod(method.clone()));
    }

    // Persistence: MQTT 5 says it with Session Expiry; 3.1.1 with Clean Session.
    let requested_expiry = match protocol {
        ProtocolVersion::V5 => Duration::from_secs(u64::from(
            connect.properties.session_expiry_interval.unwrap_or(0),
        )),
        _ if connect.clean_start => Duration::ZERO,
        _ => limits.default_session_expiry,
    };
    let expiry = requested_expiry.min(limits.max_session_expiry);

    let keep_alive = granted_keep_alive(config.profile, protocol, connect.keep_alive, limits);
    let server_keep_alive = (keep_alive != connect.keep_alive).then_some(keep_alive);

    // Will: a valid topic name (the policies are asked below).
    if let Some(will) = &connect.will {
        if roost_topic::validate_topic_name(&will.topic, &config.profile.topic_limits()).is_err() {
            return Err(ConnectRefusal::InvalidWillTopic);
        }
        if config.profile == Profile::Aws && will.qos == QoS::ExactlyOnce {
            return Err(ConnectRefusal::WillQos2);
        }
    }

    // The certificate's status is read again here: CONNECT sees a
    // revocation made since the handshake.
    let authz = ConnectionAuthz::new(
        shared.registry.clone(),
        certificate.context.clone(),
        Some(&client_id),
        Some(peer.ip()),
        shared.metrics.clone(),
    )
    .await
    .map_err(|e| match e {
        AuthzError::Refused(why) => ConnectRefusal::Certificate(why),
        AuthzError::Registry(e) => ConnectRefusal::Unavailable(e),
    })?;
    let mut attributes = Vec::new();
    if !expiry.is_zero() {
        attributes.push("PersistentConnect");
    }
    if connect.will.is_some() {
        attributes.push("LastWill");
    }
    let will_topic = connect.will.as_ref().map(|w| w.topic.as_str());
    if authz.connect(&attributes, will_topic) != Decision::Allowed {
        tracing::info!(action = "iot:Connect", resource = %format!("client/{client_id}"), cert_id = %certificate.id(), "denied");
        return Err(ConnectRefusal::ConnectDenied);
    }
    if let Some(will) = &connect.will {
        if authz.publish(&will.topic, will.retain) != Decision::Allowed {
            return Err(ConnectRefusal::WillDenied);
        }
    }
    Ok(Granted {
        client_id,
        assigned_client_id,
        requested_expiry,
        expiry,
        keep_alive,
        server_keep_alive,
        authz,
    })
}

/// The keep alive (seconds, 0: none) a client asking for `asked` gets; an
/// MQTT 5 client is told when it differs (Server Keep Alive).
fn granted_keep_alive(
    profile: Profile,
    protocol: ProtocolVersion,
    asked: u16,
    limits: &crate::Limits,
) -> u16 {
    let max = limits.max_keep_alive;
    match profile {
        // AWS clamps into 30–1200 s and treats 0 as the maximum, whatever
        // the version.
        Profile::Aws if asked == 0 => max,
        Profile::Aws => asked.max(limits.min_keep_alive).min(max),
        // As Mosquitto's max_keepalive: an MQTT 5 client asking for none
        // or more than the maximum gets the maximum. A 3.1.1 client cannot
        // be told, and keeps its own.
        Profile::Full if protocol == ProtocolVersion::V5 && (asked == 0 || asked > max) => max,
        Profile::Full => asked,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_alive_is_bounded_per_profile() {
        use ProtocolVersion::{V311, V5};
        let mut full = crate::Limits::for_profile(Profile::Full);
        full.max_keep_alive = 60;
        let aws = crate::Limits::for_profile(Profile::Aws);
        let cases = [
            (Profile::Full, &full, V5, 30, 30),
            (Profile::Full, &full, V5, 60, 60),
            (Profile::Full, &full, V5, 61, 60),
            (Profile::Full, &full, V5, 0, 60),
            (Profile::Full, &full, V311, 600, 600),
            (Profile::Full, &full, V311, 0, 0),
            (Profile::Aws, &aws, V5, 0, 1200),
            (Profile::Aws, &aws, V311, 5, 30),
            (Profile::Aws, &aws, V311, 5000, 1200),
            (Profile::Aws, &aws, V5, 60, 60),
        ];
        for (profile, limits, protocol, asked, granted) in cases {
            assert_eq!(
                granted_keep_alive(profile, protocol, asked, limits),
                granted,
                "{profile:?} {protocol:?} asked {asked}"
            );
        }
    }

    #[test]
    fn every_refusal_has_its_connack_reason() {
        let cases = [
            (
                ConnectRefusal::EmptyClientId,
                ReasonCode::ClientIdentifierNotValid,
            ),
            (
                ConnectRefusal::AuthenticationMethod("SCRAM-SHA-1".into()),
                ReasonCode::BadAuthenticationMethod,
            ),
            (
                ConnectRefusal::InvalidWillTopic,
                ReasonCode::TopicNameInvalid,
            ),
            (ConnectRefusal::WillQos2, ReasonCode::QoSNotSupported),
            (
                ConnectRefusal::Certificate(CertificateRefusal::Unknown("x".into())),
                ReasonCode::NotAuthorized,
            ),
            (ConnectRefusal::ConnectDenied, ReasonCode::NotAuthorized),
            (ConnectRefusal::WillDenied, ReasonCode::NotAuthorized),
            (
                ConnectRefusal::Unavailable(RegistryError::NotFound("down".into())),
                ReasonCode::ServerUnavailable,
            ),
        ];
        for (refusal, code) in cases {
            assert_eq!(refusal.reason_code(), code, "{refusal}");
        }
    }
}
