//! `republish`: publish the payload to another topic through the broker
//! (so it reaches subscribers and other rules). `$$` in the topic stands for
//! a literal `$`, as in AWS.

use super::{template, ActionError};
use crate::Shared;
use roost_broker::Message;
use roost_mqtt::QoS;
use roost_sql::{Context, Output, SqlVersion, Template};
use serde_json::Value;

pub struct RepublishAction {
    pub topic_text: String,
    topic: Template,
    qos: QoS,
}

impl RepublishAction {
    pub fn parse(config: &Value, version: SqlVersion) -> Result<Self, String> {
        let topic = template(config, "topic", version).map_err(|e| format!("republish.{e}"))?;
        let qos = match config.get("qos").and_then(Value::as_i64).unwrap_or(0) {
            0 => QoS::AtMostOnce,
            1 => QoS::AtLeastOnce,
            other => return Err(format!("republish.qos must be 0 or 1, got {other}")),
        };
        if config.get("headers").is_some() {
            return Err(
                "republish.headers (MQTT 5 properties) are not supported by Roost yet".into(),
            );
        }
        Ok(Self {
            topic_text: config["topic"].as_str().unwrap_or_default().to_string(),
            topic,
            qos,
        })
    }

    pub async fn execute(
        &self,
        shared: &Shared,
        output: &Output,
        payload: &[u8],
        ctx: &Context<'_>,
    ) -> Result<(), ActionError> {
        let topic = self
            .topic
            .render(payload, ctx)
            .map_err(|e| ActionError::permanent(format!("rendering the topic: {e}")))?;
        let topic = topic.replace("$$", "$");
        let message = Message::new(topic, output.to_bytes(), self.qos);
        shared
            .broker
            .publish_as_service(message)
            .map(|_| ())
            .map_err(|e| ActionError::permanent(e.to_string()))
    }
}
