//! Accept loops. The loop only accepts: the TLS handshake, the certificate
//! lookup and the whole MQTT conversation run in the connection's own task,
//! with a permit from a semaphore that caps connections and handshakes in
//! progress together.

use crate::tls::DeviceRefusal;
use crate::{connection, Broker};
use roost_registry::model::{Certificate, CertificateStatus};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

/// The principal plain-TCP connections act under: a registered certificate,
/// whose policies (and thing, when the client id names one attached to it)
/// apply exactly as if the client had presented it.
#[derive(Clone, Debug)]
pub struct PlainPrincipal {
    pub certificate_id: String,
}

pub(crate) enum Transport {
    Tls(tokio_rustls::TlsAcceptor),
    Plain(PlainPrincipal),
}

pub(crate) async fn serve(
    broker: Broker,
    listener: TcpListener,
    transport: Transport,
    mut shutdown: watch::Receiver<bool>,
) {
    let max_connections = broker.shared.config.limits.max_connections;
    let permits = Arc::new(Semaphore::new(max_connections));
    let transport = Arc::new(transport);
    let mut backoff = Duration::from_millis(5);
    loop {
        let accepted = tokio::select! {
            _ = shutdown.changed() => {
                // Returns once every connection has ended (and written its
                // last changes), so that the caller can stop what they use.
                let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
                let _ = permits.acquire_many(all).await;
                return;
            }
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => {
                backoff = Duration::from_millis(5);
                pair
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        broker
            .shared
            .metrics
            .connections_accepted
            .fetch_add(1, Ordering::Relaxed);
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            broker
                .shared
                .metrics
                .connections_refused_capacity
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%peer, "connection refused: max_connections reached");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let broker = broker.clone();
        let transport = transport.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            handle(broker, stream, peer, &transport, shutdown).await;
            drop(permit);
        });
    }
}

async fn handle(
    broker: Broker,
    stream: TcpStream,
    peer: SocketAddr,
    transport: &Transport,
    shutdown: watch::Receiver<bool>,
) {
    let shared = &broker.shared;
    match transport {
        Transport::Tls(acceptor) => {
            let limits = &shared.config.limits;
            let accepted = crate::tls::accept_device(
                acceptor,
                stream,
                limits.handshake_timeout,
                &shared.registry,
            )
            .await;
            let (tls, certificate) = match accepted {
                Ok(pair) => pair,
                Err(refusal) => {
                    let counter = match &refusal {
                        DeviceRefusal::HandshakeFailed(_) => {
                            Some(&shared.metrics.tls_handshake_failures)
                        }
                        DeviceRefusal::HandshakeTimeout => {
                            Some(&shared.metrics.tls_handshake_timeouts)
                        }
                        DeviceRefusal::NoCertificate | DeviceRefusal::Certificate(_) => {
                            Some(&shared.metrics.certificates_refused)
                        }
                        DeviceRefusal::Lookup(_) => None,
                    };
                    match counter {
                        Some(c) => {
                            c.fetch_add(1, Ordering::Relaxed);
                            tracing::info!(%peer, reason = %refusal, "connection refused");
                        }
                        None => tracing::error!(%peer, reason = %refusal, "connection refused"),
                    }
                    return;
                }
            };
            Box::pin(connection::run(
                broker.clone(),
                tls,
                peer,
                certificate,
                shutdown,
            ))
            .await;
        }
        Transport::Plain(principal) => {
            let certificate = match Box::pin(plain_principal(&broker, principal)).await {
                Some(c) => c,
                None => return,
            };
            Box::pin(connection::run(
                broker.clone(),
                stream,
                peer,
                certificate,
                shutdown,
            ))
            .await;
        }
    }
}

async fn plain_principal(broker: &Broker, principal: &PlainPrincipal) -> Option<Certificate> {
    match broker
        .shared
        .registry
        .describe_certificate(&principal.certificate_id)
        .await
    {
        Ok(c) if c.status == CertificateStatus::Active => Some(c),
        Ok(c) => {
            tracing::warn!(cert_id = %c.id, status = c.status.as_str(), "plain listener principal is not ACTIVE: connection refused");
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "plain listener principal not found: connection refused");
            None
        }
    }
}
