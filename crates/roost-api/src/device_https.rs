//! The device HTTPS endpoint (AWS IoT's port 8443): `POST /topics/{topic}`
//! with a client certificate, authorized as iot:Publish under the
//! certificate's policies. The TLS handshake and the certificate lookup run
//! in the connection's task, never in the accept loop.

use crate::data::refusal;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use percent_encoding::percent_decode_str;
use roost_broker::{Broker, Message};
use roost_mqtt::QoS;
use roost_registry::model::Certificate;
use roost_registry::Registry;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

/// Connections (and handshakes) the HTTPS endpoint serves at once.
pub const MAX_CONNECTIONS: usize = 1024;
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The body limit: AWS's 128 KiB payload.
pub const MAX_BODY_BYTES: usize = roost_mqtt::AWS_MAX_PAYLOAD_BYTES;

pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    registry: Registry,
    broker: Broker,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "HTTPS accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "HTTPS connection refused: too many connections");
            continue;
        };
        let (acceptor, registry, broker) = (acceptor.clone(), registry.clone(), broker.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let accepted =
                roost_broker::tls::accept_device(&acceptor, stream, HANDSHAKE_TIMEOUT, &registry)
                    .await;
            let (tls, certificate) = match accepted {
                Ok((tls, certificate)) => (tls, Arc::new(certificate)),
                Err(refusal) => {
                    tracing::info!(%peer, reason = %refusal, "HTTPS connection refused");
                    return;
                }
            };
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let (broker, certificate) = (broker.clone(), certificate.clone());
                async move {
                    Ok::<_, std::convert::Infallible>(
                        handle(&broker, &certificate, req.map(Body::new)).await,
                    )
                }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30))
                .serve_connection(TokioIo::new(tls), service)
                .await
            {
                tracing::debug!(%peer, error = %e, "HTTPS connection ended with an error");
            }
        });
    }
}

fn answer(status: StatusCode, message: &str) -> Response {
    let body = json!({ "message": message, "traceId": uuid::Uuid::new_v4().to_string() });
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn handle(broker: &Broker, certificate: &Certificate, req: Request<Body>) -> Response {
    let path = req.uri().path().to_string();
    let Some(raw_topic) = path.strip_prefix("/topics/") else {
        return answer(StatusCode::NOT_FOUND, "Not Found: use POST /topics/{topic}");
    };
    if req.method() != axum::http::Method::POST {
        return answer(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method Not Allowed: use POST",
        );
    }
    let Ok(topic) = percent_decode_str(raw_topic).decode_utf8() else {
        return answer(
            StatusCode::BAD_REQUEST,
            "the topic is not valid percent-encoded UTF-8",
        );
    };
    let topic = topic.into_owned();
    let mut qos = QoS::AtMostOnce;
    let mut retain = false;
    for pair in req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        match pair.split_once('=').unwrap_or((pair, "")) {
            ("qos", "0") => qos = QoS::AtMostOnce,
            ("qos", "1") => qos = QoS::AtLeastOnce,
            ("qos", other) => {
                return answer(
                    StatusCode::BAD_REQUEST,
                    &format!("qos must be 0 or 1, got '{other}'"),
                )
            }
            ("retain", "true") => retain = true,
            ("retain", "false") => retain = false,
            ("retain", other) => {
                return answer(
                    StatusCode::BAD_REQUEST,
                    &format!("retain must be true or false, got '{other}'"),
                )
            }
            _ => {}
        }
    }
    let body = match axum::body::to_bytes(req.into_body(), MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            return answer(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("the payload is larger than {MAX_BODY_BYTES} bytes"),
            )
        }
    };
    let mut message = Message::new(topic, body, qos);
    message.retain = retain;
    match broker.publish_as_device(certificate, message).await {
        Ok(_) => answer(StatusCode::OK, "OK"),
        Err(e) => {
            let api = refusal(e);
            let status = if api.status == 401 {
                StatusCode::FORBIDDEN
            } else {
                StatusCode::from_u16(api.status).unwrap_or(StatusCode::BAD_REQUEST)
            };
            answer(
                status,
                if status == StatusCode::FORBIDDEN {
                    "Forbidden"
                } else {
                    &api.message
                },
            )
        }
    }
}
