//! `telnet`: a Linux telnetd in front of `login` on Debian 12. Opens with
//! the options telnetd asks for (terminal type, speed, X display, new
//! environment), waits for the client as telnetd does, then prompts for a
//! login and a password (the client's echo turned off for it), answers
//! `Login incorrect` and gives up after three tries. Never starts a shell.

use super::wire::Wire;
use super::{Conn, Stream};
use crate::incident::{printable, Credential};
use std::time::Duration;

const IAC: u8 = 255;
const DONT: u8 = 254;
const DO: u8 = 253;
const WONT: u8 = 252;
const WILL: u8 = 251;
const SB: u8 = 250;
const SE: u8 = 240;
const ECHO: u8 = 1;

/// What telnetd sends first: DO TERMINAL-TYPE, DO TERMINAL-SPEED,
/// DO X-DISPLAY-LOCATION, DO NEW-ENVIRON.
const OPENING: [u8; 12] = [IAC, DO, 24, IAC, DO, 32, IAC, DO, 35, IAC, DO, 39];
/// `/etc/issue.net` on Debian 12.
const ISSUE: &str = "Debian GNU/Linux 12";
const HOSTNAME: &str = "debian";
/// `login`'s tries before it exits (as the brief for this service asks).
const TRIES: u32 = 3;
/// `FAIL_DELAY` in Debian's `/etc/login.defs`.
const FAIL_DELAY: Duration = Duration::from_secs(3);
/// `login` reads a name of at most this many bytes; longer input closes.
const MAX_LINE: usize = 1024;
/// Empty lines at the prompt before the connection is closed.
const MAX_EMPTY: u32 = 16;

pub async fn serve(stream: impl Stream, conn: &mut Conn) -> std::io::Result<()> {
    let mut wire = Wire::new(stream, MAX_LINE);
    wire.send(&OPENING).await?;
    // telnetd waits for the client's answer before it starts `login`.
    wire.wait().await?;
    let issue = format!("{}\r\n", conn.banner(ISSUE));
    wire.send(issue.as_bytes()).await?;
    let prompt = format!("{HOSTNAME} login: ");
    let mut empty = 0;
    for _ in 0..TRIES {
        wire.send(prompt.as_bytes()).await?;
        let user = loop {
            let line = text(&wire.line().await?);
            if !line.is_empty() {
                break line;
            }
            empty += 1;
            if empty > MAX_EMPTY {
                return Ok(());
            }
            wire.send(prompt.as_bytes()).await?;
        };
        wire.send(&[IAC, WILL, ECHO]).await?;
        wire.send(b"Password: ").await?;
        let password = text(&wire.line().await?);
        wire.send(&[IAC, WONT, ECHO, b'\r', b'\n']).await?;
        let attempt = conn
            .attempt()
            .credential(Credential::password(user, password));
        conn.record(attempt).await;
        tokio::time::sleep(FAIL_DELAY).await;
        wire.send(b"\r\nLogin incorrect\r\n").await?;
    }
    Ok(())
}

/// A line as typed, telnet commands taken out.
fn text(line: &[u8]) -> String {
    let mut out = Vec::with_capacity(line.len());
    let mut bytes = line.iter().copied();
    while let Some(b) = bytes.next() {
        if b != IAC {
            out.push(b);
            continue;
        }
        match bytes.next() {
            Some(IAC) => out.push(IAC),
            Some(WILL | WONT | DO | DONT) => {
                bytes.next();
            }
            Some(SB) => {
                let mut last = 0;
                for b in bytes.by_ref() {
                    if last == IAC && b == SE {
                        break;
                    }
                    last = b;
                }
            }
            _ => {}
        }
    }
    printable(&out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::{testing, ServiceKind};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// Reads until `want` has arrived; everything read.
    async fn read_until(client: &mut TcpStream, want: &[u8]) -> Vec<u8> {
        let mut seen = Vec::new();
        let mut chunk = [0u8; 256];
        while !seen.windows(want.len()).any(|w| w == want) {
            let n = client.read(&mut chunk).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&chunk[..n]);
        }
        seen
    }

    #[tokio::test]
    async fn a_login_is_refused_like_linux_telnetd_and_recorded() {
        let mut svc = testing::start(ServiceKind::Telnet, |_| {}).await;
        let mut client = TcpStream::connect(svc.addr).await.unwrap();
        let mut opening = [0u8; 12];
        client.read_exact(&mut opening).await.unwrap();
        // Linux telnetd's opening, as nmap's "Linux telnetd" rule matches it.
        assert_eq!(&opening, b"\xff\xfd\x18\xff\xfd \xff\xfd#\xff\xfd'");
        // What a Linux telnet client answers: WILL TTYPE, WONT the rest.
        client
            .write_all(&[IAC, WILL, 24, IAC, WONT, 32, IAC, WONT, 35, IAC, WONT, 39])
            .await
            .unwrap();
        let seen = read_until(&mut client, b"debian login: ").await;
        assert!(seen.starts_with(b"Debian GNU/Linux 12\r\n"));
        client
            .write_all(&[IAC, SB, 24, 0, b'x', b't', IAC, SE])
            .await
            .unwrap();
        client.write_all(b"root\r\n").await.unwrap();
        let seen = read_until(&mut client, b"Password: ").await;
        assert!(seen.starts_with(&[IAC, WILL, ECHO]));
        client.write_all(b"toor\r\0").await.unwrap();
        let seen = read_until(&mut client, b"login: ").await;
        assert!(seen.windows(15).any(|w| w == b"Login incorrect"));
        let attempt = svc.next().await;
        assert_eq!(attempt.service, "telnet");
        assert_eq!(
            attempt.credential,
            Some(Credential::password("root", "toor"))
        );
    }

    #[tokio::test]
    async fn three_tries_then_the_connection_closes() {
        let mut svc = testing::start(ServiceKind::Telnet, |_| {}).await;
        let mut client = TcpStream::connect(svc.addr).await.unwrap();
        // A bot: no negotiation, the credentials at once.
        client
            .write_all(b"admin\r\n1234\r\nadmin\r\nadmin\r\nuser\r\nuser\r\n")
            .await
            .unwrap();
        let mut all = Vec::new();
        let _ = client.read_to_end(&mut all).await;
        let prompts = all.windows(7).filter(|w| w == b"login: ").count();
        assert_eq!(prompts, 3);
        for (user, password) in [("admin", "1234"), ("admin", "admin"), ("user", "user")] {
            let attempt = svc.next().await;
            assert_eq!(
                attempt.credential,
                Some(Credential::password(user, password))
            );
        }
    }

    #[tokio::test]
    async fn garbage_and_an_oversized_line_close_and_still_count() {
        let mut svc = testing::start(ServiceKind::Telnet, |_| {}).await;
        let mut client = TcpStream::connect(svc.addr).await.unwrap();
        client.write_all(&[IAC, SB, 0xff, 0x00, IAC]).await.unwrap();
        let _ = client.write_all(&vec![0xfe; 8192]).await;
        let mut all = Vec::new();
        let _ = client.read_to_end(&mut all).await;
        let attempt = svc.next().await;
        assert_eq!(attempt.details["event"], "connection");
        assert!(attempt.credential.is_none());
    }

    #[test]
    fn telnet_commands_are_taken_out_of_what_was_typed() {
        assert_eq!(text(&[b'a', IAC, DO, 1, b'b', IAC, IAC]), "ab\u{fffd}");
        assert_eq!(text(&[IAC, SB, 24, 0, b'v', IAC, SE, b'r']), "r");
        assert_eq!(text(&[b'x', IAC]), "x");
    }
}
