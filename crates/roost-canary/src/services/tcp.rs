//! `tcp`: any port. Sends the configured banner, if any, records the
//! connection and the first bytes the client sends, then closes.

use super::{Conn, Stream};
use crate::incident::printable;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The most of the client's first bytes kept.
const FIRST_BYTES: usize = 1024;
/// How long the client has to send something after connecting.
const FIRST_BYTES_WAIT: Duration = Duration::from_secs(10);

pub async fn serve(mut stream: impl Stream, conn: &mut Conn) -> std::io::Result<()> {
    if let Some(banner) = conn.service.banner.as_ref().filter(|b| !b.is_empty()) {
        let mut line = banner.clone();
        if !line.ends_with('\n') {
            line.push_str("\r\n");
        }
        stream.write_all(line.as_bytes()).await?;
    }
    let mut buf = vec![0u8; FIRST_BYTES];
    let mut filled = 0;
    let read = tokio::time::timeout(FIRST_BYTES_WAIT, async {
        while filled < FIRST_BYTES {
            match stream.read(&mut buf[filled..]).await {
                Ok(0) | Err(_) => break,
                Ok(n) => filled += n,
            }
        }
    });
    let _ = read.await;
    let mut attempt = conn.attempt().detail("event", "connection");
    if filled > 0 {
        attempt = attempt.detail("firstBytes", printable(&buf[..filled]));
    }
    conn.record(attempt).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::services::{testing, ServiceKind};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    #[tokio::test]
    async fn records_the_first_bytes_after_its_banner() {
        let mut svc = testing::start(ServiceKind::Tcp, |s| {
            s.banner = Some("220 gateway ready".into())
        })
        .await;
        let mut client = TcpStream::connect(svc.addr).await.unwrap();
        let mut banner = [0u8; 19];
        client.read_exact(&mut banner).await.unwrap();
        assert_eq!(&banner, b"220 gateway ready\r\n");
        client.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
        client.shutdown().await.unwrap();
        let attempt = svc.next().await;
        assert_eq!(attempt.service, "tcp");
        assert_eq!(attempt.server_port, svc.addr.port());
        assert_eq!(attempt.details["firstBytes"], "GET / HTTP/1.0\\r\\n\\r\\n");
    }

    #[tokio::test]
    async fn a_connection_that_says_nothing_still_counts() {
        let mut svc = testing::start(ServiceKind::Tcp, |_| {}).await;
        drop(TcpStream::connect(svc.addr).await.unwrap());
        let attempt = svc.next().await;
        assert_eq!(attempt.details["event"], "connection");
        assert!(!attempt.details.contains_key("firstBytes"));
    }
}
