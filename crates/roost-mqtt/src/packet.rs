//! The packets, one struct per control packet type, shaped so that one value
//! describes the packet in both protocol versions.
//!
//! MQTT 5-only fields (properties, reason codes on acknowledgements,
//! subscription options beyond QoS) hold their "absent" value when a 3.1.1
//! packet is decoded, and are dropped when a packet is encoded for 3.1.1.

use bytes::Bytes;

use crate::properties::{
    AckProperties, AuthProperties, ConnAckProperties, ConnectProperties, DisconnectProperties,
    PublishProperties, SubscribeProperties, UnsubscribeProperties, WillProperties,
};
use crate::reason::ReasonCode;
use crate::{ProtocolVersion, QoS};

/// The control packet type, the high nibble of a packet's first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketType {
    Connect = 1,
    ConnAck = 2,
    Publish = 3,
    PubAck = 4,
    PubRec = 5,
    PubRel = 6,
    PubComp = 7,
    Subscribe = 8,
    SubAck = 9,
    Unsubscribe = 10,
    UnsubAck = 11,
    PingReq = 12,
    PingResp = 13,
    Disconnect = 14,
    /// MQTT 5 only; the value is reserved in 3.1.1.
    Auth = 15,
}

impl PacketType {
    /// The packet type for a first byte's high nibble; `None` for the
    /// reserved value 0.
    pub fn from_nibble(nibble: u8) -> Option<PacketType> {
        use PacketType as P;
        Some(match nibble {
            1 => P::Connect,
            2 => P::ConnAck,
            3 => P::Publish,
            4 => P::PubAck,
            5 => P::PubRec,
            6 => P::PubRel,
            7 => P::PubComp,
            8 => P::Subscribe,
            9 => P::SubAck,
            10 => P::Unsubscribe,
            11 => P::UnsubAck,
            12 => P::PingReq,
            13 => P::PingResp,
            14 => P::Disconnect,
            15 => P::Auth,
            _ => return None,
        })
    }

    /// The fixed low nibble of the first byte; `None` for PUBLISH, whose low
    /// nibble carries its flags.
    pub(crate) fn fixed_flags(self) -> Option<u8> {
        match self {
            PacketType::Publish => None,
            // The specification reserves 0b0010 for these three, a remnant of
            // MQTT 3.1 where they were sent at QoS 1.
            PacketType::PubRel | PacketType::Subscribe | PacketType::Unsubscribe => Some(0b0010),
            _ => Some(0),
        }
    }

    /// Whether a client may send this packet type (it is not one only a
    /// server sends).
    pub fn sent_by_client(self) -> bool {
        !matches!(
            self,
            PacketType::ConnAck | PacketType::SubAck | PacketType::UnsubAck | PacketType::PingResp
        )
    }

    /// Whether a server may send this packet type.
    pub fn sent_by_server(self) -> bool {
        !matches!(
            self,
            PacketType::Connect
                | PacketType::Subscribe
                | PacketType::Unsubscribe
                | PacketType::PingReq
        )
    }

    /// The name the specification uses, e.g. `PUBACK`.
    pub fn name(self) -> &'static str {
        use PacketType as P;
        match self {
            P::Connect => "CONNECT",
            P::ConnAck => "CONNACK",
            P::Publish => "PUBLISH",
            P::PubAck => "PUBACK",
            P::PubRec => "PUBREC",
            P::PubRel => "PUBREL",
            P::PubComp => "PUBCOMP",
            P::Subscribe => "SUBSCRIBE",
            P::SubAck => "SUBACK",
            P::Unsubscribe => "UNSUBSCRIBE",
            P::UnsubAck => "UNSUBACK",
            P::PingReq => "PINGREQ",
            P::PingResp => "PINGRESP",
            P::Disconnect => "DISCONNECT",
            P::Auth => "AUTH",
        }
    }
}

impl std::fmt::Display for PacketType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One MQTT control packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    Connect(Connect),
    ConnAck(ConnAck),
    Publish(Publish),
    PubAck(PubAck),
    PubRec(PubRec),
    PubRel(PubRel),
    PubComp(PubComp),
    Subscribe(Subscribe),
    SubAck(SubAck),
    Unsubscribe(Unsubscribe),
    UnsubAck(UnsubAck),
    PingReq,
    PingResp,
    Disconnect(Disconnect),
    Auth(Auth),
}

impl Packet {
    /// This packet's control packet type.
    pub fn packet_type(&self) -> PacketType {
        use PacketType as P;
        match self {
            Packet::Connect(_) => P::Connect,
            Packet::ConnAck(_) => P::ConnAck,
            Packet::Publish(_) => P::Publish,
            Packet::PubAck(_) => P::PubAck,
            Packet::PubRec(_) => P::PubRec,
            Packet::PubRel(_) => P::PubRel,
            Packet::PubComp(_) => P::PubComp,
            Packet::Subscribe(_) => P::Subscribe,
            Packet::SubAck(_) => P::SubAck,
            Packet::Unsubscribe(_) => P::Unsubscribe,
            Packet::UnsubAck(_) => P::UnsubAck,
            Packet::PingReq => P::PingReq,
            Packet::PingResp => P::PingResp,
            Packet::Disconnect(_) => P::Disconnect,
            Packet::Auth(_) => P::Auth,
        }
    }
}

/// CONNECT: the first packet of every connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// The version the client asked for; the connection speaks it from now on.
    pub protocol: ProtocolVersion,
    /// Clean Start (5.0) / Clean Session (3.1.1).
    pub clean_start: bool,
    /// Keep alive in seconds as the client sent it; 0 disables it.
    pub keep_alive: u16,
    /// May be empty: MQTT 5 then wants a server-assigned identifier, and
    /// MQTT 3.1.1 allows it only with Clean Session (checked here).
    pub client_id: String,
    pub will: Option<Will>,
    /// Sent as metadata by the AWS SDKs (`?SDK=...`); not a credential when
    /// the client authenticates with a certificate.
    pub username: Option<String>,
    pub password: Option<Bytes>,
    pub properties: ConnectProperties,
}

/// The Last Will and Testament carried by a CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Will {
    pub topic: String,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    pub properties: WillProperties,
}

/// CONNACK: the server's answer to CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnAck {
    pub session_present: bool,
    /// Encoded for 3.1.1 as [`ReasonCode::connack_v311`].
    pub reason_code: ReasonCode,
    pub properties: ConnAckProperties,
}

/// PUBLISH, in either direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    pub dup: bool,
    pub qos: QoS,
    pub retain: bool,
    /// Empty only in MQTT 5 when [`PublishProperties::topic_alias`] stands
    /// for it; resolving aliases is the broker's job (they are per connection).
    pub topic: String,
    /// Present exactly when `qos` is 1 or 2; never 0.
    pub packet_id: Option<u16>,
    pub payload: Bytes,
    pub properties: PublishProperties,
}

/// PUBACK: acknowledges a QoS 1 PUBLISH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubAck {
    pub packet_id: u16,
    /// Always Success in 3.1.1, which has no reason codes.
    pub reason_code: ReasonCode,
    pub properties: AckProperties,
}

/// PUBREC: first answer to a QoS 2 PUBLISH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubRec {
    pub packet_id: u16,
    pub reason_code: ReasonCode,
    pub properties: AckProperties,
}

/// PUBREL: answers PUBREC in the QoS 2 exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubRel {
    pub packet_id: u16,
    pub reason_code: ReasonCode,
    pub properties: AckProperties,
}

/// PUBCOMP: ends the QoS 2 exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubComp {
    pub packet_id: u16,
    pub reason_code: ReasonCode,
    pub properties: AckProperties,
}

/// What a subscriber asks for each topic filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriptionOptions {
    /// The maximum QoS the client wants to receive at.
    pub qos: QoS,
    /// MQTT 5: do not send the client its own publications.
    pub no_local: bool,
    /// MQTT 5: keep the RETAIN flag of forwarded messages.
    pub retain_as_published: bool,
    /// MQTT 5: when to send retained messages.
    pub retain_handling: RetainHandling,
}

impl SubscriptionOptions {
    /// The options an MQTT 3.1.1 subscription implies: only a QoS.
    pub fn qos(qos: QoS) -> Self {
        SubscriptionOptions {
            qos,
            no_local: false,
            retain_as_published: false,
            retain_handling: RetainHandling::SendAtSubscribe,
        }
    }
}

/// MQTT 5 Retain Handling subscription option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetainHandling {
    /// 0: send retained messages at the time of the subscribe.
    SendAtSubscribe = 0,
    /// 1: send them only if the subscription did not exist yet.
    SendIfNewSubscription = 1,
    /// 2: do not send retained messages at subscribe.
    DoNotSend = 2,
}

/// SUBSCRIBE: one or more topic filters with their options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    pub packet_id: u16,
    /// Never empty.
    pub filters: Vec<(String, SubscriptionOptions)>,
    pub properties: SubscribeProperties,
}

/// SUBACK: one reason code per filter of the SUBSCRIBE, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubAck {
    pub packet_id: u16,
    /// Encoded for 3.1.1 as [`ReasonCode::suback_v311`].
    pub reason_codes: Vec<ReasonCode>,
    pub properties: AckProperties,
}

/// UNSUBSCRIBE: one or more topic filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    pub packet_id: u16,
    /// Never empty.
    pub filters: Vec<String>,
    pub properties: UnsubscribeProperties,
}

/// UNSUBACK: in MQTT 5, one reason code per filter; empty in 3.1.1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubAck {
    pub packet_id: u16,
    pub reason_codes: Vec<ReasonCode>,
    pub properties: AckProperties,
}

/// DISCONNECT, from the client (both versions) or the server (MQTT 5 only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disconnect {
    /// Always Normal disconnection (Success) in 3.1.1.
    pub reason_code: ReasonCode,
    pub properties: DisconnectProperties,
}

impl Disconnect {
    /// A DISCONNECT with this reason and no properties.
    pub fn new(reason_code: ReasonCode) -> Self {
        Disconnect {
            reason_code,
            properties: DisconnectProperties::default(),
        }
    }
}

/// AUTH: MQTT 5 extended authentication exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    pub reason_code: ReasonCode,
    /// Must carry the authentication method.
    pub properties: AuthProperties,
}
