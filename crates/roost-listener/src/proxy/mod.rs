//! The PROXY protocol on a listener: which peers must send a header
//! (`--proxy-protocol-from`), and reading it off the socket, exactly its
//! bytes, within a deadline, before anything else reads the connection.
//!
//! Deny by default: with no trusted network every connection is direct. A
//! connection from a trusted network must start with a header (v2, or v1);
//! one from anywhere else is served as direct, so a device cannot claim
//! another address by sending a header of its own (its bytes are taken for
//! TLS, and the handshake fails).

pub mod header;

pub use header::{HeaderError, ProxyHeader};
pub use ipnet::IpNet;

use header::{Start, MAX_V1_LINE, V2_PREAMBLE};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Which peers speak the PROXY protocol to a listener, and how long they
/// have to send the header.
#[derive(Clone, Debug, Default)]
pub struct ProxyProtocol {
    from: Arc<[IpNet]>,
    timeout: Duration,
}

/// Why a connection from a trusted proxy was closed before it was served.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error(transparent)]
    Header(#[from] HeaderError),
    #[error("no complete PROXY header within {0:?}")]
    Timeout(Duration),
    #[error("the connection ended inside the PROXY header: {0}")]
    Io(#[from] std::io::Error),
}

impl ProxyProtocol {
    /// Connections from `from` must start with a header, sent within
    /// `timeout`; an empty `from` turns the protocol off.
    pub fn new(from: Vec<IpNet>, timeout: Duration) -> Self {
        Self {
            from: from.into(),
            timeout,
        }
    }

    pub fn is_enabled(&self) -> bool {
        !self.from.is_empty()
    }

    /// Whether a connection from `peer` must start with a header. An
    /// IPv4 peer seen on an IPv6 socket (`::ffff:10.0.0.1`) is matched as
    /// IPv4.
    pub fn expects_header(&self, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        self.from.iter().any(|net| net.contains(&peer))
    }

    /// The address to serve the connection as: the client's from the
    /// header when `peer` is trusted and the header names one; `peer`
    /// itself when it is not trusted, or for LOCAL (a health check) and
    /// UNKNOWN headers. Reads nothing from an untrusted peer, and from a
    /// trusted one exactly the header's bytes.
    pub async fn source<R: AsyncRead + Unpin>(
        &self,
        io: &mut R,
        peer: SocketAddr,
    ) -> Result<SocketAddr, ProxyError> {
        if !self.expects_header(peer.ip()) {
            return Ok(peer);
        }
        let header = tokio::time::timeout(self.timeout, read_header(io))
            .await
            .map_err(|_| ProxyError::Timeout(self.timeout))??;
        Ok(header.source().unwrap_or(peer))
    }
}

/// Parses one network for `--proxy-protocol-from`: a CIDR (`10.0.0.0/8`,
/// `fd00::/8`) or a single address (`10.0.0.5`).
pub fn parse_network(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map(|net| net.trunc())
        .map_err(|_| format!("'{s}' is neither a network (10.0.0.0/8) nor an address"))
}

/// Reads one header: never a byte past its end, at most
/// [`header::MAX_V2_PAYLOAD`] after a v2 preamble or [`MAX_V1_LINE`] of a
/// v1 line.
pub async fn read_header<R: AsyncRead + Unpin>(io: &mut R) -> Result<ProxyHeader, ProxyError> {
    let mut first = [0u8; 12];
    io.read_exact(&mut first).await?;
    match header::start(&first)? {
        Start::V2 => {
            let mut preamble = [0u8; V2_PREAMBLE];
            preamble[..12].copy_from_slice(&first);
            io.read_exact(&mut preamble[12..]).await?;
            let len = header::v2_payload_len(&preamble)?;
            let mut payload = vec![0u8; len];
            io.read_exact(&mut payload).await?;
            Ok(header::parse_v2(&preamble, &payload)?)
        }
        Start::V1 => {
            // A byte at a time: the line's end is not known, and what
            // follows it is the client's TLS.
            let mut line = first.to_vec();
            while !line.ends_with(b"\r\n") {
                if line.len() >= MAX_V1_LINE {
                    return Err(HeaderError::V1TooLong.into());
                }
                line.push(io.read_u8().await?);
            }
            Ok(header::parse_v1(&line)?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trusting(nets: &[&str]) -> ProxyProtocol {
        let nets = nets.iter().map(|n| parse_network(n).unwrap()).collect();
        ProxyProtocol::new(nets, Duration::from_millis(200))
    }

    fn peer() -> SocketAddr {
        "10.1.2.3:40000".parse().unwrap()
    }

    #[test]
    fn networks_and_addresses_parse_and_match() {
        let p = trusting(&["10.0.0.0/8", "192.0.2.7", "fd00::/8"]);
        assert!(p.expects_header("10.255.0.1".parse().unwrap()));
        assert!(p.expects_header("::ffff:10.0.0.1".parse().unwrap()));
        assert!(p.expects_header("192.0.2.7".parse().unwrap()));
        assert!(!p.expects_header("192.0.2.8".parse().unwrap()));
        assert!(p.expects_header("fd12::1".parse().unwrap()));
        assert!(!ProxyProtocol::default().expects_header("10.0.0.1".parse().unwrap()));
        assert_eq!(
            parse_network("10.1.2.3/8").unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert!(parse_network("10.0.0.0/33").is_err());
        assert!(parse_network("proxy.local").is_err());
    }

    #[tokio::test]
    async fn the_header_is_read_to_its_end_and_no_further() {
        let client: SocketAddr = "203.0.113.9:5555".parse().unwrap();
        let h = ProxyHeader::Proxied {
            source: client,
            destination: "198.51.100.1:8883".parse().unwrap(),
        };
        for encoded in [header::encode_v2(&h, &[1, 0, 1, 0]), header::encode_v1(&h)] {
            let mut bytes = encoded;
            bytes.extend(b"\x16\x03\x01rest");
            let mut io = &bytes[..];
            let source = trusting(&["10.0.0.0/8"]).source(&mut io, peer()).await;
            assert_eq!(source.unwrap(), client);
            assert_eq!(io, b"\x16\x03\x01rest");
        }
    }

    #[tokio::test]
    async fn local_and_untrusted_keep_the_peer() {
        let bytes = header::encode_v2(&ProxyHeader::Local, &[]);
        let mut io = &bytes[..];
        let source = trusting(&["10.0.0.0/8"]).source(&mut io, peer()).await;
        assert_eq!(source.unwrap(), peer());
        let mut io = &bytes[..];
        let source = trusting(&["192.0.2.0/24"]).source(&mut io, peer()).await;
        assert_eq!(source.unwrap(), peer());
        assert_eq!(io.len(), bytes.len(), "nothing read from an untrusted peer");
    }

    #[tokio::test]
    async fn a_trusted_peer_without_a_header_is_refused() {
        let mut io = &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\x00..."[..];
        let err = trusting(&["10.0.0.0/8"]).source(&mut io, peer()).await;
        assert!(matches!(err, Err(ProxyError::Header(HeaderError::Missing))));
    }

    #[tokio::test]
    async fn a_header_that_stops_short_times_out() {
        let (mut ours, mut theirs) = tokio::io::duplex(64);
        let bytes = header::encode_v2(&ProxyHeader::Local, &[]);
        tokio::io::AsyncWriteExt::write_all(&mut theirs, &bytes[..14])
            .await
            .unwrap();
        let err = trusting(&["10.0.0.0/8"]).source(&mut ours, peer()).await;
        assert!(matches!(err, Err(ProxyError::Timeout(_))), "{err:?}");
        drop(theirs);
    }
}
