//! What the text and length-prefixed services read from an attacker, with
//! the bounds every one of them keeps: a cap on a line or a message, a wait
//! for each read, and a cap on the attempts one connection may make.
//!
//! Any bound crossed is an error, and the service closes the connection on
//! it: what was recorded before stays recorded.

use super::{Conn, Stream};
use crate::incident::Attempt;
use std::io;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The longest an attacker may stay silent before the connection closes.
pub const IDLE: Duration = Duration::from_secs(30);

/// Credentials one connection may offer before the service closes it, as a
/// real server's `MaxAuthTries` would.
pub const MAX_ATTEMPTS: u32 = 10;

/// Commands kept per connection for an attempt's details.
pub const MAX_COMMANDS: usize = 32;

/// One connection's bytes: what has been read but not yet consumed, and the
/// stream to read more from and to answer on.
pub struct Wire<S> {
    stream: S,
    pending: Vec<u8>,
    /// The longest line or message accepted.
    limit: usize,
    /// The last line ended at a bare `\r`: a `\n` or `\0` after it belongs to
    /// that line end (telnet sends `\r\0` in character mode).
    after_cr: bool,
}

impl<S: Stream> Wire<S> {
    pub fn new(stream: S, limit: usize) -> Self {
        Self {
            stream,
            pending: Vec::new(),
            limit,
            after_cr: false,
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }

    /// Waits for the client to send something, keeping it for the next read.
    pub async fn wait(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            self.fill().await?;
        }
        Ok(())
    }

    /// The next line, without its line end (`\n`, `\r\n`, `\r\0` or a bare
    /// `\r`).
    pub async fn line(&mut self) -> io::Result<Vec<u8>> {
        self.finish_line_end().await?;
        loop {
            if let Some(end) = self.pending.iter().position(|&b| b == b'\n' || b == b'\r') {
                let mut line: Vec<u8> = self.pending.drain(..=end).collect();
                if line.pop() == Some(b'\r') {
                    self.after_cr = true;
                }
                return Ok(line);
            }
            if self.pending.len() > self.limit {
                return Err(too_long());
            }
            self.fill().await?;
        }
    }

    /// Exactly `n` bytes (`n` at most the limit).
    pub async fn exact(&mut self, n: usize) -> io::Result<Vec<u8>> {
        if n > self.limit {
            return Err(too_long());
        }
        self.finish_line_end().await?;
        while self.pending.len() < n {
            self.fill().await?;
        }
        Ok(self.pending.drain(..n).collect())
    }

    /// After a line that ended at `\r`, takes the `\n` or `\0` that
    /// belongs to it.
    async fn finish_line_end(&mut self) -> io::Result<()> {
        if self.after_cr {
            if self.pending.is_empty() {
                self.fill().await?;
            }
            if matches!(self.pending[0], b'\n' | b'\0') {
                self.pending.remove(0);
            }
            self.after_cr = false;
        }
        Ok(())
    }

    async fn fill(&mut self) -> io::Result<()> {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(IDLE, self.stream.read(&mut chunk))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the client went quiet"))??;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.pending.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}

fn too_long() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "input over the service's limit")
}

/// The commands a connection sent, bounded, for its attempts' details.
#[derive(Default)]
pub struct Commands {
    kept: Vec<String>,
    /// All commands seen, kept or not.
    seen: usize,
    /// Commands seen when an attempt last carried them.
    reported: usize,
}

impl Commands {
    pub fn push(&mut self, command: String) {
        self.seen += 1;
        if self.kept.len() < MAX_COMMANDS {
            self.kept.push(command);
        }
    }

    /// `attempt` with the commands so far in its details.
    pub fn attach(&mut self, attempt: Attempt) -> Attempt {
        self.reported = self.seen;
        attempt.detail("commands", self.kept.clone())
    }

    /// At the end of a connection: records the commands no attempt has
    /// carried yet (all of them, on a connection that offered no
    /// credential).
    pub async fn record_rest(mut self, conn: &mut Conn) {
        if self.seen > self.reported {
            let attempt = self.attach(conn.attempt().detail("event", "commands"));
            conn.record(attempt).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn lines_end_as_any_client_ends_them() {
        let (client, server) = tokio::io::duplex(64);
        let mut wire = Wire::new(server, 16);
        let mut client = client;
        client
            .write_all(b"USER a\r\nPASS b\nroot\r\0pw\rlast\r\n")
            .await
            .unwrap();
        for want in ["USER a", "PASS b", "root", "pw", "last"] {
            assert_eq!(wire.line().await.unwrap(), want.as_bytes());
        }
        client.write_all(&[b'x'; 40]).await.unwrap();
        let err = wire.line().await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
