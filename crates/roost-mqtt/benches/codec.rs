//! Decode and encode of a typical device message: a QoS 1 PUBLISH of 200
//! bytes on the wire (163 bytes of JSON-sized payload on a 30-byte topic) in
//! MQTT 3.1.1, and the same message in MQTT 5 (one more byte: an empty
//! property block).
//!
//! Run: `cargo bench -p roost-mqtt --bench codec`

use bytes::{Bytes, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};
use roost_mqtt::{
    decode, encode, Limits, Packet, ProtocolVersion, Publish, PublishProperties, QoS,
};

fn publish() -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: "dt/factory1/sensor42/telemetry".to_owned(),
        packet_id: Some(4242),
        payload: Bytes::from(vec![b'x'; 163]),
        properties: PublishProperties::default(),
    })
}

fn codec(c: &mut Criterion) {
    let packet = publish();
    let limits = Limits::default();
    for (name, protocol) in [("v311", ProtocolVersion::V311), ("v5", ProtocolVersion::V5)] {
        let mut wire = BytesMut::new();
        encode(&packet, protocol, &mut wire).unwrap();
        let wire = wire.freeze();
        let size = wire.len();

        c.bench_function(&format!("decode publish qos1 {size}B {name}"), |b| {
            b.iter_batched(
                || BytesMut::from(&wire[..]),
                |mut buf| decode(&mut buf, Some(protocol), &limits).unwrap().unwrap(),
                BatchSize::SmallInput,
            )
        });

        let mut out = BytesMut::with_capacity(512);
        c.bench_function(&format!("encode publish qos1 {size}B {name}"), |b| {
            b.iter(|| {
                out.clear();
                encode(black_box(&packet), protocol, &mut out).unwrap();
            })
        });
    }
}

criterion_group!(benches, codec);
criterion_main!(benches);
