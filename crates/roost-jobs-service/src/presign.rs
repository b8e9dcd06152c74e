//! Presigned URLs for Roost's own object store (the local folder): what a
//! job document's `${aws:iot:s3-presigned-url:...}` becomes, and the check
//! the object route makes before it serves the object to a caller with no
//! credentials (a device's bare `GET`).
//!
//! A URL is `{base}/objects/{bucket}/{key}?expires={unix seconds}&signature={hex}`,
//! the signature an HMAC-SHA256, under a key only the server holds
//! (`objects-signing.key`, 0600, in the data directory), over the method,
//! bucket, key and expiry. Changing any of them, or waiting past the
//! expiry, makes the URL useless.
//!
//! Never: log a signature or the key; accept a key that leaves its bucket.

use crate::UrlSigner;
use hmac::{Hmac, Mac};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use roost_jobs::document::ObjectRef;
use sha2::Sha256;
use std::path::Path;

/// The signing key's file in the data directory.
pub const KEY_FILE: &str = "objects-signing.key";

/// What a path segment keeps unencoded (RFC 3986 unreserved).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Why a presigned URL is not honoured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UrlRefusal {
    /// Expired, or signed for something else: 403.
    #[error("the presigned URL is expired or its signature does not match")]
    Forbidden,
    /// A key that is not a plain path inside its bucket: 400.
    #[error("the object key is not valid: it must be a relative path inside its bucket, without '.' or '..' segments")]
    BadKey,
}

/// Signs and checks URLs for objects Roost serves itself.
pub struct LocalSigner {
    key: Vec<u8>,
    /// Where the object route is reached, e.g. `https://roost.example:9080`.
    base_url: String,
}

impl LocalSigner {
    /// Reads the data directory's signing key, creating it (32 random
    /// bytes, mode 0600) on first use.
    pub fn load_or_create(data_dir: &Path, base_url: impl Into<String>) -> std::io::Result<Self> {
        let path = data_dir.join(KEY_FILE);
        let key = match std::fs::read(&path) {
            Ok(key) if key.len() >= 32 => key,
            _ => {
                let mut key = vec![0u8; 32];
                getrandom::fill(&mut key).map_err(|e| std::io::Error::other(e.to_string()))?;
                roost_registry::pki::write_private_file(&path, &key)?;
                key
            }
        };
        Ok(Self {
            key,
            base_url: base_url.into().trim_end_matches('/').to_string(),
        })
    }

    fn signature(&self, bucket: &str, key: &str, expires: i64) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        mac.update(format!("GET\n{bucket}\n{key}\n{expires}").as_bytes());
        mac
    }

    /// Checks a URL's signature and expiry at `now_ms`, and that `key`
    /// stays inside its bucket.
    pub fn verify(
        &self,
        bucket: &str,
        key: &str,
        expires: i64,
        signature_hex: &str,
        now_ms: i64,
    ) -> Result<(), UrlRefusal> {
        if !key_is_inside(key) || bucket.is_empty() || bucket.contains(['/', '\\']) {
            return Err(UrlRefusal::BadKey);
        }
        let signature = hex::decode(signature_hex).map_err(|_| UrlRefusal::Forbidden)?;
        self.signature(bucket, key, expires)
            .verify_slice(&signature)
            .map_err(|_| UrlRefusal::Forbidden)?;
        if now_ms >= expires.saturating_mul(1000) {
            return Err(UrlRefusal::Forbidden);
        }
        Ok(())
    }
}

/// A key is a relative path of plain segments: no empty, `.` or `..`
/// segment, no backslash, no NUL.
pub fn key_is_inside(key: &str) -> bool {
    !key.is_empty()
        && !key.contains(['\\', '\0'])
        && key
            .split('/')
            .all(|segment| !matches!(segment, "" | "." | ".."))
}

impl LocalSigner {
    /// The URL for `object`, valid `expires_in_secs` from `now_ms`.
    pub fn url(
        &self,
        object: &ObjectRef,
        expires_in_secs: i64,
        now_ms: i64,
    ) -> Result<String, String> {
        if !key_is_inside(&object.key) {
            return Err(format!(
                "object key '{}' does not stay inside its bucket",
                object.key
            ));
        }
        let expires = now_ms / 1000 + expires_in_secs;
        let signature = hex::encode(
            self.signature(&object.bucket, &object.key, expires)
                .finalize()
                .into_bytes(),
        );
        let path: Vec<String> = object
            .key
            .split('/')
            .map(|segment| utf8_percent_encode(segment, SEGMENT).to_string())
            .collect();
        Ok(format!(
            "{}/objects/{}/{}?expires={expires}&signature={signature}",
            self.base_url,
            utf8_percent_encode(&object.bucket, SEGMENT),
            path.join("/")
        ))
    }
}

impl UrlSigner for LocalSigner {
    fn presign<'a>(
        &'a self,
        object: &'a ObjectRef,
        expires_in_secs: i64,
        now_ms: i64,
    ) -> crate::Presigned<'a> {
        let url = self.url(object, expires_in_secs, now_ms);
        Box::pin(std::future::ready(url))
    }
}

/// An S3-compatible store (MinIO, Ceph, AWS S3, moto) and its credentials.
#[derive(Clone)]
pub struct S3Store {
    pub endpoint: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

// Hand-written so the secret never reaches a log line.
impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Store")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl S3Store {
    /// A client for one bucket (path-style requests, as S3-compatible
    /// stores expect).
    pub fn bucket(&self, bucket: &str) -> Result<object_store::aws::AmazonS3, String> {
        object_store::aws::AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_region(&self.region)
            .with_bucket_name(bucket)
            .with_access_key_id(&self.access_key_id)
            .with_secret_access_key(&self.secret_access_key)
            .with_allow_http(self.endpoint.starts_with("http://"))
            .with_virtual_hosted_style_request(false)
            .build()
            .map_err(|e| format!("S3 client for bucket {bucket}: {e}"))
    }
}

/// Presigned GET URLs of an S3-compatible store, signed with the store's
/// own credentials (SigV4 query signing): the device downloads from the
/// store itself.
pub struct S3Signer(pub S3Store);

impl UrlSigner for S3Signer {
    fn presign<'a>(
        &'a self,
        object: &'a ObjectRef,
        expires_in_secs: i64,
        _now_ms: i64,
    ) -> crate::Presigned<'a> {
        Box::pin(async move {
            use object_store::signer::Signer;
            let store = self.0.bucket(&object.bucket)?;
            let path = object_store::path::Path::parse(&object.key)
                .map_err(|e| format!("object key '{}': {e}", object.key))?;
            let expires = std::time::Duration::from_secs(expires_in_secs.max(1) as u64);
            store
                .signed_url(reqwest::Method::GET, &path, expires)
                .await
                .map(|url| url.to_string())
                .map_err(|e| format!("presigning {}/{}: {e}", object.bucket, object.key))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(key: &str) -> ObjectRef {
        ObjectRef {
            bucket: "iot-webinar-audits".into(),
            key: key.into(),
        }
    }

    fn parts(url: &str) -> (String, i64, String) {
        let (path, query) = url.split_once('?').unwrap();
        let key = path
            .split_once("/objects/iot-webinar-audits/")
            .unwrap()
            .1
            .replace("%20", " ");
        let mut expires = 0;
        let mut signature = String::new();
        for pair in query.split('&') {
            match pair.split_once('=').unwrap() {
                ("expires", v) => expires = v.parse().unwrap(),
                ("signature", v) => signature = v.to_string(),
                _ => {}
            }
        }
        (key, expires, signature)
    }

    #[test]
    fn a_url_is_honoured_until_it_expires_and_only_as_signed() {
        let dir = tempfile::tempdir().unwrap();
        let signer = LocalSigner::load_or_create(dir.path(), "http://127.0.0.1:9080/").unwrap();
        let now = 1_700_000_000_000;
        let url = signer
            .url(&object("jobs/certs/new cert.pem"), 300, now)
            .unwrap();
        assert!(url.starts_with(
            "http://127.0.0.1:9080/objects/iot-webinar-audits/jobs/certs/new%20cert.pem?expires="
        ));
        let (key, expires, signature) = parts(&url);
        let bucket = "iot-webinar-audits";
        assert_eq!(
            signer.verify(bucket, &key, expires, &signature, now),
            Ok(())
        );
        assert_eq!(
            signer.verify(bucket, &key, expires, &signature, now + 300_000),
            Err(UrlRefusal::Forbidden),
            "expired"
        );
        assert_eq!(
            signer.verify(bucket, "jobs/certs/other.pem", expires, &signature, now),
            Err(UrlRefusal::Forbidden)
        );
        assert_eq!(
            signer.verify(bucket, &key, expires + 3600, &signature, now),
            Err(UrlRefusal::Forbidden),
            "a later expiry is not signed"
        );
        let mut flipped = signature.clone().into_bytes();
        flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert_eq!(
            signer.verify(bucket, &key, expires, &flipped, now),
            Err(UrlRefusal::Forbidden)
        );
        assert_eq!(
            signer.verify(bucket, "../../roost.db", expires, &signature, now),
            Err(UrlRefusal::BadKey)
        );
    }

    #[test]
    fn the_key_is_kept_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = LocalSigner::load_or_create(dir.path(), "http://x").unwrap();
        let again = LocalSigner::load_or_create(dir.path(), "http://x").unwrap();
        assert_eq!(first.key, again.key);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn keys_must_stay_inside_their_bucket() {
        for bad in [
            "", "/abs", "a/../b", "..", "a//b", "a/./b", "a\\b", "a\0b", "a/",
        ] {
            assert!(!key_is_inside(bad), "{bad:?}");
        }
        for good in ["a", "jobs/certs/x.pem", "a..b/c", ".hidden/x"] {
            assert!(key_is_inside(good), "{good:?}");
        }
    }
}
