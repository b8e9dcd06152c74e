//! The MQTT listeners. Accepting (the cap, backoff, drain) is
//! `roost_listener`'s; here each accepted connection runs its TLS handshake,
//! is admitted (registered so revocation can close it, then its certificate
//! checked) and served, all in its own task.

use crate::tls::{DeviceCertificate, DeviceRefusal};
use crate::{connection, Broker, LiveEntry};
use roost_listener::ListenerStats;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::Instrument;

/// The principal plain-TCP connections act under: a registered certificate,
/// whose policies (and thing, when the client id names one attached to it)
/// apply exactly as if the client had presented it.
#[derive(Clone, Debug)]
pub struct PlainPrincipal {
    pub certificate_id: String,
}

impl Broker {
    /// Serves MQTT over TLS on `listener` until `shutdown`; returns once its
    /// connections have ended too.
    pub async fn serve_tls(
        &self,
        listener: TcpListener,
        tls: Arc<rustls::ServerConfig>,
        stats: Arc<ListenerStats>,
        shutdown: watch::Receiver<bool>,
    ) {
        serve(
            self.clone(),
            listener,
            Transport::Tls(tokio_rustls::TlsAcceptor::from(tls)),
            stats,
            shutdown,
        )
        .await
    }

    /// Serves MQTT over plain TCP on `listener`: every connection acts under
    /// `principal` and its policies.
    pub async fn serve_plain(
        &self,
        listener: TcpListener,
        principal: PlainPrincipal,
        stats: Arc<ListenerStats>,
        shutdown: watch::Receiver<bool>,
    ) {
        serve(
            self.clone(),
            listener,
            Transport::Plain(principal),
            stats,
            shutdown,
        )
        .await
    }
}

pub(crate) enum Transport {
    Tls(tokio_rustls::TlsAcceptor),
    Plain(PlainPrincipal),
}

pub(crate) async fn serve(
    broker: Broker,
    listener: TcpListener,
    transport: Transport,
    stats: Arc<ListenerStats>,
    shutdown: watch::Receiver<bool>,
) {
    let name = match transport {
        Transport::Tls(_) => "mqtt",
        Transport::Plain(_) => "mqtt_plain",
    };
    let config = &broker.shared.config;
    let config = config.device_listener(name, config.limits.max_connections);
    let transport = Arc::new(transport);
    let stop = shutdown.clone();
    roost_listener::serve(listener, config, stats, stop, move |stream, peer| {
        let (broker, transport, shutdown) = (broker.clone(), transport.clone(), shutdown.clone());
        // Every line logged for this connection carries who it is.
        let span = tracing::info_span!(
            "mqtt",
            %peer,
            cert_id = tracing::field::Empty,
            client_id = tracing::field::Empty
        );
        async move { handle(broker, stream, peer, &transport, shutdown).await }.instrument(span)
    })
    .await
}

async fn handle(
    broker: Broker,
    stream: TcpStream,
    peer: SocketAddr,
    transport: &Transport,
    shutdown: watch::Receiver<bool>,
) {
    match transport {
        Transport::Tls(acceptor) => {
            let timeout = broker.shared.config.limits.handshake_timeout;
            let admitted = match crate::tls::handshake(acceptor, stream, timeout).await {
                Ok((tls, certificate)) => admit(&broker, &certificate, peer)
                    .await
                    .map(|live| (tls, certificate, live)),
                Err(refusal) => {
                    count_refusal(&broker, &refusal, peer, roost_eventlog::Protocol::Mqtt);
                    None
                }
            };
            if let Some((tls, certificate, live)) = admitted {
                Box::pin(connection::run(
                    broker.clone(),
                    tls,
                    peer,
                    certificate,
                    live,
                    shutdown,
                ))
                .await;
            }
        }
        Transport::Plain(principal) => {
            let Some(certificate) = plain_principal(&broker, principal).await else {
                return;
            };
            if let Some(live) = admit(&broker, &certificate, peer).await {
                Box::pin(connection::run(
                    broker.clone(),
                    stream,
                    peer,
                    certificate,
                    live,
                    shutdown,
                ))
                .await;
            }
        }
    }
}

async fn admit(
    broker: &Broker,
    certificate: &DeviceCertificate,
    peer: SocketAddr,
) -> Option<LiveEntry> {
    tracing::Span::current().record("cert_id", certificate.id());
    match broker.admit_device(certificate).await {
        Ok(live) => Some(live),
        Err(refusal) => {
            count_refusal(broker, &refusal, peer, roost_eventlog::Protocol::Mqtt);
            None
        }
    }
}

/// Counts and logs why a device was not let in.
pub(crate) fn count_refusal(
    broker: &Broker,
    refusal: &DeviceRefusal,
    peer: SocketAddr,
    protocol: roost_eventlog::Protocol,
) {
    crate::event_log::device_refused(&broker.shared, refusal, peer, protocol);
    let metrics = &broker.shared.metrics;
    let counter = match refusal {
        DeviceRefusal::Lookup(_) => None,
        _ if refusal.is_certificate() => Some(&metrics.certificates_refused),
        DeviceRefusal::HandshakeTimeout => Some(&metrics.tls_handshake_timeouts),
        _ => Some(&metrics.tls_handshake_failures),
    };
    match counter {
        Some(c) => {
            c.fetch_add(1, Ordering::Relaxed);
            tracing::info!(%peer, reason = %refusal, "connection refused");
        }
        None => tracing::error!(%peer, reason = %refusal, "connection refused"),
    }
}

async fn plain_principal(broker: &Broker, principal: &PlainPrincipal) -> Option<DeviceCertificate> {
    let record = match broker
        .shared
        .registry
        .describe_certificate(&principal.certificate_id)
        .await
    {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "plain listener principal not found: connection refused");
            return None;
        }
    };
    match DeviceCertificate::from_pem(&record.pem) {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::error!(cert_id = %record.id, error = %e, "plain listener principal's certificate does not parse: connection refused");
            None
        }
    }
}
