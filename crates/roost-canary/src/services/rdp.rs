//! `rdp`: the first exchange of Remote Desktop as a Windows server that
//! requires Network Level Authentication answers it. The client's X.224
//! Connection Request is read for its cookie (`Cookie: mstshash=USER`,
//! the user the client means to log in as) and the security protocols it
//! asks for; the Connection Confirm selects CredSSP when offered, or
//! refuses with HYBRID_REQUIRED_BY_SERVER, and the connection ends before
//! any TLS.
//!
//! It must never go past the negotiation: no TLS, no CredSSP, no session.

use super::binary::{self, Cursor};
use super::{Conn, Stream};
use crate::incident::{printable, Credential};
use serde_json::Value;
use std::io;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The longest Connection Request read (a cookie and a negotiation
/// request are well under 100 bytes).
const MAX_REQUEST: usize = 1024;
/// What the client sends after the confirm (its TLS ClientHello), read
/// and dropped before closing.
const MAX_AFTER: usize = 4096;

const TPKT_VERSION: u8 = 3;
const X224_CONNECTION_REQUEST: u8 = 0xe0;
const X224_CONNECTION_CONFIRM: u8 = 0xd0;
/// The source reference Windows puts in its confirm.
const SOURCE_REFERENCE: [u8; 2] = [0x12, 0x34];

const NEG_REQUEST: u8 = 0x01;
const NEG_RESPONSE: u8 = 0x02;
const NEG_FAILURE: u8 = 0x03;
const PROTOCOL_HYBRID: u32 = 0x02;
/// Windows' flags: extended client data, graphics pipeline, restricted
/// admin and redirected authentication supported.
const NEG_RESPONSE_FLAGS: u8 = 0x1f;
const HYBRID_REQUIRED_BY_SERVER: u32 = 0x05;

/// The security protocols of an RDP_NEG_REQ, by their names in MS-RDPBCGR.
const PROTOCOLS: [(u32, &str); 5] = [
    (0x01, "ssl"),
    (0x02, "hybrid"),
    (0x04, "rdstls"),
    (0x08, "hybrid_ex"),
    (0x10, "rdsaad"),
];

pub async fn serve(mut stream: impl Stream, conn: &mut Conn) -> io::Result<()> {
    let packet = match read_tpkt(&mut stream).await {
        Ok(packet) => packet,
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            binary::record_refused(conn, e.to_string(), &[]).await;
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let Some(request) = ConnectionRequest::parse(&packet) else {
        binary::record_refused(conn, "not an X.224 Connection Request", &packet).await;
        return Ok(());
    };

    let mut attempt = conn.attempt();
    if let Some(user) = request.user() {
        attempt = attempt.credential(Credential::username(user));
    }
    if let Some(cookie) = &request.cookie {
        attempt = attempt.detail("cookie", printable(cookie));
    }
    match request.protocols {
        Some(requested) => {
            let names = PROTOCOLS
                .iter()
                .filter(|(bit, _)| requested & bit != 0)
                .map(|(_, name)| Value::from(*name))
                .collect::<Vec<_>>();
            attempt = attempt
                .detail("requestedProtocols", names)
                .detail("requestedProtocolFlags", requested);
        }
        None => attempt = attempt.detail("requestedProtocols", "none (standard RDP security)"),
    }
    conn.record(attempt).await;

    stream.write_all(&confirm(request.protocols)).await?;
    stream.flush().await?;
    // The client's next move (TLS when CredSSP was selected) is read and
    // dropped: the server stops here.
    let mut after = vec![0u8; MAX_AFTER];
    let _ = tokio::time::timeout(binary::IDLE, stream.read(&mut after)).await;
    Ok(())
}

/// One TPKT's content (after its 4-byte header).
async fn read_tpkt(stream: &mut impl Stream) -> io::Result<Vec<u8>> {
    let mut header = [0u8; 4];
    binary::read_exact(stream, &mut header).await?;
    if header[0] != TPKT_VERSION {
        return Err(binary::malformed("not a TPKT"));
    }
    let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
    if !(4 + 7..=MAX_REQUEST).contains(&len) {
        return Err(binary::malformed("TPKT length out of range"));
    }
    let mut packet = vec![0u8; len - 4];
    binary::read_exact(stream, &mut packet).await?;
    Ok(packet)
}

/// What a Connection Request carries.
#[derive(Debug, PartialEq)]
struct ConnectionRequest {
    /// The line before the negotiation request: `Cookie: mstshash=…` or
    /// a load balancer's routing token.
    cookie: Option<Vec<u8>>,
    /// RDP_NEG_REQ's requested protocols; `None` when the client sent
    /// none (standard RDP security only).
    protocols: Option<u32>,
}

impl ConnectionRequest {
    fn parse(packet: &[u8]) -> Option<Self> {
        let mut c = Cursor::new(packet);
        let indicator = usize::from(c.u8()?);
        let tpdu = c.take(indicator)?;
        let mut x224 = Cursor::new(tpdu);
        if x224.u8()? & 0xf0 != X224_CONNECTION_REQUEST {
            return None;
        }
        x224.take(5)?; // references and class
        let mut data = x224.rest();
        let mut cookie = None;
        if data.starts_with(b"Cookie:") {
            let end = data.windows(2).position(|w| w == b"\r\n")?;
            cookie = Some(data[..end].to_vec());
            data = &data[end + 2..];
        }
        let mut neg = Cursor::new(data);
        let protocols = match neg.u8() {
            Some(NEG_REQUEST) => {
                neg.u8()?; // flags
                neg.u16_le()?; // length
                Some(neg.u32_le()?)
            }
            _ => None,
        };
        Some(Self { cookie, protocols })
    }

    /// The user named by an `mstshash` cookie.
    fn user(&self) -> Option<String> {
        let cookie = String::from_utf8_lossy(self.cookie.as_deref()?).into_owned();
        let user = cookie.strip_prefix("Cookie: mstshash=")?;
        Some(printable(user.as_bytes()))
    }
}

/// The Connection Confirm: CredSSP selected when the client offered it,
/// HYBRID_REQUIRED_BY_SERVER when it did not, no negotiation data to a
/// client that sent none.
fn confirm(requested: Option<u32>) -> Vec<u8> {
    let negotiation: Vec<u8> = match requested {
        None => Vec::new(),
        Some(protocols) if protocols & PROTOCOL_HYBRID != 0 => {
            let mut n = vec![NEG_RESPONSE, NEG_RESPONSE_FLAGS, 8, 0];
            n.extend_from_slice(&PROTOCOL_HYBRID.to_le_bytes());
            n
        }
        Some(_) => {
            let mut n = vec![NEG_FAILURE, 0, 8, 0];
            n.extend_from_slice(&HYBRID_REQUIRED_BY_SERVER.to_le_bytes());
            n
        }
    };
    let indicator = 6 + negotiation.len() as u8;
    let len = (4 + 1 + usize::from(indicator)) as u16;
    let mut packet = vec![TPKT_VERSION, 0];
    packet.extend_from_slice(&len.to_be_bytes());
    packet.extend_from_slice(&[indicator, X224_CONNECTION_CONFIRM, 0, 0]);
    packet.extend_from_slice(&SOURCE_REFERENCE);
    packet.push(0); // class 0
    packet.extend_from_slice(&negotiation);
    packet
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::{testing, ServiceKind};
    use tokio::net::TcpStream;

    /// What mstsc sends: a cookie and a request for TLS and CredSSP.
    fn request(cookie: &str, protocols: Option<u32>) -> Vec<u8> {
        let mut data = cookie.as_bytes().to_vec();
        if let Some(p) = protocols {
            data.extend_from_slice(&[NEG_REQUEST, 0, 8, 0]);
            data.extend_from_slice(&p.to_le_bytes());
        }
        let indicator = 6 + data.len() as u8;
        let len = 4 + 1 + u16::from(indicator);
        let mut p = vec![3, 0];
        p.extend_from_slice(&len.to_be_bytes());
        p.extend_from_slice(&[indicator, X224_CONNECTION_REQUEST, 0, 0, 0, 0, 0]);
        p.extend_from_slice(&data);
        p
    }

    /// What the server answers `bytes` before it closes (a reset for
    /// input it left unread ends the answer too).
    async fn exchange(addr: std::net::SocketAddr, bytes: &[u8]) -> Vec<u8> {
        let mut client = TcpStream::connect(addr).await.unwrap();
        client.write_all(bytes).await.unwrap();
        let _ = client.shutdown().await;
        let mut reply = Vec::new();
        let _ = client.read_to_end(&mut reply).await;
        reply
    }

    #[tokio::test]
    async fn records_the_cookie_user_and_selects_credssp_as_windows_does() {
        let mut svc = testing::start(ServiceKind::Rdp, |_| {}).await;
        let reply = exchange(
            svc.addr,
            &request("Cookie: mstshash=Administrator\r\n", Some(0x0b)),
        )
        .await;
        // What nmap knows as Microsoft Terminal Services.
        assert_eq!(
            reply,
            b"\x03\x00\x00\x13\x0e\xd0\x00\x00\x12\x34\x00\x02\x1f\x08\x00\x02\x00\x00\x00"
        );
        let attempt = svc.next().await;
        assert_eq!(attempt.service, "rdp");
        assert_eq!(
            attempt.credential,
            Some(Credential::username("Administrator"))
        );
        assert_eq!(attempt.details["cookie"], "Cookie: mstshash=Administrator");
        assert_eq!(
            attempt.details["requestedProtocols"],
            serde_json::json!(["ssl", "hybrid", "hybrid_ex"])
        );
        assert_eq!(attempt.details["requestedProtocolFlags"], 0x0b);
    }

    #[tokio::test]
    async fn refuses_clients_without_credssp_and_answers_old_ones_plainly() {
        let mut svc = testing::start(ServiceKind::Rdp, |_| {}).await;
        let reply = exchange(svc.addr, &request("Cookie: mstshash=hydra\r\n", Some(0))).await;
        assert_eq!(&reply[11..], b"\x03\x00\x08\x00\x05\x00\x00\x00");
        assert_eq!(
            svc.next().await.details["requestedProtocols"],
            serde_json::json!([])
        );

        let reply = exchange(svc.addr, &request("", None)).await;
        assert_eq!(reply, b"\x03\x00\x00\x0b\x06\xd0\x00\x00\x12\x34\x00");
        let attempt = svc.next().await;
        assert!(attempt.credential.is_none());
        assert_eq!(
            attempt.details["requestedProtocols"],
            "none (standard RDP security)"
        );
    }

    #[tokio::test]
    async fn bad_input_closes_and_counts() {
        let mut svc = testing::start(ServiceKind::Rdp, |_| {}).await;
        let cut = request("Cookie: mstshash=x\r\n", Some(3));
        let cases: [&[u8]; 5] = [
            b"GET / HTTP/1.1\r\n\r\n",
            // A TPKT far longer than a Connection Request.
            b"\x03\x00\xff\xff",
            // Truncated: the header promises more than comes.
            &cut[..cut.len() - 4],
            // A TPKT that is not a Connection Request.
            b"\x03\x00\x00\x0b\x06\xf0\x00\x00\x00\x00\x00",
            // A cookie without its line end.
            b"\x03\x00\x00\x15\x10\xe0\x00\x00\x00\x00\x00Cookie: ab",
        ];
        for bytes in cases {
            let reply = exchange(svc.addr, bytes).await;
            assert!(reply.is_empty(), "{bytes:?} got {reply:?}");
            let attempt = svc.next().await;
            assert!(attempt.credential.is_none());
            assert_eq!(attempt.details["event"], "connection");
        }
    }
}
