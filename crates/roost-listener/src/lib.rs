//! Accept loops for every listener Roost opens: MQTT, device HTTPS and the
//! control plane share this one.
//!
//! A loop only accepts. Each connection runs in its own task holding a
//! permit; when the listener's permits are gone, a new connection is closed
//! at once and counted, so a flood on one port never waits in memory. Accept
//! errors (out of descriptors, say) back off instead of spinning. On
//! shutdown the loop stops accepting and returns once every connection it
//! started has ended, so that the caller can stop what they use.
//!
//! Every listener of a process draws on the same file-descriptor table.
//! [`DescriptorBudget`] divides it so that one listener (a flood of idle
//! connections on the API port, say) cannot exhaust the descriptors the
//! others need.
//!
//! A listener can take its connections through a TCP load balancer that
//! speaks the PROXY protocol ([`proxy`]): the header is read in the
//! connection's task, before the caller sees the stream, and the address the
//! caller is given is the client's.
//!
//! Never: block the loop on a peer, or hold more connections than the cap.
#![forbid(unsafe_code)]

mod budget;
mod http;
pub mod proxy;

pub use budget::{DescriptorBudget, ListenerShares};
pub use http::serve_http1;
pub use proxy::ProxyProtocol;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

/// What one listener counts.
#[derive(Debug, Default)]
pub struct ListenerStats {
    /// Connections accepted from the kernel (served or not).
    pub accepted: AtomicU64,
    /// Connections closed at once because the listener was at its cap.
    pub refused_capacity: AtomicU64,
    /// Errors `accept` returned (each followed by a backoff).
    pub accept_errors: AtomicU64,
    /// Connections being served now.
    pub current: AtomicU64,
    /// Connections from a trusted proxy closed because their PROXY header
    /// was missing, malformed, too large or late.
    pub refused_proxy_header: AtomicU64,
}

/// A listener's name (for logs), its cap, and which peers speak the PROXY
/// protocol to it.
#[derive(Clone, Debug)]
pub struct ListenerConfig {
    pub name: &'static str,
    /// Connections served at once (TLS handshakes in progress included).
    pub max_connections: usize,
    /// Off by default: every connection is direct.
    pub proxy: ProxyProtocol,
}

impl ListenerConfig {
    /// A listener with no PROXY protocol.
    pub fn new(name: &'static str, max_connections: usize) -> Self {
        Self {
            name,
            max_connections,
            proxy: ProxyProtocol::default(),
        }
    }
}

/// The first and the longest wait after a failed `accept`.
const BACKOFF_FIRST: Duration = Duration::from_millis(5);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// A doubling backoff with a ceiling, reset by a success.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
    first: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(first: Duration, max: Duration) -> Self {
        Self {
            next: first,
            first,
            max,
        }
    }

    /// The wait before the next try; each call doubles the one after.
    pub fn next_wait(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(self.max);
        wait
    }

    pub fn reset(&mut self) {
        self.next = self.first;
    }
}

/// Accepts on `listener` until `shutdown`, serving each connection with
/// `serve` in a task of its own; returns once those tasks have ended. A
/// connection from a proxy `config.proxy` trusts first has its header read
/// (in its task): `serve` is given the client's address, and a connection
/// whose header is refused is closed and counted without reaching it.
pub async fn serve<S, F>(
    listener: TcpListener,
    config: ListenerConfig,
    stats: Arc<ListenerStats>,
    mut shutdown: watch::Receiver<bool>,
    serve: S,
) where
    S: Fn(TcpStream, SocketAddr) -> F + Send + Sync + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let serve = Arc::new(serve);
    let cap = config.max_connections.max(1);
    let permits = Arc::new(Semaphore::new(cap));
    let mut backoff = Backoff::new(BACKOFF_FIRST, BACKOFF_MAX);
    loop {
        let accepted = tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => {
                backoff.reset();
                pair
            }
            Err(e) => {
                stats.accept_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(listener = config.name, error = %e, "accept failed");
                tokio::time::sleep(backoff.next_wait()).await;
                continue;
            }
        };
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            stats.refused_capacity.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(listener = config.name, %peer, max_connections = cap, "connection refused: the listener is at its cap");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let guard = Served::new(permit, stats.clone());
        let (serve, proxy, name) = (serve.clone(), config.proxy.clone(), config.name);
        tokio::spawn(async move {
            let mut stream = stream;
            match proxy.source(&mut stream, peer).await {
                Ok(source) => {
                    if source != peer {
                        tracing::debug!(listener = name, %peer, client = %source, "PROXY header read");
                    }
                    serve(stream, source).await
                }
                Err(e) => {
                    guard
                        .stats
                        .refused_proxy_header
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(listener = name, %peer, error = %e, "connection refused: PROXY protocol header");
                }
            }
            drop(guard);
        });
    }
    // Returns once every connection has ended (and written its last changes).
    let all = u32::try_from(cap).unwrap_or(u32::MAX);
    let _ = permits.acquire_many(all).await;
}

/// A connection's permit and its place in the `current` gauge, given back
/// when the connection's task ends (even by a panic).
struct Served {
    _permit: OwnedSemaphorePermit,
    stats: Arc<ListenerStats>,
}

impl Served {
    fn new(permit: OwnedSemaphorePermit, stats: Arc<ListenerStats>) -> Self {
        stats.current.fetch_add(1, Ordering::Relaxed);
        Self {
            _permit: permit,
            stats,
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stats.current.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn start(
        cap: usize,
    ) -> (
        SocketAddr,
        Arc<ListenerStats>,
        watch::Sender<bool>,
        tokio::task::JoinHandle<()>,
        Arc<tokio::sync::Notify>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stats = Arc::new(ListenerStats::default());
        let (stop_tx, stop) = watch::channel(false);
        let release = Arc::new(tokio::sync::Notify::new());
        let r = release.clone();
        let handle = tokio::spawn(serve(
            listener,
            ListenerConfig::new("test", cap),
            stats.clone(),
            stop,
            move |mut stream, _| {
                let release = r.clone();
                async move {
                    let _ = stream.write_all(b"hi").await;
                    release.notified().await;
                }
            },
        ));
        (addr, stats, stop_tx, handle, release)
    }

    async fn greeting(addr: SocketAddr) -> Vec<u8> {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(Duration::from_millis(300), s.read_to_end(&mut buf)).await;
        buf
    }

    #[tokio::test]
    async fn connections_past_the_cap_are_closed_and_counted() {
        let (addr, stats, _stop, _handle, _release) = start(2).await;
        let mut held = Vec::new();
        for _ in 0..2 {
            let mut s = TcpStream::connect(addr).await.unwrap();
            let mut hi = [0u8; 2];
            s.read_exact(&mut hi).await.unwrap();
            held.push(s);
        }
        // The third is closed without a word.
        assert_eq!(greeting(addr).await, b"");
        assert_eq!(stats.refused_capacity.load(Ordering::Relaxed), 1);
        assert_eq!(stats.current.load(Ordering::Relaxed), 2);
        assert_eq!(stats.accepted.load(Ordering::Relaxed), 3);
    }

    #[tokio::test]
    async fn shutdown_waits_for_the_connections_it_started() {
        let (addr, stats, stop, handle, release) = start(4).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        let mut hi = [0u8; 2];
        s.read_exact(&mut hi).await.unwrap();
        stop.send(true).unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            !handle.is_finished(),
            "returned with a connection still served"
        );
        release.notify_waiters();
        tokio::time::timeout(Duration::from_secs(5), handle)
            .await
            .expect("drained")
            .unwrap();
        assert_eq!(stats.current.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn backoff_doubles_to_its_ceiling_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(5), Duration::from_millis(30));
        let waits: Vec<_> = (0..5).map(|_| b.next_wait().as_millis()).collect();
        assert_eq!(waits, [5, 10, 20, 30, 30]);
        b.reset();
        assert_eq!(b.next_wait(), Duration::from_millis(5));
    }
}
