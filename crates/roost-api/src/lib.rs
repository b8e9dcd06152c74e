//! The AWS IoT control plane: the `iot` REST JSON API (restJson1) on the
//! API port, authenticated with SigV4, so `aws iot … --endpoint-url` and
//! boto3 work unchanged against Roost.
//!
//! Every request goes through one handler: read the body (bounded), verify
//! the signature, route on the raw path's segments, run the operation, and
//! answer JSON or an AWS-shaped error. This crate holds no AWS semantics of
//! its own: those live in `roost-registry`.
#![forbid(unsafe_code)]

mod data;
mod error;
pub mod health;
mod jobs_data;
mod objects;
mod ops;
mod request;
mod routes;

pub use objects::ObjectsConfig;
pub mod sns;

pub use error::{ApiError, ApiResult};

use axum::body::Body;
use axum::http::{HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use request::ApiRequest;
use roost_registry::Registry;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The largest request body the control plane reads. AWS allows a policy
/// document field of ~400 KB; nothing else comes near.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// How far a request's X-Amz-Date may be from our clock (AWS: 15 minutes).
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(15 * 60);

/// Signing names accepted on the API port: the control plane, iot-data,
/// iot-jobs-data and SNS.
const SIGNING_NAMES: &[&str] = &["iot", "iotdata", "iot-jobs-data", "sns"];

/// What the control plane needs at run time.
pub struct ApiConfig {
    /// The host name DescribeEndpoint returns for devices.
    pub endpoint_host: String,
    /// SNS topics' delivery (mail, http, signatures); `None` turns the SNS
    /// API's Subscribe and Publish into InternalError answers.
    pub sns: Option<Arc<roost_notify::Notifier>>,
    /// Renders `GET /metrics` (OpenMetrics text); `None`: no such route.
    pub metrics: Option<Arc<MetricsRenderer>>,
    /// The jobs service; `None` answers the jobs API with
    /// ServiceUnavailableException.
    pub jobs: Option<roost_jobs_service::JobsService>,
    /// The local object store's presigned downloads; `None`: no such route.
    pub objects: Option<objects::ObjectsConfig>,
    /// Checks `/readyz` runs besides the registry's.
    pub readiness: Vec<health::ReadinessCheck>,
}

/// What renders the metrics page.
pub type MetricsRenderer = dyn Fn() -> String + Send + Sync;

/// The content type of `GET /metrics`.
const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone)]
pub struct ApiState {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    broker: roost_broker::Broker,
    config: ApiConfig,
}

impl ApiState {
    pub fn new(registry: Registry, broker: roost_broker::Broker, config: ApiConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                registry,
                broker,
                config,
            }),
        }
    }

    pub(crate) fn broker(&self) -> &roost_broker::Broker {
        &self.inner.broker
    }

    pub(crate) fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    pub(crate) fn config(&self) -> &ApiConfig {
        &self.inner.config
    }
}

/// The control plane's router.
pub fn router(state: ApiState) -> axum::Router {
    axum::Router::new().fallback(move |req: Request<Body>| {
        let state = state.clone();
        async move { handle(state, req).await }
    })
}

/// How the API port bounds its clients.
#[derive(Clone, Debug)]
pub struct HttpLimits {
    /// Connections served at once; more are closed at once and counted.
    pub max_connections: usize,
    /// How long a request's headers may take to arrive, and how long a
    /// kept-alive connection may wait idle for its next request.
    pub header_timeout: Duration,
    /// How long a request's body may take to arrive.
    pub body_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_connections: 256,
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(30),
        }
    }
}

/// How long a connection may take to finish its request in flight once
/// the server is stopping.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Serves `app` (the control plane's [`router`], and what the binary adds
/// to it: the web console) on an already bound listener until `shutdown`:
/// at most `limits.max_connections` at once, every read with a deadline.
/// Returns once its connections have ended.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    limits: HttpLimits,
    stats: Arc<roost_listener::ListenerStats>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let config = roost_listener::ListenerConfig::new("api", limits.max_connections);
    let body_timeout = limits.body_timeout;
    let app = app.layer(axum::middleware::from_fn(
        move |req: Request<Body>, next: axum::middleware::Next| async move {
            with_body_deadline(req, next, body_timeout).await
        },
    ));
    let stop = shutdown.clone();
    roost_listener::serve(listener, config, stats, stop, move |stream, peer| {
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let header_timeout = limits.header_timeout;
        let mut shutdown = shutdown.clone();
        async move {
            let stop = async move {
                let _ = shutdown.changed().await;
            };
            let served =
                roost_listener::serve_http1(stream, service, header_timeout, stop, CLOSE_GRACE);
            if let Err(e) = served.await {
                tracing::debug!(%peer, error = %e, "API connection ended with an error");
            }
        }
    })
    .await
}

/// Reads the request body before the handler, within `timeout`: a client
/// that announces a body and trickles it is answered 408 and closed instead
/// of holding a connection and a task.
async fn with_body_deadline(
    req: Request<Body>,
    next: axum::middleware::Next,
    timeout: Duration,
) -> Response {
    let (parts, body) = req.into_parts();
    let body = match tokio::time::timeout(timeout, axum::body::to_bytes(body, MAX_BODY_BYTES)).await
    {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(_)) => {
            return ApiError::new(
                413,
                "RequestEntityTooLargeException",
                format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
            )
            .into_response_with_id(&uuid::Uuid::new_v4().to_string())
        }
        Err(_) => {
            let mut response = ApiError::new(
                408,
                "RequestTimeoutException",
                format!(
                    "the request body did not arrive within {} seconds",
                    timeout.as_secs()
                ),
            )
            .into_response_with_id(&uuid::Uuid::new_v4().to_string());
            response.headers_mut().insert(
                axum::http::header::CONNECTION,
                HeaderValue::from_static("close"),
            );
            return response;
        }
    };
    next.run(Request::from_parts(parts, Body::from(body))).await
}

async fn authenticate(state: &ApiState, req: &ApiRequest) -> ApiResult<roost_sigv4::Verified> {
    let headers: Vec<(&str, &str)> = req
        .headers
        .iter()
        .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str(), v)))
        .collect();
    let signed = roost_sigv4::Request {
        method: &req.method,
        raw_path: &req.raw_path,
        raw_query: &req.raw_query,
        headers: &headers,
        body: &req.body,
    };
    let key = match roost_sigv4::claimed_access_key_id(&signed) {
        Some(id) => state
            .registry()
            .access_key_secret(&id)
            .await?
            .map(|secret| (id, secret)),
        None => None,
    };
    let options = roost_sigv4::VerifyOptions {
        services: SIGNING_NAMES,
        now: SystemTime::now(),
        max_clock_skew: MAX_CLOCK_SKEW,
        uri_encoding: roost_sigv4::UriEncoding::Double,
    };
    // The secret is fetched before verification so the verifier itself stays
    // synchronous and pure; the lookup then only answers for that one key.
    let lookup = |id: &str| {
        key.as_ref()
            .filter(|(k, _)| k == id)
            .map(|(_, s)| s.clone())
    };
    roost_sigv4::verify_any(&signed, &options, &lookup).map_err(|e| {
        tracing::info!(error = %e, method = %req.method, path = %req.loggable_path(), "request refused: signature");
        ApiError::new(e.http_status(), e.aws_error_code(), e.to_string())
    })
}

async fn handle(state: ApiState, request: Request<Body>) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(b) => b.to_vec(),
        Err(_) => {
            return ApiError::new(
                413,
                "RequestEntityTooLargeException",
                format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
            )
            .into_response_with_id(&request_id)
        }
    };
    if parts.method == "GET" {
        match parts.uri.path() {
            "/healthz" => return health::healthz(),
            "/readyz" => return health::readyz(&state).await,
            _ => {}
        }
    }
    // The CA certificate devices must trust is public: no signature needed.
    if parts.method == "GET" && parts.uri.path() == "/root-ca.pem" {
        return (
            StatusCode::OK,
            [(axum::http::header::CONTENT_TYPE, "application/x-pem-file")],
            state.registry().ca().root_pem().to_string(),
        )
            .into_response();
    }
    // Metrics are for scrapers, which do not sign: counts only, no names of
    // things or topics beyond rule names (docs/metrics.md).
    if parts.method == "GET" && parts.uri.path() == "/metrics" {
        if let Some(render) = &state.config().metrics {
            return (
                StatusCode::OK,
                [(axum::http::header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
                render(),
            )
                .into_response();
        }
    }
    // So is the certificate SNS messages are signed with (SigningCertURL).
    if parts.method == "GET" {
        if let Some(file) = parts.uri.path().strip_prefix('/').filter(|p| {
            p.starts_with("SimpleNotificationService-") && p.ends_with(".pem") && !p.contains('/')
        }) {
            let pem = match &state.config().sns {
                Some(notifier) => notifier.signing_certificate(file).await,
                None => None,
            };
            return match pem {
                Some(pem) => (
                    StatusCode::OK,
                    [(axum::http::header::CONTENT_TYPE, "application/x-pem-file")],
                    pem,
                )
                    .into_response(),
                None => StatusCode::NOT_FOUND.into_response(),
            };
        }
    }
    let req = match ApiRequest::new(
        parts.method.to_string(),
        parts.uri.path().to_string(),
        parts.uri.query().unwrap_or("").to_string(),
        parts.headers,
        body,
    ) {
        Ok(r) => r,
        Err(e) => return e.into_response_with_id(&request_id),
    };
    // The SNS query protocol answers in XML, errors included; the links
    // mailed to subscribers (confirm, unsubscribe) are unsigned GETs.
    if sns::is_query_request(&req) {
        if sns::is_unsigned_link(&req) {
            return sns::dispatch(&state, &req, false, &request_id).await;
        }
        return match authenticate(&state, &req).await {
            Ok(verified) if verified.service == "sns" => {
                sns::dispatch(&state, &req, true, &request_id).await
            }
            Ok(verified) => sns::SnsError::new(
                400,
                "InvalidAction",
                format!(
                    "query-protocol requests must be signed for sns, not {}",
                    verified.service
                ),
            )
            .into_response_with_id(&request_id),
            Err(e) => {
                sns::SnsError::new(e.status, e.code, e.message).into_response_with_id(&request_id)
            }
        };
    }
    // A presigned object URL carries its own credential (a job's device
    // downloads with a bare GET).
    if objects::is_presigned_object(&req) {
        return match objects::serve(state.config().objects.as_ref(), &req).await {
            Ok(response) => response,
            Err(e) => e.into_response_with_id(&request_id),
        };
    }
    // The operator's object operations (`roost objects`), signed.
    if req.segments.first().is_some_and(|s| s == "objects") {
        let answer = match authenticate(&state, &req).await {
            Ok(verified) if verified.service == "iot" => {
                objects::serve_signed(state.config().objects.as_ref(), &req).await
            }
            Ok(_) => Err(ApiError::invalid("object requests are signed for iot")),
            Err(e) => Err(e),
        };
        return answer.unwrap_or_else(|e| e.into_response_with_id(&request_id));
    }
    // A topic rule destination's enableUrl is opened by its owner, who does
    // not sign: the token it carries is the credential (as in AWS).
    let result = if req.is_unsigned_destination_confirmation() {
        routes::dispatch(&state, &req).await
    } else {
        match authenticate(&state, &req).await {
            Ok(verified) if verified.service == "iotdata" => data::dispatch(&state, &req).await,
            Ok(verified) if verified.service == "iot-jobs-data" => {
                jobs_data::dispatch(&state, &req).await
            }
            Ok(verified) if verified.service == "sns" => Err(ApiError::new(
                400,
                "InvalidAction",
                "SNS requests are POST / with a form-encoded body",
            )),
            Ok(_) => routes::dispatch(&state, &req).await,
            Err(e) => Err(e),
        }
    };
    match result {
        Ok(value) => {
            let mut response = (
                StatusCode::OK,
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                value.to_string(),
            )
                .into_response();
            if let Ok(id) = HeaderValue::from_str(&request_id) {
                response.headers_mut().insert("x-amzn-RequestId", id);
            }
            response
        }
        Err(e) => {
            tracing::debug!(code = e.code, message = %e.message, method = %req.method, path = %req.loggable_path(), "request failed");
            e.into_response_with_id(&request_id)
        }
    }
}

/// Runs a control-plane operation (`GET /things`, `POST /things/{name}`,
/// ...) for a caller who authenticated by other means (the web console's
/// session): the same routes and code a signed request reaches, so the
/// console has no logic the API does not have. `path` and `query` are
/// given as a client sends them (percent-encoded).
pub async fn call(
    state: &ApiState,
    method: &str,
    path: &str,
    query: &str,
    body: Option<&serde_json::Value>,
) -> Result<serde_json::Value, ApiError> {
    call_with_headers(state, method, path, query, &[], body).await
}

/// [`call`] with request headers some operations read their input from
/// (AttachThingPrincipal's `x-amzn-principal`).
pub async fn call_with_headers(
    state: &ApiState,
    method: &str,
    path: &str,
    query: &str,
    headers: &[(&'static str, &str)],
    body: Option<&serde_json::Value>,
) -> Result<serde_json::Value, ApiError> {
    let body = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    let mut headers = headers
        .iter()
        .map(|(name, value)| {
            HeaderValue::from_str(value)
                .map(|value| (axum::http::HeaderName::from_static(name), value))
                .map_err(|_| ApiError::invalid(format!("header {name} is not a valid value")))
        })
        .collect::<Result<axum::http::HeaderMap, _>>()?;
    if !body.is_empty() {
        headers.insert(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    let req = ApiRequest::new(
        method.to_string(),
        path.to_string(),
        query.to_string(),
        headers,
        body,
    )?;
    routes::dispatch(state, &req).await
}

/// The secret access key of `access_key_id`, for a sign-in with the
/// credentials the API accepts (the console's); `None` for an unknown key
/// or a store that did not answer.
pub async fn access_key_secret(state: &ApiState, access_key_id: &str) -> Option<String> {
    state
        .registry()
        .access_key_secret(access_key_id)
        .await
        .ok()
        .flatten()
}

/// AWS REST JSON timestamps: epoch seconds as a JSON number, with millis.
pub(crate) fn epoch_seconds(millis: i64) -> serde_json::Value {
    if millis % 1000 == 0 {
        serde_json::json!(millis / 1000)
    } else {
        serde_json::json!(millis as f64 / 1000.0)
    }
}
