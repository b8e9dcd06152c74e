//! What both load generators share: `roost-bench` (MQTT brokers) and
//! `canary-load` (an attacker's load on roost-canary).
#![forbid(unsafe_code)]

pub mod process;

use std::net::SocketAddr;

/// Parses `IP:PORT` and refuses anything but a loopback address.
pub fn parse_loopback(text: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = text.parse().map_err(|_| {
        format!("'{text}' is not IP:PORT (e.g. 127.0.0.1:8883); host names are not resolved")
    })?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "refusing to load {addr}: roost-bench only connects to loopback addresses (127.0.0.0/8, ::1)"
        ));
    }
    Ok(addr)
}
