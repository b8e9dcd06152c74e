//! `roost-canary`: the device agent of the scenario. Honeypot services that
//! look like what attackers want, every attempt reported over MQTT with
//! mutual TLS to Roost or AWS IoT Core, kept on disk until acknowledged.
//!
//! The pure parts (incidents, aggregation, configuration) do no I/O; the
//! outbox, the uplink and the services are the edges; `agent` wires them.
#![forbid(unsafe_code)]

pub mod agent;
pub mod aggregate;
pub mod config;
pub mod incident;
pub mod jobs;
pub mod lock;
pub mod outbox;
pub mod services;
pub mod status;
pub mod uplink;
