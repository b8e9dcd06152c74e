//! Why a packet was refused, split by cause, and what to answer the peer.
//!
//! Each cause maps to exactly one MQTT 5 reason code, and [`DecodeError`]
//! adds the context needed to pick the answer: an error in a CONNECT is
//! answered with a CONNACK (in the client's version, when it has a code for
//! it), any later error with a DISCONNECT in MQTT 5 and with silence in
//! 3.1.1, which has no way to say why. Messages never quote the peer's bytes
//! back (a client name, a topic): they may be logged and sent as a Reason
//! String.

use thiserror::Error;

use crate::packet::{ConnAck, Disconnect, Packet, PacketType};
use crate::properties::{ConnAckProperties, DisconnectProperties};
use crate::reason::ReasonCode;
use crate::ProtocolVersion;

/// A received packet that cannot be parsed as the specification lays it out:
/// reason code 0x81 (Malformed Packet).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Malformed {
    #[error("packet type {0} is reserved")]
    ReservedPacketType(u8),
    #[error("reserved flag bits of {packet} are 0x{flags:X}")]
    ReservedFlags { packet: PacketType, flags: u8 },
    #[error("variable byte integer longer than four bytes")]
    VarIntTooLong,
    #[error("variable byte integer not encoded in the fewest bytes")]
    VarIntNotMinimal,
    #[error("a field runs past the end of the packet")]
    Truncated,
    #[error("{0} bytes left over after the last field")]
    TrailingBytes(usize),
    #[error("string is not well-formed UTF-8")]
    InvalidUtf8,
    #[error("string contains U+0000")]
    NullCharacter,
    #[error("QoS 3 is not a QoS")]
    QoS3,
    #[error("DUP is set on a QoS 0 PUBLISH")]
    DupWithQoS0,
    #[error("reserved bit 0 of the CONNECT flags is set")]
    ConnectReservedFlag,
    #[error("will QoS or will retain is set without the will flag")]
    WillFlagsWithoutWill,
    #[error("reserved bits of the CONNACK flags are set")]
    ConnAckReservedFlags,
    #[error("reserved bits of the subscription options are set")]
    SubscriptionOptionsReserved,
    #[error("unknown property identifier 0x{0:02X}")]
    UnknownProperty(u8),
    #[error("property 0x{id:02X} is not allowed in {packet}")]
    PropertyNotAllowed { id: u8, packet: PacketType },
}

/// A received packet that parses but breaks a rule every MQTT server must
/// enforce: reason code 0x82 (Protocol Error).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProtocolViolation {
    #[error("the first packet must be CONNECT, got {0}")]
    FirstPacketNotConnect(PacketType),
    #[error("a second CONNECT on the same connection")]
    SecondConnect,
    #[error("{0} is never sent in this direction")]
    WrongDirection(PacketType),
    #[error("DISCONNECT from a server does not exist in MQTT 3.1.1")]
    ServerDisconnectInV311,
    #[error("property 0x{0:02X} appears more than once")]
    DuplicateProperty(u8),
    #[error("property 0x{0:02X} has a value the specification does not allow")]
    InvalidPropertyValue(u8),
    #[error("authentication data without an authentication method")]
    AuthDataWithoutMethod,
    #[error("AUTH without an authentication method")]
    AuthMethodMissing,
    #[error("packet identifier 0")]
    ZeroPacketId,
    #[error("empty topic name without a topic alias")]
    EmptyTopicName,
    #[error("topic name contains a wildcard")]
    WildcardInTopicName,
    #[error("response topic contains a wildcard")]
    WildcardInResponseTopic,
    #[error("topic filter is not well formed")]
    InvalidTopicFilter,
    #[error("No Local on a shared subscription")]
    NoLocalOnSharedSubscription,
    #[error("Retain Handling 3 is not defined")]
    RetainHandling3,
    #[error("requested QoS 3 in a subscription")]
    SubscriptionQoS3,
    #[error("{0} without any topic filter")]
    NoTopicFilters(PacketType),
    #[error("{0} without any reason code")]
    NoReasonCodes(PacketType),
    #[error("reason code 0x{code:02X} is not allowed in {packet}")]
    InvalidReasonCode { packet: PacketType, code: u8 },
    #[error("password without user name (MQTT 3.1.1)")]
    PasswordWithoutUsername,
    #[error("subscription identifier in a PUBLISH from a client")]
    SubscriptionIdFromClient,
    #[error("session expiry interval in a DISCONNECT from the server")]
    SessionExpiryFromServer,
    #[error("session present with a refusing CONNACK")]
    SessionPresentOnRefusal,
}

/// Why a client identifier was refused: reason code 0x85, 3.1.1 return code 2.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ClientIdProblem {
    #[error("client identifier of {len} bytes exceeds the maximum of {max}")]
    TooLong { len: usize, max: usize },
    #[error("empty client identifier without Clean Session (MQTT 3.1.1)")]
    EmptyWithoutCleanSession,
}

/// The cause of a [`DecodeError`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeErrorKind {
    #[error("malformed packet: {0}")]
    Malformed(#[from] Malformed),
    #[error("protocol error: {0}")]
    Protocol(#[from] ProtocolViolation),
    /// The fixed header announces more than [`crate::Limits::max_packet_size`].
    #[error("packet of {size} bytes exceeds the maximum of {max}")]
    PacketTooLarge { size: u64, max: u32 },
    /// A PUBLISH or will payload above [`crate::Limits::max_payload_bytes`].
    #[error("payload of {size} bytes exceeds the maximum of {max}")]
    PayloadTooLarge { size: usize, max: usize },
    /// A CONNECT for a protocol other than MQTT 3.1.1 and 5.0. `mqtt` tells
    /// whether the protocol name was MQTT's (`MQTT`, or `MQIsdp` of 3.1).
    #[error("unsupported protocol level {level}")]
    UnsupportedProtocol { mqtt: bool, level: u8 },
    #[error("{0}")]
    ClientIdNotValid(ClientIdProblem),
    #[error("topic name of {len} bytes exceeds the maximum of {max}")]
    TopicNameTooLong { len: usize, max: usize },
    #[error("topic filter of {len} bytes exceeds the maximum of {max}")]
    TopicFilterTooLong { len: usize, max: usize },
    #[error("topic alias 0")]
    TopicAliasZero,
    #[error("user properties of {size} bytes exceed the maximum of {max}")]
    UserPropertiesTooLarge { size: usize, max: usize },
}

impl DecodeErrorKind {
    /// The MQTT 5 reason code for this cause.
    pub fn reason_code(&self) -> ReasonCode {
        match self {
            DecodeErrorKind::Malformed(_) => ReasonCode::MalformedPacket,
            DecodeErrorKind::Protocol(_) => ReasonCode::ProtocolError,
            DecodeErrorKind::PacketTooLarge { .. } | DecodeErrorKind::PayloadTooLarge { .. } => {
                ReasonCode::PacketTooLarge
            }
            DecodeErrorKind::UnsupportedProtocol { .. } => ReasonCode::UnsupportedProtocolVersion,
            DecodeErrorKind::ClientIdNotValid(_) => ReasonCode::ClientIdentifierNotValid,
            DecodeErrorKind::TopicNameTooLong { .. } => ReasonCode::TopicNameInvalid,
            DecodeErrorKind::TopicFilterTooLong { .. } => ReasonCode::TopicFilterInvalid,
            DecodeErrorKind::TopicAliasZero => ReasonCode::TopicAliasInvalid,
            DecodeErrorKind::UserPropertiesTooLarge { .. } => ReasonCode::QuotaExceeded,
        }
    }
}

/// A received packet was refused. The connection must be closed; the read
/// buffer's content is unspecified afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    kind: DecodeErrorKind,
    packet_type: Option<PacketType>,
    protocol: Option<ProtocolVersion>,
}

impl DecodeError {
    pub(crate) fn new(
        kind: DecodeErrorKind,
        packet_type: Option<PacketType>,
        protocol: Option<ProtocolVersion>,
    ) -> Self {
        DecodeError {
            kind,
            packet_type,
            protocol,
        }
    }

    /// What was wrong.
    pub fn kind(&self) -> &DecodeErrorKind {
        &self.kind
    }

    /// The type of the refused packet, when its first byte named one.
    pub fn packet_type(&self) -> Option<PacketType> {
        self.packet_type
    }

    /// The protocol version in force: the connection's, or for a CONNECT the
    /// one it asked for, once that much of it was read.
    pub fn protocol(&self) -> Option<ProtocolVersion> {
        self.protocol
    }

    /// The MQTT 5 reason code for a CONNACK or DISCONNECT.
    pub fn reason_code(&self) -> ReasonCode {
        self.kind.reason_code()
    }

    fn in_connect(&self) -> bool {
        self.packet_type == Some(PacketType::Connect)
    }

    /// The MQTT 3.1.1 CONNACK return code to refuse the connection with, when
    /// the refused packet is a CONNECT and 3.1.1 has a code for the cause.
    /// `None`: close the connection without a CONNACK.
    pub fn connack_v311(&self) -> Option<u8> {
        if !self.in_connect() {
            return None;
        }
        match self.kind {
            // A 3.1 client (or a future level) understands the 3.1.1 CONNACK.
            DecodeErrorKind::UnsupportedProtocol { mqtt: true, .. } => Some(1),
            DecodeErrorKind::UnsupportedProtocol { mqtt: false, .. } => None,
            _ => self.reason_code().connack_v311(),
        }
    }

    /// The packet to send before closing the connection, and the version to
    /// encode it in; `None` when the connection should simply be closed.
    ///
    /// - an MQTT 5 CONNECT: a CONNACK with the reason code and a Reason String;
    /// - an MQTT 3.1.1 CONNECT (or an unsupported MQTT level): a 3.1.1 CONNACK
    ///   when [`Self::connack_v311`] has a code;
    /// - any packet after an MQTT 5 CONNECT: a DISCONNECT with the reason code;
    /// - otherwise nothing: MQTT 3.1.1 answers protocol violations by closing.
    pub fn answer(&self) -> Option<(Packet, ProtocolVersion)> {
        let reason_code = self.reason_code();
        let reason_string = Some(self.to_string());
        if self.in_connect() {
            return match self.protocol {
                Some(ProtocolVersion::V5) => Some((
                    Packet::ConnAck(ConnAck {
                        session_present: false,
                        reason_code,
                        properties: ConnAckProperties {
                            reason_string,
                            ..ConnAckProperties::default()
                        },
                    }),
                    ProtocolVersion::V5,
                )),
                _ => {
                    let code = self.connack_v311()?;
                    Some((
                        Packet::ConnAck(ConnAck {
                            session_present: false,
                            reason_code: ReasonCode::from_connack_v311(code)?,
                            properties: ConnAckProperties::default(),
                        }),
                        ProtocolVersion::V311,
                    ))
                }
            };
        }
        match self.protocol {
            Some(ProtocolVersion::V5) => Some((
                Packet::Disconnect(Disconnect {
                    reason_code,
                    properties: DisconnectProperties {
                        reason_string,
                        ..DisconnectProperties::default()
                    },
                }),
                ProtocolVersion::V5,
            )),
            _ => None,
        }
    }
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.packet_type {
            Some(packet) => write!(f, "{packet}: {}", self.kind),
            None => write!(f, "{}", self.kind),
        }
    }
}

impl std::error::Error for DecodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.kind)
    }
}

/// A packet the broker asked to send cannot be encoded as it stands.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// Larger than the receiver's Maximum Packet Size even without the
    /// optional diagnostics. For a PUBLISH the broker must drop the message
    /// for this client and carry on as if it had been sent (MQTT-3.1.2-25).
    #[error("{packet} of {size} bytes exceeds the receiver's maximum packet size of {max}")]
    PacketTooLarge {
        packet: PacketType,
        size: u64,
        max: u32,
    },
    /// A string or binary field longer than the 65,535 bytes its length
    /// prefix can express, or a string with U+0000.
    #[error("{field} cannot be encoded: {problem}")]
    InvalidField {
        field: &'static str,
        problem: &'static str,
    },
    /// A packet type the version does not have (AUTH in 3.1.1).
    #[error("{packet} does not exist in MQTT {protocol}")]
    NotInProtocol {
        packet: PacketType,
        protocol: ProtocolVersion,
    },
    /// A reason code the packet type may not carry.
    #[error("reason code {code} is not allowed in {packet}")]
    ReasonCodeNotAllowed {
        packet: PacketType,
        code: ReasonCode,
    },
    /// A CONNACK refusal MQTT 3.1.1 has no return code for: close the
    /// connection without a CONNACK instead.
    #[error("CONNACK reason {0} has no MQTT 3.1.1 return code")]
    NoV311ConnAckCode(ReasonCode),
    /// A packet identifier missing, present where it must not be, or 0.
    #[error("{packet}: {problem}")]
    PacketId {
        packet: PacketType,
        problem: &'static str,
    },
    /// A value outside its range (e.g. a subscription identifier of 0).
    #[error("{field} has a value the specification does not allow")]
    InvalidValue { field: &'static str },
}
