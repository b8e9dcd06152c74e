//! Properties over arbitrary requests:
//!
//! * whatever `sign` / `presign` produce, `verify` / `verify_presigned` accept;
//! * any single change to a signed component is refused;
//! * no input, however malformed, makes verification panic.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use proptest::prelude::*;
use proptest::sample::Index;
use roost_sigv4::{
    canonical, presign, sign_with_encoding, verify, verify_any, verify_presigned, Request,
    SigningParams, UriEncoding, Verified, VerifyOptions,
};

const KEY_ID: &str = "AKIDPROP";
const SECRET: &str = "prop/secret+KEY";
const T0: u64 = 1_796_035_347;

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

fn keys(secret: &str) -> HashMap<String, String> {
    HashMap::from([(KEY_ID.to_owned(), secret.to_owned())])
}

fn params(time: u64) -> SigningParams<'static> {
    SigningParams {
        access_key_id: KEY_ID,
        secret_access_key: SECRET,
        region: "eu-west-1",
        service: "iot",
        time: at(time),
    }
}

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("GET".to_owned()),
        Just("POST".to_owned()),
        Just("PUT".to_owned()),
        Just("DELETE".to_owned()),
        "[A-Za-z]{1,10}",
    ]
}

/// Paths without `.`/`..`/empty segments: those are normalised away for
/// non-S3 services (as botocore does), so a change inside them is no change.
fn path() -> impl Strategy<Value = String> {
    (
        prop::collection::vec("[A-Za-z0-9$~+%:@!*'(),;=ü☃ _-]{1,10}", 0..5),
        any::<bool>(),
    )
        .prop_map(|(segments, trailing)| {
            let mut p = format!("/{}", segments.join("/"));
            if trailing && !segments.is_empty() {
                p.push('/');
            }
            p
        })
}

fn query() -> impl Strategy<Value = String> {
    "[A-Za-z0-9%+=&;:/ü ~._-]{0,40}"
}

fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("Content-Type".to_owned()),
        Just("accept".to_owned()),
        Just("User-Agent".to_owned()),
        Just("x-amzn-principal".to_owned()),
        Just("x-amzn-trace-id".to_owned()),
        "X-Amz-Meta-[A-Za-z0-9]{1,6}",
        "x-amz-mqtt5-[a-z]{1,6}",
        "x-[a-z]{1,6}",
    ]
}

fn headers() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec((header_name(), "[ \t]{0,2}\\PC{0,20}[ \t]{0,2}"), 0..6)
}

fn encoding() -> impl Strategy<Value = UriEncoding> {
    prop_oneof![Just(UriEncoding::Double), Just(UriEncoding::Single)]
}

#[derive(Debug, Clone)]
struct Msg {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Msg {
    fn with<R>(&self, f: impl FnOnce(&Request<'_>) -> R) -> R {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        f(&Request {
            method: &self.method,
            raw_path: &self.path,
            raw_query: &self.query,
            headers: &headers,
            body: &self.body,
        })
    }

    fn verify(
        &self,
        encoding: UriEncoding,
        secret: &str,
    ) -> Result<Verified, roost_sigv4::SigV4Error> {
        let opts = VerifyOptions {
            uri_encoding: encoding,
            ..VerifyOptions::new(&["iot"], at(T0))
        };
        self.with(|r| verify(r, &opts, &keys(secret)))
    }

    fn verify_presigned(
        &self,
        encoding: UriEncoding,
        secret: &str,
    ) -> Result<Verified, roost_sigv4::SigV4Error> {
        let opts = VerifyOptions {
            uri_encoding: encoding,
            ..VerifyOptions::new(&["iot"], at(T0))
        };
        self.with(|r| verify_presigned(r, &opts, &keys(secret)))
    }
}

fn signed_msg() -> impl Strategy<Value = (Msg, UriEncoding)> {
    (
        method(),
        path(),
        query(),
        headers(),
        prop::collection::vec(any::<u8>(), 0..64),
        encoding(),
    )
        .prop_map(|(method, path, query, mut headers, body, encoding)| {
            headers.insert(0, ("Host".to_owned(), "roost.local:8443".to_owned()));
            let mut m = Msg {
                method,
                path,
                query,
                headers,
                body,
            };
            let added = m.with(|r| sign_with_encoding(r, &params(T0), encoding));
            m.headers.extend(added);
            (m, encoding)
        })
}

fn shift(c: u8) -> u8 {
    match c {
        b'9' => b'0',
        b'z' => b'a',
        b'Z' => b'A',
        b'f' => b'a',
        c => c + 1,
    }
}

/// Changes one ASCII alphanumeric (chosen by `ix`) to another of its kind, or
/// appends `fallback` when there is none.
fn mutate(s: &str, ix: &Index, fallback: &str) -> String {
    let positions: Vec<usize> = s
        .bytes()
        .enumerate()
        .filter(|(_, b)| b.is_ascii_alphanumeric())
        .map(|(i, _)| i)
        .collect();
    if positions.is_empty() {
        return format!("{s}{fallback}");
    }
    let mut b = s.as_bytes().to_vec();
    let i = positions[ix.index(positions.len())];
    b[i] = shift(b[i]);
    String::from_utf8(b).expect("ASCII replaced by ASCII")
}

fn is_signed_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n == "host" || n == "content-type" || (n.starts_with("x-amz") && n != "x-amzn-trace-id")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn sign_then_verify_round_trips((m, encoding) in signed_msg()) {
        prop_assert_eq!(
            m.verify(encoding, SECRET),
            Ok(Verified { access_key_id: KEY_ID.into(), region: "eu-west-1".into(), service: "iot".into() })
        );
    }

    #[test]
    fn any_change_to_a_signed_part_is_refused(
        (m, encoding) in signed_msg(),
        kind in 0u8..10,
        ix in any::<Index>(),
    ) {
        let mut t = m.clone();
        let mut secret = SECRET.to_owned();
        match kind {
            0 => t.method = if m.method.eq_ignore_ascii_case("GET") { "POST".into() } else { "GET".into() },
            1 => t.path = mutate(&m.path, &ix, "x"),
            2 => t.query = mutate(&m.query, &ix, "&zz=1"),
            3 => {
                let signed: Vec<usize> = m.headers.iter().enumerate()
                    .filter(|(_, (n, _))| is_signed_name(n))
                    .map(|(i, _)| i)
                    .collect();
                let i = signed[ix.index(signed.len())];
                t.headers[i].1.push('x');
            }
            4 => {
                if t.body.is_empty() {
                    t.body.push(0);
                } else {
                    let i = ix.index(t.body.len());
                    t.body[i] ^= 0x80;
                }
            }
            5 => {
                let i = t.headers.iter().position(|(n, _)| n == "x-amz-date").unwrap();
                let d = t.headers[i].1.clone();
                // The seconds' last digit: still a valid time, a different one.
                t.headers[i].1 = format!("{}{}Z", &d[..14], shift(d.as_bytes()[14]) as char);
            }
            6 => secret.push('x'),
            7 => {
                let i = t.headers.iter().position(|(n, _)| n == "authorization").unwrap();
                let a = t.headers[i].1.clone();
                let sig_at = a.len() - 64 + ix.index(64);
                let mut b = a.into_bytes();
                b[sig_at] = shift(b[sig_at]);
                t.headers[i].1 = String::from_utf8(b).unwrap();
            }
            8 => t.headers.push(("X-Amz-Injected".into(), "1".into())),
            _ => {
                let i = t.headers.iter().position(|(n, _)| n == "Host").unwrap();
                t.headers.remove(i);
            }
        }
        prop_assert!(t.verify(encoding, &secret).is_err(), "kind {} accepted: {:?}", kind, t);
    }

    #[test]
    fn presign_then_verify_round_trips_and_resists_changes(
        method in method(),
        path in path(),
        query in query(),
        expires in 1u64..=604_800,
        encoding in encoding(),
        kind in 0u8..5,
        ix in any::<Index>(),
    ) {
        prop_assume!(!canonical::canonical_query_string(&query).contains("X-Amz-"));
        let q = presign(&method, &path, &query, "roost.local", &params(T0), Duration::from_secs(expires), encoding);
        let m = Msg {
            method,
            path,
            query: q,
            headers: vec![("host".into(), "roost.local".into())],
            body: vec![],
        };
        prop_assert!(m.verify_presigned(encoding, SECRET).is_ok());
        let mut t = m.clone();
        let mut secret = SECRET.to_owned();
        match kind {
            0 => t.path = mutate(&m.path, &ix, "x"),
            1 => t.query = mutate(&m.query, &ix, "x"),
            2 => t.headers[0].1 = "evil.local".into(),
            3 => secret.push('x'),
            _ => t.method = if m.method.eq_ignore_ascii_case("GET") { "PUT".into() } else { "GET".into() },
        }
        prop_assert!(t.verify_presigned(encoding, &secret).is_err(), "kind {} accepted: {:?}", kind, t);
    }

    #[test]
    fn arbitrary_input_never_panics(
        method in ".{0,12}",
        path in ".{0,60}",
        query in ".{0,120}",
        headers in prop::collection::vec((
            prop_oneof![
                Just("authorization".to_owned()),
                Just("Authorization".to_owned()),
                Just("x-amz-date".to_owned()),
                Just("x-amz-content-sha256".to_owned()),
                Just("host".to_owned()),
                ".{0,20}",
            ],
            ".{0,200}",
        ), 0..8),
        body in prop::collection::vec(any::<u8>(), 0..32),
        services in prop::collection::vec(".{0,12}", 0..3),
        now in 0u64..(1 << 36),
        skew in any::<u64>(),
        encoding in encoding(),
    ) {
        exercise(&method, &path, &query, &headers, &body, &services, now, skew, encoding);
    }

    #[test]
    fn nearly_valid_authorization_never_panics(
        key_id in "[A-Z0-9/]{0,12}",
        date in "[0-9]{0,9}",
        region in "[a-z0-9/-]{0,12}",
        service in prop_oneof![Just("iot".to_owned()), ".{0,8}"],
        terminator in prop_oneof![Just("aws4_request".to_owned()), ".{0,14}"],
        signed in "[a-z;=, -]{0,30}",
        signature in "[0-9a-fA-Fz]{0,70}",
        separator in prop_oneof![Just(", ".to_owned()), Just(",".to_owned()), ".{0,3}"],
        amz_date in prop_oneof!["[0-9]{8}T[0-9]{6}Z", ".{0,18}"],
        content_sha in prop::option::of(prop_oneof![Just("UNSIGNED-PAYLOAD".to_owned()), "[0-9a-f]{64}", ".{0,70}"]),
        encoding in encoding(),
    ) {
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential={key_id}/{date}/{region}/{service}/{terminator}{separator}\
             SignedHeaders={signed}{separator}Signature={signature}"
        );
        let mut headers = vec![
            ("host".to_owned(), "h".to_owned()),
            ("authorization".to_owned(), auth),
            ("x-amz-date".to_owned(), amz_date.clone()),
        ];
        if let Some(c) = content_sha {
            headers.push(("x-amz-content-sha256".to_owned(), c));
        }
        exercise("GET", "/", "", &headers, b"", &["iot".to_owned()], T0, 900, encoding);

        let query = format!(
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={key_id}%2F{date}%2F{region}%2F{service}%2F{terminator}\
             &X-Amz-Date={amz_date}&X-Amz-Expires={signature}&X-Amz-SignedHeaders={signed}&X-Amz-Signature={signature}"
        );
        exercise("GET", "/", &query, &headers[..1], b"", &["iot".to_owned()], T0, 900, encoding);
    }
}

#[allow(clippy::too_many_arguments)]
fn exercise(
    method: &str,
    path: &str,
    query: &str,
    headers: &[(String, String)],
    body: &[u8],
    services: &[String],
    now: u64,
    skew: u64,
    encoding: UriEncoding,
) {
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let services: Vec<&str> = services.iter().map(String::as_str).collect();
    let req = Request {
        method,
        raw_path: path,
        raw_query: query,
        headers: &headers,
        body,
    };
    let opts = VerifyOptions {
        services: &services,
        now: at(now),
        max_clock_skew: Duration::from_secs(skew),
        uri_encoding: encoding,
    };
    // A lookup that knows every key, so the HMAC path is reached too.
    let lookup = |_: &str| Some(SECRET.to_owned());
    for result in [
        verify(&req, &opts, &lookup),
        verify_presigned(&req, &opts, &lookup),
        verify_any(&req, &opts, &lookup),
    ] {
        if let Err(e) = result {
            let _ = (e.aws_error_code(), e.http_status(), e.to_string());
        }
    }
    let _ = canonical::canonical_request(&req, &["host"], "x", encoding);
    let _ = sign_with_encoding(&req, &params(now), encoding);
    let _ = presign(
        method,
        path,
        query,
        "h",
        &params(now),
        Duration::from_secs(skew),
        encoding,
    );
}
