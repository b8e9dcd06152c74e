//! Fuzzes the MQTT codec (`roost-mqtt`).
//!
//! The first byte picks the decoder state (before CONNECT, MQTT 3.1.1 or
//! MQTT 5, from a client or from a server); the rest is the byte stream.
//! Properties: decoding never panics, every decoded packet consumed at least
//! its fixed header, and every decoded packet encodes again and decodes back
//! to itself.
//!
//! Run with `cargo +nightly fuzz run mqtt` from `fuzz/`.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use roost_mqtt::{decode, decode_from_server, encode, Limits, Packet, ProtocolVersion};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, stream)) = data.split_first() else {
        return;
    };
    let limits = Limits::default();
    let from_server = mode & 0x80 != 0;
    let mut state = match mode % 3 {
        0 if !from_server => None,
        1 => Some(ProtocolVersion::V311),
        _ => Some(ProtocolVersion::V5),
    };
    let mut buf = BytesMut::from(stream);
    loop {
        let before = buf.len();
        let result = match (from_server, state) {
            (true, Some(protocol)) => decode_from_server(&mut buf, protocol, &limits),
            _ => decode(&mut buf, state, &limits),
        };
        let Ok(Some(packet)) = result else {
            return;
        };
        assert!(buf.len() + 2 <= before, "a packet is at least two bytes");
        let protocol = match &packet {
            Packet::Connect(connect) => connect.protocol,
            _ => state.expect("only CONNECT decodes before the version is known"),
        };

        let mut again = BytesMut::new();
        encode(&packet, protocol, &mut again).expect("a decoded packet encodes");
        let reread = match (from_server, state) {
            (true, Some(protocol)) => decode_from_server(&mut again, protocol, &limits),
            _ => decode(&mut again, state, &limits),
        };
        assert_eq!(reread, Ok(Some(packet)));
        assert!(again.is_empty());

        // After a CONNECT the connection speaks its version.
        state = Some(protocol);
    }
});
