//! The MQTT 3.1.1 and MQTT 5.0 packet codec, seen from the server.
//!
//! What this crate is for: turning the bytes a device sends into typed
//! [`Packet`]s ([`decode`]) and the broker's packets into bytes ([`encode`]),
//! for both protocol versions AWS IoT Core speaks. Every received packet is
//! checked against what the OASIS specifications require of it (reserved
//! bits, string encoding, packet identifiers, which properties may appear in
//! which packet and how often, topic syntax, ...) and against the size
//! [`Limits`] the broker configures. Every rejection is a [`DecodeError`]
//! that knows the MQTT 5 reason code, the MQTT 3.1.1 CONNACK return code, and
//! the packet to answer with before closing ([`DecodeError::answer`]).
//!
//! What it must never do: any I/O (the caller owns the socket and the read
//! buffer); panic on any input, however malformed; buffer a packet larger than
//! [`Limits::max_packet_size`] (the fixed header is checked before the body is
//! waited for); or decide policy. Whether QoS 2, retained messages, shared
//! subscriptions or a given client identifier are *accepted* is the broker's
//! business: the codec reports the facts and rejects only input that is
//! malformed, breaks a protocol rule that holds for every server, or exceeds
//! a configured size limit.
//!
//! Framing follows the mini-redis shape: [`decode`] first checks that the
//! buffer holds a complete packet (a cheap look at the fixed header) and
//! returns `Ok(None)` when it does not, without consuming anything.
//!
//! Work is linear in the size of the packet; decoded payloads and binary
//! properties share the read buffer's memory instead of being copied.
#![forbid(unsafe_code)]

mod decode;
mod encode;
mod error;
mod packet;
mod properties;
mod read;
mod reason;
mod topic;
mod write;

pub use decode::{decode, decode_from_server};
pub use encode::{encode, encode_with_limit, encoded_len};
pub use error::{
    ClientIdProblem, DecodeError, DecodeErrorKind, EncodeError, Malformed, ProtocolViolation,
};
pub use packet::{
    Auth, ConnAck, Connect, Disconnect, Packet, PacketType, PubAck, PubComp, PubRec, PubRel,
    Publish, RetainHandling, SubAck, Subscribe, SubscriptionOptions, UnsubAck, Unsubscribe, Will,
};
pub use properties::{
    AckProperties, AuthProperties, ConnAckProperties, ConnectProperties, DisconnectProperties,
    PayloadFormat, PublishProperties, SubscribeProperties, UnsubscribeProperties, UserProperties,
    WillProperties,
};
pub use reason::ReasonCode;

/// The largest packet the MQTT wire format can express: a 1-byte packet type,
/// a 4-byte remaining length, and the largest remaining length (268,435,455).
pub const MAX_PACKET_SIZE: u32 = 1 + 4 + MAX_REMAINING_LENGTH;

/// The largest value a Variable Byte Integer can hold (four bytes of seven bits).
pub const MAX_REMAINING_LENGTH: u32 = 268_435_455;

/// The MQTT version a connection speaks, fixed by its CONNECT packet.
///
/// MQTT 3.1 (protocol name `MQIsdp`, level 3) is not supported: its CONNECT
/// is refused with CONNACK return code 1 (unacceptable protocol version).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProtocolVersion {
    /// MQTT 3.1.1, protocol level 4.
    V311,
    /// MQTT 5.0, protocol level 5.
    V5,
}

impl ProtocolVersion {
    /// The protocol level byte of a CONNECT packet for this version.
    pub fn level(self) -> u8 {
        match self {
            ProtocolVersion::V311 => 4,
            ProtocolVersion::V5 => 5,
        }
    }
}

impl std::fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ProtocolVersion::V311 => "3.1.1",
            ProtocolVersion::V5 => "5.0",
        })
    }
}

/// Quality of service of a PUBLISH, a will, or a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QoS {
    /// QoS 0: at most once.
    AtMostOnce = 0,
    /// QoS 1: at least once.
    AtLeastOnce = 1,
    /// QoS 2: exactly once. Decoded faithfully; AWS IoT does not support it,
    /// and refusing or downgrading it is the broker's decision.
    ExactlyOnce = 2,
}

impl QoS {
    /// The QoS for the two-bit wire value, or `None` for the invalid value 3.
    pub fn from_u8(value: u8) -> Option<QoS> {
        match value {
            0 => Some(QoS::AtMostOnce),
            1 => Some(QoS::AtLeastOnce),
            2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }
}

/// Size limits enforced on every received packet.
///
/// The defaults are AWS IoT Core's: a 128 KiB PUBLISH payload, 256-byte topic
/// names and filters, 128-byte client identifiers and 8 KiB of MQTT 5 user
/// properties per packet. The whole-packet limit leaves room around the
/// largest payload for the topic, the properties and the headers, so that a
/// packet AWS would take is never refused here for its framing alone.
///
/// A broker advertising MQTT 5 Maximum Packet Size in its CONNACK should send
/// `max_packet_size`, so well-behaved clients never reach the limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest whole packet (fixed header included) accepted, in bytes.
    /// Checked from the fixed header alone, before the body is buffered:
    /// a larger packet is refused with reason code 0x95 (Packet too large).
    pub max_packet_size: u32,
    /// Largest PUBLISH (and will) payload accepted, in bytes: 0x95.
    pub max_payload_bytes: usize,
    /// Longest topic name or topic filter, in UTF-8 bytes. A longer topic
    /// name is refused with 0x90 (Topic Name invalid), a longer filter with
    /// 0x8F (Topic Filter invalid).
    pub max_topic_bytes: usize,
    /// Longest client identifier, in UTF-8 bytes: 0x85 (Client Identifier
    /// not valid), MQTT 3.1.1 CONNACK return code 2.
    pub max_client_id_bytes: usize,
    /// Most bytes of MQTT 5 user properties in one packet, counted as they
    /// are encoded on the wire (identifier, two length prefixes, name and
    /// value), summed over the packet (a CONNECT's will properties included):
    /// 0x97 (Quota exceeded).
    pub max_user_properties_bytes: usize,
}

/// AWS IoT Core's PUBLISH payload limit: 128 KiB.
pub const AWS_MAX_PAYLOAD_BYTES: usize = 128 * 1024;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            // 128 KiB of payload plus 16 KiB for the topic (258 bytes), the
            // 8 KiB of user properties AWS allows, the other PUBLISH
            // properties and the headers.
            max_packet_size: (AWS_MAX_PAYLOAD_BYTES + 16 * 1024) as u32,
            max_payload_bytes: AWS_MAX_PAYLOAD_BYTES,
            max_topic_bytes: 256,
            max_client_id_bytes: 128,
            max_user_properties_bytes: 8 * 1024,
        }
    }
}

impl Limits {
    /// Only the limits of the wire format itself: for tests and tools that
    /// must accept every valid packet.
    pub fn protocol_maximum() -> Self {
        Limits {
            max_packet_size: MAX_PACKET_SIZE,
            max_payload_bytes: usize::MAX,
            max_topic_bytes: usize::from(u16::MAX),
            max_client_id_bytes: usize::from(u16::MAX),
            max_user_properties_bytes: usize::MAX,
        }
    }
}
