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
use crate::router::Message;
use crate::session::{Outgoing, Session};
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
            Close::StateNotSaved => "SERVER_INITIATED_DISCONNECT",
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
}

/// An answer to a QoS 1/2 PUBLISH held until `ticket` is committed.
#[derive(Clone, Copy, Debug)]
struct HeldAck {
    packet_id: u16,
    qos: QoS,
    reason: ReasonCode,
    ticket: u64,
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

pub(crate) fn topic_limits(profile: Profile) -> roost_topic::TopicLimits {
    match profile {
        Profile::Aws => roost_topic::TopicLimits::aws(),
        Profile::Full => roost_topic::TopicLimits::general(),
    }
}

/// Reads until one packet decodes. `Ok(None)`: the peer closed.
async fn read_packet<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut BytesMut,
    protocol: Option<ProtocolVersion>,
    limits: &roost_mqtt::Limits,
) -> Result<Option<Packet>, ReadError> {
    loop {
        if let Some(packet) =
            roost_mqtt::decode(buf, protocol, limits).map_err(ReadError::Decode)?
        {
            return Ok(Some(packet));
        }
        if reader.read_buf(buf).await.map_err(|_| ReadError::Io)? == 0 {
            return Ok(None);
        }
    }
}

enum ReadError {
    Decode(roost_mqtt::DecodeError),
    Io,
}

async fn write_all<W: AsyncWrite + Unpin>(
    writer: &mut W,
    buf: &mut BytesMut,
    timeout: Duration,
) -> bool {
    let ok = tokio::time::timeout(timeout, async {
        writer.write_all(buf).await?;
        writer.flush().await
    })
    .await
    .is_ok_and(|r| r.is_ok());
    buf.clear();
    ok
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

/// Reads the CONNECT (within the connect timeout) and answers it: the
/// connection ready to serve, or `None` when it was refused or went away.
async fn open<S>(
    broker: Broker,
    stream: S,
    peer: SocketAddr,
    certificate: DeviceCertificate,
    live: LiveEntry,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<Conn<ReadHalf<S>, WriteHalf<S>>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let shared = broker.shared.clone();
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut rbuf = BytesMut::with_capacity(IDLE_READ_BUFFER);
    let mut wbuf = BytesMut::new();
    let limits = codec_limits(&broker);
    // A revocation closes the connection while it waits for CONNECT too.
    let kick = live.kick.clone();
    let first = tokio::select! {
        first = tokio::time::timeout(shared.config.limits.connect_timeout, read_packet(&mut reader, &mut rbuf, None, &limits)) => first,
        kick = kick.received() => {
            if matches!(kick, Kick::CertificateRevoked | Kick::CertificateExpired) {
                tracing::info!("closed before CONNECT: certificate no longer valid");
            }
            return None;
        }
        _ = shutdown.changed() => return None,
    };
    let connect = match first {
        Ok(Ok(Some(Packet::Connect(connect)))) => connect,
        Ok(Ok(_)) | Ok(Err(ReadError::Io)) => return None,
        Ok(Err(ReadError::Decode(e))) => {
            shared
                .metrics
                .protocol_errors
                .fetch_add(1, Ordering::Relaxed);
            tracing::info!(error = %e, "refused CONNECT");
            if let Some((answer, protocol)) = e.answer() {
                if roost_mqtt::encode(&answer, protocol, &mut wbuf).is_ok() {
                    write_all(&mut writer, &mut wbuf, shared.config.limits.write_timeout).await;
                }
            }
            return None;
        }
        Err(_) => {
            shared
                .metrics
                .connect_timeouts
                .fetch_add(1, Ordering::Relaxed);
            tracing::info!("no CONNECT in time");
            return None;
        }
    };
    accept_connect(
        broker,
        reader,
        writer,
        rbuf,
        wbuf,
        peer,
        certificate,
        live,
        connect,
    )
    .await
}

/// Refuses a CONNECT with `reason` (CONNACK in the client's version).
async fn refuse<W: AsyncWrite + Unpin>(
    writer: &mut W,
    wbuf: &mut BytesMut,
    protocol: ProtocolVersion,
    reason: ReasonCode,
    timeout: Duration,
) {
    // 3.1.1 has only a few return codes: anything it cannot say becomes "not authorized".
    let reason_code = match protocol {
        ProtocolVersion::V311 if reason.connack_v311().is_none() => ReasonCode::NotAuthorized,
        _ => reason,
    };
    let connack = Packet::ConnAck(ConnAck {
        session_present: false,
        reason_code,
        properties: ConnAckProperties::default(),
    });
    if roost_mqtt::encode(&connack, protocol, wbuf).is_ok() {
        write_all(writer, wbuf, timeout).await;
    }
}

#[allow(clippy::too_many_arguments)]
async fn accept_connect<R, W>(
    broker: Broker,
    reader: R,
    mut writer: W,
    rbuf: BytesMut,
    mut wbuf: BytesMut,
    peer: SocketAddr,
    certificate: DeviceCertificate,
    live: LiveEntry,
    connect: Connect,
) -> Option<Conn<R, W>>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    let shared = broker.shared.clone();
    let config = &shared.config;
    let limits = &config.limits;
    let protocol = connect.protocol;
    let granted = match crate::connect::decide(&shared, &certificate, peer, &connect).await {
        Ok(granted) => granted,
        Err(refusal) => {
            let reason = refusal.reason_code();
            if let ConnectRefusal::Unavailable(e) = &refusal {
                tracing::error!(error = %e, "CONNECT refused: the registry did not answer");
            } else {
                shared
                    .metrics
                    .connects_refused
                    .fetch_add(1, Ordering::Relaxed);
                tracing::info!(client_id = %connect.client_id, why = %refusal, ?reason, "CONNECT refused");
            }
            refuse(
                &mut writer,
                &mut wbuf,
                protocol,
                reason,
                limits.write_timeout,
            )
            .await;
            return None;
        }
    };
    let crate::connect::Granted {
        client_id,
        assigned_client_id: assigned,
        requested_expiry,
        expiry,
        keep_alive,
        server_keep_alive,
        authz,
    } = granted;
    tracing::Span::current().record("client_id", client_id.as_str());

    // Take over: an existing connection with this client id is closed.
    live.take_client_id(&client_id);
    let conn_id = live.conn_id;
    // A clean start discards the old session; so does taking over a session
    // that was to end with its connection (expiry 0), which is over now. A
    // session whose expiry passed is over too, even if the housekeeping
    // sweep has not removed it yet: expiry is exact at reconnect.
    if let Some(old) = shared.sessions.get(&client_id) {
        let (ended, expired) = {
            let state = old.lock();
            (state.expiry.is_zero(), state.expired(Instant::now()))
        };
        if expired {
            if shared.end_session(&old) {
                shared
                    .metrics
                    .sessions_expired
                    .fetch_add(1, Ordering::Relaxed);
                tracing::info!("persistent session expired");
            }
        } else if connect.clean_start || ended {
            shared.end_session(&old);
        }
    }
    let (session, resumed) = shared.sessions.open(&client_id, connect.clean_start);
    let pending_releases = session.attach(conn_id, expiry, shared.journal());

    let mut properties = ConnAckProperties::default();
    if protocol == ProtocolVersion::V5 {
        properties.assigned_client_identifier = assigned;
        properties.server_keep_alive = server_keep_alive;
        properties.topic_alias_maximum = Some(limits.topic_alias_maximum);
        properties.receive_maximum = Some(limits.max_inflight.max(1));
        properties.maximum_packet_size = Some(codec_limits(&broker).max_packet_size);
        properties.retain_available = Some(true);
        properties.wildcard_subscription_available = Some(true);
        properties.shared_subscription_available = Some(true);
        properties.subscription_identifiers_available = Some(false);
        if config.profile == Profile::Aws {
            properties.maximum_qos = Some(QoS::AtLeastOnce);
        }
        if requested_expiry != expiry {
            properties.session_expiry_interval = Some(expiry.as_secs() as u32);
        }
    }
    let connack = Packet::ConnAck(ConnAck {
        session_present: resumed && !connect.clean_start,
        reason_code: ReasonCode::Success,
        properties,
    });
    let mut encoded = roost_mqtt::encode(&connack, protocol, &mut wbuf).is_ok();
    for packet_id in pending_releases {
        let rel = Packet::PubRel(PubRel {
            packet_id,
            reason_code: ReasonCode::Success,
            properties: Default::default(),
        });
        encoded &= roost_mqtt::encode(&rel, protocol, &mut wbuf).is_ok();
    }
    if !encoded || !write_all(&mut writer, &mut wbuf, limits.write_timeout).await {
        if session.detach(conn_id, shared.journal()) {
            shared.end_session(&session);
        }
        return None;
    }
    shared
        .metrics
        .connections_current
        .fetch_add(1, Ordering::Relaxed);
    let session_identifier = uuid::Uuid::new_v4().simple().to_string();
    tracing::info!(protocol = ?protocol, session_present = resumed, "connected");
    let conn = Conn {
        broker: broker.clone(),
        reader,
        writer,
        rbuf,
        wbuf,
        peer,
        live,
        protocol,
        codec_limits: codec_limits(&broker),
        client_id,
        session,
        session_identifier,
        authz,
        keep_alive: (keep_alive > 0).then(|| Duration::from_millis(u64::from(keep_alive) * 1500)),
        last_received: Instant::now(),
        client_max_packet: connect
            .properties
            .maximum_packet_size
            .unwrap_or(roost_mqtt::MAX_PACKET_SIZE),
        client_receive_max: usize::from(connect.properties.receive_maximum.unwrap_or(u16::MAX)),
        aliases: HashMap::new(),
        will: connect.will,
        held_acks: VecDeque::new(),
        wake_ticket: 0,
        waiting_for_room: Vec::new(),
        slowed_since: None,
        read_paused: false,
    };
    conn.lifecycle_connected();
    Some(conn)
}

impl<R, W> Conn<R, W>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    fn shared(&self) -> &crate::Shared {
        &self.broker.shared
    }

    fn lifecycle_connected(&self) {
        if events::publishable(&self.client_id) {
            let (topic, body) = events::connected(
                &self.client_id,
                &self.session_identifier,
                self.authz.certificate_id(),
                &self.peer.ip().to_string(),
                0,
            );
            self.broker
                .publish(Message::new(topic, body, QoS::AtLeastOnce));
        }
    }

    fn encode(&mut self, packet: &Packet) -> bool {
        match roost_mqtt::encode_with_limit(
            packet,
            self.protocol,
            self.client_max_packet,
            &mut self.wbuf,
        ) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "packet not sent: it does not fit the client's maximum packet size");
                false
            }
        }
    }

    async fn flush(&mut self) -> Result<(), Close> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        let timeout = self.shared().config.limits.write_timeout;
        // A client that stopped reading can block a write for the whole
        // timeout: a kick (revocation, slow consumer, takeover) must not
        // wait for it.
        let kick = self.live.kick.clone();
        tokio::select! {
            written = write_all(&mut self.writer, &mut self.wbuf, timeout) => {
                if !written {
                    return Err(Close::ConnectionLost);
                }
            }
            kick = kick.received() => return Err(Close::Kicked(kick)),
        }
        if self.wbuf.capacity() > KEPT_WRITE_BUFFER {
            self.wbuf = BytesMut::new();
        }
        Ok(())
    }

    /// Sizes the read buffer for the next read: released to a small one
    /// when empty, grown when the last read filled it.
    fn prepare_read_buffer(&mut self, last_read_filled: bool) {
        if self.rbuf.is_empty() && self.rbuf.capacity() > IDLE_READ_BUFFER && !last_read_filled {
            self.rbuf = BytesMut::with_capacity(IDLE_READ_BUFFER);
        }
        let want = if last_read_filled {
            BUSY_READ_BUFFER
        } else {
            IDLE_READ_BUFFER
        };
        if self.rbuf.capacity() - self.rbuf.len() < want / 2 {
            self.rbuf.reserve(want);
        }
    }

    async fn serve(&mut self, shutdown: &mut watch::Receiver<bool>) -> Close {
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
            Packet::Auth(_) => Err(Close::ProtocolError(ReasonCode::BadAuthenticationMethod)),
            // The codec refuses server-only packets and a second CONNECT.
            _ => Err(Close::ProtocolError(ReasonCode::ProtocolError)),
        }
    }

    async fn on_publish(&mut self, mut publish: Publish) -> Result<(), Close> {
        let profile = self.shared().config.profile;
        // Topic aliases (MQTT 5): set or resolve.
        if let Some(alias) = publish.properties.topic_alias.take() {
            if alias == 0 || alias > self.shared().config.limits.topic_alias_maximum {
                return Err(Close::ProtocolError(ReasonCode::TopicAliasInvalid));
            }
            if publish.topic.is_empty() {
                match self.aliases.get(&alias) {
                    Some(topic) => publish.topic = topic.clone(),
                    None => return Err(Close::ProtocolError(ReasonCode::ProtocolError)),
                }
            } else {
                self.aliases.insert(alias, publish.topic.clone());
            }
        }
        match crate::publish::check_topic(profile, &publish.topic, publish.retain) {
            Ok(()) => {}
            Err(crate::PublishRefusal::InvalidTopic(_)) => {
                return Err(Close::ProtocolError(ReasonCode::TopicNameInvalid))
            }
            Err(why) => {
                tracing::info!(topic = %publish.topic, %why, "closing: publish to a reserved topic");
                return Err(Close::ProtocolError(ReasonCode::TopicNameInvalid));
            }
        }
        if publish.qos == QoS::ExactlyOnce && profile == Profile::Aws {
            tracing::info!("closing: QoS 2 PUBLISH (not supported in the aws profile)");
            return Err(Close::ProtocolError(ReasonCode::QoSNotSupported));
        }
        self.fresh_authorization().await?;
        if self.authz.publish(&publish.topic, publish.retain) != Decision::Allowed {
            self.shared()
                .metrics
                .publish_denied
                .fetch_add(1, Ordering::Relaxed);
            tracing::info!(action = "iot:Publish", resource = %format!("topic/{}", publish.topic), "denied");
            // MQTT 5 can say no; 3.1.1 cannot, and AWS closes the connection.
            return match (self.protocol, publish.packet_id) {
                (ProtocolVersion::V5, Some(packet_id)) => {
                    self.ack(publish.qos, packet_id, ReasonCode::NotAuthorized);
                    Ok(())
                }
                (ProtocolVersion::V5, None) => Ok(()),
                _ => Err(Close::Forbidden),
            };
        }
        if publish.qos == QoS::ExactlyOnce {
            let packet_id = publish.packet_id.unwrap_or_default();
            if !self.session.lock().inbound_qos2.insert(packet_id) {
                // A retransmission before PUBREL: already routed once. Its
                // answer goes after any still held.
                if self.held_acks.is_empty() {
                    self.ack(QoS::ExactlyOnce, packet_id, ReasonCode::Success);
                    return Ok(());
                }
                return self
                    .hold_ack(HeldAck {
                        packet_id,
                        qos: QoS::ExactlyOnce,
                        reason: ReasonCode::Success,
                        ticket: 0,
                    })
                    .await;
            }
        }
        let expires_at = publish
            .properties
            .message_expiry_interval
            .map(|s| Instant::now() + Duration::from_secs(u64::from(s)));
        let mut properties = publish.properties;
        properties.subscription_identifiers.clear();
        let message = Message {
            topic: publish.topic,
            payload: publish.payload,
            qos: publish.qos,
            retain: publish.retain,
            properties,
            publisher: Some(self.client_id.clone()),
            principal: Some(self.authz.certificate_id().to_string()),
            expires_at,
        };
        let routed = self.shared().route(message);
        let (delivered, ticket) = (routed.matched, routed.ticket);
        self.slow_down(routed.full);
        let Some(packet_id) = publish.packet_id else {
            // QoS 0 waits for nothing but room in the journal.
            if ticket.is_some() {
                self.wait_for_room().await?;
            }
            return Ok(());
        };
        let reason = if delivered == 0 && self.protocol == ProtocolVersion::V5 {
            ReasonCode::NoMatchingSubscribers
        } else {
            ReasonCode::Success
        };
        if ticket.is_none() && self.held_acks.is_empty() {
            // Nothing durable changed (clean sessions): answer at once.
            self.ack(publish.qos, packet_id, reason);
            return Ok(());
        }
        self.hold_ack(HeldAck {
            packet_id,
            qos: publish.qos,
            reason,
            ticket: ticket.unwrap_or(0),
        })
        .await
    }

    /// Holds a PUBLISH's answer until its durable changes are committed
    /// (answers go out in PUBLISH order, so one with nothing durable waits
    /// behind the ones before it). At most the in-flight window is held;
    /// past it, reading stops until the oldest is committed.
    async fn hold_ack(&mut self, mut held: HeldAck) -> Result<(), Close> {
        if let Some(last) = self.held_acks.back() {
            held.ticket = held.ticket.max(last.ticket);
        }
        self.held_acks.push_back(held);
        self.release_acks()?;
        let limit = usize::from(self.shared().config.limits.max_inflight.max(1));
        if self.held_acks.len() >= limit {
            if let (Some(oldest), Some(journal)) =
                (self.held_acks.front(), self.broker.shared.journal())
            {
                // Its fate is reported either way; release_acks reads it.
                let _ = journal.wait(oldest.ticket).await;
            }
            self.release_acks()?;
        }
        self.wait_for_room().await
    }

    /// Sends the held answers whose changes are committed, in order: PUBACK
    /// as decided, or, when their transaction failed, PUBACK 0x80 (MQTT 5)
    /// or a closed connection (3.1.1, which cannot say so). Asks the journal
    /// to wake the session when the oldest still held is decided.
    fn release_acks(&mut self) -> Result<(), Close> {
        let Some(progress) = self.broker.shared.journal().map(|j| j.progress()) else {
            return Ok(());
        };
        while let Some(held) = self.held_acks.front().copied() {
            match progress.outcome(held.ticket) {
                None => break,
                Some(Ok(())) => {
                    self.held_acks.pop_front();
                    self.ack(held.qos, held.packet_id, held.reason);
                }
                Some(Err(_)) => {
                    self.held_acks.pop_front();
                    self.shared()
                        .metrics
                        .state_answers_failed
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        packet_id = held.packet_id,
                        "publish not acknowledged: the gateway state could not be saved"
                    );
                    if self.protocol != ProtocolVersion::V5 {
                        return Err(Close::StateNotSaved);
                    }
                    if held.qos == QoS::ExactlyOnce {
                        // The flow ends here: a resend is a new message.
                        self.session.lock().inbound_qos2.remove(&held.packet_id);
                    }
                    self.ack(held.qos, held.packet_id, ReasonCode::UnspecifiedError);
                }
            }
        }
        if let (Some(held), Some(journal)) = (self.held_acks.front(), self.broker.shared.journal())
        {
            if held.ticket > self.wake_ticket {
                self.wake_ticket = held.ticket;
                journal.wake_when_done(held.ticket, &self.session);
            }
        }
        Ok(())
    }

    /// A publish left the sessions `full` past their queue's mark: this
    /// publisher's socket is not read until they have room, so each
    /// publisher adds at most the one message that crossed the mark (its
    /// answer goes out: it is queued). Its own session never slows it: it
    /// could not drain while this connection waits.
    fn slow_down(&mut self, full: Vec<Arc<Session>>) {
        let mut added = false;
        for session in full {
            if Arc::ptr_eq(&session, &self.session)
                || self
                    .waiting_for_room
                    .iter()
                    .any(|s| Arc::ptr_eq(s, &session))
            {
                continue;
            }
            self.waiting_for_room.push(session);
            added = true;
        }
        if self.waiting_for_room.is_empty() {
            return;
        }
        if added && self.slowed_since.is_none() {
            self.slowed_since = Some(Instant::now());
            self.shared()
                .metrics
                .publishers_slowed
                .fetch_add(1, Ordering::Relaxed);
        }
        self.read_paused = true;
    }

    /// Drops the sessions that have room again; once none is left, reading
    /// resumes with what was left buffered.
    async fn check_room(&mut self) -> Result<(), Close> {
        self.waiting_for_room.retain(|s| !s.has_room());
        if !self.waiting_for_room.is_empty() {
            return Ok(());
        }
        self.slowed_since = None;
        if std::mem::take(&mut self.read_paused) {
            // The client's silence while unread was ours, not its.
            self.last_received = Instant::now();
            self.handle_buffered().await?;
        }
        Ok(())
    }

    /// The slow-consumer timeout passed: the subscribers still without room
    /// are disconnected (the documented policy: a persistent session keeps
    /// what was queued for the client's return).
    fn cut_slow_consumers(&mut self) {
        let shared = self.broker.shared.clone();
        for session in &self.waiting_for_room {
            let owner = session.lock().owner;
            if let (Some(conn_id), false) = (owner, session.has_room()) {
                shared
                    .metrics
                    .slow_consumers_disconnected
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(subscriber = %session.client_id, "disconnecting a slow consumer: its queue stayed full past the slow-consumer timeout");
                shared.kick(conn_id, Kick::SlowConsumer);
            }
        }
        // Waits on for them to detach (which gives room); not again.
        self.slowed_since = None;
    }

    /// Backpressure: waits while the journal's queue is full.
    async fn wait_for_room(&self) -> Result<(), Close> {
        let shared = &self.broker.shared;
        match shared.journal() {
            Some(journal) => journal
                .wait_room(&shared.metrics)
                .await
                .map_err(|_| Close::StateNotSaved),
            None => Ok(()),
        }
    }

    /// Waits until the subscription changes up to `ticket` are committed
    /// (a SUBACK or UNSUBACK promises they survive a restart).
    async fn wait_saved(&mut self, ticket: Option<u64>) -> Result<(), Close> {
        let (Some(ticket), Some(journal)) = (ticket, self.broker.shared.journal()) else {
            return Ok(());
        };
        if journal.wait(ticket).await.is_err() {
            self.shared()
                .metrics
                .state_answers_failed
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!("closing: subscriptions could not be saved");
            return Err(Close::StateNotSaved);
        }
        // Answers held for earlier PUBLISHes are committed too: they go first.
        self.release_acks()
    }

    fn ack(&mut self, qos: QoS, packet_id: u16, reason_code: ReasonCode) {
        let packet = match qos {
            QoS::ExactlyOnce => Packet::PubRec(PubRec {
                packet_id,
                reason_code,
                properties: Default::default(),
            }),
            _ => Packet::PubAck(PubAck {
                packet_id,
                reason_code,
                properties: Default::default(),
            }),
        };
        self.encode(&packet);
    }

    async fn on_subscribe(&mut self, subscribe: Subscribe) -> Result<(), Close> {
        let profile = self.shared().config.profile;
        // Subscription identifiers are not supported (as in AWS): refused in both profiles.
        if subscribe.properties.subscription_identifier.is_some() {
            return Err(Close::ProtocolError(
                ReasonCode::SubscriptionIdentifiersNotSupported,
            ));
        }
        self.fresh_authorization().await?;
        let max_subscriptions = self.shared().config.limits.max_subscriptions;
        let mut codes = Vec::with_capacity(subscribe.filters.len());
        let mut granted_filters = Vec::new();
        let mut retained = Vec::new();
        let mut ticket = None;
        for (filter, mut options) in subscribe.filters {
            let code = match roost_topic::validate_topic_filter(&filter, &topic_limits(profile)) {
                Err(_) => ReasonCode::TopicFilterInvalid,
                Ok(_) if self.authz.subscribe(&filter) != Decision::Allowed => {
                    self.shared()
                        .metrics
                        .subscribe_denied
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::info!(action = "iot:Subscribe", resource = %format!("topicfilter/{filter}"), "denied");
                    ReasonCode::NotAuthorized
                }
                Ok(parsed) => {
                    if profile == Profile::Aws && options.qos == QoS::ExactlyOnce {
                        options.qos = QoS::AtLeastOnce;
                    }
                    let journal = self.broker.shared.journal();
                    let changed =
                        self.session
                            .subscribe(&filter, options, max_subscriptions, journal);
                    match changed {
                        None => ReasonCode::QuotaExceeded,
                        Some((is_new, saved)) => {
                            ticket = ticket.max(saved);
                            self.shared()
                                .router
                                .subscribe(&filter, &self.client_id, options);
                            let send_retained = match options.retain_handling {
                                roost_mqtt::RetainHandling::SendAtSubscribe => true,
                                roost_mqtt::RetainHandling::SendIfNewSubscription => is_new,
                                roost_mqtt::RetainHandling::DoNotSend => false,
                            };
                            if send_retained && parsed.share_group.is_none() {
                                for message in self.shared().router.retained_for(&filter) {
                                    retained.push(Outgoing {
                                        qos: message.qos.min(options.qos),
                                        retain: true,
                                        dup: false,
                                        seq: 0,
                                        message,
                                    });
                                }
                            }
                            granted_filters.push(filter.clone());
                            ReasonCode::granted(options.qos)
                        }
                    }
                }
            };
            codes.push(code);
        }
        self.wait_saved(ticket).await?;
        let suback = Packet::SubAck(SubAck {
            packet_id: subscribe.packet_id,
            reason_codes: codes,
            properties: Default::default(),
        });
        self.encode(&suback);
        // Retained messages go after the SUBACK, through the normal queue.
        let shared = &self.broker.shared;
        for outgoing in retained {
            self.session.enqueue(
                outgoing,
                &shared.config.limits,
                &shared.metrics,
                shared.journal(),
            );
        }
        if !granted_filters.is_empty() && events::publishable(&self.client_id) {
            let (topic, body) = events::subscription(
                &self.client_id,
                &self.session_identifier,
                self.authz.certificate_id(),
                true,
                &granted_filters,
            );
            self.broker
                .publish(Message::new(topic, body, QoS::AtLeastOnce));
        }
        Ok(())
    }

    async fn on_unsubscribe(&mut self, unsubscribe: Unsubscribe) -> Result<(), Close> {
        let mut codes = Vec::with_capacity(unsubscribe.filters.len());
        let mut ticket = None;
        for filter in &unsubscribe.filters {
            let shared = &self.broker.shared;
            let (existed, saved) = self.session.unsubscribe(filter, shared.journal());
            ticket = ticket.max(saved);
            shared.router.unsubscribe(filter, &self.client_id);
            codes.push(if existed {
                ReasonCode::Success
            } else {
                ReasonCode::NoSubscriptionExisted
            });
        }
        self.wait_saved(ticket).await?;
        let unsuback = Packet::UnsubAck(UnsubAck {
            packet_id: unsubscribe.packet_id,
            reason_codes: if self.protocol == ProtocolVersion::V5 {
                codes
            } else {
                Vec::new()
            },
            properties: Default::default(),
        });
        self.encode(&unsuback);
        if events::publishable(&self.client_id) {
            let (topic, body) = events::subscription(
                &self.client_id,
                &self.session_identifier,
                self.authz.certificate_id(),
                false,
                &unsubscribe.filters,
            );
            self.broker
                .publish(Message::new(topic, body, QoS::AtLeastOnce));
        }
        Ok(())
    }

    /// Re-reads the connection's policies when a change that may concern it
    /// was made since they were read (counted); the registry failing to
    /// answer ends the connection rather than deciding on stale policies.
    async fn fresh_authorization(&mut self) -> Result<(), Close> {
        match self.authz.ensure_fresh().await {
            Ok(false) => Ok(()),
            Ok(true) => {
                self.shared()
                    .metrics
                    .authorization_refreshes
                    .fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(AuthzError::Refused(why)) => {
                tracing::info!(reason = %why, "closing: certificate no longer ACTIVE");
                Err(Close::Kicked(Kick::CertificateRevoked))
            }
            Err(e) => {
                tracing::error!(error = %e, "closing: the registry did not answer for this connection's policies");
                Err(Close::Kicked(Kick::Shutdown))
            }
        }
    }

    /// Writes queued messages while the client's receive window allows.
    async fn deliver(&mut self) -> Result<(), Close> {
        let window = self
            .client_receive_max
            .min(usize::from(self.shared().config.limits.max_inflight));
        self.fresh_authorization().await?;
        let mut batch = 0;
        let limits = &self.broker.shared.config.limits;
        let resume_below = (limits.max_queued_messages / 2, limits.max_queued_bytes / 2);
        while let Some(outgoing) = self.session.next_to_send(window, resume_below) {
            let now = Instant::now();
            let journal = self.broker.shared.journal();
            if outgoing.message.expired(now) {
                self.shared()
                    .metrics
                    .dropped_expired
                    .fetch_add(1, Ordering::Relaxed);
                self.session.discard(&outgoing, journal);
                continue;
            }
            if self.authz.receive(&outgoing.message.topic) != Decision::Allowed {
                self.shared()
                    .metrics
                    .receive_denied
                    .fetch_add(1, Ordering::Relaxed);
                tracing::debug!(topic = %outgoing.message.topic, "delivery skipped: iot:Receive denied");
                self.session.discard(&outgoing, journal);
                continue;
            }
            let packet_id = (outgoing.qos != QoS::AtMostOnce)
                .then(|| self.session.start_inflight(&outgoing, journal));
            let mut properties: PublishProperties = outgoing.message.properties.clone();
            properties.topic_alias = None;
            if let Some(at) = outgoing.message.expires_at {
                properties.message_expiry_interval =
                    Some(at.saturating_duration_since(now).as_secs().max(1) as u32);
            }
            let publish = Packet::Publish(Publish {
                dup: outgoing.dup,
                qos: outgoing.qos,
                retain: outgoing.retain,
                topic: outgoing.message.topic.clone(),
                packet_id,
                payload: outgoing.message.payload.clone(),
                properties,
            });
            if self.encode(&publish) {
                self.shared()
                    .metrics
                    .messages_delivered
                    .fetch_add(1, Ordering::Relaxed);
            } else if let Some(id) = packet_id {
                // Too large for this client: it can never be delivered.
                let journal = self.broker.shared.journal();
                self.session.complete(id, false, journal);
            }
            batch += 1;
            if batch >= DELIVERY_BATCH {
                self.flush().await?;
                batch = 0;
            }
        }
        self.flush().await
    }

    /// Ends the connection: tell the client why (MQTT 5), publish the will
    /// unless the client disconnected cleanly, detach or end the session,
    /// announce the disconnect.
    async fn finish(mut self, close: Close) {
        let shared = self.broker.shared.clone();
        if self.protocol == ProtocolVersion::V5 {
            let reason = match close {
                Close::ProtocolError(code) => Some(code),
                Close::Forbidden => Some(ReasonCode::NotAuthorized),
                Close::StateNotSaved => Some(ReasonCode::UnspecifiedError),
                Close::KeepAliveTimeout => Some(ReasonCode::KeepAliveTimeout),
                Close::Kicked(Kick::TakenOver) => Some(ReasonCode::SessionTakenOver),
                Close::Kicked(Kick::CertificateRevoked | Kick::CertificateExpired) => {
                    Some(ReasonCode::NotAuthorized)
                }
                Close::Kicked(Kick::Shutdown) => Some(ReasonCode::ServerShuttingDown),
                Close::Kicked(Kick::SlowConsumer) => Some(ReasonCode::QuotaExceeded),
                Close::ClientDisconnect { .. } | Close::ConnectionLost => None,
            };
            if let Some(reason) = reason {
                self.wbuf.clear();
                if self.encode(&Packet::Disconnect(Disconnect::new(reason))) {
                    write_all(&mut self.writer, &mut self.wbuf, CLOSING_WRITE).await;
                }
            }
        } else if !self.wbuf.is_empty() && !matches!(close, Close::Kicked(_)) {
            // (Kicked, the buffer may be half written already.)
            write_all(&mut self.writer, &mut self.wbuf, CLOSING_WRITE).await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), self.writer.shutdown()).await;
        match close {
            Close::Kicked(Kick::TakenOver) => {}
            Close::Kicked(Kick::CertificateRevoked) => {
                shared
                    .metrics
                    .kicked_certificate
                    .fetch_add(1, Ordering::Relaxed);
            }
            Close::Kicked(Kick::CertificateExpired) => {
                shared
                    .metrics
                    .kicked_expired
                    .fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
        shared
            .metrics
            .connections_current
            .fetch_sub(1, Ordering::Relaxed);

        // Detach the session; end it now if it does not outlive the connection.
        if self.session.detach(self.live.conn_id, shared.journal()) {
            shared.end_session(&self.session);
        }
        if close.sends_will() {
            if let Some(will) = self.will.take() {
                let message = Message {
                    topic: will.topic,
                    payload: will.payload,
                    qos: will.qos,
                    retain: will.retain,
                    properties: PublishProperties {
                        payload_format_indicator: will.properties.payload_format_indicator,
                        message_expiry_interval: will.properties.message_expiry_interval,
                        content_type: will.properties.content_type,
                        response_topic: will.properties.response_topic,
                        correlation_data: will.properties.correlation_data,
                        user_properties: will.properties.user_properties,
                        ..Default::default()
                    },
                    publisher: Some(self.client_id.clone()),
                    principal: Some(self.authz.certificate_id().to_string()),
                    expires_at: will
                        .properties
                        .message_expiry_interval
                        .map(|s| Instant::now() + Duration::from_secs(u64::from(s))),
                };
                // MQTT 5 Will Delay: the will goes out when the delay passes
                // or the session ends, whichever is first (spec 3.1.3.2.2),
                // unless the client is back before.
                let session_left = self.session.lock().expiry;
                let delay = Duration::from_secs(u64::from(
                    will.properties.will_delay_interval.unwrap_or(0),
                ))
                .min(session_left);
                // The will is authorized when it is sent, not only at
                // CONNECT: a certificate revoked or a policy detached since
                // then stops it.
                if delay.is_zero() {
                    if will_allowed(&mut self.authz, &self.broker, &message).await {
                        self.broker.publish(message);
                    }
                } else {
                    let broker = self.broker.clone();
                    let session = self.session.clone();
                    let mut authz = self.authz.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        if session.lock().owner.is_none()
                            && will_allowed(&mut authz, &broker, &message).await
                        {
                            broker.publish(message);
                        }
                    });
                }
            }
        }
        if events::publishable(&self.client_id) {
            let client_initiated = matches!(close, Close::ClientDisconnect { .. });
            let (topic, body) = events::disconnected(
                &self.client_id,
                &self.session_identifier,
                self.authz.certificate_id(),
                client_initiated,
                close.disconnect_reason(),
                0,
            );
            self.broker
                .publish(Message::new(topic, body, QoS::AtLeastOnce));
        }
        tracing::info!(reason = close.disconnect_reason(), "disconnected");
    }
}

/// Whether a will may go out now: the certificate still ACTIVE and
/// iot:Publish (and iot:RetainPublish) on its topic allowed by the policies
/// as they are now. A refusal is counted and logged.
async fn will_allowed(authz: &mut ConnectionAuthz, broker: &Broker, will: &Message) -> bool {
    let why = match authz.ensure_fresh().await {
        Ok(_) if authz.publish(&will.topic, will.retain) == Decision::Allowed => return true,
        Ok(_) => "the policies no longer allow publishing it".to_string(),
        Err(e) => e.to_string(),
    };
    broker
        .shared
        .metrics
        .wills_refused
        .fetch_add(1, Ordering::Relaxed);
    tracing::info!(client_id = will.publisher.as_deref().unwrap_or(""), topic = %will.topic, reason = %why, "will not sent");
    false
}

/// Completes when `session`, if any, has room for its publishers again.
async fn room_in(session: Option<Arc<Session>>) {
    let Some(session) = session else {
        return std::future::pending().await;
    };
    let notified = session.room.notified();
    tokio::pin!(notified);
    // Registered before the check: a wake-up between the two is not lost.
    notified.as_mut().enable();
    if !session.has_room() {
        notified.await;
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
