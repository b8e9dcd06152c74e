//! Roost's certificate authority and certificate parsing.
//!
//! The CA signs device certificates (CreateKeysAndCertificate,
//! CreateCertificateFromCsr) and the gateway's TLS server certificate. Its
//! private key lives only in `<data-dir>/ca.key`, mode 0600, and never leaves
//! this module: nothing here logs key material.

use crate::error::{RegistryError, Result};
use crate::model::Millis;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
    PKCS_ECDSA_P256_SHA256,
};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use x509_parser::prelude::*;

/// Certificates Roost issues expire when AWS IoT's do: 2049-12-31T23:59:59Z.
fn far_future() -> ::time::OffsetDateTime {
    ::time::macros::datetime!(2049-12-31 23:59:59 UTC)
}

fn random_serial() -> SerialNumber {
    // 16 random bytes, top bit cleared so the DER integer stays positive.
    let mut bytes = *uuid::Uuid::new_v4().as_bytes();
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    SerialNumber::from_slice(&bytes)
}

fn rcgen_err(what: &str) -> impl Fn(rcgen::Error) -> RegistryError + '_ {
    move |e| RegistryError::Internal(format!("{what}: {e}"))
}

/// Writes `contents` to `path` atomically, readable by the owner only.
pub fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(contents)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Writes a public file (certificates) atomically.
pub fn write_public_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents)?;
    std::fs::rename(&tmp, path)
}

/// A freshly generated key pair and the certificate issued for it.
pub struct IssuedKeys {
    pub certificate_pem: String,
    pub private_key_pem: String,
    pub public_key_pem: String,
}

/// The CA: its certificate (what devices trust) and its signing key.
pub struct CertificateAuthority {
    root_pem: String,
    root_der: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    pub const CERT_FILE: &'static str = "root-ca.pem";
    pub const KEY_FILE: &'static str = "ca.key";

    /// Loads the CA from `dir`, creating an ECDSA P-256 CA on first start.
    pub fn load_or_create(dir: &Path) -> Result<Self> {
        let cert_path = dir.join(Self::CERT_FILE);
        let key_path = dir.join(Self::KEY_FILE);
        if cert_path.exists() && key_path.exists() {
            let cert_pem = std::fs::read_to_string(&cert_path)?;
            let key_pem = std::fs::read_to_string(&key_path)?;
            return Self::from_pem(&cert_pem, &key_pem);
        }
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
            .map_err(rcgen_err("generating the CA key"))?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "Roost");
        dn.push(DnType::CommonName, "Roost Root CA");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = ::time::OffsetDateTime::now_utc() - ::time::Duration::days(1);
        params.not_after = far_future();
        params.serial_number = Some(random_serial());
        let cert = params
            .self_signed(&key)
            .map_err(rcgen_err("self-signing the CA"))?;
        write_private_file(&key_path, key.serialize_pem().as_bytes())?;
        write_public_file(&cert_path, cert.pem().as_bytes())?;
        tracing::info!(path = %cert_path.display(), "created the Roost certificate authority");
        Self::from_pem(&cert.pem(), &key.serialize_pem())
    }

    fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self> {
        let key = KeyPair::from_pem(key_pem).map_err(rcgen_err("reading the CA key"))?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key)
            .map_err(rcgen_err("reading the CA certificate"))?;
        let root_der = parse_pem(cert_pem)
            .map_err(|e| RegistryError::Internal(format!("reading the CA certificate: {e}")))?
            .der;
        Ok(Self {
            root_pem: cert_pem.to_string(),
            root_der,
            issuer,
        })
    }

    /// The CA certificate devices must trust (the scenario's `AmazonRootCA1.pem`).
    pub fn root_pem(&self) -> &str {
        &self.root_pem
    }

    pub fn root_der(&self) -> &[u8] {
        &self.root_der
    }

    /// Loads (or issues on first start) the TLS server certificate for the
    /// given host names and addresses. Reissued when the set of names changes.
    pub fn server_certificate(&self, dir: &Path, hosts: &[String]) -> Result<(PathBuf, PathBuf)> {
        let cert_path = dir.join("server.pem");
        let key_path = dir.join("server.key");
        let names_path = dir.join("server.names");
        let wanted = hosts.join("\n");
        let current = std::fs::read_to_string(&names_path).ok();
        if cert_path.exists() && key_path.exists() && current.as_deref() == Some(wanted.as_str()) {
            return Ok((cert_path, key_path));
        }
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
            .map_err(rcgen_err("generating the server key"))?;
        let mut params = CertificateParams::default();
        for host in hosts {
            let san = match host.parse::<std::net::IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(host.clone().try_into().map_err(|_| {
                    RegistryError::invalid(format!("'{host}' is not a valid host name"))
                })?),
            };
            params.subject_alt_names.push(san);
        }
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "Roost");
        dn.push(
            DnType::CommonName,
            hosts.first().cloned().unwrap_or_else(|| "localhost".into()),
        );
        params.distinguished_name = dn;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = ::time::OffsetDateTime::now_utc() - ::time::Duration::days(1);
        params.not_after = far_future();
        params.serial_number = Some(random_serial());
        params.use_authority_key_identifier_extension = true;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(rcgen_err("issuing the server certificate"))?;
        let mut chain = cert.pem();
        chain.push_str(&self.root_pem);
        write_private_file(&key_path, key.serialize_pem().as_bytes())?;
        write_public_file(&cert_path, chain.as_bytes())?;
        write_public_file(&names_path, wanted.as_bytes())?;
        Ok((cert_path, key_path))
    }

    fn device_params(&self) -> CertificateParams {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "AWS IoT Certificate");
        params.distinguished_name = dn;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.not_before = ::time::OffsetDateTime::now_utc() - ::time::Duration::minutes(5);
        params.not_after = far_future();
        params.serial_number = Some(random_serial());
        params.use_authority_key_identifier_extension = true;
        params
    }

    /// CreateKeysAndCertificate: a new key pair and a certificate for it.
    ///
    /// AWS generates RSA-2048; Roost generates ECDSA P-256, which every AWS
    /// device SDK accepts and which is far cheaper to create and to handshake.
    pub fn issue_keys_and_certificate(&self) -> Result<IssuedKeys> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
            .map_err(rcgen_err("generating a device key"))?;
        let cert = self
            .device_params()
            .signed_by(&key, &self.issuer)
            .map_err(rcgen_err("issuing a device certificate"))?;
        Ok(IssuedKeys {
            certificate_pem: cert.pem(),
            private_key_pem: key.serialize_pem(),
            public_key_pem: key.public_key_pem(),
        })
    }

    /// CreateCertificateFromCsr: signs the CSR's public key, keeping its subject.
    pub fn issue_from_csr(&self, csr_pem: &str) -> Result<String> {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem).map_err(|e| {
            RegistryError::invalid(format!(
                "certificateSigningRequest is not a valid PEM CSR: {e}"
            ))
        })?;
        let alg = csr.public_key.algorithm();
        let supported = [
            &rcgen::PKCS_ECDSA_P256_SHA256,
            &rcgen::PKCS_ECDSA_P384_SHA384,
            &rcgen::PKCS_RSA_SHA256,
            &rcgen::PKCS_RSA_SHA384,
            &rcgen::PKCS_RSA_SHA512,
        ];
        if !supported.contains(&alg) {
            return Err(RegistryError::invalid(
                "the CSR's key type is not supported: use RSA (2048 bits or more) or EC P-256/P-384",
            ));
        }
        let mut params = self.device_params();
        if csr.params.distinguished_name.iter().next().is_some() {
            params.distinguished_name = csr.params.distinguished_name.clone();
        }
        let cert = params
            .signed_by(&csr.public_key, &self.issuer)
            .map_err(rcgen_err("issuing a certificate from a CSR"))?;
        Ok(cert.pem())
    }
}

/// The certificate id AWS IoT uses: lowercase hex SHA-256 of the DER.
pub fn certificate_id(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// A certificate's facts, taken from its PEM once.
#[derive(Clone, Debug)]
pub struct ParsedCertificate {
    pub der: Vec<u8>,
    pub id: String,
    pub not_before: Millis,
    pub not_after: Millis,
    pub subject: String,
    pub issuer: String,
    pub is_ca: bool,
}

/// Parses one PEM certificate. Any failure is a `CertificateValidation` error.
pub fn parse_pem(pem: &str) -> Result<ParsedCertificate> {
    let invalid = |why: String| {
        RegistryError::CertificateValidation(format!("certificate is not valid: {why}"))
    };
    let (_, block) =
        parse_x509_pem(pem.trim().as_bytes()).map_err(|e| invalid(format!("not PEM ({e})")))?;
    if block.label != "CERTIFICATE" {
        return Err(invalid(format!(
            "expected a CERTIFICATE PEM block, found {}",
            block.label
        )));
    }
    parse_der(block.contents.clone())
}

/// Parses one DER certificate (a TLS peer's, say). Any failure is a
/// `CertificateValidation` error.
pub fn parse_der(der: Vec<u8>) -> Result<ParsedCertificate> {
    let (_, cert) = X509Certificate::from_der(&der).map_err(|e| {
        RegistryError::CertificateValidation(format!("certificate is not valid: bad DER ({e})"))
    })?;
    Ok(ParsedCertificate {
        id: certificate_id(&der),
        not_before: cert.validity().not_before.timestamp() * 1000,
        not_after: cert.validity().not_after.timestamp() * 1000,
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        is_ca: cert.is_ca(),
        der,
    })
}

/// True when `cert` carries a valid signature by `ca`'s key and names it as issuer.
pub fn is_signed_by(cert: &ParsedCertificate, ca: &ParsedCertificate) -> bool {
    let (Ok((_, c)), Ok((_, a))) = (
        X509Certificate::from_der(&cert.der),
        X509Certificate::from_der(&ca.der),
    ) else {
        return false;
    };
    c.issuer().as_raw() == a.subject().as_raw() && c.verify_signature(Some(a.public_key())).is_ok()
}

/// The certificate's subject, issuer and alternative names under the names
/// AWS IoT's certificate policy variables use.
pub fn policy_context(cert: &ParsedCertificate) -> roost_policy::CertificateContext {
    let (_, c) = X509Certificate::from_der(&cert.der).expect("parsed once already");
    let names = |name: &X509Name<'_>| -> Vec<(String, String)> {
        name.iter_attributes()
            .filter_map(|attr| {
                let key = dn_attribute_name(&attr.attr_type().to_id_string())?;
                let value = attr.as_str().ok()?;
                Some((key.to_string(), value.to_string()))
            })
            .collect()
    };
    let alt_names = |ext: Option<&SubjectAlternativeName<'_>>| -> Vec<(String, String)> {
        ext.map(|san| san.general_names.iter().filter_map(general_name).collect())
            .unwrap_or_default()
    };
    let subject_alt = c.subject_alternative_name().ok().flatten().map(|e| e.value);
    let issuer_alt = c
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::IssuerAlternativeName(ian) => Some(ian.general_names.clone()),
            _ => None,
        });
    roost_policy::CertificateContext {
        id: cert.id.clone(),
        serial_number: c.serial.to_str_radix(10),
        subject: names(c.subject()),
        issuer: names(c.issuer()),
        subject_alt_names: alt_names(subject_alt),
        issuer_alt_names: issuer_alt
            .map(|names| names.iter().filter_map(general_name).collect())
            .unwrap_or_default(),
    }
}

fn dn_attribute_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CommonName",
        "2.5.4.4" => "Surname",
        "2.5.4.5" => "SerialNumber",
        "2.5.4.6" => "Country",
        "2.5.4.8" => "State",
        "2.5.4.10" => "Organization",
        "2.5.4.11" => "OrganizationalUnit",
        "2.5.4.12" => "Title",
        "2.5.4.42" => "GivenName",
        "2.5.4.43" => "Initials",
        "2.5.4.44" => "GenerationQualifier",
        "2.5.4.46" => "DistinguishedNameQualifier",
        "2.5.4.65" => "Pseudonym",
        _ => return None,
    })
}

fn general_name(name: &GeneralName<'_>) -> Option<(String, String)> {
    Some(match name {
        GeneralName::RFC822Name(v) => ("RFC822Name".into(), v.to_string()),
        GeneralName::DNSName(v) => ("DNSName".into(), v.to_string()),
        GeneralName::DirectoryName(v) => ("DirectoryName".into(), v.to_string()),
        GeneralName::URI(v) => ("UniformResourceIdentifier".into(), v.to_string()),
        GeneralName::IPAddress(bytes) => {
            let ip = match bytes.len() {
                4 => std::net::IpAddr::from(<[u8; 4]>::try_from(*bytes).ok()?),
                16 => std::net::IpAddr::from(<[u8; 16]>::try_from(*bytes).ok()?),
                _ => return None,
            };
            ("IPAddress".into(), ip.to_string())
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_is_created_once_with_private_key_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::load_or_create(dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join("ca.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = CertificateAuthority::load_or_create(dir.path()).unwrap();
        assert_eq!(ca.root_pem(), again.root_pem());
    }

    #[test]
    fn issued_certificates_chain_to_the_ca() {
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::load_or_create(dir.path()).unwrap();
        let root = parse_pem(ca.root_pem()).unwrap();
        assert!(root.is_ca);
        let issued = ca.issue_keys_and_certificate().unwrap();
        let cert = parse_pem(&issued.certificate_pem).unwrap();
        assert!(is_signed_by(&cert, &root));
        assert!(!cert.is_ca);
        assert_eq!(cert.id.len(), 64);
        // A certificate from another CA does not verify against ours.
        let other_dir = tempfile::tempdir().unwrap();
        let other = CertificateAuthority::load_or_create(other_dir.path()).unwrap();
        let foreign =
            parse_pem(&other.issue_keys_and_certificate().unwrap().certificate_pem).unwrap();
        assert!(!is_signed_by(&foreign, &root));
    }

    #[test]
    fn garbage_is_a_validation_error() {
        for bad in [
            "",
            "hello",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        ] {
            assert!(
                matches!(parse_pem(bad), Err(RegistryError::CertificateValidation(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn policy_context_exposes_subject_and_serial() {
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::load_or_create(dir.path()).unwrap();
        let cert = parse_pem(&ca.issue_keys_and_certificate().unwrap().certificate_pem).unwrap();
        let ctx = policy_context(&cert);
        assert_eq!(
            ctx.subject,
            vec![("CommonName".to_string(), "AWS IoT Certificate".to_string())]
        );
        assert!(ctx
            .issuer
            .contains(&("CommonName".to_string(), "Roost Root CA".to_string())));
        assert!(ctx.serial_number.chars().all(|c| c.is_ascii_digit()));
    }
}
