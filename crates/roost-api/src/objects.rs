//! Presigned object downloads: `GET /objects/{bucket}/{key}?expires=&signature=`,
//! the URLs a job document's presigned-URL placeholders become when Roost's
//! object store is its local folder. The signature is the credential, so a
//! device fetches with a bare HTTP GET, as from S3.
//!
//! Never: serve a file outside `{objects}/{bucket}/`, or tell a caller with a
//! bad signature whether the object exists.

use crate::error::ApiError;
use crate::request::ApiRequest;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use roost_jobs::document::is_bucket;
use roost_jobs_service::presign::{LocalSigner, S3Store, UrlRefusal};
use std::path::PathBuf;
use std::sync::Arc;

/// Where the object store keeps objects, and who signs their URLs.
pub struct ObjectsConfig {
    /// `{data_dir}/objects`: objects are `{dir}/{bucket}/{key}`.
    pub dir: PathBuf,
    pub signer: Arc<LocalSigner>,
    /// The S3-compatible store the operator's object operations go to
    /// instead of `dir`, when one is configured.
    pub s3: Option<S3Store>,
}

/// A presigned object request: a GET under `/objects/` with a signature.
pub(crate) fn is_presigned_object(req: &ApiRequest) -> bool {
    req.method == "GET"
        && req.segments.first().is_some_and(|s| s == "objects")
        && req.query("signature").is_some()
}

pub(crate) async fn serve(
    config: Option<&ObjectsConfig>,
    req: &ApiRequest,
) -> Result<Response, ApiError> {
    let Some(config) = config else {
        return Err(ApiError::new(404, "NoSuchKey", "no local object store"));
    };
    let (bucket, key) = match req.segments.as_slice() {
        [_, bucket, key @ ..] if !key.is_empty() => (bucket.as_str(), key.join("/")),
        _ => {
            return Err(ApiError::invalid(
                "a presigned object URL is /objects/BUCKET/KEY",
            ))
        }
    };
    let expires = req
        .query_i64("expires")?
        .ok_or_else(|| ApiError::invalid("the presigned URL has no expires"))?;
    let signature = req.query("signature").unwrap_or_default();
    match config.signer.verify(
        bucket,
        &key,
        expires,
        signature,
        roost_jobs_service::now_ms(),
    ) {
        Ok(()) => {}
        Err(refusal @ UrlRefusal::BadKey) => return Err(ApiError::invalid(refusal.to_string())),
        Err(refusal @ UrlRefusal::Forbidden) => {
            return Err(ApiError::new(403, "AccessDenied", refusal.to_string()))
        }
    }
    read(config, bucket, &key).await
}

/// The object's bytes, or NoSuchKey.
async fn read(config: &ObjectsConfig, bucket: &str, key: &str) -> Result<Response, ApiError> {
    match tokio::fs::read(config.dir.join(bucket).join(key)).await {
        Ok(bytes) => Ok((
            StatusCode::OK,
            [(axum::http::header::CONTENT_TYPE, "application/octet-stream")],
            bytes,
        )
            .into_response()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(no_such_key(bucket, key)),
        Err(e) => Err(io_failure(e, bucket)),
    }
}

fn no_such_key(bucket: &str, key: &str) -> ApiError {
    ApiError::new(
        404,
        "NoSuchKey",
        format!("no object {key} in bucket {bucket}"),
    )
}

fn io_failure(e: std::io::Error, bucket: &str) -> ApiError {
    tracing::error!(error = %e, bucket, "object store I/O failed");
    ApiError::new(500, "InternalError", "the object store failed")
}

/// Most keys one listing returns.
const MAX_LISTED: usize = 10_000;

/// The bucket and key a `/objects/BUCKET/KEY…` path names, checked.
fn bucket_and_key(req: &ApiRequest) -> Result<(&str, String), ApiError> {
    match req.segments.as_slice() {
        [_, bucket, key @ ..] if !key.is_empty() => {
            let key = key.join("/");
            if !roost_jobs_service::presign::key_is_inside(&key) || !is_bucket(bucket) {
                return Err(ApiError::invalid(format!(
                    "'{bucket}/{key}' is not BUCKET/KEY: a bucket of lower-case letters, digits, '.' and '-', a key of plain path segments"
                )));
            }
            Ok((bucket.as_str(), key))
        }
        _ => Err(ApiError::invalid("an object is /objects/BUCKET/KEY")),
    }
}

/// The operator's object operations (SigV4-signed, what `roost objects`
/// sends): `PUT` and `GET` and `DELETE /objects/BUCKET/KEY`, and
/// `GET /objects?bucket=&prefix=` to list.
pub(crate) async fn serve_signed(
    config: Option<&ObjectsConfig>,
    req: &ApiRequest,
) -> Result<Response, ApiError> {
    let Some(config) = config else {
        return Err(ApiError::new(404, "NoSuchKey", "no local object store"));
    };
    let listing = req.method == "GET" && req.segments.len() == 1;
    if let Some(store) = &config.s3 {
        if listing {
            return s3_list(store, req).await;
        }
        let (bucket, key) = bucket_and_key(req)?;
        return s3_object(store, &req.method, bucket, &key, &req.body).await;
    }
    if listing {
        return list(config, req).await;
    }
    let (bucket, key) = bucket_and_key(req)?;
    let path = config.dir.join(bucket).join(&key);
    let internal = |e: std::io::Error| io_failure(e, bucket);
    match req.method.as_str() {
        "PUT" => {
            let dir = path.parent().unwrap_or(&config.dir).to_path_buf();
            let body = req.body.clone();
            tokio::task::spawn_blocking(move || {
                use std::os::unix::fs::DirBuilderExt;
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(&dir)?;
                roost_registry::pki::write_private_file(&path, &body)
            })
            .await
            .map_err(|e| internal(std::io::Error::other(e)))?
            .map_err(internal)?;
            Ok((
                StatusCode::OK,
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                "{}",
            )
                .into_response())
        }
        "GET" => read(config, bucket, &key).await,
        "DELETE" => match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok((
                StatusCode::OK,
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                "{}",
            )
                .into_response()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(no_such_key(bucket, &key)),
            Err(e) => Err(internal(e)),
        },
        method => Err(ApiError::new(
            405,
            "MethodNotAllowed",
            format!("{method} is not an object operation: PUT, GET or DELETE /objects/BUCKET/KEY"),
        )),
    }
}

/// `{"objects": [{"bucket", "key", "size"}], "truncated": bool}`, in order.
async fn list(config: &ObjectsConfig, req: &ApiRequest) -> Result<Response, ApiError> {
    let bucket = req.query("bucket").map(str::to_string);
    let prefix = req.query("prefix").unwrap_or_default().to_string();
    if bucket.as_deref().is_some_and(|b| !is_bucket(b)) {
        return Err(ApiError::invalid("bucket is not a bucket name"));
    }
    let root = config.dir.clone();
    let listed = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        let buckets: Vec<String> = match bucket {
            Some(b) => vec![b],
            None => {
                let mut names: Vec<String> = std::fs::read_dir(&root)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .filter(|e| e.path().is_dir())
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect();
                names.sort();
                names
            }
        };
        let mut truncated = false;
        for b in buckets {
            let mut stack = vec![root.join(&b)];
            let mut found = Vec::new();
            while let Some(dir) = stack.pop() {
                for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                    let path = entry.path();
                    if path.is_dir() {
                        stack.push(path);
                    } else if let Ok(rel) = path.strip_prefix(root.join(&b)) {
                        let key = rel.to_string_lossy().to_string();
                        if key.starts_with(&prefix) && !key.ends_with(".tmp") {
                            let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                            found.push((key, size));
                        }
                    }
                }
            }
            found.sort();
            for (key, size) in found {
                if out.len() == MAX_LISTED {
                    truncated = true;
                    break;
                }
                out.push(serde_json::json!({"bucket": b, "key": key, "size": size}));
            }
        }
        (out, truncated)
    })
    .await
    .map_err(|_| ApiError::new(500, "InternalError", "listing the object store failed"))?;
    let body = serde_json::json!({"objects": listed.0, "truncated": listed.1});
    Ok((
        StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response())
}

fn s3_failure(e: impl std::fmt::Display, bucket: &str) -> ApiError {
    tracing::error!(error = %e, bucket, "the S3-compatible object store failed");
    ApiError::new(
        502,
        "InternalError",
        format!("the object store (bucket {bucket}) failed: {e}"),
    )
}

fn json_ok() -> Response {
    (
        StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        "{}",
    )
        .into_response()
}

/// One object in the S3-compatible store: the bytes it holds, or NoSuchKey.
pub(crate) async fn s3_read(store: &S3Store, bucket: &str, key: &str) -> Result<Vec<u8>, ApiError> {
    use object_store::ObjectStore;
    let client = store.bucket(bucket).map_err(|e| s3_failure(e, bucket))?;
    let path = object_store::path::Path::from(key);
    match client.get(&path).await {
        Ok(result) => Ok(result
            .bytes()
            .await
            .map_err(|e| s3_failure(e, bucket))?
            .to_vec()),
        Err(object_store::Error::NotFound { .. }) => Err(no_such_key(bucket, key)),
        Err(e) => Err(s3_failure(e, bucket)),
    }
}

async fn s3_object(
    store: &S3Store,
    method: &str,
    bucket: &str,
    key: &str,
    body: &[u8],
) -> Result<Response, ApiError> {
    use object_store::ObjectStore;
    let client = store.bucket(bucket).map_err(|e| s3_failure(e, bucket))?;
    let path = object_store::path::Path::from(key);
    match method {
        "PUT" => {
            client
                .put(&path, body.to_vec().into())
                .await
                .map_err(|e| s3_failure(e, bucket))?;
            Ok(json_ok())
        }
        "GET" => {
            let bytes = s3_read(store, bucket, key).await?;
            Ok((
                StatusCode::OK,
                [(axum::http::header::CONTENT_TYPE, "application/octet-stream")],
                bytes,
            )
                .into_response())
        }
        "DELETE" => {
            match client.head(&path).await {
                Ok(_) => {}
                Err(object_store::Error::NotFound { .. }) => return Err(no_such_key(bucket, key)),
                Err(e) => return Err(s3_failure(e, bucket)),
            }
            client
                .delete(&path)
                .await
                .map_err(|e| s3_failure(e, bucket))?;
            Ok(json_ok())
        }
        method => Err(ApiError::new(
            405,
            "MethodNotAllowed",
            format!("{method} is not an object operation: PUT, GET or DELETE /objects/BUCKET/KEY"),
        )),
    }
}

async fn s3_list(store: &S3Store, req: &ApiRequest) -> Result<Response, ApiError> {
    use futures_util::StreamExt;
    use object_store::ObjectStore;
    let Some(bucket) = req.query("bucket").filter(|b| is_bucket(b)) else {
        return Err(ApiError::invalid(
            "with an S3-compatible store, name the bucket to list (roost objects ls BUCKET[/PREFIX])",
        ));
    };
    let prefix = req.query("prefix").unwrap_or_default();
    let client = store.bucket(bucket).map_err(|e| s3_failure(e, bucket))?;
    let mut listing = client.list(None);
    let mut objects = Vec::new();
    let mut truncated = false;
    while let Some(item) = listing.next().await {
        let meta = item.map_err(|e| s3_failure(e, bucket))?;
        let key = meta.location.to_string();
        if !key.starts_with(prefix) {
            continue;
        }
        if objects.len() == MAX_LISTED {
            truncated = true;
            break;
        }
        objects.push(serde_json::json!({"bucket": bucket, "key": key, "size": meta.size}));
    }
    objects.sort_by(|a, b| a["key"].as_str().cmp(&b["key"].as_str()));
    let body = serde_json::json!({"objects": objects, "truncated": truncated});
    Ok((
        StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response())
}
