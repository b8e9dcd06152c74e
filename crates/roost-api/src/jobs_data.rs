//! The `iot-jobs-data` operations on the API port (signing name
//! `iot-jobs-data`): GetPendingJobExecutions, StartNextPendingJobExecution,
//! DescribeJobExecution and UpdateJobExecution, the device jobs API over
//! HTTP, so `aws iot-jobs-data … --endpoint-url …` works. The jobs service
//! answers exactly as over MQTT; here the job document is a string and
//! refusals are HTTP errors (`ErrorCode::http`).

use crate::error::{ApiError, ApiResult};
use crate::request::ApiRequest;
use crate::ApiState;
use roost_jobs::request::{self, JobRef};
use roost_jobs::{reply, Execution};
use roost_jobs_service::{DeviceError, JobsService};
use serde_json::{json, Map, Value};

pub async fn dispatch(state: &ApiState, req: &ApiRequest) -> ApiResult<Value> {
    let service = state.config().jobs.as_ref().ok_or_else(|| {
        ApiError::new(
            503,
            "ServiceUnavailableException",
            "the jobs service is not running",
        )
    })?;
    let segments: Vec<&str> = req.segments.iter().map(String::as_str).collect();
    let answer = match (req.method.as_str(), segments.as_slice()) {
        ("GET", ["things", thing, "jobs"]) => service.device_pending(thing).await,
        ("PUT", ["things", thing, "jobs", "$next"]) => start_next(service, req, thing).await,
        ("GET", ["things", thing, "jobs", job]) => describe(service, req, thing, job).await,
        ("POST", ["things", thing, "jobs", job]) => update(service, req, thing, job).await,
        (method, _) => {
            return Err(ApiError::new(
                404,
                "UnknownOperationException",
                format!(
                    "Roost does not serve {method} {} in the iot-jobs-data API",
                    req.raw_path
                ),
            ))
        }
    };
    answer.map(Value::Object).map_err(refusal)
}

fn refusal(e: DeviceError) -> ApiError {
    let (code, status) = e.code.http();
    ApiError::new(status, code, e.message)
}

/// A JobExecution as iot-jobs-data returns it: the MQTT shape with the
/// document as a string.
fn execution(e: &Execution, document: Option<Value>) -> Value {
    let mut value = reply::execution(e, document, roost_jobs_service::now_ms());
    if let Some(doc) = value.get_mut("jobDocument") {
        *doc = json!(doc.to_string());
    }
    value
}

fn body(req: &ApiRequest) -> &[u8] {
    &req.body
}

async fn start_next(
    service: &JobsService,
    req: &ApiRequest,
    thing: &str,
) -> Result<Map<String, Value>, DeviceError> {
    let start = request::start_next(body(req)).request?;
    let mut out = Map::new();
    if let Some((e, document)) = service.device_start_next(thing, start).await? {
        out.insert("execution".into(), execution(&e, Some(document)));
    }
    Ok(out)
}

async fn describe(
    service: &JobsService,
    req: &ApiRequest,
    thing: &str,
    job: &str,
) -> Result<Map<String, Value>, DeviceError> {
    let invalid = |m: String| DeviceError::from(request::RequestError::invalid(m));
    let describe = request::Describe {
        execution_number: req
            .query("executionNumber")
            .map(|n| {
                n.parse::<u64>()
                    .map_err(|_| invalid(format!("executionNumber '{n}' must be a whole number")))
            })
            .transpose()?,
        include_job_document: match req.query("includeJobDocument") {
            None | Some("true") => true,
            Some("false") => false,
            Some(other) => {
                return Err(invalid(format!(
                    "includeJobDocument must be true or false, got '{other}'"
                )))
            }
        },
    };
    if !request::is_job_id(job) {
        return Err(invalid(format!("'{job}' is not a job id")));
    }
    let mut out = Map::new();
    if let Some((e, document)) = service
        .device_describe(thing, JobRef::Id(job), &describe)
        .await?
    {
        out.insert("execution".into(), execution(&e, document));
    }
    Ok(out)
}

async fn update(
    service: &JobsService,
    req: &ApiRequest,
    thing: &str,
    job: &str,
) -> Result<Map<String, Value>, DeviceError> {
    let update = request::update(body(req)).request?;
    let (e, document) = service.device_update(thing, job, &update).await?;
    let mut out = Map::new();
    if update.include_job_execution_state {
        out.insert("executionState".into(), reply::execution_state(&e));
    }
    if let Some(document) = document {
        out.insert("jobDocument".into(), json!(document.to_string()));
    }
    Ok(out)
}
