//! The device HTTPS endpoint (AWS IoT's port 8443): `POST /topics/{topic}`
//! with a client certificate, authorized as iot:Publish under the
//! certificate's policies.
//!
//! A connection is admitted like an MQTT one: registered in the live table
//! as soon as its handshake completes, so a revocation closes it (after the
//! answer in flight), then its certificate checked. Its authorization is
//! prepared once per connection and refreshed when the registry changes;
//! every request first makes sure it is fresh, which re-reads the
//! certificate's status after any change to it, so a request sent after a
//! revocation is refused even on a kept-alive connection.
//!
//! Never: read a header or a body without a deadline, or answer a request
//! whose certificate is no longer ACTIVE.

use crate::authz::{AuthzError, ConnectionAuthz};
use crate::listener::count_refusal;
use crate::{Broker, Kick, KickSignal, Message, PublishRefusal};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use percent_encoding::percent_decode_str;
use roost_eventlog::Protocol;
use roost_listener::ListenerStats;
use roost_mqtt::QoS;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Mutex};
use tracing::Instrument;

/// How long a closing connection may take to finish the answer in flight.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

impl Broker {
    /// Serves device HTTPS publish on `listener` until `shutdown`, at most
    /// `max_connections` at once; returns once its connections have ended.
    pub async fn serve_https(
        &self,
        listener: TcpListener,
        tls: Arc<rustls::ServerConfig>,
        max_connections: usize,
        stats: Arc<ListenerStats>,
        shutdown: watch::Receiver<bool>,
    ) {
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        let config = self.shared.config.device_listener("https", max_connections);
        let (broker, stop) = (self.clone(), shutdown.clone());
        roost_listener::serve(listener, config, stats, stop, move |stream, peer| {
            let (broker, acceptor, shutdown) = (broker.clone(), acceptor.clone(), shutdown.clone());
            let span = tracing::info_span!("https", %peer, cert_id = tracing::field::Empty);
            async move { serve_connection(broker, acceptor, stream, peer, shutdown).await }
                .instrument(span)
        })
        .await
    }
}

async fn serve_connection(
    broker: Broker,
    acceptor: tokio_rustls::TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
) {
    let limits = broker.shared.config.limits.clone();
    let (tls, certificate) =
        match crate::tls::handshake(&acceptor, stream, limits.handshake_timeout).await {
            Ok(pair) => pair,
            Err(refusal) => return count_refusal(&broker, &refusal, peer, Protocol::Http),
        };
    tracing::Span::current().record("cert_id", certificate.id());
    let live = match broker.admit_device(&certificate).await {
        Ok(live) => live,
        Err(refusal) => return count_refusal(&broker, &refusal, peer, Protocol::Http),
    };
    let registry = broker.shared.registry.clone();
    let metrics = broker.shared.metrics.clone();
    // The device's address (the proxied one behind a load balancer) for
    // aws:SourceIp, as on MQTT.
    let source_ip = Some(peer.ip());
    let authz =
        match ConnectionAuthz::new(registry, certificate.context, None, source_ip, metrics).await {
            Ok(authz) => Arc::new(Mutex::new(authz)),
            Err(e) => {
                tracing::info!(%peer, error = %e, "HTTPS connection refused");
                return;
            }
        };
    let kick = live.kick.clone();
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let (broker, authz, kick) = (broker.clone(), authz.clone(), kick.clone());
        async move { Ok::<_, std::convert::Infallible>(handle(&broker, &authz, &kick, peer, req).await) }
    });
    // Closed by a revocation (or expiry) of its certificate, or the server
    // stopping, after the answer in flight.
    let stop = async move {
        tokio::select! {
            kick = live.kick.received() => {
                tracing::info!(%peer, reason = ?kick, "closing HTTPS connection");
            }
            _ = shutdown.changed() => {}
        }
    };
    let header_timeout = limits.https_header_timeout;
    let served = roost_listener::serve_http1(tls, service, header_timeout, stop, CLOSE_GRACE);
    if let Err(e) = served.await {
        tracing::debug!(%peer, error = %e, "HTTPS connection ended with an error");
    }
}

type Answer = Response<Full<Bytes>>;

fn answer(status: StatusCode, message: &str) -> Answer {
    let body =
        serde_json::json!({ "message": message, "traceId": uuid::Uuid::new_v4().to_string() });
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

/// The publish a request asks for, or why it is refused.
fn parse_request(req: &Request<Incoming>) -> Result<(String, QoS, bool), (StatusCode, String)> {
    let refuse = |status, why: &str| Err((status, why.to_string()));
    let Some(raw_topic) = req.uri().path().strip_prefix("/topics/") else {
        return refuse(StatusCode::NOT_FOUND, "Not Found: use POST /topics/{topic}");
    };
    if req.method() != Method::POST {
        return refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method Not Allowed: use POST",
        );
    }
    let Ok(topic) = percent_decode_str(raw_topic).decode_utf8() else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "the topic is not valid percent-encoded UTF-8",
        );
    };
    let mut qos = QoS::AtMostOnce;
    let mut retain = false;
    let pairs = req.uri().query().unwrap_or("").split('&');
    for pair in pairs.filter(|p| !p.is_empty()) {
        match pair.split_once('=').unwrap_or((pair, "")) {
            ("qos", "0") => qos = QoS::AtMostOnce,
            ("qos", "1") => qos = QoS::AtLeastOnce,
            ("qos", other) => {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    &format!("qos must be 0 or 1, got '{other}'"),
                )
            }
            ("retain", "true") => retain = true,
            ("retain", "false") => retain = false,
            ("retain", other) => {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    &format!("retain must be true or false, got '{other}'"),
                )
            }
            _ => {}
        }
    }
    Ok((topic.into_owned(), qos, retain))
}

async fn handle(
    broker: &Broker,
    authz: &Mutex<ConnectionAuthz>,
    kick: &KickSignal,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Answer {
    // A service's request (the jobs data plane), or a publish.
    let service = (!req.uri().path().starts_with("/topics/"))
        .then(|| broker.shared.device_service.get().cloned())
        .flatten()
        .and_then(|service| {
            let route = service.http_route(req.method().as_str(), req.uri().path())?;
            Some((service, route))
        });
    let publish = match &service {
        Some(_) => None,
        None => match parse_request(&req) {
            Ok(parsed) => Some(parsed),
            Err((status, why)) => return answer(status, &why),
        },
    };
    let (method, raw_path) = (req.method().to_string(), req.uri().path().to_string());
    let query = req.uri().query().unwrap_or_default().to_string();
    let limits = &broker.shared.config.limits;
    let max = limits.max_payload_bytes;
    let body = Limited::new(req.into_body(), max).collect();
    let body = match tokio::time::timeout(limits.https_body_timeout, body).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            let why = format!("the payload is larger than {max} bytes");
            return answer(StatusCode::PAYLOAD_TOO_LARGE, &why);
        }
        Ok(Err(_)) => return answer(StatusCode::BAD_REQUEST, "the request body was cut short"),
        Err(_) => {
            return answer(
                StatusCode::REQUEST_TIMEOUT,
                "the request body did not arrive in time",
            )
        }
    };
    let mut authz = authz.lock().await;
    match authz.ensure_fresh().await {
        Ok(_) => {}
        Err(AuthzError::Refused(why)) => {
            tracing::info!(cert_id = %authz.certificate_id(), reason = %why, "HTTPS request refused: certificate no longer ACTIVE");
            kick.send(Kick::CertificateRevoked);
            return answer(StatusCode::FORBIDDEN, "Forbidden");
        }
        Err(AuthzError::Registry(e)) => {
            tracing::error!(error = %e, "HTTPS request refused: the registry did not answer");
            return answer(
                StatusCode::SERVICE_UNAVAILABLE,
                "the gateway is unavailable",
            );
        }
    }
    let Some((topic, qos, retain)) = publish else {
        let Some((service, route)) = service else {
            return answer(StatusCode::NOT_FOUND, "Not Found");
        };
        return ask_service(&authz, service, route, method, raw_path, query, body).await;
    };
    let mut message = Message::new(topic, body, qos);
    message.retain = retain;
    let logged = crate::event_log::HttpsPublish::new(&broker.shared, &authz, peer, &message);
    let published = broker.publish_as_device(&authz, message).await;
    logged.outcome(&broker.shared, &published);
    match published {
        Ok(_) => answer(StatusCode::OK, "OK"),
        Err(PublishRefusal::NotAuthorized) => answer(StatusCode::FORBIDDEN, "Forbidden"),
        Err(e @ PublishRefusal::PayloadTooLarge(_)) => {
            answer(StatusCode::PAYLOAD_TOO_LARGE, &e.to_string())
        }
        Err(PublishRefusal::Unavailable(_) | PublishRefusal::NotSaved) => answer(
            StatusCode::SERVICE_UNAVAILABLE,
            "the gateway is unavailable",
        ),
        Err(e) => answer(StatusCode::BAD_REQUEST, &e.to_string()),
    }
}

/// A device service's HTTPS request: its action on the thing authorized by
/// the device's policies, then answered by the service.
async fn ask_service(
    authz: &ConnectionAuthz,
    service: std::sync::Arc<dyn crate::service::DeviceService>,
    route: crate::service::HttpRoute,
    method: String,
    raw_path: String,
    query: String,
    body: Bytes,
) -> Answer {
    if authz.decide(route.action, "thing", &route.thing_name, &[])
        != roost_policy::Decision::Allowed
    {
        tracing::info!(cert_id = %authz.certificate_id(), action = ?route.action, thing = %route.thing_name, "denied (HTTPS)");
        return answer(StatusCode::FORBIDDEN, "Forbidden");
    }
    let reply = service
        .answer_http(crate::service::HttpRequest {
            method,
            raw_path,
            query,
            body,
            certificate_id: authz.certificate_id().to_string(),
        })
        .await;
    let mut response = Response::new(Full::new(Bytes::from(reply.body)));
    *response.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    if let Some(error_type) = reply.error_type {
        response.headers_mut().insert(
            "x-amzn-ErrorType",
            hyper::header::HeaderValue::from_static(error_type),
        );
    }
    response
}
