//! The device jobs API (the reference's section 5): GetPendingJobExecutions,
//! StartNextPendingJobExecution, DescribeJobExecution and
//! UpdateJobExecution, as the MQTT request topics ask them (attached to the
//! broker as a `DeviceService`) and, later, the HTTPS data plane.
//!
//! A device reaches only the jobs of the things its certificate is attached
//! to, whatever its policies allow: the request topic names a thing, and a
//! certificate not attached to it is refused.

use crate::{now_ms, JobsService};
use roost_broker::service::{Answer, DeviceRequest, DeviceService, Reply};
use roost_jobs::pending::pending;
use roost_jobs::request::{self, classify, reply_topic, JobRef, JobsTopic, Operation};
use roost_jobs::{reply, ErrorCode, Execution, TransitionError};
use roost_registry::{RegistryError, Result};
use serde_json::{Map, Value};

/// A device request refused: its code, its message, and the execution as
/// it stands for the codes that carry it.
#[derive(Debug)]
pub struct DeviceError {
    pub code: ErrorCode,
    pub message: String,
    pub state: Option<Box<Execution>>,
}

impl DeviceError {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            state: None,
        }
    }

    fn transition(e: TransitionError, state: Execution) -> Self {
        Self {
            code: e.code(),
            message: e.to_string(),
            state: Some(Box::new(state)),
        }
    }
}

impl From<RegistryError> for DeviceError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::NotFound(m) => DeviceError::new(ErrorCode::ResourceNotFound, m),
            RegistryError::InvalidRequest(m) => DeviceError::new(ErrorCode::InvalidRequest, m),
            other => {
                tracing::error!(error = %other, "jobs device request failed");
                DeviceError::new(ErrorCode::InternalError, "the jobs service failed")
            }
        }
    }
}

impl From<request::RequestError> for DeviceError {
    fn from(e: request::RequestError) -> Self {
        DeviceError::new(e.code, e.message)
    }
}

type DeviceResult<T> = std::result::Result<T, DeviceError>;

impl JobsService {
    /// Whether the certificate `certificate_id` is attached to `thing`.
    pub(crate) async fn owns(&self, certificate_id: &str, thing: &str) -> Result<bool> {
        // A thing has a few principals; a certificate may have many things.
        let arn = format!("{}cert/{certificate_id}", self.arn_prefix());
        let mut token: Option<String> = None;
        loop {
            let page = match self
                .registry()
                .list_thing_principals(thing, token.as_deref(), Some(250))
                .await
            {
                Ok(page) => page,
                Err(RegistryError::NotFound(_)) => return Ok(false),
                Err(e) => return Err(e),
            };
            if page.items.contains(&arn) {
                return Ok(true);
            }
            match page.next_token {
                Some(next) => token = Some(next),
                None => return Ok(false),
            }
        }
    }

    /// GetPendingJobExecutions' accepted reply fields.
    pub async fn device_pending(&self, thing: &str) -> DeviceResult<Map<String, Value>> {
        let executions = self.store().pending_job_executions(thing).await?;
        let listed = pending(&executions);
        let reply = reply::pending_executions(&listed, None, 0);
        let mut fields = reply.as_object().cloned().unwrap_or_default();
        fields.remove("timestamp");
        Ok(fields)
    }

    /// StartNextPendingJobExecution: the execution it started (or found
    /// IN_PROGRESS) with its document, or `None` when nothing is pending.
    pub async fn device_start_next(
        &self,
        thing: &str,
        start: request::StartNext,
    ) -> DeviceResult<Option<(Execution, Value)>> {
        let started = self
            .on_thing(thing, async || {
                let executions = self.store().pending_job_executions(thing).await?;
                let Some(next) = pending(&executions).into_iter().next() else {
                    return Ok(None);
                };
                let job = self.job(&next.job_id).await?;
                let changed = self
                    .change_execution(&next.job_id, thing, Some(next.execution_number), |e| {
                        e.start(
                            start.status_details.clone(),
                            start.step_timeout,
                            job.in_progress_minutes(),
                            now_ms(),
                        )
                    })
                    .await?;
                Ok(Some((changed, job)))
            })
            .await?;
        match started {
            None | Some((None, _)) => Ok(None),
            Some((Some(Err((e, state))), _)) => Err(DeviceError::transition(e, state)),
            Some((Some(Ok(execution)), job)) => {
                let document = self.render_document(&job, now_ms()).await?;
                Ok(Some((execution, document)))
            }
        }
    }

    /// DescribeJobExecution: the execution (`$next`: the next pending one,
    /// or `None`), with its document when asked.
    pub async fn device_describe(
        &self,
        thing: &str,
        job: JobRef<'_>,
        describe: &request::Describe,
    ) -> DeviceResult<Option<(Execution, Option<Value>)>> {
        let execution = match job {
            JobRef::Next => {
                let executions = self.store().pending_job_executions(thing).await?;
                let next = pending(&executions).into_iter().next();
                next.and_then(|s| {
                    executions
                        .into_iter()
                        .find(|e| e.job_id == s.job_id && e.execution_number == s.execution_number)
                })
            }
            JobRef::Id(job_id) => Some(
                self.store()
                    .get_job_execution(job_id, thing, describe.execution_number)
                    .await?
                    .ok_or_else(|| {
                        DeviceError::new(
                            ErrorCode::ResourceNotFound,
                            format!("no execution of job {job_id} on thing {thing}"),
                        )
                    })?,
            ),
        };
        let Some(execution) = execution else {
            return Ok(None);
        };
        let document = match describe.include_job_document {
            true => Some(self.device_document(&execution.job_id, now_ms()).await?),
            false => None,
        };
        Ok(Some((execution, document)))
    }

    /// UpdateJobExecution: the execution after the update, and its
    /// document when asked. An execution that ended is followed by its
    /// retry, the job's abort and completion.
    pub async fn device_update(
        &self,
        thing: &str,
        job_id: &str,
        update: &request::UpdateRequest,
    ) -> DeviceResult<(Execution, Option<Value>)> {
        let job = self.job(job_id).await?;
        let changed = self
            .on_thing(thing, async || {
                self.change_execution(job_id, thing, update.execution_number, |e| {
                    e.update(&update.update, job.in_progress_minutes(), now_ms())
                })
                .await
            })
            .await?;
        let execution = match changed {
            None => {
                return Err(DeviceError::new(
                    ErrorCode::ResourceNotFound,
                    format!("no execution of job {job_id} on thing {thing}"),
                ))
            }
            Some(Err((e, state))) => return Err(DeviceError::transition(e, state)),
            Some(Ok(execution)) => execution,
        };
        if execution.status.is_terminal() {
            self.after_final(&execution).await?;
        }
        let document = match update.include_job_document {
            true => Some(self.render_document(&job, now_ms()).await?),
            false => None,
        };
        Ok((execution, document))
    }

    /// Answers one MQTT jobs request: the accepted or rejected payload.
    async fn answer_mqtt(
        &self,
        request: &DeviceRequest,
        thing: &str,
        operation: Operation<'_>,
    ) -> (bool, Value) {
        let now = now_ms();
        let (token, result) = match operation {
            Operation::GetPending => {
                let parsed = request::get_pending(&request.payload);
                let result = match parsed.request {
                    Ok(()) => self.device_pending(thing).await,
                    Err(e) => Err(e.into()),
                };
                (parsed.client_token, result)
            }
            Operation::StartNext => {
                let parsed = request::start_next(&request.payload);
                let result = match parsed.request {
                    Ok(start) => self.device_start_next(thing, start).await.map(|started| {
                        let mut fields = Map::new();
                        if let Some((e, document)) = started {
                            fields.insert(
                                "execution".into(),
                                reply::execution(&e, Some(document), now),
                            );
                        }
                        fields
                    }),
                    Err(e) => Err(e.into()),
                };
                (parsed.client_token, result)
            }
            Operation::Describe(job) => {
                let parsed = request::describe(&request.payload);
                let result = match parsed.request {
                    Ok(describe) => {
                        self.device_describe(thing, job, &describe)
                            .await
                            .map(|found| {
                                let mut fields = Map::new();
                                if let Some((e, document)) = found {
                                    fields.insert(
                                        "execution".into(),
                                        reply::execution(&e, document, now),
                                    );
                                }
                                fields
                            })
                    }
                    Err(e) => Err(e.into()),
                };
                (parsed.client_token, result)
            }
            Operation::Update(job_id) => {
                let parsed = request::update(&request.payload);
                let result = match parsed.request {
                    Ok(update) => {
                        self.device_update(thing, job_id, &update)
                            .await
                            .map(|(e, document)| {
                                let mut fields = Map::new();
                                if update.include_job_execution_state {
                                    fields.insert(
                                        "executionState".into(),
                                        reply::execution_state(&e),
                                    );
                                }
                                if let Some(document) = document {
                                    fields.insert("jobDocument".into(), document);
                                }
                                fields
                            })
                    }
                    Err(e) => Err(e.into()),
                };
                (parsed.client_token, result)
            }
        };
        match result {
            Ok(fields) => (true, reply::accepted(fields, token.as_deref(), now)),
            Err(e) => (
                false,
                reply::rejected(
                    e.code,
                    &e.message,
                    token.as_deref(),
                    e.state.as_deref(),
                    now,
                ),
            ),
        }
    }
}

impl DeviceService for JobsService {
    fn claims(&self, topic: &str) -> bool {
        classify(topic).is_some()
    }

    fn http_route(&self, method: &str, raw_path: &str) -> Option<roost_broker::service::HttpRoute> {
        self.device_http_route(method, raw_path)
    }

    fn answer_http(
        &self,
        request: roost_broker::service::HttpRequest,
    ) -> roost_broker::service::HttpAnswer<'_> {
        Box::pin(self.answer_device_http(request))
    }

    fn answer(&self, request: DeviceRequest) -> Answer<'_> {
        Box::pin(async move {
            let now = now_ms();
            let rejected = |code, message: &str| {
                let payload = reply::rejected(code, message, None, None, now);
                vec![Reply {
                    topic: reply_topic(&request.topic, false),
                    payload: payload.to_string().into_bytes(),
                }]
            };
            let (thing, operation) = match classify(&request.topic) {
                Some(JobsTopic::Request {
                    thing_name,
                    operation,
                }) => (thing_name, operation),
                Some(JobsTopic::Invalid) => {
                    return rejected(
                        ErrorCode::InvalidTopic,
                        &format!("{} is not a jobs API topic", request.topic),
                    )
                }
                // notify, notify-next and the replies are the service's to
                // publish: a device's PUBLISH there goes nowhere.
                Some(JobsTopic::ServiceOnly { .. }) | None => {
                    tracing::info!(topic = %request.topic, client_id = %request.client_id, "a device published to a jobs topic only the service publishes to: dropped");
                    return Vec::new();
                }
            };
            match self.owns(&request.certificate_id, thing).await {
                Ok(true) => {}
                Ok(false) => {
                    let token = request::get_pending(&request.payload).client_token;
                    let payload = reply::rejected(
                        ErrorCode::InvalidRequest,
                        &format!("this connection's certificate is not attached to thing {thing}: a device reaches only its own thing's jobs"),
                        token.as_deref(),
                        None,
                        now,
                    );
                    return vec![Reply {
                        topic: reply_topic(&request.topic, false),
                        payload: payload.to_string().into_bytes(),
                    }];
                }
                Err(e) => {
                    tracing::error!(error = %e, "checking a jobs request's thing failed");
                    return rejected(ErrorCode::InternalError, "the jobs service failed");
                }
            }
            let (accepted, payload) = self.answer_mqtt(&request, thing, operation).await;
            vec![Reply {
                topic: reply_topic(&request.topic, accepted),
                payload: payload.to_string().into_bytes(),
            }]
        })
    }
}
