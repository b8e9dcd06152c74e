//! Properties that must hold for every packet and every input: round trips
//! in both versions and both directions, framing (prefixes, exact
//! consumption, early size refusal), and no panic on any bytes.

use bytes::{Bytes, BytesMut};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use roost_mqtt::{
    decode, decode_from_server, encode, AckProperties, Auth, AuthProperties, ConnAck,
    ConnAckProperties, Connect, ConnectProperties, DecodeErrorKind, Disconnect,
    DisconnectProperties, Limits, Packet, PacketType, PayloadFormat, ProtocolVersion, PubAck,
    PubComp, PubRec, PubRel, Publish, PublishProperties, QoS, ReasonCode, RetainHandling, SubAck,
    Subscribe, SubscribeProperties, SubscriptionOptions, UnsubAck, Unsubscribe,
    UnsubscribeProperties, Will, WillProperties, MAX_REMAINING_LENGTH,
};

use ProtocolVersion::{V311, V5};

fn protocol() -> impl Strategy<Value = ProtocolVersion> {
    prop_oneof![Just(V311), Just(V5)]
}

/// Any text MQTT allows: no U+0000 (Rust strings hold no surrogates).
fn text() -> impl Strategy<Value = String> {
    "[^\u{0}]{0,12}"
}

fn topic_name() -> impl Strategy<Value = String> {
    "[^\u{0}+#]{1,12}"
}

fn topic_filter(shared: bool) -> impl Strategy<Value = String> {
    let level = prop_oneof![Just("+".to_owned()), "[^\u{0}+#/]{0,6}"];
    let tail = prop_oneof![Just(""), Just("/#")];
    let prefix = if shared {
        prop_oneof![Just(String::new()), "\\$share/[a-z]{1,4}/"].boxed()
    } else {
        Just(String::new()).boxed()
    };
    (prefix, vec(level, 1..4), tail, any::<bool>()).prop_map(|(prefix, levels, tail, only_hash)| {
        if only_hash {
            return format!("{prefix}#");
        }
        let inner = format!("{}{tail}", levels.join("/"));
        // A filter is at least one character long.
        let inner = if inner.is_empty() {
            "x".to_owned()
        } else {
            inner
        };
        format!("{prefix}{inner}")
    })
}

fn data() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..24).prop_map(Bytes::from)
}

fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

fn packet_id() -> impl Strategy<Value = u16> {
    1..=u16::MAX
}

fn users(protocol: ProtocolVersion) -> BoxedStrategy<Vec<(String, String)>> {
    match protocol {
        V5 => vec((text(), text()), 0..3).boxed(),
        V311 => Just(Vec::new()).boxed(),
    }
}

fn reason_in(packet: PacketType) -> impl Strategy<Value = ReasonCode> {
    let codes: Vec<ReasonCode> = ReasonCode::all()
        .iter()
        .copied()
        .filter(|code| code.allowed_in(packet))
        .collect();
    proptest::sample::select(codes)
}

fn format() -> impl Strategy<Value = Option<PayloadFormat>> {
    option::of(prop_oneof![
        Just(PayloadFormat::Unspecified),
        Just(PayloadFormat::Utf8)
    ])
}

/// Picks the MQTT 5 value, or the empty one for 3.1.1.
fn v5_only<T: Default + Clone + std::fmt::Debug + 'static>(
    protocol: ProtocolVersion,
    strategy: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<T> {
    match protocol {
        V5 => strategy.boxed(),
        V311 => Just(T::default()).boxed(),
    }
}

fn ack_properties(protocol: ProtocolVersion) -> BoxedStrategy<AckProperties> {
    v5_only(
        protocol,
        (option::of(text()), users(V5)).prop_map(|(reason_string, user_properties)| {
            AckProperties {
                reason_string,
                user_properties,
            }
        }),
    )
}

fn ack_reason(protocol: ProtocolVersion, packet: PacketType) -> BoxedStrategy<ReasonCode> {
    match protocol {
        V5 => reason_in(packet).boxed(),
        V311 => Just(ReasonCode::Success).boxed(),
    }
}

fn will(protocol: ProtocolVersion) -> impl Strategy<Value = Will> {
    let properties = v5_only(
        protocol,
        (
            option::of(any::<u32>()),
            format(),
            option::of(any::<u32>()),
            option::of(text()),
            option::of(topic_name()),
            option::of(data()),
            users(V5),
        )
            .prop_map(
                |(delay, format, expiry, content_type, response_topic, correlation, users)| {
                    WillProperties {
                        will_delay_interval: delay,
                        payload_format_indicator: format,
                        message_expiry_interval: expiry,
                        content_type,
                        response_topic,
                        correlation_data: correlation,
                        user_properties: users,
                    }
                },
            ),
    );
    (topic_name(), data(), qos(), any::<bool>(), properties).prop_map(
        |(topic, payload, qos, retain, properties)| Will {
            topic,
            payload,
            qos,
            retain,
            properties,
        },
    )
}

fn connect(protocol: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let properties = v5_only(
        protocol,
        (
            option::of(any::<u32>()),
            option::of(1..=u16::MAX),
            option::of(1..=u32::MAX),
            option::of(any::<u16>()),
            option::of(any::<bool>()),
            option::of(any::<bool>()),
            users(V5),
            option::of((text(), option::of(data()))),
        )
            .prop_map(
                |(expiry, receive, max_size, alias_max, response, problem, users, auth)| {
                    let (method, auth_data) = match auth {
                        Some((method, data)) => (Some(method), data),
                        None => (None, None),
                    };
                    ConnectProperties {
                        session_expiry_interval: expiry,
                        receive_maximum: receive,
                        maximum_packet_size: max_size,
                        topic_alias_maximum: alias_max,
                        request_response_information: response,
                        request_problem_information: problem,
                        user_properties: users,
                        authentication_method: method,
                        authentication_data: auth_data,
                    }
                },
            ),
    );
    (
        any::<bool>(),
        any::<u16>(),
        "[^\u{0}]{1,12}",
        any::<bool>(),
        option::of(will(protocol)),
        option::of(text()),
        option::of(data()),
        properties,
    )
        .prop_map(
            move |(clean_start, keep_alive, id, empty_id, will, username, password, properties)| {
                // 3.1.1 allows an empty identifier only with Clean Session,
                // and a password only with a user name.
                let client_id = if empty_id && (clean_start || protocol == V5) {
                    String::new()
                } else {
                    id
                };
                let password = if protocol == V311 && username.is_none() {
                    None
                } else {
                    password
                };
                Packet::Connect(Connect {
                    protocol,
                    clean_start,
                    keep_alive,
                    client_id,
                    will,
                    username,
                    password,
                    properties,
                })
            },
        )
}

fn publish(protocol: ProtocolVersion, from_server: bool) -> impl Strategy<Value = Packet> {
    let subscription_ids = if from_server {
        vec(1..=MAX_REMAINING_LENGTH, 0..3).boxed()
    } else {
        Just(Vec::new()).boxed()
    };
    let properties = v5_only(
        protocol,
        (
            format(),
            option::of(any::<u32>()),
            option::of(text()),
            option::of(topic_name()),
            option::of(data()),
            subscription_ids,
            option::of(1..=u16::MAX),
            users(V5),
        )
            .prop_map(
                |(format, expiry, content_type, response, correlation, ids, alias, users)| {
                    PublishProperties {
                        payload_format_indicator: format,
                        message_expiry_interval: expiry,
                        content_type,
                        response_topic: response,
                        correlation_data: correlation,
                        subscription_identifiers: ids,
                        topic_alias: alias,
                        user_properties: users,
                    }
                },
            ),
    );
    (
        any::<bool>(),
        qos(),
        any::<bool>(),
        topic_name(),
        any::<bool>(),
        packet_id(),
        vec(any::<u8>(), 0..64),
        properties,
    )
        .prop_map(
            |(dup, qos, retain, topic, drop_topic, id, payload, properties)| {
                // With a topic alias, MQTT 5 may leave the topic name out.
                let topic = if drop_topic && properties.topic_alias.is_some() {
                    String::new()
                } else {
                    topic
                };
                let queued = qos != QoS::AtMostOnce;
                Packet::Publish(Publish {
                    dup: dup && queued,
                    qos,
                    retain,
                    topic,
                    packet_id: queued.then_some(id),
                    payload: Bytes::from(payload),
                    properties,
                })
            },
        )
}

fn acks(protocol: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let ack = |packet| {
        (
            packet_id(),
            ack_reason(protocol, packet),
            ack_properties(protocol),
        )
    };
    prop_oneof![
        ack(PacketType::PubAck).prop_map(|(packet_id, reason_code, properties)| {
            Packet::PubAck(PubAck {
                packet_id,
                reason_code,
                properties,
            })
        }),
        ack(PacketType::PubRec).prop_map(|(packet_id, reason_code, properties)| {
            Packet::PubRec(PubRec {
                packet_id,
                reason_code,
                properties,
            })
        }),
        ack(PacketType::PubRel).prop_map(|(packet_id, reason_code, properties)| {
            Packet::PubRel(PubRel {
                packet_id,
                reason_code,
                properties,
            })
        }),
        ack(PacketType::PubComp).prop_map(|(packet_id, reason_code, properties)| {
            Packet::PubComp(PubComp {
                packet_id,
                reason_code,
                properties,
            })
        }),
    ]
}

fn subscription_options(protocol: ProtocolVersion) -> BoxedStrategy<SubscriptionOptions> {
    match protocol {
        V311 => qos().prop_map(SubscriptionOptions::qos).boxed(),
        V5 => (
            qos(),
            any::<bool>(),
            any::<bool>(),
            prop_oneof![
                Just(RetainHandling::SendAtSubscribe),
                Just(RetainHandling::SendIfNewSubscription),
                Just(RetainHandling::DoNotSend)
            ],
        )
            .prop_map(
                |(qos, no_local, retain_as_published, retain_handling)| SubscriptionOptions {
                    qos,
                    no_local,
                    retain_as_published,
                    retain_handling,
                },
            )
            .boxed(),
    }
}

fn subscribe(protocol: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let properties = v5_only(
        protocol,
        (option::of(1..=MAX_REMAINING_LENGTH), users(V5)).prop_map(|(id, users)| {
            SubscribeProperties {
                subscription_identifier: id,
                user_properties: users,
            }
        }),
    );
    let shared = protocol == V5;
    let filter =
        (topic_filter(shared), subscription_options(protocol)).prop_map(|(filter, mut options)| {
            // No Local is a Protocol Error on a shared subscription.
            if filter.starts_with("$share/") {
                options.no_local = false;
            }
            (filter, options)
        });
    (packet_id(), vec(filter, 1..4), properties).prop_map(|(packet_id, filters, properties)| {
        Packet::Subscribe(Subscribe {
            packet_id,
            filters,
            properties,
        })
    })
}

fn unsubscribe(protocol: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let properties = v5_only(
        protocol,
        users(V5).prop_map(|users| UnsubscribeProperties {
            user_properties: users,
        }),
    );
    (
        packet_id(),
        vec(topic_filter(protocol == V5), 1..4),
        properties,
    )
        .prop_map(|(packet_id, filters, properties)| {
            Packet::Unsubscribe(Unsubscribe {
                packet_id,
                filters,
                properties,
            })
        })
}

fn disconnect(protocol: ProtocolVersion, from_server: bool) -> BoxedStrategy<Packet> {
    if protocol == V311 {
        return Just(Packet::Disconnect(Disconnect::new(ReasonCode::Success))).boxed();
    }
    let expiry = if from_server {
        Just(None).boxed()
    } else {
        option::of(any::<u32>()).boxed()
    };
    (
        reason_in(PacketType::Disconnect),
        expiry,
        option::of(text()),
        users(V5),
        option::of(text()),
    )
        .prop_map(|(reason_code, expiry, reason, users, reference)| {
            Packet::Disconnect(Disconnect {
                reason_code,
                properties: DisconnectProperties {
                    session_expiry_interval: expiry,
                    reason_string: reason,
                    user_properties: users,
                    server_reference: reference,
                },
            })
        })
        .boxed()
}

fn auth() -> impl Strategy<Value = Packet> {
    (
        reason_in(PacketType::Auth),
        text(),
        option::of(data()),
        option::of(text()),
        users(V5),
    )
        .prop_map(|(reason_code, method, data, reason, users)| {
            Packet::Auth(Auth {
                reason_code,
                properties: AuthProperties {
                    authentication_method: Some(method),
                    authentication_data: data,
                    reason_string: reason,
                    user_properties: users,
                },
            })
        })
}

fn connack(protocol: ProtocolVersion) -> BoxedStrategy<Packet> {
    let reason = match protocol {
        V5 => reason_in(PacketType::ConnAck).boxed(),
        V311 => (0u8..=5)
            .prop_map(|code| ReasonCode::from_connack_v311(code).unwrap())
            .boxed(),
    };
    let bool_opt = || option::of(any::<bool>());
    let properties = v5_only(
        protocol,
        (
            (
                option::of(any::<u32>()),
                option::of(1..=u16::MAX),
                option::of(prop_oneof![Just(QoS::AtMostOnce), Just(QoS::AtLeastOnce)]),
                bool_opt(),
                option::of(1..=u32::MAX),
                option::of(text()),
                option::of(any::<u16>()),
                option::of(text()),
            ),
            (
                users(V5),
                bool_opt(),
                bool_opt(),
                bool_opt(),
                option::of(any::<u16>()),
                option::of(text()),
                option::of(text()),
                option::of((text(), option::of(data()))),
            ),
        )
            .prop_map(|(a, b)| {
                let (expiry, receive, max_qos, retain, max_size, assigned, alias_max, reason) = a;
                let (users, wildcard, sub_ids, shared, keep_alive, info, reference, auth) = b;
                let (method, auth_data) = match auth {
                    Some((method, data)) => (Some(method), data),
                    None => (None, None),
                };
                ConnAckProperties {
                    session_expiry_interval: expiry,
                    receive_maximum: receive,
                    maximum_qos: max_qos,
                    retain_available: retain,
                    maximum_packet_size: max_size,
                    assigned_client_identifier: assigned,
                    topic_alias_maximum: alias_max,
                    reason_string: reason,
                    user_properties: users,
                    wildcard_subscription_available: wildcard,
                    subscription_identifiers_available: sub_ids,
                    shared_subscription_available: shared,
                    server_keep_alive: keep_alive,
                    response_information: info,
                    server_reference: reference,
                    authentication_method: method,
                    authentication_data: auth_data,
                }
            }),
    );
    (any::<bool>(), reason, properties)
        .prop_map(|(present, reason_code, properties)| {
            Packet::ConnAck(ConnAck {
                session_present: present && !reason_code.is_error(),
                reason_code,
                properties,
            })
        })
        .boxed()
}

fn suback(protocol: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let reason = match protocol {
        V5 => reason_in(PacketType::SubAck).boxed(),
        V311 => proptest::sample::select(vec![
            ReasonCode::Success,
            ReasonCode::GrantedQoS1,
            ReasonCode::GrantedQoS2,
            ReasonCode::UnspecifiedError,
        ])
        .boxed(),
    };
    (packet_id(), vec(reason, 1..5), ack_properties(protocol)).prop_map(
        |(packet_id, reason_codes, properties)| {
            Packet::SubAck(SubAck {
                packet_id,
                reason_codes,
                properties,
            })
        },
    )
}

fn unsuback(protocol: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let codes = v5_only(protocol, vec(reason_in(PacketType::UnsubAck), 1..5));
    (packet_id(), codes, ack_properties(protocol)).prop_map(
        |(packet_id, reason_codes, properties)| {
            Packet::UnsubAck(UnsubAck {
                packet_id,
                reason_codes,
                properties,
            })
        },
    )
}

/// Packets a client sends once connected (not CONNECT).
fn client_packet(protocol: ProtocolVersion) -> BoxedStrategy<Packet> {
    let common = prop_oneof![
        publish(protocol, false),
        acks(protocol),
        subscribe(protocol),
        unsubscribe(protocol),
        Just(Packet::PingReq),
        disconnect(protocol, false),
    ];
    match protocol {
        V5 => prop_oneof![5 => common, 1 => auth()].boxed(),
        V311 => common.boxed(),
    }
}

fn server_packet(protocol: ProtocolVersion) -> BoxedStrategy<Packet> {
    let common = prop_oneof![
        connack(protocol),
        publish(protocol, true),
        acks(protocol),
        suback(protocol),
        unsuback(protocol),
        Just(Packet::PingResp),
    ];
    match protocol {
        V5 => prop_oneof![4 => common, 1 => disconnect(V5, true), 1 => auth()].boxed(),
        V311 => common.boxed(),
    }
}

/// A packet, who sends it, and the version: everything `check_round_trip` needs.
#[derive(Debug, Clone)]
struct Case {
    protocol: ProtocolVersion,
    from_server: bool,
    packet: Packet,
}

impl Case {
    /// The `protocol` argument decoding this packet takes.
    fn state(&self) -> Option<ProtocolVersion> {
        match self.packet {
            Packet::Connect(_) => None,
            _ => Some(self.protocol),
        }
    }

    fn decode(&self, buf: &mut BytesMut) -> Result<Option<Packet>, roost_mqtt::DecodeError> {
        let limits = Limits::default();
        if self.from_server {
            decode_from_server(buf, self.protocol, &limits)
        } else {
            decode(buf, self.state(), &limits)
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut buf = BytesMut::new();
        encode(&self.packet, self.protocol, &mut buf).expect("generated packets encode");
        buf.to_vec()
    }
}

fn case() -> impl Strategy<Value = Case> {
    protocol().prop_flat_map(|protocol| {
        prop_oneof![
            1 => connect(protocol).prop_map(move |packet| Case { protocol, from_server: false, packet }),
            4 => client_packet(protocol).prop_map(move |packet| Case { protocol, from_server: false, packet }),
            4 => server_packet(protocol).prop_map(move |packet| Case { protocol, from_server: true, packet }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn encode_then_decode_gives_the_packet_back(case in case()) {
        let bytes = case.bytes();
        let mut buf = BytesMut::from(&bytes[..]);
        let decoded = case.decode(&mut buf);
        prop_assert_eq!(decoded, Ok(Some(case.packet.clone())));
        prop_assert!(buf.is_empty());
        prop_assert_eq!(roost_mqtt::encoded_len(&case.packet, case.protocol), Ok(bytes.len()));
    }

    #[test]
    fn every_strict_prefix_asks_for_more(case in case()) {
        let bytes = case.bytes();
        for cut in 0..bytes.len() {
            let mut buf = BytesMut::from(&bytes[..cut]);
            prop_assert_eq!(case.decode(&mut buf), Ok(None), "cut at {}", cut);
            prop_assert_eq!(&buf[..], &bytes[..cut]);
        }
    }

    #[test]
    fn decoding_consumes_exactly_one_packet(
        case in case(),
        next in protocol().prop_flat_map(client_packet),
        trailing in vec(any::<u8>(), 0..8),
    ) {
        let first = case.bytes();
        let mut second = BytesMut::new();
        // Encoded for the first packet's version; only the bytes matter here.
        if encode(&next, case.protocol, &mut second).is_err() {
            return Ok(());
        }
        let mut stream = first.clone();
        stream.extend_from_slice(&second);
        stream.extend_from_slice(&trailing);
        let mut buf = BytesMut::from(&stream[..]);
        prop_assert_eq!(case.decode(&mut buf), Ok(Some(case.packet.clone())));
        prop_assert_eq!(&buf[..], &stream[first.len()..]);
    }

    #[test]
    fn announcing_too_large_a_packet_fails_on_the_header_alone(
        state in prop_oneof![Just(None), Just(Some(V311)), Just(Some(V5))],
        first_byte in prop_oneof![Just(0x30u8), Just(0x32), Just(0x82), Just(0x40), Just(0xe0)],
        remaining in prop_oneof![
            0u32..=MAX_REMAINING_LENGTH,
            // Around the values where the length grows a byte.
            (1u32..4, 0u32..3).prop_map(|(k, d)| 128u32.pow(k) + d),
        ],
        max_far in 2u32..2_000_000,
        near in any::<bool>(),
        slack in -4i64..4,
    ) {
        let first_byte = if state.is_none() { 0x10 } else { first_byte };

        let mut header = vec![first_byte];
        let mut value = remaining;
        loop {
            let mut byte = (value % 128) as u8;
            value /= 128;
            if value > 0 {
                byte |= 0x80;
            }
            header.push(byte);
            if value == 0 {
                break;
            }
        }
        let total = header.len() as u64 + u64::from(remaining);
        // Half the time the limit sits right around the packet's size.
        let max = if near {
            (total as i64 + slack).clamp(2, i64::from(u32::MAX)) as u32
        } else {
            max_far
        };
        let limits = Limits { max_packet_size: max, ..Limits::default() };
        let mut buf = BytesMut::from(&header[..]);
        let result = decode(&mut buf, state, &limits);
        if total > u64::from(max) {
            let refused_for_size = matches!(
                result.as_ref().map_err(|e| e.kind()),
                Err(DecodeErrorKind::PacketTooLarge { .. })
            );
            prop_assert!(refused_for_size, "{:?}", result);
        } else {
            let refused_for_size = matches!(
                result.as_ref().map_err(|e| e.kind()),
                Err(DecodeErrorKind::PacketTooLarge { .. })
            );
            prop_assert!(!refused_for_size, "{:?}", result);
        }
        // Shorter pieces of the header: wait, or already refuse for size.
        for cut in 1..header.len() {
            let mut buf = BytesMut::from(&header[..cut]);
            match decode(&mut buf, state, &limits) {
                Ok(None) => {}
                Err(e) => {
                    let early = matches!(e.kind(), DecodeErrorKind::PacketTooLarge { .. });
                    prop_assert!(early && total > u64::from(max), "{:?}", e);
                }
                Ok(Some(p)) => prop_assert!(false, "decoded {:?}", p),
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in vec(any::<u8>(), 0..256),
        state in prop_oneof![Just(None), Just(Some(V311)), Just(Some(V5))],
    ) {
        let limits = Limits::default();
        let mut buf = BytesMut::from(&bytes[..]);
        while let Ok(Some(_)) = decode(&mut buf, state, &limits) {}
        for protocol in [V311, V5] {
            let mut buf = BytesMut::from(&bytes[..]);
            while let Ok(Some(_)) = decode_from_server(&mut buf, protocol, &limits) {}
        }
    }

    #[test]
    fn damaged_packets_never_panic_and_what_decodes_re_encodes(
        case in case(),
        damage in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = case.bytes();
        for (index, value) in damage {
            let at = index.index(bytes.len());
            bytes[at] = value;
        }
        let mut buf = BytesMut::from(&bytes[..]);
        if let Ok(Some(packet)) = case.decode(&mut buf) {
            // Whatever is accepted can be sent back and reads the same.
            let mut again = BytesMut::new();
            let protocol = match &packet {
                Packet::Connect(connect) => connect.protocol,
                _ => case.protocol,
            };
            encode(&packet, protocol, &mut again).expect("a decoded packet encodes");
            let reread = if case.from_server {
                decode_from_server(&mut again, protocol, &Limits::default())
            } else {
                decode(&mut again, case.state(), &Limits::default())
            };
            prop_assert_eq!(reread, Ok(Some(packet)));
        }
    }
}
