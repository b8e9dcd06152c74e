//! The honeypot services: one module per protocol, one listener per
//! configured service, each connection served by the protocol's module.
//!
//! A module sees one connection ([`Conn`]) and records what the attacker
//! tried as [`Attempt`]s; it never grants anything (no shell, no file, no
//! data). This module owns what all services share: binding, the cap on
//! connections (a connection past the cap is still recorded, then closed),
//! the deadline on each connection, and the rule that every connection
//! counts: one that ends without the module recording anything is recorded
//! as a bare connection.

mod binary;
mod ftp;
mod http;
mod mssql;
mod mysql;
mod postgres;
mod rdp;
mod redis;
mod ssh;
mod tcp;
mod telnet;
mod vnc;
mod wire;

use crate::config::Service;
use crate::incident::Attempt;
use serde::Deserialize;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};

/// The longest any one attacker connection is served: bounds slow clients
/// holding sockets open.
pub const CONNECTION_DEADLINE: Duration = Duration::from_secs(120);

/// The login page looks an `http`/`https` service can take.
pub const SKINS: &[&str] = &["admin", "nas", "router"];

/// The protocols the canary imitates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceKind {
    Http,
    Https,
    Ssh,
    Telnet,
    Ftp,
    Mysql,
    Mssql,
    Postgres,
    Redis,
    Rdp,
    Vnc,
    Tcp,
}

impl ServiceKind {
    pub const ALL: [ServiceKind; 12] = [
        ServiceKind::Http,
        ServiceKind::Https,
        ServiceKind::Ssh,
        ServiceKind::Telnet,
        ServiceKind::Ftp,
        ServiceKind::Mysql,
        ServiceKind::Mssql,
        ServiceKind::Postgres,
        ServiceKind::Redis,
        ServiceKind::Rdp,
        ServiceKind::Vnc,
        ServiceKind::Tcp,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ServiceKind::Http => "http",
            ServiceKind::Https => "https",
            ServiceKind::Ssh => "ssh",
            ServiceKind::Telnet => "telnet",
            ServiceKind::Ftp => "ftp",
            ServiceKind::Mysql => "mysql",
            ServiceKind::Mssql => "mssql",
            ServiceKind::Postgres => "postgres",
            ServiceKind::Redis => "redis",
            ServiceKind::Rdp => "rdp",
            ServiceKind::Vnc => "vnc",
            ServiceKind::Tcp => "tcp",
        }
    }

    /// The port a service listens on unless configured: the protocol's own
    /// where it is above 1023, an unprivileged stand-in where not.
    pub fn default_port(self) -> u16 {
        match self {
            ServiceKind::Http => 8080,
            ServiceKind::Https => 8443,
            ServiceKind::Ssh => 2222,
            ServiceKind::Telnet => 2323,
            ServiceKind::Ftp => 2121,
            ServiceKind::Mysql => 3306,
            ServiceKind::Mssql => 1433,
            ServiceKind::Postgres => 5432,
            ServiceKind::Redis => 6379,
            ServiceKind::Rdp => 3389,
            ServiceKind::Vnc => 5900,
            // A tcp service must name its port (checked by the config).
            ServiceKind::Tcp => 0,
        }
    }

    pub fn has_skins(self) -> bool {
        matches!(self, ServiceKind::Http | ServiceKind::Https)
    }
}

/// Counts kept by the services (read by the status).
#[derive(Debug, Default)]
pub struct ServiceStats {
    /// Connections accepted, all services.
    pub connections: AtomicU64,
    /// Connections past a service's cap (recorded, then closed).
    pub over_capacity: AtomicU64,
    /// Connections cut at [`CONNECTION_DEADLINE`].
    pub deadline_cuts: AtomicU64,
    /// `accept` failures.
    pub accept_errors: AtomicU64,
}

/// An attempt on its way to the outbox, and who waits for it to be there.
pub type Recorded = (Attempt, oneshot::Sender<()>);

/// Where services hand their attempts: a bounded queue into the agent.
/// `record` returns once the attempt is on disk, so a service answers the
/// attacker only after that (an attacker who saw the answer saw an attempt
/// that cannot be lost). When the queue is full, `record` waits, which
/// slows the attacker's connection, never loses the attempt.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Recorded>,
}

impl Recorder {
    pub fn new(tx: mpsc::Sender<Recorded>) -> Self {
        Self { tx }
    }

    /// Records `attempt` and waits until it is written; false only when
    /// the agent is shutting down.
    pub async fn record(&self, attempt: Attempt) -> bool {
        let (done, written) = oneshot::channel();
        if self.tx.send((attempt, done)).await.is_err() {
            return false;
        }
        written.await.is_ok()
    }
}

/// One attacker connection, as its service module sees it.
pub struct Conn {
    pub peer: SocketAddr,
    pub local_port: u16,
    pub service: &'static Service,
    recorder: Recorder,
    recorded: u32,
}

impl Conn {
    pub fn new(
        peer: SocketAddr,
        local_port: u16,
        service: &'static Service,
        recorder: Recorder,
    ) -> Self {
        Self {
            peer,
            local_port,
            service,
            recorder,
            recorded: 0,
        }
    }

    /// A new attempt from this connection's source, to fill in and record.
    pub fn attempt(&self) -> Attempt {
        Attempt::new(self.service.kind.name(), self.peer, self.local_port)
    }

    pub async fn record(&mut self, attempt: Attempt) {
        self.recorded += 1;
        self.recorder.record(attempt).await;
    }

    /// Attempts recorded on this connection so far.
    pub fn recorded(&self) -> u32 {
        self.recorded
    }

    /// The configured banner, or the service's default.
    pub fn banner<'a>(&'a self, default: &'a str) -> &'a str {
        self.service.banner.as_deref().unwrap_or(default)
    }
}

/// What a service module serves a connection over (a TCP stream, or TLS
/// over it for `https`).
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// A bound service, ready to serve.
pub struct Bound {
    pub service: &'static Service,
    pub listener: TcpListener,
}

impl Bound {
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// Binds every service, or says which one could not listen and why.
pub async fn bind_all(services: &[Service]) -> anyhow::Result<Vec<Bound>> {
    let mut bound = Vec::with_capacity(services.len());
    for service in services {
        let listen = service.listen();
        let listener = TcpListener::bind(listen).await.map_err(|e| {
            anyhow::anyhow!(
                "cannot listen on {listen} for the {} service: {e}",
                service.kind.name()
            )
        })?;
        // Services live as long as the process: leaking one small struct per
        // service gives every connection a plain `&'static` to it.
        let service: &'static Service = Box::leak(Box::new(service.clone()));
        bound.push(Bound { service, listener });
    }
    Ok(bound)
}

/// Shared by every service's accept loop.
#[derive(Clone)]
pub struct Shared {
    pub recorder: Recorder,
    pub stats: Arc<ServiceStats>,
    /// What services keep across restarts (host keys, the https
    /// certificate) lives here.
    pub state_dir: std::path::PathBuf,
}

/// Serves `bound` until `shutdown` turns true.
pub async fn serve(bound: Bound, shared: Shared, mut shutdown: watch::Receiver<bool>) {
    let Bound { service, listener } = bound;
    let local_port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
    let permits = Arc::new(Semaphore::new(service.max_connections.max(1)));
    let protocol = match Protocol::prepare(service, &shared).await {
        Ok(p) => Arc::new(p),
        Err(e) => {
            tracing::error!(service = service.kind.name(), error = %e, "the service cannot start");
            return;
        }
    };
    let mut backoff =
        roost_listener::Backoff::new(Duration::from_millis(5), Duration::from_secs(1));
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
                shared.stats.accept_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(service = service.kind.name(), error = %e, "accept failed");
                tokio::time::sleep(backoff.next_wait()).await;
                continue;
            }
        };
        shared.stats.connections.fetch_add(1, Ordering::Relaxed);
        let mut conn = Conn::new(peer, local_port, service, shared.recorder.clone());
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            shared.stats.over_capacity.fetch_add(1, Ordering::Relaxed);
            drop(stream);
            let attempt = conn
                .attempt()
                .detail("event", "connection")
                .detail("refused", "the service is at its connection cap");
            tokio::spawn(async move { conn.record(attempt).await });
            continue;
        };
        let protocol = protocol.clone();
        let stats = shared.stats.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let served =
                tokio::time::timeout(CONNECTION_DEADLINE, protocol.serve(stream, &mut conn)).await;
            if served.is_err() {
                stats.deadline_cuts.fetch_add(1, Ordering::Relaxed);
            }
            if conn.recorded() == 0 {
                let attempt = conn.attempt().detail("event", "connection");
                conn.record(attempt).await;
            }
        });
    }
}

/// What a protocol prepares once per service (a host key, a certificate)
/// and how it serves a connection.
enum Protocol {
    Tcp,
    Ftp,
    Telnet,
    Redis,
    Postgres,
    Http(http::Site),
    Https(http::Site, tokio_rustls::TlsAcceptor),
    Ssh(Arc<russh::server::Config>),
    Mysql,
    Mssql,
    Rdp,
    Vnc,
}

impl Protocol {
    async fn prepare(service: &'static Service, shared: &Shared) -> anyhow::Result<Self> {
        Ok(match service.kind {
            ServiceKind::Tcp => Protocol::Tcp,
            ServiceKind::Ftp => Protocol::Ftp,
            ServiceKind::Telnet => Protocol::Telnet,
            ServiceKind::Redis => Protocol::Redis,
            ServiceKind::Postgres => Protocol::Postgres,
            ServiceKind::Http => Protocol::Http(http::Site::new(service)),
            ServiceKind::Https => {
                let site = http::Site::new(service);
                let tls = http::tls_acceptor(&site, &shared.state_dir)?;
                Protocol::Https(site, tls)
            }
            ServiceKind::Ssh => Protocol::Ssh(ssh::prepare(service, &shared.state_dir).await?),
            ServiceKind::Mysql => Protocol::Mysql,
            ServiceKind::Mssql => Protocol::Mssql,
            ServiceKind::Rdp => Protocol::Rdp,
            ServiceKind::Vnc => Protocol::Vnc,
        })
    }

    async fn serve(&self, stream: TcpStream, conn: &mut Conn) {
        let result = match self {
            Protocol::Tcp => tcp::serve(stream, conn).await,
            Protocol::Ftp => ftp::serve(stream, conn).await,
            Protocol::Telnet => telnet::serve(stream, conn).await,
            Protocol::Redis => redis::serve(stream, conn).await,
            Protocol::Postgres => postgres::serve(stream, conn).await,
            Protocol::Http(site) => http::serve(stream, conn, site).await,
            Protocol::Https(site, tls) => http::serve_tls(stream, conn, site, tls).await,
            Protocol::Ssh(config) => ssh::serve(stream, conn, config.clone()).await,
            Protocol::Mysql => mysql::serve(stream, conn).await,
            Protocol::Mssql => mssql::serve(stream, conn).await,
            Protocol::Rdp => rdp::serve(stream, conn).await,
            Protocol::Vnc => vnc::serve(stream, conn).await,
        };
        if let Err(e) = result {
            tracing::debug!(service = conn.service.kind.name(), peer = %conn.peer, error = %e, "connection ended");
        }
    }
}

/// Test support: one service on 127.0.0.1:0 and the attempts it records.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    pub struct Running {
        pub addr: SocketAddr,
        pub attempts: mpsc::Receiver<Attempt>,
        /// Kept for the service's lifetime (host keys, certificates).
        _state_dir: tempfile::TempDir,
        _stop: watch::Sender<bool>,
    }

    impl Running {
        /// The next attempt recorded (waits up to 10 s).
        pub async fn next(&mut self) -> Attempt {
            tokio::time::timeout(Duration::from_secs(10), self.attempts.recv())
                .await
                .expect("an attempt within 10 s")
                .expect("the service is running")
        }
    }

    /// Starts a service of `kind` as `edit` configures it.
    pub async fn start(kind: ServiceKind, edit: impl FnOnce(&mut Service)) -> Running {
        let mut service = Service::new(kind, Some("127.0.0.1:0".parse().unwrap()));
        edit(&mut service);
        let mut bound = bind_all(&[service]).await.unwrap();
        let bound = bound.remove(0);
        let addr = bound.local_addr().unwrap();
        let (tx, mut recorded) = mpsc::channel::<Recorded>(1024);
        let (forward, attempts) = mpsc::channel(1024);
        // Written at once: tests see each attempt as the agent would take it.
        tokio::spawn(async move {
            while let Some((attempt, done)) = recorded.recv().await {
                let _ = done.send(());
                if forward.send(attempt).await.is_err() {
                    break;
                }
            }
        });
        let state_dir = tempfile::tempdir().unwrap();
        let shared = Shared {
            recorder: Recorder::new(tx),
            stats: Arc::default(),
            state_dir: state_dir.path().to_owned(),
        };
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(serve(bound, shared, stopped));
        Running {
            addr,
            attempts,
            _state_dir: state_dir,
            _stop: stop,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::{Strategy, ValueTree};
    use tokio::io::AsyncWriteExt;

    /// Arbitrary bytes, in a few writes, then a close: every service
    /// records the connection (a service that panicked would record
    /// nothing) and goes on serving the next one.
    #[tokio::test]
    async fn any_bytes_to_any_service_are_recorded_and_never_crash_it() {
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let inputs = proptest::collection::vec(
            proptest::collection::vec(proptest::prelude::any::<u8>(), 0..700),
            0..4,
        );
        for kind in ServiceKind::ALL {
            let mut svc = testing::start(kind, |s| s.port = Some(0)).await;
            for case in 0..12 {
                let chunks = inputs.new_tree(&mut runner).unwrap().current();
                let mut client = TcpStream::connect(svc.addr).await.unwrap();
                for chunk in &chunks {
                    if client.write_all(chunk).await.is_err() {
                        break;
                    }
                }
                drop(client);
                let attempt = svc.next().await;
                assert_eq!(attempt.service, kind.name(), "case {case}: {chunks:?}");
                // What else this input made the service record.
                while svc.attempts.try_recv().is_ok() {}
            }
        }
    }
}
