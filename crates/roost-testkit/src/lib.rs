//! Test support for Roost: the real device gateway started in-process, and
//! the parts a test needs around it.
//!
//! - [`Gateway`]: the gateway as `roost serve` wires it
//!   ([`roost_broker::Broker::start_gateway`]), on `127.0.0.1:0`, in its own
//!   temporary data directory: the real SQLite registry, Roost's own CA,
//!   mutual TLS, `gateway.db`. Built with [`Gateway::builder`] (profile,
//!   limits); its counters are [`Gateway::metrics`].
//! - [`Device`]: a thing with a certificate from Roost's CA and a policy
//!   (JSON) attached, created through the registry API.
//! - [`Client`]: a raw MQTT client speaking `roost-mqtt`'s codec over rustls
//!   with the device's certificate. It sends any packet (or any bytes) and
//!   reads exactly what the gateway answers, so a test sees reason codes and
//!   closes, not what a client library makes of them.
//! - [`HttpsClient`]: device HTTPS publish on one kept-alive connection.
//! - [`StateDb`]: `gateway.db` read as it is on disk, and a way to hold its
//!   writer back ([`StateDb::hold_writes`]).
//!
//! A test reads:
//!
//! ```
//! use roost_testkit::mqtt::{Packet, ProtocolVersion, QoS, ReasonCode};
//! use roost_testkit::{Client, Gateway};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // Gateway::start() for the aws profile's defaults.
//! let gateway = Gateway::builder().max_queued_messages(10).start().await;
//! // A thing, a certificate from Roost's CA, an allow-all policy.
//! let device = gateway.device("sensor").await;
//! let mut client = Client::connected(&gateway, &device, ProtocolVersion::V5, "sensor").await;
//! gateway.detach_policy(&device).await;
//! let id = client.publish("t", b"x", QoS::AtLeastOnce).await;
//! match client.recv().await {
//!     Packet::PubAck(ack) => {
//!         assert_eq!((Some(ack.packet_id), ack.reason_code), (id, ReasonCode::NotAuthorized))
//!     }
//!     other => panic!("expected PUBACK 0x87, got {other:?}"),
//! }
//! # }
//! ```
//!
//! Where the tests are: the broker's in-process tests live in
//! `crates/roost-broker/tests/`, with this crate as a dev-dependency of
//! `roost-broker`. This crate depends on `roost-broker` itself, a
//! dev-dependency cycle Cargo allows: integration tests link the one
//! `roost-broker` library this crate links too. (Unit tests inside
//! `roost-broker/src` could not use the kit: they build a second copy of the
//! crate whose types differ from the kit's.)
//!
//! Every wait here is bounded by [`PATIENCE`] unless a test gives its own:
//! bounds end a hung test, they never measure speed. Setup that fails
//! panics with what failed: this crate only ever runs inside tests.
#![forbid(unsafe_code)]

mod client;
mod device;
mod gateway;
mod https;
mod state;

pub use client::{connect_packet, persistent_connect, will, Client, Ended, PausedHandshake};
pub use device::{allow_all, Device};
pub use gateway::{Gateway, GatewayBuilder};
pub use https::HttpsClient;
pub use state::{SavedMessage, SavedSession, StateDb, WriteHold};

/// Re-exported so tests build packets without naming the codec crate.
pub use roost_mqtt as mqtt;

use std::time::Duration;

/// How long the kit waits for something that should happen: long enough
/// for a loaded two-core machine, short enough that a hung test ends.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// Polls `condition` until it holds, for at most [`PATIENCE`]; false if it
/// never did.
pub async fn eventually(mut condition: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if condition() {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
