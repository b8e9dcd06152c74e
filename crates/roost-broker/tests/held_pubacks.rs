//! Held PUBACKs: a QoS 1 PUBLISH is acknowledged only once what it changed
//! in the gateway state (queued for a persistent session) is committed to
//! gateway.db, in the order the PUBLISHes came; and a subscriber whose
//! queue is past its mark holds its publishers' PUBACKs (their sockets are
//! not read) until it reads, or, past the slow-consumer timeout, is
//! disconnected with its persistent session keeping every message.

use roost_testkit::mqtt::{Connect, Packet, ProtocolVersion, QoS, ReasonCode};
use roost_testkit::{connect_packet, persistent_connect, Client, Ended, Gateway};
use std::collections::BTreeSet;
use std::time::Duration;

/// How long a PUBACK that must not come yet is waited for: it proves
/// nothing alone, and each test shows the same PUBACK does come after.
const NOT_YET: Duration = Duration::from_millis(500);

const BOTH: [ProtocolVersion; 2] = [ProtocolVersion::V311, ProtocolVersion::V5];

/// A subscriber that takes one message at a time (MQTT 5 Receive
/// Maximum 1) and reads nothing until the test says so.
async fn slow_subscriber(gateway: &Gateway, mut connect: Connect, filter: &str) -> Client {
    let device = gateway
        .device(&format!("device-{}", connect.client_id))
        .await;
    connect.properties.receive_maximum = Some(1);
    let mut client = Client::connect(gateway, &device).await;
    assert_eq!(
        client.mqtt_connect(connect).await.reason_code,
        ReasonCode::Success
    );
    client.subscribe(filter, QoS::AtLeastOnce).await;
    client
}

/// The packet ids of the PUBACKs that arrive until none has for `quiet`.
async fn pubacks_until_quiet(client: &mut Client, quiet: Duration) -> Vec<u16> {
    let mut ids = Vec::new();
    loop {
        match client.next_within(quiet).await {
            Ok(Packet::PubAck(ack)) => ids.push(ack.packet_id),
            Err(Ended::TimedOut) => return ids,
            other => panic!("expected PUBACKs, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_qos1_publish_to_a_persistent_session_is_acked_once_saved() {
    let gateway = Gateway::start().await;
    let device = gateway.device("saver").await;
    for protocol in BOTH {
        let level = protocol.level();
        let subscriber = format!("offline-{level}");
        let (saved, clean) = (format!("saved/{level}"), format!("clean/{level}"));
        // A persistent subscriber, now offline: its messages go to gateway.db.
        let mut offline = Client::connect(&gateway, &device).await;
        offline
            .mqtt_connect(persistent_connect(ProtocolVersion::V5, &subscriber))
            .await;
        offline.subscribe(&saved, QoS::AtLeastOnce).await;
        offline.disconnect(ReasonCode::Success).await;
        offline.expect_closed().await;
        // A clean subscriber: nothing of it is ever written.
        let mut online = Client::connected(
            &gateway,
            &device,
            ProtocolVersion::V5,
            &format!("on-{level}"),
        )
        .await;
        online.subscribe(&clean, QoS::AtLeastOnce).await;

        let mut publisher =
            Client::connected(&gateway, &device, protocol, &format!("pub-{level}")).await;
        let state = gateway.state().await;
        let hold = state.hold_writes().await;
        // Nothing to save: answered at once, however long the writer waits.
        publisher.publish_acked(&clean, b"clean").await;
        // To be saved: not answered while it cannot be committed ...
        let first = publisher.publish(&saved, b"saved", QoS::AtLeastOnce).await;
        // ... and the answers after it keep their order behind it.
        let second = publisher.publish(&clean, b"behind", QoS::AtLeastOnce).await;
        publisher.expect_silence(NOT_YET).await;
        assert!(state.messages(&subscriber).await.is_empty());
        hold.release().await;
        let acked = pubacks_until_quiet(&mut publisher, NOT_YET).await;
        assert_eq!(acked, vec![first.unwrap(), second.unwrap()], "{protocol}");
        let queued = state.messages(&subscriber).await;
        assert_eq!(queued.len(), 1);
        assert_eq!(
            (&queued[0].topic, &queued[0].payload[..]),
            (&saved, &b"saved"[..])
        );
    }
    assert_eq!(gateway.metrics().state_commit_failures, 0);
}

#[tokio::test]
async fn a_full_subscriber_holds_its_publishers_pubacks_until_it_reads() {
    const SENT: usize = 30;
    let gateway = Gateway::builder().max_queued_messages(4).start().await;
    let mut subscriber = slow_subscriber(
        &gateway,
        connect_packet(ProtocolVersion::V5, "slow"),
        "flow/t",
    )
    .await;
    let device = gateway.device("hasty").await;
    let mut publisher = Client::connected(&gateway, &device, ProtocolVersion::V5, "hasty").await;
    // Unpaced: every PUBLISH sent before any answer is read.
    let mut ids = BTreeSet::new();
    for i in 0..SENT {
        let id = publisher
            .publish("flow/t", &i.to_be_bytes(), QoS::AtLeastOnce)
            .await;
        ids.insert(id.unwrap());
    }
    gateway.wait_for_metrics(|m| m.publishers_slowed >= 1).await;
    let before = pubacks_until_quiet(&mut publisher, NOT_YET).await;
    assert!(
        before.len() < SENT,
        "every PUBLISH was answered while the subscriber read nothing"
    );

    // The subscriber reads: everything arrives, in order, and every
    // PUBLISH is answered.
    for i in 0..SENT {
        let publish = subscriber.recv_publish().await;
        assert_eq!(&publish.payload[..], &i.to_be_bytes(), "message {i}");
        subscriber.puback(publish.packet_id.unwrap()).await;
    }
    let mut acked: BTreeSet<u16> = before.into_iter().collect();
    while acked.len() < SENT {
        match publisher.recv().await {
            Packet::PubAck(ack) => assert!(acked.insert(ack.packet_id)),
            other => panic!("expected PUBACK, got {other:?}"),
        }
    }
    assert_eq!(acked, ids);
    let metrics = gateway.metrics();
    assert_eq!(
        (
            metrics.dropped_queue_full,
            metrics.slow_consumers_disconnected
        ),
        (0, 0)
    );
}

#[tokio::test]
async fn a_slow_consumer_is_cut_and_its_persistent_session_keeps_everything() {
    // Within what an offline session keeps (twice the mark): past it, what
    // arrives for it is dropped and counted, as documented.
    const SENT: usize = 20;
    let gateway = Gateway::builder()
        .max_queued_messages(10)
        .slow_consumer_timeout(Duration::from_millis(300))
        .start()
        .await;
    let mut subscriber = slow_subscriber(
        &gateway,
        persistent_connect(ProtocolVersion::V5, "sluggish"),
        "cut/t",
    )
    .await;
    let device = gateway.device("eager").await;
    let mut publisher = Client::connected(&gateway, &device, ProtocolVersion::V5, "eager").await;
    for i in 0..SENT {
        publisher
            .publish("cut/t", &i.to_be_bytes(), QoS::AtLeastOnce)
            .await;
    }
    // Cut as a slow consumer: MQTT 5 DISCONNECT 0x97 Quota exceeded.
    let got = subscriber.expect_closed().await;
    assert_eq!(
        got.last(),
        Some(&Packet::Disconnect(roost_testkit::mqtt::Disconnect::new(
            ReasonCode::QuotaExceeded
        )))
    );
    // The publisher goes on: every PUBLISH answered, each once saved.
    let mut acked = BTreeSet::new();
    while acked.len() < SENT {
        match publisher.recv().await {
            Packet::PubAck(ack) => assert!(acked.insert(ack.packet_id)),
            other => panic!("expected PUBACK, got {other:?}"),
        }
    }
    assert_eq!(gateway.state().await.messages("sluggish").await.len(), SENT);
    assert_eq!(gateway.metrics().slow_consumers_disconnected, 1);

    // Back, the subscriber gets every message, the one it had first (DUP).
    let mut back = Client::connect(&gateway, &device).await;
    let connack = back
        .mqtt_connect(persistent_connect(ProtocolVersion::V5, "sluggish"))
        .await;
    assert!(connack.session_present);
    for i in 0..SENT {
        let publish = back.recv_publish().await;
        assert_eq!(&publish.payload[..], &i.to_be_bytes(), "message {i}");
        assert_eq!(publish.dup, i == 0);
        back.puback(publish.packet_id.unwrap()).await;
    }
    assert_eq!(gateway.metrics().dropped_queue_full, 0);
}

#[tokio::test]
async fn what_was_acknowledged_survives_a_restart() {
    let gateway = Gateway::start().await;
    let device = gateway.device("durable").await;
    let mut subscriber = Client::connect(&gateway, &device).await;
    subscriber
        .mqtt_connect(persistent_connect(ProtocolVersion::V311, "keeper"))
        .await;
    subscriber.subscribe("kept/t", QoS::AtLeastOnce).await;
    subscriber.disconnect(ReasonCode::Success).await;
    subscriber.expect_closed().await;
    let mut publisher = Client::connected(&gateway, &device, ProtocolVersion::V5, "producer").await;
    for i in 0..3u8 {
        publisher.publish_acked("kept/t", &[i]).await;
    }

    // Stopped as roost serve stops on SIGTERM, started on the same data.
    let gateway = gateway.restart().await;
    let mut back = Client::connect(&gateway, &device).await;
    let connack = back
        .mqtt_connect(persistent_connect(ProtocolVersion::V311, "keeper"))
        .await;
    assert!(connack.session_present);
    for i in 0..3u8 {
        let publish = back.recv_publish().await;
        assert_eq!(
            (&publish.topic[..], &publish.payload[..]),
            ("kept/t", &[i][..])
        );
        back.puback(publish.packet_id.unwrap()).await;
    }
}
