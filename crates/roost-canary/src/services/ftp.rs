//! `ftp`: a vsftpd 3.0.3 as Debian 12 installs it (no anonymous login, no
//! TLS). Greets, asks for a password after `USER`, answers every `PASS`
//! with `530 Login incorrect.` and closes after three, as vsftpd's
//! `max_login_fails` does; the few commands scanners send before logging in
//! get vsftpd's own answers. Never logs anyone in, never opens a data
//! connection.

use super::wire::{Commands, Wire};
use super::{Conn, Stream};
use crate::incident::{printable, Credential};

const GREETING: &str = "(vsFTPd 3.0.3)";
/// vsftpd's own command line limit.
const MAX_LINE: usize = 4096;
/// vsftpd's `max_login_fails` default.
const MAX_LOGINS: u32 = 3;

const FEATURES: &[u8] = b"211-Features:\r\n EPRT\r\n EPSV\r\n MDTM\r\n PASV\r\n REST STREAM\r\n SIZE\r\n TVFS\r\n211 End\r\n";

pub async fn serve(stream: impl Stream, conn: &mut Conn) -> std::io::Result<()> {
    let mut wire = Wire::new(stream, MAX_LINE);
    let mut commands = Commands::default();
    let result = session(&mut wire, conn, &mut commands).await;
    commands.record_rest(conn).await;
    result
}

async fn session(
    wire: &mut Wire<impl Stream>,
    conn: &mut Conn,
    commands: &mut Commands,
) -> std::io::Result<()> {
    let greeting = format!("220 {}\r\n", conn.banner(GREETING));
    wire.send(greeting.as_bytes()).await?;
    let mut user: Option<String> = None;
    let mut failures = 0;
    loop {
        let line = wire.line().await?;
        let line = String::from_utf8_lossy(&line);
        let (verb, arg) = match line.split_once(' ') {
            Some((verb, arg)) => (verb.to_ascii_uppercase(), arg.to_owned()),
            None => (line.trim().to_ascii_uppercase(), String::new()),
        };
        if verb != "PASS" {
            commands.push(printable(line.as_bytes()));
        }
        let reply: &[u8] = match verb.as_str() {
            "USER" => {
                user = Some(arg);
                b"331 Please specify the password.\r\n"
            }
            "PASS" => {
                let Some(name) = user.take() else {
                    wire.send(b"503 Login with USER first.\r\n").await?;
                    continue;
                };
                let attempt =
                    commands.attach(conn.attempt().credential(Credential::password(name, arg)));
                conn.record(attempt).await;
                failures += 1;
                // vsftpd's delay_failed_login: a brute force gets slower.
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                wire.send(b"530 Login incorrect.\r\n").await?;
                if failures >= MAX_LOGINS {
                    return Ok(());
                }
                continue;
            }
            "QUIT" => {
                wire.send(b"221 Goodbye.\r\n").await?;
                return Ok(());
            }
            "SYST" => b"215 UNIX Type: L8\r\n",
            "FEAT" => FEATURES,
            "OPTS" if arg.eq_ignore_ascii_case("UTF8 ON") => b"200 Always in UTF8 mode.\r\n",
            _ => b"530 Please login with USER and PASS.\r\n",
        };
        wire.send(reply).await?;
    }
}

#[cfg(test)]
mod tests {
    use crate::services::{testing, ServiceKind};
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpStream;

    async fn reply(client: &mut BufReader<TcpStream>) -> String {
        let mut line = String::new();
        // A reset after the service closed reads as the end.
        let _ = client.read_line(&mut line).await;
        line
    }

    #[tokio::test]
    async fn a_login_is_refused_like_vsftpd_and_recorded() {
        let mut svc = testing::start(ServiceKind::Ftp, |_| {}).await;
        let mut client = BufReader::new(TcpStream::connect(svc.addr).await.unwrap());
        assert_eq!(reply(&mut client).await, "220 (vsFTPd 3.0.3)\r\n");
        client.write_all(b"SYST\r\n").await.unwrap();
        assert_eq!(reply(&mut client).await, "215 UNIX Type: L8\r\n");
        client.write_all(b"AUTH TLS\r\n").await.unwrap();
        assert_eq!(
            reply(&mut client).await,
            "530 Please login with USER and PASS.\r\n"
        );
        client.write_all(b"USER admin\r\n").await.unwrap();
        assert_eq!(
            reply(&mut client).await,
            "331 Please specify the password.\r\n"
        );
        client.write_all(b"PASS s3cret\r\n").await.unwrap();
        assert_eq!(reply(&mut client).await, "530 Login incorrect.\r\n");
        let attempt = svc.next().await;
        assert_eq!(attempt.service, "ftp");
        let credential = attempt.credential.unwrap();
        assert_eq!(credential.username, "admin");
        assert_eq!(credential.password.as_deref(), Some("s3cret"));
        assert_eq!(
            attempt.details["commands"],
            serde_json::json!(["SYST", "AUTH TLS", "USER admin"])
        );
        client.write_all(b"QUIT\r\n").await.unwrap();
        assert_eq!(reply(&mut client).await, "221 Goodbye.\r\n");
    }

    #[tokio::test]
    async fn three_failures_close_the_connection_each_recorded() {
        let mut svc = testing::start(ServiceKind::Ftp, |_| {}).await;
        let mut client = BufReader::new(TcpStream::connect(svc.addr).await.unwrap());
        reply(&mut client).await;
        for n in 0..3 {
            client
                .write_all(format!("USER root\r\nPASS pw{n}\r\n").as_bytes())
                .await
                .unwrap();
            reply(&mut client).await;
            assert_eq!(reply(&mut client).await, "530 Login incorrect.\r\n");
            let attempt = svc.next().await;
            assert_eq!(
                attempt.credential.unwrap().password.unwrap(),
                format!("pw{n}")
            );
        }
        assert_eq!(reply(&mut client).await, "", "closed after three");
    }

    #[tokio::test]
    async fn an_oversized_line_closes_and_still_counts() {
        let mut svc = testing::start(ServiceKind::Ftp, |_| {}).await;
        let mut client = BufReader::new(TcpStream::connect(svc.addr).await.unwrap());
        reply(&mut client).await;
        client.write_all(b"USER \xff\x00garbage\r\n").await.unwrap();
        reply(&mut client).await;
        let _ = client.write_all(&vec![b'A'; 64 * 1024]).await;
        assert_eq!(reply(&mut client).await, "", "closed on the long line");
        let attempt = svc.next().await;
        assert!(attempt.credential.is_none());
        assert_eq!(attempt.details["commands"][0], "USER \u{fffd}\\0garbage");
    }
}
