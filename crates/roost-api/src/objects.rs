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
use roost_jobs_service::presign::{LocalSigner, UrlRefusal};
use std::path::PathBuf;
use std::sync::Arc;

/// Where the local object store keeps objects, and who signs their URLs.
pub struct ObjectsConfig {
    /// `{data_dir}/objects`: objects are `{dir}/{bucket}/{key}`.
    pub dir: PathBuf,
    pub signer: Arc<LocalSigner>,
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
    let path = config.dir.join(bucket).join(&key);
    match tokio::fs::read(&path).await {
        Ok(bytes) => Ok((
            StatusCode::OK,
            [(axum::http::header::CONTENT_TYPE, "application/octet-stream")],
            bytes,
        )
            .into_response()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ApiError::new(
            404,
            "NoSuchKey",
            format!("no object {key} in bucket {bucket}"),
        )),
        Err(e) => {
            tracing::error!(error = %e, bucket, "reading an object failed");
            Err(ApiError::new(
                500,
                "InternalError",
                "the object could not be read",
            ))
        }
    }
}
