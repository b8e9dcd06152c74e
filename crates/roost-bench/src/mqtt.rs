//! A minimal MQTT client over mutual TLS on roost-mqtt's codec: CONNECT,
//! SUBSCRIBE, PUBLISH and its acknowledgement, DISCONNECT. Just what the
//! loads need, and nothing that would cost the broker under test anything
//! another client would not.

use crate::target::Target;
use anyhow::{anyhow, bail, Context, Result};
use bytes::{Bytes, BytesMut};
use roost_mqtt::{
    Connect, ConnectProperties, Disconnect, Packet, ProtocolVersion, PubAck, Publish,
    PublishProperties, QoS, ReasonCode, Subscribe, SubscriptionOptions,
};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

pub type Stream = tokio_rustls::client::TlsStream<TcpStream>;

/// How long one TCP connect, TLS handshake or CONNACK may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a SUBACK may take.
const SUBACK_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a DISCONNECT and the close may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Read buffer capacity kept free before each read in the message loops.
pub const READ_CHUNK: usize = 64 * 1024;

/// The session expiry a persistent MQTT 5 session asks for.
const PERSISTENT_SESSION_EXPIRY_SECS: u32 = 3600;

/// The keep alive we ask for: long enough that no load needs PINGREQ
/// (AWS IoT and Roost grant 30–1200 s), so pings never add traffic.
pub const KEEP_ALIVE_SECS: u16 = 1200;

fn decode_limits() -> roost_mqtt::Limits {
    roost_mqtt::Limits::protocol_maximum()
}

/// One established MQTT session (CONNACK received).
pub struct Connection {
    pub stream: Stream,
    pub rbuf: BytesMut,
    pub protocol: ProtocolVersion,
}

/// Where opening a connection failed, for the connects report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    Tcp,
    Tls,
    Connack,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Tcp => "tcp",
            Stage::Tls => "tls",
            Stage::Connack => "connack",
        }
    }
}

pub struct OpenError {
    pub stage: Stage,
    pub error: anyhow::Error,
}

/// What a connection asks the broker to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    /// Clean session: nothing outlives the connection.
    Clean,
    /// Clean session off: subscriptions and QoS 1 messages are kept (and
    /// are the broker's durable state, where it has any). Any session the
    /// client id had before is dropped first, with a clean connect.
    Persistent,
}

impl Connection {
    /// TCP connect, TLS handshake with our certificate, CONNECT (clean
    /// session), CONNACK with success.
    pub async fn open(target: &Target, client_id: &str) -> Result<Self, OpenError> {
        Self::open_with(target, client_id, true).await
    }

    /// Opens a connection with a session of `kind`.
    pub async fn open_session(
        target: &Target,
        client_id: &str,
        kind: SessionKind,
    ) -> Result<Self, OpenError> {
        if kind == SessionKind::Clean {
            return Self::open(target, client_id).await;
        }
        Self::open(target, client_id).await?.disconnect().await;
        Self::open_with(target, client_id, false).await
    }

    async fn open_with(
        target: &Target,
        client_id: &str,
        clean_start: bool,
    ) -> Result<Self, OpenError> {
        let fail = |stage| move |error| OpenError { stage, error };
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target.addr))
            .await
            .map_err(|_| anyhow!("TCP connect timed out"))
            .and_then(|r| r.map_err(anyhow::Error::from))
            .map_err(fail(Stage::Tcp))?;
        let _ = tcp.set_nodelay(true);
        let stream = tokio::time::timeout(
            CONNECT_TIMEOUT,
            target.connector().connect(target.server_name(), tcp),
        )
        .await
        .map_err(|_| anyhow!("TLS handshake timed out"))
        .and_then(|r| r.map_err(anyhow::Error::from))
        .map_err(fail(Stage::Tls))?;
        let mut conn = Connection {
            stream,
            rbuf: BytesMut::with_capacity(4096),
            protocol: target.protocol,
        };
        tokio::time::timeout(CONNECT_TIMEOUT, conn.connect(client_id, clean_start))
            .await
            .map_err(|_| anyhow!("no CONNACK in time"))
            .and_then(|r| r)
            .map_err(fail(Stage::Connack))?;
        Ok(conn)
    }

    async fn connect(&mut self, client_id: &str, clean_start: bool) -> Result<()> {
        let connect = Packet::Connect(Connect {
            protocol: self.protocol,
            clean_start,
            keep_alive: KEEP_ALIVE_SECS,
            client_id: client_id.to_string(),
            will: None,
            username: None,
            password: None,
            properties: ConnectProperties {
                // MQTT 5 keeps a session only with an expiry.
                session_expiry_interval: (!clean_start && self.protocol == ProtocolVersion::V5)
                    .then_some(PERSISTENT_SESSION_EXPIRY_SECS),
                ..Default::default()
            },
        });
        self.send(&connect).await?;
        match self.read_packet().await? {
            Some(Packet::ConnAck(ack)) if ack.reason_code == ReasonCode::Success => Ok(()),
            Some(Packet::ConnAck(ack)) => bail!("CONNECT refused: {:?}", ack.reason_code),
            Some(other) => bail!("expected CONNACK, got {}", other.packet_type()),
            None => bail!("connection closed before CONNACK"),
        }
    }

    /// Subscribes to one filter and waits for the SUBACK granting it.
    pub async fn subscribe(&mut self, filter: &str, qos: QoS) -> Result<()> {
        let subscribe = Packet::Subscribe(Subscribe {
            packet_id: 1,
            filters: vec![(filter.to_string(), SubscriptionOptions::qos(qos))],
            properties: Default::default(),
        });
        self.send(&subscribe).await?;
        let answer = tokio::time::timeout(SUBACK_TIMEOUT, self.read_packet())
            .await
            .map_err(|_| anyhow!("no SUBACK in time for {filter}"))??;
        match answer {
            Some(Packet::SubAck(ack)) if ack.reason_codes.iter().all(|c| !c.is_error()) => Ok(()),
            Some(Packet::SubAck(ack)) => {
                bail!("SUBSCRIBE {filter} refused: {:?}", ack.reason_codes)
            }
            Some(other) => bail!("expected SUBACK, got {}", other.packet_type()),
            None => bail!("connection closed before SUBACK"),
        }
    }

    async fn send(&mut self, packet: &Packet) -> Result<()> {
        let mut buf = BytesMut::new();
        encode(packet, self.protocol, &mut buf);
        self.stream.write_all(&buf).await?;
        self.stream.flush().await?;
        Ok(())
    }

    /// The next packet from the server; `None` when it closed.
    pub async fn read_packet(&mut self) -> Result<Option<Packet>> {
        read_packet(&mut self.stream, &mut self.rbuf, self.protocol).await
    }

    /// What the TLS handshake settled on, e.g. `TLSv1_3 TLS13_AES_128_GCM_SHA256 X25519`.
    pub fn tls_summary(&self) -> String {
        let tls = self.stream.get_ref().1;
        let name = |v: Option<String>| v.unwrap_or_else(|| "?".into());
        format!(
            "{} {} {}",
            name(tls.protocol_version().map(|v| format!("{v:?}"))),
            name(
                tls.negotiated_cipher_suite()
                    .map(|c| format!("{:?}", c.suite()))
            ),
            name(
                tls.negotiated_key_exchange_group()
                    .map(|g| format!("{:?}", g.name()))
            ),
        )
    }

    /// DISCONNECT, then close. Waits briefly for the server to close first,
    /// so the closed connection waits out TIME_WAIT on the broker's side and
    /// not on the loopback ports the load generator needs.
    pub async fn disconnect(mut self) {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
            let mut buf = BytesMut::new();
            encode(
                &Packet::Disconnect(Disconnect::new(ReasonCode::Success)),
                self.protocol,
                &mut buf,
            );
            self.stream.write_all(&buf).await?;
            self.stream.flush().await?;
            let mut sink = [0u8; 1024];
            while self.stream.read(&mut sink).await? > 0 {}
            self.stream.shutdown().await
        })
        .await;
    }
}

/// Reads until one packet decodes; `None` when the server closed.
pub async fn read_packet<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut BytesMut,
    protocol: ProtocolVersion,
) -> Result<Option<Packet>> {
    loop {
        if let Some(packet) = roost_mqtt::decode_from_server(buf, protocol, &decode_limits())
            .map_err(|e| anyhow!("bad packet from the broker: {e}"))?
        {
            return Ok(Some(packet));
        }
        // Small: idle connections keep this buffer, and handshakes need little.
        buf.reserve(1024);
        if reader.read_buf(buf).await.context("reading")? == 0 {
            return Ok(None);
        }
    }
}

/// Decodes every complete packet in `buf`, handing each to `each`.
pub fn decode_all(
    buf: &mut BytesMut,
    protocol: ProtocolVersion,
    mut each: impl FnMut(Packet),
) -> Result<()> {
    let limits = decode_limits();
    while let Some(packet) = roost_mqtt::decode_from_server(buf, protocol, &limits)
        .map_err(|e| anyhow!("bad packet from the broker: {e}"))?
    {
        each(packet);
    }
    Ok(())
}

/// Appends `packet`. The loads only build packets that always encode.
pub fn encode(packet: &Packet, protocol: ProtocolVersion, buf: &mut BytesMut) {
    roost_mqtt::encode(packet, protocol, buf).expect("the load generator's packets encode");
}

pub fn publish_packet(topic: &str, qos: QoS, packet_id: Option<u16>, payload: Bytes) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos,
        retain: false,
        topic: topic.to_string(),
        packet_id,
        payload,
        properties: PublishProperties::default(),
    })
}

pub fn puback_packet(packet_id: u16) -> Packet {
    Packet::PubAck(PubAck {
        packet_id,
        reason_code: ReasonCode::Success,
        properties: Default::default(),
    })
}

/// Writes and flushes `buf`, then empties it.
pub async fn write_buf<W: AsyncWrite + Unpin>(writer: &mut W, buf: &mut BytesMut) -> Result<()> {
    writer.write_all(buf).await?;
    writer.flush().await?;
    buf.clear();
    Ok(())
}

/// Opens one connection per client id, at most `concurrency` handshakes at
/// a time, in the order of `client_ids`. Fails on the first failure.
pub async fn open_many(
    target: &Target,
    client_ids: Vec<String>,
    concurrency: usize,
    kind: SessionKind,
) -> Result<Vec<Connection>> {
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let count = client_ids.len();
    for (index, client_id) in client_ids.into_iter().enumerate() {
        let permits = permits.clone();
        let target = target.clone();
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await.expect("never closed");
            let opened = Connection::open_session(&target, &client_id, kind).await;
            (index, client_id, opened)
        });
    }
    let mut opened: Vec<Option<Connection>> = (0..count).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        let (index, client_id, result) = joined.context("a connect task panicked")?;
        match result {
            Ok(conn) => opened[index] = Some(conn),
            Err(e) => {
                return Err(e.error.context(format!(
                    "connecting {client_id} failed at the {} stage",
                    e.stage.name()
                )))
            }
        }
    }
    Ok(opened.into_iter().map(|c| c.expect("all opened")).collect())
}
