//! The `iot-data` operations on the API port (signing name `iotdata`):
//! Publish, GetRetainedMessage and ListRetainedMessages, so
//! `aws iot-data publish --endpoint-url …` reaches MQTT subscribers.

use crate::error::{ApiError, ApiResult};
use crate::ops::listing;
use crate::request::ApiRequest;
use crate::ApiState;
use base64::Engine;
use roost_broker::{Message, PublishRefusal};
use roost_mqtt::{PayloadFormat, QoS};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

pub async fn dispatch(state: &ApiState, req: &ApiRequest) -> ApiResult<Value> {
    let segments: Vec<&str> = req.segments.iter().map(String::as_str).collect();
    match (req.method.as_str(), segments.as_slice()) {
        ("POST", ["topics", topic]) => publish(state, req, topic).await,
        ("GET", ["retainedMessage"]) => list_retained(state, req),
        ("GET", ["retainedMessage", topic]) => get_retained(state, topic),
        (method, _) => Err(ApiError::new(
            404,
            "UnknownOperationException",
            format!(
                "Roost does not serve {method} {} in the iot-data API",
                req.raw_path
            ),
        )),
    }
}

pub(crate) fn refusal(e: PublishRefusal) -> ApiError {
    match e {
        PublishRefusal::NotAuthorized => ApiError::new(401, "UnauthorizedException", e.to_string()),
        PublishRefusal::PayloadTooLarge(_) => {
            ApiError::new(413, "RequestEntityTooLargeException", e.to_string())
        }
        PublishRefusal::Unavailable(_) | PublishRefusal::NotSaved => ApiError::new(
            503,
            "ServiceUnavailableException",
            "the gateway is unavailable",
        ),
        _ => ApiError::invalid(e.to_string()),
    }
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// Answers once the message is routed and, for QoS 1, once what it changed
/// in the gateway state (persistent sessions, retained) is saved.
async fn publish(state: &ApiState, req: &ApiRequest, topic: &str) -> ApiResult<Value> {
    let qos = match req.query_i64("qos")?.unwrap_or(0) {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        other => {
            return Err(ApiError::invalid(format!(
                "qos must be 0 or 1, got {other}"
            )))
        }
    };
    let mut message = Message::new(topic, bytes::Bytes::copy_from_slice(&req.body), qos);
    message.retain = req.query_bool("retain")?.unwrap_or(false);
    let p = &mut message.properties;
    p.content_type = req.query("contentType").map(str::to_string);
    p.response_topic = req.query("responseTopic").map(str::to_string);
    if let Some(expiry) = req.query_i64("messageExpiry")? {
        if !(0..=i64::from(u32::MAX)).contains(&expiry) {
            return Err(ApiError::invalid("messageExpiry is out of range"));
        }
        p.message_expiry_interval = Some(expiry as u32);
        message.expires_at = Some(Instant::now() + Duration::from_secs(expiry as u64));
    }
    let p = &mut message.properties;
    p.payload_format_indicator = match req.header("x-amz-mqtt5-payload-format-indicator") {
        None => None,
        Some("UNSPECIFIED_BYTES") => Some(PayloadFormat::Unspecified),
        Some("UTF8_DATA") => Some(PayloadFormat::Utf8),
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "payloadFormatIndicator '{other}' is not UNSPECIFIED_BYTES or UTF8_DATA"
            )))
        }
    };
    if let Some(data) = req.header("x-amz-mqtt5-correlation-data") {
        p.correlation_data = Some(
            b64()
                .decode(data)
                .map_err(|_| ApiError::invalid("correlationData must be base64"))?
                .into(),
        );
    }
    if let Some(props) = req.header("x-amz-mqtt5-user-properties") {
        // The CLI sends base64 of a JSON list of one-key objects.
        let decoded = b64()
            .decode(props)
            .map_err(|_| ApiError::invalid("userProperties must be base64-encoded JSON"))?;
        let list: Vec<serde_json::Map<String, Value>> = serde_json::from_slice(&decoded)
            .map_err(|_| ApiError::invalid("userProperties must be a JSON list of objects"))?;
        for entry in list {
            for (k, v) in entry {
                let v = v
                    .as_str()
                    .ok_or_else(|| ApiError::invalid("userProperties values must be strings"))?;
                p.user_properties.push((k, v.to_string()));
            }
        }
    }
    state
        .broker()
        .publish_as_service(message)
        .await
        .map_err(refusal)?;
    Ok(json!({}))
}

fn get_retained(state: &ApiState, topic: &str) -> ApiResult<Value> {
    let (message, modified) = state
        .broker()
        .retained(topic)
        .ok_or_else(|| ApiError::not_found(format!("No retained message on topic {topic}")))?;
    let mut out = json!({
        "topic": message.topic,
        "payload": b64().encode(&message.payload),
        "qos": message.qos as u8,
        "lastModifiedTime": modified,
    });
    if !message.properties.user_properties.is_empty() {
        let list: Vec<Value> = message
            .properties
            .user_properties
            .iter()
            .map(|(k, v)| json!({ k: v }))
            .collect();
        out["userProperties"] = json!(b64().encode(Value::Array(list).to_string()));
    }
    Ok(out)
}

fn list_retained(state: &ApiState, req: &ApiRequest) -> ApiResult<Value> {
    let max = match req.query_i64("maxResults")? {
        None => 200,
        Some(n) if (1..=200).contains(&n) => n as usize,
        Some(n) => {
            return Err(ApiError::invalid(format!(
                "maxResults {n} is out of range: it must be between 1 and 200"
            )))
        }
    };
    let after = match req.query("nextToken") {
        None => None,
        Some(t) => Some(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(t)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| ApiError::invalid("nextToken is not valid"))?,
        ),
    };
    let mut all: Vec<_> = state
        .broker()
        .retained_messages()
        .into_iter()
        .filter(|(m, _)| after.as_ref().is_none_or(|a| &m.topic > a))
        .collect();
    let next = (all.len() > max)
        .then(|| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&all[max - 1].0.topic));
    all.truncate(max);
    let items = all
        .iter()
        .map(|(m, modified)| json!({ "topic": m.topic, "payloadSize": m.payload.len(), "qos": m.qos as u8, "lastModifiedTime": modified }))
        .collect();
    Ok(listing(
        "retainedTopics",
        Value::Array(items),
        "nextToken",
        next,
    ))
}
