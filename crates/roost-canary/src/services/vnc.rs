//! `vnc`: an RFB server that offers only VNC Authentication. The client's
//! version and its DES response to a fresh 16-byte challenge are recorded
//! (the response as hex in the password field, the challenge beside it:
//! together they allow an offline guess of the password), and the answer
//! is SecurityResult "failed" with a reason, as a server gives for a wrong
//! password.
//!
//! It must never send SecurityResult OK: no framebuffer, no input.

use super::binary;
use super::{Conn, Stream};
use crate::incident::{printable, Credential};
use std::io;
use tokio::io::AsyncWriteExt;

/// The protocol version a stock server (TigerVNC, x11vnc) offers.
pub const DEFAULT_VERSION: &str = "RFB 003.008";
const SECURITY_VNC_AUTH: u8 = 2;
const SECURITY_RESULT_FAILED: u32 = 1;
const FAILURE_REASON: &str = "Authentication failed";

pub async fn serve(mut stream: impl Stream, conn: &mut Conn) -> io::Result<()> {
    stream
        .write_all(version_line(conn.banner(DEFAULT_VERSION)).as_bytes())
        .await?;
    let mut client_version = [0u8; 12];
    binary::read_exact(&mut stream, &mut client_version).await?;
    let Some(minor) = minor_version(&client_version) else {
        binary::record_refused(conn, "not an RFB version", &client_version).await;
        return Ok(());
    };
    let version = printable(client_version.trim_ascii_end());

    if minor >= 7 {
        // 3.7 and later: the client picks from the types offered.
        stream.write_all(&[1, SECURITY_VNC_AUTH]).await?;
        let mut chosen = [0u8; 1];
        binary::read_exact(&mut stream, &mut chosen).await?;
        if chosen[0] != SECURITY_VNC_AUTH {
            let why = format!("{version} chose security type {}, not offered", chosen[0]);
            binary::record_refused(conn, why, &[]).await;
            return Ok(());
        }
    } else {
        // 3.3: the server decides.
        stream
            .write_all(&u32::from(SECURITY_VNC_AUTH).to_be_bytes())
            .await?;
    }

    let challenge: [u8; 16] = rand::random();
    stream.write_all(&challenge).await?;
    let mut response = [0u8; 16];
    binary::read_exact(&mut stream, &mut response).await?;
    let attempt = conn
        .attempt()
        .credential(Credential::password("", hex::encode(response)))
        .detail("clientVersion", version)
        .detail("challenge", hex::encode(challenge));
    conn.record(attempt).await;

    let mut result = SECURITY_RESULT_FAILED.to_be_bytes().to_vec();
    if minor >= 8 {
        result.extend_from_slice(&(FAILURE_REASON.len() as u32).to_be_bytes());
        result.extend_from_slice(FAILURE_REASON.as_bytes());
    }
    stream.write_all(&result).await?;
    stream.flush().await
}

/// The `RFB xxx.yyy\n` line sent: the banner's when it is one.
fn version_line(banner: &str) -> String {
    let banner = banner.trim_end();
    if minor_version(format!("{banner}\n").as_bytes()).is_some() {
        format!("{banner}\n")
    } else {
        format!("{DEFAULT_VERSION}\n")
    }
}

/// The minor version of a 3.x `ProtocolVersion` line (3, 7, 8; Apple's
/// 3.889 counts as 3.8's).
fn minor_version(line: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(line).ok()?;
    let numbers = text.strip_prefix("RFB ")?.strip_suffix('\n')?;
    let (major, minor) = numbers.split_once('.')?;
    if major.len() != 3 || minor.len() != 3 || major.parse::<u16>().ok()? != 3 {
        return None;
    }
    Some(minor.parse::<u16>().ok()?.min(8))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::{testing, ServiceKind};
    use std::net::SocketAddr;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpStream;

    async fn greeted(addr: SocketAddr) -> TcpStream {
        let mut client = TcpStream::connect(addr).await.unwrap();
        let mut version = [0u8; 12];
        client.read_exact(&mut version).await.unwrap();
        assert_eq!(&version, b"RFB 003.008\n");
        client
    }

    #[tokio::test]
    async fn records_the_challenge_response_and_fails_it_with_a_reason() {
        let mut svc = testing::start(ServiceKind::Vnc, |_| {}).await;
        let mut client = greeted(svc.addr).await;
        client.write_all(b"RFB 003.008\n").await.unwrap();
        let mut types = [0u8; 2];
        client.read_exact(&mut types).await.unwrap();
        assert_eq!(types, [1, SECURITY_VNC_AUTH]);
        client.write_all(&[SECURITY_VNC_AUTH]).await.unwrap();
        let mut challenge = [0u8; 16];
        client.read_exact(&mut challenge).await.unwrap();
        let response = [0x5au8; 16];
        client.write_all(&response).await.unwrap();
        let mut result = Vec::new();
        client.read_to_end(&mut result).await.unwrap();
        assert_eq!(&result[..4], &[0, 0, 0, 1]);
        assert_eq!(&result[4..8], &[0, 0, 0, 21]);
        assert_eq!(&result[8..], b"Authentication failed");

        let attempt = svc.next().await;
        assert_eq!(attempt.service, "vnc");
        assert_eq!(
            attempt.credential,
            Some(Credential::password("", "5a".repeat(16)))
        );
        assert_eq!(attempt.details["clientVersion"], "RFB 003.008");
        assert_eq!(attempt.details["challenge"], hex::encode(challenge));
    }

    #[tokio::test]
    async fn a_3_3_client_gets_the_type_the_server_decides() {
        let mut svc = testing::start(ServiceKind::Vnc, |_| {}).await;
        let mut client = greeted(svc.addr).await;
        client.write_all(b"RFB 003.003\n").await.unwrap();
        let mut security = [0u8; 4 + 16];
        client.read_exact(&mut security).await.unwrap();
        assert_eq!(&security[..4], &[0, 0, 0, 2]);
        client.write_all(&[1; 16]).await.unwrap();
        let mut result = Vec::new();
        client.read_to_end(&mut result).await.unwrap();
        assert_eq!(result, [0, 0, 0, 1]);
        assert_eq!(svc.next().await.details["clientVersion"], "RFB 003.003");
    }

    #[tokio::test]
    async fn bad_input_closes_and_counts() {
        let mut svc = testing::start(ServiceKind::Vnc, |_| {}).await;
        let cases: [&[u8]; 4] = [
            b"GET / HTTP/1.1\r\n\r\n",
            // Security type None, which was not offered.
            b"RFB 003.008\n\x01",
            // Truncated: the response cut short.
            b"RFB 003.008\n\x02\x01\x02\x03",
            b"RFB 999.999\n",
        ];
        for bytes in cases {
            let mut client = greeted(svc.addr).await;
            // The server may close with input unread: a reset is fine.
            let _ = client.write_all(bytes).await;
            let _ = client.shutdown().await;
            let mut rest = Vec::new();
            let _ = client.read_to_end(&mut rest).await;
            let attempt = svc.next().await;
            assert!(attempt.credential.is_none(), "{bytes:?}");
        }
        assert_eq!(version_line("RFB 003.889"), "RFB 003.889\n");
        assert_eq!(version_line("TightVNC"), "RFB 003.008\n");
    }
}
