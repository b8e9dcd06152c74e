//! The PROXY protocol on the device listeners (`--proxy-protocol-from`):
//! a trusted load balancer's header gives the device's address, which the
//! gateway then uses (here: the lifecycle "connected" event's ipAddress);
//! a trusted peer must send one, and a bad, oversized or late one closes
//! the connection, counted; an untrusted peer's header is not read as one.
//!
//! Every connection in these tests comes from 127.0.0.1: "trusted" is
//! 127.0.0.0/8, "untrusted" a gateway trusting 10.0.0.0/8 only.

use roost_listener::proxy::header::{encode_v1, encode_v2, ProxyHeader};
use roost_testkit::mqtt::{ProtocolVersion, QoS, ReasonCode};
use roost_testkit::{connect_packet, eventually, Client, Device, Gateway, HttpsClient, PATIENCE};
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn proxied(source: &str) -> ProxyHeader {
    ProxyHeader::Proxied {
        source: source.parse().unwrap(),
        destination: "192.0.2.1:8883".parse().unwrap(),
    }
}

async fn trusting_loopback() -> Gateway {
    Gateway::builder()
        .proxy_protocol_from(&["127.0.0.0/8"])
        .limits(|l| l.handshake_timeout = Duration::from_secs(1))
        .start()
        .await
}

/// Connected (CONNACK success) through a proxy that sent `header`.
async fn connected_through(
    gateway: &Gateway,
    device: &Device,
    header: &[u8],
    client_id: &str,
) -> Client {
    let mut client = Client::try_connect_after(gateway, device, header)
        .await
        .expect("TLS handshake after the PROXY header");
    let connack = client
        .mqtt_connect(connect_packet(ProtocolVersion::V5, client_id))
        .await;
    assert_eq!(connack.reason_code, ReasonCode::Success);
    client
}

/// The ipAddress of the next "connected" event the watcher receives.
async fn next_connected_ip(watcher: &mut Client, client_id: &str) -> String {
    let publish = watcher.recv_publish().await;
    watcher.puback(publish.packet_id.unwrap()).await;
    assert_eq!(
        publish.topic,
        format!("$aws/events/presence/connected/{client_id}")
    );
    let event: serde_json::Value = serde_json::from_slice(&publish.payload).unwrap();
    event["ipAddress"].as_str().unwrap().to_string()
}

/// The connection is closed by the gateway without a byte sent.
async fn expect_closed_silently(stream: &mut TcpStream) {
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(PATIENCE, stream.read(&mut buf))
        .await
        .expect("closed in time");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
}

fn refused_proxy_header(gateway: &Gateway) -> u64 {
    gateway
        .mqtt_listener()
        .refused_proxy_header
        .load(Ordering::Relaxed)
}

#[tokio::test]
async fn the_device_is_seen_at_the_address_the_proxy_header_gives() {
    let gateway = trusting_loopback().await;
    let device = gateway.device("sensor").await;
    // A LOCAL header (HAProxy's health checks) keeps the TCP peer.
    let local = encode_v2(&ProxyHeader::Local, &[]);
    let mut watcher = connected_through(&gateway, &device, &local, "watcher").await;
    watcher
        .subscribe("$aws/events/presence/connected/+", QoS::AtLeastOnce)
        .await;

    // v2 as `send-proxy-v2` writes it, with a TLV (ignored).
    let v2 = encode_v2(
        &proxied("203.0.113.7:4711"),
        &[0x05, 0x00, 0x02, 0xab, 0xcd],
    );
    let _c1 = connected_through(&gateway, &device, &v2, "via-v2").await;
    assert_eq!(
        next_connected_ip(&mut watcher, "via-v2").await,
        "203.0.113.7"
    );

    // v1 (`send-proxy`), IPv6.
    let v1 = encode_v1(&ProxyHeader::Proxied {
        source: "[2001:db8::5]:4712".parse().unwrap(),
        destination: "[2001:db8::1]:8883".parse().unwrap(),
    });
    let _c2 = connected_through(&gateway, &device, &v1, "via-v1").await;
    assert_eq!(
        next_connected_ip(&mut watcher, "via-v1").await,
        "2001:db8::5"
    );

    // UNKNOWN: the TCP peer again.
    let unknown = encode_v2(&ProxyHeader::Unknown, &[]);
    let _c3 = connected_through(&gateway, &device, &unknown, "via-unknown").await;
    assert_eq!(
        next_connected_ip(&mut watcher, "via-unknown").await,
        "127.0.0.1"
    );
    assert_eq!(refused_proxy_header(&gateway), 0);
}

#[tokio::test]
async fn a_malformed_oversized_or_late_header_closes_the_connection_and_is_counted() {
    let gateway = trusting_loopback().await;
    let mut version_3 = encode_v2(&proxied("203.0.113.7:4711"), &[]);
    version_3[12] = 0x31;
    let mut oversized = encode_v2(&ProxyHeader::Local, &[]);
    oversized[14..16].copy_from_slice(&u16::MAX.to_be_bytes());
    let bad_v1 = b"PROXY TCP4 203.0.113.300 192.0.2.1 4711 8883\r\n".to_vec();
    // Stops after the preamble: never completed, cut at the handshake
    // timeout (1 s here).
    let mut short = encode_v2(&proxied("203.0.113.7:4711"), &[]);
    short.truncate(20);
    for (n, bytes) in [version_3, oversized, bad_v1, short]
        .into_iter()
        .enumerate()
    {
        let mut stream = TcpStream::connect(gateway.mqtt_addr()).await.unwrap();
        stream.write_all(&bytes).await.unwrap();
        expect_closed_silently(&mut stream).await;
        let counted = n as u64 + 1;
        assert!(
            eventually(|| refused_proxy_header(&gateway) == counted).await,
            "refusal {counted} counted"
        );
    }
    assert_eq!(gateway.metrics().connections_current, 0);
}

#[tokio::test]
async fn a_trusted_peer_without_a_header_is_refused() {
    let gateway = trusting_loopback().await;
    let device = gateway.device("direct").await;
    // The ClientHello is not a PROXY header.
    assert!(Client::try_connect(&gateway, &device).await.is_err());
    assert!(eventually(|| refused_proxy_header(&gateway) == 1).await);
    assert_eq!(gateway.metrics().tls_handshake_failures, 0);
}

#[tokio::test]
async fn an_untrusted_peer_is_served_direct_and_its_header_is_taken_for_tls() {
    let gateway = Gateway::builder()
        .proxy_protocol_from(&["10.0.0.0/8"])
        .start()
        .await;
    let device = gateway.device("spoofer").await;
    let header = encode_v2(&proxied("203.0.113.7:4711"), &[]);
    assert!(Client::try_connect_after(&gateway, &device, &header)
        .await
        .is_err());
    gateway
        .wait_for_metrics(|m| m.tls_handshake_failures == 1)
        .await;
    assert_eq!(refused_proxy_header(&gateway), 0);
    // Without a header it is a direct connection like any other.
    Client::connected(&gateway, &device, ProtocolVersion::V5, "spoofer").await;
}

#[tokio::test]
async fn device_https_reads_the_header_too() {
    let gateway = trusting_loopback().await;
    let device = gateway.device("poster").await;
    let local = encode_v2(&ProxyHeader::Local, &[]);
    let mut watcher = connected_through(&gateway, &device, &local, "watcher").await;
    watcher.subscribe("readings/#", QoS::AtLeastOnce).await;

    let v2 = encode_v2(&proxied("198.51.100.20:5000"), &[]);
    let mut https = HttpsClient::connect_after(&gateway, &device, &v2).await;
    assert_eq!(https.publish("readings/1", b"21.5").await, Some(200));
    let publish = watcher.recv_publish().await;
    assert_eq!(
        (publish.topic.as_str(), &publish.payload[..]),
        ("readings/1", &b"21.5"[..])
    );

    // Without one, from a trusted peer: closed, counted on the HTTPS
    // listener.
    let mut stream = TcpStream::connect(gateway.https_addr()).await.unwrap();
    stream
        .write_all(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\x00")
        .await
        .unwrap();
    expect_closed_silently(&mut stream).await;
    let https_refused = || {
        gateway
            .https_listener()
            .refused_proxy_header
            .load(Ordering::Relaxed)
    };
    assert!(eventually(|| https_refused() == 1).await);
}
