//! The jobs service: AWS IoT Jobs over the registry's job store. The
//! control plane (`control`) and, attached to the broker, the device API
//! call in here; every decision (may this execution change, what does the
//! reply say, is a notification due) is the pure core's (`roost-jobs`).
//!
//! What it adds to the core: the order of changes and their consequences.
//! A thing's executions change one at a time (a striped lock per thing),
//! so the pending list before and after each change is exact and the
//! thing's `jobs/notify` and `jobs/notify-next` go out exactly when AWS
//! sends them. Notifications are published through an [`Outbox`] (the
//! broker), subject there to each subscriber's policies.
//!
//! What it must never do: hold a thing's lock across anything but the
//! store, or change an execution other than through the pure core (which
//! raises its version, the store's compare-and-swap check).

#![forbid(unsafe_code)]

pub mod clock;
mod control;
mod device;
pub mod http;
pub mod presign;
#[cfg(test)]
mod tests;

pub use control::{ExecutionListing, JobDescription};
pub use device::DeviceError;

use roost_jobs::document;
use roost_jobs::job::Job;
use roost_jobs::pending::{changes, pending, Summary};
use roost_jobs::request::{notify_next_topic, notify_topic};
use roost_jobs::{reply, Execution, ExecutionStatus};
use roost_registry::store::JobStore;
use roost_registry::{Registry, RegistryError, Result};
use serde_json::Value;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// Where the service's notifications go.
pub trait Outbox: Send + Sync {
    fn publish(&self, topic: String, payload: Vec<u8>);

    /// Where job execution changes are logged (JobExecution events), if
    /// anywhere.
    fn event_log(&self) -> Option<&roost_eventlog::EventLog> {
        None
    }
}

/// The broker delivers them to the subscribers of the topic, at QoS 1 or
/// the subscription's, as any message (policies apply).
impl Outbox for roost_broker::Broker {
    fn publish(&self, topic: String, payload: Vec<u8>) {
        let message = roost_broker::Message::new(topic, payload, roost_mqtt::QoS::AtLeastOnce);
        roost_broker::Broker::publish(self, message);
    }

    fn event_log(&self) -> Option<&roost_eventlog::EventLog> {
        Some(roost_broker::Broker::event_log(self))
    }
}

/// Signs the URL that a presigned-URL placeholder becomes each time a job
/// document goes to a device.
pub trait UrlSigner: Send + Sync {
    /// A URL from which `object` can be fetched with a plain GET for the
    /// next `expires_in_secs` seconds.
    fn presign<'a>(
        &'a self,
        object: &'a document::ObjectRef,
        expires_in_secs: i64,
        now_ms: i64,
    ) -> Presigned<'a>;
}

/// A presigned URL, when ready, or why it could not be made.
pub type Presigned<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = std::result::Result<String, String>> + Send + 'a>,
>;

/// Stripes of the per-thing lock: changes to one thing's executions are
/// serialised; different things rarely wait on each other.
const THING_LOCKS: usize = 64;

/// The jobs service. Cheap to clone.
#[derive(Clone)]
pub struct JobsService {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    outbox: Arc<dyn Outbox>,
    signer: Arc<dyn UrlSigner>,
    thing_locks: Vec<tokio::sync::Mutex<()>>,
    /// `arn:aws:iot:REGION:ACCOUNT:`.
    arn_prefix: String,
}

/// Wall-clock Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl JobsService {
    pub fn new(registry: Registry, outbox: Arc<dyn Outbox>, signer: Arc<dyn UrlSigner>) -> Self {
        let settings = registry.settings();
        let arn_prefix = format!("arn:aws:iot:{}:{}:", settings.region, settings.account);
        Self {
            inner: Arc::new(Inner {
                registry,
                outbox,
                signer,
                thing_locks: (0..THING_LOCKS)
                    .map(|_| tokio::sync::Mutex::new(()))
                    .collect(),
                arn_prefix,
            }),
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    pub(crate) fn store(&self) -> &dyn JobStore {
        self.inner.registry.job_store()
    }

    pub(crate) fn arn_prefix(&self) -> &str {
        &self.inner.arn_prefix
    }

    /// The job's ARN.
    pub fn job_arn(&self, job_id: &str) -> String {
        format!("{}job/{job_id}", self.inner.arn_prefix)
    }

    /// The thing's ARN.
    pub fn thing_arn(&self, thing_name: &str) -> String {
        format!("{}thing/{thing_name}", self.inner.arn_prefix)
    }

    /// Runs `change` on `thing`'s executions with the thing's lock held,
    /// then publishes the notifications the change calls for.
    pub(crate) async fn on_thing<T>(
        &self,
        thing: &str,
        change: impl AsyncFnOnce() -> Result<T>,
    ) -> Result<T> {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        thing.hash(&mut hasher);
        let stripe = (hasher.finish() % THING_LOCKS as u64) as usize;
        let _held = self.inner.thing_locks[stripe].lock().await;
        let before = pending(&self.store().pending_job_executions(thing).await?);
        let result = change().await;
        let after = self.store().pending_job_executions(thing).await?;
        self.notify(thing, &before, &after).await;
        result
    }

    /// Publishes `jobs/notify` and `jobs/notify-next` for `thing` as the
    /// change from `before` to `after` calls for.
    async fn notify(&self, thing: &str, before: &[Summary], after: &[Execution]) {
        let now = now_ms();
        let listed = pending(after);
        let due = changes(before, &listed);
        if due.list {
            let payload = reply::list_notification(&listed, now);
            self.inner
                .outbox
                .publish(notify_topic(thing), payload.to_string().into_bytes());
        }
        if due.next {
            let next = listed.first().and_then(|s| {
                after
                    .iter()
                    .find(|e| e.job_id == s.job_id && e.execution_number == s.execution_number)
            });
            let with_document = match next {
                Some(e) => match self.device_document(&e.job_id, now).await {
                    Ok(document) => Some((e, document)),
                    Err(error) => {
                        tracing::error!(job_id = %e.job_id, thing, %error, "notify-next not sent: the job document could not be prepared");
                        return;
                    }
                },
                None => None,
            };
            let payload = reply::next_notification(with_document, now);
            self.inner
                .outbox
                .publish(notify_next_topic(thing), payload.to_string().into_bytes());
        }
    }

    /// The job document as it goes to a device: placeholders replaced by
    /// freshly presigned URLs, as a JSON value.
    pub async fn device_document(&self, job_id: &str, now: i64) -> Result<Value> {
        let job = self.job(job_id).await?;
        self.render_document(&job, now).await
    }

    pub(crate) async fn render_document(&self, job: &Job, now: i64) -> Result<Value> {
        let expires = job
            .presigned_url_config
            .as_ref()
            .map_or(3600, |c| c.expires_in_secs());
        let failed = |e: String| {
            RegistryError::Internal(format!("job {}: presigning a URL failed: {e}", job.job_id))
        };
        let mut urls = Vec::new();
        for (_, object) in
            document::placeholders(&job.document).map_err(|e| failed(e.to_string()))?
        {
            urls.push(
                self.inner
                    .signer
                    .presign(&object, expires, now)
                    .await
                    .map_err(failed)?,
            );
        }
        let mut urls = urls.into_iter();
        let text = document::substitute(&job.document, |_| urls.next().unwrap_or_default())
            .map_err(|e| failed(e.to_string()))?;
        serde_json::from_str(&text).map_err(|e| failed(e.to_string()))
    }

    pub(crate) async fn job(&self, job_id: &str) -> Result<Job> {
        self.store()
            .get_job(job_id)
            .await?
            .ok_or_else(|| RegistryError::NotFound(format!("Job {job_id} does not exist")))
    }

    /// A JobExecution event when an execution's status moved, at the level
    /// of the client id named like its thing: Success (INFO), or Failure
    /// (ERROR) for FAILED, TIMED_OUT and REJECTED.
    fn log_execution_change(&self, before: &Execution, after: &Execution) {
        use roost_eventlog::{EventType, LogLevel, Status, Subject};
        if before.status == after.status {
            return;
        }
        let Some(log) = self.inner.outbox.event_log() else {
            return;
        };
        let failed = matches!(
            after.status,
            ExecutionStatus::Failed | ExecutionStatus::TimedOut | ExecutionStatus::Rejected
        );
        let (status, level) = if failed {
            (Status::Failure, LogLevel::Error)
        } else {
            (Status::Success, LogLevel::Info)
        };
        let subject = Subject {
            client_id: Some(&after.thing_name),
            ..Default::default()
        };
        if !log.level_for(&subject).logs(level) {
            return;
        }
        let mut event = log
            .event(EventType::JobExecution, status)
            .at_level(level)
            .client_id(after.thing_name.as_str())
            .details(format!(
                "job {} execution {} on thing {}: {} -> {}",
                after.job_id, after.execution_number, after.thing_name, before.status, after.status
            ));
        if failed {
            event = event.reason(after.status.as_str());
        }
        log.emit(event);
    }

    /// Changes one execution with `change` (a pure-core transition),
    /// reading and replacing it until no one else changed it meanwhile.
    /// `Ok(None)` when the execution does not exist.
    pub(crate) async fn change_execution<E>(
        &self,
        job_id: &str,
        thing: &str,
        number: Option<u64>,
        mut change: impl FnMut(&mut Execution) -> std::result::Result<(), E>,
    ) -> Result<Option<std::result::Result<Execution, (E, Execution)>>> {
        loop {
            let Some(read) = self
                .store()
                .get_job_execution(job_id, thing, number)
                .await?
            else {
                return Ok(None);
            };
            let mut changed = read.clone();
            if let Err(e) = change(&mut changed) {
                return Ok(Some(Err((e, read))));
            }
            if changed == read {
                return Ok(Some(Ok(read)));
            }
            if self
                .store()
                .replace_job_execution(&changed, read.version_number)
                .await?
            {
                self.log_execution_change(&read, &changed);
                return Ok(Some(Ok(changed)));
            }
        }
    }
}
