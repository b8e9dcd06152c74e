//! The canonical request: the one byte string signer and verifier must both
//! derive from an HTTP request, and whose hash is what actually gets signed.
//!
//! ```text
//! METHOD \n CanonicalURI \n CanonicalQuery \n (name:value \n)* \n SignedHeaders \n PayloadHash
//! ```
//!
//! Every rule here is a compatibility decision, checked against botocore's
//! output in `tests/botocore_vectors.json`:
//!
//! * **URI.** [`UriEncoding::Double`] (all AWS services but S3) takes the raw
//!   path as sent, removes `.`/`..`/empty segments the way botocore does, then
//!   URI-encodes it again (`%2F` → `%252F`, `$` → `%24`). It works on the raw
//!   bytes rather than decoding first so that `$next` and `%24next`, which a
//!   router may treat differently, never share a signature.
//!   [`UriEncoding::Single`] (S3) decodes each segment and encodes it once,
//!   keeping `%2F` inside a segment as `%2F`.
//! * **Query.** Each `name=value` is decoded (`+` counts as a space, as for
//!   HTML forms and `axum::extract::Query`) and encoded again with the strict
//!   SigV4 rules, then sorted by name and by value. A pair without `=` has an
//!   empty value; empty pairs (`a=1&&b=2`) are dropped.
//! * **Headers.** Names lowercased; each value trimmed with inner runs of
//!   whitespace folded to one space; repeated header lines joined with `,` in
//!   the order received.
//!
//! What this module must never do: decide whether a request is acceptable
//! (that is `verify`'s job), or panic on any byte sequence, including invalid
//! percent-escapes and escapes that decode to invalid UTF-8 (both are handled
//! as bytes).

use std::collections::{HashMap, HashSet};

use percent_encoding::{percent_decode, percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::{Request, UriEncoding};

/// Characters SigV4 leaves alone: RFC 3986 unreserved.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Unreserved plus `/`, for whole paths.
const UNRESERVED_AND_SLASH: &AsciiSet = &UNRESERVED.remove(b'/');

/// SigV4's `UriEncode`: everything but `A-Za-z0-9-_.~` as uppercase `%XY`.
pub fn uri_encode(bytes: &[u8]) -> String {
    percent_encode(bytes, UNRESERVED).to_string()
}

/// The canonical URI of a raw (still percent-encoded) path.
pub fn canonical_uri(raw_path: &str, encoding: UriEncoding) -> String {
    match encoding {
        UriEncoding::Double => {
            percent_encode(normalize_path(raw_path).as_bytes(), UNRESERVED_AND_SLASH).to_string()
        }
        UriEncoding::Single => {
            if raw_path.is_empty() {
                return "/".to_owned();
            }
            raw_path
                .split('/')
                .map(|segment| uri_encode(&percent_decode(segment.as_bytes()).collect::<Vec<u8>>()))
                .collect::<Vec<_>>()
                .join("/")
        }
    }
}

/// RFC 3986 dot-segment removal plus collapsing of empty segments, exactly as
/// botocore applies it before signing (it is what AWS's services expect).
fn normalize_path(path: &str) -> String {
    if path.is_empty() {
        return "/".to_owned();
    }
    let mut kept: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                kept.pop();
            }
            s => kept.push(s),
        }
    }
    let mut out = String::with_capacity(path.len());
    if path.starts_with('/') {
        out.push('/');
    }
    out.push_str(&kept.join("/"));
    if path.ends_with('/') && !kept.is_empty() {
        out.push('/');
    }
    out
}

/// Decodes one query name or value: `+` is a space, `%XY` a byte, and a
/// malformed escape stays as it is.
pub(crate) fn decode_query_component(s: &str) -> Vec<u8> {
    let plus_as_space: Vec<u8> = s
        .bytes()
        .map(|b| if b == b'+' { b' ' } else { b })
        .collect();
    percent_decode(&plus_as_space).collect()
}

/// Splits a raw query into decoded `(name, value)` pairs, in order.
pub(crate) fn query_pairs(raw_query: &str) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> + '_ {
    raw_query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        (decode_query_component(name), decode_query_component(value))
    })
}

/// The canonical query string of a raw query.
pub fn canonical_query_string(raw_query: &str) -> String {
    canonical_query_excluding(raw_query, &[])
}

/// The canonical query string without the parameters named in `exclude`
/// (decoded names, compared exactly): a presigned URL's `X-Amz-Signature`
/// cannot sign itself.
pub(crate) fn canonical_query_excluding(raw_query: &str, exclude: &[&str]) -> String {
    let mut pairs: Vec<(String, String)> = query_pairs(raw_query)
        .filter(|(name, _)| !exclude.iter().any(|x| x.as_bytes() == name.as_slice()))
        .map(|(name, value)| (uri_encode(&name), uri_encode(&value)))
        .collect();
    pairs.sort_unstable();
    let mut out = String::with_capacity(raw_query.len() + pairs.len() * 2);
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
    out
}

/// What SigV4's "Trimall" treats as whitespace.
pub(crate) fn is_header_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

/// Trims a header value and folds inner whitespace runs into one space.
pub fn fold_header_value(value: &str, out: &mut String) {
    let mut first = true;
    for word in value.split(is_header_space).filter(|w| !w.is_empty()) {
        if !first {
            out.push(' ');
        }
        out.push_str(word);
        first = false;
    }
}

/// A header name as it is compared: trimmed and lowercased.
pub(crate) fn header_key(name: &str) -> String {
    name.trim_matches(is_header_space).to_ascii_lowercase()
}

/// The canonical headers block (`name:value\n` per signed header, in the
/// order of `signed`). A signed header the request lacks is given an empty
/// value, which then fails to match what the signer hashed.
pub fn canonical_headers(headers: &[(&str, &str)], signed: &[&str]) -> String {
    let wanted: HashSet<String> = signed.iter().map(|s| header_key(s)).collect();
    let mut values: HashMap<String, Vec<&str>> = HashMap::new();
    for (name, value) in headers {
        let key = header_key(name);
        if wanted.contains(&key) {
            values.entry(key).or_default().push(value);
        }
    }
    let mut out = String::new();
    for name in signed {
        let key = header_key(name);
        out.push_str(&key);
        out.push(':');
        if let Some(vals) = values.get(&key) {
            for (i, v) in vals.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                fold_header_value(v, &mut out);
            }
        }
        out.push('\n');
    }
    out
}

/// The full canonical request for `req`, signing the headers in `signed`
/// (in that order) with `payload_hash` as the last line.
///
/// Public so that tools and tests can show what was signed; the verifier
/// never reveals it to a client.
pub fn canonical_request(
    req: &Request<'_>,
    signed: &[&str],
    payload_hash: &str,
    encoding: UriEncoding,
) -> String {
    build(req, signed, &signed.join(";"), payload_hash, encoding, &[])
}

/// [`canonical_request`] with the `SignedHeaders` line given as received and
/// some query parameters left out.
pub(crate) fn build(
    req: &Request<'_>,
    signed: &[&str],
    signed_line: &str,
    payload_hash: &str,
    encoding: UriEncoding,
    exclude_query: &[&str],
) -> String {
    let mut out = String::with_capacity(
        req.method.len() + req.raw_path.len() * 2 + req.raw_query.len() * 2 + 256,
    );
    out.push_str(&req.method.to_ascii_uppercase());
    out.push('\n');
    out.push_str(&canonical_uri(req.raw_path, encoding));
    out.push('\n');
    out.push_str(&canonical_query_excluding(req.raw_query, exclude_query));
    out.push('\n');
    out.push_str(&canonical_headers(req.headers, signed));
    out.push('\n');
    out.push_str(signed_line);
    out.push('\n');
    out.push_str(payload_hash);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn double_encoding_keeps_raw_escapes_distinct() {
        let d = UriEncoding::Double;
        assert_eq!(
            canonical_uri("/topics/a%2Fb%20c", d),
            "/topics/a%252Fb%2520c"
        );
        assert_eq!(
            canonical_uri("/topics/a%2Fb%20c%2F%2B", d),
            "/topics/a%252Fb%2520c%252F%252B"
        );
        assert_eq!(
            canonical_uri("/things/t1/jobs/$next", d),
            "/things/t1/jobs/%24next"
        );
        assert_eq!(
            canonical_uri("/things/t1/jobs/%24next", d),
            "/things/t1/jobs/%2524next"
        );
        assert_eq!(
            canonical_uri("/attached-policies/arn%3Aaws%3Aiot%3Aeu-west-1%3A123456789012%3Acert%2Fabc", d),
            "/attached-policies/arn%253Aaws%253Aiot%253Aeu-west-1%253A123456789012%253Acert%252Fabc"
        );
        // Lowercase hex on the wire is a different request: it stays distinct.
        assert_eq!(canonical_uri("/a%2fb", d), "/a%252fb");
        assert_eq!(canonical_uri("/~user/a-b_c.d", d), "/~user/a-b_c.d");
        assert_eq!(canonical_uri("/ü", d), "/%C3%BC");
    }

    #[test]
    fn double_encoding_normalizes_like_botocore() {
        let d = UriEncoding::Double;
        assert_eq!(canonical_uri("", d), "/");
        assert_eq!(canonical_uri("/", d), "/");
        assert_eq!(canonical_uri("//", d), "/");
        assert_eq!(canonical_uri("/a//b/", d), "/a/b/");
        assert_eq!(canonical_uri("/a/./b", d), "/a/b");
        assert_eq!(canonical_uri("/a/b/../c", d), "/a/c");
        assert_eq!(canonical_uri("/../../a", d), "/a");
        assert_eq!(canonical_uri("/a/..", d), "/");
        assert_eq!(canonical_uri("/a/b/..", d), "/a");
        // An encoded dot is not a dot segment.
        assert_eq!(canonical_uri("/a/%2E%2E/b", d), "/a/%252E%252E/b");
    }

    #[test]
    fn single_encoding_encodes_once() {
        let s = UriEncoding::Single;
        assert_eq!(canonical_uri("/bucket/a%20b%2Bc", s), "/bucket/a%20b%2Bc");
        assert_eq!(canonical_uri("/bucket/a b+c", s), "/bucket/a%20b%2Bc");
        assert_eq!(canonical_uri("/bucket/a%2Fb", s), "/bucket/a%2Fb");
        assert_eq!(canonical_uri("/bucket/a%2fb", s), "/bucket/a%2Fb");
        assert_eq!(canonical_uri("/bucket/$x~y", s), "/bucket/%24x~y");
        // No normalisation for S3: keys may contain "." and "//".
        assert_eq!(canonical_uri("/bucket/./a//b/..", s), "/bucket/./a//b/..");
        assert_eq!(canonical_uri("", s), "/");
        // Escapes that decode to invalid UTF-8 are bytes like any other.
        assert_eq!(canonical_uri("/%FF%fe", s), "/%FF%FE");
        // A malformed escape is a literal '%'.
        assert_eq!(canonical_uri("/100%", s), "/100%25");
        assert_eq!(canonical_uri("/%zz", s), "/%25zz");
    }

    #[test]
    fn query_sorted_by_name_then_value_with_repeats_and_empties() {
        assert_eq!(canonical_query_string(""), "");
        assert_eq!(
            canonical_query_string("b=2&b=1&b=&a=&c"),
            "a=&b=&b=1&b=2&c="
        );
        assert_eq!(canonical_query_string("a=1&&b=2&"), "a=1&b=2");
        assert_eq!(canonical_query_string("=x"), "=x");
        // Sorting is by encoded bytes: uppercase before lowercase, '%' before letters.
        assert_eq!(
            canonical_query_string("z%20key=1&%C3%A4=2&A=3&a=4&_=5"),
            "%C3%A4=2&A=3&_=5&a=4&z%20key=1"
        );
    }

    #[test]
    fn query_is_decoded_and_reencoded_strictly() {
        assert_eq!(
            canonical_query_string("endpointType=iot:Data-ATS"),
            "endpointType=iot%3AData-ATS"
        );
        assert_eq!(
            canonical_query_string("endpointType=iot%3aData-ATS"),
            "endpointType=iot%3AData-ATS"
        );
        assert_eq!(canonical_query_string("q=a+b"), "q=a%20b");
        assert_eq!(canonical_query_string("q=a%2Bb"), "q=a%2Bb");
        assert_eq!(canonical_query_string("q=%7E%2D"), "q=~-");
        assert_eq!(canonical_query_string("q=ü☃"), "q=%C3%BC%E2%98%83");
        assert_eq!(canonical_query_string("q=%FF"), "q=%FF");
        assert_eq!(canonical_query_string("q=100%"), "q=100%25");
        assert_eq!(canonical_query_string("q=a=b"), "q=a%3Db");
    }

    #[test]
    fn presigned_signature_is_excluded() {
        assert_eq!(
            canonical_query_excluding("X-Amz-Signature=abc&b=1&X-Amz-Date=x", &["X-Amz-Signature"]),
            "X-Amz-Date=x&b=1"
        );
    }

    #[test]
    fn header_values_are_trimmed_folded_and_joined() {
        let headers = [
            ("Host", "127.0.0.1:18080"),
            ("X-Amz-Meta-Dup", "one"),
            ("x-amz-meta-dup", "  two   words \t"),
            ("Content-Type", "application/json;   charset=utf-8"),
            ("X-Empty", "   "),
            ("User-Agent", "not signed"),
        ];
        assert_eq!(
            canonical_headers(
                &headers,
                &[
                    "content-type",
                    "host",
                    "x-amz-meta-dup",
                    "x-empty",
                    "x-absent"
                ]
            ),
            "content-type:application/json; charset=utf-8\n\
             host:127.0.0.1:18080\n\
             x-amz-meta-dup:one,two words\n\
             x-empty:\n\
             x-absent:\n"
        );
    }

    #[test]
    fn whole_canonical_request() {
        let headers = [
            ("host", "127.0.0.1:18080"),
            ("x-amz-date", "20261130T104227Z"),
        ];
        let req = Request {
            method: "post",
            raw_path: "/topics/a%2Fb%20c",
            raw_query: "qos=1",
            headers: &headers,
            body: b"hi",
        };
        let hash = crate::crypto::sha256_hex(b"hi");
        assert!(hash.starts_with("8f4343"));
        assert_eq!(
            canonical_request(&req, &["host", "x-amz-date"], &hash, UriEncoding::Double),
            format!(
                "POST\n/topics/a%252Fb%2520c\nqos=1\nhost:127.0.0.1:18080\nx-amz-date:20261130T104227Z\n\n\
                 host;x-amz-date\n{hash}"
            )
        );
    }
}
