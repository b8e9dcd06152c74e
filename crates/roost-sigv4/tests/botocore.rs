//! Known-answer tests against requests signed by real botocore 1.44.8.
//!
//! `botocore_vectors.json` is produced by `gen_botocore_vectors.py` (see
//! there); this test only reads it. Each vector is a request as a server
//! receives it, the secret and the signing time. We check that:
//!
//! * it verifies (`verify` / `verify_presigned` / `verify_any`);
//! * our canonical request is byte-for-byte botocore's;
//! * our `sign` / `presign` produce botocore's exact signature where they sign
//!   the same header set;
//! * changing any signed part (method, path, query, body, a signed header,
//!   the secret, the signature) makes it fail, while changing unsigned
//!   headers does not;
//! * the clock window and scope checks hold on real requests.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use roost_sigv4::{
    canonical, presign, sign, verify, verify_any, verify_presigned, Request, SigV4Error,
    SigningParams, UriEncoding, Verified, VerifyOptions, UNSIGNED_PAYLOAD,
};
use serde_json::Value;

const VECTORS: &str = include_str!("botocore_vectors.json");

struct Vector {
    name: String,
    presigned: bool,
    encoding: UriEncoding,
    method: String,
    raw_path: String,
    raw_query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    access_key_id: String,
    secret: String,
    region: String,
    service: String,
    amz_date: String,
    epoch: u64,
    signed_headers: Vec<String>,
    canonical_request: String,
    authorization: Option<String>,
    query_before_signing: Option<String>,
    expires: Option<u64>,
    same_headers: bool,
}

fn s(v: &Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} missing"))
        .to_owned()
}

fn load() -> Vec<Vector> {
    let doc: Value = serde_json::from_str(VECTORS).expect("vectors are JSON");
    assert!(doc["generator"]
        .as_str()
        .unwrap()
        .contains("botocore 1.44.8"));
    doc["vectors"]
        .as_array()
        .expect("vectors array")
        .iter()
        .map(|v| Vector {
            name: s(v, "name"),
            presigned: s(v, "kind") == "presigned",
            encoding: match s(v, "uri_encoding").as_str() {
                "double" => UriEncoding::Double,
                "single" => UriEncoding::Single,
                other => panic!("encoding {other}"),
            },
            method: s(v, "method"),
            raw_path: s(v, "raw_path"),
            raw_query: s(v, "raw_query"),
            headers: v["headers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| {
                    (
                        h[0].as_str().unwrap().to_owned(),
                        h[1].as_str().unwrap().to_owned(),
                    )
                })
                .collect(),
            body: hex::decode(s(v, "body_hex")).unwrap(),
            access_key_id: s(v, "access_key_id"),
            secret: s(v, "secret_access_key"),
            region: s(v, "region"),
            service: s(v, "service"),
            amz_date: s(v, "amz_date"),
            epoch: v["epoch_seconds"].as_u64().unwrap(),
            signed_headers: s(v, "signed_headers")
                .split(';')
                .map(str::to_owned)
                .collect(),
            canonical_request: s(v, "canonical_request"),
            authorization: v["authorization"].as_str().map(str::to_owned),
            query_before_signing: v["query_before_signing"].as_str().map(str::to_owned),
            expires: v["expires"].as_u64(),
            same_headers: v["roost_signs_same_headers"].as_bool().unwrap(),
        })
        .collect()
}

/// A request with its owned parts, so tests can mutate one and borrow it.
#[derive(Clone)]
struct Owned {
    method: String,
    raw_path: String,
    raw_query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    secret: String,
    now: SystemTime,
}

impl Owned {
    fn of(v: &Vector) -> Owned {
        Owned {
            method: v.method.clone(),
            raw_path: v.raw_path.clone(),
            raw_query: v.raw_query.clone(),
            headers: v.headers.clone(),
            body: v.body.clone(),
            secret: v.secret.clone(),
            now: at(v.epoch),
        }
    }

    fn check(&self, v: &Vector) -> Result<Verified, SigV4Error> {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let req = Request {
            method: &self.method,
            raw_path: &self.raw_path,
            raw_query: &self.raw_query,
            headers: &headers,
            body: &self.body,
        };
        let services = [v.service.as_str()];
        let opts = VerifyOptions {
            uri_encoding: v.encoding,
            ..VerifyOptions::new(&services, self.now)
        };
        let mut keys = HashMap::new();
        keys.insert(v.access_key_id.clone(), self.secret.clone());
        let result = if v.presigned {
            verify_presigned(&req, &opts, &keys)
        } else {
            verify(&req, &opts, &keys)
        };
        // Whatever the specific entry point says, the dispatcher must agree.
        assert_eq!(verify_any(&req, &opts, &keys), result, "{}", v.name);
        result
    }
}

fn at(epoch: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(epoch)
}

/// Replaces the ASCII alphanumeric at byte `i` with a different one of the
/// same kind and case, so the change can never be undone by case-insensitive
/// hex or by whitespace folding.
fn shift(c: u8) -> u8 {
    match c {
        b'9' => b'0',
        b'z' => b'a',
        b'Z' => b'A',
        c => c + 1,
    }
}

fn alnum_positions(s: &str) -> Vec<usize> {
    s.bytes()
        .enumerate()
        .filter(|(_, b)| b.is_ascii_alphanumeric())
        .map(|(i, _)| i)
        .collect()
}

fn mutate_at(s: &str, i: usize) -> String {
    let mut b = s.as_bytes().to_vec();
    b[i] = shift(b[i]);
    String::from_utf8(b).unwrap()
}

#[test]
fn there_are_enough_vectors_of_each_kind() {
    let vectors = load();
    assert!(vectors.len() >= 30, "{} vectors", vectors.len());
    let count = |f: &dyn Fn(&Vector) -> bool| vectors.iter().filter(|v| f(v)).count();
    assert!(count(&|v| !v.presigned) >= 25);
    assert!(count(&|v| v.presigned && v.encoding == UriEncoding::Single) >= 3);
    assert!(count(&|v| v.presigned && v.encoding == UriEncoding::Double) >= 2);
    for service in ["iot", "iotdata", "iot-jobs-data", "s3"] {
        assert!(count(&|v| v.service == service) >= 2, "{service}");
    }
}

#[test]
fn every_botocore_vector_verifies() {
    for v in load() {
        let verified = Owned::of(&v)
            .check(&v)
            .unwrap_or_else(|e| panic!("{}: {e:?}", v.name));
        assert_eq!(
            verified,
            Verified {
                access_key_id: v.access_key_id.clone(),
                region: v.region.clone(),
                service: v.service.clone(),
            },
            "{}",
            v.name
        );
    }
}

#[test]
fn canonical_requests_are_botocores() {
    for v in load() {
        let headers: Vec<(&str, &str)> = v
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        // A presigned URL's signature is not part of what it signs.
        let query: String = v
            .raw_query
            .split('&')
            .filter(|p| !p.starts_with("X-Amz-Signature="))
            .collect::<Vec<_>>()
            .join("&");
        let req = Request {
            method: &v.method,
            raw_path: &v.raw_path,
            raw_query: &query,
            headers: &headers,
            body: &v.body,
        };
        let payload = if v.presigned && v.encoding == UriEncoding::Single {
            UNSIGNED_PAYLOAD.to_owned()
        } else {
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&v.body))
        };
        let signed: Vec<&str> = v.signed_headers.iter().map(String::as_str).collect();
        assert_eq!(
            canonical::canonical_request(&req, &signed, &payload, v.encoding),
            v.canonical_request,
            "{}",
            v.name
        );
    }
}

#[test]
fn sign_reproduces_botocore_authorization() {
    let mut compared = 0;
    for v in load()
        .into_iter()
        .filter(|v| !v.presigned && v.same_headers)
    {
        let headers: Vec<(&str, &str)> = v
            .headers
            .iter()
            .filter(|(n, _)| {
                !n.eq_ignore_ascii_case("authorization") && !n.eq_ignore_ascii_case("x-amz-date")
            })
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let req = Request {
            method: &v.method,
            raw_path: &v.raw_path,
            raw_query: &v.raw_query,
            headers: &headers,
            body: &v.body,
        };
        let added = sign(
            &req,
            &SigningParams {
                access_key_id: &v.access_key_id,
                secret_access_key: &v.secret,
                region: &v.region,
                service: &v.service,
                time: at(v.epoch),
            },
        );
        assert_eq!(
            added,
            vec![
                ("authorization".to_owned(), v.authorization.clone().unwrap()),
                ("x-amz-date".to_owned(), v.amz_date.clone()),
            ],
            "{}",
            v.name
        );
        compared += 1;
    }
    assert!(compared >= 25, "only {compared} compared");
}

#[test]
fn presign_reproduces_botocore_urls() {
    let mut compared = 0;
    for v in load().into_iter().filter(|v| v.presigned && v.same_headers) {
        let host = &v.headers.iter().find(|(n, _)| n == "host").unwrap().1;
        let query = presign(
            &v.method,
            &v.raw_path,
            v.query_before_signing.as_deref().unwrap(),
            host,
            &SigningParams {
                access_key_id: &v.access_key_id,
                secret_access_key: &v.secret,
                region: &v.region,
                service: &v.service,
                time: at(v.epoch),
            },
            Duration::from_secs(v.expires.unwrap()),
            v.encoding,
        );
        assert_eq!(query, v.raw_query, "{}", v.name);
        compared += 1;
    }
    assert!(compared >= 4, "only {compared} compared");
}

fn assert_rejected(v: &Vector, o: &Owned, what: &str) {
    assert!(
        o.check(v).is_err(),
        "{}: accepted after changing {what}",
        v.name
    );
}

#[test]
fn changing_any_signed_part_fails() {
    for v in load() {
        let base = Owned::of(&v);

        let mut o = base.clone();
        o.method = if v.method == "GET" { "HEAD" } else { "GET" }.to_owned();
        assert_rejected(&v, &o, "the method");

        for i in alnum_positions(&v.raw_path) {
            let mut o = base.clone();
            o.raw_path = mutate_at(&v.raw_path, i);
            assert_rejected(&v, &o, &format!("path byte {i} ({})", o.raw_path));
        }
        let mut o = base.clone();
        o.raw_path.push('x');
        assert_rejected(&v, &o, "the path (appended)");

        for i in alnum_positions(&v.raw_query) {
            let mut o = base.clone();
            o.raw_query = mutate_at(&v.raw_query, i);
            assert_rejected(&v, &o, &format!("query byte {i} ({})", o.raw_query));
        }
        let mut o = base.clone();
        o.raw_query = if o.raw_query.is_empty() {
            "x=1".into()
        } else {
            format!("{}&x=1", o.raw_query)
        };
        assert_rejected(&v, &o, "the query (added parameter)");

        // S3 presigned URLs sign UNSIGNED-PAYLOAD: the body is theirs to choose.
        let body_signed = !(v.presigned && v.encoding == UriEncoding::Single);
        for flip in [0usize, usize::MAX] {
            let mut o = base.clone();
            if o.body.is_empty() {
                o.body.push(b'x');
            } else {
                let i = flip.min(o.body.len() - 1);
                o.body[i] ^= 0x01;
            }
            if body_signed {
                assert_rejected(&v, &o, "the body");
            } else {
                assert!(
                    o.check(&v).is_ok(),
                    "{}: UNSIGNED-PAYLOAD covers no body",
                    v.name
                );
            }
        }

        for name in &v.signed_headers {
            let idx = v
                .headers
                .iter()
                .position(|(n, _)| n.eq_ignore_ascii_case(name))
                .unwrap_or_else(|| panic!("{}: signed header {name} not sent", v.name));
            let value = &v.headers[idx].1;
            let i = *alnum_positions(value)
                .first()
                .expect("an alphanumeric to change");
            let mut o = base.clone();
            o.headers[idx].1 = mutate_at(value, i);
            assert_rejected(&v, &o, &format!("signed header {name}"));

            let mut o = base.clone();
            o.headers.remove(idx);
            assert_rejected(&v, &o, &format!("signed header {name} (removed)"));
        }

        let mut o = base.clone();
        o.secret = mutate_at(&v.secret, 0);
        assert!(
            matches!(o.check(&v), Err(SigV4Error::SignatureMismatch)),
            "{}: wrong secret",
            v.name
        );

        if let Some(auth) = &v.authorization {
            let idx = v
                .headers
                .iter()
                .position(|(n, _)| n == "Authorization")
                .unwrap();
            let sig_start = auth.rfind('=').unwrap() + 1;
            for i in [sig_start, auth.len() - 1] {
                let mut o = base.clone();
                o.headers[idx].1 = mutate_at(auth, i);
                assert!(
                    matches!(o.check(&v), Err(SigV4Error::SignatureMismatch)),
                    "{}: signature byte {i}",
                    v.name
                );
            }
        }
    }
}

#[test]
fn unsigned_headers_may_change() {
    for v in load() {
        let base = Owned::of(&v);
        let signed = |n: &str| {
            v.signed_headers.iter().any(|s| s.eq_ignore_ascii_case(n))
                || n.eq_ignore_ascii_case("authorization")
                || n.eq_ignore_ascii_case("x-amz-date")
        };
        let mut o = base.clone();
        for (name, value) in o.headers.iter_mut() {
            if !signed(name) {
                value.push_str(" changed");
            }
        }
        o.headers
            .push(("X-Forwarded-For".into(), "10.0.0.1".into()));
        o.headers
            .push(("x-amzn-trace-id".into(), "Root=1-abc".into()));
        assert!(o.check(&v).is_ok(), "{}", v.name);

        // ... but an unsigned x-amz header is refused, not ignored.
        let mut o = base.clone();
        o.headers.push((
            "x-amzn-principal".into(),
            "arn:aws:iot:eu-west-1:1:cert/evil".into(),
        ));
        if !v.signed_headers.iter().any(|s| s == "x-amzn-principal") {
            assert!(
                matches!(o.check(&v), Err(SigV4Error::Incomplete(_))),
                "{}: unsigned x-amzn-principal",
                v.name
            );
        }
    }
}

#[test]
fn clock_window_on_real_requests() {
    let skew = 15 * 60;
    for v in load() {
        let mut o = Owned::of(&v);
        let last_valid = v.epoch + v.expires.unwrap_or(skew);
        for ok in [v.epoch - skew, v.epoch + 1, last_valid] {
            o.now = at(ok);
            assert!(o.check(&v).is_ok(), "{} at {ok}", v.name);
        }
        // Signed more than the skew in our future.
        o.now = at(v.epoch - skew - 1);
        assert!(
            matches!(o.check(&v), Err(SigV4Error::SignatureNotYetCurrent { .. })),
            "{}",
            v.name
        );
        if let Some(expires) = v.expires {
            o.now = at(v.epoch + expires);
            assert!(o.check(&v).is_ok(), "{}: last valid second", v.name);
            o.now = at(v.epoch + expires + 1);
            assert_eq!(
                o.check(&v),
                Err(SigV4Error::PresignedUrlExpired),
                "{}",
                v.name
            );
        } else {
            o.now = at(v.epoch + skew + 1);
            let err = o.check(&v).unwrap_err();
            assert!(
                matches!(err, SigV4Error::SignatureExpired { .. }),
                "{}",
                v.name
            );
            assert!(
                err.to_string().starts_with(&format!(
                    "Signature expired: {} is now earlier than",
                    v.amz_date
                )),
                "{err}"
            );
        }
    }
}

#[test]
fn scope_is_enforced_on_real_requests() {
    for v in load() {
        let o = Owned::of(&v);
        let headers: Vec<(&str, &str)> = o
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let req = Request {
            method: &o.method,
            raw_path: &o.raw_path,
            raw_query: &o.raw_query,
            headers: &headers,
            body: &o.body,
        };
        let mut keys = HashMap::new();
        keys.insert(v.access_key_id.clone(), v.secret.clone());
        let check = |services: &[&str], keys: &HashMap<String, String>| {
            let opts = VerifyOptions {
                uri_encoding: v.encoding,
                ..VerifyOptions::new(services, o.now)
            };
            verify_any(&req, &opts, keys)
        };
        // Another service's endpoint refuses it, naming the service it wants.
        assert_eq!(
            check(&["not-this-one"], &keys),
            Err(SigV4Error::WrongService {
                expected: "not-this-one".into()
            }),
            "{}",
            v.name
        );
        // Any of several accepted names is fine.
        assert!(check(&["other", &v.service], &keys).is_ok(), "{}", v.name);
        // An unknown key is UnrecognizedClient, before any signature math.
        assert_eq!(
            check(&[&v.service], &HashMap::new()),
            Err(SigV4Error::UnrecognizedClient)
        );
    }
}
