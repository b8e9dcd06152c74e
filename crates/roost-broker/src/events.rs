//! AWS IoT lifecycle events: presence and subscription events published on
//! `$aws/events/…` with AWS's JSON shapes.

use serde_json::json;

fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Client ids containing wildcards produce no lifecycle events (AWS).
pub fn publishable(client_id: &str) -> bool {
    !client_id.contains(['+', '#'])
}

pub fn connected(
    client_id: &str,
    session: &str,
    principal: &str,
    ip: &str,
    version: u64,
) -> (String, Vec<u8>) {
    let body = json!({
        "clientId": client_id,
        "timestamp": now_millis(),
        "eventType": "connected",
        "sessionIdentifier": session,
        "principalIdentifier": principal,
        "ipAddress": ip,
        "versionNumber": version,
    });
    (
        format!("$aws/events/presence/connected/{client_id}"),
        body.to_string().into_bytes(),
    )
}

pub fn disconnected(
    client_id: &str,
    session: &str,
    principal: &str,
    client_initiated: bool,
    reason: &str,
    version: u64,
) -> (String, Vec<u8>) {
    let body = json!({
        "clientId": client_id,
        "timestamp": now_millis(),
        "eventType": "disconnected",
        "sessionIdentifier": session,
        "principalIdentifier": principal,
        "clientInitiatedDisconnect": client_initiated,
        "disconnectReason": reason,
        "versionNumber": version,
    });
    (
        format!("$aws/events/presence/disconnected/{client_id}"),
        body.to_string().into_bytes(),
    )
}

pub fn subscription(
    client_id: &str,
    session: &str,
    principal: &str,
    subscribed: bool,
    topics: &[String],
) -> (String, Vec<u8>) {
    let kind = if subscribed {
        "subscribed"
    } else {
        "unsubscribed"
    };
    let body = json!({
        "clientId": client_id,
        "timestamp": now_millis(),
        "eventType": kind,
        "sessionIdentifier": session,
        "principalIdentifier": principal,
        "topics": topics,
    });
    (
        format!("$aws/events/subscriptions/{kind}/{client_id}"),
        body.to_string().into_bytes(),
    )
}
