//! `GET /healthz` and `GET /readyz`, for load balancers and orchestrators.
//! Unsigned, like `/metrics`, and they say nothing about devices.
//!
//! - `/healthz`: the process serves HTTP (200 `ok`).
//! - `/readyz`: it can do its work now: the registry answers a read within
//!   [`CHECK_TIMEOUT`], and every check the binary added (a cluster node's
//!   NATS connection) passes. 200 with a line per check, or 503 with the
//!   failed ones and why, so that a balancer stops sending devices here.

use crate::ApiState;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Duration;

/// How long the registry has to answer `/readyz`'s read.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// A readiness check the binary adds: its name and, when it fails, why.
pub type ReadinessCheck = (
    &'static str,
    Arc<dyn Fn() -> Result<(), String> + Send + Sync>,
);

pub(crate) fn healthz() -> Response {
    (StatusCode::OK, "ok\n").into_response()
}

pub(crate) async fn readyz(state: &ApiState) -> Response {
    let registry = match tokio::time::timeout(CHECK_TIMEOUT, state.registry().ping()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            // Its own words may name files or queries: the log has them.
            tracing::warn!(error = %e, "readiness: the registry's store failed a read");
            Err(format!("the store failed a read ({})", e.aws_code()))
        }
        Err(_) => Err(format!("no answer within {} s", CHECK_TIMEOUT.as_secs())),
    };
    let mut results = vec![("registry", registry)];
    results.extend(
        state
            .config()
            .readiness
            .iter()
            .map(|(name, check)| (*name, check())),
    );
    let ready = results.iter().all(|(_, r)| r.is_ok());
    let mut body = String::new();
    for (name, result) in &results {
        match result {
            Ok(()) => body.push_str(&format!("ok {name}\n")),
            Err(why) => body.push_str(&format!("failed {name}: {why}\n")),
        }
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, body).into_response()
}
