//! Every validity rule of the specifications the decoder enforces, each
//! with the reason code and the answer a client gets.

use bytes::{Bytes, BytesMut};
use roost_mqtt::{
    decode, decode_from_server, encode, ClientIdProblem, ConnAck, Connect, ConnectProperties,
    DecodeError, DecodeErrorKind, Limits, Malformed, Packet, ProtocolVersion, ProtocolViolation,
    Publish, PublishProperties, QoS, ReasonCode, Will, WillProperties,
};

use ProtocolVersion::{V311, V5};

fn hex(text: &str) -> Vec<u8> {
    text.split_whitespace()
        .map(|byte| u8::from_str_radix(byte, 16).expect("hex byte"))
        .collect()
}

fn refuse_with(bytes: &[u8], protocol: Option<ProtocolVersion>, limits: &Limits) -> DecodeError {
    let mut buf = BytesMut::from(bytes);
    match decode(&mut buf, protocol, limits) {
        Err(e) => e,
        other => panic!("accepted {bytes:02x?}: {other:?}"),
    }
}

fn refuse(bytes: &[u8], protocol: Option<ProtocolVersion>) -> DecodeError {
    refuse_with(bytes, protocol, &Limits::default())
}

fn accept(bytes: &[u8], protocol: Option<ProtocolVersion>) -> Packet {
    let mut buf = BytesMut::from(bytes);
    let packet = decode(&mut buf, protocol, &Limits::default())
        .unwrap_or_else(|e| panic!("refused {bytes:02x?}: {e}"))
        .expect("complete");
    assert!(buf.is_empty());
    packet
}

fn code(bytes: &str, protocol: Option<ProtocolVersion>) -> u8 {
    refuse(&hex(bytes), protocol).reason_code().as_u8()
}

fn connect(protocol: ProtocolVersion) -> Connect {
    Connect {
        protocol,
        clean_start: true,
        keep_alive: 60,
        client_id: "c".to_owned(),
        will: None,
        username: None,
        password: None,
        properties: ConnectProperties::default(),
    }
}

fn bytes_of(packet: &Packet, protocol: ProtocolVersion) -> Vec<u8> {
    let mut buf = BytesMut::new();
    encode(packet, protocol, &mut buf).unwrap();
    buf.to_vec()
}

/// Offset of the CONNECT flags byte when the remaining length takes one byte.
const CONNECT_FLAGS: usize = 2 + 6 + 1;

#[test]
fn only_connect_first_and_only_once() {
    let e = refuse(&hex("30 05 00 03 61 2f 62"), None);
    assert_eq!(
        e.kind(),
        &ProtocolViolation::FirstPacketNotConnect(roost_mqtt::PacketType::Publish).into()
    );
    assert_eq!(e.reason_code(), ReasonCode::ProtocolError);
    assert_eq!(e.answer(), None);
    // Refused on the first byte: no need to wait for the rest.
    assert_eq!(code("30", None), 0x82);
    // TLS or HTTP on the plain port: refused at once.
    // (0x16 reads as a CONNECT with reserved flags set.)
    assert_eq!(code("16 03 01", None), 0x81);
    assert_eq!(code("47 45 54 20", None), 0x82);

    let second = bytes_of(&Packet::Connect(connect(V311)), V311);
    let e = refuse(&second, Some(V311));
    assert_eq!(e.kind(), &ProtocolViolation::SecondConnect.into());
    let second = bytes_of(&Packet::Connect(connect(V5)), V5);
    assert_eq!(
        refuse(&second, Some(V5)).reason_code(),
        ReasonCode::ProtocolError
    );
}

#[test]
fn packet_types_and_fixed_header_flags() {
    assert_eq!(code("00 00", Some(V5)), 0x81);
    // AUTH is reserved in 3.1.1.
    assert_eq!(code("f0 00", Some(V311)), 0x81);
    // Packets only a server sends.
    assert_eq!(code("20 02 00 00", Some(V311)), 0x82);
    assert_eq!(code("90 03 00 01 00", Some(V311)), 0x82);
    assert_eq!(code("d0 00", Some(V5)), 0x82);
    // Reserved flag bits.
    assert_eq!(code("41 02 00 01", Some(V5)), 0x81);
    assert_eq!(code("60 02 00 01", Some(V5)), 0x81);
    assert_eq!(code("80 06 00 01 00 01 61 00", Some(V311)), 0x81);
    assert_eq!(code("a0 05 00 01 00 01 61", Some(V311)), 0x81);
    assert_eq!(code("c1 00", Some(V311)), 0x81);
    assert_eq!(code("e2 00", Some(V5)), 0x81);
    // PUBLISH flags: QoS 3, DUP on QoS 0.
    assert_eq!(code("36 07 00 01 61 00 01", Some(V311)), 0x81);
    assert_eq!(code("38 03 00 01 61", Some(V311)), 0x81);
    // A packet a client sends, decoded as if from the server.
    let mut buf = BytesMut::from(&hex("82 06 00 01 00 01 61 00")[..]);
    let e = decode_from_server(&mut buf, V311, &Limits::default()).unwrap_err();
    assert_eq!(e.reason_code(), ReasonCode::ProtocolError);
}

#[test]
fn remaining_length_encoding() {
    // Five bytes of Remaining Length.
    assert_eq!(code("30 80 80 80 80 01", Some(V311)), 0x81);
    // Non-minimal: refused by MQTT 5, tolerated for 3.1.1.
    assert_eq!(code("30 83 00 00 01 61", Some(V5)), 0x81);
    assert!(matches!(
        accept(&hex("30 83 00 00 01 61"), Some(V311)),
        Packet::Publish(_)
    ));
}

#[test]
fn remaining_length_disagreeing_with_the_content() {
    // Longer than the content.
    assert_eq!(code("c0 01 00", Some(V311)), 0x81);
    assert_eq!(code("40 03 00 01 00", Some(V311)), 0x81);
    assert_eq!(code("e0 01 00", Some(V311)), 0x81);
    // Shorter than a field claims (topic length 5 in a 3-byte body).
    assert_eq!(code("30 03 00 05 61", Some(V311)), 0x81);
    // A property block longer than the packet.
    assert_eq!(code("30 05 00 01 61 09 01", Some(V5)), 0x81);
    // A CONNECT cut short.
    let mut short = bytes_of(&Packet::Connect(connect(V311)), V311);
    short[1] -= 1;
    short.pop();
    assert_eq!(
        refuse(&short, None).reason_code(),
        ReasonCode::MalformedPacket
    );
}

#[test]
fn strings_must_be_well_formed_utf8_without_nul() {
    assert_eq!(code("30 04 00 02 c3 28", Some(V311)), 0x81);
    assert_eq!(code("30 04 00 02 61 00", Some(V311)), 0x81);
    // A surrogate (U+D800) encoded as three bytes.
    assert_eq!(code("30 05 00 03 ed a0 80", Some(V5)), 0x81);
    let e = refuse(&hex("30 04 00 02 61 00"), Some(V5));
    assert_eq!(e.kind(), &Malformed::NullCharacter.into());
}

#[test]
fn topic_names() {
    assert_eq!(code("30 05 00 03 61 2f 23", Some(V311)), 0x82);
    assert_eq!(code("30 06 00 03 2b 2f 61 00", Some(V5)), 0x82);
    // Empty: never in 3.1.1, only with a topic alias in 5.0.
    assert_eq!(code("30 02 00 00", Some(V311)), 0x82);
    assert_eq!(code("30 03 00 00 00", Some(V5)), 0x82);
    let Packet::Publish(aliased) = accept(&hex("30 06 00 00 03 23 00 05"), Some(V5)) else {
        panic!("not a PUBLISH");
    };
    assert_eq!(aliased.topic, "");
    assert_eq!(aliased.properties.topic_alias, Some(5));
    // Topic alias 0.
    assert_eq!(code("30 07 00 01 61 03 23 00 00", Some(V5)), 0x94);

    let long = "a".repeat(257);
    let publish = Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: false,
        topic: long,
        packet_id: None,
        payload: Bytes::new(),
        properties: PublishProperties::default(),
    });
    let e = refuse(&bytes_of(&publish, V5), Some(V5));
    assert_eq!(e.reason_code(), ReasonCode::TopicNameInvalid);
    assert_eq!(
        e.answer().map(|(packet, _)| packet.packet_type()),
        Some(roost_mqtt::PacketType::Disconnect)
    );
    // The same for a 3.1.1 client: no answer, just the close.
    let e = refuse(&bytes_of(&publish, V311), Some(V311));
    assert_eq!(e.reason_code(), ReasonCode::TopicNameInvalid);
    assert_eq!(e.answer(), None);
}

#[test]
fn packet_identifiers_are_never_zero() {
    assert_eq!(code("32 05 00 01 61 00 00", Some(V311)), 0x82);
    assert_eq!(code("40 02 00 00", Some(V5)), 0x82);
    assert_eq!(code("82 06 00 00 00 01 61 00", Some(V311)), 0x82);
    assert_eq!(code("a2 05 00 00 00 01 61", Some(V311)), 0x82);
}

#[test]
fn subscribe_and_unsubscribe_payloads() {
    // No filter at all.
    assert_eq!(code("82 02 00 01", Some(V311)), 0x82);
    assert_eq!(code("82 03 00 01 00", Some(V5)), 0x82);
    assert_eq!(code("a2 02 00 01", Some(V311)), 0x82);
    // 3.1.1 requested QoS: reserved bits, QoS 3.
    assert_eq!(code("82 06 00 01 00 01 61 05", Some(V311)), 0x81);
    assert_eq!(code("82 06 00 01 00 01 61 03", Some(V311)), 0x81);
    // 5.0 options: QoS 3, Retain Handling 3, reserved bits.
    assert_eq!(code("82 07 00 01 00 00 01 61 03", Some(V5)), 0x82);
    assert_eq!(code("82 07 00 01 00 00 01 61 30", Some(V5)), 0x82);
    assert_eq!(code("82 07 00 01 00 00 01 61 40", Some(V5)), 0x81);
    // Wildcards that do not occupy a whole level.
    assert_eq!(
        code("82 0a 00 01 00 05 61 2f 23 2f 62 00", Some(V311)),
        0x82
    );
    assert_eq!(code("82 08 00 01 00 03 61 2b 62 00", Some(V311)), 0x82);
    assert_eq!(code("a2 07 00 01 00 03 61 23 62", Some(V311)), 0x82);
    // No Local on a shared subscription ($share/g/a).
    assert_eq!(
        code(
            "82 10 00 01 00 00 0a 24 73 68 61 72 65 2f 67 2f 61 04",
            Some(V5)
        ),
        0x82
    );
    // A shared subscription without a filter.
    assert_eq!(
        code("82 0e 00 01 00 00 08 24 73 68 61 72 65 2f 67 00", Some(V5)),
        0x82
    );
    // Too long a filter.
    let mut too_long = hex("82 86 02 00 01 01 01");
    too_long.extend(std::iter::repeat_n(b'a', 257));
    too_long.push(0);
    assert_eq!(
        refuse(&too_long, Some(V311)).kind(),
        &DecodeErrorKind::TopicFilterTooLong { len: 257, max: 256 }
    );
}

#[test]
fn property_rules() {
    // A property that may appear once, twice (Message Expiry Interval).
    assert_eq!(
        code("30 0e 00 01 61 0a 02 00 00 00 01 02 00 00 00 02", Some(V5)),
        0x82
    );
    // A property the packet may not carry (Session Expiry in PUBLISH).
    let e = refuse(&hex("30 09 00 01 61 05 11 00 00 00 01"), Some(V5));
    assert!(matches!(
        e.kind(),
        DecodeErrorKind::Malformed(Malformed::PropertyNotAllowed { id: 0x11, .. })
    ));
    // An identifier that does not exist.
    assert_eq!(code("30 06 00 01 61 02 7f 00", Some(V5)), 0x81);
    // A subscription identifier from a client.
    assert_eq!(code("30 06 00 01 61 02 0b 01", Some(V5)), 0x82);
    // Payload Format Indicator 2.
    assert_eq!(code("30 06 00 01 61 02 01 02", Some(V5)), 0x82);
    // A wildcard in a Response Topic.
    assert_eq!(code("30 09 00 01 61 05 08 00 02 61 23", Some(V5)), 0x82);
    // A property in an acknowledgement it may not carry (Topic Alias).
    assert_eq!(code("40 07 00 01 00 03 23 00 01", Some(V5)), 0x81);
    // SUBSCRIBE: subscription identifier 0.
    assert_eq!(code("82 08 00 01 02 0b 00 00 01 61 00", Some(V5)), 0x82);

    let mut props = ConnectProperties {
        receive_maximum: Some(1),
        ..Default::default()
    };
    let mut packet = Packet::Connect(Connect {
        properties: props.clone(),
        ..connect(V5)
    });
    let mut bytes = bytes_of(&packet, V5);
    // Receive Maximum 0: patch the value, the last two bytes of the block.
    let at = bytes.iter().position(|&b| b == 0x21).unwrap();
    bytes[at + 2] = 0;
    assert_eq!(
        refuse(&bytes, None).reason_code(),
        ReasonCode::ProtocolError
    );

    props.receive_maximum = None;
    props.authentication_data = Some(Bytes::from_static(b"x"));
    packet = Packet::Connect(Connect {
        properties: props,
        ..connect(V5)
    });
    let e = refuse(&bytes_of(&packet, V5), None);
    assert_eq!(e.kind(), &ProtocolViolation::AuthDataWithoutMethod.into());
}

#[test]
fn reason_codes_the_packet_may_not_carry() {
    assert_eq!(code("40 03 00 01 04", Some(V5)), 0x82);
    assert_eq!(code("e0 01 01", Some(V5)), 0x82);
    assert_eq!(code("f0 01 87", Some(V5)), 0x82);
    // AUTH must name its method.
    assert_eq!(code("f0 00", Some(V5)), 0x82);
    assert_eq!(code("f0 02 18 00", Some(V5)), 0x82);
}

#[test]
fn connect_flags() {
    let base = bytes_of(&Packet::Connect(connect(V311)), V311);
    let with_flags = |flags: u8| {
        let mut bytes = base.clone();
        bytes[CONNECT_FLAGS] = flags;
        bytes
    };
    // Reserved bit.
    assert_eq!(
        refuse(&with_flags(0x03), None).kind(),
        &Malformed::ConnectReservedFlag.into()
    );
    // Will QoS or will retain without a will.
    assert_eq!(
        refuse(&with_flags(0x0A), None).kind(),
        &Malformed::WillFlagsWithoutWill.into()
    );
    assert_eq!(
        refuse(&with_flags(0x22), None).kind(),
        &Malformed::WillFlagsWithoutWill.into()
    );

    let will = Packet::Connect(Connect {
        will: Some(Will {
            topic: "w".to_owned(),
            payload: Bytes::from_static(b"x"),
            qos: QoS::ExactlyOnce,
            retain: false,
            properties: WillProperties::default(),
        }),
        ..connect(V311)
    });
    let mut bytes = bytes_of(&will, V311);
    assert_eq!(bytes[CONNECT_FLAGS], 0x16);
    bytes[CONNECT_FLAGS] = 0x1E; // will QoS 3
    assert_eq!(refuse(&bytes, None).kind(), &Malformed::QoS3.into());

    // Password without user name: refused in 3.1.1, allowed in 5.0.
    let mut password = bytes_of(&Packet::Connect(connect(V311)), V311);
    password[CONNECT_FLAGS] |= 0x40;
    password[1] += 3;
    password.extend_from_slice(&[0, 1, b'p']);
    let e = refuse(&password, None);
    assert_eq!(e.kind(), &ProtocolViolation::PasswordWithoutUsername.into());
    assert_eq!(e.connack_v311(), None);

    let v5 = Packet::Connect(Connect {
        password: Some(Bytes::from_static(b"token")),
        ..connect(V5)
    });
    assert_eq!(accept(&bytes_of(&v5, V5), None), v5);
}

#[test]
fn unsupported_protocols_get_the_311_connack_code_1() {
    // MQTT 3.1: "MQIsdp", level 3.
    let mut v31 = hex("10 0f 00 06 4d 51 49 73 64 70 03 02 00 3c 00 01 63");
    let e = refuse(&v31, None);
    assert_eq!(e.reason_code(), ReasonCode::UnsupportedProtocolVersion);
    assert_eq!(e.connack_v311(), Some(1));
    let (answer, version) = e.answer().expect("a CONNACK");
    assert_eq!(version, V311);
    let mut buf = BytesMut::new();
    encode(&answer, version, &mut buf).unwrap();
    assert_eq!(&buf[..], &hex("20 02 00 01")[..]);

    // "MQTT" at a level that does not exist.
    let level6 = hex("10 0d 00 04 4d 51 54 54 06 02 00 3c 00 01 63");
    assert_eq!(refuse(&level6, None).connack_v311(), Some(1));

    // Not MQTT at all: no answer.
    v31[4] = b'X';
    let e = refuse(&v31, None);
    assert_eq!(e.reason_code(), ReasonCode::UnsupportedProtocolVersion);
    assert_eq!(e.answer(), None);
}

#[test]
fn client_identifiers() {
    let long = |protocol| {
        Packet::Connect(Connect {
            client_id: "x".repeat(129),
            ..connect(protocol)
        })
    };
    let e = refuse(&bytes_of(&long(V311), V311), None);
    assert_eq!(
        e.kind(),
        &DecodeErrorKind::ClientIdNotValid(ClientIdProblem::TooLong { len: 129, max: 128 })
    );
    assert_eq!(e.connack_v311(), Some(2));
    let (answer, version) = e.answer().unwrap();
    assert_eq!(version, V311);
    let mut buf = BytesMut::new();
    encode(&answer, version, &mut buf).unwrap();
    assert_eq!(&buf[..], &hex("20 02 00 02")[..]);

    let e = refuse(&bytes_of(&long(V5), V5), None);
    let (answer, version) = e.answer().unwrap();
    assert_eq!(version, V5);
    let Packet::ConnAck(ConnAck {
        reason_code,
        properties,
        ..
    }) = answer
    else {
        panic!("not a CONNACK");
    };
    assert_eq!(reason_code, ReasonCode::ClientIdentifierNotValid);
    assert!(properties.reason_string.unwrap().contains("129 bytes"));

    // Empty: 3.1.1 needs Clean Session; MQTT 5 leaves it to the server.
    let empty = |protocol, clean_start| {
        Packet::Connect(Connect {
            client_id: String::new(),
            clean_start,
            ..connect(protocol)
        })
    };
    assert_eq!(
        refuse(&bytes_of(&empty(V311, false), V311), None).connack_v311(),
        Some(2)
    );
    assert!(matches!(
        accept(&bytes_of(&empty(V311, true), V311), None),
        Packet::Connect(_)
    ));
    assert!(matches!(
        accept(&bytes_of(&empty(V5, false), V5), None),
        Packet::Connect(_)
    ));
}

#[test]
fn malformed_v5_connect_is_answered_with_a_v5_connack() {
    let mut bytes = bytes_of(&Packet::Connect(connect(V5)), V5);
    bytes[CONNECT_FLAGS] |= 0x01;
    let e = refuse(&bytes, None);
    assert_eq!(e.protocol(), Some(V5));
    let (answer, version) = e.answer().unwrap();
    assert_eq!(version, V5);
    let mut buf = BytesMut::new();
    encode(&answer, version, &mut buf).unwrap();
    assert_eq!((buf[0], buf[2], buf[3]), (0x20, 0x00, 0x81));
    // 3.1.1 has no code for a malformed CONNECT: close without a word.
    let mut bytes = bytes_of(&Packet::Connect(connect(V311)), V311);
    bytes[CONNECT_FLAGS] |= 0x01;
    assert_eq!(refuse(&bytes, None).answer(), None);
}

#[test]
fn size_limits() {
    let limits = Limits::default();
    let publish = |payload: usize| {
        Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic: "t".to_owned(),
            packet_id: Some(1),
            payload: Bytes::from(vec![b'x'; payload]),
            properties: PublishProperties::default(),
        })
    };
    assert!(matches!(
        accept(&bytes_of(&publish(128 * 1024), V311), Some(V311)),
        Packet::Publish(_)
    ));
    let e = refuse(&bytes_of(&publish(128 * 1024 + 1), V311), Some(V311));
    assert_eq!(e.reason_code(), ReasonCode::PacketTooLarge);

    // 8 KiB of user properties is the most.
    let users = |value_len: usize| {
        Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: "t".to_owned(),
            packet_id: None,
            payload: Bytes::new(),
            properties: PublishProperties {
                user_properties: vec![("k".to_owned(), "v".repeat(value_len))],
                ..Default::default()
            },
        })
    };
    // 1 + 2 + 1 + 2 + value
    assert!(matches!(
        accept(&bytes_of(&users(8192 - 6), V5), Some(V5)),
        Packet::Publish(_)
    ));
    let e = refuse(&bytes_of(&users(8192 - 5), V5), Some(V5));
    assert_eq!(e.reason_code(), ReasonCode::QuotaExceeded);

    // A whole packet above the limit, announced in the header.
    let e = refuse_with(&hex("30 ff ff ff 7f"), Some(V311), &limits);
    assert!(matches!(e.kind(), DecodeErrorKind::PacketTooLarge { .. }));
    // ... or certain to be, before the header is complete.
    assert_eq!(code("30 ff ff ff", Some(V311)), 0x95);
    assert_eq!(code("30 80 80 80", Some(V5)), 0x95);
    assert_eq!(code("10 ff ff 7f", None), 0x95);
}

#[test]
fn incomplete_packets_consume_nothing() {
    let packet = bytes_of(&Packet::Connect(connect(V5)), V5);
    for cut in 0..packet.len() {
        let mut buf = BytesMut::from(&packet[..cut]);
        assert_eq!(decode(&mut buf, None, &Limits::default()), Ok(None));
        assert_eq!(&buf[..], &packet[..cut]);
    }
}

#[test]
fn errors_after_connect() {
    // MQTT 5: DISCONNECT with the reason code and a reason string.
    let e = refuse(&hex("36 00"), Some(V5));
    let (answer, version) = e.answer().unwrap();
    assert_eq!(version, V5);
    let Packet::Disconnect(disconnect) = answer else {
        panic!("not a DISCONNECT");
    };
    assert_eq!(disconnect.reason_code, ReasonCode::MalformedPacket);
    assert_eq!(
        disconnect.properties.reason_string.as_deref(),
        Some("PUBLISH: malformed packet: QoS 3 is not a QoS")
    );
    assert_eq!(e.connack_v311(), None);
    // MQTT 3.1.1: nothing to say.
    assert_eq!(refuse(&hex("36 00"), Some(V311)).answer(), None);
}
