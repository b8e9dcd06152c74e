//! Jobs: CreateJob, DescribeJob, ListJobs, GetJobDocument, CancelJob,
//! DeleteJob, DescribeJobExecution, ListJobExecutionsForJob,
//! ListJobExecutionsForThing, CancelJobExecution, DeleteJobExecution. What
//! they do is the jobs service's; this shapes AWS's JSON.

use super::{listing, put_opt};
use crate::error::{ApiError, ApiResult};
use crate::request::ApiRequest;
use crate::{epoch_seconds, ApiState};
use roost_jobs::job::{CreateJob, Job, JobSettings};
use roost_jobs::{Execution, ExecutionStatus, JobStatus, TargetSelection};
use roost_jobs_service::JobsService;
use roost_registry::store::jobs::{ExecutionFilter, JobFilter};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

fn service(state: &ApiState) -> ApiResult<&JobsService> {
    state.config().jobs.as_ref().ok_or_else(|| {
        ApiError::new(
            503,
            "ServiceUnavailableException",
            "the jobs service is not running",
        )
    })
}

fn summary_fields(job: &Job) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("jobId".into(), json!(job.job_id));
    out.insert("targetSelection".into(), json!(job.target_selection));
    out.insert("status".into(), json!(job.status));
    out.insert("createdAt".into(), epoch_seconds(job.created_at));
    out.insert("lastUpdatedAt".into(), epoch_seconds(job.last_updated_at));
    put_opt(&mut out, "completedAt", job.completed_at.map(epoch_seconds));
    out.insert("isConcurrent".into(), json!(false));
    out
}

fn config<T: serde::Serialize>(value: &Option<T>) -> Option<Value> {
    value
        .as_ref()
        .map(|v| serde_json::to_value(v).unwrap_or_default())
}

pub async fn create_job(state: &ApiState, req: &ApiRequest, job_id: &str) -> ApiResult<Value> {
    let mut request: CreateJob = req.json()?;
    if let Some(source) = request.document_source.clone() {
        if request.document.is_some() {
            return Err(ApiError::invalid(
                "give exactly one of document or documentSource",
            ));
        }
        let document = read_document_source(state, &source).await?;
        request = request.with_source_document(document);
    }
    let service = service(state)?;
    let job = service.create_job(job_id, request).await?;
    let mut out = Map::new();
    out.insert("jobArn".into(), json!(service.job_arn(&job.job_id)));
    out.insert("jobId".into(), json!(job.job_id));
    put_opt(&mut out, "description", job.description);
    Ok(Value::Object(out))
}

/// Reads the job document a `documentSource` URL names from Roost's local
/// object store (`{data_dir}/objects/BUCKET/KEY`).
async fn read_document_source(state: &ApiState, source: &str) -> ApiResult<String> {
    let object = roost_jobs::document::object_of(source).ok_or_else(|| {
        ApiError::invalid(format!(
            "documentSource '{source}' is not an S3 object URL (https://s3.amazonaws.com/BUCKET/KEY)"
        ))
    })?;
    if !roost_jobs_service::presign::key_is_inside(&object.key) {
        return Err(ApiError::invalid(format!(
            "documentSource '{source}': the key must be a path inside its bucket"
        )));
    }
    let objects = state.config().objects.as_ref().ok_or_else(|| {
        ApiError::invalid(
            "documentSource needs Roost's local object store, which is not configured",
        )
    })?;
    let missing = || {
        ApiError::invalid(format!(
            "documentSource '{source}': no object {} in bucket {} of Roost's object store",
            object.key, object.bucket
        ))
    };
    let bytes = match &objects.s3 {
        Some(store) => crate::objects::s3_read(store, &object.bucket, &object.key)
            .await
            .map_err(|e| if e.status == 404 { missing() } else { e })?,
        None => {
            let path = objects.dir.join(&object.bucket).join(&object.key);
            tokio::fs::read(&path).await.map_err(|_| missing())?
        }
    };
    String::from_utf8(bytes)
        .map_err(|_| ApiError::invalid(format!("documentSource '{source}' is not UTF-8 text")))
}

pub async fn describe_job(state: &ApiState, job_id: &str) -> ApiResult<Value> {
    let service = service(state)?;
    let described = service.describe_job(job_id).await?;
    let job = &described.job;
    let mut out = summary_fields(job);
    out.insert("jobArn".into(), json!(service.job_arn(&job.job_id)));
    out.insert("forceCanceled".into(), json!(job.force_canceled));
    put_opt(&mut out, "reasonCode", job.reason_code.clone());
    put_opt(&mut out, "comment", job.comment.clone());
    out.insert("targets".into(), json!(job.targets));
    put_opt(&mut out, "description", job.description.clone());
    put_opt(
        &mut out,
        "presignedUrlConfig",
        config(&job.presigned_url_config),
    );
    put_opt(
        &mut out,
        "jobExecutionsRolloutConfig",
        config(&job.job_executions_rollout_config),
    );
    put_opt(&mut out, "abortConfig", config(&job.abort_config));
    put_opt(&mut out, "timeoutConfig", config(&job.timeout_config));
    put_opt(
        &mut out,
        "jobExecutionsRetryConfig",
        config(&job.job_executions_retry_config),
    );
    let mut details = described.details.to_json();
    if let Some(d) = details.as_object_mut() {
        d.insert("processingTargets".into(), json!([]));
    }
    out.insert("jobProcessDetails".into(), details);
    let mut body = Map::new();
    put_opt(&mut body, "documentSource", job.document_source.clone());
    body.insert("job".into(), Value::Object(out));
    Ok(Value::Object(body))
}

fn parse_query<T>(
    req: &ApiRequest,
    name: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> ApiResult<Option<T>> {
    req.query(name)
        .map(|v| parse(v).ok_or_else(|| ApiError::invalid(format!("{name} '{v}' is not valid"))))
        .transpose()
}

pub async fn list_jobs(state: &ApiState, req: &ApiRequest) -> ApiResult<Value> {
    if req.query("thingGroupId").is_some() {
        return Err(ApiError::invalid(
            "the thingGroupId filter is not supported by Roost: use thingGroupName",
        ));
    }
    let filter = JobFilter {
        status: parse_query(req, "status", JobStatus::parse)?,
        target_selection: parse_query(req, "targetSelection", |v| match v {
            "SNAPSHOT" => Some(TargetSelection::Snapshot),
            "CONTINUOUS" => Some(TargetSelection::Continuous),
            _ => None,
        })?,
    };
    let service = service(state)?;
    let page = service
        .list_jobs(
            filter,
            req.query("thingGroupName"),
            req.query("nextToken"),
            req.query_i64("maxResults")?,
        )
        .await?;
    let jobs: Vec<Value> = page
        .items
        .iter()
        .map(|job| {
            let mut out = summary_fields(job);
            out.insert("jobArn".into(), json!(service.job_arn(&job.job_id)));
            Value::Object(out)
        })
        .collect();
    Ok(listing("jobs", json!(jobs), "nextToken", page.next_token))
}

pub async fn update_job(state: &ApiState, req: &ApiRequest, job_id: &str) -> ApiResult<Value> {
    let settings: JobSettings = req.json()?;
    service(state)?.update_job(job_id, settings).await?;
    Ok(json!({}))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct AssociateTargets {
    #[serde(default)]
    targets: Vec<String>,
    comment: Option<String>,
}

pub async fn associate_targets_with_job(
    state: &ApiState,
    req: &ApiRequest,
    job_id: &str,
) -> ApiResult<Value> {
    let body: AssociateTargets = req.json()?;
    if body
        .comment
        .as_ref()
        .is_some_and(|c| c.chars().count() > 2028)
    {
        return Err(ApiError::invalid("comment must be at most 2028 characters"));
    }
    let service = service(state)?;
    let job = service.associate_targets(job_id, body.targets).await?;
    let mut out = Map::new();
    out.insert("jobArn".into(), json!(service.job_arn(&job.job_id)));
    out.insert("jobId".into(), json!(job.job_id));
    put_opt(&mut out, "description", job.description);
    Ok(Value::Object(out))
}

pub async fn get_job_document(state: &ApiState, job_id: &str) -> ApiResult<Value> {
    let document = service(state)?.job_document(job_id).await?;
    Ok(json!({ "document": document }))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct CancelJob {
    reason_code: Option<String>,
    comment: Option<String>,
}

pub async fn cancel_job(state: &ApiState, req: &ApiRequest, job_id: &str) -> ApiResult<Value> {
    let body: CancelJob = req.json()?;
    let force = req.query_bool("force")?.unwrap_or(false);
    let service = service(state)?;
    let job = service
        .cancel_job(job_id, force, body.reason_code, body.comment)
        .await?;
    let mut out = Map::new();
    out.insert("jobArn".into(), json!(service.job_arn(&job.job_id)));
    out.insert("jobId".into(), json!(job.job_id));
    put_opt(&mut out, "description", job.description);
    Ok(Value::Object(out))
}

pub async fn delete_job(state: &ApiState, req: &ApiRequest, job_id: &str) -> ApiResult<Value> {
    let force = req.query_bool("force")?.unwrap_or(false);
    service(state)?.delete_job(job_id, force).await?;
    Ok(json!({}))
}

fn execution_summary(e: &Execution) -> Value {
    let mut out = Map::new();
    out.insert("status".into(), json!(e.status));
    out.insert("queuedAt".into(), epoch_seconds(e.queued_at));
    put_opt(&mut out, "startedAt", e.started_at.map(epoch_seconds));
    out.insert("lastUpdatedAt".into(), epoch_seconds(e.last_updated_at));
    out.insert("executionNumber".into(), json!(e.execution_number));
    out.insert("retryAttempt".into(), json!(e.retry_attempt));
    Value::Object(out)
}

pub async fn describe_job_execution(
    state: &ApiState,
    req: &ApiRequest,
    thing: &str,
    job_id: &str,
) -> ApiResult<Value> {
    let number = non_negative(req.query_i64("executionNumber")?, "executionNumber")?;
    let service = service(state)?;
    let e = service
        .describe_job_execution(job_id, thing, number)
        .await?;
    let mut out = Map::new();
    out.insert("jobId".into(), json!(e.job_id));
    out.insert("status".into(), json!(e.status));
    out.insert("forceCanceled".into(), json!(e.force_canceled));
    out.insert(
        "statusDetails".into(),
        json!({ "detailsMap": e.status_details }),
    );
    out.insert("thingArn".into(), json!(service.thing_arn(&e.thing_name)));
    out.insert("queuedAt".into(), epoch_seconds(e.queued_at));
    put_opt(&mut out, "startedAt", e.started_at.map(epoch_seconds));
    out.insert("lastUpdatedAt".into(), epoch_seconds(e.last_updated_at));
    out.insert("executionNumber".into(), json!(e.execution_number));
    out.insert("versionNumber".into(), json!(e.version_number));
    put_opt(
        &mut out,
        "approximateSecondsBeforeTimedOut",
        e.seconds_before_timed_out(roost_jobs_service::now_ms()),
    );
    Ok(json!({ "execution": Value::Object(out) }))
}

fn non_negative(n: Option<i64>, name: &str) -> ApiResult<Option<u64>> {
    n.map(|n| {
        u64::try_from(n).map_err(|_| ApiError::invalid(format!("{name} must not be negative")))
    })
    .transpose()
}

fn status_filter(req: &ApiRequest) -> ApiResult<Vec<ExecutionStatus>> {
    Ok(parse_query(req, "status", ExecutionStatus::parse)?
        .into_iter()
        .collect())
}

/// A page of executions under `filter`, each shaped by `item`.
async fn list_executions(
    state: &ApiState,
    req: &ApiRequest,
    filter: ExecutionFilter,
    item: impl Fn(&JobsService, &Execution) -> Value,
) -> ApiResult<Value> {
    let service = service(state)?;
    let listed = service
        .list_job_executions(filter, req.query("nextToken"), req.query_i64("maxResults")?)
        .await?;
    let items: Vec<Value> = listed.page.items.iter().map(|e| item(service, e)).collect();
    Ok(listing(
        "executionSummaries",
        json!(items),
        "nextToken",
        listed.page.next_token,
    ))
}

pub async fn list_job_executions_for_job(
    state: &ApiState,
    req: &ApiRequest,
    job_id: &str,
) -> ApiResult<Value> {
    let filter = ExecutionFilter::OfJob {
        job_id: job_id.to_string(),
        statuses: status_filter(req)?,
    };
    list_executions(state, req, filter, |service, e| {
        json!({
            "thingArn": service.thing_arn(&e.thing_name),
            "jobExecutionSummary": execution_summary(e),
        })
    })
    .await
}

pub async fn list_job_executions_for_thing(
    state: &ApiState,
    req: &ApiRequest,
    thing: &str,
) -> ApiResult<Value> {
    let filter = ExecutionFilter::OfThing {
        thing_name: thing.to_string(),
        job_id: req.query("jobId").map(str::to_string),
        statuses: status_filter(req)?,
    };
    list_executions(
        state,
        req,
        filter,
        |_, e| json!({ "jobId": e.job_id, "jobExecutionSummary": execution_summary(e) }),
    )
    .await
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct CancelJobExecution {
    expected_version: Option<i64>,
    status_details: Option<BTreeMap<String, String>>,
}

pub async fn cancel_job_execution(
    state: &ApiState,
    req: &ApiRequest,
    thing: &str,
    job_id: &str,
) -> ApiResult<Value> {
    let body: CancelJobExecution = req.json()?;
    let force = req.query_bool("force")?.unwrap_or(false);
    let expected = non_negative(body.expected_version, "expectedVersion")?;
    service(state)?
        .cancel_job_execution(job_id, thing, force, expected, body.status_details)
        .await?;
    Ok(json!({}))
}

pub async fn delete_job_execution(
    state: &ApiState,
    req: &ApiRequest,
    thing: &str,
    job_id: &str,
    number: &str,
) -> ApiResult<Value> {
    let number: u64 = number.parse().map_err(|_| {
        ApiError::invalid(format!("executionNumber '{number}' must be a whole number"))
    })?;
    let force = req.query_bool("force")?.unwrap_or(false);
    service(state)?
        .delete_job_execution(job_id, thing, number, force)
        .await?;
    Ok(json!({}))
}
