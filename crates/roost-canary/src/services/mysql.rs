//! `mysql`: a MySQL 8.0 server's greeting (HandshakeV10 with a fresh
//! salt, `caching_sha2_password`, no TLS offered), then the client's
//! HandshakeResponse41 read and refused with `ERR 1045 (28000) Access
//! denied`, as a server does for a wrong password. The attempt keeps the
//! username, the scrambled password (hex) with the salt it answers, the
//! database and the client's connection attributes.
//!
//! It must never send an OK packet: no query is ever read.

use super::binary::{self, Cursor};
use super::{Conn, Stream};
use crate::incident::{printable, Credential};
use serde_json::{Map, Value};
use std::io;
use tokio::io::AsyncWriteExt;

/// MySQL 8.0 of Debian 12's time (the banner replaces it).
pub const DEFAULT_VERSION: &str = "8.0.39";
/// The longest client packet read: a handshake response with its
/// connection attributes fits many times over.
const MAX_PACKET: usize = 16 * 1024;
/// MySQL 8.0's default authentication plugin.
const AUTH_PLUGIN: &str = "caching_sha2_password";
/// Connection attributes kept at most.
const MAX_ATTRIBUTES: usize = 32;

const CLIENT_CONNECT_WITH_DB: u32 = 0x0000_0008;
const CLIENT_PROTOCOL_41: u32 = 0x0000_0200;
const CLIENT_SSL: u32 = 0x0000_0800;
const CLIENT_SECURE_CONNECTION: u32 = 0x0000_8000;
const CLIENT_PLUGIN_AUTH: u32 = 0x0008_0000;
const CLIENT_CONNECT_ATTRS: u32 = 0x0010_0000;
const CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA: u32 = 0x0020_0000;
/// What MySQL 8.0 announces, less CLIENT_SSL: a client then sends its
/// credentials in clear instead of asking for TLS.
const SERVER_CAPABILITIES: u32 = 0xdfff_ffff & !CLIENT_SSL;
/// utf8mb4_0900_ai_ci, MySQL 8.0's default collation.
const CHARSET: u8 = 255;
const SERVER_STATUS_AUTOCOMMIT: u16 = 0x0002;

pub async fn serve(mut stream: impl Stream, conn: &mut Conn) -> io::Result<()> {
    let version = conn
        .banner(DEFAULT_VERSION)
        .lines()
        .next()
        .unwrap_or(DEFAULT_VERSION)
        .replace('\0', "");
    let salt = salt();
    // Thread ids below 2^24, as a server not up for years has.
    let thread_id = rand::random_range(8..100_000);
    write_packet(&mut stream, 0, &greeting(&version, thread_id, &salt)).await?;

    let (sequence, packet) = read_packet(&mut stream).await?;
    let reply = sequence.wrapping_add(1);
    let response = match HandshakeResponse::parse(&packet) {
        Ok(response) => response,
        Err(refused) => {
            binary::record_refused(conn, refused, &packet).await;
            let err = error_packet(1043, "08S01", "Bad handshake");
            return write_packet(&mut stream, reply, &err).await;
        }
    };

    let username = printable(response.username.as_bytes());
    let credential = if response.auth.is_empty() {
        Credential::username(username)
    } else {
        Credential::password(username, hex::encode(&response.auth))
    };
    let mut attempt = conn
        .attempt()
        .credential(credential)
        .detail("challenge", hex::encode(salt))
        .detail("clientAttributes", Value::Object(response.attributes));
    if let Some(plugin) = response.plugin {
        attempt = attempt.detail("authPlugin", plugin);
    }
    if let Some(database) = response.database {
        attempt = attempt.detail("database", database);
    }
    conn.record(attempt).await;

    let message = format!(
        "Access denied for user '{}'@'{}' (using password: {})",
        response.username,
        conn.peer.ip().to_canonical(),
        if response.auth.is_empty() {
            "NO"
        } else {
            "YES"
        }
    );
    write_packet(&mut stream, reply, &error_packet(1045, "28000", &message)).await
}

/// 20 scramble bytes as MySQL makes them: printable-ish ASCII, never NUL
/// (the field is NUL-terminated) nor `$`.
fn salt() -> [u8; 20] {
    std::array::from_fn(|_| loop {
        let b = rand::random_range(1u8..128);
        if b != b'$' {
            break b;
        }
    })
}

fn greeting(version: &str, thread_id: u32, salt: &[u8; 20]) -> Vec<u8> {
    let capabilities = SERVER_CAPABILITIES.to_le_bytes();
    let mut p = Vec::with_capacity(96);
    p.push(10); // protocol version
    p.extend_from_slice(version.as_bytes());
    p.push(0);
    p.extend_from_slice(&thread_id.to_le_bytes());
    p.extend_from_slice(&salt[..8]);
    p.push(0);
    p.extend_from_slice(&capabilities[..2]);
    p.push(CHARSET);
    p.extend_from_slice(&SERVER_STATUS_AUTOCOMMIT.to_le_bytes());
    p.extend_from_slice(&capabilities[2..]);
    p.push(21); // salt length, with its NUL
    p.extend_from_slice(&[0; 10]);
    p.extend_from_slice(&salt[8..]);
    p.push(0);
    p.extend_from_slice(AUTH_PLUGIN.as_bytes());
    p.push(0);
    p
}

fn error_packet(code: u16, state: &str, message: &str) -> Vec<u8> {
    let mut p = vec![0xff];
    p.extend_from_slice(&code.to_le_bytes());
    p.push(b'#');
    p.extend_from_slice(state.as_bytes());
    p.extend_from_slice(message.as_bytes());
    p
}

async fn write_packet(stream: &mut impl Stream, sequence: u8, payload: &[u8]) -> io::Result<()> {
    let len = u32::try_from(payload.len())
        .map_err(|_| binary::malformed("packet too long"))?
        .to_le_bytes();
    let mut packet = Vec::with_capacity(payload.len() + 4);
    packet.extend_from_slice(&[len[0], len[1], len[2], sequence]);
    packet.extend_from_slice(payload);
    stream.write_all(&packet).await?;
    stream.flush().await
}

/// One client packet: its sequence number and payload, at most
/// [`MAX_PACKET`] bytes (a longer one closes the connection unread).
async fn read_packet(stream: &mut impl Stream) -> io::Result<(u8, Vec<u8>)> {
    let mut header = [0u8; 4];
    binary::read_exact(stream, &mut header).await?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], 0]) as usize;
    if len > MAX_PACKET {
        return Err(binary::malformed("packet over the limit"));
    }
    let mut payload = vec![0u8; len];
    binary::read_exact(stream, &mut payload).await?;
    Ok((header[3], payload))
}

/// What a client's HandshakeResponse41 says.
#[derive(Debug)]
struct HandshakeResponse {
    username: String,
    auth: Vec<u8>,
    database: Option<String>,
    plugin: Option<String>,
    attributes: Map<String, Value>,
}

impl HandshakeResponse {
    /// The response (the username as sent, to echo it), or why it is
    /// refused as a bad handshake.
    fn parse(packet: &[u8]) -> Result<Self, &'static str> {
        let mut c = Cursor::new(packet);
        let capabilities = c.u32_le().ok_or("truncated")?;
        if capabilities & CLIENT_PROTOCOL_41 == 0 {
            return Err("pre-4.1 protocol");
        }
        c.take(4 + 1 + 23).ok_or("truncated")?;
        if capabilities & CLIENT_SSL != 0 && c.rest().is_empty() {
            return Err("TLS requested, not offered");
        }
        let username = String::from_utf8_lossy(c.until_nul().ok_or("truncated")?).into_owned();
        let auth = if capabilities & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA != 0 {
            let len = lenenc(&mut c).ok_or("truncated")?;
            c.take(len).ok_or("truncated")?
        } else if capabilities & CLIENT_SECURE_CONNECTION != 0 {
            let len = c.u8().ok_or("truncated")?;
            c.take(usize::from(len)).ok_or("truncated")?
        } else {
            c.until_nul().ok_or("truncated")?
        }
        .to_vec();
        // What follows is optional to a lenient server: a client cut short
        // after its password still made an attempt.
        let database = (capabilities & CLIENT_CONNECT_WITH_DB != 0)
            .then(|| c.until_nul().map(printable))
            .flatten();
        let plugin = (capabilities & CLIENT_PLUGIN_AUTH != 0)
            .then(|| c.until_nul().map(printable))
            .flatten();
        let attributes = if capabilities & CLIENT_CONNECT_ATTRS != 0 {
            attributes(&mut c)
        } else {
            Map::new()
        };
        Ok(Self {
            username,
            auth,
            database,
            plugin,
            attributes,
        })
    }
}

/// A length-encoded integer, as a length that fits this packet.
fn lenenc(c: &mut Cursor<'_>) -> Option<usize> {
    let value = match c.u8()? {
        n @ 0..=0xfa => u64::from(n),
        0xfc => u64::from(c.u16_le()?),
        0xfd => {
            let [a, b, d] = c.array()?;
            u64::from(u32::from_le_bytes([a, b, d, 0]))
        }
        0xfe => u64::from_le_bytes(c.array()?),
        _ => return None,
    };
    usize::try_from(value).ok()
}

/// The connection attributes (`_client_name`, `_os`, `program_name` …),
/// as many as are whole, at most [`MAX_ATTRIBUTES`].
fn attributes(c: &mut Cursor<'_>) -> Map<String, Value> {
    let mut map = Map::new();
    let Some(block) = lenenc(c).and_then(|len| c.take(len)) else {
        return map;
    };
    let mut c = Cursor::new(block);
    while map.len() < MAX_ATTRIBUTES {
        let pair = (|| {
            let key = lenenc(&mut c).and_then(|n| c.take(n))?;
            let value = lenenc(&mut c).and_then(|n| c.take(n))?;
            Some((printable(key), Value::String(printable(value))))
        })();
        match pair {
            Some((key, value)) => {
                map.insert(key, value);
            }
            None => break,
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::{testing, ServiceKind};
    use std::net::SocketAddr;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpStream;

    async fn read(client: &mut TcpStream) -> (u8, Vec<u8>) {
        let mut header = [0u8; 4];
        client.read_exact(&mut header).await.unwrap();
        let len = u32::from_le_bytes([header[0], header[1], header[2], 0]) as usize;
        let mut payload = vec![0u8; len];
        client.read_exact(&mut payload).await.unwrap();
        (header[3], payload)
    }

    struct Greeting {
        version: String,
        capabilities: u32,
        salt: Vec<u8>,
        plugin: String,
    }

    async fn greeted(addr: SocketAddr) -> (TcpStream, Greeting) {
        let mut client = TcpStream::connect(addr).await.unwrap();
        let (sequence, p) = read(&mut client).await;
        assert_eq!((sequence, p[0]), (0, 10));
        let mut c = Cursor::new(&p[1..]);
        let version = String::from_utf8(c.until_nul().unwrap().to_vec()).unwrap();
        c.take(4).unwrap();
        let mut salt = c.take(8).unwrap().to_vec();
        c.take(1).unwrap();
        let low = c.u16_le().unwrap();
        c.take(3).unwrap();
        let high = c.u16_le().unwrap();
        assert_eq!(c.u8(), Some(21));
        c.take(10).unwrap();
        salt.extend_from_slice(c.take(12).unwrap());
        c.take(1).unwrap();
        let plugin = String::from_utf8(c.until_nul().unwrap().to_vec()).unwrap();
        let capabilities = u32::from(low) | u32::from(high) << 16;
        (
            client,
            Greeting {
                version,
                capabilities,
                salt,
                plugin,
            },
        )
    }

    /// A HandshakeResponse41 as libmysqlclient 8.0 sends it.
    fn response(user: &str, auth: &[u8], database: &str, attrs: &[(&str, &str)]) -> Vec<u8> {
        let capabilities = CLIENT_PROTOCOL_41
            | CLIENT_SECURE_CONNECTION
            | CLIENT_PLUGIN_AUTH
            | CLIENT_CONNECT_WITH_DB
            | CLIENT_CONNECT_ATTRS
            | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA;
        let mut p = capabilities.to_le_bytes().to_vec();
        p.extend_from_slice(&(1u32 << 24).to_le_bytes());
        p.push(CHARSET);
        p.extend_from_slice(&[0; 23]);
        p.extend_from_slice(user.as_bytes());
        p.push(0);
        p.push(auth.len() as u8);
        p.extend_from_slice(auth);
        p.extend_from_slice(database.as_bytes());
        p.push(0);
        p.extend_from_slice(b"caching_sha2_password\0");
        let mut block = Vec::new();
        for (k, v) in attrs {
            block.push(k.len() as u8);
            block.extend_from_slice(k.as_bytes());
            block.push(v.len() as u8);
            block.extend_from_slice(v.as_bytes());
        }
        p.push(block.len() as u8);
        p.extend_from_slice(&block);
        p
    }

    fn error_of(p: &[u8]) -> (u16, String, String) {
        assert_eq!(p[0], 0xff, "{p:?}");
        let code = u16::from_le_bytes([p[1], p[2]]);
        assert_eq!(p[3], b'#');
        let state = String::from_utf8(p[4..9].to_vec()).unwrap();
        (code, state, String::from_utf8(p[9..].to_vec()).unwrap())
    }

    #[tokio::test]
    async fn greets_as_mysql_8_and_refuses_the_login_it_records() {
        let mut svc = testing::start(ServiceKind::Mysql, |_| {}).await;
        let (mut client, greeting) = greeted(svc.addr).await;
        assert_eq!(greeting.version, "8.0.39");
        assert_eq!(greeting.plugin, "caching_sha2_password");
        assert_eq!(greeting.capabilities & CLIENT_SSL, 0);
        assert_ne!(greeting.capabilities & CLIENT_PLUGIN_AUTH, 0);
        assert!(greeting.salt.iter().all(|&b| b != 0 && b != b'$'));

        let scramble = [0xabu8; 32];
        let attrs = [("_client_name", "libmysql"), ("_os", "Linux")];
        write_packet(&mut client, 1, &response("root", &scramble, "shop", &attrs))
            .await
            .unwrap();
        let (sequence, reply) = read(&mut client).await;
        assert_eq!(sequence, 2);
        assert_eq!(
            error_of(&reply),
            (
                1045,
                "28000".into(),
                "Access denied for user 'root'@'127.0.0.1' (using password: YES)".into()
            )
        );

        let attempt = svc.next().await;
        assert_eq!(attempt.service, "mysql");
        assert_eq!(
            attempt.credential,
            Some(Credential::password("root", "ab".repeat(32)))
        );
        assert_eq!(attempt.details["challenge"], hex::encode(&greeting.salt));
        assert_eq!(attempt.details["database"], "shop");
        assert_eq!(attempt.details["authPlugin"], "caching_sha2_password");
        assert_eq!(
            attempt.details["clientAttributes"]["_client_name"],
            "libmysql"
        );
        assert_eq!(attempt.details["clientAttributes"]["_os"], "Linux");
    }

    #[tokio::test]
    async fn the_banner_is_the_version_and_no_password_says_so() {
        let mut svc =
            testing::start(ServiceKind::Mysql, |s| s.banner = Some("5.7.44-log".into())).await;
        let (mut client, greeting) = greeted(svc.addr).await;
        assert_eq!(greeting.version, "5.7.44-log");
        write_packet(&mut client, 1, &response("admin", &[], "", &[]))
            .await
            .unwrap();
        let (_, reply) = read(&mut client).await;
        assert!(error_of(&reply).2.ends_with("(using password: NO)"));
        let attempt = svc.next().await;
        assert_eq!(attempt.credential, Some(Credential::username("admin")));
    }

    #[tokio::test]
    async fn a_tls_request_or_garbage_is_a_bad_handshake_that_counts() {
        let mut svc = testing::start(ServiceKind::Mysql, |_| {}).await;
        // An SSLRequest: capabilities with CLIENT_SSL, nothing after.
        let (mut client, _) = greeted(svc.addr).await;
        let mut ssl = (CLIENT_PROTOCOL_41 | CLIENT_SSL | CLIENT_SECURE_CONNECTION)
            .to_le_bytes()
            .to_vec();
        ssl.extend_from_slice(&[0; 28]);
        write_packet(&mut client, 1, &ssl).await.unwrap();
        let (_, reply) = read(&mut client).await;
        assert_eq!(error_of(&reply).0, 1043);
        assert_eq!(
            svc.next().await.details["refused"],
            "TLS requested, not offered"
        );

        let (mut client, _) = greeted(svc.addr).await;
        write_packet(&mut client, 1, b"GET / HTTP/1.0")
            .await
            .unwrap();
        let (_, reply) = read(&mut client).await;
        assert_eq!(error_of(&reply).0, 1043);
        assert!(svc.next().await.credential.is_none());
    }

    #[tokio::test]
    async fn oversized_or_truncated_packets_close_and_count() {
        let mut svc = testing::start(ServiceKind::Mysql, |_| {}).await;
        for bytes in [
            &b"\xff\xff\xff\x01"[..],
            // A header promising 100 bytes, then 10 and the end.
            &b"\x64\x00\x00\x01\x85\xa6\xff\x01\x00\x00\x00\x01\x21\x00"[..],
        ] {
            let (mut client, _) = greeted(svc.addr).await;
            client.write_all(bytes).await.unwrap();
            client.shutdown().await.unwrap();
            let mut rest = Vec::new();
            client.read_to_end(&mut rest).await.unwrap();
            assert!(rest.is_empty(), "{rest:?}");
            assert_eq!(svc.next().await.details["event"], "connection");
        }
        // A response cut inside its fields parses as far as it goes.
        let whole = response("root", &[1; 20], "db", &[]);
        assert!(HandshakeResponse::parse(&whole[..40]).is_err());
        let cut = HandshakeResponse::parse(&whole[..whole.len() - 10]).unwrap();
        assert_eq!(cut.username, "root");
        assert_eq!(cut.auth, [1; 20]);
    }
}
