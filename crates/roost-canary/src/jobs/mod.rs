//! The canary's jobs agent: in the same process and on the same MQTT
//! connection as the honeypot, it runs the thing's jobs as AWS IoT's device
//! jobs API hands them out: `localScan` (the host's listening ports) and
//! `rotate-cert` (a new certificate installed only once it is checked, and
//! kept only once the gateway took it).
//!
//! `protocol`, `document` and `scan`'s parser are pure; `rotation` and
//! `state` touch files; `agent` is the edge that talks to the uplink.

pub mod agent;
pub mod document;
pub mod protocol;
pub mod rotation;
pub mod scan;
pub mod state;
