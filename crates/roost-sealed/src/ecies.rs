//! `ecies-p256-hkdf-sha256-aes256gcm`, version 1: Roost's format for EC
//! P-256 keys.
//!
//! ```text
//! magic "RSLD"                                            4 bytes
//! version 0x01                                            1 byte
//! ephemeral public key, SEC1 uncompressed (0x04 ‖ X ‖ Y)  65 bytes
//! AES-GCM nonce                                           12 bytes
//! AES-256-GCM ciphertext ‖ 16-byte tag                    the rest (at least 16)
//! ```
//!
//! key = HKDF-SHA256(salt: none, ikm: the ECDH shared secret's X coordinate,
//!                   info: INFO ‖ ephemeral public key ‖ recipient public key
//!                   (both SEC1 uncompressed), length 32)
//!
//! The associated data is everything before the ciphertext (82 bytes), so
//! the header, the ephemeral key and the nonce are authenticated too. Binding
//! both public keys in the info makes the key depend on who the file was
//! sealed to, not only on the shared secret.

use crate::{Scheme, SealError};
use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use p256::ecdh::EphemeralSecret;
use p256::elliptic_curve::Generate;
use sha2::Sha256;
use zeroize::Zeroizing;

const SCHEME: Scheme = Scheme::EciesP256HkdfSha256Aes256Gcm;
pub(crate) const MAGIC: &[u8; 4] = b"RSLD";
pub(crate) const VERSION: u8 = 1;
const POINT_LEN: usize = 65;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = MAGIC.len() + 1;
/// Everything before the ciphertext: the associated data.
const PREFIX_LEN: usize = HEADER_LEN + POINT_LEN + NONCE_LEN;
const INFO: &[u8] = b"roost-sealed ecies-p256-hkdf-sha256-aes256gcm v1";

pub(crate) fn seal(recipient: &p256::PublicKey, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
    let ephemeral = EphemeralSecret::try_generate().map_err(|_| SealError::Random)?;
    let ephemeral_point = ephemeral.public_key().to_sec1_bytes();
    let mut nonce = Nonce::default();
    getrandom::fill(&mut nonce).map_err(|_| SealError::Random)?;
    let cipher = cipher(
        ephemeral.diffie_hellman(recipient).raw_secret_bytes(),
        &ephemeral_point,
        recipient,
    )?;

    let mut sealed = Vec::with_capacity(PREFIX_LEN + plaintext.len() + TAG_LEN);
    sealed.extend_from_slice(MAGIC);
    sealed.push(VERSION);
    sealed.extend_from_slice(&ephemeral_point);
    sealed.extend_from_slice(&nonce);
    sealed.extend_from_slice(plaintext);
    let (aad, body) = sealed.split_at_mut(PREFIX_LEN);
    let tag = cipher
        .encrypt_inout_detached(&nonce, aad, body.into())
        .map_err(|_| SealError::AuthenticationFailed)?;
    sealed.extend_from_slice(&tag);
    Ok(sealed)
}

pub(crate) fn open(key: &p256::SecretKey, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
    let min = PREFIX_LEN + TAG_LEN;
    if sealed.len() < HEADER_LEN || &sealed[..MAGIC.len()] != MAGIC {
        // Too short to hold the magic, or another format altogether (a file
        // sealed for an RSA key has no header).
        return Err(
            if sealed.len() < min && MAGIC.starts_with(&sealed[..sealed.len().min(4)]) {
                SealError::Truncated {
                    scheme: SCHEME,
                    len: sealed.len(),
                    min,
                }
            } else {
                SealError::BadHeader(SCHEME)
            },
        );
    }
    if sealed[MAGIC.len()] != VERSION {
        return Err(SealError::UnsupportedVersion(sealed[MAGIC.len()]));
    }
    if sealed.len() < min {
        return Err(SealError::Truncated {
            scheme: SCHEME,
            len: sealed.len(),
            min,
        });
    }
    let (aad, body) = sealed.split_at(PREFIX_LEN);
    let ephemeral_point = &aad[HEADER_LEN..HEADER_LEN + POINT_LEN];
    let nonce = &aad[HEADER_LEN + POINT_LEN..];
    // A point off the curve, or not in uncompressed form, cannot have been
    // written by `seal`: the file was altered.
    if ephemeral_point[0] != 0x04 {
        return Err(SealError::AuthenticationFailed);
    }
    let ephemeral = p256::PublicKey::from_sec1_bytes(ephemeral_point)
        .map_err(|_| SealError::AuthenticationFailed)?;
    let shared = p256::ecdh::diffie_hellman(key.to_nonzero_scalar(), ephemeral.as_affine());
    let cipher = cipher(
        shared.raw_secret_bytes(),
        ephemeral_point,
        &key.public_key(),
    )?;

    let (ciphertext, tag) = body.split_at(body.len() - TAG_LEN);
    let nonce = Nonce::try_from(nonce).map_err(|_| SealError::AuthenticationFailed)?;
    let tag = aes_gcm::Tag::try_from(tag).map_err(|_| SealError::AuthenticationFailed)?;
    let mut plaintext = ciphertext.to_vec();
    cipher
        .decrypt_inout_detached(&nonce, aad, plaintext.as_mut_slice().into(), &tag)
        .map_err(|_| SealError::AuthenticationFailed)?;
    Ok(plaintext)
}

/// AES-256-GCM keyed from the shared secret, bound to both public keys.
fn cipher(
    shared_x: &[u8],
    ephemeral_point: &[u8],
    recipient: &p256::PublicKey,
) -> Result<Aes256Gcm, SealError> {
    let recipient_point = recipient.to_sec1_bytes();
    let mut key = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(None, shared_x)
        .expand_multi_info(&[INFO, ephemeral_point, &recipient_point], key.as_mut())
        .map_err(|_| SealError::AuthenticationFailed)?;
    Aes256Gcm::new_from_slice(key.as_ref()).map_err(|_| SealError::AuthenticationFailed)
}
