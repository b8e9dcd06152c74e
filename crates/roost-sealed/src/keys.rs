//! Keys from PEM text: the device's private key (PKCS#1, SEC1 or PKCS#8) and
//! the recipient's public key (a certificate, a SubjectPublicKeyInfo or a
//! PKCS#1 public key).
//!
//! Other PEM blocks in the same text are skipped (OpenSSL's `EC PARAMETERS`
//! before a SEC1 key, a chain after a certificate): the first block that is
//! a key, or a certificate, is the one used.

use crate::{Scheme, SealError};
use p256::pkcs8::AssociatedOid;
use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey};
use rsa::pkcs8::der::asn1::ObjectIdentifier;
use rsa::pkcs8::der::Decode;
use rsa::pkcs8::spki::{AlgorithmIdentifierRef, SubjectPublicKeyInfoRef};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey, PrivateKeyInfoRef};
use rsa::traits::PublicKeyParts;
use x509_parser::pem::Pem;

const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");

/// The device's private key.
pub(crate) enum PrivateKey {
    Rsa(Box<rsa::PrivateKey>),
    P256(p256::SecretKey),
}

/// The key a file is sealed to.
pub(crate) enum PublicKey {
    Rsa(rsa::PublicKey),
    P256(p256::PublicKey),
}

impl PrivateKey {
    pub(crate) fn scheme(&self) -> Scheme {
        match self {
            PrivateKey::Rsa(_) => Scheme::RsaOaepSha1AesEax,
            PrivateKey::P256(_) => Scheme::EciesP256HkdfSha256Aes256Gcm,
        }
    }

    /// "RSA 2048-bit" or "EC P-256", for error messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            PrivateKey::Rsa(key) => format!("RSA {}-bit", key.size() * 8),
            PrivateKey::P256(_) => "EC P-256".to_string(),
        }
    }
}

impl PublicKey {
    pub(crate) fn scheme(&self) -> Scheme {
        match self {
            PublicKey::Rsa(_) => Scheme::RsaOaepSha1AesEax,
            PublicKey::P256(_) => Scheme::EciesP256HkdfSha256Aes256Gcm,
        }
    }
}

fn blocks(pem: &str) -> impl Iterator<Item = Pem> + '_ {
    // A block that does not parse ends the walk: what follows it cannot be
    // told apart from its garbage.
    Pem::iter_from_buffer(pem.as_bytes()).map_while(Result::ok)
}

fn bad(label: &str, reason: impl ToString) -> SealError {
    SealError::BadKey {
        label: label.to_string(),
        reason: reason.to_string(),
    }
}

/// The first private key in `pem`.
pub(crate) fn private_key(pem: &str) -> Result<PrivateKey, SealError> {
    for block in blocks(pem) {
        let der = block.contents.as_slice();
        let label = block.label.as_str();
        return match label {
            "RSA PRIVATE KEY" => rsa::PrivateKey::from_pkcs1_der(der)
                .map(|key| PrivateKey::Rsa(Box::new(key)))
                .map_err(|e| bad(label, e)),
            "EC PRIVATE KEY" => sec1_private_key(der),
            "PRIVATE KEY" => pkcs8_private_key(der),
            "ENCRYPTED PRIVATE KEY" => Err(SealError::EncryptedKey),
            _ => continue,
        };
    }
    Err(SealError::NoPem {
        expected: "private key",
    })
}

fn sec1_private_key(der: &[u8]) -> Result<PrivateKey, SealError> {
    const LABEL: &str = "EC PRIVATE KEY";
    let key = sec1::EcPrivateKey::from_der(der).map_err(|e| bad(LABEL, e))?;
    // SEC1 keys name their curve in the optional parameters; one without
    // them is read as P-256, the only curve that can be meant here.
    if let Some(curve) = key.parameters.and_then(|p| p.named_curve()) {
        check_curve(curve)?;
    }
    p256::SecretKey::from_sec1_der(der)
        .map(PrivateKey::P256)
        .map_err(|e| bad(LABEL, e))
}

fn pkcs8_private_key(der: &[u8]) -> Result<PrivateKey, SealError> {
    const LABEL: &str = "PRIVATE KEY";
    let info = PrivateKeyInfoRef::from_der(der).map_err(|e| bad(LABEL, e))?;
    match key_type(LABEL, &info.algorithm)? {
        KeyType::Rsa => rsa::PrivateKey::from_pkcs8_der(der)
            .map(|key| PrivateKey::Rsa(Box::new(key)))
            .map_err(|e| bad(LABEL, e)),
        KeyType::P256 => p256::SecretKey::from_pkcs8_der(der)
            .map(PrivateKey::P256)
            .map_err(|e| bad(LABEL, e)),
    }
}

enum KeyType {
    Rsa,
    P256,
}

/// The key type a PKCS#8 or SubjectPublicKeyInfo algorithm names, if supported.
fn key_type(label: &str, algorithm: &AlgorithmIdentifierRef<'_>) -> Result<KeyType, SealError> {
    if algorithm.oid == RSA_ENCRYPTION {
        return Ok(KeyType::Rsa);
    }
    if algorithm.oid == EC_PUBLIC_KEY {
        let curve = algorithm
            .parameters_oid()
            .map_err(|_| bad(label, "an EC key without a named curve"))?;
        return check_curve(curve).map(|()| KeyType::P256);
    }
    Err(SealError::UnsupportedKey(algorithm_name(algorithm.oid)))
}

fn check_curve(curve: ObjectIdentifier) -> Result<(), SealError> {
    if curve == p256::NistP256::OID {
        Ok(())
    } else {
        Err(SealError::UnsupportedKey(curve_name(curve)))
    }
}

/// The first certificate's or public key's key in `pem`.
pub(crate) fn public_key(pem: &str) -> Result<PublicKey, SealError> {
    for block in blocks(pem) {
        let der = block.contents.as_slice();
        let label = block.label.as_str();
        return match label {
            "CERTIFICATE" => {
                let (_, cert) =
                    x509_parser::parse_x509_certificate(der).map_err(|e| bad(label, e))?;
                spki_public_key(label, cert.tbs_certificate.subject_pki.raw)
            }
            "PUBLIC KEY" => spki_public_key(label, der),
            "RSA PUBLIC KEY" => rsa::PublicKey::from_pkcs1_der(der)
                .map(PublicKey::Rsa)
                .map_err(|e| bad(label, e)),
            _ => continue,
        };
    }
    Err(SealError::NoPem {
        expected: "certificate or public key",
    })
}

fn spki_public_key(label: &str, der: &[u8]) -> Result<PublicKey, SealError> {
    let info = SubjectPublicKeyInfoRef::from_der(der).map_err(|e| bad(label, e))?;
    match key_type(label, &info.algorithm)? {
        KeyType::Rsa => rsa::PublicKey::from_public_key_der(der)
            .map(PublicKey::Rsa)
            .map_err(|e| bad(label, e)),
        KeyType::P256 => p256::PublicKey::from_public_key_der(der)
            .map(PublicKey::P256)
            .map_err(|e| bad(label, e)),
    }
}

fn curve_name(curve: ObjectIdentifier) -> String {
    match curve.to_string().as_str() {
        "1.3.132.0.34" => "EC P-384".to_string(),
        "1.3.132.0.35" => "EC P-521".to_string(),
        "1.3.132.0.10" => "EC secp256k1".to_string(),
        other => format!("EC on curve {other}"),
    }
}

fn algorithm_name(algorithm: ObjectIdentifier) -> String {
    match algorithm.to_string().as_str() {
        "1.3.101.112" => "Ed25519".to_string(),
        "1.3.101.113" => "Ed448".to_string(),
        "1.2.840.113549.1.1.10" => "RSASSA-PSS".to_string(),
        other => format!("algorithm {other}"),
    }
}
