//! MQTT 5 reason codes, which packets may carry each one, and how they map
//! onto the few return codes MQTT 3.1.1 has.
//!
//! One table serves both directions: the decoder refuses a reason code the
//! packet type may not carry, and the encoder refuses to send one.

use crate::packet::PacketType;
use crate::QoS;

/// An MQTT 5 reason code (OASIS MQTT 5.0, section 2.4).
///
/// The value 0x00 has three names in the specification (Success, Normal
/// disconnection, Granted QoS 0); they are one variant here, with the other
/// names as associated constants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum ReasonCode {
    Success = 0x00,
    GrantedQoS1 = 0x01,
    GrantedQoS2 = 0x02,
    DisconnectWithWillMessage = 0x04,
    NoMatchingSubscribers = 0x10,
    NoSubscriptionExisted = 0x11,
    ContinueAuthentication = 0x18,
    ReAuthenticate = 0x19,
    UnspecifiedError = 0x80,
    MalformedPacket = 0x81,
    ProtocolError = 0x82,
    ImplementationSpecificError = 0x83,
    UnsupportedProtocolVersion = 0x84,
    ClientIdentifierNotValid = 0x85,
    BadUserNameOrPassword = 0x86,
    NotAuthorized = 0x87,
    ServerUnavailable = 0x88,
    ServerBusy = 0x89,
    Banned = 0x8A,
    ServerShuttingDown = 0x8B,
    BadAuthenticationMethod = 0x8C,
    KeepAliveTimeout = 0x8D,
    SessionTakenOver = 0x8E,
    TopicFilterInvalid = 0x8F,
    TopicNameInvalid = 0x90,
    PacketIdentifierInUse = 0x91,
    PacketIdentifierNotFound = 0x92,
    ReceiveMaximumExceeded = 0x93,
    TopicAliasInvalid = 0x94,
    PacketTooLarge = 0x95,
    MessageRateTooHigh = 0x96,
    QuotaExceeded = 0x97,
    AdministrativeAction = 0x98,
    PayloadFormatInvalid = 0x99,
    RetainNotSupported = 0x9A,
    QoSNotSupported = 0x9B,
    UseAnotherServer = 0x9C,
    ServerMoved = 0x9D,
    SharedSubscriptionsNotSupported = 0x9E,
    ConnectionRateExceeded = 0x9F,
    MaximumConnectTime = 0xA0,
    SubscriptionIdentifiersNotSupported = 0xA1,
    WildcardSubscriptionsNotSupported = 0xA2,
}

use ReasonCode as R;

/// Every reason code, in numeric order.
const ALL: [ReasonCode; 43] = [
    R::Success,
    R::GrantedQoS1,
    R::GrantedQoS2,
    R::DisconnectWithWillMessage,
    R::NoMatchingSubscribers,
    R::NoSubscriptionExisted,
    R::ContinueAuthentication,
    R::ReAuthenticate,
    R::UnspecifiedError,
    R::MalformedPacket,
    R::ProtocolError,
    R::ImplementationSpecificError,
    R::UnsupportedProtocolVersion,
    R::ClientIdentifierNotValid,
    R::BadUserNameOrPassword,
    R::NotAuthorized,
    R::ServerUnavailable,
    R::ServerBusy,
    R::Banned,
    R::ServerShuttingDown,
    R::BadAuthenticationMethod,
    R::KeepAliveTimeout,
    R::SessionTakenOver,
    R::TopicFilterInvalid,
    R::TopicNameInvalid,
    R::PacketIdentifierInUse,
    R::PacketIdentifierNotFound,
    R::ReceiveMaximumExceeded,
    R::TopicAliasInvalid,
    R::PacketTooLarge,
    R::MessageRateTooHigh,
    R::QuotaExceeded,
    R::AdministrativeAction,
    R::PayloadFormatInvalid,
    R::RetainNotSupported,
    R::QoSNotSupported,
    R::UseAnotherServer,
    R::ServerMoved,
    R::SharedSubscriptionsNotSupported,
    R::ConnectionRateExceeded,
    R::MaximumConnectTime,
    R::SubscriptionIdentifiersNotSupported,
    R::WildcardSubscriptionsNotSupported,
];

impl ReasonCode {
    /// 0x00 in a DISCONNECT.
    pub const NORMAL_DISCONNECTION: ReasonCode = ReasonCode::Success;
    /// 0x00 in a SUBACK.
    pub const GRANTED_QOS_0: ReasonCode = ReasonCode::Success;

    /// Every reason code the specification defines, in numeric order.
    pub fn all() -> &'static [ReasonCode] {
        &ALL
    }

    /// The reason code with this wire value, if the specification defines one.
    pub fn from_u8(value: u8) -> Option<ReasonCode> {
        ALL.binary_search_by_key(&value, |code| *code as u8)
            .ok()
            .map(|index| ALL[index])
    }

    /// The wire value.
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// Values of 0x80 and above report a failure.
    pub fn is_error(self) -> bool {
        self.as_u8() >= 0x80
    }

    /// The SUBACK reason code granting `qos`.
    pub fn granted(qos: QoS) -> ReasonCode {
        match qos {
            QoS::AtMostOnce => R::Success,
            QoS::AtLeastOnce => R::GrantedQoS1,
            QoS::ExactlyOnce => R::GrantedQoS2,
        }
    }

    /// Whether a packet of this type may carry this reason code (the
    /// "Packets" column of the specification's reason code table).
    pub fn allowed_in(self, packet: PacketType) -> bool {
        use PacketType as P;
        match packet {
            P::ConnAck => matches!(
                self,
                R::Success
                    | R::UnspecifiedError
                    | R::MalformedPacket
                    | R::ProtocolError
                    | R::ImplementationSpecificError
                    | R::UnsupportedProtocolVersion
                    | R::ClientIdentifierNotValid
                    | R::BadUserNameOrPassword
                    | R::NotAuthorized
                    | R::ServerUnavailable
                    | R::ServerBusy
                    | R::Banned
                    | R::BadAuthenticationMethod
                    | R::TopicNameInvalid
                    | R::PacketTooLarge
                    | R::QuotaExceeded
                    | R::PayloadFormatInvalid
                    | R::RetainNotSupported
                    | R::QoSNotSupported
                    | R::UseAnotherServer
                    | R::ServerMoved
                    | R::ConnectionRateExceeded
            ),
            P::PubAck | P::PubRec => matches!(
                self,
                R::Success
                    | R::NoMatchingSubscribers
                    | R::UnspecifiedError
                    | R::ImplementationSpecificError
                    | R::NotAuthorized
                    | R::TopicNameInvalid
                    | R::PacketIdentifierInUse
                    | R::QuotaExceeded
                    | R::PayloadFormatInvalid
            ),
            P::PubRel | P::PubComp => matches!(self, R::Success | R::PacketIdentifierNotFound),
            P::SubAck => matches!(
                self,
                R::Success
                    | R::GrantedQoS1
                    | R::GrantedQoS2
                    | R::UnspecifiedError
                    | R::ImplementationSpecificError
                    | R::NotAuthorized
                    | R::TopicFilterInvalid
                    | R::PacketIdentifierInUse
                    | R::QuotaExceeded
                    | R::SharedSubscriptionsNotSupported
                    | R::SubscriptionIdentifiersNotSupported
                    | R::WildcardSubscriptionsNotSupported
            ),
            P::UnsubAck => matches!(
                self,
                R::Success
                    | R::NoSubscriptionExisted
                    | R::UnspecifiedError
                    | R::ImplementationSpecificError
                    | R::NotAuthorized
                    | R::TopicFilterInvalid
                    | R::PacketIdentifierInUse
            ),
            P::Disconnect => matches!(
                self,
                R::Success
                    | R::DisconnectWithWillMessage
                    | R::UnspecifiedError
                    | R::MalformedPacket
                    | R::ProtocolError
                    | R::ImplementationSpecificError
                    | R::NotAuthorized
                    | R::ServerBusy
                    | R::ServerShuttingDown
                    | R::KeepAliveTimeout
                    | R::SessionTakenOver
                    | R::TopicFilterInvalid
                    | R::TopicNameInvalid
                    | R::ReceiveMaximumExceeded
                    | R::TopicAliasInvalid
                    | R::PacketTooLarge
                    | R::MessageRateTooHigh
                    | R::QuotaExceeded
                    | R::AdministrativeAction
                    | R::PayloadFormatInvalid
                    | R::RetainNotSupported
                    | R::QoSNotSupported
                    | R::UseAnotherServer
                    | R::ServerMoved
                    | R::SharedSubscriptionsNotSupported
                    | R::ConnectionRateExceeded
                    | R::MaximumConnectTime
                    | R::SubscriptionIdentifiersNotSupported
                    | R::WildcardSubscriptionsNotSupported
            ),
            P::Auth => matches!(
                self,
                R::Success | R::ContinueAuthentication | R::ReAuthenticate
            ),
            _ => false,
        }
    }

    /// The MQTT 3.1.1 CONNACK return code closest to this CONNACK reason, or
    /// `None` when 3.1.1 has none: then the server closes the connection
    /// without a CONNACK, as 3.1.1 prescribes for protocol violations.
    ///
    /// 0 accepted, 1 unacceptable protocol version, 2 identifier rejected,
    /// 3 server unavailable, 4 bad user name or password, 5 not authorized.
    pub fn connack_v311(self) -> Option<u8> {
        match self {
            R::Success => Some(0),
            R::UnsupportedProtocolVersion => Some(1),
            R::ClientIdentifierNotValid => Some(2),
            R::ServerUnavailable
            | R::ServerBusy
            | R::UseAnotherServer
            | R::ServerMoved
            | R::ConnectionRateExceeded => Some(3),
            R::BadUserNameOrPassword | R::BadAuthenticationMethod => Some(4),
            R::NotAuthorized | R::Banned => Some(5),
            _ => None,
        }
    }

    /// The reason code standing for an MQTT 3.1.1 CONNACK return code.
    pub fn from_connack_v311(code: u8) -> Option<ReasonCode> {
        match code {
            0 => Some(R::Success),
            1 => Some(R::UnsupportedProtocolVersion),
            2 => Some(R::ClientIdentifierNotValid),
            3 => Some(R::ServerUnavailable),
            4 => Some(R::BadUserNameOrPassword),
            5 => Some(R::NotAuthorized),
            _ => None,
        }
    }

    /// The MQTT 3.1.1 SUBACK return code for this reason: the granted QoS,
    /// or 0x80 (failure) for every error, since 3.1.1 has no finer answer.
    /// `None` for a reason that is neither (it is not a SUBACK reason).
    pub fn suback_v311(self) -> Option<u8> {
        match self {
            R::Success => Some(0),
            R::GrantedQoS1 => Some(1),
            R::GrantedQoS2 => Some(2),
            code if code.is_error() => Some(0x80),
            _ => None,
        }
    }

    /// The reason code standing for an MQTT 3.1.1 SUBACK return code.
    pub fn from_suback_v311(code: u8) -> Option<ReasonCode> {
        match code {
            0 => Some(R::Success),
            1 => Some(R::GrantedQoS1),
            2 => Some(R::GrantedQoS2),
            0x80 => Some(R::UnspecifiedError),
            _ => None,
        }
    }
}

impl std::fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "0x{:02X} ({:?})", self.as_u8(), self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_round_trips() {
        for pair in ALL.windows(2) {
            assert!(pair[0].as_u8() < pair[1].as_u8());
        }
        for value in 0..=255u8 {
            if let Some(code) = ReasonCode::from_u8(value) {
                assert_eq!(code.as_u8(), value);
            }
        }
        assert_eq!(ReasonCode::from_u8(0x87), Some(ReasonCode::NotAuthorized));
        assert_eq!(ReasonCode::from_u8(0x03), None);
        assert_eq!(ReasonCode::from_u8(0xA3), None);
    }

    #[test]
    fn v311_connack_codes_round_trip() {
        for code in 0..=5 {
            let reason = ReasonCode::from_connack_v311(code).unwrap();
            assert_eq!(reason.connack_v311(), Some(code));
        }
        assert_eq!(ReasonCode::MalformedPacket.connack_v311(), None);
    }
}
