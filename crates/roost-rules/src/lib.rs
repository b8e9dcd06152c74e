//! The rules engine. Every message the broker accepts is offered to the
//! enabled topic rules whose FROM matches its topic; each rule has a bounded
//! queue and its own worker, which evaluates the rule's IoT SQL (roost-sql)
//! and runs its actions, retrying transient failures with backoff and
//! sending final failures to the rule's error action with AWS's error
//! payload.
//!
//! Offering never blocks the publisher: a full queue drops the message for
//! that rule, counted and logged. Nothing disappears without a count.
#![forbid(unsafe_code)]

pub mod actions;
mod destinations;
mod validate;

pub use validate::Validator;

use actions::{Action, ActionError};
use base64::Engine as _;
use roost_broker::{Broker, Message, MessageTap};
use roost_eventlog::{Event, EventType, LogLevel, Status, Subject};
use roost_registry::rules::TopicRule;
use roost_registry::{Registry, RegistryEvent};
use roost_sql::{Context, Output, SqlVersion, Statement};
use serde::Serialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Where the `s3` action stores objects.
#[derive(Clone, Default)]
pub enum ObjectStoreConfig {
    /// A folder per bucket under `RulesConfig::objects_dir` (the default).
    #[default]
    Local,
    /// Any S3-compatible service (MinIO, Ceph, AWS S3, moto…).
    S3 {
        endpoint: String,
        region: String,
        access_key_id: String,
        secret_access_key: String,
    },
}

// Hand-written so the secret never reaches a log line.
impl std::fmt::Debug for ObjectStoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Local => f.write_str("Local"),
            Self::S3 {
                endpoint,
                region,
                access_key_id,
                ..
            } => f
                .debug_struct("S3")
                .field("endpoint", endpoint)
                .field("region", region)
                .field("access_key_id", access_key_id)
                .field("secret_access_key", &"<redacted>")
                .finish(),
        }
    }
}

/// The engine's bounds and places.
#[derive(Clone, Debug)]
pub struct RulesConfig {
    /// Where the `s3` action's buckets live (one folder per bucket) with the local store.
    pub objects_dir: PathBuf,
    pub object_store: ObjectStoreConfig,
    /// Where the `cloudwatchLogs` action's log groups live.
    pub logs_dir: PathBuf,
    /// Messages waiting for one rule.
    pub queue_capacity: usize,
    /// Tries per action for transient failures (AWS's HTTP action: 3).
    pub max_attempts: u32,
    /// The first retry's delay; doubled each time.
    pub retry_backoff: Duration,
    /// Delivery for the `sns` action (None: the action fails).
    pub sns: Option<Arc<roost_notify::Notifier>>,
}

impl RulesConfig {
    pub fn under(data_dir: &std::path::Path) -> Self {
        Self {
            objects_dir: data_dir.join("objects"),
            object_store: ObjectStoreConfig::Local,
            logs_dir: data_dir.join("logs"),
            queue_capacity: 10_000,
            max_attempts: 3,
            retry_backoff: Duration::from_millis(100),
            sns: None,
        }
    }
}

/// Per-rule counters.
#[derive(Debug, Default)]
pub struct RuleCounters {
    pub matched: AtomicU64,
    pub filtered: AtomicU64,
    pub succeeded: AtomicU64,
    pub failed: AtomicU64,
    pub dropped: AtomicU64,
    pub sql_errors: AtomicU64,
    pub error_action_failed: AtomicU64,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct RuleStats {
    pub matched: u64,
    pub filtered: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub dropped: u64,
    pub sql_errors: u64,
    pub error_action_failed: u64,
}

/// What a rule's worker needs: shared between the engine and the worker.
struct RuleSpec {
    name: String,
    statement: Statement,
    actions: Vec<Action>,
    error_action: Option<Action>,
}

/// A rule as the engine holds it. Dropping it (on reload) drops the only
/// sender of its queue, so the worker drains what is queued and stops.
struct LoadedRule {
    spec: Arc<RuleSpec>,
    queue: mpsc::Sender<Arc<Message>>,
    counters: Arc<RuleCounters>,
}

/// What actions need from the engine.
pub struct Shared {
    pub(crate) config: RulesConfig,
    pub(crate) broker: Broker,
    pub(crate) http: reqwest::Client,
    /// S3-compatible clients, one per bucket a rule names (bounded by the rules).
    pub(crate) buckets:
        std::sync::Mutex<std::collections::HashMap<String, Arc<dyn object_store::ObjectStore>>>,
    /// Where the http action may send.
    pub(crate) destinations: destinations::Destinations,
    /// `accountid()`: the account in Roost's ARNs.
    pub(crate) account: String,
}

struct Engine {
    shared: Arc<Shared>,
    registry: Registry,
    rules: RwLock<Arc<Vec<Arc<LoadedRule>>>>,
    /// Counters survive reloads: keyed by rule name.
    counters: RwLock<BTreeMap<String, Arc<RuleCounters>>>,
}

/// The running engine. Cheap to clone.
#[derive(Clone)]
pub struct RulesEngine {
    engine: Arc<Engine>,
}

fn version_of(rule: &TopicRule) -> SqlVersion {
    rule.payload["awsIotSqlVersion"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or_default()
}

impl RulesEngine {
    /// Starts the engine: installs the rule validator in the registry and
    /// the tap in the broker, loads the rules, and follows their changes
    /// until `shutdown`.
    pub async fn start(
        registry: Registry,
        broker: Broker,
        config: RulesConfig,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Self, roost_registry::RegistryError> {
        registry.set_rule_validator(Arc::new(Validator::new(registry.clone())));
        let shared = Arc::new(Shared {
            config,
            broker: broker.clone(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
            buckets: Default::default(),
            destinations: destinations::Destinations::new(registry.clone()),
            account: registry.settings().account.clone(),
        });
        let engine = Arc::new(Engine {
            shared,
            registry: registry.clone(),
            rules: RwLock::new(Arc::new(Vec::new())),
            counters: RwLock::new(BTreeMap::new()),
        });
        let this = Self { engine };
        this.reload().await?;
        broker.set_tap(Arc::new(this.clone()));
        let watcher = this.clone();
        tokio::spawn(async move { watcher.follow(registry.events(), shutdown).await });
        Ok(this)
    }

    async fn follow(
        &self,
        mut events: tokio::sync::broadcast::Receiver<RegistryEvent>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                event = events.recv() => match event {
                    Ok(RegistryEvent::RulesChanged | RegistryEvent::Resynced) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        if let Err(e) = self.reload().await {
                            tracing::error!(error = %e, "reloading topic rules failed");
                        }
                        if let Err(e) = self.engine.shared.destinations.refresh().await {
                            tracing::error!(error = %e, "reading topic rule destinations failed");
                        }
                    }
                    // Read now so the next http action finds the copy fresh;
                    // the action itself would reload it otherwise.
                    Ok(RegistryEvent::DestinationsChanged) => {
                        if let Err(e) = self.engine.shared.destinations.refresh().await {
                            tracing::error!(error = %e, "reading topic rule destinations failed");
                        }
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    }

    /// Rebuilds the rule set from the registry. Workers of replaced rules
    /// finish what is queued, then stop.
    async fn reload(&self) -> Result<(), roost_registry::RegistryError> {
        let rules = self.engine.registry.all_topic_rules().await?;
        let mut loaded = Vec::new();
        for rule in rules.into_iter().filter(|r| !r.disabled) {
            match self.load(&rule) {
                Ok(r) => loaded.push(r),
                Err(e) => {
                    tracing::error!(rule = %rule.name, error = %e, "a stored rule no longer loads; it is skipped")
                }
            }
        }
        tracing::info!(rules = loaded.len(), "topic rules loaded");
        *self.engine.rules.write().expect("rules lock") = Arc::new(loaded);
        Ok(())
    }

    fn load(&self, rule: &TopicRule) -> Result<Arc<LoadedRule>, String> {
        let version = version_of(rule);
        let statement = roost_sql::parse(rule.sql(), version).map_err(|e| e.to_string())?;
        let actions = rule.payload["actions"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|entry| Action::parse(entry, version))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?
            .unwrap_or_default();
        let error_action = match rule.payload.get("errorAction") {
            None | Some(serde_json::Value::Null) => None,
            Some(entry) => Some(Action::parse(entry, version)?),
        };
        let counters = self
            .engine
            .counters
            .write()
            .expect("counters lock")
            .entry(rule.name.clone())
            .or_default()
            .clone();
        let (tx, rx) = mpsc::channel(self.engine.shared.config.queue_capacity);
        let spec = Arc::new(RuleSpec {
            name: rule.name.clone(),
            statement,
            actions,
            error_action,
        });
        let worker = Worker {
            shared: self.engine.shared.clone(),
            rule: spec.clone(),
            counters: counters.clone(),
        };
        tokio::spawn(worker.run(rx));
        Ok(Arc::new(LoadedRule {
            spec,
            queue: tx,
            counters,
        }))
    }

    /// Counters per rule name.
    pub fn stats(&self) -> BTreeMap<String, RuleStats> {
        let counters = self.engine.counters.read().expect("counters lock");
        counters
            .iter()
            .map(|(name, c)| {
                let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
                (
                    name.clone(),
                    RuleStats {
                        matched: load(&c.matched),
                        filtered: load(&c.filtered),
                        succeeded: load(&c.succeeded),
                        failed: load(&c.failed),
                        dropped: load(&c.dropped),
                        sql_errors: load(&c.sql_errors),
                        error_action_failed: load(&c.error_action_failed),
                    },
                )
            })
            .collect()
    }
}

impl RulesEngine {
    /// The enabled rules whose FROM matches `message`'s topic, counted as
    /// matched.
    fn matching(&self, message: &Message) -> Vec<Arc<LoadedRule>> {
        let rules = self.engine.rules.read().expect("rules lock").clone();
        let ingest = roost_topic::basic_ingest(&message.topic);
        let mut matched = Vec::new();
        for rule in rules.iter() {
            // Basic Ingest reaches only the named rule, matched on the rest of the topic.
            let topic = match &ingest {
                Some(b) if b.rule_name == rule.spec.name => b.topic,
                Some(_) => continue,
                None => message.topic.as_str(),
            };
            if rule.spec.statement.matches_topic(topic) {
                rule.counters.matched.fetch_add(1, Ordering::Relaxed);
                matched.push(rule.clone());
            }
        }
        matched
    }
}

impl MessageTap for RulesEngine {
    fn offer(&self, message: &Arc<Message>) {
        for rule in self.matching(message) {
            if rule.queue.try_send(message.clone()).is_err() {
                rule.counters.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(rule = %rule.spec.name, topic = %message.topic, "rule queue full: message dropped for this rule");
            }
        }
    }

    /// Runs the matching rules now, each with its retries and error
    /// action, and completes when all of them are done: a cluster node
    /// acknowledges a message from the rules' work queue only then.
    fn run<'a>(&'a self, message: Arc<Message>) -> roost_broker::cluster::BoxFuture<'a, ()> {
        Box::pin(async move {
            let workers: Vec<Worker> = self
                .matching(&message)
                .into_iter()
                .map(|rule| Worker {
                    shared: self.engine.shared.clone(),
                    rule: rule.spec.clone(),
                    counters: rule.counters.clone(),
                })
                .collect();
            futures_util::future::join_all(workers.iter().map(|w| w.process(&message))).await;
        })
    }
}

struct Worker {
    shared: Arc<Shared>,
    rule: Arc<RuleSpec>,
    counters: Arc<RuleCounters>,
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Worker {
    /// Hands an event about this rule and `message` to the event log, at
    /// the level of the message's publisher (its client id, its principal).
    /// Runs on the rule's worker, never on the publisher's path.
    fn log_event(
        &self,
        message: &Message,
        trace: uuid::Uuid,
        event_type: EventType,
        status: Status,
        level: LogLevel,
        build: impl FnOnce(Event) -> Event,
    ) {
        let log = self.shared.broker.event_log();
        if !log.may_log(level) {
            return;
        }
        let subject = Subject {
            client_id: message.publisher.as_deref(),
            principal_id: message.principal.as_deref(),
            ..Default::default()
        };
        if !log.level_for(&subject).logs(level) {
            return;
        }
        let mut event = log
            .event(event_type, status)
            .at_level(level)
            .topic(message.topic.as_str())
            .details(format!("rule {}", self.rule.name));
        event.trace_id = trace;
        if let Some(client_id) = &message.publisher {
            event = event.client_id(client_id.as_str());
        }
        if let Some(principal) = &message.principal {
            event = event.principal_id(principal.as_str());
        }
        log.emit(build(event));
    }

    async fn run(self, mut rx: mpsc::Receiver<Arc<Message>>) {
        while let Some(message) = rx.recv().await {
            self.process(&message).await;
        }
        tracing::debug!(rule = %self.rule.name, "rule worker stopped");
    }

    async fn process(&self, message: &Message) {
        let rule = &self.rule;
        let trace = uuid::Uuid::new_v4();
        let trace_id = trace.to_string();
        let ingest = roost_topic::basic_ingest(&message.topic);
        let topic = ingest.as_ref().map(|b| b.topic).unwrap_or(&message.topic);
        let ctx = Context {
            topic,
            client_id: message.publisher.as_deref(),
            principal: message.principal.as_deref(),
            timestamp_ms: now_millis(),
            trace_id: Some(&trace_id),
            account_id: Some(&self.shared.account),
            ..Context::default()
        };
        let output = match rule.statement.evaluate(&message.payload, &ctx) {
            Ok(Some(output)) => output,
            Ok(None) => {
                self.counters.filtered.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Err(e) => {
                self.counters.sql_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(rule = %rule.name, topic = %message.topic, error = %e, "rule SQL evaluation failed");
                return;
            }
        };
        self.log_event(
            message,
            trace,
            EventType::RuleMatch,
            Status::Success,
            LogLevel::Info,
            |e| e,
        );
        let results = futures_util::future::join_all(
            rule.actions
                .iter()
                .map(|a| self.run_with_retry(a, &output, &message.payload, &ctx)),
        )
        .await;
        let failures: Vec<serde_json::Value> = rule
            .actions
            .iter()
            .zip(results)
            .filter_map(|(action, result)| {
                result.err().map(|e| json!({ "failedAction": action.failed_action_name(), "failedResource": action.resource(), "errorMessage": e.message }))
            })
            .collect();
        for failure in &failures {
            self.log_event(
                message,
                trace,
                EventType::RuleExecution,
                Status::Failure,
                LogLevel::Error,
                |e| {
                    e.reason(format!(
                        "{} failed",
                        failure["failedAction"].as_str().unwrap_or("action")
                    ))
                    .details(format!("rule {}: {failure}", rule.name))
                },
            );
        }
        if failures.is_empty() {
            self.counters.succeeded.fetch_add(1, Ordering::Relaxed);
            self.log_event(
                message,
                trace,
                EventType::RuleExecution,
                Status::Success,
                LogLevel::Info,
                |e| e,
            );
            return;
        }
        self.counters.failed.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(rule = %rule.name, topic = %message.topic, failures = %serde_json::Value::Array(failures.clone()), "rule actions failed");
        let Some(error_action) = &rule.error_action else {
            return;
        };
        let error_payload = json!({
            "ruleName": rule.name,
            "topic": message.topic,
            "cloudwatchTraceId": trace_id,
            "clientId": message.publisher.clone().unwrap_or_default(),
            "base64OriginalPayload": base64::engine::general_purpose::STANDARD.encode(&message.payload),
            "failures": failures,
        });
        if let Err(e) = self
            .run_with_retry(
                error_action,
                &Output::Json(error_payload),
                &message.payload,
                &ctx,
            )
            .await
        {
            self.counters
                .error_action_failed
                .fetch_add(1, Ordering::Relaxed);
            tracing::error!(rule = %rule.name, topic = %message.topic, error = %e.message, "the error action failed too: the message is lost for this rule");
        }
    }

    async fn run_with_retry(
        &self,
        action: &Action,
        output: &Output,
        payload: &[u8],
        ctx: &Context<'_>,
    ) -> Result<(), ActionError> {
        let mut delay = self.shared.config.retry_backoff;
        let mut attempt = 1;
        loop {
            match action.execute(&self.shared, output, payload, ctx).await {
                Ok(()) => return Ok(()),
                Err(e) if e.transient && attempt < self.shared.config.max_attempts => {
                    tracing::debug!(attempt, error = %e.message, "action failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}
