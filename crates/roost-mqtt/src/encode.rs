//! Encoding: a sizing pass that checks the packet can be sent, then a write
//! pass that cannot fail.
//!
//! For MQTT 3.1.1, fields that version lacks (properties, acknowledgement
//! reason codes, subscription options beyond QoS) are dropped, and reason
//! codes are mapped onto 3.1.1's return codes. Under a receiver's Maximum
//! Packet Size, MQTT 5 acknowledgements, CONNACK, DISCONNECT and AUTH shed
//! their Reason String, then their User Properties, as the specification
//! requires; a PUBLISH is never altered: it is refused, for the broker to drop.

use bytes::{BufMut, BytesMut};

use crate::error::EncodeError;
use crate::packet::{Connect, Packet, PacketType, Publish, SubscriptionOptions};
use crate::properties::{block_len, content_len, write_block, AckProperties, PropertySet, Trim};
use crate::reason::ReasonCode;
use crate::write::{binary_len, put_binary, put_string, put_var_int, string_len, var_int_len};
use crate::{ProtocolVersion, QoS, MAX_PACKET_SIZE, MAX_REMAINING_LENGTH};

type Result<T> = std::result::Result<T, EncodeError>;

/// Appends `packet`, encoded for `protocol`, to `buf`. On error `buf` is
/// left as it was.
pub fn encode(packet: &Packet, protocol: ProtocolVersion, buf: &mut BytesMut) -> Result<()> {
    encode_with_limit(packet, protocol, MAX_PACKET_SIZE, buf)
}

/// [`encode`] for a receiver that announced a Maximum Packet Size (MQTT 5
/// CONNECT property): optional diagnostics are dropped to fit, and a packet
/// that still does not fit is refused with [`EncodeError::PacketTooLarge`].
pub fn encode_with_limit(
    packet: &Packet,
    protocol: ProtocolVersion,
    max_packet_size: u32,
    buf: &mut BytesMut,
) -> Result<()> {
    let mut trim = Trim::Nothing;
    loop {
        let plan = plan(packet, protocol, trim)?;
        if plan.size <= u64::from(max_packet_size)
            && plan.remaining <= MAX_REMAINING_LENGTH as usize
        {
            buf.reserve(plan.size as usize);
            let start = buf.len();
            write(packet, protocol, &plan, buf);
            debug_assert_eq!((buf.len() - start) as u64, plan.size);
            return Ok(());
        }
        trim = match trim {
            _ if protocol == ProtocolVersion::V311 || !sheds_diagnostics(packet) => {
                return Err(too_large(packet, &plan, max_packet_size))
            }
            Trim::Nothing => Trim::ReasonString,
            Trim::ReasonString => Trim::ReasonStringAndUserProperties,
            Trim::ReasonStringAndUserProperties => {
                return Err(too_large(packet, &plan, max_packet_size))
            }
        };
    }
}

/// The size `packet` takes when encoded for `protocol`, without a limit.
pub fn encoded_len(packet: &Packet, protocol: ProtocolVersion) -> Result<usize> {
    let plan = plan(packet, protocol, Trim::Nothing)?;
    if plan.remaining > MAX_REMAINING_LENGTH as usize {
        return Err(too_large(packet, &plan, MAX_PACKET_SIZE));
    }
    Ok(plan.size as usize)
}

fn too_large(packet: &Packet, plan: &Plan, max: u32) -> EncodeError {
    EncodeError::PacketTooLarge {
        packet: packet.packet_type(),
        size: plan.size,
        max: max.min(MAX_PACKET_SIZE),
    }
}

/// Whether the packet's Reason String and User Properties are optional
/// diagnostics the sender must drop rather than exceed the receiver's limit.
fn sheds_diagnostics(packet: &Packet) -> bool {
    matches!(
        packet,
        Packet::ConnAck(_)
            | Packet::PubAck(_)
            | Packet::PubRec(_)
            | Packet::PubRel(_)
            | Packet::PubComp(_)
            | Packet::SubAck(_)
            | Packet::UnsubAck(_)
            | Packet::Disconnect(_)
            | Packet::Auth(_)
    )
}

/// What the sizing pass learnt, for the write pass.
struct Plan {
    trim: Trim,
    remaining: usize,
    size: u64,
    /// Content length of the packet's property block (MQTT 5).
    props: usize,
    /// Content length of a CONNECT's will property block (MQTT 5).
    will_props: usize,
}

fn v5(protocol: ProtocolVersion) -> bool {
    protocol == ProtocolVersion::V5
}

fn check_packet_id(packet: PacketType, id: u16) -> Result<()> {
    if id == 0 {
        return Err(EncodeError::PacketId {
            packet,
            problem: "packet identifier 0",
        });
    }
    Ok(())
}

fn check_reason(packet: PacketType, code: ReasonCode) -> Result<()> {
    if !code.allowed_in(packet) {
        return Err(EncodeError::ReasonCodeNotAllowed { packet, code });
    }
    Ok(())
}

/// Size of an MQTT 5 acknowledgement-style tail (reason code, then
/// properties), each left out when it carries nothing.
fn reason_tail_len(reason: ReasonCode, props: usize) -> usize {
    if props > 0 {
        1 + block_len(props)
    } else if reason != ReasonCode::Success {
        1
    } else {
        0
    }
}

fn plan(packet: &Packet, protocol: ProtocolVersion, trim: Trim) -> Result<Plan> {
    let kind = packet.packet_type();
    let mut props = 0;
    let mut will_props = 0;
    let remaining = match packet {
        Packet::Connect(connect) => {
            let (len, p, w) = connect_len(connect, protocol)?;
            props = p;
            will_props = w;
            len
        }
        Packet::ConnAck(connack) => {
            match protocol {
                ProtocolVersion::V311 => {
                    connack
                        .reason_code
                        .connack_v311()
                        .ok_or(EncodeError::NoV311ConnAckCode(connack.reason_code))?;
                }
                ProtocolVersion::V5 => check_reason(kind, connack.reason_code)?,
            }
            if connack.session_present && connack.reason_code.is_error() {
                return Err(EncodeError::InvalidValue {
                    field: "session present on a refusing CONNACK",
                });
            }
            if v5(protocol) {
                props = content_len(&connack.properties, trim)?;
                2 + block_len(props)
            } else {
                2
            }
        }
        Packet::Publish(publish) => {
            let (len, p) = publish_len(publish, protocol)?;
            props = p;
            len
        }
        Packet::PubAck(ack) => ack_len(
            kind,
            ack.packet_id,
            ack.reason_code,
            &ack.properties,
            protocol,
            trim,
            &mut props,
        )?,
        Packet::PubRec(ack) => ack_len(
            kind,
            ack.packet_id,
            ack.reason_code,
            &ack.properties,
            protocol,
            trim,
            &mut props,
        )?,
        Packet::PubRel(ack) => ack_len(
            kind,
            ack.packet_id,
            ack.reason_code,
            &ack.properties,
            protocol,
            trim,
            &mut props,
        )?,
        Packet::PubComp(ack) => ack_len(
            kind,
            ack.packet_id,
            ack.reason_code,
            &ack.properties,
            protocol,
            trim,
            &mut props,
        )?,
        Packet::Subscribe(subscribe) => {
            check_packet_id(kind, subscribe.packet_id)?;
            if subscribe.filters.is_empty() {
                return Err(EncodeError::InvalidValue {
                    field: "SUBSCRIBE without topic filters",
                });
            }
            let mut len = 2;
            if v5(protocol) {
                props = content_len(&subscribe.properties, trim)?;
                len += block_len(props);
            }
            for (filter, _) in &subscribe.filters {
                len += string_len("topic filter", filter)? + 1;
            }
            len
        }
        Packet::SubAck(suback) => {
            check_packet_id(kind, suback.packet_id)?;
            if suback.reason_codes.is_empty() {
                return Err(EncodeError::InvalidValue {
                    field: "SUBACK without reason codes",
                });
            }
            for &code in &suback.reason_codes {
                match protocol {
                    ProtocolVersion::V311 => {
                        code.suback_v311()
                            .ok_or(EncodeError::ReasonCodeNotAllowed { packet: kind, code })?;
                    }
                    ProtocolVersion::V5 => check_reason(kind, code)?,
                }
            }
            let mut len = 2 + suback.reason_codes.len();
            if v5(protocol) {
                props = content_len(&suback.properties, trim)?;
                len += block_len(props);
            }
            len
        }
        Packet::Unsubscribe(unsubscribe) => {
            check_packet_id(kind, unsubscribe.packet_id)?;
            if unsubscribe.filters.is_empty() {
                return Err(EncodeError::InvalidValue {
                    field: "UNSUBSCRIBE without topic filters",
                });
            }
            let mut len = 2;
            if v5(protocol) {
                props = content_len(&unsubscribe.properties, trim)?;
                len += block_len(props);
            }
            for filter in &unsubscribe.filters {
                len += string_len("topic filter", filter)?;
            }
            len
        }
        Packet::UnsubAck(unsuback) => {
            check_packet_id(kind, unsuback.packet_id)?;
            if v5(protocol) {
                if unsuback.reason_codes.is_empty() {
                    return Err(EncodeError::InvalidValue {
                        field: "UNSUBACK without reason codes",
                    });
                }
                for &code in &unsuback.reason_codes {
                    check_reason(kind, code)?;
                }
                props = content_len(&unsuback.properties, trim)?;
                2 + block_len(props) + unsuback.reason_codes.len()
            } else {
                2
            }
        }
        Packet::PingReq | Packet::PingResp => 0,
        Packet::Disconnect(disconnect) => {
            if v5(protocol) {
                check_reason(kind, disconnect.reason_code)?;
                props = content_len(&disconnect.properties, trim)?;
                reason_tail_len(disconnect.reason_code, props)
            } else {
                0
            }
        }
        Packet::Auth(auth) => {
            if !v5(protocol) {
                return Err(EncodeError::NotInProtocol {
                    packet: kind,
                    protocol,
                });
            }
            check_reason(kind, auth.reason_code)?;
            props = content_len(&auth.properties, trim)?;
            reason_tail_len(auth.reason_code, props)
        }
    };
    let length_bytes = var_int_len(remaining.min(MAX_REMAINING_LENGTH as usize) as u32);
    Ok(Plan {
        trim,
        remaining,
        size: 1 + length_bytes as u64 + remaining as u64,
        props,
        will_props,
    })
}

fn ack_len(
    kind: PacketType,
    packet_id: u16,
    reason: ReasonCode,
    properties: &AckProperties,
    protocol: ProtocolVersion,
    trim: Trim,
    props: &mut usize,
) -> Result<usize> {
    check_packet_id(kind, packet_id)?;
    if !v5(protocol) {
        return Ok(2);
    }
    check_reason(kind, reason)?;
    *props = content_len(properties, trim)?;
    Ok(2 + reason_tail_len(reason, *props))
}

fn connect_len(connect: &Connect, protocol: ProtocolVersion) -> Result<(usize, usize, usize)> {
    if protocol != connect.protocol {
        return Err(EncodeError::InvalidValue {
            field: "CONNECT protocol differs from the encoding's",
        });
    }
    if !v5(protocol) && connect.password.is_some() && connect.username.is_none() {
        return Err(EncodeError::InvalidValue {
            field: "password without user name (MQTT 3.1.1)",
        });
    }
    // Protocol name "MQTT", level, flags, keep alive.
    let mut len = 6 + 1 + 1 + 2;
    let mut props = 0;
    let mut will_props = 0;
    if v5(protocol) {
        props = content_len(&connect.properties, Trim::Nothing)?;
        len += block_len(props);
    }
    len += string_len("client identifier", &connect.client_id)?;
    if let Some(will) = &connect.will {
        if v5(protocol) {
            will_props = content_len(&will.properties, Trim::Nothing)?;
            len += block_len(will_props);
        }
        len += string_len("will topic", &will.topic)?;
        len += binary_len("will payload", &will.payload)?;
    }
    if let Some(username) = &connect.username {
        len += string_len("user name", username)?;
    }
    if let Some(password) = &connect.password {
        len += binary_len("password", password)?;
    }
    Ok((len, props, will_props))
}

fn publish_len(publish: &Publish, protocol: ProtocolVersion) -> Result<(usize, usize)> {
    let kind = PacketType::Publish;
    match (publish.qos, publish.packet_id) {
        (QoS::AtMostOnce, Some(_)) => {
            return Err(EncodeError::PacketId {
                packet: kind,
                problem: "packet identifier on a QoS 0 PUBLISH",
            })
        }
        (QoS::AtMostOnce, None) => {
            if publish.dup {
                return Err(EncodeError::InvalidValue {
                    field: "DUP on a QoS 0 PUBLISH",
                });
            }
        }
        (_, None) => {
            return Err(EncodeError::PacketId {
                packet: kind,
                problem: "no packet identifier on a QoS 1 or 2 PUBLISH",
            })
        }
        (_, Some(id)) => check_packet_id(kind, id)?,
    }
    let aliased = v5(protocol) && publish.properties.topic_alias.is_some();
    if publish.topic.is_empty() && !aliased {
        return Err(EncodeError::InvalidField {
            field: "topic name",
            problem: "empty without a topic alias",
        });
    }
    let mut len = string_len("topic name", &publish.topic)?;
    if publish.packet_id.is_some() {
        len += 2;
    }
    let mut props = 0;
    if v5(protocol) {
        props = content_len(&publish.properties, Trim::Nothing)?;
        len += block_len(props);
    }
    Ok((len + publish.payload.len(), props))
}

fn first_byte(packet: &Packet) -> u8 {
    let kind = packet.packet_type() as u8;
    let flags = match packet {
        Packet::Publish(p) => (u8::from(p.dup) << 3) | ((p.qos as u8) << 1) | u8::from(p.retain),
        _ => packet.packet_type().fixed_flags().unwrap_or(0),
    };
    (kind << 4) | flags
}

fn options_byte(options: &SubscriptionOptions, protocol: ProtocolVersion) -> u8 {
    let qos = options.qos as u8;
    if !v5(protocol) {
        return qos;
    }
    qos | (u8::from(options.no_local) << 2)
        | (u8::from(options.retain_as_published) << 3)
        | ((options.retain_handling as u8) << 4)
}

fn write_reason_tail<P: PropertySet>(
    reason: ReasonCode,
    properties: &P,
    plan: &Plan,
    buf: &mut BytesMut,
) {
    if plan.props > 0 {
        buf.put_u8(reason.as_u8());
        write_block(properties, plan.trim, plan.props, buf);
    } else if reason != ReasonCode::Success {
        buf.put_u8(reason.as_u8());
    }
}

fn write_ack(
    packet_id: u16,
    reason: ReasonCode,
    properties: &AckProperties,
    protocol: ProtocolVersion,
    plan: &Plan,
    buf: &mut BytesMut,
) {
    buf.put_u16(packet_id);
    if v5(protocol) {
        write_reason_tail(reason, properties, plan, buf);
    }
}

fn write(packet: &Packet, protocol: ProtocolVersion, plan: &Plan, buf: &mut BytesMut) {
    buf.put_u8(first_byte(packet));
    put_var_int(buf, plan.remaining as u32);
    match packet {
        Packet::Connect(connect) => {
            put_string(buf, "MQTT");
            buf.put_u8(protocol.level());
            let mut flags = 0u8;
            if connect.clean_start {
                flags |= 0x02;
            }
            if let Some(will) = &connect.will {
                flags |= 0x04 | ((will.qos as u8) << 3);
                if will.retain {
                    flags |= 0x20;
                }
            }
            if connect.password.is_some() {
                flags |= 0x40;
            }
            if connect.username.is_some() {
                flags |= 0x80;
            }
            buf.put_u8(flags);
            buf.put_u16(connect.keep_alive);
            if v5(protocol) {
                write_block(&connect.properties, Trim::Nothing, plan.props, buf);
            }
            put_string(buf, &connect.client_id);
            if let Some(will) = &connect.will {
                if v5(protocol) {
                    write_block(&will.properties, Trim::Nothing, plan.will_props, buf);
                }
                put_string(buf, &will.topic);
                put_binary(buf, &will.payload);
            }
            if let Some(username) = &connect.username {
                put_string(buf, username);
            }
            if let Some(password) = &connect.password {
                put_binary(buf, password);
            }
        }
        Packet::ConnAck(connack) => {
            buf.put_u8(u8::from(connack.session_present));
            match protocol {
                // Checked by the sizing pass.
                ProtocolVersion::V311 => {
                    buf.put_u8(connack.reason_code.connack_v311().unwrap_or(0))
                }
                ProtocolVersion::V5 => {
                    buf.put_u8(connack.reason_code.as_u8());
                    write_block(&connack.properties, plan.trim, plan.props, buf);
                }
            }
        }
        Packet::Publish(publish) => {
            put_string(buf, &publish.topic);
            if let Some(id) = publish.packet_id {
                buf.put_u16(id);
            }
            if v5(protocol) {
                write_block(&publish.properties, Trim::Nothing, plan.props, buf);
            }
            buf.put_slice(&publish.payload);
        }
        Packet::PubAck(a) => write_ack(
            a.packet_id,
            a.reason_code,
            &a.properties,
            protocol,
            plan,
            buf,
        ),
        Packet::PubRec(a) => write_ack(
            a.packet_id,
            a.reason_code,
            &a.properties,
            protocol,
            plan,
            buf,
        ),
        Packet::PubRel(a) => write_ack(
            a.packet_id,
            a.reason_code,
            &a.properties,
            protocol,
            plan,
            buf,
        ),
        Packet::PubComp(a) => write_ack(
            a.packet_id,
            a.reason_code,
            &a.properties,
            protocol,
            plan,
            buf,
        ),
        Packet::Subscribe(subscribe) => {
            buf.put_u16(subscribe.packet_id);
            if v5(protocol) {
                write_block(&subscribe.properties, plan.trim, plan.props, buf);
            }
            for (filter, options) in &subscribe.filters {
                put_string(buf, filter);
                buf.put_u8(options_byte(options, protocol));
            }
        }
        Packet::SubAck(suback) => {
            buf.put_u16(suback.packet_id);
            if v5(protocol) {
                write_block(&suback.properties, plan.trim, plan.props, buf);
            }
            for code in &suback.reason_codes {
                let byte = match protocol {
                    // Checked by the sizing pass.
                    ProtocolVersion::V311 => code.suback_v311().unwrap_or(0x80),
                    ProtocolVersion::V5 => code.as_u8(),
                };
                buf.put_u8(byte);
            }
        }
        Packet::Unsubscribe(unsubscribe) => {
            buf.put_u16(unsubscribe.packet_id);
            if v5(protocol) {
                write_block(&unsubscribe.properties, plan.trim, plan.props, buf);
            }
            for filter in &unsubscribe.filters {
                put_string(buf, filter);
            }
        }
        Packet::UnsubAck(unsuback) => {
            buf.put_u16(unsuback.packet_id);
            if v5(protocol) {
                write_block(&unsuback.properties, plan.trim, plan.props, buf);
                for code in &unsuback.reason_codes {
                    buf.put_u8(code.as_u8());
                }
            }
        }
        Packet::PingReq | Packet::PingResp => {}
        Packet::Disconnect(disconnect) => {
            if v5(protocol) {
                write_reason_tail(disconnect.reason_code, &disconnect.properties, plan, buf);
            }
        }
        Packet::Auth(auth) => write_reason_tail(auth.reason_code, &auth.properties, plan, buf),
    }
}
