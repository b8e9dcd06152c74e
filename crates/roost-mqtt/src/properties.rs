//! MQTT 5 properties (section 2.2.2): one typed struct per packet type, each
//! holding exactly the properties that packet may carry.
//!
//! Decoding enforces the specification's rules for the property block: an
//! identifier the packet may not carry is Malformed, a property that may
//! appear once and appears twice is a Protocol Error, as are values outside
//! their range (a Receive Maximum of 0, a boolean byte that is neither 0 nor
//! 1). Encoding writes properties in ascending identifier order and refuses
//! values the receiver would reject.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{DecodeErrorKind, EncodeError, Malformed, ProtocolViolation};
use crate::packet::PacketType;
use crate::read::{Reader, Result};
use crate::topic::has_wildcard;
use crate::write::{binary_len, put_binary, put_string, put_var_int, string_len, var_int_len};
use crate::{QoS, MAX_REMAINING_LENGTH};

/// User properties: name/value pairs, in the order they were sent (which
/// the server must preserve when forwarding). Names may repeat.
pub type UserProperties = Vec<(String, String)>;

/// Property identifiers (Table 2-4 of MQTT 5.0).
pub(crate) mod id {
    pub const PAYLOAD_FORMAT_INDICATOR: u8 = 0x01;
    pub const MESSAGE_EXPIRY_INTERVAL: u8 = 0x02;
    pub const CONTENT_TYPE: u8 = 0x03;
    pub const RESPONSE_TOPIC: u8 = 0x08;
    pub const CORRELATION_DATA: u8 = 0x09;
    pub const SUBSCRIPTION_IDENTIFIER: u8 = 0x0B;
    pub const SESSION_EXPIRY_INTERVAL: u8 = 0x11;
    pub const ASSIGNED_CLIENT_IDENTIFIER: u8 = 0x12;
    pub const SERVER_KEEP_ALIVE: u8 = 0x13;
    pub const AUTHENTICATION_METHOD: u8 = 0x15;
    pub const AUTHENTICATION_DATA: u8 = 0x16;
    pub const REQUEST_PROBLEM_INFORMATION: u8 = 0x17;
    pub const WILL_DELAY_INTERVAL: u8 = 0x18;
    pub const REQUEST_RESPONSE_INFORMATION: u8 = 0x19;
    pub const RESPONSE_INFORMATION: u8 = 0x1A;
    pub const SERVER_REFERENCE: u8 = 0x1C;
    pub const REASON_STRING: u8 = 0x1F;
    pub const RECEIVE_MAXIMUM: u8 = 0x21;
    pub const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
    pub const TOPIC_ALIAS: u8 = 0x23;
    pub const MAXIMUM_QOS: u8 = 0x24;
    pub const RETAIN_AVAILABLE: u8 = 0x25;
    pub const USER_PROPERTY: u8 = 0x26;
    pub const MAXIMUM_PACKET_SIZE: u8 = 0x27;
    pub const WILDCARD_SUBSCRIPTION_AVAILABLE: u8 = 0x28;
    pub const SUBSCRIPTION_IDENTIFIER_AVAILABLE: u8 = 0x29;
    pub const SHARED_SUBSCRIPTION_AVAILABLE: u8 = 0x2A;

    /// Every identifier the specification defines.
    pub const ALL: [u8; 27] = [
        0x01, 0x02, 0x03, 0x08, 0x09, 0x0B, 0x11, 0x12, 0x13, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1A,
        0x1C, 0x1F, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2A,
    ];
}

/// MQTT 5 Payload Format Indicator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadFormat {
    /// 0: unspecified bytes.
    Unspecified = 0,
    /// 1: UTF-8 text. Checking the payload really is UTF-8 (reason 0x99) is
    /// left to the broker, which may choose not to pay for it.
    Utf8 = 1,
}

/// CONNECT properties.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectProperties {
    pub session_expiry_interval: Option<u32>,
    /// Never 0.
    pub receive_maximum: Option<u16>,
    /// The largest packet the client accepts; never 0. Pass it to
    /// [`crate::encode_with_limit`].
    pub maximum_packet_size: Option<u32>,
    pub topic_alias_maximum: Option<u16>,
    pub request_response_information: Option<bool>,
    pub request_problem_information: Option<bool>,
    pub user_properties: UserProperties,
    pub authentication_method: Option<String>,
    /// Only with an authentication method.
    pub authentication_data: Option<Bytes>,
}

/// Will properties, inside a CONNECT payload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WillProperties {
    pub will_delay_interval: Option<u32>,
    pub payload_format_indicator: Option<PayloadFormat>,
    pub message_expiry_interval: Option<u32>,
    pub content_type: Option<String>,
    /// Never contains a wildcard.
    pub response_topic: Option<String>,
    pub correlation_data: Option<Bytes>,
    pub user_properties: UserProperties,
}

/// CONNACK properties. All optional: a bare CONNACK is what many servers
/// send and every client tested accepts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnAckProperties {
    pub session_expiry_interval: Option<u32>,
    /// Never 0.
    pub receive_maximum: Option<u16>,
    /// Only QoS 0 or 1: absence means 2.
    pub maximum_qos: Option<QoS>,
    pub retain_available: Option<bool>,
    /// Never 0.
    pub maximum_packet_size: Option<u32>,
    pub assigned_client_identifier: Option<String>,
    pub topic_alias_maximum: Option<u16>,
    /// Dropped first when the client's maximum packet size requires it.
    pub reason_string: Option<String>,
    /// Dropped next when the client's maximum packet size requires it.
    pub user_properties: UserProperties,
    pub wildcard_subscription_available: Option<bool>,
    pub subscription_identifiers_available: Option<bool>,
    pub shared_subscription_available: Option<bool>,
    pub server_keep_alive: Option<u16>,
    pub response_information: Option<String>,
    pub server_reference: Option<String>,
    pub authentication_method: Option<String>,
    pub authentication_data: Option<Bytes>,
}

/// PUBLISH properties.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishProperties {
    pub payload_format_indicator: Option<PayloadFormat>,
    pub message_expiry_interval: Option<u32>,
    pub content_type: Option<String>,
    /// Never contains a wildcard.
    pub response_topic: Option<String>,
    pub correlation_data: Option<Bytes>,
    /// Only in a PUBLISH from the server; each 1..=268,435,455.
    pub subscription_identifiers: Vec<u32>,
    /// Never 0. Checking it against the Topic Alias Maximum the server
    /// announced, and resolving it, is the broker's job.
    pub topic_alias: Option<u16>,
    pub user_properties: UserProperties,
}

/// Properties of PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK and UNSUBACK.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AckProperties {
    /// Dropped first when the receiver's maximum packet size requires it.
    pub reason_string: Option<String>,
    /// Dropped next when the receiver's maximum packet size requires it.
    pub user_properties: UserProperties,
}

/// SUBSCRIBE properties.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscribeProperties {
    /// 1..=268,435,455. AWS IoT does not support subscription identifiers;
    /// refusing them (0xA1) is the broker's decision.
    pub subscription_identifier: Option<u32>,
    pub user_properties: UserProperties,
}

/// UNSUBSCRIBE properties.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnsubscribeProperties {
    pub user_properties: UserProperties,
}

/// DISCONNECT properties.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DisconnectProperties {
    /// Only from the client. A non-zero value after a CONNECT whose session
    /// expiry was 0 is a Protocol Error the broker must detect (the codec does
    /// not remember the CONNECT).
    pub session_expiry_interval: Option<u32>,
    pub reason_string: Option<String>,
    pub user_properties: UserProperties,
    pub server_reference: Option<String>,
}

/// AUTH properties.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthProperties {
    /// Required in every AUTH packet.
    pub authentication_method: Option<String>,
    pub authentication_data: Option<Bytes>,
    pub reason_string: Option<String>,
    pub user_properties: UserProperties,
}

// ---------------------------------------------------------------------------
// Decoding

fn once<T>(slot: &mut Option<T>, id: u8, value: T) -> Result<()> {
    if slot.is_some() {
        return Err(ProtocolViolation::DuplicateProperty(id).into());
    }
    *slot = Some(value);
    Ok(())
}

fn boolean(id: u8, r: &mut Reader) -> Result<bool> {
    match r.u8()? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(ProtocolViolation::InvalidPropertyValue(id).into()),
    }
}

fn non_zero_u16(id: u8, r: &mut Reader) -> Result<u16> {
    match r.u16()? {
        0 => Err(ProtocolViolation::InvalidPropertyValue(id).into()),
        value => Ok(value),
    }
}

fn non_zero_u32(id: u8, r: &mut Reader) -> Result<u32> {
    match r.u32()? {
        0 => Err(ProtocolViolation::InvalidPropertyValue(id).into()),
        value => Ok(value),
    }
}

fn payload_format(r: &mut Reader) -> Result<PayloadFormat> {
    match r.u8()? {
        0 => Ok(PayloadFormat::Unspecified),
        1 => Ok(PayloadFormat::Utf8),
        _ => Err(ProtocolViolation::InvalidPropertyValue(id::PAYLOAD_FORMAT_INDICATOR).into()),
    }
}

fn subscription_identifier(r: &mut Reader) -> Result<u32> {
    match r.var_int()? {
        0 => Err(ProtocolViolation::InvalidPropertyValue(id::SUBSCRIPTION_IDENTIFIER).into()),
        value => Ok(value),
    }
}

fn response_topic(r: &mut Reader) -> Result<String> {
    let topic = r.string()?;
    if has_wildcard(&topic) {
        return Err(ProtocolViolation::WildcardInResponseTopic.into());
    }
    Ok(topic)
}

fn user_property(r: &mut Reader) -> Result<(String, String)> {
    Ok((r.string()?, r.string()?))
}

fn not_allowed(id: u8, packet: PacketType) -> Result<()> {
    if id::ALL.contains(&id) {
        Err(Malformed::PropertyNotAllowed { id, packet }.into())
    } else {
        Err(Malformed::UnknownProperty(id).into())
    }
}

/// A property block of one packet type.
pub(crate) trait PropertySet: Default {
    /// Reads the value of property `id` from `r` into `self`.
    fn read_one(&mut self, id: u8, r: &mut Reader, packet: PacketType) -> Result<()>;

    /// Hands every present property to `f`, in ascending identifier order.
    fn visit<'a>(&'a self, f: &mut dyn FnMut(Prop<'a>));
}

/// Reads a Property Length and the properties it covers.
pub(crate) fn read_properties<P: PropertySet>(r: &mut Reader, packet: PacketType) -> Result<P> {
    let len = r.var_int()?;
    let mut block = r.sub_reader(len as usize)?;
    let mut props = P::default();
    while !block.is_empty() {
        // Identifiers are Variable Byte Integers, but every one defined is a
        // single byte: a first byte of 0x80 or more can only start an unknown one.
        let id = block.u8()?;
        props.read_one(id, &mut block, packet)?;
    }
    Ok(props)
}

impl PropertySet for ConnectProperties {
    fn read_one(&mut self, id: u8, r: &mut Reader, packet: PacketType) -> Result<()> {
        match id {
            id::SESSION_EXPIRY_INTERVAL => once(&mut self.session_expiry_interval, id, r.u32()?),
            id::AUTHENTICATION_METHOD => once(&mut self.authentication_method, id, r.string()?),
            id::AUTHENTICATION_DATA => once(&mut self.authentication_data, id, r.binary()?),
            id::REQUEST_PROBLEM_INFORMATION => {
                once(&mut self.request_problem_information, id, boolean(id, r)?)
            }
            id::REQUEST_RESPONSE_INFORMATION => {
                once(&mut self.request_response_information, id, boolean(id, r)?)
            }
            id::RECEIVE_MAXIMUM => once(&mut self.receive_maximum, id, non_zero_u16(id, r)?),
            id::TOPIC_ALIAS_MAXIMUM => once(&mut self.topic_alias_maximum, id, r.u16()?),
            id::USER_PROPERTY => {
                self.user_properties.push(user_property(r)?);
                Ok(())
            }
            id::MAXIMUM_PACKET_SIZE => {
                once(&mut self.maximum_packet_size, id, non_zero_u32(id, r)?)
            }
            other => not_allowed(other, packet),
        }
    }

    fn visit<'a>(&'a self, f: &mut dyn FnMut(Prop<'a>)) {
        opt_u32(f, id::SESSION_EXPIRY_INTERVAL, self.session_expiry_interval);
        opt_str(f, id::AUTHENTICATION_METHOD, &self.authentication_method);
        opt_bin(f, id::AUTHENTICATION_DATA, &self.authentication_data);
        opt_bool(
            f,
            id::REQUEST_PROBLEM_INFORMATION,
            self.request_problem_information,
        );
        opt_bool(
            f,
            id::REQUEST_RESPONSE_INFORMATION,
            self.request_response_information,
        );
        opt_u16(f, id::RECEIVE_MAXIMUM, self.receive_maximum);
        opt_u16(f, id::TOPIC_ALIAS_MAXIMUM, self.topic_alias_maximum);
        users(f, &self.user_properties);
        opt_u32(f, id::MAXIMUM_PACKET_SIZE, self.maximum_packet_size);
    }
}

impl ConnectProperties {
    pub(crate) fn validate(&self) -> Result<()> {
        if self.authentication_data.is_some() && self.authentication_method.is_none() {
            return Err(ProtocolViolation::AuthDataWithoutMethod.into());
        }
        Ok(())
    }
}

impl PropertySet for WillProperties {
    fn read_one(&mut self, id: u8, r: &mut Reader, packet: PacketType) -> Result<()> {
        match id {
            id::PAYLOAD_FORMAT_INDICATOR => {
                once(&mut self.payload_format_indicator, id, payload_format(r)?)
            }
            id::MESSAGE_EXPIRY_INTERVAL => once(&mut self.message_expiry_interval, id, r.u32()?),
            id::CONTENT_TYPE => once(&mut self.content_type, id, r.string()?),
            id::RESPONSE_TOPIC => once(&mut self.response_topic, id, response_topic(r)?),
            id::CORRELATION_DATA => once(&mut self.correlation_data, id, r.binary()?),
            id::WILL_DELAY_INTERVAL => once(&mut self.will_delay_interval, id, r.u32()?),
            id::USER_PROPERTY => {
                self.user_properties.push(user_property(r)?);
                Ok(())
            }
            other => not_allowed(other, packet),
        }
    }

    fn visit<'a>(&'a self, f: &mut dyn FnMut(Prop<'a>)) {
        opt_format(f, self.payload_format_indicator);
        opt_u32(f, id::MESSAGE_EXPIRY_INTERVAL, self.message_expiry_interval);
        opt_str(f, id::CONTENT_TYPE, &self.content_type);
        opt_str(f, id::RESPONSE_TOPIC, &self.response_topic);
        opt_bin(f, id::CORRELATION_DATA, &self.correlation_data);
        opt_u32(f, id::WILL_DELAY_INTERVAL, self.will_delay_interval);
        users(f, &self.user_properties);
    }
}

impl PropertySet for ConnAckProperties {
    fn read_one(&mut self, id: u8, r: &mut Reader, packet: PacketType) -> Result<()> {
        match id {
            id::SESSION_EXPIRY_INTERVAL => once(&mut self.session_expiry_interval, id, r.u32()?),
            id::ASSIGNED_CLIENT_IDENTIFIER => {
                once(&mut self.assigned_client_identifier, id, r.string()?)
            }
            id::SERVER_KEEP_ALIVE => once(&mut self.server_keep_alive, id, r.u16()?),
            id::AUTHENTICATION_METHOD => once(&mut self.authentication_method, id, r.string()?),
            id::AUTHENTICATION_DATA => once(&mut self.authentication_data, id, r.binary()?),
            id::RESPONSE_INFORMATION => once(&mut self.response_information, id, r.string()?),
            id::SERVER_REFERENCE => once(&mut self.server_reference, id, r.string()?),
            id::REASON_STRING => once(&mut self.reason_string, id, r.string()?),
            id::RECEIVE_MAXIMUM => once(&mut self.receive_maximum, id, non_zero_u16(id, r)?),
            id::TOPIC_ALIAS_MAXIMUM => once(&mut self.topic_alias_maximum, id, r.u16()?),
            id::MAXIMUM_QOS => {
                let qos = match r.u8()? {
                    0 => QoS::AtMostOnce,
                    1 => QoS::AtLeastOnce,
                    _ => return Err(ProtocolViolation::InvalidPropertyValue(id).into()),
                };
                once(&mut self.maximum_qos, id, qos)
            }
            id::RETAIN_AVAILABLE => once(&mut self.retain_available, id, boolean(id, r)?),
            id::USER_PROPERTY => {
                self.user_properties.push(user_property(r)?);
                Ok(())
            }
            id::MAXIMUM_PACKET_SIZE => {
                once(&mut self.maximum_packet_size, id, non_zero_u32(id, r)?)
            }
            id::WILDCARD_SUBSCRIPTION_AVAILABLE => once(
                &mut self.wildcard_subscription_available,
                id,
                boolean(id, r)?,
            ),
            id::SUBSCRIPTION_IDENTIFIER_AVAILABLE => once(
                &mut self.subscription_identifiers_available,
                id,
                boolean(id, r)?,
            ),
            id::SHARED_SUBSCRIPTION_AVAILABLE => {
                once(&mut self.shared_subscription_available, id, boolean(id, r)?)
            }
            other => not_allowed(other, packet),
        }
    }

    fn visit<'a>(&'a self, f: &mut dyn FnMut(Prop<'a>)) {
        opt_u32(f, id::SESSION_EXPIRY_INTERVAL, self.session_expiry_interval);
        opt_str(
            f,
            id::ASSIGNED_CLIENT_IDENTIFIER,
            &self.assigned_client_identifier,
        );
        opt_u16(f, id::SERVER_KEEP_ALIVE, self.server_keep_alive);
        opt_str(f, id::AUTHENTICATION_METHOD, &self.authentication_method);
        opt_bin(f, id::AUTHENTICATION_DATA, &self.authentication_data);
        opt_str(f, id::RESPONSE_INFORMATION, &self.response_information);
        opt_str(f, id::SERVER_REFERENCE, &self.server_reference);
        opt_str(f, id::REASON_STRING, &self.reason_string);
        opt_u16(f, id::RECEIVE_MAXIMUM, self.receive_maximum);
        opt_u16(f, id::TOPIC_ALIAS_MAXIMUM, self.topic_alias_maximum);
        if let Some(qos) = self.maximum_qos {
            f(Prop::Byte(id::MAXIMUM_QOS, qos as u8));
        }
        opt_bool(f, id::RETAIN_AVAILABLE, self.retain_available);
        users(f, &self.user_properties);
        opt_u32(f, id::MAXIMUM_PACKET_SIZE, self.maximum_packet_size);
        opt_bool(
            f,
            id::WILDCARD_SUBSCRIPTION_AVAILABLE,
            self.wildcard_subscription_available,
        );
        opt_bool(
            f,
            id::SUBSCRIPTION_IDENTIFIER_AVAILABLE,
            self.subscription_identifiers_available,
        );
        opt_bool(
            f,
            id::SHARED_SUBSCRIPTION_AVAILABLE,
            self.shared_subscription_available,
        );
    }
}

impl PropertySet for PublishProperties {
    fn read_one(&mut self, id: u8, r: &mut Reader, packet: PacketType) -> Result<()> {
        match id {
            id::PAYLOAD_FORMAT_INDICATOR => {
                once(&mut self.payload_format_indicator, id, payload_format(r)?)
            }
            id::MESSAGE_EXPIRY_INTERVAL => once(&mut self.message_expiry_interval, id, r.u32()?),
            id::CONTENT_TYPE => once(&mut self.content_type, id, r.string()?),
            id::RESPONSE_TOPIC => once(&mut self.response_topic, id, response_topic(r)?),
            id::CORRELATION_DATA => once(&mut self.correlation_data, id, r.binary()?),
            // May repeat: one per matching subscription.
            id::SUBSCRIPTION_IDENTIFIER => {
                self.subscription_identifiers
                    .push(subscription_identifier(r)?);
                Ok(())
            }
            id::TOPIC_ALIAS => {
                let alias = r.u16()?;
                if alias == 0 {
                    return Err(DecodeErrorKind::TopicAliasZero);
                }
                once(&mut self.topic_alias, id, alias)
            }
            id::USER_PROPERTY => {
                self.user_properties.push(user_property(r)?);
                Ok(())
            }
            other => not_allowed(other, packet),
        }
    }

    fn visit<'a>(&'a self, f: &mut dyn FnMut(Prop<'a>)) {
        opt_format(f, self.payload_format_indicator);
        opt_u32(f, id::MESSAGE_EXPIRY_INTERVAL, self.message_expiry_interval);
        opt_str(f, id::CONTENT_TYPE, &self.content_type);
        opt_str(f, id::RESPONSE_TOPIC, &self.response_topic);
        opt_bin(f, id::CORRELATION_DATA, &self.correlation_data);
        for &sub_id in &self.subscription_identifiers {
            f(Prop::VarInt(id::SUBSCRIPTION_IDENTIFIER, sub_id));
        }
        opt_u16(f, id::TOPIC_ALIAS, self.topic_alias);
        users(f, &self.user_properties);
    }
}

impl PropertySet for AckProperties {
    fn read_one(&mut self, id: u8, r: &mut Reader, packet: PacketType) -> Result<()> {
        match id {
            id::REASON_STRING => once(&mut self.reason_string, id, r.string()?),
            id::USER_PROPERTY => {
                self.user_properties.push(user_property(r)?);
                Ok(())
            }
            other => not_allowed(other, packet),
        }
    }

    fn visit<'a>(&'a self, f: &mut dyn FnMut(Prop<'a>)) {
        opt_str(f, id::REASON_STRING, &self.reason_string);
        users(f, &self.user_properties);
    }
}

impl PropertySet for SubscribeProperties {
    fn read_one(&mut self, id: u8, r: &mut Reader, packet: PacketType) -> Result<()> {
        match id {
            id::SUBSCRIPTION_IDENTIFIER => once(
                &mut self.subscription_identifier,
                id,
                subscription_identifier(r)?,
            ),
            id::USER_PROPERTY => {
                self.user_properties.push(user_property(r)?);
                Ok(())
            }
            other => not_allowed(other, packet),
        }
    }

    fn visit<'a>(&'a self, f: &mut dyn FnMut(Prop<'a>)) {
        if let Some(sub_id) = self.subscription_identifier {
            f(Prop::VarInt(id::SUBSCRIPTION_IDENTIFIER, sub_id));
        }
        users(f, &self.user_properties);
    }
}

impl PropertySet for UnsubscribeProperties {
    fn read_one(&mut self, id: u8, r: &mut Reader, packet: PacketType) -> Result<()> {
        match id {
            id::USER_PROPERTY => {
                self.user_properties.push(user_property(r)?);
                Ok(())
            }
            other => not_allowed(other, packet),
        }
    }

    fn visit<'a>(&'a self, f: &mut dyn FnMut(Prop<'a>)) {
        users(f, &self.user_properties);
    }
}

impl PropertySet for DisconnectProperties {
    fn read_one(&mut self, id: u8, r: &mut Reader, packet: PacketType) -> Result<()> {
        match id {
            id::SESSION_EXPIRY_INTERVAL => once(&mut self.session_expiry_interval, id, r.u32()?),
            id::SERVER_REFERENCE => once(&mut self.server_reference, id, r.string()?),
            id::REASON_STRING => once(&mut self.reason_string, id, r.string()?),
            id::USER_PROPERTY => {
                self.user_properties.push(user_property(r)?);
                Ok(())
            }
            other => not_allowed(other, packet),
        }
    }

    fn visit<'a>(&'a self, f: &mut dyn FnMut(Prop<'a>)) {
        opt_u32(f, id::SESSION_EXPIRY_INTERVAL, self.session_expiry_interval);
        opt_str(f, id::SERVER_REFERENCE, &self.server_reference);
        opt_str(f, id::REASON_STRING, &self.reason_string);
        users(f, &self.user_properties);
    }
}

impl PropertySet for AuthProperties {
    fn read_one(&mut self, id: u8, r: &mut Reader, packet: PacketType) -> Result<()> {
        match id {
            id::AUTHENTICATION_METHOD => once(&mut self.authentication_method, id, r.string()?),
            id::AUTHENTICATION_DATA => once(&mut self.authentication_data, id, r.binary()?),
            id::REASON_STRING => once(&mut self.reason_string, id, r.string()?),
            id::USER_PROPERTY => {
                self.user_properties.push(user_property(r)?);
                Ok(())
            }
            other => not_allowed(other, packet),
        }
    }

    fn visit<'a>(&'a self, f: &mut dyn FnMut(Prop<'a>)) {
        opt_str(f, id::AUTHENTICATION_METHOD, &self.authentication_method);
        opt_bin(f, id::AUTHENTICATION_DATA, &self.authentication_data);
        opt_str(f, id::REASON_STRING, &self.reason_string);
        users(f, &self.user_properties);
    }
}

/// Wire size of user properties as [`crate::Limits::max_user_properties_bytes`]
/// counts them: identifier, both length prefixes, name and value.
pub(crate) fn user_properties_size(properties: &[(String, String)]) -> usize {
    properties
        .iter()
        .map(|(name, value)| 1 + 2 + name.len() + 2 + value.len())
        .sum()
}

// ---------------------------------------------------------------------------
// Encoding

/// One property to encode, borrowed from its struct.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Prop<'a> {
    Byte(u8, u8),
    U16(u8, u16),
    U32(u8, u32),
    VarInt(u8, u32),
    Str(u8, &'a str),
    Bin(u8, &'a [u8]),
    /// A user property (identifier 0x26).
    Pair(&'a str, &'a str),
}

fn opt_u16<'a>(f: &mut dyn FnMut(Prop<'a>), id: u8, value: Option<u16>) {
    if let Some(value) = value {
        f(Prop::U16(id, value));
    }
}

fn opt_u32<'a>(f: &mut dyn FnMut(Prop<'a>), id: u8, value: Option<u32>) {
    if let Some(value) = value {
        f(Prop::U32(id, value));
    }
}

fn opt_bool<'a>(f: &mut dyn FnMut(Prop<'a>), id: u8, value: Option<bool>) {
    if let Some(value) = value {
        f(Prop::Byte(id, u8::from(value)));
    }
}

fn opt_format<'a>(f: &mut dyn FnMut(Prop<'a>), value: Option<PayloadFormat>) {
    if let Some(value) = value {
        f(Prop::Byte(id::PAYLOAD_FORMAT_INDICATOR, value as u8));
    }
}

fn opt_str<'a>(f: &mut dyn FnMut(Prop<'a>), id: u8, value: &'a Option<String>) {
    if let Some(value) = value {
        f(Prop::Str(id, value));
    }
}

fn opt_bin<'a>(f: &mut dyn FnMut(Prop<'a>), id: u8, value: &'a Option<Bytes>) {
    if let Some(value) = value {
        f(Prop::Bin(id, value));
    }
}

fn users<'a>(f: &mut dyn FnMut(Prop<'a>), properties: &'a [(String, String)]) {
    for (name, value) in properties {
        f(Prop::Pair(name, value));
    }
}

/// How much optional diagnostic information to leave out to fit a packet
/// into the receiver's Maximum Packet Size (MQTT-3.2.2-19/20 and kin).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Trim {
    Nothing,
    ReasonString,
    ReasonStringAndUserProperties,
}

impl Prop<'_> {
    fn id(&self) -> u8 {
        match *self {
            Prop::Byte(id, _)
            | Prop::U16(id, _)
            | Prop::U32(id, _)
            | Prop::VarInt(id, _)
            | Prop::Str(id, _)
            | Prop::Bin(id, _) => id,
            Prop::Pair(..) => id::USER_PROPERTY,
        }
    }

    fn kept(&self, trim: Trim) -> bool {
        match self.id() {
            id::REASON_STRING => trim == Trim::Nothing,
            id::USER_PROPERTY => trim < Trim::ReasonStringAndUserProperties,
            _ => true,
        }
    }

    /// Encoded size, identifier included, after checking the value is one
    /// the receiver accepts.
    fn len(&self) -> std::result::Result<usize, EncodeError> {
        let invalid = |field| Err(EncodeError::InvalidValue { field });
        Ok(1 + match *self {
            Prop::Byte(id::MAXIMUM_QOS, value) if value > 1 => return invalid("Maximum QoS"),
            Prop::Byte(_, _) => 1,
            Prop::U16(id::RECEIVE_MAXIMUM, 0) => return invalid("Receive Maximum"),
            Prop::U16(id::TOPIC_ALIAS, 0) => return invalid("Topic Alias"),
            Prop::U16(_, _) => 2,
            Prop::U32(id::MAXIMUM_PACKET_SIZE, 0) => return invalid("Maximum Packet Size"),
            Prop::U32(_, _) => 4,
            Prop::VarInt(_, value) if value == 0 || value > MAX_REMAINING_LENGTH => {
                return invalid("Subscription Identifier")
            }
            Prop::VarInt(_, value) => var_int_len(value),
            Prop::Str(id, text) => string_len(property_name(id), text)?,
            Prop::Bin(id, data) => binary_len(property_name(id), data)?,
            Prop::Pair(name, value) => {
                string_len("User Property name", name)? + string_len("User Property value", value)?
            }
        })
    }

    fn write(&self, buf: &mut BytesMut) {
        buf.put_u8(self.id());
        match *self {
            Prop::Byte(_, value) => buf.put_u8(value),
            Prop::U16(_, value) => buf.put_u16(value),
            Prop::U32(_, value) => buf.put_u32(value),
            Prop::VarInt(_, value) => put_var_int(buf, value),
            Prop::Str(_, text) => put_string(buf, text),
            Prop::Bin(_, data) => put_binary(buf, data),
            Prop::Pair(name, value) => {
                put_string(buf, name);
                put_string(buf, value);
            }
        }
    }
}

fn property_name(id: u8) -> &'static str {
    match id {
        id::CONTENT_TYPE => "Content Type",
        id::RESPONSE_TOPIC => "Response Topic",
        id::CORRELATION_DATA => "Correlation Data",
        id::ASSIGNED_CLIENT_IDENTIFIER => "Assigned Client Identifier",
        id::AUTHENTICATION_METHOD => "Authentication Method",
        id::AUTHENTICATION_DATA => "Authentication Data",
        id::RESPONSE_INFORMATION => "Response Information",
        id::SERVER_REFERENCE => "Server Reference",
        id::REASON_STRING => "Reason String",
        _ => "property",
    }
}

/// Size of the properties' content (without the Property Length), after
/// checking every value.
pub(crate) fn content_len<P: PropertySet>(
    props: &P,
    trim: Trim,
) -> std::result::Result<usize, EncodeError> {
    let mut total = 0usize;
    let mut failure = None;
    props.visit(&mut |prop| {
        if failure.is_none() && prop.kept(trim) {
            match prop.len() {
                Ok(len) => total += len,
                Err(e) => failure = Some(e),
            }
        }
    });
    match failure {
        Some(e) => Err(e),
        None => Ok(total),
    }
}

/// Size of a whole property block: Property Length and content.
pub(crate) fn block_len(content_len: usize) -> usize {
    var_int_len(content_len.min(MAX_REMAINING_LENGTH as usize) as u32) + content_len
}

/// Writes a property block whose content size `content_len` computed.
pub(crate) fn write_block<P: PropertySet>(
    props: &P,
    trim: Trim,
    content_len: usize,
    buf: &mut BytesMut,
) {
    put_var_int(buf, content_len as u32);
    props.visit(&mut |prop| {
        if prop.kept(trim) {
            prop.write(buf);
        }
    });
}
