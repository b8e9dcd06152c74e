//! Why a file could not be sealed or opened.

use crate::Scheme;

/// Everything that can go wrong, split by cause. The messages are meant for
/// an operator reading a job's FAILED reason: they name what is wrong
/// (the key's type, the file's length, the scheme) and never which byte of
/// a sealed file failed to authenticate, nor anything of a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The PEM text holds no block this crate can use.
    #[error("no {expected} found in the PEM text")]
    NoPem {
        /// What was looked for ("private key", "certificate or public key").
        expected: &'static str,
    },
    /// A PEM block was found but its contents do not decode as what its label says.
    #[error("the {label} PEM block does not decode: {reason}")]
    BadKey {
        /// The PEM label ("RSA PRIVATE KEY", "CERTIFICATE", ...).
        label: String,
        /// What the decoder said.
        reason: String,
    },
    /// A well-formed key of a type encrypted delivery does not support.
    #[error("unsupported key type: {0}; encrypted delivery supports RSA and EC P-256 keys")]
    UnsupportedKey(String),
    /// A password-protected private key: the device's key must be readable without a password.
    #[error("the private key is encrypted with a password (ENCRYPTED PRIVATE KEY); encrypted delivery needs the plain key")]
    EncryptedKey,
    /// A scheme name this crate does not know.
    #[error("unknown encryption scheme {0:?} (known: rsa-oaep-sha1-aes-eax, ecies-p256-hkdf-sha256-aes256gcm)")]
    UnknownScheme(String),
    /// The job names a scheme that does not fit the device's key.
    #[error(
        "encryption scheme {scheme} does not fit the device's {key} key (that key opens {fits})"
    )]
    SchemeMismatch {
        /// The scheme asked for.
        scheme: Scheme,
        /// The key's type, "RSA 2048-bit" or "EC P-256".
        key: String,
        /// The scheme the key does fit.
        fits: Scheme,
    },
    /// Shorter than the fixed parts of the format.
    #[error(
        "the sealed file is truncated: {len} bytes, {scheme} needs at least {min} for this key"
    )]
    Truncated {
        /// The scheme the file was read as.
        scheme: Scheme,
        /// The file's length.
        len: usize,
        /// The length of the format's fixed parts.
        min: usize,
    },
    /// The EC format's header is not ours (another file, or sealed for an RSA key).
    #[error("not a file sealed with {0}: the header is wrong")]
    BadHeader(Scheme),
    /// The EC format's header names a version this build does not read.
    #[error("the sealed file is version {0} of ecies-p256-hkdf-sha256-aes256gcm; this build reads version 1")]
    UnsupportedVersion(u8),
    /// The RSA format's session key decrypted to a length other than 16 bytes.
    #[error("the session key is {0} bytes; rsa-oaep-sha1-aes-eax carries a 16-byte AES-128 key")]
    SessionKeyLength(usize),
    /// Tampered with, truncated inside, or sealed for another key: the
    /// checks do not say which, on purpose.
    #[error("authentication failed: the file was altered or was not sealed for this key")]
    AuthenticationFailed,
    /// The public key cannot take the RSA format's session key (a modulus under 42 bytes).
    #[error("the RSA key is too small for OAEP with SHA-1 and a 16-byte session key")]
    KeyTooSmall,
    /// The operating system's random source failed.
    #[error("the system random number generator failed")]
    Random,
}
