//! Arbitrary bytes as a sealed rotation file, opened with an RSA 2048 and an
//! EC P-256 device key: `open` must never panic, never open what it was
//! not given intact, and whatever is sealed must open to itself.
//!
//! Input: the first byte picks the key and whether the rest is opened as
//! it is or sealed and opened again.

#![no_main]

use libfuzzer_sys::fuzz_target;

const RSA_KEY: &str = include_str!("../../crates/roost-sealed/tests/fixtures/rsa2048-pkcs1.key");
const RSA_CERT: &str = include_str!("../../crates/roost-sealed/tests/fixtures/rsa2048.crt");
const P256_KEY: &str = include_str!("../../crates/roost-sealed/tests/fixtures/p256-sec1.key");
const P256_CERT: &str = include_str!("../../crates/roost-sealed/tests/fixtures/p256.crt");

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let (key, cert) = if which & 1 == 0 { (RSA_KEY, RSA_CERT) } else { (P256_KEY, P256_CERT) };
    if which & 2 == 0 {
        // Random bytes are never a valid sealed file: the tag would have to match.
        assert!(roost_sealed::open(key, rest).is_err());
    } else {
        let sealed = roost_sealed::seal(cert, rest).expect("a fixture certificate seals");
        assert_eq!(roost_sealed::open(key, &sealed).expect("what was sealed opens"), rest);
    }
});
