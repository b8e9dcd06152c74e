//! Accept loops. The loop only accepts: the TLS handshake, the certificate
//! lookup and the whole MQTT conversation run in the connection's own task,
//! with a permit from a semaphore that caps connections and handshakes in
//! progress together.

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
    let permits = Arc::new(Semaphore::new(broker.shared.config.limits.max_connections));
    let transport = Arc::new(transport);
    let mut backoff = Duration::from_millis(5);
    loop {
        let accepted = tokio::select! {
            _ = shutdown.changed() => return,
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
            // Boxed, like every phase below: a task is as large as its
            // largest state for its whole life.
            let handshake = Box::pin(tokio::time::timeout(
                shared.config.limits.handshake_timeout,
                acceptor.accept(stream),
            ))
            .await;
            let tls = match handshake {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    shared
                        .metrics
                        .tls_handshake_failures
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::info!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    shared
                        .metrics
                        .tls_handshake_timeouts
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::info!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let Some(der) = crate::tls::peer_certificate(tls.get_ref().1) else {
                shared
                    .metrics
                    .certificates_refused
                    .fetch_add(1, Ordering::Relaxed);
                return;
            };
            let authenticated = Box::pin(shared.registry.authenticate_device(der.as_ref())).await;
            drop(der);
            let certificate = match authenticated {
                Ok(Ok(cert)) => cert,
                Ok(Err(refusal)) => {
                    shared
                        .metrics
                        .certificates_refused
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::info!(%peer, reason = %refusal, "connection refused: certificate");
                    return;
                }
                Err(e) => {
                    tracing::error!(%peer, error = %e, "certificate lookup failed");
                    return;
                }
            };
            // Boxed: a TLS stream is large, and by value it would sit in this task's
            // future next to the copy the read/write split moves to the heap.
            Box::pin(connection::run(
                broker.clone(),
                Box::new(tls),
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
