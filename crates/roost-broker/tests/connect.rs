//! Every way a connection is refused before it is served, seen on the wire:
//! the CONNACK reason code (MQTT 5) or return code (3.1.1) the gateway
//! answers with, or the close without an answer, and the counter each
//! refusal moves. Each refusal is checked against an accepted CONNECT that
//! differs only in what is refused.

use bytes::BytesMut;
use roost_broker::Profile;
use roost_testkit::mqtt::{Packet, ProtocolVersion, QoS, ReasonCode};
use roost_testkit::{connect_packet, will, Client, Gateway};
use serde_json::json;
use std::time::Duration;

const BOTH: [ProtocolVersion; 2] = [ProtocolVersion::V311, ProtocolVersion::V5];

/// The 3.1.1 return code a 3.1.1 client read, or the MQTT 5 reason code.
fn wire_code(protocol: ProtocolVersion, reason: ReasonCode) -> u8 {
    match protocol {
        ProtocolVersion::V311 => reason.connack_v311().expect("a 3.1.1 return code"),
        ProtocolVersion::V5 => reason.as_u8(),
    }
}

/// Only `client/<allowed>` may connect; publishing (wills too) only to `allowed/…`.
fn connect_only(allowed: &str) -> serde_json::Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "iot:Connect",
             "Resource": format!("arn:aws:iot:us-east-1:000000000000:client/{allowed}")},
            {"Effect": "Allow", "Action": "iot:Publish",
             "Resource": format!("arn:aws:iot:us-east-1:000000000000:topic/{allowed}/*")}
        ]
    })
}

/// A CONNECT as bytes, for tests that break it.
fn encoded(connect: roost_testkit::mqtt::Connect) -> BytesMut {
    let protocol = connect.protocol;
    let mut buf = BytesMut::new();
    roost_testkit::mqtt::encode(&Packet::Connect(connect), protocol, &mut buf).unwrap();
    buf
}

/// Sends `connect`, expects a refusing CONNACK with `reason`, then the close.
async fn refused(client: &mut Client, connect: roost_testkit::mqtt::Connect, reason: ReasonCode) {
    let protocol = connect.protocol;
    let connack = client.mqtt_connect(connect).await;
    assert_eq!(
        wire_code(protocol, connack.reason_code),
        wire_code(protocol, reason),
        "{protocol}: {connack:?}"
    );
    assert!(!connack.session_present);
    assert_eq!(client.expect_closed().await, vec![], "{protocol}");
}

/// Sends a CONNECT the codec refuses: MQTT 5 gets a CONNACK with `reason`;
/// 3.1.1, which has no return code for it, is closed without an answer.
async fn refused_by_the_codec(
    client: &mut Client,
    protocol: ProtocolVersion,
    bytes: &[u8],
    reason: ReasonCode,
) {
    client.set_protocol(protocol);
    client.send_raw(bytes).await.unwrap();
    let answered = client.expect_closed().await;
    match protocol {
        ProtocolVersion::V311 => assert_eq!(answered, vec![]),
        ProtocolVersion::V5 => {
            let [Packet::ConnAck(connack)] = &answered[..] else {
                panic!("expected one CONNACK, got {answered:?}");
            };
            assert_eq!(connack.reason_code, reason);
        }
    }
}

#[tokio::test]
async fn connect_denied_by_policy_is_not_authorized() {
    let gateway = Gateway::start().await;
    let device = gateway
        .device_with_policy("sensor", &connect_only("sensor"))
        .await;
    for protocol in BOTH {
        let mut client = Client::connect(&gateway, &device).await;
        refused(
            &mut client,
            connect_packet(protocol, "someone-else"),
            ReasonCode::NotAuthorized,
        )
        .await;
        // The control: the client id the policy names is let in.
        Client::connected(&gateway, &device, protocol, "sensor").await;
    }
    assert_eq!(gateway.metrics().connects_refused, 2);
}

#[tokio::test]
async fn persistent_connect_needs_the_connect_attribute() {
    // iot:ConnectAttributes must allow PersistentConnect for a persistent session.
    let gateway = Gateway::start().await;
    let policy = json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "iot:*", "Resource": "*"},
            {"Effect": "Deny", "Action": "iot:Connect", "Resource": "*",
             "Condition": {"ForAnyValue:StringEquals": {"iot:ConnectAttributes": ["PersistentConnect"]}}}
        ]
    });
    let device = gateway.device_with_policy("clean-only", &policy).await;
    for protocol in BOTH {
        let mut client = Client::connect(&gateway, &device).await;
        let mut connect = connect_packet(protocol, "clean-only");
        connect.clean_start = false;
        connect.properties.session_expiry_interval = Some(600);
        refused(&mut client, connect, ReasonCode::NotAuthorized).await;
        Client::connected(&gateway, &device, protocol, "clean-only").await;
    }
}

#[tokio::test]
async fn unknown_inactive_and_revoked_certificates_get_no_connack() {
    let gateway = Gateway::start().await;
    let unknown = gateway.unregistered_device();
    let inactive = gateway.device("inactive").await;
    gateway.set_certificate_status(&inactive, "INACTIVE").await;
    let revoked = gateway.device("revoked").await;
    gateway.set_certificate_status(&revoked, "REVOKED").await;
    for (i, device) in [&unknown, &inactive, &revoked].into_iter().enumerate() {
        for protocol in BOTH {
            // The handshake itself succeeds (trust is the registry's
            // decision, made right after it); then nothing but the close.
            let mut client = Client::connect(&gateway, device).await;
            let _ = client
                .try_send(&Packet::Connect(connect_packet(protocol, "anyone")))
                .await;
            assert_eq!(
                client.expect_closed().await,
                vec![],
                "device {i}, {protocol}"
            );
        }
    }
    assert_eq!(gateway.metrics().certificates_refused, 6);
    assert_eq!(gateway.metrics().connections_current, 0);

    // The control: the same certificate, ACTIVE again, is let in.
    gateway.set_certificate_status(&inactive, "ACTIVE").await;
    Client::connected(&gateway, &inactive, ProtocolVersion::V311, "inactive").await;
}

#[tokio::test]
async fn bad_client_ids_are_identifier_rejected() {
    let gateway = Gateway::start().await;
    let device = gateway.device("ids").await;

    // 3.1.1 in the aws profile: an empty client id is refused (return code 2).
    let mut client = Client::connect(&gateway, &device).await;
    refused(
        &mut client,
        connect_packet(ProtocolVersion::V311, ""),
        ReasonCode::ClientIdentifierNotValid,
    )
    .await;
    // MQTT 5: the server assigns one.
    let mut client = Client::connect(&gateway, &device).await;
    let connack = client
        .mqtt_connect(connect_packet(ProtocolVersion::V5, ""))
        .await;
    assert_eq!(connack.reason_code, ReasonCode::Success);
    assert!(connack.properties.assigned_client_identifier.is_some());

    // Longer than AWS's 128 bytes: refused by the codec, both versions.
    for protocol in BOTH {
        let mut client = Client::connect(&gateway, &device).await;
        refused(
            &mut client,
            connect_packet(protocol, &"x".repeat(129)),
            ReasonCode::ClientIdentifierNotValid,
        )
        .await;
        Client::connected(&gateway, &device, protocol, &"x".repeat(128)).await;
    }
}

#[tokio::test]
async fn unsupported_protocol_levels_are_refused_in_the_3_1_1_form() {
    let gateway = Gateway::start().await;
    let device = gateway.device("levels").await;
    // MQTT 3.1 ("MQIsdp", level 3) and an unknown level 6: CONNACK return
    // code 1 (unacceptable protocol version), which every version reads.
    let mqisdp: &[u8] = &[
        0x10, 0x14, 0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', 0x03, 0x02, 0x00, 0x3c, 0x00,
        0x06, b'l', b'e', b'g', b'a', b'c', b'y',
    ];
    let mut level6 = encoded(connect_packet(ProtocolVersion::V311, "future"));
    level6[8] = 6;
    for bytes in [mqisdp, &level6[..]] {
        let mut client = Client::connect(&gateway, &device).await;
        client.send_raw(bytes).await.unwrap();
        match client.recv().await {
            Packet::ConnAck(connack) => {
                assert_eq!(connack.reason_code, ReasonCode::UnsupportedProtocolVersion)
            }
            other => panic!("expected CONNACK 1, got {other:?}"),
        }
        assert_eq!(client.expect_closed().await, vec![]);
    }
    assert_eq!(gateway.metrics().protocol_errors, 2);
}

#[tokio::test]
async fn a_first_packet_other_than_connect_is_closed_without_answer() {
    let gateway = Gateway::start().await;
    let device = gateway.device("eager").await;
    let pingreq: &[u8] = &[0xC0, 0x00];
    let publish: &[u8] = &[0x30, 0x05, 0x00, 0x01, b't', b'h', b'i'];
    for bytes in [pingreq, publish] {
        let mut client = Client::connect(&gateway, &device).await;
        client.send_raw(bytes).await.unwrap();
        assert_eq!(client.expect_closed().await, vec![]);
    }
    assert_eq!(gateway.metrics().protocol_errors, 2);
    assert_eq!(gateway.metrics().connections_current, 0);
}

#[tokio::test]
async fn a_malformed_connect_is_refused() {
    let gateway = Gateway::start().await;
    let device = gateway.device("malformed").await;
    for protocol in BOTH {
        // The reserved bit of the connect flags set (MQTT-3.1.2-3).
        let mut bytes = encoded(connect_packet(protocol, "malformed"));
        bytes[9] |= 0x01;
        let mut client = Client::connect(&gateway, &device).await;
        refused_by_the_codec(&mut client, protocol, &bytes, ReasonCode::MalformedPacket).await;
    }
    assert_eq!(gateway.metrics().protocol_errors, 2);
}

#[tokio::test]
async fn a_will_the_policy_does_not_allow_is_refused() {
    let gateway = Gateway::start().await;
    let device = gateway
        .device_with_policy("willing", &connect_only("willing"))
        .await;
    for protocol in BOTH {
        let mut connect = connect_packet(protocol, "willing");
        connect.will = Some(will("elsewhere/gone", QoS::AtLeastOnce));
        let mut client = Client::connect(&gateway, &device).await;
        refused(&mut client, connect, ReasonCode::NotAuthorized).await;
        // The control: a will on a topic the policy allows.
        let mut connect = connect_packet(protocol, "willing");
        connect.will = Some(will("willing/gone", QoS::AtLeastOnce));
        let mut client = Client::connect(&gateway, &device).await;
        assert_eq!(
            client.mqtt_connect(connect).await.reason_code,
            ReasonCode::Success
        );
    }
}

#[tokio::test]
async fn invalid_wills_are_refused() {
    let gateway = Gateway::start().await;
    let device = gateway.device("bad-will").await;
    // Decided by the gateway: MQTT 5 says why; 3.1.1 has only "not
    // authorized" for it. Nine levels are past AWS's eight.
    let cases = [
        (
            will("1/2/3/4/5/6/7/8/9", QoS::AtLeastOnce),
            ReasonCode::TopicNameInvalid,
        ),
        (will("a/b", QoS::ExactlyOnce), ReasonCode::QoSNotSupported),
    ];
    for (will, reason) in cases {
        for protocol in BOTH {
            let mut connect = connect_packet(protocol, "bad-will");
            connect.will = Some(will.clone());
            let mut client = Client::connect(&gateway, &device).await;
            let expected = match protocol {
                ProtocolVersion::V5 => reason,
                ProtocolVersion::V311 => ReasonCode::NotAuthorized,
            };
            refused(&mut client, connect, expected).await;
        }
    }
    assert_eq!(gateway.metrics().connects_refused, 4);

    // A wildcard in the will topic breaks the protocol itself (the codec
    // refuses it): MQTT 5 CONNACK 0x82, 3.1.1 closed without an answer.
    for protocol in BOTH {
        let mut connect = connect_packet(protocol, "bad-will");
        connect.will = Some(will("a/+", QoS::AtLeastOnce));
        let mut client = Client::connect(&gateway, &device).await;
        let bytes = encoded(connect);
        refused_by_the_codec(&mut client, protocol, &bytes, ReasonCode::ProtocolError).await;
    }
    assert_eq!(gateway.metrics().protocol_errors, 2);
}

#[tokio::test]
async fn the_full_profile_takes_a_qos_2_will() {
    // The control for the aws profile's refusal above.
    let gateway = Gateway::builder().profile(Profile::Full).start().await;
    let device = gateway.device("qos2-will").await;
    let mut connect = connect_packet(ProtocolVersion::V5, "qos2-will");
    connect.will = Some(will("a/b", QoS::ExactlyOnce));
    let mut client = Client::connect(&gateway, &device).await;
    assert_eq!(
        client.mqtt_connect(connect).await.reason_code,
        ReasonCode::Success
    );
}

#[tokio::test]
async fn no_connect_in_time_is_closed() {
    let gateway = Gateway::builder()
        .limits(|l| l.connect_timeout = Duration::from_millis(200))
        .start()
        .await;
    let device = gateway.device("silent").await;
    let mut client = Client::connect(&gateway, &device).await;
    assert_eq!(client.expect_closed().await, vec![]);
    assert_eq!(gateway.metrics().connect_timeouts, 1);
}

#[tokio::test]
async fn past_the_connection_cap_a_connection_is_closed_at_once() {
    let gateway = Gateway::builder().max_connections(1).start().await;
    let device = gateway.device("crowd").await;
    let mut first = Client::connected(&gateway, &device, ProtocolVersion::V5, "first").await;
    // Closed as soon as it is accepted: the handshake cannot complete, or
    // if the client thinks it did, nothing follows but the close.
    if let Ok(mut second) = Client::try_connect(&gateway, &device).await {
        let _ = second
            .try_send(&Packet::Connect(connect_packet(
                ProtocolVersion::V5,
                "second",
            )))
            .await;
        assert_eq!(second.expect_closed().await, vec![]);
    }
    assert_eq!(
        gateway
            .mqtt_listener()
            .refused_capacity
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    // The first is still served.
    first.send(&Packet::PingReq).await;
    assert_eq!(first.recv().await, Packet::PingResp);
}
