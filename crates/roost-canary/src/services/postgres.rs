//! `postgres`: a PostgreSQL 15 as Debian 12 runs it, without TLS. Declines
//! SSL and GSS encryption with `N`, reads the startup message (user,
//! database, application), asks for the password in clear so that it is
//! captured, and answers as PostgreSQL 15 does when it is wrong. Never
//! completes a login, never runs a query.

use super::wire::Wire;
use super::{Conn, Stream};
use crate::incident::{printable, Credential};
use serde_json::{Map, Value};

/// PostgreSQL's own cap on a startup packet.
const MAX_STARTUP: usize = 10_000;
/// PostgreSQL's own cap on a password message.
const MAX_PASSWORD: usize = 1000;
/// Startup parameters kept for an attempt's details.
const MAX_PARAMETERS: usize = 32;

const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;
const CANCEL_REQUEST: u32 = 80_877_102;

pub async fn serve(stream: impl Stream, conn: &mut Conn) -> std::io::Result<()> {
    let mut wire = Wire::new(stream, MAX_STARTUP);
    let mut ssl_asked = false;
    let mut gss_asked = false;
    let body = loop {
        let len = u32::from_be_bytes(array(&wire.exact(4).await?)) as usize;
        if !(8..=MAX_STARTUP).contains(&len) {
            // PostgreSQL logs "invalid length of startup packet" and closes
            // without a word to the client.
            return Ok(());
        }
        let body = wire.exact(len - 4).await?;
        let code = u32::from_be_bytes(array(&body));
        match code {
            SSL_REQUEST if !ssl_asked => ssl_asked = true,
            GSSENC_REQUEST if !gss_asked => gss_asked = true,
            CANCEL_REQUEST => return Ok(()),
            _ => break body,
        }
        wire.send(b"N").await?;
    };
    let major = u16::from_be_bytes(array(&body[0..2]));
    let minor = u16::from_be_bytes(array(&body[2..4]));
    if major != 3 {
        let message =
            format!("unsupported frontend protocol {major}.{minor}: server supports 3.0 to 3.0");
        let reply = error(
            "0A000",
            &message,
            "postmaster.c",
            "2194",
            "ProcessStartupPacket",
        );
        return wire.send(&reply).await;
    }
    let parameters = startup_parameters(&body[4..]);
    let Some(user) = parameters
        .get("user")
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        let reply = error(
            "28000",
            "no PostgreSQL user name specified in startup packet",
            "postmaster.c",
            "2268",
            "ProcessStartupPacket",
        );
        return wire.send(&reply).await;
    };
    // AuthenticationCleartextPassword.
    wire.send(&[b'R', 0, 0, 0, 8, 0, 0, 0, 3]).await?;
    // psql, asked for a password it lacks, leaves and comes back with one:
    // the user it tried counts either way.
    let (credential, reply) = match password_message(&mut wire).await {
        Ok(Ok(password)) => {
            let message = format!("password authentication failed for user \"{user}\"");
            (
                Credential::password(user, printable(&password)),
                Some(error("28P01", &message, "auth.c", "335", "auth_failed")),
            )
        }
        Ok(Err(kind)) => {
            let message = format!("expected password response, got message type {kind}");
            (
                Credential::username(user),
                Some(error(
                    "08P01",
                    &message,
                    "auth.c",
                    "747",
                    "recv_password_packet",
                )),
            )
        }
        Err(_) => (Credential::username(user), None),
    };
    let mut attempt = conn.attempt().credential(credential);
    attempt.details = parameters;
    conn.record(attempt).await;
    match reply {
        Some(reply) => wire.send(&reply).await,
        None => Ok(()),
    }
}

/// The password the client sent, or the type of the message it sent
/// instead.
async fn password_message(wire: &mut Wire<impl Stream>) -> std::io::Result<Result<Vec<u8>, u8>> {
    let kind = wire.exact(1).await?[0];
    if kind != b'p' {
        return Ok(Err(kind));
    }
    let len = u32::from_be_bytes(array(&wire.exact(4).await?)) as usize;
    if !(5..=MAX_PASSWORD + 4).contains(&len) {
        return Err(std::io::ErrorKind::InvalidData.into());
    }
    let message = wire.exact(len - 4).await?;
    Ok(Ok(message
        .split(|&b| b == 0)
        .next()
        .unwrap_or_default()
        .to_vec()))
}

/// The startup message's name/value pairs as details (`user`, `database`,
/// `application_name` …), bounded by the attempt.
fn startup_parameters(pairs: &[u8]) -> Map<String, Value> {
    let mut parameters = Map::new();
    let mut fields = pairs.split(|&b| b == 0);
    while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
        if name.is_empty() || parameters.len() == MAX_PARAMETERS {
            break;
        }
        parameters.insert(printable(name), printable(value).into());
    }
    if !parameters.contains_key("database") {
        if let Some(user) = parameters.get("user").cloned() {
            parameters.insert("database".into(), user);
        }
    }
    parameters
}

/// A FATAL ErrorResponse with the fields PostgreSQL 15 sends.
fn error(code: &str, message: &str, file: &str, line: &str, routine: &str) -> Vec<u8> {
    let mut fields = Vec::new();
    for (tag, value) in [
        (b'S', "FATAL"),
        (b'V', "FATAL"),
        (b'C', code),
        (b'M', message),
        (b'F', file),
        (b'L', line),
        (b'R', routine),
    ] {
        fields.push(tag);
        fields.extend_from_slice(value.as_bytes());
        fields.push(0);
    }
    fields.push(0);
    let mut reply = vec![b'E'];
    reply.extend_from_slice(&(fields.len() as u32 + 4).to_be_bytes());
    reply.extend_from_slice(&fields);
    reply
}

fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    let n = bytes.len().min(N);
    out[..n].copy_from_slice(&bytes[..n]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::{testing, ServiceKind};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    fn startup(pairs: &[(&str, &str)]) -> Vec<u8> {
        let mut body = vec![0, 3, 0, 0];
        for (name, value) in pairs {
            body.extend_from_slice(name.as_bytes());
            body.push(0);
            body.extend_from_slice(value.as_bytes());
            body.push(0);
        }
        body.push(0);
        let mut packet = (body.len() as u32 + 4).to_be_bytes().to_vec();
        packet.extend_from_slice(&body);
        packet
    }

    #[tokio::test]
    async fn a_login_is_refused_like_postgres_15_and_recorded() {
        let mut svc = testing::start(ServiceKind::Postgres, |_| {}).await;
        let mut client = TcpStream::connect(svc.addr).await.unwrap();
        client
            .write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])
            .await
            .unwrap();
        let mut answer = [0u8; 1];
        client.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"N");
        client
            .write_all(&startup(&[
                ("user", "postgres"),
                ("database", "prod"),
                ("application_name", "psql"),
            ]))
            .await
            .unwrap();
        let mut ask = [0u8; 9];
        client.read_exact(&mut ask).await.unwrap();
        assert_eq!(ask, [b'R', 0, 0, 0, 8, 0, 0, 0, 3]);
        client.write_all(b"p\0\0\0\x0dpassw0rd\0").await.unwrap();
        let mut reply = Vec::new();
        client.read_to_end(&mut reply).await.unwrap();
        assert_eq!(reply[0], b'E');
        let text = String::from_utf8_lossy(&reply);
        assert!(text.contains("C28P01\0"));
        assert!(text.contains("Mpassword authentication failed for user \"postgres\"\0"));
        let attempt = svc.next().await;
        assert_eq!(attempt.service, "postgres");
        assert_eq!(
            attempt.credential,
            Some(Credential::password("postgres", "passw0rd"))
        );
        assert_eq!(attempt.details["database"], "prod");
        assert_eq!(attempt.details["application_name"], "psql");
    }

    #[tokio::test]
    async fn an_old_protocol_gets_postgres_15s_fatal() {
        let mut svc = testing::start(ServiceKind::Postgres, |_| {}).await;
        let mut client = TcpStream::connect(svc.addr).await.unwrap();
        // What nmap's SMB probe looks like to PostgreSQL.
        let mut probe = vec![0, 0, 0, 0xa4, 0xff, b'S', b'M', b'B'];
        probe.resize(0xa4, 0);
        client.write_all(&probe).await.unwrap();
        let mut reply = Vec::new();
        client.read_to_end(&mut reply).await.unwrap();
        let text = String::from_utf8_lossy(&reply);
        assert!(text.contains(
            "VFATAL\0C0A000\0Munsupported frontend protocol 65363.19778: server supports 3.0 to 3.0\0Fpostmaster.c\0L2194\0RProcessStartupPacket\0\0"
        ));
        assert_eq!(svc.next().await.details["event"], "connection");
    }

    #[tokio::test]
    async fn bad_input_closes_and_still_counts() {
        let mut svc = testing::start(ServiceKind::Postgres, |_| {}).await;
        let cases: [&[u8]; 4] = [
            &[0, 0, 0, 2],
            &[0x7f, 0xff, 0xff, 0xff, 1, 2, 3],
            &[0, 0, 0, 12, 0, 3],
            b"GET / HTTP/1.0\r\n\r\n",
        ];
        for case in cases {
            let mut client = TcpStream::connect(svc.addr).await.unwrap();
            client.write_all(case).await.unwrap();
            client.shutdown().await.unwrap();
            let mut reply = Vec::new();
            let _ = client.read_to_end(&mut reply).await;
            assert!(reply.is_empty());
            assert_eq!(svc.next().await.details["event"], "connection");
        }
        // A client that leaves when asked for a password (as psql does
        // before it prompts): the user counts.
        let mut client = TcpStream::connect(svc.addr).await.unwrap();
        client
            .write_all(&startup(&[("user", "admin"), ("database", "app")]))
            .await
            .unwrap();
        let mut ask = [0u8; 9];
        client.read_exact(&mut ask).await.unwrap();
        drop(client);
        let attempt = svc.next().await;
        assert_eq!(attempt.credential, Some(Credential::username("admin")));
        assert_eq!(attempt.details["database"], "app");
        // Another message instead of the password: the user counts.
        let mut client = TcpStream::connect(svc.addr).await.unwrap();
        client.write_all(&startup(&[("user", "sa")])).await.unwrap();
        client.write_all(b"Q\0\0\0\x09x;").await.unwrap();
        let mut reply = Vec::new();
        let _ = client.read_to_end(&mut reply).await;
        let attempt = svc.next().await;
        assert_eq!(attempt.credential, Some(Credential::username("sa")));
        assert_eq!(attempt.details["database"], "sa");
    }
}
