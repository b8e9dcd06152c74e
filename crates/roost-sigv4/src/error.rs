//! Why a request was refused, and how AWS would have said so.
//!
//! Each variant maps straight to the wire answer: [`SigV4Error::aws_error_code`]
//! for `x-amzn-ErrorType` and [`SigV4Error::http_status`], with `Display` as
//! the `message`. Wording follows what AWS's REST JSON services answer where
//! it is known, so messages people paste into search engines find the right
//! explanations.
//!
//! Messages must never carry a secret, a computed signature or a canonical
//! request (that would hand an attacker a signing oracle for the body hash);
//! echoed client input is cut to [`MAX_ECHO_CHARS`].

use std::fmt;

/// How much of a client-supplied value an error message repeats back.
pub(crate) const MAX_ECHO_CHARS: usize = 64;

/// Client input, shortened for an error message.
pub(crate) fn echo(s: &str) -> String {
    let mut out: String = s.chars().take(MAX_ECHO_CHARS).collect();
    if out.len() < s.len() {
        out.push_str("...");
    }
    out
}

/// A refusal. Every variant is answered with HTTP 403.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigV4Error {
    /// No `Authorization` header and no `X-Amz-*` query parameters.
    #[error("Missing Authentication Token")]
    MissingAuthenticationToken,

    /// Authentication is there but malformed or missing a part.
    #[error("{0}")]
    Incomplete(#[from] Incomplete),

    /// The access key id is not one we know.
    #[error("The security token included in the request is invalid.")]
    UnrecognizedClient,

    /// Well-formed, known key, but the signature is not the one we compute.
    #[error(
        "The request signature we calculated does not match the signature you provided. \
         Check your AWS Secret Access Key and signing method. \
         Consult the service documentation for details."
    )]
    SignatureMismatch,

    /// `X-Amz-Date` is further in the past than the allowed clock skew.
    #[error("Signature expired: {request_time} is now earlier than {earliest} ({now} - {skew}.)")]
    SignatureExpired {
        request_time: String,
        earliest: String,
        now: String,
        skew: String,
    },

    /// `X-Amz-Date` is further in the future than the allowed clock skew.
    #[error(
        "Signature not yet current: {request_time} is still later than {latest} ({now} + {skew}.)"
    )]
    SignatureNotYetCurrent {
        request_time: String,
        latest: String,
        now: String,
        skew: String,
    },

    /// The credential scope names a service this endpoint does not serve
    /// (the classic: `iot` instead of `iotdata` for the data plane).
    #[error("Credential should be scoped to correct service: '{expected}'.")]
    WrongService { expected: String },

    /// The date in the credential scope is not the date of `X-Amz-Date`.
    #[error(
        "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: \
         '{scope_date}' != '{request_date}', from '{amz_date}'."
    )]
    ScopeDateMismatch {
        scope_date: String,
        request_date: String,
        amz_date: String,
    },

    /// `x-amz-content-sha256` is neither the body's SHA-256 nor an accepted
    /// placeholder.
    #[error("The provided 'x-amz-content-sha256' header does not match what was computed.")]
    ContentSha256Mismatch,

    /// `UNSIGNED-PAYLOAD` on a header-signed request to a service that needs
    /// the body signed.
    #[error("UNSIGNED-PAYLOAD is only accepted on presigned URLs and S3-style services; sign the payload.")]
    UnsignedPayloadNotAllowed,

    /// A presigned URL whose `X-Amz-Date + X-Amz-Expires` is in the past.
    #[error("Request has expired")]
    PresignedUrlExpired,
}

impl SigV4Error {
    /// The error code for `x-amzn-ErrorType` / `__type`.
    pub fn aws_error_code(&self) -> &'static str {
        match self {
            SigV4Error::MissingAuthenticationToken => "MissingAuthenticationTokenException",
            SigV4Error::Incomplete(_) => "IncompleteSignatureException",
            SigV4Error::UnrecognizedClient => "UnrecognizedClientException",
            SigV4Error::SignatureMismatch
            | SigV4Error::SignatureExpired { .. }
            | SigV4Error::SignatureNotYetCurrent { .. }
            | SigV4Error::WrongService { .. }
            | SigV4Error::ScopeDateMismatch { .. }
            | SigV4Error::ContentSha256Mismatch
            | SigV4Error::UnsignedPayloadNotAllowed => "InvalidSignatureException",
            SigV4Error::PresignedUrlExpired => "AccessDeniedException",
        }
    }

    /// The HTTP status to answer with. AWS answers every authentication
    /// failure of its REST JSON services with 403.
    pub fn http_status(&self) -> u16 {
        403
    }
}

/// A part SigV4 header authentication needs and the request lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    Credential,
    Signature,
    SignedHeaders,
    Date,
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Requirement::Credential => "Authorization header requires 'Credential' parameter.",
            Requirement::Signature => "Authorization header requires 'Signature' parameter.",
            Requirement::SignedHeaders => {
                "Authorization header requires 'SignedHeaders' parameter."
            }
            Requirement::Date => {
                "Authorization header requires existence of a 'X-Amz-Date' header."
            }
        })
    }
}

/// Why authentication data is malformed (`IncompleteSignatureException`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Incomplete {
    /// The Authorization header is not `AWS4-HMAC-SHA256 ...`, or the
    /// presigned URL's `X-Amz-Algorithm` is something else.
    #[error("Unsupported AWS 'algorithm': '{0}'. Only 'AWS4-HMAC-SHA256' is supported.")]
    UnsupportedAlgorithm(String),

    /// One or more required parts are missing, listed in AWS's order.
    #[error("{}", join_requirements(.0))]
    Missing(Vec<Requirement>),

    /// An Authorization component without `=`.
    #[error("'{0}' not a valid key=value pair (missing equal-sign) in Authorization header.")]
    NotKeyValue(String),

    /// The same Authorization component, header or query parameter twice.
    #[error("'{0}' must appear only once.")]
    Duplicate(&'static str),

    /// The credential is not `<key id>/<yyyyMMdd>/<region>/<service>/aws4_request`.
    #[error(
        "Credential should be of the form '<access key id>/<yyyyMMdd>/<region>/<service>/aws4_request', \
         not '{0}'."
    )]
    MalformedCredential(String),

    /// The credential scope does not end in `aws4_request`.
    #[error("Credential should be scoped with a valid terminator: 'aws4_request', not '{0}'.")]
    BadTerminator(String),

    /// `SignedHeaders` is empty or has an empty entry.
    #[error("SignedHeaders must be a non-empty list of header names separated by ';'.")]
    MalformedSignedHeaders,

    /// `host` is not among the signed headers.
    #[error("'Host' must be a 'SignedHeader' in the AWS Authorization.")]
    HostNotSigned,

    /// `X-Amz-Date` is not `yyyyMMdd'T'HHmmss'Z'`.
    #[error("X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\", not '{0}'.")]
    MalformedDate(String),

    /// A presigned URL lacks some `X-Amz-*` parameters.
    #[error("Query-string authentication requires the {} parameter(s).", .0.join(", "))]
    MissingQueryParameters(Vec<&'static str>),

    /// `X-Amz-Expires` is not a non-negative whole number of seconds.
    #[error("X-Amz-Expires should be a number of seconds, not '{0}'.")]
    MalformedExpires(String),

    /// `X-Amz-Expires` is more than a week.
    #[error("X-Amz-Expires must be less than a week (in seconds) that is 604800")]
    ExpiresTooLarge,

    /// `x-amz-*` headers arrived that the signature does not cover. They
    /// carry meaning (`x-amzn-principal` picks the principal to attach), so
    /// an unsigned one could have been put there by anybody on the path.
    #[error("There were headers present in the request which were not signed: {0}")]
    HeadersNotSigned(String),

    /// Both an Authorization header and `X-Amz-*` query parameters.
    #[error(
        "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter \
         or the Authorization header should be specified"
    )]
    MultipleAuthMechanisms,
}

fn join_requirements(missing: &[Requirement]) -> String {
    missing
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_status() {
        let cases: Vec<(SigV4Error, &str)> = vec![
            (
                SigV4Error::MissingAuthenticationToken,
                "MissingAuthenticationTokenException",
            ),
            (
                Incomplete::HostNotSigned.into(),
                "IncompleteSignatureException",
            ),
            (
                SigV4Error::UnrecognizedClient,
                "UnrecognizedClientException",
            ),
            (SigV4Error::SignatureMismatch, "InvalidSignatureException"),
            (SigV4Error::PresignedUrlExpired, "AccessDeniedException"),
        ];
        for (e, code) in cases {
            assert_eq!(e.aws_error_code(), code);
            assert_eq!(e.http_status(), 403);
        }
    }

    #[test]
    fn messages_match_aws_wording() {
        assert_eq!(
            SigV4Error::MissingAuthenticationToken.to_string(),
            "Missing Authentication Token"
        );
        assert_eq!(
            SigV4Error::UnrecognizedClient.to_string(),
            "The security token included in the request is invalid."
        );
        assert_eq!(
            SigV4Error::SignatureMismatch.to_string(),
            "The request signature we calculated does not match the signature you provided. Check your AWS \
             Secret Access Key and signing method. Consult the service documentation for details."
        );
        let missing = SigV4Error::from(Incomplete::Missing(vec![
            Requirement::Credential,
            Requirement::Signature,
        ]));
        assert_eq!(
            missing.to_string(),
            "Authorization header requires 'Credential' parameter. \
             Authorization header requires 'Signature' parameter."
        );
        let expired = SigV4Error::SignatureExpired {
            request_time: "20140325T143453Z".into(),
            earliest: "20140325T143751Z".into(),
            now: "20140325T145251Z".into(),
            skew: "15 min".into(),
        };
        assert_eq!(
            expired.to_string(),
            "Signature expired: 20140325T143453Z is now earlier than 20140325T143751Z (20140325T145251Z - 15 min.)"
        );
        assert_eq!(
            SigV4Error::WrongService {
                expected: "iotdata".into()
            }
            .to_string(),
            "Credential should be scoped to correct service: 'iotdata'."
        );
    }

    #[test]
    fn echo_is_bounded_and_char_safe() {
        let long = "é".repeat(1000);
        let e = echo(&long);
        assert_eq!(e.chars().count(), MAX_ECHO_CHARS + 3);
        assert_eq!(echo("short"), "short");
    }
}
