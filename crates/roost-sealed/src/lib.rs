//! Encrypted delivery of rotated device credentials: a file sealed to a
//! device's current public key, opened on the device with its private key.
//!
//! What this crate is for: the rotate-cert job's optional encryption (the
//! scenario's "bonus 2"). The operator seals the new certificate and key
//! with [`seal`] before putting them in the object store, and names the
//! scheme in the job document (`"encryption": {"scheme": ...}`, see
//! [`scheme_for`]); the device opens what it downloaded with [`open`] or,
//! holding the scheme the job named, [`open_with_scheme`]. Two formats,
//! chosen by the key's type (docs/encrypted-delivery.md describes both byte
//! by byte):
//!
//! - [`Scheme::RsaOaepSha1AesEax`] for RSA keys: exactly what the scenario's
//!   PyCryptodome sample writes, so files sealed by that sample open here
//!   and the other way round.
//! - [`Scheme::EciesP256HkdfSha256Aes256Gcm`] for EC P-256 keys (those
//!   Roost's CreateKeysAndCertificate issues): ECDH with an ephemeral key,
//!   HKDF-SHA256, AES-256-GCM; our own, versioned.
//!
//! What it must never do: any I/O (callers read and write the files);
//! panic on any input; say which byte of a file failed to authenticate, or
//! anything of a key, in an error; open a file with a scheme that does not
//! fit the key.
#![forbid(unsafe_code)]

mod ecies;
mod error;
mod keys;
mod rsa_eax;

use std::fmt;
use std::str::FromStr;

pub use error::SealError;

/// A sealed-file format, named in the job document's `encryption.scheme`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// RSA-OAEP (SHA-1, MGF1-SHA-1) session key, then AES-128-EAX: the
    /// scenario's PyCryptodome sample.
    RsaOaepSha1AesEax,
    /// Ephemeral ECDH on P-256, HKDF-SHA256, AES-256-GCM: Roost's format.
    EciesP256HkdfSha256Aes256Gcm,
}

impl Scheme {
    /// Every scheme this build reads and writes.
    pub const ALL: [Scheme; 2] = [
        Scheme::RsaOaepSha1AesEax,
        Scheme::EciesP256HkdfSha256Aes256Gcm,
    ];

    /// The name in the job document.
    pub const fn name(self) -> &'static str {
        match self {
            Scheme::RsaOaepSha1AesEax => "rsa-oaep-sha1-aes-eax",
            Scheme::EciesP256HkdfSha256Aes256Gcm => "ecies-p256-hkdf-sha256-aes256gcm",
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Scheme {
    type Err = SealError;

    fn from_str(name: &str) -> Result<Self, SealError> {
        Scheme::ALL
            .into_iter()
            .find(|scheme| scheme.name() == name)
            .ok_or_else(|| SealError::UnknownScheme(name.to_string()))
    }
}

/// The scheme for a key: `pem` holds a certificate, a public key or a
/// private key. The operator names this scheme in the job document for a
/// file sealed with [`seal`] to the same key.
pub fn scheme_for(pem: &str) -> Result<Scheme, SealError> {
    match keys::public_key(pem) {
        Ok(key) => Ok(key.scheme()),
        Err(SealError::NoPem { .. }) => {
            keys::private_key(pem)
                .map(|key| key.scheme())
                .map_err(|e| match e {
                    SealError::NoPem { .. } => SealError::NoPem {
                        expected: "certificate, public key or private key",
                    },
                    e => e,
                })
        }
        Err(e) => Err(e),
    }
}

/// Seals `plaintext` to `recipient` (a certificate PEM, such as the device's
/// current certificate, or a public key PEM), with the scheme that fits its
/// key: RSA → [`Scheme::RsaOaepSha1AesEax`], EC P-256 →
/// [`Scheme::EciesP256HkdfSha256Aes256Gcm`].
pub fn seal(recipient: &str, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
    match keys::public_key(recipient)? {
        keys::PublicKey::Rsa(key) => rsa_eax::seal(&key, plaintext),
        keys::PublicKey::P256(key) => ecies::seal(&key, plaintext),
    }
}

/// Opens a sealed file with the device's private key (PKCS#1, SEC1 or PKCS#8
/// PEM), reading it in the scheme that fits the key.
pub fn open(private_key_pem: &str, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
    let key = keys::private_key(private_key_pem)?;
    open_key(&key, sealed)
}

/// Opens a sealed file as [`open`] does, after checking that `scheme` (the
/// job document's `encryption.scheme`) is known and fits the key: a
/// mismatch is refused before anything is decrypted.
pub fn open_with_scheme(
    scheme: &str,
    private_key_pem: &str,
    sealed: &[u8],
) -> Result<Vec<u8>, SealError> {
    let scheme: Scheme = scheme.parse()?;
    let key = keys::private_key(private_key_pem)?;
    if key.scheme() != scheme {
        return Err(SealError::SchemeMismatch {
            scheme,
            key: key.describe(),
            fits: key.scheme(),
        });
    }
    open_key(&key, sealed)
}

fn open_key(key: &keys::PrivateKey, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
    match key {
        keys::PrivateKey::Rsa(key) => rsa_eax::open(key, sealed),
        keys::PrivateKey::P256(key) => ecies::open(key, sealed),
    }
}
