//! The device jobs API over HTTP: the same four operations as the MQTT
//! topics, as `iot-jobs-data` shapes them (the document as a string,
//! refusals as HTTP exceptions). Served twice: on the API port signed with
//! SigV4 (an operator reaching any thing), and on the device HTTPS port
//! with the device's certificate (its own things only, after the broker has
//! checked the `iot:*JobExecution` action in its policies).

use crate::{DeviceError, JobsService};
use roost_broker::service::{HttpReply, HttpRoute};
use roost_jobs::request::{self, is_job_id, is_thing_name, JobRef};
use roost_jobs::{reply, ErrorCode, Execution};
use roost_policy::Action;
use serde_json::{json, Map, Value};

/// One of the four operations, on one thing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HttpOperation {
    GetPending,
    StartNext,
    Describe(String),
    Update(String),
}

impl HttpOperation {
    fn action(&self) -> Action {
        match self {
            HttpOperation::GetPending => Action::GetPendingJobExecutions,
            HttpOperation::StartNext => Action::StartNextPendingJobExecution,
            HttpOperation::Describe(_) => Action::DescribeJobExecution,
            HttpOperation::Update(_) => Action::UpdateJobExecution,
        }
    }
}

/// Which operation a method and (decoded) path segments ask for:
/// `GET /things/T/jobs`, `PUT /things/T/jobs/$next`, `GET` and `POST
/// /things/T/jobs/J`. `None` when they are not the jobs API's.
pub fn route(method: &str, segments: &[&str]) -> Option<(String, HttpOperation)> {
    let (thing, operation) = match (method, segments) {
        ("GET", ["things", thing, "jobs"]) => (thing, HttpOperation::GetPending),
        ("PUT", ["things", thing, "jobs", "$next"]) => (thing, HttpOperation::StartNext),
        ("GET", ["things", thing, "jobs", job]) => {
            (thing, HttpOperation::Describe(job.to_string()))
        }
        ("POST", ["things", thing, "jobs", job]) => (thing, HttpOperation::Update(job.to_string())),
        _ => return None,
    };
    Some((thing.to_string(), operation))
}

/// Percent-decoded path segments of a raw path.
pub fn segments(raw_path: &str) -> Option<Vec<String>> {
    raw_path
        .trim_start_matches('/')
        .split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .ok()
                .map(|c| c.into_owned())
        })
        .collect()
}

fn query_value<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A JobExecution as iot-jobs-data returns it: the document as a string.
fn execution(e: &Execution, document: Option<Value>) -> Value {
    let mut value = reply::execution(e, document, crate::now_ms());
    if let Some(doc) = value.get_mut("jobDocument") {
        *doc = json!(doc.to_string());
    }
    value
}

impl JobsService {
    /// Answers one HTTP jobs request on `thing`.
    pub async fn answer_http_operation(
        &self,
        thing: &str,
        operation: &HttpOperation,
        query: &str,
        body: &[u8],
    ) -> Result<Map<String, Value>, DeviceError> {
        let invalid = |m: String| DeviceError::from(request::RequestError::invalid(m));
        if !is_thing_name(thing) {
            return Err(invalid(format!("'{thing}' is not a thing name")));
        }
        match operation {
            HttpOperation::GetPending => self.device_pending(thing).await,
            HttpOperation::StartNext => {
                let start = request::start_next(body).request?;
                let mut out = Map::new();
                if let Some((e, document)) = self.device_start_next(thing, start).await? {
                    out.insert("execution".into(), execution(&e, Some(document)));
                }
                Ok(out)
            }
            HttpOperation::Describe(job) => {
                if !is_job_id(job) {
                    return Err(invalid(format!("'{job}' is not a job id")));
                }
                let describe = request::Describe {
                    execution_number: query_value(query, "executionNumber")
                        .map(|n| {
                            n.parse::<u64>().map_err(|_| {
                                invalid(format!("executionNumber '{n}' must be a whole number"))
                            })
                        })
                        .transpose()?,
                    include_job_document: match query_value(query, "includeJobDocument") {
                        None | Some("true") => true,
                        Some("false") => false,
                        Some(other) => {
                            return Err(invalid(format!(
                                "includeJobDocument must be true or false, got '{other}'"
                            )))
                        }
                    },
                };
                let mut out = Map::new();
                if let Some((e, document)) = self
                    .device_describe(thing, JobRef::Id(job), &describe)
                    .await?
                {
                    out.insert("execution".into(), execution(&e, document));
                }
                Ok(out)
            }
            HttpOperation::Update(job) => {
                let update = request::update(body).request?;
                let (e, document) = self.device_update(thing, job, &update).await?;
                let mut out = Map::new();
                if update.include_job_execution_state {
                    out.insert("executionState".into(), reply::execution_state(&e));
                }
                if let Some(document) = document {
                    out.insert("jobDocument".into(), json!(document.to_string()));
                }
                Ok(out)
            }
        }
    }

    /// The device HTTPS port's route for a request, if it is the jobs API's.
    pub(crate) fn device_http_route(&self, method: &str, raw_path: &str) -> Option<HttpRoute> {
        let segments = segments(raw_path)?;
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        let (thing, operation) = route(method, &segments)?;
        Some(HttpRoute {
            action: operation.action(),
            thing_name: thing,
        })
    }

    /// Answers a device's HTTPS jobs request (its certificate must be
    /// attached to the thing).
    pub(crate) async fn answer_device_http(
        &self,
        request: roost_broker::service::HttpRequest,
    ) -> HttpReply {
        let refused = |e: DeviceError| {
            let (code, status) = e.code.http();
            HttpReply {
                status,
                error_type: Some(code),
                body: json!({ "message": e.message }).to_string().into_bytes(),
            }
        };
        let Some(segments) = segments(&request.raw_path) else {
            return refused(DeviceError::from(request::RequestError::invalid(
                "the path is not valid percent-encoded UTF-8",
            )));
        };
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        let Some((thing, operation)) = route(&request.method, &segments) else {
            return refused(DeviceError::from(request::RequestError {
                code: ErrorCode::ResourceNotFound,
                message: "not a jobs API path".into(),
            }));
        };
        match self.owns(&request.certificate_id, &thing).await {
            Ok(true) => {}
            Ok(false) => {
                return refused(DeviceError::from(request::RequestError::invalid(format!(
                    "this connection's certificate is not attached to thing {thing}: a device reaches only its own thing's jobs"
                ))))
            }
            Err(e) => return refused(DeviceError::from(e)),
        }
        match self
            .answer_http_operation(&thing, &operation, &request.query, &request.body)
            .await
        {
            Ok(fields) => HttpReply {
                status: 200,
                error_type: None,
                body: Value::Object(fields).to_string().into_bytes(),
            },
            Err(e) => refused(e),
        }
    }
}
