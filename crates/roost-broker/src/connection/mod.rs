//! One client connection: CONNECT, authorization, the session, and the
//! packet loop. Reading, delivering and keep-alive share one task and one
//! `select!`, so a connection's state needs no locks of its own; the session
//! (shared with the router) is locked only for short, await-free sections.
//!
//! A QoS 1 PUBLISH that changed durable state (queued for a persistent
//! session, retained) is answered once those changes are committed: its
//! PUBACK is held in `held_acks`, in order, and released when the journal
//! wakes the session. Clean sessions never hold an answer.
//!
//! Never: block on a client without a timeout, send a message the client's
//! policies do not let it receive, drop a message without counting it, or
//! acknowledge a QoS 1 message whose durable changes are not committed.

use crate::authz::{AuthzError, ConnectionAuthz};
use crate::connect::ConnectRefusal;
use crate::message::{Message, Outgoing, Subscription};
use crate::session::Session;
use crate::tls::DeviceCertificate;
use crate::{events, Broker, Kick, LiveEntry, Profile};
use bytes::BytesMut;
use roost_mqtt::{
    ConnAck, ConnAckProperties, Connect, Disconnect, Packet, ProtocolVersion, PubAck, PubComp,
    PubRec, PubRel, Publish, PublishProperties, QoS, ReasonCode, SubAck, Subscribe, UnsubAck,
    Unsubscribe, Will,
};
use roost_policy::Decision;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::watch;

mod close;
mod deliver;
mod framing;
mod log;
mod open;
mod publish;
mod request;
mod subscribe;

use framing::{read_packet, write_all, ReadError};
use open::open;
use publish::{room_in, HeldAck};

/// How many deliveries are encoded before the write buffer is flushed.
const DELIVERY_BATCH: usize = 64;

/// Read buffer sizes: small while a connection is idle (most of them are,
/// most of the time), large while data keeps coming, so that idle
/// connections cost little memory and busy ones few system calls.
const IDLE_READ_BUFFER: usize = 512;
const BUSY_READ_BUFFER: usize = 16 * 1024;

/// How long the last words to a closing client may take.
const CLOSING_WRITE: Duration = Duration::from_secs(1);

/// A write buffer larger than this is released after it is flushed.
const KEPT_WRITE_BUFFER: usize = 4 * 1024;

/// Why a connection ended; decides the will and the lifecycle event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Close {
    /// DISCONNECT from the client; `with_will` for MQTT 5 reason 0x04.
    ClientDisconnect {
        with_will: bool,
    },
    ConnectionLost,
    KeepAliveTimeout,
    /// A malformed packet or protocol violation: DISCONNECT with this reason (MQTT 5).
    ProtocolError(ReasonCode),
    /// A PUBLISH the policies refused on MQTT 3.1.1, which has no way to say no.
    Forbidden,
    /// The gateway state could not be saved, and the client has no other
    /// way to learn it (MQTT 3.1.1 PUBACK, any SUBACK/UNSUBACK): closing
    /// makes it send again.
    StateNotSaved,
    /// The cluster's stream did not store a QoS 1 message (3.1.1 cannot
    /// refuse one otherwise).
    NotStored,
    Kicked(Kick),
}

impl Close {
    fn disconnect_reason(self) -> &'static str {
        match self {
            Close::ClientDisconnect { .. } => "CLIENT_INITIATED_DISCONNECT",
            Close::ConnectionLost => "CONNECTION_LOST",
            Close::KeepAliveTimeout => "MQTT_KEEP_ALIVE_TIMEOUT",
            Close::ProtocolError(_) => "CLIENT_ERROR",
            Close::Forbidden => "FORBIDDEN_ACCESS",
            Close::StateNotSaved | Close::NotStored => "SERVER_INITIATED_DISCONNECT",
            Close::Kicked(Kick::TakenOver) => "DUPLICATE_CLIENTID",
            Close::Kicked(Kick::CertificateRevoked | Kick::CertificateExpired) => "AUTH_ERROR",
            Close::Kicked(Kick::SlowConsumer) => "THROTTLED",
            Close::Kicked(Kick::Shutdown) => "SERVER_INITIATED_DISCONNECT",
        }
    }

    /// Whether the will may go out (if the policies still allow it then).
    /// A connection closed because its certificate is no longer valid sends
    /// none: nothing it asked for may happen any more.
    fn sends_will(self) -> bool {
        !matches!(
            self,
            Close::ClientDisconnect { with_will: false }
                | Close::Kicked(Kick::CertificateRevoked | Kick::CertificateExpired)
        )
    }
}

struct Conn<R, W> {
    broker: Broker,
    reader: R,
    writer: W,
    rbuf: BytesMut,
    wbuf: BytesMut,
    peer: SocketAddr,
    /// The connection's place in the live table (closing signal, id).
    live: LiveEntry,
    protocol: ProtocolVersion,
    codec_limits: roost_mqtt::Limits,
    client_id: String,
    session: Arc<Session>,
    session_identifier: String,
    authz: ConnectionAuthz,
    keep_alive: Option<Duration>,
    last_received: Instant,
    client_max_packet: u32,
    client_receive_max: usize,
    /// Topic aliases the client set (MQTT 5, client to server).
    aliases: HashMap<u16, String>,
    will: Option<Will>,
    /// PUBACKs (PUBRECs) waiting for their PUBLISH's durable changes to be
    /// committed, in the order the PUBLISHes came; empty for clean sessions.
    held_acks: VecDeque<HeldAck>,
    /// The ticket the journal wakes this connection for, if any is pending.
    wake_ticket: u64,
    /// Subscribers' sessions this connection's publishes left past their
    /// queue's mark: until each has room, the socket is not read.
    waiting_for_room: Vec<Arc<Session>>,
    /// Since when it has been waiting (for the slow-consumer timeout).
    slowed_since: Option<Instant>,
    /// The socket is left unread until the subscribers have room.
    read_paused: bool,
    /// The connection's event log level, re-read when the logging
    /// configuration changes.
    event_level: roost_eventlog::ConnectionLevel,
}

fn codec_limits(broker: &Broker) -> roost_mqtt::Limits {
    let limits = &broker.shared.config.limits;
    match broker.shared.config.profile {
        Profile::Aws => roost_mqtt::Limits::default(),
        Profile::Full => roost_mqtt::Limits {
            max_packet_size: (limits.max_payload_bytes + 64 * 1024) as u32,
            max_payload_bytes: limits.max_payload_bytes,
            max_topic_bytes: usize::from(u16::MAX),
            max_client_id_bytes: usize::from(u16::MAX),
            max_user_properties_bytes: 64 * 1024,
        },
    }
}

/// Serves one connection whose client certificate (or plain-listener
/// principal) is `certificate`, until it ends.
pub(crate) async fn run<S>(
    broker: Broker,
    stream: S,
    peer: SocketAddr,
    certificate: DeviceCertificate,
    live: LiveEntry,
    mut shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    // Each phase is boxed so the task holds only the live phase's state: an
    // async fn's future is as large as its largest state, for as long as it
    // lives, and the phases differ a lot. What an idle connection keeps is
    // `Conn` and the small waiting state of `serve`.
    let Some(mut conn) =
        Box::pin(open(broker, stream, peer, certificate, live, &mut shutdown)).await
    else {
        return;
    };
    let close = Box::pin(conn.serve(&mut shutdown)).await;
    Box::pin(conn.finish(close)).await;
}

impl<R, W> Conn<R, W>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    fn shared(&self) -> &crate::Shared {
        &self.broker.shared
    }

    async fn serve(&mut self, shutdown: &mut watch::Receiver<bool>) -> Close {
        // A client may send its first packets in the same write as its
        // CONNECT: they are buffered already, and no read may come to
        // wake them up.
        if let Err(close) = Box::pin(self.handle_buffered()).await {
            return close;
        }
        let mut last_read_filled = false;
        loop {
            if !self.waiting_for_room.is_empty() {
                if let Err(close) = Box::pin(self.check_room()).await {
                    return close;
                }
            }
            if !self.held_acks.is_empty() {
                if let Err(close) = self.release_acks() {
                    return close;
                }
            }
            // Delivering and handling a read are boxed: their states are
            // large and short-lived, the wait below is small and long.
            if let Err(close) = Box::pin(self.deliver()).await {
                return close;
            }
            self.prepare_read_buffer(last_read_filled);
            let room = self.rbuf.capacity() - self.rbuf.len();
            // While the socket is not read, the client's keep-alive cannot
            // be seen: the slow-consumer timeout bounds the wait instead.
            let deadline = match self.read_paused {
                false => self.keep_alive.map(|k| self.last_received + k),
                true => None,
            };
            let slow_deadline = self
                .slowed_since
                .map(|at| at + self.shared().config.limits.slow_consumer_timeout);
            let waiting_on = self.waiting_for_room.first().cloned();
            let session = self.session.clone();
            let kick_signal = self.live.kick.clone();
            tokio::select! {
                read = self.reader.read_buf(&mut self.rbuf), if !self.read_paused => {
                    match read {
                        Ok(0) | Err(_) => return Close::ConnectionLost,
                        Ok(n) => {
                            last_read_filled = n >= room;
                            self.last_received = Instant::now();
                            if let Err(close) = Box::pin(self.handle_buffered()).await {
                                return close;
                            }
                        }
                    }
                }
                _ = session.wake.notified() => {}
                _ = room_in(waiting_on) => {}
                _ = sleep_until(slow_deadline) => self.cut_slow_consumers(),
                _ = sleep_until(deadline) => {
                    self.shared().metrics.keepalive_timeouts.fetch_add(1, Ordering::Relaxed);
                    return Close::KeepAliveTimeout;
                }
                kick = kick_signal.received() => return Close::Kicked(kick),
                _ = shutdown.changed() => return Close::Kicked(Kick::Shutdown),
            }
        }
    }

    async fn handle_buffered(&mut self) -> Result<(), Close> {
        // Paused, the rest of the buffer waits (it is read again on resume).
        while !self.read_paused {
            match roost_mqtt::decode(&mut self.rbuf, Some(self.protocol), &self.codec_limits) {
                Ok(Some(packet)) => self.handle(packet).await?,
                Ok(None) => break,
                Err(e) => {
                    self.shared()
                        .metrics
                        .protocol_errors
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::info!(error = %e, "closing: bad packet");
                    return Err(Close::ProtocolError(e.reason_code()));
                }
            }
        }
        self.flush().await
    }

    async fn handle(&mut self, packet: Packet) -> Result<(), Close> {
        match packet {
            Packet::Publish(publish) => self.on_publish(publish).await,
            Packet::PubAck(ack) => {
                let journal = self.broker.shared.journal();
                self.session.complete(ack.packet_id, false, journal);
                Ok(())
            }
            Packet::PubRec(rec) => {
                let journal = self.broker.shared.journal();
                self.session.release(rec.packet_id, journal);
                let rel = Packet::PubRel(PubRel {
                    packet_id: rec.packet_id,
                    reason_code: ReasonCode::Success,
                    properties: Default::default(),
                });
                self.encode(&rel);
                Ok(())
            }
            Packet::PubComp(comp) => {
                let journal = self.broker.shared.journal();
                self.session.complete(comp.packet_id, true, journal);
                Ok(())
            }
            Packet::PubRel(rel) => {
                let known = self.session.lock().inbound_qos2.remove(&rel.packet_id);
                let reason = if known {
                    ReasonCode::Success
                } else {
                    ReasonCode::PacketIdentifierNotFound
                };
                let comp = Packet::PubComp(PubComp {
                    packet_id: rel.packet_id,
                    reason_code: reason,
                    properties: Default::default(),
                });
                self.encode(&comp);
                Ok(())
            }
            Packet::Subscribe(subscribe) => self.on_subscribe(subscribe).await,
            Packet::Unsubscribe(unsubscribe) => self.on_unsubscribe(unsubscribe).await,
            Packet::PingReq => {
                self.encode(&Packet::PingResp);
                Ok(())
            }
            Packet::Disconnect(disconnect) => {
                if let Some(expiry) = disconnect.properties.session_expiry_interval {
                    if self.session.lock().expiry.is_zero() && expiry > 0 {
                        return Err(Close::ProtocolError(ReasonCode::ProtocolError));
                    }
                    let shared = &self.broker.shared;
                    let expiry = Duration::from_secs(u64::from(expiry))
                        .min(shared.config.limits.max_session_expiry);
                    self.session.set_expiry(expiry, shared.journal());
                }
                Err(Close::ClientDisconnect {
                    with_will: disconnect.reason_code == ReasonCode::DisconnectWithWillMessage,
                })
            }
            // No authentication method was agreed at CONNECT (a CONNECT with
            // one is refused), so the client may send no AUTH (spec 4.12).
            Packet::Auth(_) => Err(Close::ProtocolError(ReasonCode::ProtocolError)),
            // The codec refuses server-only packets and a second CONNECT.
            _ => Err(Close::ProtocolError(ReasonCode::ProtocolError)),
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
