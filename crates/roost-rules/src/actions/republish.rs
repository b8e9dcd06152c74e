//! `republish`: publish the payload to another topic through the broker
//! (so it reaches subscribers and other rules). `$$` in the topic stands for
//! a literal `$`, as in AWS. `headers` set MQTT 5 properties, each value a
//! substitution template.

use super::{template, ActionError};
use crate::Shared;
use base64::Engine as _;
use roost_broker::Message;
use roost_mqtt::{PayloadFormat, QoS};
use roost_sql::{Context, Output, SqlVersion, Template};
use serde_json::Value;
use std::time::{Duration, Instant};

/// The MQTT 5 properties a republish sets (AWS's `MqttHeaders`).
#[derive(Default)]
struct Headers {
    payload_format_indicator: Option<Template>,
    content_type: Option<Template>,
    response_topic: Option<Template>,
    correlation_data: Option<Template>,
    message_expiry: Option<Template>,
    user_properties: Vec<(String, Template)>,
}

pub struct RepublishAction {
    pub topic_text: String,
    topic: Template,
    qos: QoS,
    // Boxed: most republish actions have no headers; keep the Action enum small.
    headers: Box<Headers>,
}

const HEADER_FIELDS: &[&str] = &[
    "payloadFormatIndicator",
    "contentType",
    "responseTopic",
    "correlationData",
    "messageExpiry",
    "userProperties",
];

fn parse_headers(config: &Value, version: SqlVersion) -> Result<Headers, String> {
    let Some(headers) = config.get("headers") else {
        return Ok(Headers::default());
    };
    let object = headers
        .as_object()
        .ok_or("republish.headers must be an object")?;
    if let Some(unknown) = object.keys().find(|k| !HEADER_FIELDS.contains(&k.as_str())) {
        return Err(format!(
            "republish.headers.{unknown} is not an MQTT header AWS defines ({})",
            HEADER_FIELDS.join(", ")
        ));
    }
    let field = |name: &str| -> Result<Option<Template>, String> {
        match object.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(_)) => template(headers, name, version)
                .map(Some)
                .map_err(|e| format!("republish.headers.{e}")),
            Some(_) => Err(format!("republish.headers.{name} must be a string")),
        }
    };
    let mut user_properties = Vec::new();
    for entry in object
        .get("userProperties")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = entry
            .get("key")
            .and_then(Value::as_str)
            .ok_or("republish.headers.userProperties[].key is required")?;
        let value = template(entry, "value", version)
            .map_err(|e| format!("republish.headers.userProperties[].{e}"))?;
        user_properties.push((key.to_string(), value));
    }
    Ok(Headers {
        payload_format_indicator: field("payloadFormatIndicator")?,
        content_type: field("contentType")?,
        response_topic: field("responseTopic")?,
        correlation_data: field("correlationData")?,
        message_expiry: field("messageExpiry")?,
        user_properties,
    })
}

impl RepublishAction {
    pub fn parse(config: &Value, version: SqlVersion) -> Result<Self, String> {
        let topic = template(config, "topic", version).map_err(|e| format!("republish.{e}"))?;
        let qos = match config.get("qos").and_then(Value::as_i64).unwrap_or(0) {
            0 => QoS::AtMostOnce,
            1 => QoS::AtLeastOnce,
            other => return Err(format!("republish.qos must be 0 or 1, got {other}")),
        };
        Ok(Self {
            topic_text: config["topic"].as_str().unwrap_or_default().to_string(),
            topic,
            qos,
            headers: Box::new(parse_headers(config, version)?),
        })
    }

    pub async fn execute(
        &self,
        shared: &Shared,
        output: &Output,
        payload: &[u8],
        ctx: &Context<'_>,
    ) -> Result<(), ActionError> {
        let render = |t: &Template, what: &str| {
            t.render(payload, ctx)
                .map_err(|e| ActionError::permanent(format!("rendering {what}: {e}")))
        };
        let topic = render(&self.topic, "the topic")?.replace("$$", "$");
        let mut message = Message::new(topic, output.to_bytes(), self.qos);
        let h = &self.headers;
        let p = &mut message.properties;
        if let Some(t) = &h.payload_format_indicator {
            p.payload_format_indicator = match render(t, "payloadFormatIndicator")?.as_str() {
                "UNSPECIFIED_BYTES" => Some(PayloadFormat::Unspecified),
                "UTF8_DATA" => Some(PayloadFormat::Utf8),
                other => {
                    return Err(ActionError::permanent(format!(
                        "payloadFormatIndicator '{other}' is not UNSPECIFIED_BYTES or UTF8_DATA"
                    )))
                }
            };
        }
        if let Some(t) = &h.content_type {
            p.content_type = Some(render(t, "contentType")?);
        }
        if let Some(t) = &h.response_topic {
            p.response_topic = Some(render(t, "responseTopic")?);
        }
        if let Some(t) = &h.correlation_data {
            let text = render(t, "correlationData")?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|_| ActionError::permanent("correlationData must be base64"))?;
            p.correlation_data = Some(bytes.into());
        }
        if let Some(t) = &h.message_expiry {
            let text = render(t, "messageExpiry")?;
            let secs: u32 = text.trim().parse().map_err(|_| {
                ActionError::permanent(format!(
                    "messageExpiry '{text}' is not a whole number of seconds"
                ))
            })?;
            p.message_expiry_interval = Some(secs);
            message.expires_at = Some(Instant::now() + Duration::from_secs(u64::from(secs)));
        }
        for (key, value) in &h.user_properties {
            let v = render(value, "a user property")?;
            message.properties.user_properties.push((key.clone(), v));
        }
        shared
            .broker
            .publish_as_service(message)
            .await
            .map(|_| ())
            .map_err(|e| match e {
                // The gateway state is failing to save: worth trying again.
                roost_broker::PublishRefusal::NotSaved => ActionError::transient(e.to_string()),
                e => ActionError::permanent(e.to_string()),
            })
    }
}
