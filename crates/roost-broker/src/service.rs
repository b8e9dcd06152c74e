//! Services that answer devices on reserved topics (the jobs API; later
//! shadows): the narrow interface through which they attach to the broker.
//!
//! A PUBLISH whose topic a service claims is authorized like any other
//! (`iot:Publish`), then handed to the service instead of being routed:
//! other clients and rules never see it. The service's replies go to the
//! requesting connection alone, through its own session queue, so they are
//! delivered (and checked against `iot:Receive`) like any message, whether
//! or not the client subscribed to them.
//!
//! The connection waits for the answer before reading its next packet: a
//! device's requests are answered in the order it sent them.

use bytes::Bytes;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// One request a device published on a claimed topic.
#[derive(Clone, Debug)]
pub struct DeviceRequest {
    pub topic: String,
    pub payload: Bytes,
    pub client_id: String,
    /// The certificate the connection authenticated with.
    pub certificate_id: String,
}

/// One reply to the requester.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub topic: String,
    pub payload: Vec<u8>,
}

/// What a service's answer is: its replies, when ready.
pub type Answer<'a> = Pin<Box<dyn Future<Output = Vec<Reply>> + Send + 'a>>;

/// A device's request on the device HTTPS port that a service answers
/// (the jobs data plane), after the broker has authorized [`HttpRoute`].
#[derive(Clone, Debug)]
pub struct HttpRequest {
    pub method: String,
    /// As it came, percent-encoded.
    pub raw_path: String,
    pub query: String,
    pub body: Bytes,
    pub certificate_id: String,
}

/// What a device HTTPS request needs from the device's policies: `action`
/// on `thing/{thing_name}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRoute {
    pub action: roost_policy::Action,
    pub thing_name: String,
}

/// A service's answer on the device HTTPS port: a JSON body, and for a
/// refusal the AWS error type (`x-amzn-ErrorType`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpReply {
    pub status: u16,
    pub error_type: Option<&'static str>,
    pub body: Vec<u8>,
}

/// What a service's HTTPS answer is, when ready.
pub type HttpAnswer<'a> = Pin<Box<dyn Future<Output = HttpReply> + Send + 'a>>;

pub trait DeviceService: Send + Sync {
    /// Whether PUBLISHes to `topic` are the service's (and not routed).
    fn claims(&self, topic: &str) -> bool;
    /// Answers one request. Must not fail: a request it cannot serve is
    /// answered with a rejection reply.
    fn answer(&self, request: DeviceRequest) -> Answer<'_>;
    /// Whether a device HTTPS request (other than `/topics/...`) is the
    /// service's, and what it must be authorized for.
    fn http_route(&self, _method: &str, _raw_path: &str) -> Option<HttpRoute> {
        None
    }
    /// Answers a device HTTPS request [`Self::http_route`] claimed.
    fn answer_http(&self, _request: HttpRequest) -> HttpAnswer<'_> {
        Box::pin(async {
            HttpReply {
                status: 404,
                error_type: Some("ResourceNotFoundException"),
                body: br#"{"message":"no such operation"}"#.to_vec(),
            }
        })
    }
}

impl crate::Broker {
    /// Attaches the service that answers devices on its reserved topics
    /// (once; before listeners open).
    pub fn set_device_service(&self, service: Arc<dyn DeviceService>) {
        let _ = self.shared.device_service.set(service);
    }
}

impl crate::Shared {
    /// The service claiming `topic`, if any.
    pub(crate) fn device_service_for(&self, topic: &str) -> Option<Arc<dyn DeviceService>> {
        self.device_service
            .get()
            .filter(|service| service.claims(topic))
            .cloned()
    }
}
