//! Errors as AWS REST JSON clients read them: the code in `x-amzn-ErrorType`
//! (botocore's first choice) and in the body's `__type`, the text in
//! `message`, and a request id. A client mistake is always a 4xx.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use roost_registry::RegistryError;
use serde_json::{json, Map, Value};

#[derive(Debug)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    /// Modeled members besides `message` (e.g. `resourceId`).
    pub extra: Map<String, Value>,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            extra: Map::new(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(400, "InvalidRequestException", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "ResourceNotFoundException", message)
    }

    pub fn internal() -> Self {
        Self::new(
            500,
            "InternalFailureException",
            "An unexpected error occurred; see the server log",
        )
    }

    pub fn into_response_with_id(self, request_id: &str) -> Response {
        let mut body = Map::new();
        body.insert("__type".into(), json!(self.code));
        body.insert("message".into(), json!(self.message));
        body.extend(self.extra);
        let mut response = (
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST),
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            Value::Object(body).to_string(),
        )
            .into_response();
        let headers = response.headers_mut();
        headers.insert("x-amzn-ErrorType", HeaderValue::from_static(self.code));
        if let Ok(id) = HeaderValue::from_str(request_id) {
            headers.insert("x-amzn-RequestId", id);
        }
        response
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.into_response_with_id(&uuid::Uuid::new_v4().to_string())
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        if let RegistryError::Internal(detail) = &e {
            // The detail may name files or queries: log it, never send it.
            tracing::error!(error = %detail, "internal failure in the registry");
            return Self::internal();
        }
        let mut err = Self::new(e.http_status(), e.aws_code(), e.to_string());
        if let RegistryError::AlreadyExists {
            resource_id,
            resource_arn,
            ..
        } = &e
        {
            if let Some(id) = resource_id {
                err.extra.insert("resourceId".into(), json!(id));
            }
            if let Some(arn) = resource_arn {
                err.extra.insert("resourceArn".into(), json!(arn));
            }
        }
        err
    }
}

pub type ApiResult<T = Value> = Result<T, ApiError>;
