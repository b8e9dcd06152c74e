//! How verification answers malformed, stale, misdirected and tampered
//! requests, through the public API only.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use roost_sigv4::{
    claimed_access_key_id, presign, sign, sign_with_encoding, verify, verify_any, verify_presigned,
    Incomplete, Request, Requirement, SigV4Error, SigningParams, UriEncoding, Verified,
    VerifyOptions,
};

const KEY_ID: &str = "AKIDROOST";
const SECRET: &str = "roost/secret+key";
const HOST: &str = "127.0.0.1:18080";
/// 2026-11-30T10:42:27Z
const T0: u64 = 1_796_035_347;

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

fn keys() -> HashMap<String, String> {
    HashMap::from([(KEY_ID.to_owned(), SECRET.to_owned())])
}

fn params(service: &str) -> SigningParams<'_> {
    SigningParams {
        access_key_id: KEY_ID,
        secret_access_key: SECRET,
        region: "eu-west-1",
        service,
        time: at(T0),
    }
}

/// An owned request, so each test can break one part of it.
#[derive(Clone)]
struct Msg {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Msg {
    fn new(method: &str, path: &str, query: &str, body: &[u8]) -> Msg {
        Msg {
            method: method.into(),
            path: path.into(),
            query: query.into(),
            headers: vec![("Host".into(), HOST.into())],
            body: body.into(),
        }
    }

    fn header(mut self, name: &str, value: &str) -> Msg {
        self.headers.push((name.into(), value.into()));
        self
    }

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

    fn signed_as(mut self, service: &str, encoding: UriEncoding) -> Msg {
        let added = self.with(|r| sign_with_encoding(r, &params(service), encoding));
        self.headers.extend(added);
        self
    }

    fn signed(self, service: &str) -> Msg {
        self.signed_as(service, UriEncoding::Double)
    }

    fn set(mut self, name: &str, value: &str) -> Msg {
        for (n, v) in self.headers.iter_mut() {
            if n.eq_ignore_ascii_case(name) {
                *v = value.into();
            }
        }
        self
    }

    fn without(mut self, name: &str) -> Msg {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self
    }

    fn get(&self, name: &str) -> String {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .unwrap()
    }

    fn check_with(
        &self,
        services: &[&str],
        now: SystemTime,
        encoding: UriEncoding,
    ) -> Result<Verified, SigV4Error> {
        let opts = VerifyOptions {
            uri_encoding: encoding,
            ..VerifyOptions::new(services, now)
        };
        self.with(|r| verify(r, &opts, &keys()))
    }

    fn check(&self, service: &str) -> Result<Verified, SigV4Error> {
        self.check_with(&[service], at(T0), UriEncoding::Double)
    }

    fn check_presigned_at(
        &self,
        service: &str,
        now: u64,
        encoding: UriEncoding,
    ) -> Result<Verified, SigV4Error> {
        let services = [service];
        let opts = VerifyOptions {
            uri_encoding: encoding,
            ..VerifyOptions::new(&services, at(now))
        };
        self.with(|r| verify_presigned(r, &opts, &keys()))
    }
}

fn publish() -> Msg {
    Msg::new(
        "POST",
        "/topics/a%2Fb%20c",
        "qos=1&retain=true",
        b"{\"hello\":\"world\"}",
    )
}

fn incomplete(r: Result<Verified, SigV4Error>) -> Incomplete {
    match r {
        Err(SigV4Error::Incomplete(i)) => i,
        other => panic!("expected IncompleteSignature, got {other:?}"),
    }
}

#[test]
fn a_signed_request_verifies_and_names_its_signer() {
    assert_eq!(
        publish().signed("iotdata").check("iotdata"),
        Ok(Verified {
            access_key_id: KEY_ID.into(),
            region: "eu-west-1".into(),
            service: "iotdata".into(),
        })
    );
}

#[test]
fn the_signer_signs_what_the_verifier_requires() {
    let m = publish()
        .header("Content-Type", "application/json")
        .header("x-amzn-principal", "arn:aws:iot:eu-west-1:1:cert/abc")
        .header("X-Amz-Mqtt5-Correlation-Data", "YWJj")
        .header("User-Agent", "roost-cli/0.1")
        .header("x-amzn-trace-id", "Root=1")
        .signed("iot");
    let auth = m.get("authorization");
    assert!(
        auth.contains(
            "SignedHeaders=content-type;host;x-amz-date;x-amz-mqtt5-correlation-data;x-amzn-principal,"
        ),
        "{auth}"
    );
    assert_eq!(m.get("x-amz-date"), "20261130T104227Z");
    assert!(m.check("iot").is_ok());
}

#[test]
fn no_authentication_at_all() {
    let e = publish().check("iot").unwrap_err();
    assert_eq!(e, SigV4Error::MissingAuthenticationToken);
    assert_eq!(e.aws_error_code(), "MissingAuthenticationTokenException");
    assert_eq!(e.to_string(), "Missing Authentication Token");
    assert_eq!(e.http_status(), 403);
    let opts = VerifyOptions::new(&["iot"], at(T0));
    assert_eq!(
        publish().with(|r| verify_presigned(r, &opts, &keys())),
        Err(SigV4Error::MissingAuthenticationToken)
    );
    assert_eq!(
        publish().with(|r| verify_any(r, &opts, &keys())),
        Err(SigV4Error::MissingAuthenticationToken)
    );
}

#[test]
fn malformed_authorization_headers() {
    let m = publish().signed("iot");
    let auth = m.get("authorization");

    let e = m
        .clone()
        .set("authorization", "Bearer abc")
        .check("iot")
        .unwrap_err();
    assert_eq!(e.aws_error_code(), "IncompleteSignatureException");
    assert!(matches!(
        e,
        SigV4Error::Incomplete(Incomplete::UnsupportedAlgorithm(_))
    ));

    let only_sig = format!("AWS4-HMAC-SHA256 {}", auth.split(", ").last().unwrap());
    let e = m
        .clone()
        .set("authorization", &only_sig)
        .without("x-amz-date")
        .check("iot")
        .unwrap_err();
    assert_eq!(
        e,
        SigV4Error::Incomplete(Incomplete::Missing(vec![
            Requirement::Credential,
            Requirement::SignedHeaders,
            Requirement::Date,
        ]))
    );
    assert!(e
        .to_string()
        .contains("Authorization header requires 'Credential' parameter."));

    assert!(matches!(
        incomplete(m.clone().without("x-amz-date").check("iot")),
        Incomplete::Missing(v) if v == vec![Requirement::Date]
    ));
    assert!(matches!(
        incomplete(
            m.clone()
                .set("x-amz-date", "2026-11-30T10:42:27Z")
                .check("iot")
        ),
        Incomplete::MalformedDate(_)
    ));
    assert!(matches!(
        incomplete(
            m.clone()
                .set(
                    "authorization",
                    &auth.replace("aws4_request", "aws5_request")
                )
                .check("iot")
        ),
        Incomplete::BadTerminator(_)
    ));
    assert!(matches!(
        incomplete(
            m.clone()
                .set("authorization", &auth.replace("/eu-west-1/", "/"))
                .check("iot")
        ),
        Incomplete::MalformedCredential(_)
    ));
    assert_eq!(
        incomplete(
            m.clone()
                .set("authorization", &auth.replace("host;", ""))
                .check("iot")
        ),
        Incomplete::HostNotSigned
    );
    assert_eq!(
        incomplete(m.clone().header("Authorization", &auth).check("iot")),
        Incomplete::Duplicate("Authorization")
    );
    assert_eq!(
        incomplete(
            m.clone()
                .header("X-Amz-Date", "20261130T104227Z")
                .check("iot")
        ),
        Incomplete::Duplicate("X-Amz-Date")
    );
    assert!(matches!(
        incomplete(
            m.clone()
                .set("authorization", &auth.replace("Credential=", "Credential "))
                .check("iot")
        ),
        Incomplete::NotKeyValue(_)
    ));
}

#[test]
fn unknown_access_key() {
    let m = publish().signed("iot");
    let auth = m.get("authorization").replace(KEY_ID, "AKIDUNKNOWN");
    let e = m.set("authorization", &auth).check("iot").unwrap_err();
    assert_eq!(e, SigV4Error::UnrecognizedClient);
    assert_eq!(e.aws_error_code(), "UnrecognizedClientException");
    assert_eq!(
        e.to_string(),
        "The security token included in the request is invalid."
    );
}

#[test]
fn wrong_signature() {
    let m = publish().signed("iot");
    let auth = m.get("authorization");
    let tampered = format!("{}0", &auth[..auth.len() - 1]);
    let tampered = if tampered == auth {
        format!("{}1", &auth[..auth.len() - 1])
    } else {
        tampered
    };
    let e = m
        .clone()
        .set("authorization", &tampered)
        .check("iot")
        .unwrap_err();
    assert_eq!(e, SigV4Error::SignatureMismatch);
    assert_eq!(e.aws_error_code(), "InvalidSignatureException");
    assert!(e
        .to_string()
        .starts_with("The request signature we calculated does not match"));
    // Not hex, or the wrong length: simply does not match.
    for bogus in ["Signature=zz", "Signature=", "Signature=abcd"] {
        let bad = format!("{}{bogus}", &auth[..auth.find("Signature=").unwrap()]);
        assert_eq!(
            m.clone().set("authorization", &bad).check("iot"),
            Err(SigV4Error::SignatureMismatch)
        );
    }
}

#[test]
fn clock_skew_messages_like_aws() {
    let m = publish().signed("iot");
    let e = m
        .check_with(&["iot"], at(T0 + 15 * 60 + 1), UriEncoding::Double)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "Signature expired: 20261130T104227Z is now earlier than 20261130T104228Z (20261130T105728Z - 15 min.)"
    );
    assert_eq!(e.aws_error_code(), "InvalidSignatureException");
    let e = m
        .check_with(&["iot"], at(T0 - 15 * 60 - 1), UriEncoding::Double)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "Signature not yet current: 20261130T104227Z is still later than 20261130T104226Z (20261130T102726Z + 15 min.)"
    );
    assert!(m
        .check_with(&["iot"], at(T0 + 15 * 60), UriEncoding::Double)
        .is_ok());
    assert!(m
        .check_with(&["iot"], at(T0 - 15 * 60), UriEncoding::Double)
        .is_ok());

    // A tighter window is the caller's to choose.
    let opts = VerifyOptions {
        max_clock_skew: Duration::from_secs(30),
        ..VerifyOptions::new(&["iot"], at(T0 + 31))
    };
    let e = m.with(|r| verify(r, &opts, &keys())).unwrap_err();
    assert!(e.to_string().ends_with("(20261130T104258Z - 30 s.)"), "{e}");
}

#[test]
fn credential_scope_checks() {
    let e = publish().signed("iot").check("iotdata").unwrap_err();
    assert_eq!(
        e.to_string(),
        "Credential should be scoped to correct service: 'iotdata'."
    );
    assert_eq!(e.aws_error_code(), "InvalidSignatureException");

    let m = publish().signed("iot");
    let auth = m.get("authorization").replace("/20261130/", "/20261129/");
    let e = m.set("authorization", &auth).check("iot").unwrap_err();
    assert_eq!(
        e.to_string(),
        "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: \
         '20261129' != '20261130', from '20261130T104227Z'."
    );
    assert_eq!(e.aws_error_code(), "InvalidSignatureException");
}

#[test]
fn declared_payload_hash_is_checked_against_the_body() {
    let body = b"{\"hello\":\"world\"}";
    let good = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(body));
    let m = publish()
        .header("x-amz-content-sha256", &good)
        .signed("iotdata");
    assert!(m.get("authorization").contains("x-amz-content-sha256"));
    assert!(m.check("iotdata").is_ok());
    assert!(m
        .clone()
        .set("x-amz-content-sha256", &good.to_uppercase())
        .check("iotdata")
        .is_err());

    // The header was signed, so the attacker cannot change it; and the body
    // must match it, so they cannot change that either.
    let mut swapped = m.clone();
    swapped.body = b"{\"hello\":\"mallory\"}".to_vec();
    assert_eq!(
        swapped.check("iotdata"),
        Err(SigV4Error::ContentSha256Mismatch)
    );

    let bogus = publish()
        .header("x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
        .signed("iotdata");
    assert_eq!(
        bogus.check("iotdata"),
        Err(SigV4Error::ContentSha256Mismatch)
    );

    // UNSIGNED-PAYLOAD: S3-style only.
    let unsigned = publish().header("x-amz-content-sha256", "UNSIGNED-PAYLOAD");
    let e = unsigned
        .clone()
        .signed("iotdata")
        .check("iotdata")
        .unwrap_err();
    assert_eq!(e, SigV4Error::UnsignedPayloadNotAllowed);
    assert_eq!(e.aws_error_code(), "InvalidSignatureException");
    let s3 = unsigned.signed_as("s3", UriEncoding::Single);
    assert!(s3.check_with(&["s3"], at(T0), UriEncoding::Single).is_ok());
    let mut any_body = s3.clone();
    any_body.body = b"whatever".to_vec();
    assert!(any_body
        .check_with(&["s3"], at(T0), UriEncoding::Single)
        .is_ok());

    let twice = m.clone().header("X-Amz-Content-Sha256", &good);
    assert_eq!(
        incomplete(twice.check("iotdata")),
        Incomplete::Duplicate("x-amz-content-sha256")
    );
}

#[test]
fn unsigned_amz_headers_are_refused() {
    let m = publish()
        .signed("iot")
        .header("x-amzn-principal", "arn:aws:iot:eu-west-1:1:cert/evil");
    let e = m.check("iot").unwrap_err();
    assert_eq!(e.aws_error_code(), "IncompleteSignatureException");
    assert_eq!(
        e.to_string(),
        "There were headers present in the request which were not signed: x-amzn-principal"
    );
    // What proxies and CDNs add is tolerated.
    let ok = publish()
        .signed("iot")
        .header("X-Amzn-Trace-Id", "Root=1-5759e988")
        .header("X-Amz-Cf-Id", "abc==")
        .header("X-Forwarded-For", "10.1.2.3");
    assert!(ok.check("iot").is_ok());
}

#[test]
fn header_names_and_values_are_canonicalised_like_the_signer_did() {
    let m = publish().header("X-Amz-Meta-Note", "a  b").signed("iot");
    // A proxy that re-cases names or re-spaces values changes nothing signed.
    let respaced = m.clone().set("x-amz-meta-note", "  a b ");
    assert!(respaced.check("iot").is_ok());
    let mut recased = m.clone();
    for (n, _) in recased.headers.iter_mut() {
        *n = n.to_uppercase();
    }
    assert!(recased.check("iot").is_ok());
    // But changing a word does.
    assert!(m.set("x-amz-meta-note", "a c").check("iot").is_err());
}

#[test]
fn path_encoding_is_part_of_the_signature() {
    let m = Msg::new("PUT", "/things/t1/jobs/$next", "", b"{}").signed("iot-jobs-data");
    assert!(m.check("iot-jobs-data").is_ok());
    // `%24next` is another request as far as the signature is concerned.
    let mut encoded = m.clone();
    encoded.path = "/things/t1/jobs/%24next".into();
    assert_eq!(
        encoded.check("iot-jobs-data"),
        Err(SigV4Error::SignatureMismatch)
    );

    let m = publish().signed("iotdata");
    let mut decoded = m.clone();
    decoded.path = "/topics/a/b c".into();
    assert_eq!(decoded.check("iotdata"), Err(SigV4Error::SignatureMismatch));

    // And the wrong encoding mode is a mismatch, not a crash.
    assert_eq!(
        m.check_with(&["iotdata"], at(T0), UriEncoding::Single),
        Err(SigV4Error::SignatureMismatch)
    );
}

#[test]
fn query_order_and_plus_spaces() {
    let m = Msg::new("GET", "/things", "b=2&a=1&a=0&c=x%20y", b"").signed("iot");
    for reordered in [
        "a=0&c=x%20y&a=1&b=2",
        "c=x+y&b=2&a=0&a=1",
        "a=0&&a=1&b=2&c=x%20y&",
    ] {
        let mut r = m.clone();
        r.query = reordered.into();
        assert!(r.check("iot").is_ok(), "{reordered}");
    }
    let mut r = m.clone();
    r.query = "a=0&c=x%2By&a=1&b=2".into();
    assert!(r.check("iot").is_err());
}

fn presigned(service: &str, query: &str, expires: u64, encoding: UriEncoding) -> Msg {
    let q = presign(
        "GET",
        "/mqtt",
        query,
        HOST,
        &params(service),
        Duration::from_secs(expires),
        encoding,
    );
    Msg::new("GET", "/mqtt", &q, b"")
}

#[test]
fn presigned_urls_verify_until_they_expire() {
    let m = presigned("iotdevicegateway", "", 300, UriEncoding::Double);
    assert!(m
        .query
        .starts_with("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDROOST%2F20261130%2F"));
    for now in [T0 - 15 * 60, T0, T0 + 300] {
        assert!(
            m.check_presigned_at("iotdevicegateway", now, UriEncoding::Double)
                .is_ok(),
            "{now}"
        );
    }
    let e = m
        .check_presigned_at("iotdevicegateway", T0 + 301, UriEncoding::Double)
        .unwrap_err();
    assert_eq!(e, SigV4Error::PresignedUrlExpired);
    assert_eq!(e.aws_error_code(), "AccessDeniedException");
    assert_eq!(e.to_string(), "Request has expired");
    assert!(matches!(
        m.check_presigned_at("iotdevicegateway", T0 - 15 * 60 - 1, UriEncoding::Double),
        Err(SigV4Error::SignatureNotYetCurrent { .. })
    ));
    // Header verification does not look at query parameters.
    assert_eq!(
        m.check_with(&["iotdevicegateway"], at(T0), UriEncoding::Double),
        Err(SigV4Error::MissingAuthenticationToken)
    );
}

#[test]
fn presigned_url_parameters_are_checked() {
    let m = presigned("s3", "list-type=2&prefix=a%2Fb", 3600, UriEncoding::Single);
    assert!(m.check_presigned_at("s3", T0, UriEncoding::Single).is_ok());

    let drop = |name: &str| {
        let mut r = m.clone();
        r.query = r
            .query
            .split('&')
            .filter(|p| !p.starts_with(name))
            .collect::<Vec<_>>()
            .join("&");
        r
    };
    assert_eq!(
        incomplete(drop("X-Amz-Credential=").check_presigned_at("s3", T0, UriEncoding::Single)),
        Incomplete::MissingQueryParameters(vec!["X-Amz-Credential"])
    );
    assert_eq!(
        incomplete(drop("X-Amz-Signature=").check_presigned_at("s3", T0, UriEncoding::Single)),
        Incomplete::MissingQueryParameters(vec!["X-Amz-Signature"])
    );
    let mut twice = m.clone();
    twice.query.push_str("&X-Amz-Date=20261130T104227Z");
    assert_eq!(
        incomplete(twice.check_presigned_at("s3", T0, UriEncoding::Single)),
        Incomplete::Duplicate("X-Amz-Date")
    );
    let with_expires = |v: &str| {
        let mut r = m.clone();
        r.query = r
            .query
            .replace("X-Amz-Expires=3600", &format!("X-Amz-Expires={v}"));
        r.check_presigned_at("s3", T0, UriEncoding::Single)
    };
    assert_eq!(
        incomplete(with_expires("604801")),
        Incomplete::ExpiresTooLarge
    );
    assert_eq!(
        incomplete(with_expires("99999999999999999999999")),
        Incomplete::ExpiresTooLarge
    );
    assert!(matches!(
        incomplete(with_expires("-1")),
        Incomplete::MalformedExpires(_)
    ));
    assert!(matches!(
        incomplete(with_expires("")),
        Incomplete::MalformedExpires(_)
    ));
    assert_eq!(with_expires("3601"), Err(SigV4Error::SignatureMismatch));

    let mut other_alg = m.clone();
    other_alg.query = other_alg
        .query
        .replace("AWS4-HMAC-SHA256", "AWS4-ECDSA-P256-SHA256");
    assert!(matches!(
        incomplete(other_alg.check_presigned_at("s3", T0, UriEncoding::Single)),
        Incomplete::UnsupportedAlgorithm(_)
    ));
}

#[test]
fn presigned_urls_cover_the_body_except_for_s3() {
    let mut m = presigned("iotdevicegateway", "", 60, UriEncoding::Double);
    m.body = b"x".to_vec();
    assert_eq!(
        m.check_presigned_at("iotdevicegateway", T0, UriEncoding::Double),
        Err(SigV4Error::SignatureMismatch)
    );
    let mut m = presigned("s3", "", 60, UriEncoding::Single);
    m.body = b"x".to_vec();
    assert!(m.check_presigned_at("s3", T0, UriEncoding::Single).is_ok());
}

#[test]
fn presigned_session_tokens_signed_or_appended() {
    // S3 style: the token is among the signed parameters.
    let m = presigned(
        "s3",
        "X-Amz-Security-Token=tok%2Fen",
        60,
        UriEncoding::Single,
    );
    assert!(m.check_presigned_at("s3", T0, UriEncoding::Single).is_ok());
    // AWS IoT WebSocket style: appended after signing.
    let mut m = presigned("iotdevicegateway", "", 60, UriEncoding::Double);
    m.query.push_str("&X-Amz-Security-Token=tok%2Fen");
    assert!(m
        .check_presigned_at("iotdevicegateway", T0, UriEncoding::Double)
        .is_ok());
    // Appending anything else is tampering.
    let mut m = presigned("iotdevicegateway", "", 60, UriEncoding::Double);
    m.query.push_str("&x=1");
    assert_eq!(
        m.check_presigned_at("iotdevicegateway", T0, UriEncoding::Double),
        Err(SigV4Error::SignatureMismatch)
    );
}

#[test]
fn verify_any_dispatches_and_refuses_both_mechanisms() {
    let opts = VerifyOptions::new(&["iot"], at(T0));
    let header = publish().signed("iot");
    assert!(header.with(|r| verify_any(r, &opts, &keys())).is_ok());
    let query = presigned("iot", "", 60, UriEncoding::Double);
    assert!(query.with(|r| verify_any(r, &opts, &keys())).is_ok());
    let both = query.clone().signed("iot");
    assert_eq!(
        incomplete(both.with(|r| verify_any(r, &opts, &keys()))),
        Incomplete::MultipleAuthMechanisms
    );
}

#[test]
fn a_request_signed_without_host_is_refused() {
    let mut m = publish();
    m.headers.clear();
    let m = m.signed("iot");
    assert_eq!(incomplete(m.check("iot")), Incomplete::HostNotSigned);
}

#[test]
fn lookups_can_be_closures() {
    let m = publish().signed("iot");
    let opts = VerifyOptions::new(&["iot"], at(T0));
    let lookup = |id: &str| (id == KEY_ID).then(|| SECRET.to_owned());
    assert!(m.with(|r| verify(r, &opts, &lookup)).is_ok());
    let r = sign(
        &Request {
            method: "GET",
            raw_path: "/",
            raw_query: "",
            headers: &[("host", HOST)],
            body: b"",
        },
        &params("iot"),
    );
    assert_eq!(r[0].0, "authorization");
    assert_eq!(
        r[1],
        ("x-amz-date".to_owned(), "20261130T104227Z".to_owned())
    );
}

#[test]
fn the_claimed_key_can_be_read_before_verifying() {
    let claimed = |m: &Msg| m.with(claimed_access_key_id);
    assert_eq!(claimed(&publish().signed("iot")), Some(KEY_ID.to_owned()));
    assert_eq!(
        claimed(&presigned("iot", "a=1", 60, UriEncoding::Double)),
        Some(KEY_ID.to_owned())
    );
    assert_eq!(claimed(&publish()), None);
    assert_eq!(
        claimed(&publish().header("Authorization", "Bearer x")),
        None
    );
    assert_eq!(
        claimed(&publish().header("Authorization", "AWS4-HMAC-SHA256 Credential=/x")),
        None
    );
}
