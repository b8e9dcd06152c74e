//! Device HTTPS publish (AWS IoT's port 8443) as a device uses it: one
//! kept-alive HTTP/1.1 connection with the device's certificate, requests
//! written by hand and answers read by hand, so a test sees the status and
//! the close exactly as sent.

use crate::device::Device;
use crate::gateway::Gateway;
use crate::PATIENCE;
use bytes::BytesMut;
use std::io;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One kept-alive device HTTPS connection.
pub struct HttpsClient {
    stream: tokio_rustls::client::TlsStream<TcpStream>,
    buf: BytesMut,
}

impl HttpsClient {
    pub async fn connect(gateway: &Gateway, device: &Device) -> HttpsClient {
        Self::connect_after(gateway, device, &[]).await
    }

    /// [`HttpsClient::connect`] on a connection that first sends `preamble`
    /// (a PROXY protocol header, as a load balancer would).
    pub async fn connect_after(gateway: &Gateway, device: &Device, preamble: &[u8]) -> HttpsClient {
        let mut tcp = TcpStream::connect(gateway.https_addr())
            .await
            .expect("connecting to device HTTPS");
        tcp.write_all(preamble).await.expect("sending the preamble");
        let connector = tokio_rustls::TlsConnector::from(device.tls.clone());
        let stream = tokio::time::timeout(
            PATIENCE,
            connector.connect(crate::client::server_name(), tcp),
        )
        .await
        .expect("TLS handshake in time")
        .expect("TLS handshake with device HTTPS");
        HttpsClient {
            stream,
            buf: BytesMut::new(),
        }
    }

    /// `POST /topics/<topic>?qos=1` with `payload`: the answer's status
    /// code, or `None` when the gateway closed the connection instead.
    pub async fn publish(&mut self, topic: &str, payload: &[u8]) -> Option<u16> {
        let head = format!(
            "POST /topics/{topic}?qos=1 HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n",
            payload.len()
        );
        let mut request = head.into_bytes();
        request.extend_from_slice(payload);
        self.stream.write_all(&request).await.ok()?;
        self.stream.flush().await.ok()?;
        self.read_answer().await.ok()
    }

    /// Reads one answer (head and `Content-Length` body); its status.
    async fn read_answer(&mut self) -> io::Result<u16> {
        let closed = || io::Error::new(io::ErrorKind::UnexpectedEof, "closed");
        let end = loop {
            if let Some(at) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            if self.read_more().await? == 0 {
                return Err(closed());
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..end]).to_string();
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, head.clone()))?;
        let length: usize = head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse().ok())
            .unwrap_or(0);
        while self.buf.len() < end + length {
            if self.read_more().await? == 0 {
                return Err(closed());
            }
        }
        let _ = self.buf.split_to(end + length);
        Ok(status)
    }

    async fn read_more(&mut self) -> io::Result<usize> {
        tokio::time::timeout(PATIENCE, self.stream.read_buf(&mut self.buf))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer"))?
    }

    /// The gateway closes this idle connection (within [`PATIENCE`]).
    pub async fn expect_closed(&mut self) {
        match self.read_more().await {
            Ok(0) if self.buf.is_empty() => {}
            Err(e) if e.kind() != io::ErrorKind::TimedOut && self.buf.is_empty() => {}
            other => panic!(
                "expected the gateway to close, got {other:?} and {:?}",
                self.buf
            ),
        }
    }
}
