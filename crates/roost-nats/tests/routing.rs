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
        store: roost_nats::StoreConfig::default(),
    };
    roost_nats::join(broker, config, stop.clone())
        .await
        .expect("joining the cluster")
}

/// Two gateways, each joined to one nats-server.
struct TwoNodes {
    node1: Gateway,
    node2: Gateway,
    link1: Joined,
    link2: Joined,
    _stop: watch::Sender<bool>,
    _nats: NatsServer,
}

impl TwoNodes {
    async fn start() -> Option<TwoNodes> {
        let nats = NatsServer::start().await?;
        let (node1, node2) = (Gateway::start().await, Gateway::start().await);
        let (stop_tx, stop) = watch::channel(false);
        let link1 = join(node1.broker(), &nats.url, "node1", &stop).await;
        let link2 = join(node2.broker(), &nats.url, "node2", &stop).await;
        Some(TwoNodes {
            node1,
            node2,
            link1,
            link2,
            _stop: stop_tx,
            _nats: nats,
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_on_one_node_reaches_the_matching_subscribers_of_another() {
    let Some(cluster) = TwoNodes::start().await else {
        return;
    };
    let TwoNodes {
        node1,
        node2,
        link1,
        link2,
        ..
    } = &cluster;

    let publisher_device = node1.device("publisher").await;
    let (wide_device, shadow_device) = (
        node2.device("wide").await,
        node2.device("shadow-watcher").await,
    );
    let mut publisher =
        Client::connected(node1, &publisher_device, ProtocolVersion::V5, "publisher").await;
    let mut wide = Client::connected(node2, &wide_device, ProtocolVersion::V5, "wide").await;
    let mut narrow =
        Client::connected(node2, &shadow_device, ProtocolVersion::V5, "shadow-watcher").await;
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
    let mut late = Client::connected(node2, &late_device, ProtocolVersion::V5, "late").await;
    late.subscribe("state/door", QoS::AtMostOnce).await;
    let got = late.recv_publish().await;
    assert_eq!(
        (got.topic.as_str(), got.retain, &got.payload[..]),
        ("state/door", true, &b"open"[..])
    );

    // Nothing arrives twice, and node 1 does not receive its own messages back.
    wide.expect_silence(Duration::from_millis(300)).await;
    narrow.expect_silence(Duration::from_millis(300)).await;
    // Node 1 sent the five messages and its clients' lifecycle events:
    // QoS 0 over core NATS, which no node hears back, QoS 1 through the
    // stream, which every node reads, its own too. Node 2 accepted nothing
    // from a device.
    use std::sync::atomic::Ordering::Relaxed;
    let (one, two) = (link1.counters(), link2.counters());
    let stored = || one.stored.load(Relaxed) + two.stored.load(Relaxed);
    assert!(one.forwarded.load(Relaxed) + one.stored.load(Relaxed) >= 5);
    assert!(
        eventually(|| {
            two.received.load(Relaxed) == one.forwarded.load(Relaxed) + stored()
                && one.received.load(Relaxed) == two.forwarded.load(Relaxed) + stored()
        })
        .await
    );
    assert_eq!(
        node2.metrics().messages_from_peers,
        two.received.load(Relaxed)
    );
    assert_eq!(
        node2.metrics().messages_in,
        two.forwarded.load(Relaxed) + two.stored.load(Relaxed)
    );
    for counters in [one, two] {
        assert_eq!(counters.dropped_queue_full.load(Relaxed), 0);
        assert_eq!(counters.received_malformed.load(Relaxed), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_subscription_over_two_nodes_gets_each_message_once() {
    let Some(cluster) = TwoNodes::start().await else {
        return;
    };
    let TwoNodes {
        node1,
        node2,
        link1,
        link2,
        ..
    } = &cluster;
    let (d1, d2) = (node1.device("d1").await, node2.device("d2").await);
    let mut publisher = Client::connected(node1, &d1, ProtocolVersion::V5, "publisher").await;
    let mut worker1 = Client::connected(node1, &d1, ProtocolVersion::V5, "worker1").await;
    let mut worker2 = Client::connected(node2, &d2, ProtocolVersion::V5, "worker2").await;
    let mut solo = Client::connected(node1, &d1, ProtocolVersion::V5, "solo").await;
    let mut plain = Client::connected(node2, &d2, ProtocolVersion::V5, "plain").await;
    worker1
        .subscribe("$share/workers/jobs/+", QoS::AtMostOnce)
        .await;
    worker2
        .subscribe("$share/workers/jobs/+", QoS::AtMostOnce)
        .await;
    // A group whose only member is on the publishing node.
    solo.subscribe("$share/solo/jobs/+", QoS::AtMostOnce).await;
    plain.subscribe("jobs/+", QoS::AtMostOnce).await;
    use std::sync::atomic::Ordering::Relaxed;
    assert!(
        eventually(|| link1.counters().shared_held.load(Relaxed) == 2
            && link2.counters().shared_held.load(Relaxed) == 1)
        .await,
        "the shared subscriptions were never held in NATS"
    );

    const N: usize = 40;
    for i in 0..N {
        publisher
            .publish(&format!("jobs/{i}"), b"x", QoS::AtMostOnce)
            .await;
    }
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    let (mut got1, mut got2) = (0, 0);
    while got1 + got2 < N {
        tokio::select! {
            p = worker1.recv_publish() => { got1 += 1; *seen.entry(p.topic).or_default() += 1; }
            p = worker2.recv_publish() => { got2 += 1; *seen.entry(p.topic).or_default() += 1; }
        }
    }
    assert_eq!(seen.len(), N, "every message reached the group");
    assert!(
        seen.values().all(|n| *n == 1),
        "a message reached the group twice: {seen:?}"
    );
    assert!(
        got1 > 0 && got2 > 0,
        "NATS spread the group over both nodes ({got1}, {got2})"
    );
    for _ in 0..N {
        solo.recv_publish().await;
        plain.recv_publish().await;
    }
    for client in [&mut worker1, &mut worker2, &mut solo, &mut plain] {
        client.expect_silence(Duration::from_millis(300)).await;
    }

    // The last member leaving a node takes the node out of the group.
    drop(worker2);
    assert!(eventually(|| link2.counters().shared_held.load(Relaxed) == 0).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_later_of_two_connections_with_one_client_id_on_two_nodes_wins() {
    let Some(cluster) = TwoNodes::start().await else {
        return;
    };
    let TwoNodes { node1, node2, .. } = &cluster;
    let (d1, d2) = (node1.device("d1").await, node2.device("d2").await);
    let mut first = Client::connected(node1, &d1, ProtocolVersion::V5, "sensor-7").await;
    let mut bystander = Client::connected(node1, &d1, ProtocolVersion::V5, "sensor-8").await;
    let mut later = Client::connected(node2, &d2, ProtocolVersion::V5, "sensor-7").await;
    // The first is told why, as on one node, and closed.
    let before = first.expect_closed().await;
    assert!(
        matches!(before.as_slice(), [roost_testkit::mqtt::Packet::Disconnect(d)] if d.reason_code == ReasonCode::SessionTakenOver),
        "{before:?}"
    );
    assert!(eventually(|| node1.metrics().takeovers == 1).await);
    // The later one and everyone else stay.
    later.publish_acked("t", b"still here").await;
    bystander.publish_acked("t", b"me too").await;
    assert_eq!(node2.metrics().takeovers, 0);
}

/// Retained messages live in the cluster's bucket: a node that joins later
/// starts with those set before, not those deleted, and with what is left
/// of their expiry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_joins_later_has_the_clusters_retained_messages() {
    let Some(cluster) = TwoNodes::start().await else {
        return;
    };
    let (node1, link1) = (&cluster.node1, &cluster.link1);
    let device = node1.device("setter").await;
    let mut setter = Client::connected(node1, &device, ProtocolVersion::V5, "setter").await;
    let changes = [
        ("config/a", "A", QoS::AtMostOnce, None),
        ("config/b", "B", QoS::AtLeastOnce, None),
        ("config/c", "C", QoS::AtLeastOnce, Some(3600)),
        ("config/gone", "G", QoS::AtLeastOnce, None),
        ("config/gone", "", QoS::AtLeastOnce, None),
    ];
    for (topic, payload, qos, expiry) in changes {
        let mut publish = setter.publish_packet(topic, payload.as_bytes(), qos);
        publish.retain = true;
        publish.properties.message_expiry_interval = expiry;
        setter
            .send(&roost_testkit::mqtt::Packet::Publish(publish))
            .await;
        if qos == QoS::AtLeastOnce {
            setter.recv().await; // its PUBACK
        }
    }
    use std::sync::atomic::Ordering::Relaxed;
    assert!(
        eventually(|| link1.counters().retained_writes.load(Relaxed) == 5).await,
        "node 1 wrote {} of its 5 retained changes",
        link1.counters().retained_writes.load(Relaxed)
    );

    let node3 = Gateway::start().await;
    let (_stop3, stop3) = watch::channel(false);
    let link3 = join(node3.broker(), &cluster._nats.url, "node3", &stop3).await;
    assert_eq!(link3.counters().retained_loaded.load(Relaxed), 3);
    let held: Vec<_> = node3
        .broker()
        .retained_messages()
        .into_iter()
        .map(|(m, _)| (m.topic.clone(), m.payload.clone(), m.expires_at.is_some()))
        .collect();
    assert_eq!(
        held,
        [
            ("config/a".into(), "A".into(), false),
            ("config/b".into(), "B".into(), false),
            ("config/c".into(), "C".into(), true),
        ]
    );
    // A device of node 3 subscribing gets it, flagged retained.
    let reader = node3.device("reader").await;
    let mut late = Client::connected(&node3, &reader, ProtocolVersion::V5, "reader").await;
    late.subscribe("config/b", QoS::AtMostOnce).await;
    let got = late.recv_publish().await;
    assert_eq!(
        (got.topic.as_str(), got.retain, &got.payload[..]),
        ("config/b", true, &b"B"[..])
    );
}
