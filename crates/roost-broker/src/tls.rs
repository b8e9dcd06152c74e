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
use std::time::Duration;

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
    clock_skew: Duration,
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
        clock_skew,
    });
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// Requires a client certificate that is valid now (within `clock_skew`)
/// and proof of its key; leaves trust to the registry (see the module
/// documentation).
#[derive(Debug)]
struct AnyClientCertificate {
    algorithms: WebPkiSupportedAlgorithms,
    /// How far the device's clock and ours may disagree: a certificate is
    /// accepted from `notBefore - skew` until `notAfter + skew`.
    clock_skew: Duration,
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
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Parse it now so that garbage is refused during the handshake, and
        // refuse it (with TLS's own alert) outside its validity, as AWS does.
        use rustls::CertificateError;
        use x509_parser::prelude::FromDer;
        let (_, cert) = x509_parser::certificate::X509Certificate::from_der(end_entity.as_ref())
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        let skew = i64::try_from(self.clock_skew.as_secs()).unwrap_or(i64::MAX);
        let validity = cert.validity();
        if validity.not_after.timestamp().saturating_add(skew) < now {
            return Err(rustls::Error::InvalidCertificate(CertificateError::Expired));
        }
        if validity.not_before.timestamp().saturating_sub(skew) > now {
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidYet,
            ));
        }
        Ok(ClientCertVerified::assertion())
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

/// A device's client certificate, read once, right after the handshake.
#[derive(Clone, Debug)]
pub struct DeviceCertificate {
    /// Its id and policy variables (`iot:Certificate.*`).
    pub context: roost_policy::CertificateContext,
    /// When it stops being valid, Unix ms.
    pub not_after: i64,
}

impl DeviceCertificate {
    pub fn from_der(der: Vec<u8>) -> Result<Self, roost_registry::RegistryError> {
        let parsed = roost_registry::pki::parse_der(der)?;
        Ok(Self::from_parsed(&parsed))
    }

    pub fn from_pem(pem: &str) -> Result<Self, roost_registry::RegistryError> {
        let parsed = roost_registry::pki::parse_pem(pem)?;
        Ok(Self::from_parsed(&parsed))
    }

    /// SHA-256 of the DER, hex: the certificate id AWS IoT uses.
    pub fn id(&self) -> &str {
        &self.context.id
    }

    fn from_parsed(parsed: &roost_registry::pki::ParsedCertificate) -> Self {
        Self {
            context: roost_registry::pki::policy_context(parsed),
            not_after: parsed.not_after,
        }
    }
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

impl DeviceRefusal {
    /// True when the client's certificate itself was refused (unknown,
    /// inactive, revoked, expired, not yet valid, garbage), as opposed to a
    /// failed handshake or a server fault.
    pub fn is_certificate(&self) -> bool {
        match self {
            DeviceRefusal::NoCertificate | DeviceRefusal::Certificate(_) => true,
            DeviceRefusal::HandshakeFailed(e) => e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                .is_some_and(|e| matches!(e, rustls::Error::InvalidCertificate(_))),
            DeviceRefusal::HandshakeTimeout | DeviceRefusal::Lookup(_) => false,
        }
    }
}

/// The device side of every TLS listener (MQTT and HTTPS): the handshake
/// within `timeout`, and the client certificate read. Whether the registry
/// accepts the certificate is the caller's next step
/// ([`crate::Broker::admit_device`]), taken once the connection can be
/// closed by a revocation. The TLS stream comes back boxed: it is large, and
/// its owner's task should not carry it inline.
pub async fn handshake(
    acceptor: &tokio_rustls::TlsAcceptor,
    stream: tokio::net::TcpStream,
    timeout: std::time::Duration,
) -> Result<
    (
        Box<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>,
        DeviceCertificate,
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
    let certificate =
        DeviceCertificate::from_der(der.as_ref().to_vec()).map_err(DeviceRefusal::Lookup)?;
    Ok((tls, certificate))
}
