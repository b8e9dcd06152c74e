//! A raw MQTT client: `roost-mqtt`'s codec over rustls with a device's
//! certificate. It sends whatever a test gives it (any packet, any bytes)
//! and reads exactly what the gateway sends back, one packet at a time, so
//! a test sees every reason code and every close as the wire has them.
//!
//! Never: answer anything on its own (no automatic PUBACK or PINGREQ): a
//! test that wants a subscriber to acknowledge says so.

use crate::device::Device;
use crate::gateway::Gateway;
use crate::PATIENCE;
use bytes::{Bytes, BytesMut};
use roost_mqtt::{
    ConnAck, Connect, ConnectProperties, DecodeError, Disconnect, Packet, ProtocolVersion, PubAck,
    Publish, PublishProperties, QoS, ReasonCode, SubAck, Subscribe, SubscriptionOptions, Will,
};
use rustls::pki_types::ServerName;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

/// A byte stream the client speaks over (TLS over TCP, or over a pipe).
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Why no packet came.
#[derive(Debug)]
pub enum Ended {
    /// The gateway closed the connection (TLS close, EOF or reset).
    Closed,
    /// Nothing came within the wait.
    TimedOut,
    /// What came is not a packet a server may send.
    Undecodable(DecodeError),
}

/// A CONNECT with a clean start, a keep alive of 60 s, and nothing else:
/// tests change the fields they are about.
pub fn connect_packet(protocol: ProtocolVersion, client_id: &str) -> Connect {
    Connect {
        protocol,
        clean_start: true,
        keep_alive: 60,
        client_id: client_id.to_string(),
        will: None,
        username: None,
        password: None,
        properties: ConnectProperties::default(),
    }
}

/// A will on `topic` whose payload is `gone`, not retained.
pub fn will(topic: &str, qos: QoS) -> Will {
    Will {
        topic: topic.to_string(),
        payload: Bytes::from_static(b"gone"),
        qos,
        retain: false,
        properties: Default::default(),
    }
}

/// A CONNECT for a persistent session: 3.1.1 clean session off (the
/// gateway's default expiry), MQTT 5 a session expiry of one hour.
pub fn persistent_connect(protocol: ProtocolVersion, client_id: &str) -> Connect {
    let mut connect = connect_packet(protocol, client_id);
    connect.clean_start = false;
    if protocol == ProtocolVersion::V5 {
        connect.properties.session_expiry_interval = Some(3600);
    }
    connect
}

/// One connection to the gateway.
pub struct Client {
    stream: Box<dyn Io>,
    /// How packets are encoded and decoded: set by the CONNECT sent (3.1.1
    /// until then).
    protocol: ProtocolVersion,
    rbuf: BytesMut,
    next_packet_id: u16,
}

/// The name the gateway's server certificate is checked against.
pub(crate) fn server_name() -> ServerName<'static> {
    ServerName::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST).into())
}

impl Client {
    /// The TLS handshake with `device`'s certificate; no MQTT yet.
    pub async fn try_connect(gateway: &Gateway, device: &Device) -> io::Result<Client> {
        Self::try_connect_after(gateway, device, &[]).await
    }

    /// [`Client::try_connect`] on a connection that first sends `preamble`
    /// (a PROXY protocol header, as a load balancer would).
    pub async fn try_connect_after(
        gateway: &Gateway,
        device: &Device,
        preamble: &[u8],
    ) -> io::Result<Client> {
        let mut tcp = TcpStream::connect(gateway.mqtt_addr()).await?;
        tcp.set_nodelay(true)?;
        tcp.write_all(preamble).await?;
        let connector = tokio_rustls::TlsConnector::from(device.tls.clone());
        let tls = tokio::time::timeout(PATIENCE, connector.connect(server_name(), tcp))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake"))??;
        Ok(Self::over(Box::new(tls)))
    }

    /// [`Client::try_connect`], which must succeed.
    pub async fn connect(gateway: &Gateway, device: &Device) -> Client {
        Self::try_connect(gateway, device)
            .await
            .expect("TLS handshake with the gateway")
    }

    /// A TLS handshake stopped after the gateway's first flight, before
    /// the client's certificate reaches it (see [`PausedHandshake`]).
    pub async fn connect_paused(gateway: &Gateway, device: &Device) -> PausedHandshake {
        PausedHandshake::start(gateway.mqtt_addr(), device).await
    }

    /// Handshake, CONNECT (clean start) and a successful CONNACK.
    pub async fn connected(
        gateway: &Gateway,
        device: &Device,
        protocol: ProtocolVersion,
        client_id: &str,
    ) -> Client {
        let mut client = Self::connect(gateway, device).await;
        let connack = client
            .mqtt_connect(connect_packet(protocol, client_id))
            .await;
        assert_eq!(connack.reason_code, ReasonCode::Success, "{connack:?}");
        client
    }

    fn over(stream: Box<dyn Io>) -> Client {
        Client {
            stream,
            protocol: ProtocolVersion::V311,
            rbuf: BytesMut::with_capacity(4096),
            next_packet_id: 0,
        }
    }

    pub fn protocol(&self) -> ProtocolVersion {
        self.protocol
    }

    /// Decodes (and encodes) as `protocol` from now on: for a CONNECT sent
    /// as raw bytes.
    pub fn set_protocol(&mut self, protocol: ProtocolVersion) {
        self.protocol = protocol;
    }

    /// A fresh packet identifier (1, 2, ... wrapping past 0).
    pub fn packet_id(&mut self) -> u16 {
        self.next_packet_id = self.next_packet_id.checked_add(1).unwrap_or(1);
        self.next_packet_id
    }

    /// Encodes and sends `packet`; a CONNECT sets the protocol from then on.
    pub async fn try_send(&mut self, packet: &Packet) -> io::Result<()> {
        if let Packet::Connect(connect) = packet {
            self.protocol = connect.protocol;
        }
        let mut buf = BytesMut::new();
        roost_mqtt::encode(packet, self.protocol, &mut buf)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        self.send_raw(&buf).await
    }

    /// [`Client::try_send`], which must succeed.
    pub async fn send(&mut self, packet: &Packet) {
        self.try_send(packet).await.expect("sending a packet");
    }

    /// Sends bytes as they are: malformed packets, several packets at once.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }

    /// The next packet the gateway sends, within `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> Result<Packet, Ended> {
        let deadline = tokio::time::Instant::now() + wait;
        let limits = roost_mqtt::Limits::protocol_maximum();
        loop {
            match roost_mqtt::decode_from_server(&mut self.rbuf, self.protocol, &limits) {
                Ok(Some(packet)) => return Ok(packet),
                Ok(None) => {}
                Err(e) => return Err(Ended::Undecodable(e)),
            }
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.rbuf)).await {
                Err(_) => return Err(Ended::TimedOut),
                Ok(Ok(0)) | Ok(Err(_)) => return Err(Ended::Closed),
                Ok(Ok(_)) => {}
            }
        }
    }

    /// The next packet, within [`PATIENCE`].
    pub async fn next(&mut self) -> Result<Packet, Ended> {
        self.next_within(PATIENCE).await
    }

    /// The next packet, which must come.
    pub async fn recv(&mut self) -> Packet {
        match self.next().await {
            Ok(packet) => packet,
            Err(ended) => panic!("expected a packet from the gateway: {ended:?}"),
        }
    }

    /// Reads until the gateway closes the connection (within [`PATIENCE`])
    /// and returns what it sent before.
    pub async fn expect_closed(&mut self) -> Vec<Packet> {
        let mut before = Vec::new();
        loop {
            match self.next().await {
                Ok(packet) => before.push(packet),
                Err(Ended::Closed) => return before,
                Err(ended) => panic!("expected the gateway to close: {ended:?} after {before:?}"),
            }
        }
    }

    /// Nothing arrives for `wait`, and the connection stays open. Only for
    /// what must not happen: a wait this short proves nothing by itself,
    /// so pair it with a check that the same path does deliver.
    pub async fn expect_silence(&mut self, wait: Duration) {
        match self.next_within(wait).await {
            Err(Ended::TimedOut) => {}
            other => panic!("expected silence from the gateway, got {other:?}"),
        }
    }

    /// Sends `connect` and returns the CONNACK, which must come.
    pub async fn mqtt_connect(&mut self, connect: Connect) -> ConnAck {
        self.send(&Packet::Connect(connect)).await;
        match self.recv().await {
            Packet::ConnAck(connack) => connack,
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// SUBSCRIBE to one filter; returns the SUBACK, which must be the next
    /// packet.
    pub async fn subscribe(&mut self, filter: &str, qos: QoS) -> SubAck {
        let packet_id = self.packet_id();
        self.send(&Packet::Subscribe(Subscribe {
            packet_id,
            filters: vec![(filter.to_string(), SubscriptionOptions::qos(qos))],
            properties: Default::default(),
        }))
        .await;
        match self.recv().await {
            Packet::SubAck(suback) if suback.packet_id == packet_id => suback,
            other => panic!("expected SUBACK {packet_id}, got {other:?}"),
        }
    }

    /// A PUBLISH (with a fresh packet id unless QoS 0).
    pub fn publish_packet(&mut self, topic: &str, payload: &[u8], qos: QoS) -> Publish {
        Publish {
            dup: false,
            qos,
            retain: false,
            topic: topic.to_string(),
            packet_id: (qos != QoS::AtMostOnce).then(|| self.packet_id()),
            payload: Bytes::copy_from_slice(payload),
            properties: PublishProperties::default(),
        }
    }

    /// Sends a PUBLISH; returns its packet id (None at QoS 0).
    pub async fn publish(&mut self, topic: &str, payload: &[u8], qos: QoS) -> Option<u16> {
        let publish = self.publish_packet(topic, payload, qos);
        let packet_id = publish.packet_id;
        self.send(&Packet::Publish(publish)).await;
        packet_id
    }

    /// A QoS 1 PUBLISH and its PUBACK, which must be the next packet.
    pub async fn publish_acked(&mut self, topic: &str, payload: &[u8]) -> PubAck {
        let packet_id = self.publish(topic, payload, QoS::AtLeastOnce).await;
        match self.recv().await {
            Packet::PubAck(ack) if Some(ack.packet_id) == packet_id => ack,
            other => panic!("expected PUBACK {packet_id:?}, got {other:?}"),
        }
    }

    /// The next packet, which must be a PUBLISH.
    pub async fn recv_publish(&mut self) -> Publish {
        match self.recv().await {
            Packet::Publish(publish) => publish,
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }

    /// Acknowledges a QoS 1 delivery.
    pub async fn puback(&mut self, packet_id: u16) {
        self.send(&Packet::PubAck(PubAck {
            packet_id,
            reason_code: ReasonCode::Success,
            properties: Default::default(),
        }))
        .await;
    }

    /// DISCONNECT with `reason` (always "normal" in 3.1.1).
    pub async fn disconnect(&mut self, reason: ReasonCode) {
        self.send(&Packet::Disconnect(Disconnect::new(reason)))
            .await;
    }

    /// Drops the connection without DISCONNECT (a device losing power):
    /// the TCP socket is closed with no TLS close_notify.
    pub fn drop_abruptly(self) {
        drop(self);
    }
}

/// A TLS handshake held after the gateway's first flight: the gateway has
/// sent its certificate and asked for the client's, which has not left
/// yet. Built with a pipe between the client's TLS and the socket, whose
/// client-to-gateway direction stops once the gateway has spoken.
pub struct PausedHandshake {
    spoke: Option<oneshot::Receiver<()>>,
    go: Option<oneshot::Sender<()>>,
    handshake: tokio::task::JoinHandle<io::Result<Client>>,
}

impl PausedHandshake {
    async fn start(addr: SocketAddr, device: &Device) -> PausedHandshake {
        let tcp = TcpStream::connect(addr).await.expect("connecting");
        let (mut from_gateway, mut to_gateway) = tcp.into_split();
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        let (mut from_client, mut to_client) = tokio::io::split(theirs);
        let (spoke_tx, spoke) = oneshot::channel();
        let (go, go_rx) = oneshot::channel::<()>();
        let spoken = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let spoken_out = spoken.clone();
        tokio::spawn(async move {
            let mut spoke_tx = Some(spoke_tx);
            let mut buf = vec![0u8; 16 * 1024];
            while let Ok(n @ 1..) = from_gateway.read(&mut buf).await {
                // Marked before the client can see it, so nothing the
                // client sends in answer gets past the pause.
                spoken.store(true, std::sync::atomic::Ordering::SeqCst);
                if let Some(tx) = spoke_tx.take() {
                    let _ = tx.send(());
                }
                if to_client.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
            let _ = to_client.shutdown().await;
        });
        tokio::spawn(async move {
            let mut go_rx = Some(go_rx);
            let mut buf = vec![0u8; 16 * 1024];
            while let Ok(n @ 1..) = from_client.read(&mut buf).await {
                if spoken_out.load(std::sync::atomic::Ordering::SeqCst) {
                    if let Some(go) = go_rx.take() {
                        if go.await.is_err() {
                            return;
                        }
                    }
                }
                if to_gateway.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
            let _ = to_gateway.shutdown().await;
        });
        let connector = tokio_rustls::TlsConnector::from(device.tls.clone());
        let handshake = tokio::spawn(async move {
            let tls = connector.connect(server_name(), ours).await?;
            Ok(Client::over(Box::new(tls)))
        });
        PausedHandshake {
            spoke: Some(spoke),
            go: Some(go),
            handshake,
        }
    }

    /// Waits until the gateway's first flight has arrived.
    pub async fn gateway_spoke(&mut self) {
        if let Some(spoke) = self.spoke.take() {
            tokio::time::timeout(PATIENCE, spoke)
                .await
                .expect("the gateway's first flight")
                .expect("the gateway's first flight");
        }
    }

    /// Lets the client's certificate and Finished go, and completes the
    /// handshake (on the client's side: the gateway may still refuse).
    pub async fn resume(mut self) -> io::Result<Client> {
        self.gateway_spoke().await;
        if let Some(go) = self.go.take() {
            let _ = go.send(());
        }
        tokio::time::timeout(PATIENCE, self.handshake)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake"))?
            .map_err(io::Error::other)?
    }
}
