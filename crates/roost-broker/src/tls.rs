//! TLS for device listeners: Roost's server certificate, a client certificate
//! required, and the peer's certificate turned into a certificate id in one
//! place.
//!
//! Trust in a client certificate is decided after the handshake, by the
//! registry: the certificate must be registered and ACTIVE (and its CA, if
//! any, ACTIVE). The handshake itself only checks that the client holds the
//! key of the certificate it presents. This is how AWS IoT can accept
//! certificates registered without a CA, and it lets CA registrations change
//! without rebuilding the TLS configuration.

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme};
use std::path::Path;
use std::sync::Arc;

/// ALPN protocols the MQTT listener accepts: AWS IoT's for MQTT over port
/// 443, and plain `mqtt`. Clients that offer none are served as well.
pub const MQTT_ALPN: &[&[u8]] = &[b"x-amzn-mqtt-ca", b"mqtt"];

/// ALPN protocols the HTTPS data-plane listener accepts.
pub const HTTP_ALPN: &[&[u8]] = &[b"http/1.1"];

#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: rustls::pki_types::pem::Error,
    },
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// Builds the server configuration from a PEM certificate chain and key,
/// offering `alpn` (a client that offers none of them is refused by rustls;
/// one that offers no ALPN at all is served).
pub fn server_config(
    cert_chain: &Path,
    key: &Path,
    alpn: &[&[u8]],
) -> Result<Arc<ServerConfig>, TlsSetupError> {
    let read_err = |path: &Path| {
        let path = path.display().to_string();
        move |source| TlsSetupError::Read {
            path: path.clone(),
            source,
        }
    };
    let chain = CertificateDer::pem_file_iter(cert_chain)
        .map_err(read_err(cert_chain))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(read_err(cert_chain))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(read_err(key))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(AnyClientCertificate {
        algorithms: provider.signature_verification_algorithms,
    });
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// Requires a client certificate and proof of its key; leaves trust to the
/// registry (see the module documentation).
#[derive(Debug)]
struct AnyClientCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Parse it now so that garbage is refused during the handshake.
        use x509_parser::prelude::FromDer;
        x509_parser::certificate::X509Certificate::from_der(end_entity.as_ref())
            .map(|_| ClientCertVerified::assertion())
            .map_err(|_| rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The client certificate of an established connection, DER.
pub fn peer_certificate(conn: &rustls::ServerConnection) -> Option<CertificateDer<'static>> {
    conn.peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.clone().into_owned())
}

/// The provider in use, for callers that need its algorithms.
pub fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// Why a device's TLS connection was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum DeviceRefusal {
    #[error("TLS handshake failed: {0}")]
    HandshakeFailed(std::io::Error),
    #[error("TLS handshake timed out")]
    HandshakeTimeout,
    #[error("no client certificate")]
    NoCertificate,
    #[error("certificate: {0}")]
    Certificate(roost_registry::CertificateRefusal),
    #[error("certificate lookup failed: {0}")]
    Lookup(roost_registry::RegistryError),
}

/// The device side of every TLS listener (MQTT and HTTPS): the handshake
/// within `timeout`, then the registry's decision on the client certificate.
/// The TLS stream comes back boxed: it is large, and its owner's task should
/// not carry it inline.
pub async fn accept_device(
    acceptor: &tokio_rustls::TlsAcceptor,
    stream: tokio::net::TcpStream,
    timeout: std::time::Duration,
    registry: &roost_registry::Registry,
) -> Result<
    (
        Box<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>,
        roost_registry::model::Certificate,
    ),
    DeviceRefusal,
> {
    // Boxed, like every phase of a connection: a task is as large as its
    // largest state for its whole life.
    let tls = match Box::pin(tokio::time::timeout(timeout, acceptor.accept(stream))).await {
        Ok(Ok(tls)) => Box::new(tls),
        Ok(Err(e)) => return Err(DeviceRefusal::HandshakeFailed(e)),
        Err(_) => return Err(DeviceRefusal::HandshakeTimeout),
    };
    let der = peer_certificate(tls.get_ref().1).ok_or(DeviceRefusal::NoCertificate)?;
    match Box::pin(registry.authenticate_device(der.as_ref())).await {
        Ok(Ok(certificate)) => Ok((tls, certificate)),
        Ok(Err(refusal)) => Err(DeviceRefusal::Certificate(refusal)),
        Err(e) => Err(DeviceRefusal::Lookup(e)),
    }
}
