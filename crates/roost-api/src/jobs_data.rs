//! The `iot-jobs-data` operations on the API port (signing name
//! `iot-jobs-data`): GetPendingJobExecutions, StartNextPendingJobExecution,
//! DescribeJobExecution and UpdateJobExecution, the device jobs API over
//! HTTP, so `aws iot-jobs-data … --endpoint-url …` works. The jobs service
//! answers exactly as over MQTT; here the job document is a string and
//! refusals are HTTP errors (`ErrorCode::http`).

use crate::error::{ApiError, ApiResult};
use crate::request::ApiRequest;
use crate::ApiState;
use roost_jobs_service::{http, DeviceError};
use serde_json::Value;

pub async fn dispatch(state: &ApiState, req: &ApiRequest) -> ApiResult<Value> {
    let service = state.config().jobs.as_ref().ok_or_else(|| {
        ApiError::new(
            503,
            "ServiceUnavailableException",
            "the jobs service is not running",
        )
    })?;
    let segments: Vec<&str> = req.segments.iter().map(String::as_str).collect();
    let Some((thing, operation)) = http::route(&req.method, &segments) else {
        return Err(ApiError::new(
            404,
            "UnknownOperationException",
            format!(
                "Roost does not serve {} {} in the iot-jobs-data API",
                req.method, req.raw_path
            ),
        ));
    };
    service
        .answer_http_operation(&thing, &operation, &req.raw_query, &req.body)
        .await
        .map(Value::Object)
        .map_err(refusal)
}

fn refusal(e: DeviceError) -> ApiError {
    let (code, status) = e.code.http();
    ApiError::new(status, code, e.message)
}
