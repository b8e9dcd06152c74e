//! What the binary protocols (mysql, mssql, rdp, vnc) share: reads bounded
//! in time, and a cursor that parses attacker bytes without ever indexing
//! past them (a short or lying packet is `None`, never a panic).

use super::{Conn, Stream};
use crate::incident::printable;
use serde_json::Value;
use std::io;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// Silence tolerated from a client between two things it must send.
pub const IDLE: Duration = Duration::from_secs(15);

/// Fills `buf` from the client, which has [`IDLE`] to send it.
pub async fn read_exact(stream: &mut impl Stream, buf: &mut [u8]) -> io::Result<()> {
    match tokio::time::timeout(IDLE, stream.read_exact(buf)).await {
        Ok(read) => read.map(|_| ()),
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the client went silent",
        )),
    }
}

/// The error for input a service refuses to parse further.
pub fn malformed(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

/// Records a connection whose input the service refused: why, and the
/// refused bytes where there are any.
pub async fn record_refused(conn: &mut Conn, why: impl Into<Value>, bytes: &[u8]) {
    let mut attempt = conn
        .attempt()
        .detail("event", "connection")
        .detail("refused", why);
    if !bytes.is_empty() {
        attempt = attempt.detail("firstBytes", printable(bytes));
    }
    conn.record(attempt).await;
}

/// Reads through a client's packet; every read is checked.
pub struct Cursor<'a> {
    bytes: &'a [u8],
}

impl<'a> Cursor<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    pub fn rest(&self) -> &'a [u8] {
        self.bytes
    }

    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.bytes.len() {
            return None;
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Some(head)
    }

    pub fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    pub fn u16_le(&mut self) -> Option<u16> {
        self.array().map(u16::from_le_bytes)
    }

    pub fn u32_le(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }

    pub fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N).and_then(|b| b.try_into().ok())
    }

    /// Bytes up to a NUL (consumed, not returned).
    pub fn until_nul(&mut self) -> Option<&'a [u8]> {
        let end = self.bytes.iter().position(|&b| b == 0)?;
        let text = self.take(end)?;
        self.take(1)?;
        Some(text)
    }
}
