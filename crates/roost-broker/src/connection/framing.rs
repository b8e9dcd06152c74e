//! Framing: reading packets into the read buffer, encoding answers into
//! the write buffer, and writing it out within the write timeout (or until
//! a kick). Buffers are sized for the connection's load: small while idle.

use super::*;

/// Reads until one packet decodes. `Ok(None)`: the peer closed.
pub(super) async fn read_packet<R: AsyncRead + Unpin>(
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

pub(super) enum ReadError {
    Decode(roost_mqtt::DecodeError),
    Io,
}

pub(super) async fn write_all<W: AsyncWrite + Unpin>(
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

impl<R, W> Conn<R, W>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    pub(super) fn encode(&mut self, packet: &Packet) -> bool {
        match roost_mqtt::encode_with_limit(
            packet,
            self.protocol,
            self.client_max_packet,
            &mut self.wbuf,
        ) {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(error = %e, "packet not sent: it does not fit the client's maximum packet size");
                false
            }
        }
    }

    pub(super) async fn flush(&mut self) -> Result<(), Close> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        let timeout = self.shared().config.limits.write_timeout;
        // A client that stopped reading can block a write for the whole
        // timeout: a kick (revocation, slow consumer, takeover) must not
        // wait for it.
        tokio::select! {
            written = write_all(&mut self.writer, &mut self.wbuf, timeout) => {
                if !written {
                    return Err(Close::ConnectionLost);
                }
            }
            kick = self.live.kick.received() => return Err(Close::Kicked(kick)),
        }
        if self.wbuf.capacity() > KEPT_WRITE_BUFFER {
            self.wbuf = BytesMut::new();
        }
        Ok(())
    }

    /// Sizes the read buffer for the next read: released to a small one
    /// when empty, grown when the last read filled it.
    pub(super) fn prepare_read_buffer(&mut self, last_read_filled: bool) {
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
}
