//! Wills: sent when a connection ends without a clean DISCONNECT (or with
//! MQTT 5's "disconnect with will"), not sent after a clean one, delayed
//! by MQTT 5's Will Delay Interval (and cancelled when the client comes
//! back first), and authorized when sent: a will the policies no longer
//! allow is dropped and counted.
//!
//! How absence is shown without waiting for it: a watcher subscribes to
//! the wills and to the lifecycle "disconnected" events. A connection's
//! will is published before its disconnected event, by the same task, so
//! the watcher reads the will, then the event; no will means the event
//! comes first.

use roost_testkit::mqtt::{Connect, ProtocolVersion, QoS, ReasonCode};
use roost_testkit::{connect_packet, will, Client, Device, Gateway};
use std::time::Duration;

const BOTH: [ProtocolVersion; 2] = [ProtocolVersion::V311, ProtocolVersion::V5];

fn with_will(protocol: ProtocolVersion, client_id: &str) -> Connect {
    let mut connect = connect_packet(protocol, client_id);
    connect.will = Some(will(&will_of(client_id), QoS::AtLeastOnce));
    connect
}

/// A connection whose CONNECT (with a will) was accepted.
async fn connected(gateway: &Gateway, device: &Device, connect: Connect) -> Client {
    let mut client = Client::connect(gateway, device).await;
    let connack = client.mqtt_connect(connect).await;
    assert_eq!(connack.reason_code, ReasonCode::Success);
    client
}

/// Subscribed to every will and every disconnected event.
async fn watcher(gateway: &Gateway) -> Client {
    let device = gateway.device("watcher").await;
    let mut watcher = Client::connected(gateway, &device, ProtocolVersion::V5, "watcher").await;
    watcher.subscribe("wills/#", QoS::AtLeastOnce).await;
    watcher
        .subscribe("$aws/events/presence/disconnected/+", QoS::AtLeastOnce)
        .await;
    watcher
}

/// The topic of the watcher's next message (acknowledged).
async fn next_topic(watcher: &mut Client) -> String {
    let publish = watcher.recv_publish().await;
    watcher.puback(publish.packet_id.unwrap()).await;
    publish.topic
}

fn will_of(client_id: &str) -> String {
    format!("wills/{client_id}")
}

fn disconnected(client_id: &str) -> String {
    format!("$aws/events/presence/disconnected/{client_id}")
}

#[tokio::test]
async fn a_connection_dropped_without_disconnect_sends_its_will() {
    let gateway = Gateway::start().await;
    let mut watcher = watcher(&gateway).await;
    let device = gateway.device("dropped").await;
    for protocol in BOTH {
        let client_id = format!("dropped-{}", protocol.level());
        connected(&gateway, &device, with_will(protocol, &client_id))
            .await
            .drop_abruptly();
        assert_eq!(next_topic(&mut watcher).await, will_of(&client_id));
        assert_eq!(next_topic(&mut watcher).await, disconnected(&client_id));
    }
}

#[tokio::test]
async fn a_clean_disconnect_sends_no_will() {
    let gateway = Gateway::start().await;
    let mut watcher = watcher(&gateway).await;
    let device = gateway.device("polite").await;
    for protocol in BOTH {
        let client_id = format!("polite-{}", protocol.level());
        let mut client = connected(&gateway, &device, with_will(protocol, &client_id)).await;
        client.disconnect(ReasonCode::Success).await;
        client.expect_closed().await;
        assert_eq!(next_topic(&mut watcher).await, disconnected(&client_id));
    }
}

#[tokio::test]
async fn an_mqtt5_disconnect_with_will_sends_it() {
    let gateway = Gateway::start().await;
    let mut watcher = watcher(&gateway).await;
    let device = gateway.device("farewell").await;
    let mut client = connected(
        &gateway,
        &device,
        with_will(ProtocolVersion::V5, "farewell"),
    )
    .await;
    client
        .disconnect(ReasonCode::DisconnectWithWillMessage)
        .await;
    client.expect_closed().await;
    assert_eq!(next_topic(&mut watcher).await, will_of("farewell"));
    assert_eq!(next_topic(&mut watcher).await, disconnected("farewell"));
}

#[tokio::test]
async fn a_will_delay_sends_the_will_after_the_disconnect() {
    let gateway = Gateway::start().await;
    let mut watcher = watcher(&gateway).await;
    let device = gateway.device("patient").await;
    let mut connect = with_will(ProtocolVersion::V5, "patient");
    connect.clean_start = false;
    connect.properties.session_expiry_interval = Some(60);
    connect
        .will
        .as_mut()
        .unwrap()
        .properties
        .will_delay_interval = Some(1);
    connected(&gateway, &device, connect).await.drop_abruptly();
    // The disconnect is announced first; the will follows once the delay passed.
    assert_eq!(next_topic(&mut watcher).await, disconnected("patient"));
    assert_eq!(next_topic(&mut watcher).await, will_of("patient"));
}

#[tokio::test]
async fn a_will_delay_longer_than_the_session_ends_with_it() {
    // Spec 3.1.3.2.2: the will goes out when the session ends, if that is
    // first; a clean session ends with its connection.
    let gateway = Gateway::start().await;
    let mut watcher = watcher(&gateway).await;
    let device = gateway.device("brief").await;
    let mut connect = with_will(ProtocolVersion::V5, "brief");
    connect
        .will
        .as_mut()
        .unwrap()
        .properties
        .will_delay_interval = Some(3600);
    connected(&gateway, &device, connect).await.drop_abruptly();
    assert_eq!(next_topic(&mut watcher).await, will_of("brief"));
    assert_eq!(next_topic(&mut watcher).await, disconnected("brief"));
}

#[tokio::test]
async fn a_client_back_within_the_will_delay_cancels_the_will() {
    let gateway = Gateway::start().await;
    let mut watcher = watcher(&gateway).await;
    let device = gateway.device("back").await;
    let delay = 3;
    let returning = |will: bool| {
        let mut connect = with_will(ProtocolVersion::V5, "back");
        connect.clean_start = false;
        connect.properties.session_expiry_interval = Some(60);
        match will {
            true => {
                connect
                    .will
                    .as_mut()
                    .unwrap()
                    .properties
                    .will_delay_interval = Some(delay)
            }
            false => connect.will = None,
        }
        connect
    };
    connected(&gateway, &device, returning(true))
        .await
        .drop_abruptly();
    assert_eq!(next_topic(&mut watcher).await, disconnected("back"));
    let _back = connected(&gateway, &device, returning(false)).await;
    // Past the delay, a marker: had the will gone out, it would come first.
    tokio::time::sleep(Duration::from_secs(u64::from(delay) + 1)).await;
    let mut marker = Client::connected(&gateway, &device, ProtocolVersion::V5, "marker").await;
    marker
        .publish_acked("wills/marker", b"after the delay")
        .await;
    assert_eq!(next_topic(&mut watcher).await, will_of("marker"));
}

#[tokio::test]
async fn a_will_the_policies_no_longer_allow_is_not_sent() {
    let gateway = Gateway::start().await;
    let mut watcher = watcher(&gateway).await;
    for protocol in BOTH {
        let client_id = format!("detached-{}", protocol.level());
        let device = gateway.device(&client_id).await;
        let client = connected(&gateway, &device, with_will(protocol, &client_id)).await;
        gateway.detach_policy(&device).await;
        client.drop_abruptly();
        assert_eq!(next_topic(&mut watcher).await, disconnected(&client_id));
    }
    assert_eq!(gateway.metrics().wills_refused, 2);
}
