//! What is known about a connection when its policies are prepared.
//!
//! Pure data, filled by the broker (and by TestAuthorization) from the TLS session,
//! the CONNECT packet and the registry. This module must never look anything up
//! itself: whoever builds the context decides which thing a connection belongs to
//! (reference 1.5), and the policy engine trusts that decision.

use std::collections::BTreeMap;
use std::net::IpAddr;

/// Everything known about one connection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnectionContext {
    /// Region in ARNs, e.g. `us-east-1`.
    pub region: String,
    /// Account id in ARNs, e.g. `000000000000`.
    pub account: String,
    /// The MQTT client id (`iot:ClientId`).
    pub client_id: Option<String>,
    /// The client's address (`aws:SourceIp`).
    pub source_ip: Option<IpAddr>,
    /// The SNI host the client connected to (`iot:DomainName`).
    pub domain_name: Option<String>,
    /// `Some` only when a thing named like the client id is attached to the
    /// connection's certificate (`iot:Connection.Thing.IsAttached` is then `true`).
    pub thing: Option<ThingContext>,
    /// The client certificate, for X.509-authenticated connections.
    pub certificate: Option<CertificateContext>,
}

/// The thing a connection acts as.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ThingContext {
    pub name: String,
    pub type_name: Option<String>,
    /// Attribute names are case-sensitive, as in the registry.
    pub attributes: BTreeMap<String, String>,
}

/// The client certificate's fields that AWS exposes as policy variables.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CertificateContext {
    /// The certificate id (SHA-256 of the DER, lowercase hex): the value of
    /// `${iot:CertificateId}`. Empty means unknown (the variable has no value).
    pub id: String,
    /// The serial number as a decimal string.
    pub serial_number: String,
    /// Subject attributes in certificate order, named as in the variable names
    /// (`CommonName`, `Country`, ...). An attribute may repeat.
    pub subject: Vec<(String, String)>,
    pub issuer: Vec<(String, String)>,
    /// Subject alternative names as (kind, value), kind as in the variable names
    /// (`DNSName`, `IPAddress`, `RFC822Name`, `UniformResourceIdentifier`,
    /// `DirectoryName`).
    pub subject_alt_names: Vec<(String, String)>,
    pub issuer_alt_names: Vec<(String, String)>,
}
