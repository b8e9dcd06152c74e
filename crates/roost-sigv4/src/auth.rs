//! Parsing what a client claims: the `Authorization` header's components,
//! the credential scope, the `SignedHeaders` list.
//!
//! Pure syntax. Must never look at the clock, secrets or services (that is
//! `verify`'s job) and must never panic: every slice is taken with `split`
//! and `get`, never by index.

use crate::error::{echo, Incomplete, Requirement, SigV4Error};
use crate::ALGORITHM;

/// The three components of `AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct AuthorizationHeader<'a> {
    pub credential: &'a str,
    pub signed_headers: &'a str,
    pub signature: &'a str,
}

/// Parses an Authorization header value. `date_present` says whether the
/// request has an `X-Amz-Date`, so that a missing date is reported together
/// with missing components, as AWS does.
pub(crate) fn parse_authorization(
    value: &str,
    date_present: bool,
) -> Result<AuthorizationHeader<'_>, SigV4Error> {
    let value = value.trim();
    let (algorithm, rest) = match value.split_once(|c: char| c.is_ascii_whitespace()) {
        Some((a, r)) => (a, r),
        None => (value, ""),
    };
    if algorithm != ALGORITHM {
        return Err(Incomplete::UnsupportedAlgorithm(echo(algorithm)).into());
    }
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((key, val)) = part.split_once('=') else {
            return Err(Incomplete::NotKeyValue(echo(part)).into());
        };
        let (name, slot) = match key.trim() {
            "Credential" => ("Credential", &mut credential),
            "SignedHeaders" => ("SignedHeaders", &mut signed_headers),
            "Signature" => ("Signature", &mut signature),
            // AWS ignores components it does not know; so do we.
            _ => continue,
        };
        if slot.is_some() {
            return Err(Incomplete::Duplicate(name).into());
        }
        *slot = Some(val.trim());
    }
    let mut missing = Vec::new();
    if credential.is_none() {
        missing.push(Requirement::Credential);
    }
    if signature.is_none() {
        missing.push(Requirement::Signature);
    }
    if signed_headers.is_none() {
        missing.push(Requirement::SignedHeaders);
    }
    if !date_present {
        missing.push(Requirement::Date);
    }
    match (credential, signed_headers, signature) {
        (Some(credential), Some(signed_headers), Some(signature)) if missing.is_empty() => {
            Ok(AuthorizationHeader {
                credential,
                signed_headers,
                signature,
            })
        }
        _ => Err(Incomplete::Missing(missing).into()),
    }
}

/// `<access key id>/<yyyyMMdd>/<region>/<service>/aws4_request`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Credential<'a> {
    pub access_key_id: &'a str,
    pub date: &'a str,
    pub region: &'a str,
    pub service: &'a str,
}

impl Credential<'_> {
    /// The scope without the access key id, as it goes into the string to sign.
    pub fn scope(&self) -> String {
        crate::crypto::scope(self.date, self.region, self.service)
    }
}

pub(crate) fn parse_credential(credential: &str) -> Result<Credential<'_>, SigV4Error> {
    let malformed = || SigV4Error::from(Incomplete::MalformedCredential(echo(credential)));
    let parts: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, terminator] = parts.as_slice() else {
        return Err(malformed());
    };
    if access_key_id.is_empty()
        || region.is_empty()
        || service.is_empty()
        || date.len() != 8
        || !date.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(malformed());
    }
    if *terminator != "aws4_request" {
        return Err(Incomplete::BadTerminator(echo(terminator)).into());
    }
    Ok(Credential {
        access_key_id,
        date,
        region,
        service,
    })
}

/// Splits `SignedHeaders` and checks that `host` is among them.
pub(crate) fn parse_signed_headers(list: &str) -> Result<Vec<&str>, SigV4Error> {
    let names: Vec<&str> = list.split(';').collect();
    if names.iter().any(|n| n.trim().is_empty()) {
        return Err(Incomplete::MalformedSignedHeaders.into());
    }
    if !names.iter().any(|n| n.trim().eq_ignore_ascii_case("host")) {
        return Err(Incomplete::HostNotSigned.into());
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "AWS4-HMAC-SHA256 Credential=test/20261130/eu-west-1/iot/aws4_request, \
                        SignedHeaders=content-type;host;x-amz-date, Signature=abcd";

    fn incomplete(r: Result<impl std::fmt::Debug, SigV4Error>) -> Incomplete {
        match r {
            Err(SigV4Error::Incomplete(i)) => i,
            other => panic!("expected Incomplete, got {other:?}"),
        }
    }

    #[test]
    fn parses_what_botocore_sends() {
        assert_eq!(
            parse_authorization(GOOD, true).unwrap(),
            AuthorizationHeader {
                credential: "test/20261130/eu-west-1/iot/aws4_request",
                signed_headers: "content-type;host;x-amz-date",
                signature: "abcd",
            }
        );
        // No spaces after the commas, and an unknown component, are fine.
        let tight = "AWS4-HMAC-SHA256 Credential=a/20261130/r/s/aws4_request,SignedHeaders=host,Extra=1,Signature=ff";
        assert_eq!(parse_authorization(tight, true).unwrap().signature, "ff");
    }

    #[test]
    fn reports_every_missing_part_at_once() {
        assert_eq!(
            incomplete(parse_authorization("AWS4-HMAC-SHA256", false)),
            Incomplete::Missing(vec![
                Requirement::Credential,
                Requirement::Signature,
                Requirement::SignedHeaders,
                Requirement::Date
            ])
        );
        assert_eq!(
            incomplete(parse_authorization("AWS4-HMAC-SHA256 Signature=aa", true)),
            Incomplete::Missing(vec![Requirement::Credential, Requirement::SignedHeaders])
        );
        assert_eq!(
            incomplete(parse_authorization(GOOD, false)),
            Incomplete::Missing(vec![Requirement::Date])
        );
    }

    #[test]
    fn rejects_other_schemes_and_garbage() {
        assert!(matches!(
            incomplete(parse_authorization("Bearer eyJhbGciOi", true)),
            Incomplete::UnsupportedAlgorithm(_)
        ));
        assert!(matches!(
            incomplete(parse_authorization("AWS4-HMAC-SHA512 Credential=x", true)),
            Incomplete::UnsupportedAlgorithm(_)
        ));
        assert!(matches!(
            incomplete(parse_authorization("AWS4-HMAC-SHA256 Credential", true)),
            Incomplete::NotKeyValue(_)
        ));
        assert_eq!(
            incomplete(parse_authorization(&format!("{GOOD}, Signature=ef"), true)),
            Incomplete::Duplicate("Signature")
        );
        assert!(matches!(
            incomplete(parse_authorization("", true)),
            Incomplete::UnsupportedAlgorithm(_)
        ));
    }

    #[test]
    fn credential_scope() {
        assert_eq!(
            parse_credential("AKID/20261130/eu-west-1/iot-jobs-data/aws4_request").unwrap(),
            Credential {
                access_key_id: "AKID",
                date: "20261130",
                region: "eu-west-1",
                service: "iot-jobs-data"
            }
        );
        for bad in [
            "",
            "AKID",
            "AKID/20261130/eu-west-1/iot",
            "/20261130/eu-west-1/iot/aws4_request",
            "AKID/2026113/eu-west-1/iot/aws4_request",
            "AKID/2026113x/eu-west-1/iot/aws4_request",
            "AKID/20261130//iot/aws4_request",
            "AKID/20261130/eu-west-1//aws4_request",
            "AKID/20261130/eu-west-1/iot/aws4_request/extra",
        ] {
            assert!(
                matches!(
                    incomplete(parse_credential(bad)),
                    Incomplete::MalformedCredential(_)
                ),
                "{bad:?}"
            );
        }
        assert_eq!(
            incomplete(parse_credential("AKID/20261130/eu-west-1/iot/aws5_request")),
            Incomplete::BadTerminator("aws5_request".into())
        );
    }

    #[test]
    fn signed_headers_must_include_host() {
        assert_eq!(
            parse_signed_headers("content-type;host;x-amz-date").unwrap(),
            vec!["content-type", "host", "x-amz-date"]
        );
        assert_eq!(
            incomplete(parse_signed_headers("x-amz-date")),
            Incomplete::HostNotSigned
        );
        assert_eq!(
            incomplete(parse_signed_headers("")),
            Incomplete::MalformedSignedHeaders
        );
        assert_eq!(
            incomplete(parse_signed_headers("host;;x")),
            Incomplete::MalformedSignedHeaders
        );
    }
}
