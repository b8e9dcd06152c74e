//! `s3`: store the payload as an object. By default the object store is a
//! folder under the data directory: bucket = folder, key = path below it.

use super::{private_dir_all, template, ActionError};
use crate::{ObjectStoreConfig, Shared};
use roost_sql::{Context, Output, SqlVersion, Template};
use serde_json::Value;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

pub struct S3Action {
    pub bucket: String,
    key: Template,
}

/// Bucket names as S3 allows them: 3–63 of `[a-z0-9.-]`, starting and
/// ending with a letter or digit.
fn valid_bucket(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

impl S3Action {
    pub fn parse(config: &Value, version: SqlVersion) -> Result<Self, String> {
        let bucket = config
            .get("bucketName")
            .and_then(Value::as_str)
            .ok_or("s3.bucketName is required")?;
        if !valid_bucket(bucket) {
            return Err(format!("s3.bucketName '{bucket}' is not a valid bucket name (3-63 characters of a-z, 0-9, '.', '-')"));
        }
        Ok(Self {
            bucket: bucket.to_string(),
            key: template(config, "key", version).map_err(|e| format!("s3.{e}"))?,
        })
    }

    pub async fn execute(
        &self,
        shared: &Shared,
        output: &Output,
        payload: &[u8],
        ctx: &Context<'_>,
    ) -> Result<(), ActionError> {
        let key = self
            .key
            .render(payload, ctx)
            .map_err(|e| ActionError::permanent(format!("rendering the key: {e}")))?;
        match &shared.config.object_store {
            ObjectStoreConfig::Local => self.put_local(shared, output, &key).await,
            ObjectStoreConfig::S3 { .. } => self.put_s3(shared, output, &key).await,
        }
    }

    async fn put_s3(&self, shared: &Shared, output: &Output, key: &str) -> Result<(), ActionError> {
        let store = bucket_client(shared, &self.bucket)?;
        let path = object_store::path::Path::parse(key).map_err(|e| {
            ActionError::permanent(format!("the object key '{key}' is not valid: {e}"))
        })?;
        store
            .put(&path, output.to_bytes().into())
            .await
            .map(|_| ())
            .map_err(|e| match e {
                object_store::Error::NotFound { .. } => ActionError::permanent(format!(
                    "Failed to put S3 object: bucket {} not found",
                    self.bucket
                )),
                other => ActionError::transient(format!("Failed to put S3 object: {other}")),
            })
    }

    async fn put_local(
        &self,
        shared: &Shared,
        output: &Output,
        key: &str,
    ) -> Result<(), ActionError> {
        let path = object_path(&shared.config.objects_dir, &self.bucket, key)?;
        let bytes = output.to_bytes();
        let failed =
            |e: std::io::Error| ActionError::transient(format!("Failed to put S3 object: {e}"));
        if let Some(parent) = path.parent() {
            private_dir_all(parent).await.map_err(failed)?;
        }
        // Write to a temporary name and rename, so a reader never sees half an object.
        let tmp = path.with_file_name(format!(
            ".{}.tmp-{}",
            path.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("object"),
            uuid::Uuid::new_v4().simple()
        ));
        write_private(&tmp, &bytes).await.map_err(failed)?;
        tokio::fs::rename(&tmp, &path).await.map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            failed(e)
        })
    }
}

/// Writes `bytes` to a new file created 0600. The mode is given at creation,
/// not set afterwards, so no other user can open the file in between;
/// `create_new` refuses to follow anything already at the (random) name.
async fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(path).await?;
    // tokio hands writes to a blocking thread: flush so every byte is in the
    // file before it is renamed into place.
    let written = match file.write_all(bytes).await {
        Ok(()) => file.flush().await,
        Err(e) => Err(e),
    };
    if written.is_err() {
        drop(file);
        let _ = tokio::fs::remove_file(path).await;
    }
    written
}

/// The S3-compatible client for `bucket`, built once.
fn bucket_client(
    shared: &Shared,
    bucket: &str,
) -> Result<Arc<dyn object_store::ObjectStore>, ActionError> {
    let ObjectStoreConfig::S3 {
        endpoint,
        region,
        access_key_id,
        secret_access_key,
    } = &shared.config.object_store
    else {
        return Err(ActionError::permanent(
            "no S3-compatible store is configured",
        ));
    };
    let mut buckets = shared.buckets.lock().expect("bucket clients lock");
    if let Some(client) = buckets.get(bucket) {
        return Ok(client.clone());
    }
    let client = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(endpoint)
        .with_region(region)
        .with_bucket_name(bucket)
        .with_access_key_id(access_key_id)
        .with_secret_access_key(secret_access_key)
        .with_allow_http(endpoint.starts_with("http://"))
        .with_virtual_hosted_style_request(false)
        .build()
        .map_err(|e| ActionError::permanent(format!("S3 client for bucket {bucket}: {e}")))?;
    let client: Arc<dyn object_store::ObjectStore> = Arc::new(client);
    buckets.insert(bucket.to_string(), client.clone());
    Ok(client)
}

/// `<objects>/<bucket>/<key>`, refusing keys that would leave the bucket.
fn object_path(root: &Path, bucket: &str, key: &str) -> Result<PathBuf, ActionError> {
    if key.is_empty() || key.len() > 1024 {
        return Err(ActionError::permanent(
            "the object key must be 1 to 1024 bytes",
        ));
    }
    let mut path = root.join(bucket);
    for component in Path::new(key).components() {
        match component {
            Component::Normal(part) => path.push(part),
            _ => return Err(ActionError::permanent(format!("the object key '{key}' has '..', '.' or a leading '/'; it must stay inside the bucket"))),
        }
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_stay_inside_the_bucket() {
        let root = Path::new("/data/objects");
        assert_eq!(
            object_path(root, "b", "a/b/c").unwrap(),
            PathBuf::from("/data/objects/b/a/b/c")
        );
        assert!(object_path(root, "b", "../x").is_err());
        assert!(object_path(root, "b", "/etc/passwd").is_err());
        assert!(object_path(root, "b", "a/../../x").is_err());
        assert!(object_path(root, "b", "").is_err());
    }

    #[test]
    fn bucket_names() {
        assert!(valid_bucket("iot-webinar-audits"));
        assert!(!valid_bucket("UPPER"));
        assert!(!valid_bucket("ab"));
        assert!(!valid_bucket("-leading"));
    }
}
