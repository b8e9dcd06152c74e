//! Job documents: the checks a document passes at CreateJob, and its
//! presigned-URL placeholders (the reference's section 4.4).
//!
//! `${aws:iot:s3-presigned-url:https://s3.amazonaws.com/BUCKET/KEY}` in a
//! document stands for a URL, signed afresh each time the document goes
//! to a device, from which the device may download that object without
//! credentials for a while. The document is stored with its placeholders;
//! [`substitute`] fills them in with whatever URL the caller signs (Roost's
//! own object URL for the local store, the store's presigned URL for S3).

use percent_encoding::percent_decode_str;
use serde_json::Value;

/// A job document is at most this many characters (32 KB).
pub const MAX_DOCUMENT_CHARS: usize = 32_768;

const PLACEHOLDER: &str = "${aws:iot:s3-presigned-url:";

/// Why a job document was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    #[error("the job document is {0} characters long; at most {MAX_DOCUMENT_CHARS} are allowed")]
    TooLong(usize),
    #[error("the job document is not valid JSON: {0}")]
    NotJson(String),
    #[error("a presigned-URL placeholder is not closed with '}}': {0}")]
    Unclosed(String),
    #[error("the presigned-URL placeholder's URL '{0}' does not name an S3 object (https://s3.amazonaws.com/BUCKET/KEY, https://s3.REGION.amazonaws.com/BUCKET/KEY or https://BUCKET.s3.amazonaws.com/KEY)")]
    NotAnObjectUrl(String),
}

/// The object a placeholder names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectRef {
    pub bucket: String,
    pub key: String,
}

/// Checks a document as CreateJob receives it: its length, that it is
/// JSON, and that every placeholder names an object. Returns the parsed
/// document.
pub fn check(document: &str) -> Result<Value, DocumentError> {
    let chars = document.chars().count();
    if chars > MAX_DOCUMENT_CHARS {
        return Err(DocumentError::TooLong(chars));
    }
    let value =
        serde_json::from_str(document).map_err(|e| DocumentError::NotJson(e.to_string()))?;
    placeholders(document)?;
    Ok(value)
}

/// Every placeholder in `document`: where it stands (byte range) and the
/// object it names.
pub fn placeholders(
    document: &str,
) -> Result<Vec<(std::ops::Range<usize>, ObjectRef)>, DocumentError> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = document[from..].find(PLACEHOLDER) {
        let start = from + at;
        let url_start = start + PLACEHOLDER.len();
        // The placeholder closes before its JSON string does.
        let closed = document[url_start..]
            .find(['}', '"'])
            .filter(|&len| document[url_start + len..].starts_with('}'));
        let Some(len) = closed else {
            let rest: String = document[start..].chars().take(80).collect();
            return Err(DocumentError::Unclosed(rest));
        };
        let url = &document[url_start..url_start + len];
        let object =
            object_of(url).ok_or_else(|| DocumentError::NotAnObjectUrl(url.to_string()))?;
        let end = url_start + len + 1;
        found.push((start..end, object));
        from = end;
    }
    Ok(found)
}

/// `document` with each placeholder replaced by `sign(object)`, escaped
/// for the JSON string it stands in.
pub fn substitute(
    document: &str,
    mut sign: impl FnMut(&ObjectRef) -> String,
) -> Result<String, DocumentError> {
    let mut out = String::with_capacity(document.len());
    let mut copied = 0;
    for (range, object) in placeholders(document)? {
        out.push_str(&document[copied..range.start]);
        // A JSON string literal: its quotes dropped, its escapes kept.
        let quoted = serde_json::Value::String(sign(&object)).to_string();
        out.push_str(&quoted[1..quoted.len() - 1]);
        copied = range.end;
    }
    out.push_str(&document[copied..]);
    Ok(out)
}

/// The bucket and key of an S3 object URL, path-style
/// (`https://s3[.REGION|-REGION].amazonaws.com/BUCKET/KEY`) or
/// virtual-hosted (`https://BUCKET.s3[.REGION].amazonaws.com/KEY`). The
/// key is percent-decoded; it must not be empty.
pub fn object_of(url: &str) -> Option<ObjectRef> {
    let rest = url.strip_prefix("https://")?;
    let (host, path) = rest.split_once('/')?;
    let host = host.strip_suffix(".amazonaws.com")?;
    let (bucket, key) = if host == "s3" || is_regional(host) {
        let (bucket, key) = path.split_once('/')?;
        (bucket, key)
    } else {
        let (bucket, endpoint) = host.split_once(".s3")?;
        if !(endpoint.is_empty() || endpoint.strip_prefix('.').is_some_and(is_region)) {
            return None;
        }
        (bucket, path)
    };
    let key = percent_decode_str(key).decode_utf8().ok()?;
    if !is_bucket(bucket) || key.is_empty() || key.contains('\0') {
        return None;
    }
    Some(ObjectRef {
        bucket: bucket.to_string(),
        key: key.into_owned(),
    })
}

/// `s3.REGION` or `s3-REGION`.
fn is_regional(host: &str) -> bool {
    host.strip_prefix("s3.")
        .or_else(|| host.strip_prefix("s3-"))
        .is_some_and(is_region)
}

/// A region name: `eu-west-1`, `us-gov-west-1`.
fn is_region(region: &str) -> bool {
    region.contains('-')
        && region.ends_with(|c: char| c.is_ascii_digit())
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// S3's bucket names: 3 to 63 of lower-case letters, digits, '.' and '-',
/// beginning and ending with a letter or digit.
pub fn is_bucket(name: &str) -> bool {
    let edge = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    (3..=63).contains(&name.len())
        && edge(name.as_bytes().first())
        && edge(name.as_bytes().last())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROTATE_CERT: &str = r#"{
	"operation": "rotate-cert",
	"cert": {
		"fileName": "certificate.pem.crt",
		"url": "${aws:iot:s3-presigned-url:https://s3.amazonaws.com/iot-webinar-audits/jobs/certs/certificate.pem.crt}"
	},
	"privateKey": {
		"fileName": "private.pem.key",
		"url": "${aws:iot:s3-presigned-url:https://s3.amazonaws.com/iot-webinar-audits/jobs/certs/private.pem.key}"
	}
}"#;

    #[test]
    fn the_scenarios_placeholders_are_filled_in_with_signed_urls() {
        check(ROTATE_CERT).unwrap();
        let mut asked = Vec::new();
        let out = substitute(ROTATE_CERT, |object| {
            asked.push(object.clone());
            format!(
                "http://127.0.0.1:9080/objects/{}/{}?sig=\"x\"",
                object.bucket, object.key
            )
        })
        .unwrap();
        assert_eq!(asked.len(), 2);
        assert_eq!(asked[0].bucket, "iot-webinar-audits");
        assert_eq!(asked[0].key, "jobs/certs/certificate.pem.crt");
        let value: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            value["privateKey"]["url"],
            "http://127.0.0.1:9080/objects/iot-webinar-audits/jobs/certs/private.pem.key?sig=\"x\""
        );
        assert!(!out.contains("${aws:iot"));
    }

    #[test]
    fn the_url_forms_s3_knows() {
        let object = |url| object_of(url).map(|o| (o.bucket, o.key));
        let want = Some(("my-bucket".to_string(), "a/b c.txt".to_string()));
        assert_eq!(
            object("https://s3.amazonaws.com/my-bucket/a/b%20c.txt"),
            want
        );
        assert_eq!(
            object("https://s3.eu-west-1.amazonaws.com/my-bucket/a/b%20c.txt"),
            want
        );
        assert_eq!(
            object("https://s3-eu-west-1.amazonaws.com/my-bucket/a/b%20c.txt"),
            want
        );
        assert_eq!(
            object("https://my-bucket.s3.amazonaws.com/a/b%20c.txt"),
            want
        );
        assert_eq!(
            object("https://my-bucket.s3.eu-west-1.amazonaws.com/a/b%20c.txt"),
            want
        );
        for bad in [
            "http://s3.amazonaws.com/my-bucket/key",
            "https://s3.amazonaws.com/my-bucket/",
            "https://s3.amazonaws.com/my-bucket",
            "https://s3.amazonaws.com/My_Bucket/key",
            "https://example.com/my-bucket/key",
            "https://s3.amazonaws.com.evil.com/my-bucket/key",
            "https://my-bucket.s3.evil.amazonaws.com/key",
            "https://s3.amazonaws.com/my-bucket/%ff",
        ] {
            assert_eq!(object(bad), None, "{bad}");
        }
    }

    #[test]
    fn documents_that_cannot_be_served_are_refused_at_creation() {
        assert!(matches!(check("{"), Err(DocumentError::NotJson(_))));
        let long = format!(r#"{{"pad": "{}"}}"#, "x".repeat(MAX_DOCUMENT_CHARS));
        assert!(matches!(check(&long), Err(DocumentError::TooLong(_))));
        assert!(matches!(
            check(r#"{"url": "${aws:iot:s3-presigned-url:https://s3.amazonaws.com/b"}"#),
            Err(DocumentError::Unclosed(_))
        ));
        assert!(matches!(
            check(r#"{"url": "${aws:iot:s3-presigned-url:ftp://x/y}"}"#),
            Err(DocumentError::NotAnObjectUrl(_))
        ));
        assert_eq!(
            check(r#"{"operation": "localScan"}"#).unwrap(),
            serde_json::json!({"operation": "localScan"})
        );
    }
}
