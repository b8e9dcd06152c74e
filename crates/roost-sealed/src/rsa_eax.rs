//! `rsa-oaep-sha1-aes-eax`: the scenario's PyCryptodome sample, byte for byte.
//!
//! ```text
//! RSA-OAEP(SHA-1, MGF1-SHA-1, no label) of a 16-byte session key   k bytes (the modulus's length)
//! AES-EAX nonce                                                     16 bytes
//! AES-EAX tag                                                       16 bytes
//! AES-128-EAX ciphertext (no associated data)                       the rest
//! ```
//!
//! The format carries no header: the reader knows the scheme from the job
//! document and the key, and the length of the first part from the key.

use crate::{Scheme, SealError};
use aes::Aes128;
use eax::aead::{AeadInOut, KeyInit};
use eax::aead::{Nonce, Tag};
use eax::Eax;
use rsa::traits::PublicKeyParts;
use rsa::Oaep;
use sha1::Sha1;
use zeroize::Zeroizing;

const SCHEME: Scheme = Scheme::RsaOaepSha1AesEax;
const SESSION_KEY_LEN: usize = 16;
const NONCE_LEN: usize = 16;
const TAG_LEN: usize = 16;
/// OAEP with SHA-1 takes at most k - 2·20 - 2 bytes of message.
const OAEP_SHA1_OVERHEAD: usize = 2 * 20 + 2;

type Cipher = Eax<Aes128>;

pub(crate) fn seal(key: &rsa::PublicKey, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
    if key.size() < OAEP_SHA1_OVERHEAD + SESSION_KEY_LEN {
        return Err(SealError::KeyTooSmall);
    }
    let mut session_key = Zeroizing::new([0u8; SESSION_KEY_LEN]);
    let mut nonce = Nonce::<Cipher>::default();
    getrandom::fill(session_key.as_mut()).map_err(|_| SealError::Random)?;
    getrandom::fill(&mut nonce).map_err(|_| SealError::Random)?;
    // The size was checked above: what is left to fail is the random source.
    let wrapped_key = key
        .encrypt(
            &mut getrandom::SysRng,
            Oaep::<Sha1>::new(),
            session_key.as_ref(),
        )
        .map_err(|_| SealError::Random)?;

    let mut sealed = Vec::with_capacity(wrapped_key.len() + NONCE_LEN + TAG_LEN + plaintext.len());
    sealed.extend_from_slice(&wrapped_key);
    sealed.extend_from_slice(&nonce);
    sealed.extend_from_slice(&[0u8; TAG_LEN]);
    sealed.extend_from_slice(plaintext);
    let body_at = wrapped_key.len() + NONCE_LEN + TAG_LEN;
    let cipher = Cipher::new_from_slice(session_key.as_ref()).map_err(|_| SealError::Random)?;
    let tag = cipher
        .encrypt_inout_detached(&nonce, &[], sealed[body_at..].as_mut().into())
        .map_err(|_| SealError::AuthenticationFailed)?;
    sealed[body_at - TAG_LEN..body_at].copy_from_slice(&tag);
    Ok(sealed)
}

pub(crate) fn open(key: &rsa::PrivateKey, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
    let k = key.size();
    let min = k + NONCE_LEN + TAG_LEN;
    if sealed.len() < min {
        return Err(SealError::Truncated {
            scheme: SCHEME,
            len: sealed.len(),
            min,
        });
    }
    let (wrapped_key, rest) = sealed.split_at(k);
    let (nonce, rest) = rest.split_at(NONCE_LEN);
    let (tag, ciphertext) = rest.split_at(TAG_LEN);

    // One answer for a bad OAEP block and a bad tag: which of the two failed
    // is exactly what a padding oracle would want to know.
    let session_key = key
        .decrypt(Oaep::<Sha1>::new(), wrapped_key)
        .map(Zeroizing::new)
        .map_err(|_| SealError::AuthenticationFailed)?;
    if session_key.len() != SESSION_KEY_LEN {
        return Err(SealError::SessionKeyLength(session_key.len()));
    }
    let cipher =
        Cipher::new_from_slice(&session_key).map_err(|_| SealError::AuthenticationFailed)?;
    let nonce = Nonce::<Cipher>::try_from(nonce).map_err(|_| SealError::AuthenticationFailed)?;
    let tag = Tag::<Cipher>::try_from(tag).map_err(|_| SealError::AuthenticationFailed)?;
    let mut plaintext = ciphertext.to_vec();
    cipher
        .decrypt_inout_detached(&nonce, &[], plaintext.as_mut_slice().into(), &tag)
        .map_err(|_| SealError::AuthenticationFailed)?;
    Ok(plaintext)
}
