//! The broker under test: a loopback address and the mutual-TLS identity
//! every connection presents.
//!
//! The load generator must never point load at another machine, so the
//! address is checked here, once, and host names are not resolved at all:
//! only a literal loopback IP address is accepted.

use anyhow::{bail, Context, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_rustls::TlsConnector;

pub use roost_bench::parse_loopback;

/// Where the broker is and who we are to it.
#[derive(clap::Args, Debug, Clone)]
pub struct TargetArgs {
    /// The broker's MQTT-over-TLS address; loopback only.
    #[arg(long, value_parser = parse_loopback)]
    pub broker: SocketAddr,
    /// The CA that signed the broker's server certificate (PEM).
    #[arg(long)]
    pub ca: PathBuf,
    /// The client certificate every connection presents (PEM).
    #[arg(long)]
    pub cert: PathBuf,
    /// The client certificate's private key (PEM).
    #[arg(long)]
    pub key: PathBuf,
    /// The name to verify the server certificate against; by default the
    /// broker's IP address (Roost's server certificate names 127.0.0.1 and ::1).
    #[arg(long)]
    pub server_name: Option<String>,
    /// MQTT protocol version: 3.1.1 or 5.
    #[arg(long, default_value = "3.1.1", value_parser = parse_protocol)]
    pub protocol: roost_mqtt::ProtocolVersion,
    /// Subscribers connect here instead (another node of a cluster, with
    /// the same CA and client certificate); loopback only.
    #[arg(long, value_parser = parse_loopback)]
    pub subscribe_broker: Option<SocketAddr>,
}

fn parse_protocol(text: &str) -> Result<roost_mqtt::ProtocolVersion, String> {
    match text {
        "3.1.1" | "311" | "4" => Ok(roost_mqtt::ProtocolVersion::V311),
        "5" | "5.0" => Ok(roost_mqtt::ProtocolVersion::V5),
        other => Err(format!("unknown MQTT version '{other}': use 3.1.1 or 5")),
    }
}

/// A broker to connect to, with the TLS client configuration built once.
#[derive(Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub protocol: roost_mqtt::ProtocolVersion,
    server_name: ServerName<'static>,
    connector: TlsConnector,
}

impl Target {
    pub fn new(args: &TargetArgs) -> Result<Self> {
        // Checked again: a Target must never exist for a remote address,
        // however it was built.
        if !args.broker.ip().is_loopback() {
            bail!("refusing to load {}: not a loopback address", args.broker);
        }
        let server_name = match &args.server_name {
            Some(name) => ServerName::try_from(name.clone())
                .with_context(|| format!("'{name}' is not a valid server name"))?,
            None => ServerName::IpAddress(args.broker.ip().into()),
        };
        Ok(Self {
            addr: args.broker,
            protocol: args.protocol,
            server_name,
            connector: TlsConnector::from(client_config(&args.ca, &args.cert, &args.key)?),
        })
    }

    /// The same identity at another loopback address (the subscribers'
    /// node), verified against that address unless a name was given.
    pub fn at(&self, args: &TargetArgs, addr: SocketAddr) -> Result<Self> {
        if !addr.ip().is_loopback() {
            bail!("refusing to load {addr}: not a loopback address");
        }
        let server_name = match &args.server_name {
            Some(_) => self.server_name.clone(),
            None => ServerName::IpAddress(addr.ip().into()),
        };
        Ok(Self {
            addr,
            server_name,
            ..self.clone()
        })
    }

    pub fn connector(&self) -> &TlsConnector {
        &self.connector
    }

    pub fn server_name(&self) -> ServerName<'static> {
        self.server_name.clone()
    }
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("reading certificates from {}", path.display()))
}

/// TLS 1.3 or 1.2 with the ring provider, the broker verified against `ca`,
/// our certificate presented, and session resumption off: every connection
/// pays for a full handshake, as a fleet of devices coming online does.
fn client_config(ca: &Path, cert: &Path, key: &Path) -> Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    for root in read_certificates(ca)? {
        roots
            .add(root)
            .with_context(|| format!("adding the CA in {}", ca.display()))?;
    }
    let chain = read_certificates(cert)?;
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading the private key {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .context("the client certificate and key do not match")?;
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(config))
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("addr", &self.addr)
            .field("protocol", &self.protocol)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::parse_loopback;

    #[test]
    fn only_loopback_addresses_are_accepted() {
        assert!(parse_loopback("127.0.0.1:8883").is_ok());
        assert!(parse_loopback("127.1.2.3:1").is_ok());
        assert!(parse_loopback("[::1]:8883").is_ok());
        for remote in [
            "10.0.0.1:8883",
            "0.0.0.0:8883",
            "192.168.1.1:1883",
            "[::]:8883",
            "[::ffff:127.0.0.1]:8883",
            "[2001:db8::1]:8883",
        ] {
            assert!(parse_loopback(remote).is_err(), "{remote} was accepted");
        }
        // Names are never resolved, not even localhost.
        assert!(parse_loopback("localhost:8883").is_err());
        assert!(parse_loopback("example.com:8883").is_err());
    }
}
