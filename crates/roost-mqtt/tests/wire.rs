//! Byte-exact checks against packets laid out in the OASIS specifications'
//! examples and against what the AWS IoT device SDKs, paho and mosquitto
//! send (shapes recorded in the project's notes on real clients).

use bytes::{Bytes, BytesMut};
use roost_mqtt::{
    decode, decode_from_server, encode, encode_with_limit, AckProperties, ConnAck,
    ConnAckProperties, Disconnect, EncodeError, Limits, Packet, PayloadFormat, ProtocolVersion,
    PubAck, Publish, PublishProperties, QoS, ReasonCode, RetainHandling, SubAck, Subscribe,
    SubscriptionOptions, UnsubAck, Unsubscribe,
};

use ProtocolVersion::{V311, V5};

fn hex(text: &str) -> Vec<u8> {
    text.split_whitespace()
        .map(|byte| u8::from_str_radix(byte, 16).expect("hex byte"))
        .collect()
}

/// Decodes `bytes` as sent by a client, checking all of it is consumed.
fn from_client(bytes: &[u8], protocol: Option<ProtocolVersion>) -> Packet {
    let mut buf = BytesMut::from(bytes);
    let packet = decode(&mut buf, protocol, &Limits::default())
        .expect("valid packet")
        .expect("complete packet");
    assert!(buf.is_empty(), "{} bytes left", buf.len());
    packet
}

fn from_server(bytes: &[u8], protocol: ProtocolVersion) -> Packet {
    let mut buf = BytesMut::from(bytes);
    let packet = decode_from_server(&mut buf, protocol, &Limits::default())
        .expect("valid packet")
        .expect("complete packet");
    assert!(buf.is_empty(), "{} bytes left", buf.len());
    packet
}

fn encoded(packet: &Packet, protocol: ProtocolVersion) -> Vec<u8> {
    let mut buf = BytesMut::new();
    encode(packet, protocol, &mut buf).expect("encodable");
    buf.to_vec()
}

fn connect_of(packet: Packet) -> roost_mqtt::Connect {
    match packet {
        Packet::Connect(connect) => connect,
        other => panic!("not a CONNECT: {other:?}"),
    }
}

const CRT_USERNAME_V5: &str = "?SDK=IoTDeviceSDK/Python&Platform=Unix&Metadata=(CRTVersion=0.36.1;IoTSDKVersion=1.31.0;IoTSDKFeature=F/5,G/A,I/A;IoTSDKMetricsVersion=1)";

#[test]
fn awscrt_mqtt5_connect_without_properties() {
    // Level 5, clean start, keep alive 1200, Property Length 0, the SDK's
    // metrics user name and no password.
    let mut bytes = hex("10 9e 01 00 04 4d 51 54 54 05 82 04 b0 00 00 06 74 68 69 6e 67 31 00 89");
    bytes.extend_from_slice(CRT_USERNAME_V5.as_bytes());

    let connect = connect_of(from_client(&bytes, None));
    assert_eq!(connect.protocol, V5);
    assert!(connect.clean_start);
    assert_eq!(connect.keep_alive, 1200);
    assert_eq!(connect.client_id, "thing1");
    assert_eq!(connect.username.as_deref(), Some(CRT_USERNAME_V5));
    assert_eq!(connect.password, None);
    assert_eq!(connect.will, None);
    assert_eq!(connect.properties, Default::default());

    assert_eq!(encoded(&Packet::Connect(connect), V5), bytes);
}

#[test]
fn awscrt_mqtt311_connect_keeps_the_session() {
    // Level 4, Clean Session 0 (the awscrt default), keep alive 1200.
    let username = CRT_USERNAME_V5.replace("F/5", "F/3");
    let mut bytes = hex("10 9d 01 00 04 4d 51 54 54 04 80 04 b0 00 06 74 68 69 6e 67 31 00 89");
    bytes.extend_from_slice(username.as_bytes());

    let connect = connect_of(from_client(&bytes, None));
    assert_eq!(connect.protocol, V311);
    assert!(!connect.clean_start);
    assert_eq!(connect.username.as_deref(), Some(username.as_str()));
    assert_eq!(encoded(&Packet::Connect(connect), V311), bytes);
}

#[test]
fn aws_python_sdk_v1_connect_with_metrics_username_and_no_password() {
    let bytes = hex(
        "10 32 00 04 4d 51 54 54 04 82 02 58 00 0b 62 61 73 69 63 50 75 62 53 75 62 \
         00 19 3f 53 44 4b 3d 50 79 74 68 6f 6e 26 56 65 72 73 69 6f 6e 3d 31 2e 36 2e 32",
    );
    let connect = connect_of(from_client(&bytes, None));
    assert_eq!(connect.protocol, V311);
    assert!(connect.clean_start);
    assert_eq!(connect.keep_alive, 600);
    assert_eq!(connect.client_id, "basicPubSub");
    assert_eq!(
        connect.username.as_deref(),
        Some("?SDK=Python&Version=1.6.2")
    );
    assert_eq!(connect.password, None);
    assert_eq!(encoded(&Packet::Connect(connect), V311), bytes);
}

#[test]
fn spec_connect_examples_with_will_user_name_and_password() {
    // Figure 3-6 of MQTT 5.0 (flags 0xCE: user name, password, will QoS 1,
    // will, clean start; keep alive 10; Session Expiry Interval 10), with a
    // small payload appended.
    let v5 = hex(
        "10 23 00 04 4d 51 54 54 05 ce 00 0a 05 11 00 00 00 0a 00 02 63 31 \
         00 00 01 77 00 03 62 79 65 00 01 75 00 01 70",
    );
    let connect = connect_of(from_client(&v5, None));
    assert_eq!(connect.properties.session_expiry_interval, Some(10));
    let will = connect.will.clone().expect("will");
    assert_eq!((will.topic.as_str(), &will.payload[..]), ("w", &b"bye"[..]));
    assert_eq!((will.qos, will.retain), (QoS::AtLeastOnce, false));
    assert_eq!(connect.username.as_deref(), Some("u"));
    assert_eq!(connect.password.as_deref(), Some(&b"p"[..]));
    assert_eq!(encoded(&Packet::Connect(connect), V5), v5);

    // The same in 3.1.1 (its Figure 3.6 variable header), no properties.
    let v311 = hex(
        "10 1c 00 04 4d 51 54 54 04 ce 00 0a 00 02 63 31 00 01 77 00 03 62 79 65 00 01 75 00 01 70",
    );
    let connect = connect_of(from_client(&v311, None));
    assert_eq!(connect.protocol, V311);
    assert_eq!(encoded(&Packet::Connect(connect), V311), v311);
}

#[test]
fn bare_connack_is_what_a_default_connack_encodes_to() {
    let success = Packet::ConnAck(ConnAck {
        session_present: false,
        reason_code: ReasonCode::Success,
        properties: ConnAckProperties::default(),
    });
    assert_eq!(encoded(&success, V5), hex("20 03 00 00 00"));
    assert_eq!(from_server(&hex("20 03 00 00 00"), V5), success);
    assert_eq!(encoded(&success, V311), hex("20 02 00 00"));
    assert_eq!(from_server(&hex("20 02 00 00"), V311), success);

    let resumed = Packet::ConnAck(ConnAck {
        session_present: true,
        reason_code: ReasonCode::Success,
        properties: ConnAckProperties::default(),
    });
    assert_eq!(encoded(&resumed, V311), hex("20 02 01 00"));

    let refused = Packet::ConnAck(ConnAck {
        session_present: false,
        reason_code: ReasonCode::NotAuthorized,
        properties: ConnAckProperties::default(),
    });
    assert_eq!(encoded(&refused, V5), hex("20 03 00 87 00"));
    assert_eq!(encoded(&refused, V311), hex("20 02 00 05"));
}

#[test]
fn aws_profile_connack_properties() {
    let connack = Packet::ConnAck(ConnAck {
        session_present: false,
        reason_code: ReasonCode::Success,
        properties: ConnAckProperties {
            receive_maximum: Some(100),
            topic_alias_maximum: Some(8),
            maximum_qos: Some(QoS::AtLeastOnce),
            retain_available: Some(true),
            maximum_packet_size: Some(147_456),
            wildcard_subscription_available: Some(true),
            subscription_identifiers_available: Some(false),
            shared_subscription_available: Some(true),
            ..ConnAckProperties::default()
        },
    });
    let bytes =
        hex("20 18 00 00 15 21 00 64 22 00 08 24 01 25 01 27 00 02 40 00 28 01 29 00 2a 01");
    assert_eq!(encoded(&connack, V5), bytes);
    assert_eq!(from_server(&bytes, V5), connack);
    // None of it exists in 3.1.1.
    assert_eq!(encoded(&connack, V311), hex("20 02 00 00"));
}

#[test]
fn mosquitto_sub_subscribe() {
    // mosquitto_sub -t 'test/#' -q 1: first message id 1.
    let v311 = hex("82 0b 00 01 00 06 74 65 73 74 2f 23 01");
    let expected = Packet::Subscribe(Subscribe {
        packet_id: 1,
        filters: vec![(
            "test/#".to_owned(),
            SubscriptionOptions::qos(QoS::AtLeastOnce),
        )],
        properties: Default::default(),
    });
    assert_eq!(from_client(&v311, Some(V311)), expected);
    assert_eq!(encoded(&expected, V311), v311);

    // The same with -V mqttv5: an empty property block after the id.
    let v5 = hex("82 0c 00 01 00 00 06 74 65 73 74 2f 23 01");
    assert_eq!(from_client(&v5, Some(V5)), expected);
    assert_eq!(encoded(&expected, V5), v5);
}

#[test]
fn v5_subscription_options_bits() {
    // No Local, Retain As Published, Retain Handling 2, QoS 1: 0b0010_1101.
    let bytes = hex("82 09 00 05 00 00 03 61 2f 62 2d");
    let Packet::Subscribe(subscribe) = from_client(&bytes, Some(V5)) else {
        panic!("not a SUBSCRIBE");
    };
    let options = subscribe.filters[0].1;
    assert_eq!(options.qos, QoS::AtLeastOnce);
    assert!(options.no_local && options.retain_as_published);
    assert_eq!(options.retain_handling, RetainHandling::DoNotSend);
    assert_eq!(encoded(&Packet::Subscribe(subscribe), V5), bytes);
}

#[test]
fn spec_subscribe_unsubscribe_and_acks() {
    // Figure 3.21 / 3.30 payloads: "a/b" QoS 1 and "c/d" QoS 2, packet id 10.
    let subscribe = hex("82 0e 00 0a 00 03 61 2f 62 01 00 03 63 2f 64 02");
    let packet = from_client(&subscribe, Some(V311));
    assert_eq!(encoded(&packet, V311), subscribe);

    let unsubscribe = hex("a2 0c 00 0a 00 03 61 2f 62 00 03 63 2f 64");
    let expected = Packet::Unsubscribe(Unsubscribe {
        packet_id: 10,
        filters: vec!["a/b".to_owned(), "c/d".to_owned()],
        properties: Default::default(),
    });
    assert_eq!(from_client(&unsubscribe, Some(V311)), expected);
    assert_eq!(encoded(&expected, V311), unsubscribe);

    let suback = Packet::SubAck(SubAck {
        packet_id: 10,
        reason_codes: vec![ReasonCode::GrantedQoS1, ReasonCode::NotAuthorized],
        properties: AckProperties::default(),
    });
    assert_eq!(encoded(&suback, V5), hex("90 05 00 0a 00 01 87"));
    // 3.1.1 has one failure code for every refusal.
    assert_eq!(encoded(&suback, V311), hex("90 04 00 0a 01 80"));

    let unsuback = Packet::UnsubAck(UnsubAck {
        packet_id: 10,
        reason_codes: vec![ReasonCode::Success, ReasonCode::NoSubscriptionExisted],
        properties: AckProperties::default(),
    });
    assert_eq!(encoded(&unsuback, V5), hex("b0 05 00 0a 00 00 11"));
    assert_eq!(encoded(&unsuback, V311), hex("b0 02 00 0a"));

    assert_eq!(encoded(&Packet::PingResp, V5), hex("d0 00"));
    assert_eq!(from_client(&hex("c0 00"), Some(V311)), Packet::PingReq);
}

#[test]
fn spec_publish_variable_header_example() {
    // Figure 3-9 of MQTT 5.0: topic "a/b", packet id 10, no properties.
    let bytes = hex("32 08 00 03 61 2f 62 00 0a 00");
    let expected = Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: "a/b".to_owned(),
        packet_id: Some(10),
        payload: Bytes::new(),
        properties: PublishProperties::default(),
    });
    assert_eq!(from_client(&bytes, Some(V5)), expected);
    assert_eq!(encoded(&expected, V5), bytes);
    assert_eq!(encoded(&expected, V311), hex("32 07 00 03 61 2f 62 00 0a"));
}

#[test]
fn paho_style_v5_publish_with_properties() {
    // QoS 1 PUBLISH with the request/response properties paho exposes,
    // laid out as the specification describes (properties in ascending
    // identifier order, which is also the order this codec writes).
    let bytes = hex("32 59 00 0c 73 65 6e 73 6f 72 73 2f 74 65 6d 70 00 01 3e \
         01 01 \
         02 00 00 00 3c \
         03 00 10 61 70 70 6c 69 63 61 74 69 6f 6e 2f 6a 73 6f 6e \
         08 00 09 72 65 70 6c 69 65 73 2f 31 \
         09 00 06 72 65 71 2d 34 32 \
         26 00 06 6f 72 69 67 69 6e 00 04 70 61 68 6f \
         7b 22 74 22 3a 32 31 2e 35 7d");
    let Packet::Publish(publish) = from_client(&bytes, Some(V5)) else {
        panic!("not a PUBLISH");
    };
    assert_eq!(publish.topic, "sensors/temp");
    assert_eq!(publish.packet_id, Some(1));
    assert_eq!(&publish.payload[..], br#"{"t":21.5}"#);
    let p = &publish.properties;
    assert_eq!(p.payload_format_indicator, Some(PayloadFormat::Utf8));
    assert_eq!(p.message_expiry_interval, Some(60));
    assert_eq!(p.content_type.as_deref(), Some("application/json"));
    assert_eq!(p.response_topic.as_deref(), Some("replies/1"));
    assert_eq!(p.correlation_data.as_deref(), Some(&b"req-42"[..]));
    assert_eq!(
        p.user_properties,
        vec![("origin".to_owned(), "paho".to_owned())]
    );
    assert_eq!(encoded(&Packet::Publish(publish.clone()), V5), bytes);

    // For a 3.1.1 subscriber the properties are dropped.
    let mut plain = publish;
    let v311 = encoded(&Packet::Publish(plain.clone()), V311);
    plain.properties = PublishProperties::default();
    assert_eq!(v311, encoded(&Packet::Publish(plain), V311));
    assert_eq!(v311[1] as usize, 2 + 12 + 2 + 10);
}

#[test]
fn disconnect_forms() {
    let normal = Packet::Disconnect(Disconnect::new(ReasonCode::NORMAL_DISCONNECTION));
    // awscrt's client.stop(DisconnectPacket()): reason 0 and an empty
    // property block, which the shortest form leaves out.
    assert_eq!(from_client(&hex("e0 02 00 00"), Some(V5)), normal);
    assert_eq!(from_client(&hex("e0 01 00"), Some(V5)), normal);
    assert_eq!(from_client(&hex("e0 00"), Some(V5)), normal);
    assert_eq!(from_client(&hex("e0 00"), Some(V311)), normal);
    assert_eq!(encoded(&normal, V5), hex("e0 00"));
    assert_eq!(encoded(&normal, V311), hex("e0 00"));

    let taken_over = Packet::Disconnect(Disconnect::new(ReasonCode::SessionTakenOver));
    assert_eq!(encoded(&taken_over, V5), hex("e0 01 8e"));
    assert_eq!(from_server(&hex("e0 01 8e"), V5), taken_over);
}

#[test]
fn ack_forms() {
    let puback = |reason_code| {
        Packet::PubAck(PubAck {
            packet_id: 10,
            reason_code,
            properties: AckProperties::default(),
        })
    };
    assert_eq!(
        encoded(&puback(ReasonCode::Success), V5),
        hex("40 02 00 0a")
    );
    assert_eq!(
        encoded(&puback(ReasonCode::NoMatchingSubscribers), V5),
        hex("40 03 00 0a 10")
    );
    assert_eq!(
        from_client(&hex("40 04 00 0a 10 00"), Some(V5)),
        puback(ReasonCode::NoMatchingSubscribers)
    );
    // 3.1.1 has no reason codes on acknowledgements.
    assert_eq!(
        encoded(&puback(ReasonCode::NotAuthorized), V311),
        hex("40 02 00 0a")
    );
    assert_eq!(
        from_client(&hex("62 02 00 0a"), Some(V311)),
        Packet::PubRel(roost_mqtt::PubRel {
            packet_id: 10,
            reason_code: ReasonCode::Success,
            properties: AckProperties::default(),
        })
    );
}

#[test]
fn diagnostics_are_shed_to_fit_the_clients_maximum_packet_size() {
    let puback = Packet::PubAck(PubAck {
        packet_id: 10,
        reason_code: ReasonCode::NotAuthorized,
        properties: AckProperties {
            reason_string: Some("not allowed by policy".repeat(4)),
            user_properties: vec![("k".to_owned(), "v".to_owned())],
        },
    });
    let full = encoded(&puback, V5).len();

    let mut buf = BytesMut::new();
    encode_with_limit(&puback, V5, full as u32, &mut buf).unwrap();
    assert_eq!(buf.len(), full);

    // Room for the user property but not the reason string.
    buf.clear();
    encode_with_limit(&puback, V5, 20, &mut buf).unwrap();
    assert_eq!(&buf[..], &hex("40 0b 00 0a 87 07 26 00 01 6b 00 01 76")[..]);

    // Room for neither.
    buf.clear();
    encode_with_limit(&puback, V5, 5, &mut buf).unwrap();
    assert_eq!(&buf[..], &hex("40 03 00 0a 87")[..]);

    // A PUBLISH is never altered: it is refused, and nothing is written.
    let publish = Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: false,
        topic: "t".to_owned(),
        packet_id: None,
        payload: Bytes::from(vec![0u8; 100]),
        properties: PublishProperties::default(),
    });
    let mut buf = BytesMut::from(&b"before"[..]);
    let err = encode_with_limit(&publish, V5, 50, &mut buf).unwrap_err();
    assert!(matches!(
        err,
        EncodeError::PacketTooLarge {
            size: 106,
            max: 50,
            ..
        }
    ));
    assert_eq!(&buf[..], b"before");
}

#[test]
fn encoder_refuses_what_a_receiver_would_reject() {
    let mut buf = BytesMut::new();
    let auth = Packet::Auth(roost_mqtt::Auth {
        reason_code: ReasonCode::ContinueAuthentication,
        properties: roost_mqtt::AuthProperties {
            authentication_method: Some("SCRAM-SHA-1".to_owned()),
            ..Default::default()
        },
    });
    assert!(matches!(
        encode(&auth, V311, &mut buf),
        Err(EncodeError::NotInProtocol { .. })
    ));
    let bad_connack = Packet::ConnAck(ConnAck {
        session_present: false,
        reason_code: ReasonCode::MalformedPacket,
        properties: ConnAckProperties::default(),
    });
    assert_eq!(
        encode(&bad_connack, V311, &mut buf),
        Err(EncodeError::NoV311ConnAckCode(ReasonCode::MalformedPacket))
    );
    let wrong_reason = Packet::Disconnect(Disconnect::new(ReasonCode::GrantedQoS1));
    assert!(matches!(
        encode(&wrong_reason, V5, &mut buf),
        Err(EncodeError::ReasonCodeNotAllowed { .. })
    ));
    let no_id = Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: "t".to_owned(),
        packet_id: None,
        payload: Bytes::new(),
        properties: PublishProperties::default(),
    });
    assert!(matches!(
        encode(&no_id, V5, &mut buf),
        Err(EncodeError::PacketId { .. })
    ));
    let nul = Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: false,
        topic: "a\0b".to_owned(),
        packet_id: None,
        payload: Bytes::new(),
        properties: PublishProperties::default(),
    });
    assert!(matches!(
        encode(&nul, V5, &mut buf),
        Err(EncodeError::InvalidField { .. })
    ));
    assert!(buf.is_empty());
}
