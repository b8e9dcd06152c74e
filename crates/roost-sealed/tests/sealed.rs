//! Sealing and opening with keys as OpenSSL and PyCryptodome write them
//! (tests/fixtures/make.sh regenerates them).

use roost_sealed::{open, open_with_scheme, scheme_for, seal, Scheme, SealError};

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!("fixtures/", $name))
    };
}

const RSA_CERT: &str = fixture!("rsa2048.crt");
const RSA_PUB: &str = fixture!("rsa2048.pub");
const RSA_PKCS1_PUB: &str = fixture!("rsa2048-pkcs1.pub");
const RSA_PKCS1_KEY: &str = fixture!("rsa2048-pkcs1.key");
const RSA_PKCS8_KEY: &str = fixture!("rsa2048-pkcs8.key");
const RSA_OTHER_KEY: &str = fixture!("rsa2048-other-pkcs8.key");
const RSA3072_CERT: &str = fixture!("rsa3072.crt");
const RSA3072_KEY: &str = fixture!("rsa3072-pkcs8.key");
const P256_CERT: &str = fixture!("p256.crt");
const P256_PUB: &str = fixture!("p256.pub");
const P256_SEC1_KEY: &str = fixture!("p256-sec1.key");
const P256_PKCS8_KEY: &str = fixture!("p256-pkcs8.key");
const P256_OTHER_KEY: &str = fixture!("p256-other-pkcs8.key");
const P384_CERT: &str = fixture!("p384.crt");
const P384_KEY: &str = fixture!("p384-sec1.key");
const ED25519_KEY: &str = fixture!("ed25519.key");
const ENCRYPTED_KEY: &str = fixture!("p256-encrypted.key");
const PYCRYPTODOME_SEALED: &[u8] = include_bytes!("fixtures/rsa2048-pycryptodome.sealed");

const RSA: &str = "rsa-oaep-sha1-aes-eax";
const ECIES: &str = "ecies-p256-hkdf-sha256-aes256gcm";

/// A private key PEM as the device's agent would send it: the new pair's key.
fn secret() -> Vec<u8> {
    P256_PKCS8_KEY.as_bytes().to_vec()
}

#[test]
fn a_file_sealed_by_the_scenarios_pycryptodome_sample_opens() {
    let opened = open(RSA_PKCS1_KEY, PYCRYPTODOME_SEALED).unwrap();
    assert_eq!(opened, RSA_CERT.as_bytes());
    let opened = open_with_scheme(RSA, RSA_PKCS8_KEY, PYCRYPTODOME_SEALED).unwrap();
    assert_eq!(opened, RSA_CERT.as_bytes());
}

#[test]
fn rsa_round_trips_from_every_recipient_form_to_every_key_form() {
    for recipient in [RSA_CERT, RSA_PUB, RSA_PKCS1_PUB] {
        for plaintext in [Vec::new(), secret(), vec![0x5a; 100_000]] {
            let sealed = seal(recipient, &plaintext).unwrap();
            // The sample's layout: the wrapped key (the modulus's length),
            // nonce, tag, then exactly as many bytes as the plaintext.
            assert_eq!(sealed.len(), 256 + 16 + 16 + plaintext.len());
            assert_eq!(open(RSA_PKCS1_KEY, &sealed).unwrap(), plaintext);
            assert_eq!(open(RSA_PKCS8_KEY, &sealed).unwrap(), plaintext);
        }
    }
    let sealed = seal(RSA3072_CERT, &secret()).unwrap();
    assert_eq!(sealed.len(), 384 + 32 + secret().len());
    assert_eq!(open(RSA3072_KEY, &sealed).unwrap(), secret());
}

#[test]
fn p256_round_trips_from_every_recipient_form_to_every_key_form() {
    for recipient in [P256_CERT, P256_PUB] {
        for plaintext in [Vec::new(), secret(), vec![0xa5; 100_000]] {
            let sealed = seal(recipient, &plaintext).unwrap();
            assert_eq!(&sealed[..5], b"RSLD\x01");
            assert_eq!(sealed[5], 0x04, "the ephemeral key is SEC1 uncompressed");
            assert_eq!(sealed.len(), 5 + 65 + 12 + plaintext.len() + 16);
            assert_eq!(open(P256_SEC1_KEY, &sealed).unwrap(), plaintext);
            assert_eq!(open(P256_PKCS8_KEY, &sealed).unwrap(), plaintext);
        }
    }
}

#[test]
fn each_seal_is_fresh() {
    for recipient in [RSA_CERT, P256_CERT] {
        let a = seal(recipient, &secret()).unwrap();
        let b = seal(recipient, &secret()).unwrap();
        assert_ne!(a, b);
    }
}

#[test]
fn the_scheme_follows_the_key_type_in_every_form() {
    for pem in [
        RSA_CERT,
        RSA_PUB,
        RSA_PKCS1_PUB,
        RSA_PKCS1_KEY,
        RSA_PKCS8_KEY,
    ] {
        assert_eq!(scheme_for(pem).unwrap(), Scheme::RsaOaepSha1AesEax);
    }
    for pem in [P256_CERT, P256_PUB, P256_SEC1_KEY, P256_PKCS8_KEY] {
        assert_eq!(
            scheme_for(pem).unwrap(),
            Scheme::EciesP256HkdfSha256Aes256Gcm
        );
    }
    assert_eq!(Scheme::RsaOaepSha1AesEax.name(), RSA);
    assert_eq!(Scheme::EciesP256HkdfSha256Aes256Gcm.name(), ECIES);
    for scheme in Scheme::ALL {
        assert_eq!(scheme.name().parse::<Scheme>().unwrap(), scheme);
    }
}

#[test]
fn unsupported_keys_are_named() {
    for pem in [P384_CERT, P384_KEY] {
        assert_eq!(
            scheme_for(pem).unwrap_err(),
            SealError::UnsupportedKey("EC P-384".into())
        );
    }
    assert_eq!(
        seal(P384_CERT, b"x").unwrap_err(),
        SealError::UnsupportedKey("EC P-384".into())
    );
    assert_eq!(
        open(P384_KEY, b"x").unwrap_err(),
        SealError::UnsupportedKey("EC P-384".into())
    );
    assert_eq!(
        open(ED25519_KEY, b"x").unwrap_err(),
        SealError::UnsupportedKey("Ed25519".into())
    );
    assert_eq!(
        open(ENCRYPTED_KEY, b"x").unwrap_err(),
        SealError::EncryptedKey
    );
    let message = open(P384_KEY, b"x").unwrap_err().to_string();
    assert!(
        message.contains("EC P-384") && message.contains("P-256"),
        "{message}"
    );
}

#[test]
fn text_without_a_key_is_refused() {
    assert!(matches!(
        open("not a key", b"x").unwrap_err(),
        SealError::NoPem { .. }
    ));
    // A certificate is not a private key.
    assert!(matches!(
        open(RSA_CERT, b"x").unwrap_err(),
        SealError::NoPem { .. }
    ));
    // Nor is a private key a recipient.
    assert!(matches!(
        seal(RSA_PKCS1_KEY, b"x").unwrap_err(),
        SealError::NoPem { .. }
    ));
    let garbled = RSA_PKCS1_KEY.replace("MII", "MIA");
    assert!(matches!(
        open(&garbled, b"x").unwrap_err(),
        SealError::BadKey { .. }
    ));
    assert!(matches!(
        scheme_for("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").unwrap_err(),
        SealError::BadKey { .. }
    ));
}

#[test]
fn a_scheme_that_does_not_fit_the_key_is_refused() {
    let sealed = seal(RSA_CERT, &secret()).unwrap();
    let err = open_with_scheme(ECIES, RSA_PKCS1_KEY, &sealed).unwrap_err();
    assert_eq!(
        err,
        SealError::SchemeMismatch {
            scheme: Scheme::EciesP256HkdfSha256Aes256Gcm,
            key: "RSA 2048-bit".into(),
            fits: Scheme::RsaOaepSha1AesEax,
        }
    );
    assert!(err.to_string().contains("RSA 2048-bit"), "{err}");
    let sealed = seal(P256_CERT, &secret()).unwrap();
    assert!(matches!(
        open_with_scheme(RSA, P256_SEC1_KEY, &sealed).unwrap_err(),
        SealError::SchemeMismatch { .. }
    ));
    assert_eq!(
        open_with_scheme("aes-cbc", P256_SEC1_KEY, &sealed).unwrap_err(),
        SealError::UnknownScheme("aes-cbc".into())
    );
    assert_eq!(
        open_with_scheme(ECIES, P256_SEC1_KEY, &sealed).unwrap(),
        secret()
    );
}

#[test]
fn another_keys_file_is_refused() {
    let sealed = seal(RSA_CERT, &secret()).unwrap();
    assert_eq!(
        open(RSA_OTHER_KEY, &sealed).unwrap_err(),
        SealError::AuthenticationFailed
    );
    let sealed = seal(P256_CERT, &secret()).unwrap();
    assert_eq!(
        open(P256_OTHER_KEY, &sealed).unwrap_err(),
        SealError::AuthenticationFailed
    );
    // A file for an RSA key has no header for an EC key to read.
    let sealed = seal(RSA_CERT, &secret()).unwrap();
    assert_eq!(
        open(P256_SEC1_KEY, &sealed).unwrap_err(),
        SealError::BadHeader(Scheme::EciesP256HkdfSha256Aes256Gcm)
    );
}

#[test]
fn a_tampered_tag_is_refused() {
    let mut sealed = seal(RSA_CERT, &secret()).unwrap();
    sealed[256 + 16] ^= 0x01;
    assert_eq!(
        open(RSA_PKCS1_KEY, &sealed).unwrap_err(),
        SealError::AuthenticationFailed
    );
    let mut sealed = seal(P256_CERT, &secret()).unwrap();
    let last = sealed.len() - 1;
    sealed[last] ^= 0x80;
    assert_eq!(
        open(P256_SEC1_KEY, &sealed).unwrap_err(),
        SealError::AuthenticationFailed
    );
}

#[test]
fn truncated_files_are_refused_with_their_length() {
    let sealed = seal(RSA_CERT, b"").unwrap();
    assert_eq!(
        open(RSA_PKCS1_KEY, &sealed[..sealed.len() - 1]).unwrap_err(),
        SealError::Truncated {
            scheme: Scheme::RsaOaepSha1AesEax,
            len: 287,
            min: 288
        }
    );
    // Cut inside the ciphertext: the lengths still fit, the tag does not.
    let sealed = seal(RSA_CERT, &secret()).unwrap();
    assert_eq!(
        open(RSA_PKCS1_KEY, &sealed[..sealed.len() - 1]).unwrap_err(),
        SealError::AuthenticationFailed
    );
    let sealed = seal(P256_CERT, b"").unwrap();
    for len in [0, 3, 5, 97] {
        assert_eq!(
            open(P256_SEC1_KEY, &sealed[..len]).unwrap_err(),
            SealError::Truncated {
                scheme: Scheme::EciesP256HkdfSha256Aes256Gcm,
                len,
                min: 98
            }
        );
    }
}

#[test]
fn an_unknown_version_of_the_ec_format_is_named() {
    let mut sealed = seal(P256_CERT, &secret()).unwrap();
    sealed[4] = 2;
    assert_eq!(
        open(P256_SEC1_KEY, &sealed).unwrap_err(),
        SealError::UnsupportedVersion(2)
    );
}

#[test]
fn an_rsa_session_key_of_another_length_is_named() {
    use rsa::pkcs8::DecodePublicKey;
    // PyCryptodome would accept a 32-byte key (AES-256-EAX); the sample
    // always writes 16, and so does `seal`.
    let key = rsa::PublicKey::from_public_key_pem(RSA_PUB).unwrap();
    let wrapped = key
        .encrypt(
            &mut getrandom::SysRng,
            rsa::Oaep::<sha1::Sha1>::new(),
            &[7u8; 32],
        )
        .unwrap();
    let mut sealed = wrapped;
    sealed.extend_from_slice(&[0u8; 40]);
    assert_eq!(
        open(RSA_PKCS1_KEY, &sealed).unwrap_err(),
        SealError::SessionKeyLength(32)
    );
}

mod properties {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use proptest::prelude::*;
    use std::sync::OnceLock;

    fn sealed_rsa() -> &'static [u8] {
        static SEALED: OnceLock<Vec<u8>> = OnceLock::new();
        SEALED.get_or_init(|| seal(RSA_CERT, b"a short private key").unwrap())
    }

    fn sealed_p256() -> &'static [u8] {
        static SEALED: OnceLock<Vec<u8>> = OnceLock::new();
        SEALED.get_or_init(|| seal(P256_CERT, b"a short private key").unwrap())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn any_bytes_are_refused_without_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            prop_assert!(open(RSA_PKCS1_KEY, &bytes).is_err());
            prop_assert!(open(P256_SEC1_KEY, &bytes).is_err());
            // Past the EC header, into the point and the AEAD.
            let mut with_header = b"RSLD\x01\x04".to_vec();
            with_header.extend_from_slice(&bytes);
            prop_assert!(open(P256_SEC1_KEY, &with_header).is_err());
        }

        #[test]
        fn any_text_as_a_key_is_refused_without_a_panic(text in ".{0,200}") {
            let _ = open(&text, b"");
            let _ = seal(&text, b"");
            let _ = scheme_for(&text);
        }

        #[test]
        fn any_der_in_a_key_block_is_refused_without_a_panic(
            label in prop::sample::select(LABELS),
            der in proptest::collection::vec(any::<u8>(), 0..400),
        ) {
            let pem = format!(
                "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
                STANDARD.encode(&der)
            );
            prop_assert!(open(&pem, b"").is_err());
            prop_assert!(seal(&pem, b"").is_err());
            prop_assert!(scheme_for(&pem).is_err());
        }
    }

    const LABELS: &[&str] = &[
        "RSA PRIVATE KEY",
        "EC PRIVATE KEY",
        "PRIVATE KEY",
        "CERTIFICATE",
        "PUBLIC KEY",
        "RSA PUBLIC KEY",
    ];

    /// Every bit of a sealed file, not a sample: flipping any one is refused.
    fn every_single_bit_change_is_refused(sealed: &[u8], key: &str) {
        let mut altered = sealed.to_vec();
        for bit in 0..sealed.len() * 8 {
            altered[bit / 8] ^= 1 << (bit % 8);
            assert!(
                open(key, &altered).is_err(),
                "bit {bit} changed and the file opened"
            );
            altered[bit / 8] ^= 1 << (bit % 8);
        }
        assert_eq!(altered, sealed);
    }

    #[test]
    fn any_single_bit_change_is_refused_rsa() {
        every_single_bit_change_is_refused(sealed_rsa(), RSA_PKCS1_KEY);
    }

    #[test]
    fn any_single_bit_change_is_refused_ec() {
        every_single_bit_change_is_refused(sealed_p256(), P256_SEC1_KEY);
    }

    #[test]
    fn the_sealed_fixtures_open() {
        assert_eq!(
            open(RSA_PKCS1_KEY, sealed_rsa()).unwrap(),
            b"a short private key"
        );
        assert_eq!(
            open(P256_SEC1_KEY, sealed_p256()).unwrap(),
            b"a short private key"
        );
    }
}

#[test]
fn pem_written_on_windows_or_with_text_around_it_reads() {
    let sealed = seal(&RSA_CERT.replace('\n', "\r\n"), &secret()).unwrap();
    assert_eq!(
        open(&RSA_PKCS1_KEY.replace('\n', "\r\n"), &sealed).unwrap(),
        secret()
    );
    let sealed = seal(&P256_CERT.replace('\n', "\r\n"), &secret()).unwrap();
    let key = format!(
        "Bag Attributes\n    friendlyName: device\n{}",
        P256_SEC1_KEY.replace('\n', "\r\n")
    );
    assert_eq!(open(&key, &sealed).unwrap(), secret());
    // A certificate then its chain: the first one is the recipient.
    let chain = format!("{P256_CERT}{RSA_CERT}");
    assert_eq!(
        scheme_for(&chain).unwrap(),
        Scheme::EciesP256HkdfSha256Aes256Gcm
    );
}
