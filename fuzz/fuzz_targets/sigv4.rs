//! Fuzzes SigV4 verification (`roost-sigv4`).
//!
//! The input is cut at 0xFF bytes into request parts. Two properties:
//! verification of whatever arrives never panics, and a request the crate
//! signed itself always verifies (and stops verifying once its body changes).
//!
//! Run with `cargo +nightly fuzz run sigv4` from `fuzz/`.
#![no_main]

use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use roost_sigv4::{
    presign, sign_with_encoding, verify, verify_any, verify_presigned, Request, SigningParams,
    UriEncoding, VerifyOptions,
};

const SECRET: &str = "fuzz/secret+KEY";
const T0: u64 = 1_796_035_347;

fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.split(|&b| b == 0xFF);
    let mut next = || String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let control = next();
    let method = next();
    let path = next();
    let query = next();
    let body = next().into_bytes();
    let mut header_strings = Vec::new();
    loop {
        let name = next();
        let value = next();
        if name.is_empty() && value.is_empty() {
            break;
        }
        header_strings.push((name, value));
        if header_strings.len() == 16 {
            break;
        }
    }
    let control = control.as_bytes();
    let encoding = if control.first().is_some_and(|b| b & 1 == 1) {
        UriEncoding::Single
    } else {
        UriEncoding::Double
    };
    let skew = Duration::from_secs(u64::from(control.get(1).copied().unwrap_or(15)) * 60);

    let services = ["iot", "iotdata"];
    let opts = VerifyOptions {
        services: &services,
        now: SystemTime::UNIX_EPOCH + Duration::from_secs(T0),
        max_clock_skew: skew,
        uri_encoding: encoding,
    };
    let lookup = |id: &str| (!id.is_empty()).then(|| SECRET.to_owned());

    // 1. Whatever arrives: no panic, and a well-formed error if refused.
    let headers: Vec<(&str, &str)> = header_strings
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let req = Request {
        method: &method,
        raw_path: &path,
        raw_query: &query,
        headers: &headers,
        body: &body,
    };
    for result in [
        verify(&req, &opts, &lookup),
        verify_presigned(&req, &opts, &lookup),
        verify_any(&req, &opts, &lookup),
    ] {
        if let Err(e) = result {
            assert_eq!(e.http_status(), 403);
            let _ = (e.aws_error_code(), e.to_string());
        }
    }

    // 2. What we sign ourselves verifies. Left out: what the signer replaces
    // or derives (authorization, x-amz-date, x-amz-content-sha256), and
    // x-amz* names it cannot list in SignedHeaders (not HTTP tokens), which
    // the verifier rightly refuses as unsigned. `host` is always present.
    let mut own: Vec<(&str, &str)> = headers
        .iter()
        .copied()
        .filter(|(n, _)| {
            let k = n
                .trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c'))
                .to_ascii_lowercase();
            (is_token(&k) || !k.starts_with("x-amz"))
                && !matches!(
                    k.as_str(),
                    "authorization" | "x-amz-date" | "x-amz-content-sha256"
                )
        })
        .collect();
    own.push(("host", "roost.local:8443"));
    let params = SigningParams {
        access_key_id: "AKIDFUZZ",
        secret_access_key: SECRET,
        region: "eu-west-1",
        service: "iot",
        time: opts.now,
    };
    let unsigned = Request {
        headers: &own,
        ..req
    };
    let added = sign_with_encoding(&unsigned, &params, encoding);
    let mut signed_headers = own.clone();
    signed_headers.extend(added.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    let signed = Request {
        headers: &signed_headers,
        ..req
    };
    assert!(verify(&signed, &opts, &lookup).is_ok());
    let mut other_body = body.clone();
    other_body.push(0);
    let tampered = Request {
        body: &other_body,
        ..signed
    };
    assert!(verify(&tampered, &opts, &lookup).is_err());

    // 3. Same for presigned URLs (queries that already carry auth
    // parameters would be rejected as duplicates, which is right).
    if !query.contains("X-Amz-") && !query.contains('%') {
        let q = presign(
            &method,
            &path,
            &query,
            "roost.local",
            &params,
            Duration::from_secs(60),
            encoding,
        );
        let host = [("host", "roost.local")];
        let presigned = Request {
            method: &method,
            raw_path: &path,
            raw_query: &q,
            headers: &host,
            body: b"",
        };
        assert!(verify_presigned(&presigned, &opts, &lookup).is_ok());
    }
});
