//! One HTTP/1.1 connection, served with deadlines: the API port and the
//! device HTTPS port share this.

use hyper::body::{Body, Incoming};
use hyper::service::HttpService;
use std::future::Future;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Serves `io` with `service` until the client leaves or `stop` completes;
/// then the request in flight gets `grace` to be answered. `header_timeout`
/// bounds each request's headers and also the idle wait for the next
/// request on a kept-alive connection (hyper starts its timer whenever it
/// waits for a request head). Bodies are the service's to bound.
pub async fn serve_http1<I, S>(
    io: I,
    service: S,
    header_timeout: Duration,
    stop: impl Future<Output = ()>,
    grace: Duration,
) -> Result<(), hyper::Error>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: HttpService<Incoming>,
    S::Error: Into<BoxError>,
    S::ResBody: Body + Send + 'static,
    <S::ResBody as Body>::Error: Into<BoxError>,
{
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(hyper_util::rt::TokioIo::new(io), service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => return result,
        _ = stop => {}
    }
    conn.as_mut().graceful_shutdown();
    match tokio::time::timeout(grace, conn).await {
        Ok(result) => result,
        Err(_) => Ok(()),
    }
}
