//! Two gateways joined through a real nats-server: what a device publishes
//! on one reaches the matching subscribers on the other, as MQTT matching
//! would deliver it on one node.

mod support;

use roost_broker::Broker;
use roost_nats::{Joined, NatsConfig};
use roost_testkit::mqtt::{ProtocolVersion, QoS, ReasonCode};
use roost_testkit::{eventually, Client, Gateway};
use std::time::Duration;
use support::NatsServer;
use tokio::sync::watch;

async fn join(broker: &Broker, url: &str, node: &str, stop: &watch::Receiver<bool>) -> Joined {
    let config = NatsConfig {
        urls: vec![url.to_string()],
        node_id: node.to_string(),
        subject_prefix: NatsConfig::DEFAULT_PREFIX.to_string(),
        queue_capacity: NatsConfig::DEFAULT_QUEUE_CAPACITY,
    };
    roost_nats::join(broker, config, stop.clone())
        .await
        .expect("joining the cluster")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_on_one_node_reaches_the_matching_subscribers_of_another() {
    let Some(nats) = NatsServer::start().await else {
        return;
    };
    let (node1, node2) = (Gateway::start().await, Gateway::start().await);
    let (_stop, stop) = watch::channel(false);
    let link1 = join(node1.broker(), &nats.url, "node1", &stop).await;
    let link2 = join(node2.broker(), &nats.url, "node2", &stop).await;

    let publisher_device = node1.device("publisher").await;
    let (wide_device, shadow_device) = (
        node2.device("wide").await,
        node2.device("shadow-watcher").await,
    );
    let mut publisher =
        Client::connected(&node1, &publisher_device, ProtocolVersion::V5, "publisher").await;
    let mut wide = Client::connected(&node2, &wide_device, ProtocolVersion::V5, "wide").await;
    let mut narrow = Client::connected(
        &node2,
        &shadow_device,
        ProtocolVersion::V5,
        "shadow-watcher",
    )
    .await;
    wide.subscribe("#", QoS::AtLeastOnce).await;
    narrow
        .subscribe("$aws/things/+/shadow/update", QoS::AtLeastOnce)
        .await;
    narrow.subscribe("sensor/+/t", QoS::AtLeastOnce).await;

    // QoS 0, a dot in a level, an empty level, a $aws topic.
    for topic in [
        "sensor/room.1/t",
        "sensor//t",
        "$aws/things/t1/shadow/update",
    ] {
        publisher
            .publish(topic, topic.as_bytes(), QoS::AtMostOnce)
            .await;
    }
    // A leading wildcard never sees a $ topic: `wide` gets the two others.
    for expected in ["sensor/room.1/t", "sensor//t"] {
        let got = wide.recv_publish().await;
        assert_eq!(
            (got.topic.as_str(), &got.payload[..]),
            (expected, expected.as_bytes())
        );
    }
    let mut narrow_got = Vec::new();
    for _ in 0..3 {
        narrow_got.push(narrow.recv_publish().await.topic);
    }
    narrow_got.sort();
    assert_eq!(
        narrow_got,
        [
            "$aws/things/t1/shadow/update",
            "sensor//t",
            "sensor/room.1/t"
        ]
    );

    // QoS 1: acknowledged Success (the subscribers elsewhere are not
    // counted here), delivered at QoS 1 on the other node.
    let ack = publisher.publish_acked("sensor/q/t", b"one").await;
    assert_eq!(ack.reason_code, ReasonCode::Success);
    for client in [&mut wide, &mut narrow] {
        let got = client.recv_publish().await;
        assert_eq!(
            (got.topic.as_str(), got.qos),
            ("sensor/q/t", QoS::AtLeastOnce)
        );
        client
            .puback(got.packet_id.expect("a QoS 1 packet id"))
            .await;
    }

    // A retained message set on node 1 reaches a later subscriber on node 2.
    let mut retained = publisher.publish_packet("state/door", b"open", QoS::AtLeastOnce);
    retained.retain = true;
    publisher
        .send(&roost_testkit::mqtt::Packet::Publish(retained))
        .await;
    publisher.recv().await; // its PUBACK
    wide.recv_publish().await; // live, on `#`
    assert!(
        eventually(|| node2.broker().retained("state/door").is_some()).await,
        "node 2 never held the retained message"
    );
    let late_device = node2.device("late").await;
    let mut late = Client::connected(&node2, &late_device, ProtocolVersion::V5, "late").await;
    late.subscribe("state/door", QoS::AtMostOnce).await;
    let got = late.recv_publish().await;
    assert_eq!(
        (got.topic.as_str(), got.retain, &got.payload[..]),
        ("state/door", true, &b"open"[..])
    );

    // Nothing arrives twice, and node 1 does not receive its own messages back.
    wide.expect_silence(Duration::from_millis(300)).await;
    narrow.expect_silence(Duration::from_millis(300)).await;
    // Node 1 forwarded the five messages and its clients' lifecycle
    // events; each node received exactly what the other sent, and never
    // its own (node 2 accepted nothing from a device).
    use std::sync::atomic::Ordering::Relaxed;
    let (one, two) = (link1.counters(), link2.counters());
    assert!(one.forwarded.load(Relaxed) >= 5);
    assert!(
        eventually(|| {
            two.received.load(Relaxed) == one.forwarded.load(Relaxed)
                && one.received.load(Relaxed) == two.forwarded.load(Relaxed)
        })
        .await
    );
    assert_eq!(
        node2.metrics().messages_from_peers,
        two.received.load(Relaxed)
    );
    assert_eq!(node2.metrics().messages_in, two.forwarded.load(Relaxed));
    for counters in [one, two] {
        assert_eq!(counters.dropped_queue_full.load(Relaxed), 0);
        assert_eq!(counters.received_malformed.load(Relaxed), 0);
    }
}
