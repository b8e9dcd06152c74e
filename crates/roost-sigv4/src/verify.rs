//! Deciding whether a request was signed by the holder of an access key.
//!
//! The order of checks follows AWS: syntax first (so a broken client gets an
//! `IncompleteSignatureException` naming what is missing), then scope and
//! clock, then the key lookup, and the HMAC last. Only the final comparison
//! needs the secret, and it is constant-time.
//!
//! What this module must never do: accept a request whose meaning-bearing
//! parts (method, path, query, body, `host`, any `x-amz-*` header) were not
//! covered by the signature; trust a client-declared body hash without
//! checking it against the body; or panic, whatever arrives.

use std::borrow::Cow;
use std::collections::HashSet;
use std::time::Duration;

use crate::auth::{parse_authorization, parse_credential, parse_signed_headers, Credential};
use crate::canonical::{self, header_key, is_header_space, query_pairs};
use crate::crypto::{sha256_hex, signature_matches, signing_key, string_to_sign};
use crate::error::{echo, Incomplete, Requirement, SigV4Error};
use crate::{
    amz_date, CredentialLookup, Request, UriEncoding, Verified, VerifyOptions, ALGORITHM,
    MAX_PRESIGNED_EXPIRES, UNSIGNED_PAYLOAD,
};

/// `x-amz-*` headers that may arrive unsigned: the date (the string to sign
/// covers it anyway) and the ones proxies and CDNs add in transit.
const MAY_ARRIVE_UNSIGNED: &[&str] = &["x-amz-date", "x-amzn-trace-id", "x-amz-cf-id"];

/// The presigned-URL parameter that carries the signature, and so is left out
/// of what was signed.
const SIGNATURE_PARAM: &str = "X-Amz-Signature";
/// Session tokens in presigned URLs: S3 signs them, AWS IoT's WebSocket
/// handshake appends them after signing. We try both.
const SECURITY_TOKEN_PARAM: &str = "X-Amz-Security-Token";

/// Verifies a request signed in its `Authorization` header (what the AWS CLI
/// and SDKs send).
///
/// `x-amz-content-sha256`, when present, must be the SHA-256 of the body;
/// `UNSIGNED-PAYLOAD` is accepted only with [`UriEncoding::Single`].
pub fn verify(
    req: &Request<'_>,
    opts: &VerifyOptions<'_>,
    creds: &impl CredentialLookup,
) -> Result<Verified, SigV4Error> {
    let mut authorizations = header_values(req, "authorization");
    let Some(authorization) = authorizations.next() else {
        return Err(SigV4Error::MissingAuthenticationToken);
    };
    if authorizations.next().is_some() {
        return Err(Incomplete::Duplicate("Authorization").into());
    }
    let amz_date = single_header(req, "x-amz-date", "X-Amz-Date")?;
    let header = parse_authorization(authorization, amz_date.is_some())?;
    let Some(amz_date) = amz_date else {
        return Err(Incomplete::Missing(vec![Requirement::Date]).into());
    };
    let credential = parse_credential(header.credential)?;
    let signed = parse_signed_headers(header.signed_headers)?;
    let request_secs = parse_date(amz_date)?;
    check_scope(&credential, amz_date, opts)?;
    check_clock(request_secs, amz_date, opts)?;
    check_amz_headers_signed(req, &signed)?;

    let secret = creds
        .secret_access_key(credential.access_key_id)
        .ok_or(SigV4Error::UnrecognizedClient)?;
    let declared = single_header(req, "x-amz-content-sha256", "x-amz-content-sha256")?;
    let payload = payload_hash(
        declared,
        req.body,
        opts.uri_encoding == UriEncoding::Single,
        false,
    )?;
    let canonical = canonical::build(
        req,
        &signed,
        header.signed_headers,
        &payload,
        opts.uri_encoding,
        &[],
    );
    let key = signing_key(
        &secret,
        credential.date,
        credential.region,
        credential.service,
    );
    if !signature_matches(
        &key,
        &string_to_sign(amz_date, &credential.scope(), &canonical),
        header.signature,
    ) {
        return Err(SigV4Error::SignatureMismatch);
    }
    Ok(verified(&credential))
}

/// Verifies a request signed in its query string (a presigned URL, or an AWS
/// IoT MQTT-over-WebSocket handshake).
///
/// `X-Amz-Expires` is optional, as in IoT's WebSocket URLs: with it the URL
/// is good from `X-Amz-Date` (less the clock skew) until `X-Amz-Date +
/// X-Amz-Expires`, at most a week; without it, only within the clock skew.
/// The payload hash is `x-amz-content-sha256` (header or query parameter) if
/// given, else `UNSIGNED-PAYLOAD` for [`UriEncoding::Single`] (S3) and the
/// body's SHA-256 otherwise (what botocore and the IoT SDKs sign).
pub fn verify_presigned(
    req: &Request<'_>,
    opts: &VerifyOptions<'_>,
    creds: &impl CredentialLookup,
) -> Result<Verified, SigV4Error> {
    let q = QueryAuth::parse(req.raw_query)?;
    if q.algorithm != ALGORITHM {
        return Err(Incomplete::UnsupportedAlgorithm(echo(&q.algorithm)).into());
    }
    let credential = parse_credential(&q.credential)?;
    let signed = parse_signed_headers(&q.signed_headers)?;
    let request_secs = parse_date(&q.date)?;
    check_scope(&credential, &q.date, opts)?;
    let expires = q.expires.as_deref().map(parse_expires).transpose()?;
    check_presigned_clock(request_secs, &q.date, expires, opts)?;
    check_amz_headers_signed(req, &signed)?;

    let secret = creds
        .secret_access_key(credential.access_key_id)
        .ok_or(SigV4Error::UnrecognizedClient)?;
    let declared = match single_header(req, "x-amz-content-sha256", "x-amz-content-sha256")? {
        Some(h) => Some(h),
        None => q.content_sha256.as_deref(),
    };
    let payload = payload_hash(
        declared,
        req.body,
        true,
        opts.uri_encoding == UriEncoding::Single,
    )?;
    let key = signing_key(
        &secret,
        credential.date,
        credential.region,
        credential.service,
    );
    let scope = credential.scope();
    let matches = |exclude: &[&str]| {
        let canonical = canonical::build(
            req,
            &signed,
            &q.signed_headers,
            &payload,
            opts.uri_encoding,
            exclude,
        );
        signature_matches(
            &key,
            &string_to_sign(&q.date, &scope, &canonical),
            &q.signature,
        )
    };
    // A token left out of the signature is harmless here: Roost authenticates
    // by the secret alone and never looks at the token.
    if matches(&[SIGNATURE_PARAM])
        || (q.has_security_token && matches(&[SIGNATURE_PARAM, SECURITY_TOKEN_PARAM]))
    {
        Ok(verified(&credential))
    } else {
        Err(SigV4Error::SignatureMismatch)
    }
}

/// Verifies whichever kind of authentication the request carries: the
/// `Authorization` header, or `X-Amz-*` query parameters. Both at once is an
/// error, as at AWS; neither is `MissingAuthenticationTokenException`.
pub fn verify_any(
    req: &Request<'_>,
    opts: &VerifyOptions<'_>,
    creds: &impl CredentialLookup,
) -> Result<Verified, SigV4Error> {
    let has_header = header_values(req, "authorization").next().is_some();
    let has_query = query_pairs(req.raw_query).any(|(name, _)| {
        matches!(
            name.as_slice(),
            b"X-Amz-Algorithm" | b"X-Amz-Credential" | b"X-Amz-Signature"
        )
    });
    match (has_header, has_query) {
        (true, true) => Err(Incomplete::MultipleAuthMechanisms.into()),
        (true, false) => verify(req, opts, creds),
        (false, true) => verify_presigned(req, opts, creds),
        (false, false) => Err(SigV4Error::MissingAuthenticationToken),
    }
}

/// The access key id a request claims to be signed with (from the
/// `Authorization` header, else from `X-Amz-Credential`), without checking
/// anything else.
///
/// For callers whose key store is asynchronous: fetch this key's secret
/// first, then verify with a lookup that holds just that one. `None` when
/// there is no readable claim; `verify` then says precisely what is wrong.
pub fn claimed_access_key_id(req: &Request<'_>) -> Option<String> {
    let credential = match header_values(req, "authorization").next() {
        Some(value) => parse_authorization(value, true).ok()?.credential.to_owned(),
        None => query_pairs(req.raw_query)
            .find(|(name, _)| name.as_slice() == b"X-Amz-Credential")
            .map(|(_, value)| String::from_utf8_lossy(&value).into_owned())?,
    };
    let id = credential.split('/').next().unwrap_or_default();
    (!id.is_empty()).then(|| id.to_owned())
}

fn verified(credential: &Credential<'_>) -> Verified {
    Verified {
        access_key_id: credential.access_key_id.to_owned(),
        region: credential.region.to_owned(),
        service: credential.service.to_owned(),
    }
}

fn is_header_named(name: &str, lowercase: &str) -> bool {
    name.trim_matches(is_header_space)
        .eq_ignore_ascii_case(lowercase)
}

fn header_values<'a>(req: &Request<'a>, lowercase: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    req.headers
        .iter()
        .filter(move |(name, _)| is_header_named(name, lowercase))
        .map(|(_, value)| value.trim())
}

/// The value of a header that must not repeat; `display` names it in the error.
fn single_header<'a>(
    req: &Request<'a>,
    lowercase: &'a str,
    display: &'static str,
) -> Result<Option<&'a str>, SigV4Error> {
    let mut values = header_values(req, lowercase);
    let first = values.next();
    if values.next().is_some() {
        return Err(Incomplete::Duplicate(display).into());
    }
    Ok(first)
}

fn parse_date(amz_date: &str) -> Result<i64, SigV4Error> {
    amz_date::parse(amz_date).ok_or_else(|| Incomplete::MalformedDate(echo(amz_date)).into())
}

fn check_scope(
    credential: &Credential<'_>,
    amz_date: &str,
    opts: &VerifyOptions<'_>,
) -> Result<(), SigV4Error> {
    let request_date = amz_date::date_part(amz_date);
    if credential.date != request_date {
        return Err(SigV4Error::ScopeDateMismatch {
            scope_date: credential.date.to_owned(),
            request_date: request_date.to_owned(),
            amz_date: amz_date.to_owned(),
        });
    }
    if !opts.services.contains(&credential.service) {
        return Err(SigV4Error::WrongService {
            expected: opts
                .services
                .first()
                .copied()
                .unwrap_or_default()
                .to_owned(),
        });
    }
    Ok(())
}

fn skew_text(skew: Duration) -> String {
    let secs = skew.as_secs();
    match secs % 60 {
        0 => format!("{} min", secs / 60),
        _ => format!("{secs} s"),
    }
}

fn skew_seconds(opts: &VerifyOptions<'_>) -> i64 {
    i64::try_from(opts.max_clock_skew.as_secs()).unwrap_or(i64::MAX)
}

fn expired(amz_date: &str, now: i64, opts: &VerifyOptions<'_>) -> SigV4Error {
    SigV4Error::SignatureExpired {
        request_time: amz_date.to_owned(),
        earliest: amz_date::format(now.saturating_sub(skew_seconds(opts))),
        now: amz_date::format(now),
        skew: skew_text(opts.max_clock_skew),
    }
}

fn not_yet_current(amz_date: &str, now: i64, opts: &VerifyOptions<'_>) -> SigV4Error {
    SigV4Error::SignatureNotYetCurrent {
        request_time: amz_date.to_owned(),
        latest: amz_date::format(now.saturating_add(skew_seconds(opts))),
        now: amz_date::format(now),
        skew: skew_text(opts.max_clock_skew),
    }
}

fn check_clock(
    request_secs: i64,
    amz_date: &str,
    opts: &VerifyOptions<'_>,
) -> Result<(), SigV4Error> {
    let now = amz_date::unix_seconds(opts.now);
    let skew = skew_seconds(opts);
    if request_secs < now.saturating_sub(skew) {
        return Err(expired(amz_date, now, opts));
    }
    if request_secs > now.saturating_add(skew) {
        return Err(not_yet_current(amz_date, now, opts));
    }
    Ok(())
}

fn check_presigned_clock(
    request_secs: i64,
    amz_date: &str,
    expires: Option<i64>,
    opts: &VerifyOptions<'_>,
) -> Result<(), SigV4Error> {
    let now = amz_date::unix_seconds(opts.now);
    if request_secs > now.saturating_add(skew_seconds(opts)) {
        return Err(not_yet_current(amz_date, now, opts));
    }
    match expires {
        Some(expires) if now > request_secs.saturating_add(expires) => {
            Err(SigV4Error::PresignedUrlExpired)
        }
        Some(_) => Ok(()),
        None => check_clock(request_secs, amz_date, opts),
    }
}

fn parse_expires(value: &str) -> Result<i64, SigV4Error> {
    let malformed = || SigV4Error::from(Incomplete::MalformedExpires(echo(value)));
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed());
    }
    // Any digit string too long for u64 is certainly more than a week.
    let secs: u64 = value.parse().unwrap_or(u64::MAX);
    if secs > MAX_PRESIGNED_EXPIRES.as_secs() {
        return Err(Incomplete::ExpiresTooLarge.into());
    }
    i64::try_from(secs).map_err(|_| malformed())
}

/// Refuses `x-amz-*` headers the signature does not cover. botocore, the
/// AWS CRT and the other SDKs sign every `x-amz-*` header they send; one
/// that arrives unsigned was added on the way, and `x-amzn-principal` or the
/// MQTT5 properties must not be open to that.
fn check_amz_headers_signed(req: &Request<'_>, signed: &[&str]) -> Result<(), SigV4Error> {
    let signed: HashSet<String> = signed.iter().map(|s| header_key(s)).collect();
    let mut unsigned: Vec<String> = req
        .headers
        .iter()
        .map(|(name, _)| header_key(name))
        .filter(|name| {
            name.starts_with("x-amz")
                && !MAY_ARRIVE_UNSIGNED.contains(&name.as_str())
                && !signed.contains(name)
        })
        .collect();
    if unsigned.is_empty() {
        return Ok(());
    }
    unsigned.sort_unstable();
    unsigned.dedup();
    Err(Incomplete::HeadersNotSigned(echo(&unsigned.join(", "))).into())
}

/// The last line of the canonical request.
///
/// A declared hash is checked against the body: the signature covers the
/// declared value, so an unchecked one would let a body be swapped freely.
fn payload_hash<'a>(
    declared: Option<&'a str>,
    body: &[u8],
    unsigned_allowed: bool,
    unsigned_by_default: bool,
) -> Result<Cow<'a, str>, SigV4Error> {
    match declared {
        Some(UNSIGNED_PAYLOAD) if unsigned_allowed => Ok(Cow::Borrowed(UNSIGNED_PAYLOAD)),
        Some(UNSIGNED_PAYLOAD) => Err(SigV4Error::UnsignedPayloadNotAllowed),
        Some(value) => {
            if value.len() == 64 && value.eq_ignore_ascii_case(&sha256_hex(body)) {
                Ok(Cow::Borrowed(value))
            } else {
                Err(SigV4Error::ContentSha256Mismatch)
            }
        }
        None if unsigned_by_default => Ok(Cow::Borrowed(UNSIGNED_PAYLOAD)),
        None => Ok(Cow::Owned(sha256_hex(body))),
    }
}

/// The authentication parameters of a presigned URL, decoded.
struct QueryAuth {
    algorithm: String,
    credential: String,
    date: String,
    signed_headers: String,
    signature: String,
    expires: Option<String>,
    content_sha256: Option<String>,
    has_security_token: bool,
}

impl QueryAuth {
    fn parse(raw_query: &str) -> Result<QueryAuth, SigV4Error> {
        const ALGORITHM_P: &str = "X-Amz-Algorithm";
        const CREDENTIAL_P: &str = "X-Amz-Credential";
        const DATE_P: &str = "X-Amz-Date";
        const SIGNED_HEADERS_P: &str = "X-Amz-SignedHeaders";
        const EXPIRES_P: &str = "X-Amz-Expires";
        const CONTENT_SHA256_P: &str = "X-Amz-Content-Sha256";

        let (mut algorithm, mut credential, mut date, mut signed_headers, mut signature) =
            (None, None, None, None, None);
        let (mut expires, mut content_sha256, mut token) = (None, None, None);
        for (name, value) in query_pairs(raw_query) {
            let (param, slot) = match name.as_slice() {
                n if n == ALGORITHM_P.as_bytes() => (ALGORITHM_P, &mut algorithm),
                n if n == CREDENTIAL_P.as_bytes() => (CREDENTIAL_P, &mut credential),
                n if n == DATE_P.as_bytes() => (DATE_P, &mut date),
                n if n == SIGNED_HEADERS_P.as_bytes() => (SIGNED_HEADERS_P, &mut signed_headers),
                n if n == SIGNATURE_PARAM.as_bytes() => (SIGNATURE_PARAM, &mut signature),
                n if n == EXPIRES_P.as_bytes() => (EXPIRES_P, &mut expires),
                n if n == CONTENT_SHA256_P.as_bytes() => (CONTENT_SHA256_P, &mut content_sha256),
                n if n == SECURITY_TOKEN_PARAM.as_bytes() => (SECURITY_TOKEN_PARAM, &mut token),
                _ => continue,
            };
            if slot.is_some() {
                return Err(Incomplete::Duplicate(param).into());
            }
            *slot = Some(String::from_utf8_lossy(&value).into_owned());
        }
        let required = [
            (ALGORITHM_P, algorithm.is_some()),
            (CREDENTIAL_P, credential.is_some()),
            (SIGNATURE_PARAM, signature.is_some()),
            (DATE_P, date.is_some()),
            (SIGNED_HEADERS_P, signed_headers.is_some()),
        ];
        if required.iter().all(|(_, present)| !present) {
            return Err(SigV4Error::MissingAuthenticationToken);
        }
        match (algorithm, credential, date, signed_headers, signature) {
            (
                Some(algorithm),
                Some(credential),
                Some(date),
                Some(signed_headers),
                Some(signature),
            ) => Ok(QueryAuth {
                algorithm,
                credential,
                date,
                signed_headers,
                signature,
                expires,
                content_sha256,
                has_security_token: token.is_some(),
            }),
            _ => Err(Incomplete::MissingQueryParameters(
                required
                    .iter()
                    .filter(|(_, present)| !present)
                    .map(|(name, _)| *name)
                    .collect(),
            )
            .into()),
        }
    }
}
