//! The HMAC chain: signing key derivation, string to sign, signature.
//!
//! Must never compare a signature except through `Mac::verify_slice`, which
//! is constant-time: a byte-by-byte `==` would let a client learn a valid
//! signature for a forged request one byte at a time from response timings.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::ALGORITHM;

type HmacSha256 = Hmac<Sha256>;

/// Lowercase hex SHA-256.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn mac(key: &[u8]) -> HmacSha256 {
    // HMAC is defined for keys of any length (long keys are hashed first),
    // so this constructor cannot fail.
    <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC accepts keys of any length")
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut m = mac(key);
    m.update(data);
    m.finalize().into_bytes().into()
}

/// `<yyyyMMdd>/<region>/<service>/aws4_request`.
pub(crate) fn scope(date: &str, region: &str, service: &str) -> String {
    format!("{date}/{region}/{service}/aws4_request")
}

/// `kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")`.
pub(crate) fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let mut k_secret = Vec::with_capacity(4 + secret.len());
    k_secret.extend_from_slice(b"AWS4");
    k_secret.extend_from_slice(secret.as_bytes());
    let k_date = hmac(&k_secret, date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

pub(crate) fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    )
}

/// The hex signature of `string_to_sign`.
pub(crate) fn signature_hex(key: &[u8; 32], string_to_sign: &str) -> String {
    hex::encode(hmac(key, string_to_sign.as_bytes()))
}

/// Whether `claimed_hex` is the signature of `string_to_sign`, compared in
/// constant time. Anything that is not 64 hex digits simply does not match.
pub(crate) fn signature_matches(key: &[u8; 32], string_to_sign: &str, claimed_hex: &str) -> bool {
    let Ok(claimed) = hex::decode(claimed_hex) else {
        return false;
    };
    let mut m = mac(key);
    m.update(string_to_sign.as_bytes());
    m.verify_slice(&claimed).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    // The worked example from AWS's SigV4 documentation (IAM ListUsers,
    // 2015-08-30, us-east-1), whose published signature is fixed.
    #[test]
    fn aws_documentation_example() {
        let canonical = "GET\n/\nAction=ListUsers&Version=2010-05-08\n\
                         content-type:application/x-www-form-urlencoded; charset=utf-8\n\
                         host:iam.amazonaws.com\nx-amz-date:20150830T123600Z\n\n\
                         content-type;host;x-amz-date\n\
                         e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(
            sha256_hex(canonical.as_bytes()),
            "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"
        );
        let sts = string_to_sign(
            "20150830T123600Z",
            &scope("20150830", "us-east-1", "iam"),
            canonical,
        );
        let key = signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20150830",
            "us-east-1",
            "iam",
        );
        assert_eq!(
            hex::encode(key),
            "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
        );
        let sig = signature_hex(&key, &sts);
        assert_eq!(
            sig,
            "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );
        assert!(signature_matches(&key, &sts, &sig));
        assert!(signature_matches(&key, &sts, &sig.to_uppercase()));
        assert!(!signature_matches(&key, &sts, &sig[..62]));
        assert!(!signature_matches(&key, &sts, ""));
        assert!(!signature_matches(&key, &sts, "zz"));
        let mut flipped = sig.clone().into_bytes();
        flipped[10] = if flipped[10] == b'0' { b'1' } else { b'0' };
        assert!(!signature_matches(
            &key,
            &sts,
            std::str::from_utf8(&flipped).unwrap()
        ));
    }
}
