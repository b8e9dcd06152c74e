//! `mssql`: a Microsoft SQL Server 2019 login. The PRELOGIN answer names
//! the server's version and says encryption is not supported, so the
//! client sends its LOGIN7 in clear; the login's user, password (the
//! protocol only scrambles it), host and application are recorded, and the
//! answer is error 18456 "Login failed for user …", then the end.
//!
//! It must never send a LOGINACK: no batch is ever read.

use super::binary::{self, Cursor};
use super::{Conn, Stream};
use crate::incident::{printable, Credential};
use std::io;
use tokio::io::AsyncWriteExt;

/// SQL Server 2019 CU28 (15.0.4385); the banner replaces it
/// (`major.minor.build`).
pub const DEFAULT_VERSION: &str = "15.0.4385";
/// What the server calls itself in its error messages.
const SERVER_NAME: &str = "SQL01";
/// The longest message (all its packets) read: a LOGIN7 is a few hundred
/// bytes.
const MAX_MESSAGE: usize = 16 * 1024;
/// Messages read on one connection: a PRELOGIN, then a LOGIN7, after
/// whose failure a server closes.
const MAX_MESSAGES: usize = 2;

const PRELOGIN: u8 = 0x12;
const LOGIN7: u8 = 0x10;
const TABULAR_RESULT: u8 = 0x04;
/// The packet status bit that ends a message.
const END_OF_MESSAGE: u8 = 0x01;
const HEADER: usize = 8;

const OPTION_VERSION: u8 = 0x00;
const OPTION_ENCRYPTION: u8 = 0x01;
const OPTION_INSTOPT: u8 = 0x02;
const OPTION_THREADID: u8 = 0x03;
const OPTION_MARS: u8 = 0x04;
const OPTION_END: u8 = 0xff;
const ENCRYPT_NOT_SUP: u8 = 0x02;

pub async fn serve(mut stream: impl Stream, conn: &mut Conn) -> io::Result<()> {
    let version = version(conn.banner(DEFAULT_VERSION));
    let mut greeted = false;
    for _ in 0..MAX_MESSAGES {
        let (kind, message) = read_message(&mut stream).await?;
        match kind {
            PRELOGIN if greeted => {
                binary::record_refused(conn, "a second PRELOGIN", &[]).await;
                return Ok(());
            }
            PRELOGIN => {
                greeted = true;
                let options = prelogin_options(&message);
                let Some(options) = options else {
                    // Not a PRELOGIN: a TLS handshake after ours said no
                    // encryption, or garbage.
                    binary::record_refused(conn, "not a PRELOGIN", &message).await;
                    return Ok(());
                };
                let reply = prelogin_reply(version, options.contains(&OPTION_MARS));
                write_message(&mut stream, &reply).await?;
            }
            LOGIN7 => {
                let Some(login) = Login::parse(&message) else {
                    binary::record_refused(conn, "malformed LOGIN7", &[]).await;
                    return Ok(());
                };
                let username = shown(&login.username);
                let credential = if login.integrated {
                    Credential::username(username)
                } else {
                    Credential::password(username, shown(&login.password))
                };
                let mut attempt = conn
                    .attempt()
                    .credential(credential)
                    .detail("hostname", shown(&login.hostname))
                    .detail("appName", shown(&login.app_name))
                    .detail("serverName", shown(&login.server_name))
                    .detail("library", shown(&login.library))
                    .detail("database", shown(&login.database))
                    .detail("tdsVersion", format!("{:#010x}", login.tds_version));
                if login.integrated {
                    attempt = attempt.detail("integratedSecurity", true);
                }
                conn.record(attempt).await;
                let text = format!("Login failed for user '{}'.", login.username);
                return write_message(&mut stream, &login_failed(&text)).await;
            }
            other => {
                let why = format!("TDS packet type {other:#04x}");
                binary::record_refused(conn, why, &message).await;
                return Ok(());
            }
        }
    }
    Ok(())
}

/// `major.minor.build` of the banner, or the default's.
fn version(banner: &str) -> [u8; 6] {
    let parse = |text: &str| -> Option<[u8; 6]> {
        let mut parts = text.trim().split('.');
        let major: u8 = parts.next()?.parse().ok()?;
        let minor: u8 = parts.next()?.parse().ok()?;
        let build: u16 = parts.next()?.parse().ok()?;
        let [b0, b1] = build.to_be_bytes();
        Some([major, minor, b0, b1, 0, 0])
    };
    parse(banner)
        .or_else(|| parse(DEFAULT_VERSION))
        .unwrap_or_default()
}

/// One TDS message: its packets' type and their joined payloads.
async fn read_message(stream: &mut impl Stream) -> io::Result<(u8, Vec<u8>)> {
    let mut message = Vec::new();
    loop {
        let mut header = [0u8; HEADER];
        binary::read_exact(stream, &mut header).await?;
        let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
        let body = len
            .checked_sub(HEADER)
            .ok_or_else(|| binary::malformed("packet shorter than its header"))?;
        if message.len() + body > MAX_MESSAGE {
            return Err(binary::malformed("message over the limit"));
        }
        let start = message.len();
        message.resize(start + body, 0);
        binary::read_exact(stream, &mut message[start..]).await?;
        if header[1] & END_OF_MESSAGE != 0 {
            return Ok((header[0], message));
        }
    }
}

/// `payload` as one tabular-result packet (replies here are small).
async fn write_message(stream: &mut impl Stream, payload: &[u8]) -> io::Result<()> {
    let len = u16::try_from(payload.len() + HEADER)
        .map_err(|_| binary::malformed("reply too long"))?
        .to_be_bytes();
    let mut packet = vec![TABULAR_RESULT, END_OF_MESSAGE, len[0], len[1], 0, 0, 1, 0];
    packet.extend_from_slice(payload);
    stream.write_all(&packet).await?;
    stream.flush().await
}

/// The option tokens of a PRELOGIN payload, `None` when it is not one.
fn prelogin_options(payload: &[u8]) -> Option<Vec<u8>> {
    let mut c = Cursor::new(payload);
    let mut options = Vec::new();
    loop {
        let token = c.u8()?;
        if token == OPTION_END {
            return Some(options);
        }
        let offset = usize::from(u16::from_be_bytes(c.array()?));
        let len = usize::from(u16::from_be_bytes(c.array()?));
        if offset + len > payload.len() || options.len() > 16 {
            return None;
        }
        options.push(token);
    }
}

/// What SQL Server answers a PRELOGIN: its version, no encryption, the
/// default instance, and MARS off when the client asked about it.
fn prelogin_reply(version: [u8; 6], mars: bool) -> Vec<u8> {
    let mut options: Vec<(u8, Vec<u8>)> = vec![
        (OPTION_VERSION, version.to_vec()),
        (OPTION_ENCRYPTION, vec![ENCRYPT_NOT_SUP]),
        (OPTION_INSTOPT, vec![0]),
        (OPTION_THREADID, vec![]),
    ];
    if mars {
        options.push((OPTION_MARS, vec![0]));
    }
    let mut offset = options.len() * 5 + 1;
    let mut table = Vec::new();
    let mut data = Vec::new();
    for (token, value) in &options {
        table.push(*token);
        table.extend_from_slice(&(offset as u16).to_be_bytes());
        table.extend_from_slice(&(value.len() as u16).to_be_bytes());
        offset += value.len();
        data.extend_from_slice(value);
    }
    table.push(OPTION_END);
    table.extend_from_slice(&data);
    table
}

/// An ERROR token (18456, class 14) and a DONE token with its error bit.
fn login_failed(text: &str) -> Vec<u8> {
    let mut token = Vec::new();
    token.extend_from_slice(&18456i32.to_le_bytes());
    token.push(1); // state
    token.push(14); // class
    let units: Vec<u16> = text.encode_utf16().collect();
    token.extend_from_slice(&(units.len() as u16).to_le_bytes());
    units
        .iter()
        .for_each(|u| token.extend_from_slice(&u.to_le_bytes()));
    let server: Vec<u16> = SERVER_NAME.encode_utf16().collect();
    token.push(server.len() as u8);
    server
        .iter()
        .for_each(|u| token.extend_from_slice(&u.to_le_bytes()));
    token.push(0); // procedure name
    token.extend_from_slice(&1i32.to_le_bytes()); // line number
    let mut p = vec![0xaa];
    p.extend_from_slice(&(token.len() as u16).to_le_bytes());
    p.extend_from_slice(&token);
    // DONE: status DONE_ERROR, no command, no rows.
    p.push(0xfd);
    p.extend_from_slice(&0x0002u16.to_le_bytes());
    p.extend_from_slice(&0u16.to_le_bytes());
    p.extend_from_slice(&0u64.to_le_bytes());
    p
}

/// What a LOGIN7 says about the client.
#[derive(Debug)]
struct Login {
    tds_version: u32,
    hostname: String,
    username: String,
    password: String,
    app_name: String,
    server_name: String,
    library: String,
    database: String,
    integrated: bool,
}

impl Login {
    fn parse(payload: &[u8]) -> Option<Self> {
        let mut c = Cursor::new(payload);
        c.take(4)?; // length
        let tds_version = c.u32_le()?;
        c.take(4 * 4)?; // packet size, program version, pid, connection id
        let [_, flags2, _, _] = c.array()?;
        c.take(8)?; // time zone, LCID
        let mut field = || -> Option<&[u8]> {
            let offset = usize::from(c.u16_le()?);
            let chars = usize::from(c.u16_le()?);
            payload.get(offset..offset.checked_add(chars * 2)?)
        };
        let hostname = utf16(field()?);
        let username = utf16(field()?);
        let password = field()?;
        let app_name = utf16(field()?);
        let server_name = utf16(field()?);
        field()?; // extension
        let library = utf16(field()?);
        field()?; // language
        let database = utf16(field()?);
        let password: Vec<u8> = password.iter().map(|b| (b ^ 0xa5).rotate_left(4)).collect();
        Some(Self {
            tds_version,
            hostname,
            username,
            password: utf16(&password),
            app_name,
            server_name,
            library,
            database,
            integrated: flags2 & 0x80 != 0,
        })
    }
}

/// UCS-2 text as the client sent it, lone surrogates replaced.
fn utf16(bytes: &[u8]) -> String {
    let units = bytes
        .chunks_exact(2)
        .map(|pair| u16::from_le_bytes([pair[0], pair[1]]));
    char::decode_utf16(units)
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}

/// Client text as recorded (control characters escaped).
fn shown(text: &str) -> String {
    printable(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::{testing, ServiceKind};
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpStream;

    /// What nmap's ms-sql-s probe sends.
    const NMAP_PRELOGIN: &[u8] = b"\x12\x01\x00\x34\x00\x00\x00\x00\x00\x00\x15\x00\x06\x01\x00\x1b\x00\x01\x02\x00\x1c\x00\x0c\x03\x00\x28\x00\x04\xff\x08\x00\x01\x55\x00\x00\x00MSSQLServer\x00\x48\x0f\x00\x00";

    async fn reply(client: &mut TcpStream) -> Vec<u8> {
        let mut header = [0u8; HEADER];
        client.read_exact(&mut header).await.unwrap();
        assert_eq!((header[0], header[1]), (TABULAR_RESULT, END_OF_MESSAGE));
        let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
        let mut body = vec![0u8; len - HEADER];
        client.read_exact(&mut body).await.unwrap();
        [&header[..], &body].concat()
    }

    /// A LOGIN7 as a client builds it, in `packets` TDS packets.
    fn login7(user: &str, password: &str, packets: usize) -> Vec<u8> {
        let fields = [
            "WORKSTATION7",
            user,
            password,
            "sqlcmd",
            "10.0.0.5",
            "",
            "ODBC",
            "",
            "master",
        ];
        let mut fixed = vec![0u8; 94];
        fixed[4..8].copy_from_slice(&0x7400_0004u32.to_le_bytes());
        let mut data = Vec::new();
        for (i, text) in fields.iter().enumerate() {
            let offset = 94 + data.len();
            let units: Vec<u16> = text.encode_utf16().collect();
            fixed[36 + i * 4..38 + i * 4].copy_from_slice(&(offset as u16).to_le_bytes());
            fixed[38 + i * 4..40 + i * 4].copy_from_slice(&(units.len() as u16).to_le_bytes());
            for u in units {
                let [a, b] = u.to_le_bytes();
                if i == 2 {
                    data.extend([a.rotate_left(4) ^ 0xa5, b.rotate_left(4) ^ 0xa5]);
                } else {
                    data.extend([a, b]);
                }
            }
        }
        let payload = [fixed, data].concat();
        let chunk = payload.len().div_ceil(packets);
        let mut out = Vec::new();
        let pieces: Vec<&[u8]> = payload.chunks(chunk).collect();
        for (i, piece) in pieces.iter().enumerate() {
            let len = (piece.len() + HEADER) as u16;
            let last = u8::from(i + 1 == pieces.len());
            out.extend_from_slice(&[LOGIN7, last]);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&[0, 0, i as u8 + 1, 0]);
            out.extend_from_slice(piece);
        }
        out
    }

    #[tokio::test]
    async fn answers_nmap_as_sql_server_2019_without_encryption() {
        let svc = testing::start(ServiceKind::Mssql, |_| {}).await;
        let mut client = TcpStream::connect(svc.addr).await.unwrap();
        client.write_all(NMAP_PRELOGIN).await.unwrap();
        // What nmap's SQL Server 2019 rule matches: 15.0, build 4385.
        let expected = b"\x04\x01\x00\x25\x00\x00\x01\x00\x00\x00\x15\x00\x06\x01\x00\x1b\x00\x01\x02\x00\x1c\x00\x01\x03\x00\x1d\x00\x00\xff\x0f\x00\x11\x21\x00\x00\x02\x00";
        assert_eq!(reply(&mut client).await, expected);
    }

    #[tokio::test]
    async fn records_the_login_and_refuses_it_with_18456() {
        let mut svc = testing::start(ServiceKind::Mssql, |_| {}).await;
        let mut client = TcpStream::connect(svc.addr).await.unwrap();
        client.write_all(NMAP_PRELOGIN).await.unwrap();
        reply(&mut client).await;
        client
            .write_all(&login7("sa", "P@ssw0rd!", 2))
            .await
            .unwrap();
        let answer = reply(&mut client).await;
        assert_eq!(answer[HEADER], 0xaa);
        let number = i32::from_le_bytes(answer[HEADER + 3..HEADER + 7].try_into().unwrap());
        assert_eq!(number, 18456);
        let chars = usize::from(u16::from_le_bytes([
            answer[HEADER + 9],
            answer[HEADER + 10],
        ]));
        let text = utf16(&answer[HEADER + 11..HEADER + 11 + chars * 2]);
        assert_eq!(text, "Login failed for user 'sa'.");
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());

        let attempt = svc.next().await;
        assert_eq!(attempt.service, "mssql");
        assert_eq!(
            attempt.credential,
            Some(Credential::password("sa", "P@ssw0rd!"))
        );
        assert_eq!(attempt.details["hostname"], "WORKSTATION7");
        assert_eq!(attempt.details["appName"], "sqlcmd");
        assert_eq!(attempt.details["database"], "master");
        assert_eq!(attempt.details["library"], "ODBC");
    }

    #[tokio::test]
    async fn the_banner_sets_the_version() {
        let svc = testing::start(ServiceKind::Mssql, |s| s.banner = Some("16.0.1000".into())).await;
        let mut client = TcpStream::connect(svc.addr).await.unwrap();
        client.write_all(NMAP_PRELOGIN).await.unwrap();
        let answer = reply(&mut client).await;
        assert_eq!(&answer[29..33], b"\x10\x00\x03\xe8");
    }

    #[tokio::test]
    async fn bad_input_closes_and_counts() {
        let mut svc = testing::start(ServiceKind::Mssql, |_| {}).await;
        let cases: [&[u8]; 5] = [
            // An HTTP request: type 'G', its length ("T ") over the limit.
            b"GET / HTTP/1.1\r\n\r\n",
            // A packet over the limit.
            &[&b"\x10\x00\xff\xff\x00\x00\x01\x00"[..], &[0; 0xfff7]].concat(),
            // Truncated: a LOGIN7 promising more than it sends.
            b"\x10\x01\x01\x00\x00\x00\x01\x00\x00\x00",
            // A LOGIN7 whose offsets point outside it.
            b"\x10\x01\x00\x30\x00\x00\x01\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
            // A TLS ClientHello where a PRELOGIN should be.
            b"\x12\x01\x00\x10\x00\x00\x01\x00\x16\x03\x01\x00\x05\x01\x00\x00",
        ];
        for bytes in cases {
            let mut client = TcpStream::connect(svc.addr).await.unwrap();
            let _ = client.write_all(bytes).await;
            let _ = client.shutdown().await;
            let mut rest = Vec::new();
            let _ = client.read_to_end(&mut rest).await;
            let attempt = svc.next().await;
            assert!(attempt.credential.is_none());
            assert_eq!(attempt.details["event"], "connection");
        }
        assert_eq!(version("not a version"), version(DEFAULT_VERSION));

        // PRELOGIN after PRELOGIN: the second is not answered.
        let mut client = TcpStream::connect(svc.addr).await.unwrap();
        client.write_all(NMAP_PRELOGIN).await.unwrap();
        reply(&mut client).await;
        client.write_all(NMAP_PRELOGIN).await.unwrap();
        let mut rest = Vec::new();
        let _ = client.read_to_end(&mut rest).await;
        assert!(rest.is_empty());
        assert_eq!(svc.next().await.details["refused"], "a second PRELOGIN");
    }
}
