//! Session takeover: a second CONNECT with a client id already connected
//! closes the first connection (MQTT 5: DISCONNECT 0x8E Session taken
//! over), sends the first one's will, and either carries its persistent
//! session over (subscriptions, messages in flight again with DUP) or,
//! with a clean start, discards it.

use roost_testkit::mqtt::{Packet, ProtocolVersion, QoS, ReasonCode};
use roost_testkit::{connect_packet, persistent_connect, will, Client, Gateway};

const BOTH: [ProtocolVersion; 2] = [ProtocolVersion::V311, ProtocolVersion::V5];

#[tokio::test]
async fn the_old_connection_is_closed_and_told_why() {
    let gateway = Gateway::start().await;
    let device = gateway.device("twin").await;
    for protocol in BOTH {
        let client_id = format!("twin-{}", protocol.level());
        let mut old = Client::connected(&gateway, &device, protocol, &client_id).await;
        let mut new = Client::connect(&gateway, &device).await;
        let connack = new.mqtt_connect(connect_packet(protocol, &client_id)).await;
        assert_eq!(connack.reason_code, ReasonCode::Success);
        let told = old.expect_closed().await;
        match protocol {
            ProtocolVersion::V5 => assert_eq!(
                told,
                vec![Packet::Disconnect(roost_testkit::mqtt::Disconnect::new(
                    ReasonCode::SessionTakenOver
                ))]
            ),
            ProtocolVersion::V311 => assert_eq!(told, vec![]),
        }
        // The new one is served.
        new.send(&Packet::PingReq).await;
        assert_eq!(new.recv().await, Packet::PingResp);
    }
    assert_eq!(gateway.metrics().takeovers, 2);
}

#[tokio::test]
async fn the_old_connections_will_is_sent() {
    let gateway = Gateway::start().await;
    let device = gateway.device("dying").await;
    let mut watcher = Client::connected(&gateway, &device, ProtocolVersion::V5, "watcher").await;
    watcher.subscribe("wills/#", QoS::AtLeastOnce).await;
    for protocol in BOTH {
        let client_id = format!("dying-{}", protocol.level());
        let mut connect = connect_packet(protocol, &client_id);
        connect.will = Some(will(&format!("wills/{client_id}"), QoS::AtLeastOnce));
        let mut old = Client::connect(&gateway, &device).await;
        assert_eq!(
            old.mqtt_connect(connect).await.reason_code,
            ReasonCode::Success
        );
        Client::connected(&gateway, &device, protocol, &client_id).await;
        old.expect_closed().await;
        let sent = watcher.recv_publish().await;
        assert_eq!(sent.topic, format!("wills/{client_id}"));
        assert_eq!(&sent.payload[..], b"gone");
        watcher.puback(sent.packet_id.unwrap()).await;
    }
}

#[tokio::test]
async fn a_persistent_session_is_carried_over() {
    let gateway = Gateway::start().await;
    let device = gateway.device("carried").await;
    let mut publisher =
        Client::connected(&gateway, &device, ProtocolVersion::V5, "publisher").await;
    for protocol in BOTH {
        let client_id = format!("carried-{}", protocol.level());
        let topic = format!("carried/{}", protocol.level());
        let mut old = Client::connect(&gateway, &device).await;
        let connack = old
            .mqtt_connect(persistent_connect(protocol, &client_id))
            .await;
        assert!(!connack.session_present);
        old.subscribe(&topic, QoS::AtLeastOnce).await;
        // Delivered to the old connection and never acknowledged there.
        publisher.publish_acked(&topic, b"in flight").await;
        let first = old.recv_publish().await;
        assert!(!first.dup);

        let mut new = Client::connect(&gateway, &device).await;
        let connack = new
            .mqtt_connect(persistent_connect(protocol, &client_id))
            .await;
        assert_eq!(connack.reason_code, ReasonCode::Success);
        assert!(connack.session_present, "{protocol}");
        old.expect_closed().await;
        // What was in flight comes again, marked DUP ...
        let again = new.recv_publish().await;
        assert_eq!((&again.payload[..], again.dup), (&b"in flight"[..], true));
        new.puback(again.packet_id.unwrap()).await;
        // ... and the subscription goes on without a new SUBSCRIBE.
        publisher.publish_acked(&topic, b"after").await;
        let after = new.recv_publish().await;
        assert_eq!((&after.payload[..], after.dup), (&b"after"[..], false));
        new.puback(after.packet_id.unwrap()).await;
        // gateway.db says the same (the publisher's PUBACK waited for a
        // later commit than the takeover's).
        let saved = gateway.state().await.session(&client_id).await.unwrap();
        assert_eq!(saved.filters, vec![topic]);
        assert!(saved.connected);
    }
}

#[tokio::test]
async fn a_clean_start_discards_the_old_session() {
    let gateway = Gateway::start().await;
    let device = gateway.device("fresh").await;
    let mut publisher =
        Client::connected(&gateway, &device, ProtocolVersion::V5, "publisher").await;
    // A persistent session of its own: a QoS 1 publish to it is answered
    // once committed, and so is every change journaled before it.
    let mut barrier = Client::connect(&gateway, &device).await;
    barrier
        .mqtt_connect(persistent_connect(ProtocolVersion::V5, "barrier"))
        .await;
    barrier.subscribe("barrier", QoS::AtLeastOnce).await;
    for protocol in BOTH {
        let client_id = format!("fresh-{}", protocol.level());
        let topic = format!("fresh/{}", protocol.level());
        let mut old = Client::connect(&gateway, &device).await;
        old.mqtt_connect(persistent_connect(protocol, &client_id))
            .await;
        old.subscribe(&topic, QoS::AtLeastOnce).await;
        assert_eq!(
            publisher.publish_acked(&topic, b"kept?").await.reason_code,
            ReasonCode::Success
        );

        let mut new = Client::connect(&gateway, &device).await;
        let connack = new.mqtt_connect(connect_packet(protocol, &client_id)).await;
        assert_eq!(connack.reason_code, ReasonCode::Success);
        assert!(!connack.session_present, "{protocol}");
        old.expect_closed().await;
        // No subscription is left: an MQTT 5 publisher hears that nobody matched.
        assert_eq!(
            publisher.publish_acked(&topic, b"lost").await.reason_code,
            ReasonCode::NoMatchingSubscribers
        );
        // And the message that was in flight is gone with the session.
        new.send(&Packet::PingReq).await;
        assert_eq!(new.recv().await, Packet::PingResp);
    }
    publisher.publish_acked("barrier", b"sync").await;
    let state = gateway.state().await;
    assert!(state.messages("fresh-4").await.is_empty());
    assert!(state.messages("fresh-5").await.is_empty());
}
