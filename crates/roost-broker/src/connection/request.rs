//! A PUBLISH to a topic a device service claims (`crate::service`): the
//! service answers, its replies go into this connection's own session
//! queue (delivered, and checked against `iot:Receive`, like any message),
//! then the PUBLISH is acknowledged.

use super::*;
use crate::service::{DeviceRequest, DeviceService};

impl<R, W> Conn<R, W>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    pub(super) async fn ask_service(
        &mut self,
        service: Arc<dyn DeviceService>,
        publish: Publish,
    ) -> Result<(), Close> {
        let request = DeviceRequest {
            topic: publish.topic,
            payload: publish.payload,
            client_id: self.client_id.clone(),
            certificate_id: self.authz.certificate_id().to_string(),
        };
        let replies = service.answer(request).await;
        // At the request's QoS (QoS 2 requests get QoS 1 replies).
        let qos = publish.qos.min(QoS::AtLeastOnce);
        let shared = &self.broker.shared;
        for reply in replies {
            let outgoing = Outgoing {
                message: Arc::new(Message::new(reply.topic, reply.payload, qos)),
                qos,
                retain: false,
                subscription_ids: Vec::new(),
                dup: false,
                seq: 0,
            };
            self.session
                .enqueue(outgoing, &shared.config.limits, &shared.metrics, None);
        }
        match publish.packet_id {
            Some(packet_id) => {
                self.ack_in_order(publish.qos, packet_id, ReasonCode::Success)
                    .await
            }
            None => Ok(()),
        }
    }
}
