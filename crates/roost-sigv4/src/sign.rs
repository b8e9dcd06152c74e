//! Producing signatures: `Authorization` headers for our own CLI and tests,
//! and presigned URLs.
//!
//! The signer signs exactly what the verifier demands and what botocore
//! would sign for the same request: `host`, `content-type` and every
//! `x-amz*` header, so that anything this crate signs, it also accepts.
//!
//! What it must never do: read the clock (the time is a parameter, so tests
//! and vectors are reproducible) or panic on any input. A request without a
//! `host` header is signed without one, and then fails verification with
//! `'Host' must be a 'SignedHeader'`, which is the clearer error.

use std::fmt::Write as _;
use std::time::Duration;

use crate::canonical::{self, header_key, uri_encode};
use crate::crypto::{scope, sha256_hex, signature_hex, signing_key, string_to_sign};
use crate::{amz_date, Request, SigningParams, UriEncoding, ALGORITHM, UNSIGNED_PAYLOAD};

/// Whether `name` is an HTTP token (RFC 9110 `tchar`s). Only such names can
/// be listed in `SignedHeaders` unambiguously (`;` would split one in two).
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Which of the request's headers our signer covers.
fn signs(lowercase_name: &str) -> bool {
    is_token(lowercase_name)
        && (lowercase_name == "host"
            || lowercase_name == "content-type"
            || (lowercase_name.starts_with("x-amz") && lowercase_name != "x-amzn-trace-id"))
}

/// Signs `req` for a non-S3 service ([`UriEncoding::Double`]) and returns the
/// headers to add: `authorization` and `x-amz-date`.
///
/// Any `authorization` or `x-amz-date` already in `req.headers` is ignored
/// and must be replaced by the returned ones. An `x-amz-content-sha256`
/// header, if present, is used as the payload hash (it must be right).
pub fn sign(req: &Request<'_>, params: &SigningParams<'_>) -> Vec<(String, String)> {
    sign_with_encoding(req, params, UriEncoding::Double)
}

/// [`sign`] with an explicit path encoding ([`UriEncoding::Single`] for
/// S3-style services).
pub fn sign_with_encoding(
    req: &Request<'_>,
    params: &SigningParams<'_>,
    encoding: UriEncoding,
) -> Vec<(String, String)> {
    let date_time = amz_date::format(amz_date::unix_seconds(params.time));
    let date = amz_date::date_part(&date_time);

    let mut headers: Vec<(&str, &str)> = req
        .headers
        .iter()
        .filter(|(name, _)| {
            let key = header_key(name);
            key != "authorization" && key != "x-amz-date"
        })
        .copied()
        .collect();
    headers.push(("x-amz-date", &date_time));

    let mut names: Vec<String> = headers
        .iter()
        .map(|(name, _)| header_key(name))
        .filter(|name| signs(name))
        .collect();
    names.sort_unstable();
    names.dedup();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let signed_line = names.join(";");

    let payload = headers
        .iter()
        .find(|(name, _)| header_key(name) == "x-amz-content-sha256")
        .map(|(_, value)| value.trim().to_owned())
        .unwrap_or_else(|| sha256_hex(req.body));

    let signing_req = Request {
        headers: &headers,
        ..*req
    };
    let canonical = canonical::build(&signing_req, &names, &signed_line, &payload, encoding, &[]);
    let scope = scope(date, params.region, params.service);
    let key = signing_key(
        params.secret_access_key,
        date,
        params.region,
        params.service,
    );
    let signature = signature_hex(&key, &string_to_sign(&date_time, &scope, &canonical));

    vec![
        (
            "authorization".to_owned(),
            format!(
                "{ALGORITHM} Credential={}/{scope}, SignedHeaders={signed_line}, Signature={signature}",
                params.access_key_id
            ),
        ),
        ("x-amz-date".to_owned(), date_time),
    ]
}

/// Builds a presigned URL's query string: `raw_query` (kept as given, may be
/// empty) followed by the `X-Amz-*` parameters and the signature. The URL is
/// `<scheme>://<host><raw_path>?<returned string>`.
///
/// Only `host` is signed. The payload hash is `UNSIGNED-PAYLOAD` for
/// [`UriEncoding::Single`] (S3) and the SHA-256 of an empty body otherwise,
/// matching what [`crate::verify_presigned`] expects. `expires` is
/// whole seconds; more than [`crate::MAX_PRESIGNED_EXPIRES`] produces a URL
/// that verification refuses.
pub fn presign(
    method: &str,
    raw_path: &str,
    raw_query: &str,
    host: &str,
    params: &SigningParams<'_>,
    expires: Duration,
    encoding: UriEncoding,
) -> String {
    let date_time = amz_date::format(amz_date::unix_seconds(params.time));
    let date = amz_date::date_part(&date_time);
    let scope = scope(date, params.region, params.service);
    let credential = format!("{}/{scope}", params.access_key_id);

    let mut query = String::with_capacity(raw_query.len() + 256);
    if !raw_query.is_empty() {
        query.push_str(raw_query);
        query.push('&');
    }
    // Writing to a String cannot fail.
    let _ = write!(
        query,
        "X-Amz-Algorithm={ALGORITHM}&X-Amz-Credential={}&X-Amz-Date={date_time}\
         &X-Amz-Expires={}&X-Amz-SignedHeaders=host",
        uri_encode(credential.as_bytes()),
        expires.as_secs()
    );

    let headers = [("host", host)];
    let req = Request {
        method,
        raw_path,
        raw_query: &query,
        headers: &headers,
        body: &[],
    };
    let payload = match encoding {
        UriEncoding::Single => UNSIGNED_PAYLOAD.to_owned(),
        UriEncoding::Double => sha256_hex(&[]),
    };
    let canonical = canonical::build(&req, &["host"], "host", &payload, encoding, &[]);
    let key = signing_key(
        params.secret_access_key,
        date,
        params.region,
        params.service,
    );
    let signature = signature_hex(&key, &string_to_sign(&date_time, &scope, &canonical));
    query.push_str("&X-Amz-Signature=");
    query.push_str(&signature);
    query
}
