//! Decoding: framing first, then one parser per packet type.
//!
//! Framing decides from the first bytes alone whether a packet can be
//! accepted at all (its type is allowed now and in this direction, its flags
//! are right, its announced size is within the limit) before waiting for the
//! rest of it, so junk and oversized packets are refused without buffering.
//! Parsing then works on the complete body, which it owns as shared `Bytes`.

use bytes::BytesMut;

use crate::error::{ClientIdProblem, DecodeError, DecodeErrorKind, Malformed, ProtocolViolation};
use crate::packet::{
    Auth, ConnAck, Connect, Disconnect, Packet, PacketType, PubAck, PubComp, PubRec, PubRel,
    Publish, RetainHandling, SubAck, Subscribe, SubscriptionOptions, UnsubAck, Unsubscribe, Will,
};
use crate::properties::{
    read_properties, user_properties_size, AckProperties, AuthProperties, ConnAckProperties,
    ConnectProperties, DisconnectProperties, PropertySet, PublishProperties, SubscribeProperties,
    UnsubscribeProperties, WillProperties,
};
use crate::read::{Reader, Result};
use crate::reason::ReasonCode;
use crate::topic::{has_wildcard, is_shared_subscription, is_valid_topic_filter};
use crate::{Limits, ProtocolVersion, QoS};

/// Who sent the bytes being decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sender {
    Client,
    Server,
}

/// Decodes one packet a client sent, if `buf` holds a complete one.
///
/// `Ok(None)` means more bytes are needed; nothing was consumed (the buffer
/// may have grown its capacity to the announced packet size). `Ok(Some(_))`
/// consumed exactly that packet's bytes. After an error the connection must
/// be closed, answering with [`DecodeError::answer`].
///
/// `protocol` is `None` until the connection's CONNECT was decoded: then only
/// a CONNECT is accepted, and afterwards a second one is refused. The
/// announced size is checked against [`Limits::max_packet_size`] as soon as
/// the fixed header is read, before the body is waited for.
pub fn decode(
    buf: &mut BytesMut,
    protocol: Option<ProtocolVersion>,
    limits: &Limits,
) -> std::result::Result<Option<Packet>, DecodeError> {
    decode_packet(buf, protocol, limits, Sender::Client)
}

/// Decodes one packet a server sent: the client side of [`decode`], for
/// test clients and tools. The protocol is known, since the client chose it.
pub fn decode_from_server(
    buf: &mut BytesMut,
    protocol: ProtocolVersion,
    limits: &Limits,
) -> std::result::Result<Option<Packet>, DecodeError> {
    decode_packet(buf, Some(protocol), limits, Sender::Server)
}

fn decode_packet(
    buf: &mut BytesMut,
    protocol: Option<ProtocolVersion>,
    limits: &Limits,
    sender: Sender,
) -> std::result::Result<Option<Packet>, DecodeError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let nibble = first >> 4;
    let Some(packet_type) = PacketType::from_nibble(nibble) else {
        return Err(DecodeError::new(
            Malformed::ReservedPacketType(nibble).into(),
            None,
            protocol,
        ));
    };
    let fail = |kind: DecodeErrorKind| DecodeError::new(kind, Some(packet_type), protocol);

    check_first_byte(packet_type, first & 0x0F, protocol, sender).map_err(fail)?;

    // MQTT 5 requires the shortest encoding of every Variable Byte Integer;
    // 3.1.1 only describes the encoding, so its clients get the benefit of
    // the doubt (a CONNECT is read before its version is known).
    let strict = protocol == Some(ProtocolVersion::V5);
    let Some((remaining, length_bytes)) =
        remaining_length(&buf[1..], strict, limits.max_packet_size).map_err(fail)?
    else {
        return Ok(None);
    };
    let header_len = 1 + length_bytes;
    let total = header_len as u64 + u64::from(remaining);
    if total > u64::from(limits.max_packet_size) {
        return Err(fail(DecodeErrorKind::PacketTooLarge {
            size: total,
            max: limits.max_packet_size,
        }));
    }
    let total = total as usize;
    if buf.len() < total {
        // Bounded by the limit just checked.
        buf.reserve(total - buf.len());
        return Ok(None);
    }

    let frame = buf.split_to(total).freeze();
    let mut body = Reader::new(frame.slice(header_len..));
    let flags = first & 0x0F;

    let packet = match protocol {
        None => {
            // Only a CONNECT gets here: the errors carry the version it asked
            // for, once read, so the answer can be in that version.
            let mut asked = None;
            match parse_connect(&mut body, limits, &mut asked) {
                Ok(connect) => Packet::Connect(connect),
                Err(kind) => return Err(DecodeError::new(kind, Some(packet_type), asked)),
            }
        }
        Some(version) => {
            parse_body(packet_type, flags, &mut body, version, limits, sender).map_err(fail)?
        }
    };
    Ok(Some(packet))
}

/// Everything the first byte can tell before the rest arrives.
fn check_first_byte(
    packet_type: PacketType,
    flags: u8,
    protocol: Option<ProtocolVersion>,
    sender: Sender,
) -> Result<()> {
    if packet_type == PacketType::Auth && protocol == Some(ProtocolVersion::V311) {
        return Err(Malformed::ReservedPacketType(15).into());
    }
    match (protocol, packet_type) {
        (None, PacketType::Connect) => {}
        (None, other) => return Err(ProtocolViolation::FirstPacketNotConnect(other).into()),
        (Some(_), PacketType::Connect) if sender == Sender::Client => {
            return Err(ProtocolViolation::SecondConnect.into())
        }
        _ => {}
    }
    let allowed = match sender {
        Sender::Client => packet_type.sent_by_client(),
        Sender::Server => packet_type.sent_by_server(),
    };
    if !allowed {
        return Err(ProtocolViolation::WrongDirection(packet_type).into());
    }
    if sender == Sender::Server
        && packet_type == PacketType::Disconnect
        && protocol == Some(ProtocolVersion::V311)
    {
        return Err(ProtocolViolation::ServerDisconnectInV311.into());
    }
    match packet_type.fixed_flags() {
        Some(expected) if flags != expected => Err(Malformed::ReservedFlags {
            packet: packet_type,
            flags,
        }
        .into()),
        Some(_) => Ok(()),
        None => {
            let qos = (flags >> 1) & 0b11;
            if qos == 3 {
                return Err(Malformed::QoS3.into());
            }
            if qos == 0 && flags & 0b1000 != 0 {
                return Err(Malformed::DupWithQoS0.into());
            }
            Ok(())
        }
    }
}

/// Reads the Remaining Length after the first byte: `Ok(None)` if it is not
/// complete yet, else its value and how many bytes it took. A length that is
/// already certain to exceed `max_packet_size` is refused before it is
/// complete.
fn remaining_length(
    src: &[u8],
    strict: bool,
    max_packet_size: u32,
) -> Result<Option<(u32, usize)>> {
    let mut value = 0u64;
    for index in 0..4 {
        let Some(&byte) = src.get(index) else {
            // The packet is at least this large: the type byte, the length
            // bytes seen plus one more, and the value so far (in a shortest
            // encoding the missing byte adds at least 128^index).
            let mut lower_bound = 1 + index as u64 + 1 + value;
            if strict && index > 0 {
                lower_bound += 1 << (7 * index);
            }
            if lower_bound > u64::from(max_packet_size) {
                return Err(DecodeErrorKind::PacketTooLarge {
                    size: lower_bound,
                    max: max_packet_size,
                });
            }
            return Ok(None);
        };
        value |= u64::from(byte & 0x7F) << (7 * index);
        if byte & 0x80 == 0 {
            if strict && index > 0 && byte == 0 {
                return Err(Malformed::VarIntNotMinimal.into());
            }
            return Ok(Some((value as u32, index + 1)));
        }
    }
    Err(Malformed::VarIntTooLong.into())
}

fn parse_body(
    packet_type: PacketType,
    flags: u8,
    r: &mut Reader,
    protocol: ProtocolVersion,
    limits: &Limits,
    sender: Sender,
) -> Result<Packet> {
    use PacketType as P;
    let packet = match packet_type {
        // Refused by the framing: a CONNECT needs `protocol == None`.
        P::Connect => return Err(ProtocolViolation::SecondConnect.into()),
        P::ConnAck => Packet::ConnAck(parse_connack(r, protocol)?),
        P::Publish => Packet::Publish(parse_publish(r, flags, protocol, limits, sender)?),
        P::PubAck => {
            let (packet_id, reason_code, properties) = parse_ack(r, packet_type, protocol)?;
            Packet::PubAck(PubAck {
                packet_id,
                reason_code,
                properties,
            })
        }
        P::PubRec => {
            let (packet_id, reason_code, properties) = parse_ack(r, packet_type, protocol)?;
            Packet::PubRec(PubRec {
                packet_id,
                reason_code,
                properties,
            })
        }
        P::PubRel => {
            let (packet_id, reason_code, properties) = parse_ack(r, packet_type, protocol)?;
            Packet::PubRel(PubRel {
                packet_id,
                reason_code,
                properties,
            })
        }
        P::PubComp => {
            let (packet_id, reason_code, properties) = parse_ack(r, packet_type, protocol)?;
            Packet::PubComp(PubComp {
                packet_id,
                reason_code,
                properties,
            })
        }
        P::Subscribe => Packet::Subscribe(parse_subscribe(r, protocol, limits)?),
        P::SubAck => Packet::SubAck(parse_suback(r, protocol)?),
        P::Unsubscribe => Packet::Unsubscribe(parse_unsubscribe(r, protocol, limits)?),
        P::UnsubAck => Packet::UnsubAck(parse_unsuback(r, protocol)?),
        P::PingReq => {
            r.finish()?;
            Packet::PingReq
        }
        P::PingResp => {
            r.finish()?;
            Packet::PingResp
        }
        P::Disconnect => Packet::Disconnect(parse_disconnect(r, protocol, sender)?),
        P::Auth => Packet::Auth(parse_auth(r)?),
    };
    check_user_properties(user_properties_of(&packet), limits)?;
    Ok(packet)
}

fn read_block<P: PropertySet>(
    r: &mut Reader,
    packet: PacketType,
    protocol: ProtocolVersion,
) -> Result<P> {
    match protocol {
        ProtocolVersion::V5 => read_properties(r, packet),
        ProtocolVersion::V311 => Ok(P::default()),
    }
}

fn packet_id(r: &mut Reader) -> Result<u16> {
    match r.u16()? {
        0 => Err(ProtocolViolation::ZeroPacketId.into()),
        id => Ok(id),
    }
}

fn reason_code(code: u8, packet: PacketType) -> Result<ReasonCode> {
    ReasonCode::from_u8(code)
        .filter(|reason| reason.allowed_in(packet))
        .ok_or_else(|| ProtocolViolation::InvalidReasonCode { packet, code }.into())
}

fn check_user_properties(size: usize, limits: &Limits) -> Result<()> {
    if size > limits.max_user_properties_bytes {
        return Err(DecodeErrorKind::UserPropertiesTooLarge {
            size,
            max: limits.max_user_properties_bytes,
        });
    }
    Ok(())
}

fn user_properties_of(packet: &Packet) -> usize {
    let list = match packet {
        Packet::Connect(connect) => return connect_user_properties(connect),
        Packet::ConnAck(p) => &p.properties.user_properties,
        Packet::Publish(p) => &p.properties.user_properties,
        Packet::PubAck(p) => &p.properties.user_properties,
        Packet::PubRec(p) => &p.properties.user_properties,
        Packet::PubRel(p) => &p.properties.user_properties,
        Packet::PubComp(p) => &p.properties.user_properties,
        Packet::Subscribe(p) => &p.properties.user_properties,
        Packet::SubAck(p) => &p.properties.user_properties,
        Packet::Unsubscribe(p) => &p.properties.user_properties,
        Packet::UnsubAck(p) => &p.properties.user_properties,
        Packet::Disconnect(p) => &p.properties.user_properties,
        Packet::Auth(p) => &p.properties.user_properties,
        Packet::PingReq | Packet::PingResp => return 0,
    };
    user_properties_size(list)
}

/// A CONNECT's user properties count with its will's: one packet, one budget.
fn connect_user_properties(connect: &Connect) -> usize {
    user_properties_size(&connect.properties.user_properties)
        + connect.will.as_ref().map_or(0, |will| {
            user_properties_size(&will.properties.user_properties)
        })
}

/// A topic name in a PUBLISH or a will: no wildcard, and within the limit.
/// Emptiness is the caller's business (MQTT 5 topic aliases).
fn check_topic_name(topic: &str, limits: &Limits) -> Result<()> {
    if has_wildcard(topic) {
        return Err(ProtocolViolation::WildcardInTopicName.into());
    }
    if topic.len() > limits.max_topic_bytes {
        return Err(DecodeErrorKind::TopicNameTooLong {
            len: topic.len(),
            max: limits.max_topic_bytes,
        });
    }
    Ok(())
}

fn check_topic_filter(filter: &str, protocol: ProtocolVersion, limits: &Limits) -> Result<()> {
    if !is_valid_topic_filter(filter, protocol == ProtocolVersion::V5) {
        return Err(ProtocolViolation::InvalidTopicFilter.into());
    }
    if filter.len() > limits.max_topic_bytes {
        return Err(DecodeErrorKind::TopicFilterTooLong {
            len: filter.len(),
            max: limits.max_topic_bytes,
        });
    }
    Ok(())
}

fn check_payload(len: usize, limits: &Limits) -> Result<()> {
    if len > limits.max_payload_bytes {
        return Err(DecodeErrorKind::PayloadTooLarge {
            size: len,
            max: limits.max_payload_bytes,
        });
    }
    Ok(())
}

fn parse_connect(
    r: &mut Reader,
    limits: &Limits,
    asked: &mut Option<ProtocolVersion>,
) -> Result<Connect> {
    let name_len = r.u16()?;
    let name = r.bytes(usize::from(name_len))?;
    let level = r.u8()?;
    let protocol = match (&name[..], level) {
        (b"MQTT", 4) => ProtocolVersion::V311,
        (b"MQTT", 5) => ProtocolVersion::V5,
        (b"MQTT", _) | (b"MQIsdp", _) => {
            return Err(DecodeErrorKind::UnsupportedProtocol { mqtt: true, level })
        }
        _ => return Err(DecodeErrorKind::UnsupportedProtocol { mqtt: false, level }),
    };
    *asked = Some(protocol);

    let flags = r.u8()?;
    if flags & 0x01 != 0 {
        return Err(Malformed::ConnectReservedFlag.into());
    }
    let clean_start = flags & 0x02 != 0;
    let will_flag = flags & 0x04 != 0;
    let will_qos = (flags >> 3) & 0b11;
    let will_retain = flags & 0x20 != 0;
    let password_flag = flags & 0x40 != 0;
    let username_flag = flags & 0x80 != 0;
    if !will_flag && (will_qos != 0 || will_retain) {
        return Err(Malformed::WillFlagsWithoutWill.into());
    }
    let will_qos = QoS::from_u8(will_qos).ok_or(Malformed::QoS3)?;
    if protocol == ProtocolVersion::V311 && password_flag && !username_flag {
        return Err(ProtocolViolation::PasswordWithoutUsername.into());
    }
    let keep_alive = r.u16()?;
    let properties: ConnectProperties = read_block(r, PacketType::Connect, protocol)?;
    properties.validate()?;

    let client_id = r.string()?;
    let will = if will_flag {
        let properties: WillProperties = read_block(r, PacketType::Connect, protocol)?;
        let topic = r.string()?;
        let payload = r.binary()?;
        Some(Will {
            topic,
            payload,
            qos: will_qos,
            retain: will_retain,
            properties,
        })
    } else {
        None
    };
    let username = if username_flag {
        Some(r.string()?)
    } else {
        None
    };
    let password = if password_flag {
        Some(r.binary()?)
    } else {
        None
    };
    r.finish()?;

    if client_id.len() > limits.max_client_id_bytes {
        return Err(DecodeErrorKind::ClientIdNotValid(
            ClientIdProblem::TooLong {
                len: client_id.len(),
                max: limits.max_client_id_bytes,
            },
        ));
    }
    // MQTT-3.1.3-8 of 3.1.1: an empty identifier needs Clean Session. MQTT 5
    // lets the server assign one instead, which is the broker's decision.
    if client_id.is_empty() && protocol == ProtocolVersion::V311 && !clean_start {
        return Err(DecodeErrorKind::ClientIdNotValid(
            ClientIdProblem::EmptyWithoutCleanSession,
        ));
    }
    if let Some(will) = &will {
        if will.topic.is_empty() {
            return Err(ProtocolViolation::EmptyTopicName.into());
        }
        check_topic_name(&will.topic, limits)?;
        check_payload(will.payload.len(), limits)?;
    }
    let connect = Connect {
        protocol,
        clean_start,
        keep_alive,
        client_id,
        will,
        username,
        password,
        properties,
    };
    check_user_properties(connect_user_properties(&connect), limits)?;
    Ok(connect)
}

fn parse_connack(r: &mut Reader, protocol: ProtocolVersion) -> Result<ConnAck> {
    let flags = r.u8()?;
    if flags & 0xFE != 0 {
        return Err(Malformed::ConnAckReservedFlags.into());
    }
    let session_present = flags & 0x01 != 0;
    let code = r.u8()?;
    let reason_code = match protocol {
        ProtocolVersion::V311 => {
            ReasonCode::from_connack_v311(code).ok_or(ProtocolViolation::InvalidReasonCode {
                packet: PacketType::ConnAck,
                code,
            })?
        }
        ProtocolVersion::V5 => reason_code(code, PacketType::ConnAck)?,
    };
    let properties: ConnAckProperties = read_block(r, PacketType::ConnAck, protocol)?;
    r.finish()?;
    if session_present && reason_code.is_error() {
        return Err(ProtocolViolation::SessionPresentOnRefusal.into());
    }
    Ok(ConnAck {
        session_present,
        reason_code,
        properties,
    })
}

fn parse_publish(
    r: &mut Reader,
    flags: u8,
    protocol: ProtocolVersion,
    limits: &Limits,
    sender: Sender,
) -> Result<Publish> {
    // The framing refused QoS 3 and DUP on QoS 0.
    let qos = QoS::from_u8((flags >> 1) & 0b11).ok_or(Malformed::QoS3)?;
    let dup = flags & 0b1000 != 0;
    let retain = flags & 0b0001 != 0;
    let topic = r.string()?;
    let packet_id = match qos {
        QoS::AtMostOnce => None,
        _ => Some(packet_id(r)?),
    };
    let properties: PublishProperties = read_block(r, PacketType::Publish, protocol)?;
    let payload = r.rest();

    if topic.is_empty() {
        if properties.topic_alias.is_none() {
            return Err(ProtocolViolation::EmptyTopicName.into());
        }
    } else {
        check_topic_name(&topic, limits)?;
    }
    if sender == Sender::Client && !properties.subscription_identifiers.is_empty() {
        return Err(ProtocolViolation::SubscriptionIdFromClient.into());
    }
    check_payload(payload.len(), limits)?;
    Ok(Publish {
        dup,
        qos,
        retain,
        topic,
        packet_id,
        payload,
        properties,
    })
}

/// PUBACK, PUBREC, PUBREL and PUBCOMP share one layout. In MQTT 5 the reason
/// code and the properties may each be left out, from the end.
fn parse_ack(
    r: &mut Reader,
    packet: PacketType,
    protocol: ProtocolVersion,
) -> Result<(u16, ReasonCode, AckProperties)> {
    let id = packet_id(r)?;
    if protocol == ProtocolVersion::V311 || r.is_empty() {
        r.finish()?;
        return Ok((id, ReasonCode::Success, AckProperties::default()));
    }
    let reason = reason_code(r.u8()?, packet)?;
    let properties = if r.is_empty() {
        AckProperties::default()
    } else {
        read_properties(r, packet)?
    };
    r.finish()?;
    Ok((id, reason, properties))
}

fn parse_subscribe(
    r: &mut Reader,
    protocol: ProtocolVersion,
    limits: &Limits,
) -> Result<Subscribe> {
    let packet_id = packet_id(r)?;
    let properties: SubscribeProperties = read_block(r, PacketType::Subscribe, protocol)?;
    let mut filters = Vec::new();
    while !r.is_empty() {
        let filter = r.string()?;
        let options = subscription_options(r.u8()?, protocol)?;
        check_topic_filter(&filter, protocol, limits)?;
        if options.no_local && protocol == ProtocolVersion::V5 && is_shared_subscription(&filter) {
            return Err(ProtocolViolation::NoLocalOnSharedSubscription.into());
        }
        filters.push((filter, options));
    }
    if filters.is_empty() {
        return Err(ProtocolViolation::NoTopicFilters(PacketType::Subscribe).into());
    }
    Ok(Subscribe {
        packet_id,
        filters,
        properties,
    })
}

fn subscription_options(byte: u8, protocol: ProtocolVersion) -> Result<SubscriptionOptions> {
    match protocol {
        ProtocolVersion::V311 => {
            if byte & 0xFC != 0 {
                return Err(Malformed::SubscriptionOptionsReserved.into());
            }
            let qos = QoS::from_u8(byte).ok_or(Malformed::QoS3)?;
            Ok(SubscriptionOptions::qos(qos))
        }
        ProtocolVersion::V5 => {
            if byte & 0xC0 != 0 {
                return Err(Malformed::SubscriptionOptionsReserved.into());
            }
            let qos = QoS::from_u8(byte & 0b11).ok_or(ProtocolViolation::SubscriptionQoS3)?;
            let retain_handling = match (byte >> 4) & 0b11 {
                0 => RetainHandling::SendAtSubscribe,
                1 => RetainHandling::SendIfNewSubscription,
                2 => RetainHandling::DoNotSend,
                _ => return Err(ProtocolViolation::RetainHandling3.into()),
            };
            Ok(SubscriptionOptions {
                qos,
                no_local: byte & 0b0100 != 0,
                retain_as_published: byte & 0b1000 != 0,
                retain_handling,
            })
        }
    }
}

fn parse_suback(r: &mut Reader, protocol: ProtocolVersion) -> Result<SubAck> {
    let packet_id = packet_id(r)?;
    let properties: AckProperties = read_block(r, PacketType::SubAck, protocol)?;
    let mut reason_codes = Vec::with_capacity(r.remaining());
    while !r.is_empty() {
        let code = r.u8()?;
        let reason = match protocol {
            ProtocolVersion::V311 => {
                ReasonCode::from_suback_v311(code).ok_or(ProtocolViolation::InvalidReasonCode {
                    packet: PacketType::SubAck,
                    code,
                })?
            }
            ProtocolVersion::V5 => reason_code(code, PacketType::SubAck)?,
        };
        reason_codes.push(reason);
    }
    if reason_codes.is_empty() {
        return Err(ProtocolViolation::NoReasonCodes(PacketType::SubAck).into());
    }
    Ok(SubAck {
        packet_id,
        reason_codes,
        properties,
    })
}

fn parse_unsubscribe(
    r: &mut Reader,
    protocol: ProtocolVersion,
    limits: &Limits,
) -> Result<Unsubscribe> {
    let packet_id = packet_id(r)?;
    let properties: UnsubscribeProperties = read_block(r, PacketType::Unsubscribe, protocol)?;
    let mut filters = Vec::new();
    while !r.is_empty() {
        let filter = r.string()?;
        check_topic_filter(&filter, protocol, limits)?;
        filters.push(filter);
    }
    if filters.is_empty() {
        return Err(ProtocolViolation::NoTopicFilters(PacketType::Unsubscribe).into());
    }
    Ok(Unsubscribe {
        packet_id,
        filters,
        properties,
    })
}

fn parse_unsuback(r: &mut Reader, protocol: ProtocolVersion) -> Result<UnsubAck> {
    let packet_id = packet_id(r)?;
    if protocol == ProtocolVersion::V311 {
        r.finish()?;
        return Ok(UnsubAck {
            packet_id,
            reason_codes: Vec::new(),
            properties: AckProperties::default(),
        });
    }
    let properties: AckProperties = read_properties(r, PacketType::UnsubAck)?;
    let mut reason_codes = Vec::with_capacity(r.remaining());
    while !r.is_empty() {
        reason_codes.push(reason_code(r.u8()?, PacketType::UnsubAck)?);
    }
    if reason_codes.is_empty() {
        return Err(ProtocolViolation::NoReasonCodes(PacketType::UnsubAck).into());
    }
    Ok(UnsubAck {
        packet_id,
        reason_codes,
        properties,
    })
}

fn parse_disconnect(
    r: &mut Reader,
    protocol: ProtocolVersion,
    sender: Sender,
) -> Result<Disconnect> {
    if protocol == ProtocolVersion::V311 || r.is_empty() {
        r.finish()?;
        return Ok(Disconnect::new(ReasonCode::NORMAL_DISCONNECTION));
    }
    let reason_code = reason_code(r.u8()?, PacketType::Disconnect)?;
    let properties: DisconnectProperties = if r.is_empty() {
        DisconnectProperties::default()
    } else {
        read_properties(r, PacketType::Disconnect)?
    };
    r.finish()?;
    if sender == Sender::Server && properties.session_expiry_interval.is_some() {
        return Err(ProtocolViolation::SessionExpiryFromServer.into());
    }
    Ok(Disconnect {
        reason_code,
        properties,
    })
}

fn parse_auth(r: &mut Reader) -> Result<Auth> {
    // The specification lets an AUTH omit its reason code and properties,
    // yet also requires the authentication method in every AUTH: an empty
    // AUTH can only be refused.
    if r.is_empty() {
        return Err(ProtocolViolation::AuthMethodMissing.into());
    }
    let reason_code = reason_code(r.u8()?, PacketType::Auth)?;
    let properties: AuthProperties = if r.is_empty() {
        AuthProperties::default()
    } else {
        read_properties(r, PacketType::Auth)?
    };
    r.finish()?;
    if properties.authentication_method.is_none() {
        return Err(ProtocolViolation::AuthMethodMissing.into());
    }
    Ok(Auth {
        reason_code,
        properties,
    })
}
