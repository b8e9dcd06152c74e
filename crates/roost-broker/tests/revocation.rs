//! A certificate revoked, set INACTIVE, or its policy detached, at every
//! stage of a connection: during the TLS handshake, after it and before
//! CONNECT, at CONNECT, connected and idle, while publishing, while
//! subscribed, and on a kept-alive device HTTPS connection. docs/gateway.md promises: a certificate that leaves ACTIVE
//! has its connections closed at once (MQTT 5: DISCONNECT 0x87), whatever
//! their stage, with no will; the next action of a connection the close
//! has not reached yet is refused; a detached policy applies from the
//! connection's next action (CONNACK, PUBACK 0x87, deliveries skipped).
//!
//! "Not delivered" is shown by order: a marker published afterwards by
//! another device arrives, and nothing before it.

use roost_testkit::mqtt::{Disconnect, Packet, ProtocolVersion, QoS, ReasonCode};
use roost_testkit::{connect_packet, will, Client, Device, Gateway, HttpsClient};
use std::time::Duration;

const BOTH: [ProtocolVersion; 2] = [ProtocolVersion::V311, ProtocolVersion::V5];

/// The two ways a certificate leaves ACTIVE.
const LEAVING_ACTIVE: [&str; 2] = ["REVOKED", "INACTIVE"];

/// What a cut-off connection reads before the close: MQTT 5 is told why.
fn told_not_authorized(protocol: ProtocolVersion) -> Vec<Packet> {
    match protocol {
        ProtocolVersion::V5 => vec![Packet::Disconnect(Disconnect::new(
            ReasonCode::NotAuthorized,
        ))],
        ProtocolVersion::V311 => vec![],
    }
}

/// A second device, subscribed to `filter`, to see what gets through.
async fn observer(gateway: &Gateway, filter: &str) -> (Client, Device) {
    let device = gateway.device("observer").await;
    let mut client = Client::connected(gateway, &device, ProtocolVersion::V5, "observer").await;
    client.subscribe(filter, QoS::AtLeastOnce).await;
    (client, device)
}

/// The payload of the observer's next message (acknowledged).
async fn next_payload(observer: &mut Client) -> Vec<u8> {
    let publish = observer.recv_publish().await;
    observer.puback(publish.packet_id.unwrap()).await;
    publish.payload.to_vec()
}

/// Publishes `payload` to `topic` from a fresh connection of `device`.
async fn marker(gateway: &Gateway, device: &Device, topic: &str, payload: &[u8]) {
    let mut client = Client::connected(gateway, device, ProtocolVersion::V5, "marker").await;
    client.publish_acked(topic, payload).await;
}

#[tokio::test]
async fn leaving_active_during_the_handshake_is_refused() {
    let gateway = Gateway::start().await;
    for status in LEAVING_ACTIVE {
        for protocol in BOTH {
            let device = gateway
                .device(&format!("handshake-{status}-{}", protocol.level()))
                .await;
            let mut paused = Client::connect_paused(&gateway, &device).await;
            // The gateway has sent its certificate; ours has not left yet.
            paused.gateway_spoke().await;
            gateway.set_certificate_status(&device, status).await;
            // The client may think the handshake done; nothing follows but the close.
            if let Ok(mut client) = paused.resume().await {
                let _ = client
                    .try_send(&Packet::Connect(connect_packet(protocol, &device.thing)))
                    .await;
                assert_eq!(client.expect_closed().await, vec![], "{status} {protocol}");
            }
        }
    }
    assert_eq!(gateway.metrics().certificates_refused, 4);
    // The control: the same pause with an ACTIVE certificate connects.
    let device = gateway.device("handshake-control").await;
    let mut paused = Client::connect_paused(&gateway, &device).await;
    paused.gateway_spoke().await;
    let mut client = paused.resume().await.unwrap();
    let connack = client
        .mqtt_connect(connect_packet(ProtocolVersion::V5, "handshake-control"))
        .await;
    assert_eq!(connack.reason_code, ReasonCode::Success);
}

#[tokio::test]
async fn leaving_active_before_connect_closes_at_once() {
    // A CONNECT timeout far beyond the test's patience: only the
    // revocation can close these connections in time.
    let gateway = Gateway::builder()
        .limits(|l| l.connect_timeout = Duration::from_secs(600))
        .start()
        .await;
    for status in LEAVING_ACTIVE {
        let device = gateway.device(&format!("waiting-{status}")).await;
        let mut client = Client::connect(&gateway, &device).await;
        gateway.set_certificate_status(&device, status).await;
        assert_eq!(client.expect_closed().await, vec![], "{status}");
    }
    assert_eq!(gateway.metrics().connect_timeouts, 0);
}

#[tokio::test]
async fn a_connect_after_leaving_active_gets_no_connack() {
    let gateway = Gateway::start().await;
    for status in LEAVING_ACTIVE {
        for protocol in BOTH {
            let device = gateway
                .device(&format!("late-{status}-{}", protocol.level()))
                .await;
            let mut client = Client::connect(&gateway, &device).await;
            gateway.set_certificate_status(&device, status).await;
            // Whichever comes first, the close or the CONNECT, which reads
            // the certificate's status again: never a session.
            let _ = client
                .try_send(&Packet::Connect(connect_packet(protocol, &device.thing)))
                .await;
            let got = client.expect_closed().await;
            assert!(
                got.is_empty()
                    || matches!(&got[..], [Packet::ConnAck(c)] if c.reason_code == ReasonCode::NotAuthorized),
                "{status} {protocol}: {got:?}"
            );
        }
    }
    assert_eq!(gateway.metrics().connections_current, 0);
}

#[tokio::test]
async fn a_connect_after_the_policy_was_detached_is_not_authorized() {
    let gateway = Gateway::start().await;
    for protocol in BOTH {
        let device = gateway
            .device(&format!("unbound-{}", protocol.level()))
            .await;
        let mut client = Client::connect(&gateway, &device).await;
        gateway.detach_policy(&device).await;
        let connack = client
            .mqtt_connect(connect_packet(protocol, &device.thing))
            .await;
        assert_eq!(connack.reason_code, ReasonCode::NotAuthorized, "{protocol}");
        assert_eq!(client.expect_closed().await, vec![]);
    }
}

#[tokio::test]
async fn leaving_active_while_idle_closes_at_once_and_sends_no_will() {
    let gateway = Gateway::start().await;
    let (mut watcher, watcher_device) = observer(&gateway, "wills/#").await;
    for status in LEAVING_ACTIVE {
        for protocol in BOTH {
            let name = format!("idle-{status}-{}", protocol.level());
            let device = gateway.device(&name).await;
            let mut connect = connect_packet(protocol, &name);
            connect.will = Some(will(&format!("wills/{name}"), QoS::AtLeastOnce));
            let mut client = Client::connect(&gateway, &device).await;
            assert_eq!(
                client.mqtt_connect(connect).await.reason_code,
                ReasonCode::Success
            );
            gateway.set_certificate_status(&device, status).await;
            assert_eq!(client.expect_closed().await, told_not_authorized(protocol));
        }
    }
    gateway
        .wait_for_metrics(|m| m.kicked_certificate == 4)
        .await;
    // No will before the marker.
    marker(&gateway, &watcher_device, "wills/marker", b"marker").await;
    assert_eq!(next_payload(&mut watcher).await, b"marker");
}

#[tokio::test]
async fn a_policy_detached_while_idle_refuses_the_next_publish() {
    let gateway = Gateway::start().await;
    let (mut observer, observer_device) = observer(&gateway, "idle/#").await;
    for protocol in BOTH {
        let name = format!("idle-{}", protocol.level());
        let device = gateway.device(&name).await;
        let mut client = Client::connected(&gateway, &device, protocol, &name).await;
        gateway.detach_policy(&device).await;
        // Still connected ...
        client.send(&Packet::PingReq).await;
        assert_eq!(client.recv().await, Packet::PingResp);
        // ... but its next PUBLISH is refused: MQTT 5 PUBACK 0x87, 3.1.1 closed.
        let id = client
            .publish(&format!("idle/{name}"), b"refused", QoS::AtLeastOnce)
            .await;
        match protocol {
            ProtocolVersion::V5 => match client.recv().await {
                Packet::PubAck(ack) => {
                    assert_eq!(
                        (Some(ack.packet_id), ack.reason_code),
                        (id, ReasonCode::NotAuthorized)
                    )
                }
                other => panic!("expected PUBACK 0x87, got {other:?}"),
            },
            ProtocolVersion::V311 => assert_eq!(client.expect_closed().await, vec![]),
        }
    }
    assert_eq!(gateway.metrics().publish_denied, 2);
    marker(&gateway, &observer_device, "idle/marker", b"marker").await;
    assert_eq!(next_payload(&mut observer).await, b"marker");
}

#[tokio::test]
async fn leaving_active_while_publishing_stops_what_follows() {
    let gateway = Gateway::start().await;
    let (mut observer, observer_device) = observer(&gateway, "stream/#").await;
    for status in LEAVING_ACTIVE {
        for protocol in BOTH {
            let name = format!("stream-{status}-{}", protocol.level());
            let topic = format!("stream/{name}");
            let device = gateway.device(&name).await;
            let mut client = Client::connected(&gateway, &device, protocol, &name).await;
            for i in 0..3u8 {
                client.publish_acked(&topic, &[i]).await;
            }
            gateway.set_certificate_status(&device, status).await;
            // The stream goes on as if nothing happened (writes may fail
            // once the gateway has closed the connection).
            for i in 3..6u8 {
                let publish = client.publish_packet(&topic, &[i], QoS::AtLeastOnce);
                let _ = client.try_send(&Packet::Publish(publish)).await;
            }
            assert_eq!(client.expect_closed().await, told_not_authorized(protocol));
            for i in 0..3u8 {
                assert_eq!(next_payload(&mut observer).await, vec![i]);
            }
        }
    }
    // Nothing sent after the change got through.
    marker(&gateway, &observer_device, "stream/marker", b"marker").await;
    assert_eq!(next_payload(&mut observer).await, b"marker");
}

#[tokio::test]
async fn leaving_active_while_subscribed_cuts_the_subscriber() {
    let gateway = Gateway::start().await;
    let publisher_device = gateway.device("source").await;
    let mut publisher =
        Client::connected(&gateway, &publisher_device, ProtocolVersion::V5, "source").await;
    for status in LEAVING_ACTIVE {
        for protocol in BOTH {
            let name = format!("listener-{status}-{}", protocol.level());
            let topic = format!("feed/{name}");
            let device = gateway.device(&name).await;
            let mut client = Client::connected(&gateway, &device, protocol, &name).await;
            client.subscribe(&topic, QoS::AtLeastOnce).await;
            publisher.publish_acked(&topic, b"before").await;
            let before = client.recv_publish().await;
            assert_eq!(&before.payload[..], b"before");
            client.puback(before.packet_id.unwrap()).await;

            // Cut at once, with nothing to deliver that could find it out.
            gateway.set_certificate_status(&device, status).await;
            assert_eq!(client.expect_closed().await, told_not_authorized(protocol));
        }
    }
}

#[tokio::test]
async fn a_policy_detached_while_subscribed_stops_deliveries() {
    let gateway = Gateway::start().await;
    let publisher_device = gateway.device("source").await;
    let mut publisher =
        Client::connected(&gateway, &publisher_device, ProtocolVersion::V5, "source").await;
    for (denied, protocol) in (1..).zip(BOTH) {
        let name = format!("listener-{}", protocol.level());
        let topic = format!("feed/{name}");
        let device = gateway.device(&name).await;
        let mut client = Client::connected(&gateway, &device, protocol, &name).await;
        client.subscribe(&topic, QoS::AtLeastOnce).await;

        gateway.detach_policy(&device).await;
        publisher.publish_acked(&topic, b"not for you").await;
        // Skipped (iot:Receive denied), the connection kept: with the
        // policy attached again, the next message is the first it gets.
        gateway
            .wait_for_metrics(|m| m.receive_denied == denied)
            .await;
        gateway
            .registry()
            .attach_policy(&device.policy_name, &device.certificate_arn)
            .await
            .unwrap();
        publisher.publish_acked(&topic, b"yours").await;
        let got = client.recv_publish().await;
        assert_eq!(&got.payload[..], b"yours", "{protocol}");
        client.puback(got.packet_id.unwrap()).await;
    }
    assert_eq!(gateway.metrics().receive_denied, 2);
}

#[tokio::test]
async fn leaving_active_on_an_https_keep_alive_connection() {
    let gateway = Gateway::start().await;
    for status in LEAVING_ACTIVE {
        // The request after the change is refused, however soon it comes.
        let device = gateway.device(&format!("https-{status}")).await;
        let mut https = HttpsClient::connect(&gateway, &device).await;
        assert_eq!(https.publish("https/a", b"x").await, Some(200));
        gateway.set_certificate_status(&device, status).await;
        assert_ne!(https.publish("https/a", b"x").await, Some(200), "{status}");

        // And an idle kept-alive connection is closed.
        let device = gateway.device(&format!("https-idle-{status}")).await;
        let mut https = HttpsClient::connect(&gateway, &device).await;
        assert_eq!(https.publish("https/b", b"x").await, Some(200));
        gateway.set_certificate_status(&device, status).await;
        https.expect_closed().await;
    }
}
