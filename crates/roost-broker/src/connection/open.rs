//! Opening a connection: the CONNECT read within its timeout (a kick ends
//! the wait), decided by `crate::connect`, answered, and the session
//! attached (taking over an older connection with the same client id).

use super::*;

/// Reads the CONNECT (within the connect timeout) and answers it: the
/// connection ready to serve, or `None` when it was refused or went away.
pub(super) async fn open<S>(
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
pub(super) async fn refuse<W: AsyncWrite + Unpin>(
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
pub(super) async fn accept_connect<R, W>(
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
            crate::event_log::connect_refused(
                &shared,
                &refusal,
                &connect.client_id,
                certificate.id(),
                peer,
            );
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
    let event_level = super::log::connection_level(&shared, &client_id, peer, &authz).await;

    // Take over: an existing connection with this client id is closed.
    live.take_client_id(&client_id);
    let conn_id = live.conn_id;
    // Where sessions live in the cluster, it says which one is current.
    let moved = match crate::cluster::claim(&shared, &client_id, connect.clean_start).await {
        Ok(moved) => moved,
        Err(e) => {
            tracing::error!(error = %e, "CONNECT refused: the cluster did not say whether a session exists");
            refuse(
                &mut writer,
                &mut wbuf,
                protocol,
                ReasonCode::ServerUnavailable,
                limits.write_timeout,
            )
            .await;
            return None;
        }
    };
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
    let (session, resumed) = match &moved {
        Some(record) => (crate::cluster::rebuild(&shared, record), true),
        None => shared.sessions.open(&client_id, connect.clean_start),
    };
    let pending_releases = session.attach(conn_id, expiry, shared.journal(), || {
        shared.router.subscriptions_of(&session)
    });

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
        if config.profile == Profile::Aws {
            properties.subscription_identifiers_available = Some(false);
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
    if moved.is_some() {
        crate::cluster::moved_here(&shared, &client_id);
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
        event_level,
    };
    conn.lifecycle_connected();
    // Where the cluster keeps live connections, this one is kept there.
    if let Some(link) = shared.peer_link.get() {
        link.connection_opened(&conn.cluster_record());
    }
    conn.log_event(
        roost_eventlog::EventType::Connect,
        roost_eventlog::Status::Success,
        roost_eventlog::LogLevel::Info,
        |e, _| e,
    );
    Some(conn)
}

impl<R, W> Conn<R, W>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    /// The connection as the cluster keeps it ([`crate::cluster::ConnectionRecord`]).
    fn cluster_record(&self) -> crate::cluster::ConnectionRecord {
        let principal = self.authz.certificate_id();
        let will = self.will.as_ref().map(|will| {
            let delay =
                Duration::from_secs(u64::from(will.properties.will_delay_interval.unwrap_or(0)))
                    .min(self.session.lock().expiry);
            (
                super::close::will_message(will.clone(), &self.client_id, principal),
                delay,
            )
        });
        crate::cluster::ConnectionRecord {
            client_id: self.client_id.clone(),
            conn_id: self.live.conn_id,
            session_identifier: self.session_identifier.clone(),
            principal: principal.to_string(),
            source_ip: Some(self.peer.ip()),
            will,
        }
    }

    pub(super) fn lifecycle_connected(&self) {
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
}
