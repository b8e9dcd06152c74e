//! The handle the gateway holds: the live logging configuration, the level
//! each connection has under it, and the bounded queue towards the writer.
//!
//! Never: block the caller (a full queue drops the event and counts it), or
//! take a lock on the publish path (a connection's level is re-read only
//! when the configuration's generation moves).

use crate::config::{LogLevel, LoggingConfig, Subject};
use crate::event::{Event, EventType, Status};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, RwLock};

/// Events waiting for the writer. Past it, events are dropped and counted
/// (`roost_event_log_dropped_total`) rather than slowing a device down.
pub const QUEUE_CAPACITY: usize = 16384;

/// A cloneable handle; clones share everything.
#[derive(Clone)]
pub struct EventLog {
    inner: Arc<Inner>,
}

struct Inner {
    config: RwLock<Arc<LoggingConfig>>,
    /// Moves on every change of `config`; connections compare it with the
    /// one their level was computed under.
    generation: AtomicU64,
    /// `LoggingConfig::most_verbose` of `config`, so that code without a
    /// connection at hand (the rules engine) rejects cheaply.
    most_verbose: AtomicU8,
    account_id: Arc<str>,
    queue: Option<SyncSender<Event>>,
    counters: Arc<EventLogCounters>,
    trace_ids: TraceIds,
}

/// Trace ids in UUID form, unique within the process and unlike another
/// process's (a random start), without asking the system for randomness
/// per event: a counter from a random start, mixed by a bijection, so no
/// two events share one and consecutive ones do not look alike.
struct TraceIds {
    key: u64,
    next: AtomicU64,
}

impl TraceIds {
    fn new() -> TraceIds {
        let random = uuid::Uuid::new_v4().as_u64_pair();
        TraceIds {
            key: random.0,
            next: AtomicU64::new(random.1),
        }
    }

    /// splitmix64's finalizer: a bijection on u64.
    fn mix(mut z: u64) -> u64 {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn next(&self) -> uuid::Uuid {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let high = Self::mix(n ^ self.key);
        let low = Self::mix(n.wrapping_add(self.key));
        uuid::Builder::from_random_bytes((u128::from(high) << 64 | u128::from(low)).to_be_bytes())
            .into_uuid()
    }
}

/// What happened to events once built; shared with the writer, which must
/// not hold an [`EventLog`] (its queue would never close).
#[derive(Debug, Default)]
pub struct EventLogCounters {
    queued: AtomicU64,
    dropped: AtomicU64,
    write_failures: AtomicU64,
}

impl EventLogCounters {
    /// Events handed to the writer so far.
    pub fn queued(&self) -> u64 {
        self.queued.load(Ordering::Relaxed)
    }

    /// Events dropped because the writer's queue was full (or gone).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Events (or flushes) the writer failed to write.
    pub fn write_failures(&self) -> u64 {
        self.write_failures.load(Ordering::Relaxed)
    }

    pub fn count_write_failure(&self) {
        self.write_failures.fetch_add(1, Ordering::Relaxed);
    }
}

impl EventLog {
    /// A handle whose events go to the returned receiver, at most
    /// `capacity` of them waiting.
    pub fn new(
        account_id: &str,
        config: LoggingConfig,
        capacity: usize,
    ) -> (EventLog, Receiver<Event>) {
        let (tx, rx) = mpsc::sync_channel(capacity.max(1));
        (Self::with_queue(account_id, config, Some(tx)), rx)
    }

    /// A handle that logs nothing (for tools and tests that do not look).
    pub fn off() -> EventLog {
        let config = LoggingConfig::new(crate::LoggingOptions {
            disable_all_logs: true,
            ..Default::default()
        });
        Self::with_queue("", config, None)
    }

    fn with_queue(
        account_id: &str,
        config: LoggingConfig,
        queue: Option<SyncSender<Event>>,
    ) -> EventLog {
        let most_verbose = config.most_verbose() as u8;
        EventLog {
            inner: Arc::new(Inner {
                config: RwLock::new(Arc::new(config)),
                generation: AtomicU64::new(0),
                most_verbose: AtomicU8::new(most_verbose),
                account_id: account_id.into(),
                queue,
                counters: Arc::default(),
                trace_ids: TraceIds::new(),
            }),
        }
    }

    /// The configuration now.
    pub fn config(&self) -> Arc<LoggingConfig> {
        match self.inner.config.read() {
            Ok(config) => config.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Changes the configuration; every connection's level follows at its
    /// next event.
    pub fn update(&self, change: impl FnOnce(&mut LoggingConfig)) {
        let mut guard = match self.inner.config.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut config = LoggingConfig::clone(&guard);
        change(&mut config);
        self.inner
            .most_verbose
            .store(config.most_verbose() as u8, Ordering::Relaxed);
        *guard = Arc::new(config);
        self.inner.generation.fetch_add(1, Ordering::Release);
    }

    /// The level for `subject` under the configuration now.
    pub fn level_for(&self, subject: &Subject<'_>) -> LogLevel {
        if !self.may_log(LogLevel::Error) {
            return LogLevel::Disabled;
        }
        self.config().level_for(subject)
    }

    /// Whether some client could have an event at `level` logged: false
    /// means nothing at that level needs to be built.
    pub fn may_log(&self, level: LogLevel) -> bool {
        LogLevel::from_u8(self.inner.most_verbose.load(Ordering::Relaxed)).logs(level)
    }

    /// A new event now, with this gateway's account and a fresh trace id.
    pub fn event(&self, event_type: EventType, status: Status) -> Event {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        Event::new(
            now,
            self.inner.trace_ids.next(),
            self.inner.account_id.clone(),
            event_type,
            status,
        )
    }

    /// Hands `event` to the writer, or drops and counts it when the queue
    /// is full. The caller has already decided the event is logged.
    pub fn emit(&self, event: Event) {
        let Some(queue) = &self.inner.queue else {
            return;
        };
        match queue.try_send(event) {
            Ok(()) => {
                self.inner.counters.queued.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.inner.counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub fn counters(&self) -> &Arc<EventLogCounters> {
        &self.inner.counters
    }

    fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }
}

/// Not computed yet (no generation reaches it).
const UNKNOWN: u64 = u64::MAX;

/// One connection's level, computed once per configuration change: who the
/// connection is, and the level last computed with the generation it was
/// computed under, packed in one atomic.
pub struct ConnectionLevel {
    client_id: Option<Arc<str>>,
    source_ip: Option<IpAddr>,
    principal_id: Option<Arc<str>>,
    thing_groups: Vec<String>,
    cached: AtomicU64,
}

impl ConnectionLevel {
    /// `thing_groups` most specific first.
    pub fn new(
        client_id: Option<Arc<str>>,
        source_ip: Option<IpAddr>,
        principal_id: Option<Arc<str>>,
        thing_groups: Vec<String>,
    ) -> ConnectionLevel {
        ConnectionLevel {
            client_id,
            source_ip,
            principal_id,
            thing_groups,
            cached: AtomicU64::new(UNKNOWN),
        }
    }

    /// The client id, shared with every event about the connection.
    pub fn client_id(&self) -> Option<&Arc<str>> {
        self.client_id.as_ref()
    }

    /// The principal (certificate id), shared with every event about the
    /// connection.
    pub fn principal_id(&self) -> Option<&Arc<str>> {
        self.principal_id.as_ref()
    }

    /// The connection's level under `log`'s configuration now.
    pub fn level(&self, log: &EventLog) -> LogLevel {
        let generation = log.generation();
        let cached = self.cached.load(Ordering::Relaxed);
        if cached != UNKNOWN && cached >> 3 == generation {
            return LogLevel::from_u8((cached & 0b111) as u8);
        }
        let level = log.level_for(&Subject {
            client_id: self.client_id.as_deref(),
            source_ip: self.source_ip,
            principal_id: self.principal_id.as_deref(),
            thing_groups: &self.thing_groups,
        });
        self.cached
            .store((generation << 3) | level as u64, Ordering::Relaxed);
        level
    }

    /// Whether an event at `level` about this connection is logged.
    pub fn logs(&self, log: &EventLog, level: LogLevel) -> bool {
        self.level(log).logs(level)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LogTarget, LoggingOptions, TargetType};

    fn info_log(capacity: usize) -> (EventLog, Receiver<Event>) {
        EventLog::new(
            "000000000000",
            LoggingConfig::new(LoggingOptions {
                default_log_level: LogLevel::Info,
                ..Default::default()
            }),
            capacity,
        )
    }

    #[test]
    fn a_connection_follows_configuration_changes() {
        let (log, _rx) = info_log(4);
        let conn = ConnectionLevel::new(Some("c1".into()), None, None, Vec::new());
        assert_eq!(conn.level(&log), LogLevel::Info);
        assert_eq!(conn.level(&log), LogLevel::Info);
        log.update(|config| {
            config.set_level(
                LogTarget::new(TargetType::ClientId, Some("c1")).unwrap(),
                LogLevel::Debug,
            )
        });
        assert_eq!(conn.level(&log), LogLevel::Debug);
        assert!(conn.logs(&log, LogLevel::Debug));
        log.update(|config| config.options.disable_all_logs = true);
        assert_eq!(conn.level(&log), LogLevel::Disabled);
        assert!(!log.may_log(LogLevel::Error));
    }

    #[test]
    fn a_full_queue_drops_and_counts() {
        let (log, rx) = info_log(2);
        for _ in 0..5 {
            log.emit(log.event(EventType::Connect, Status::Success));
        }
        assert_eq!(log.counters().queued(), 2);
        assert_eq!(log.counters().dropped(), 3);
        assert_eq!(rx.try_iter().count(), 2);
        log.emit(log.event(EventType::Connect, Status::Success));
        assert_eq!(log.counters().queued(), 3);
        drop(rx);
        log.emit(log.event(EventType::Connect, Status::Success));
        assert_eq!(log.counters().dropped(), 4);
    }

    #[test]
    fn trace_ids_do_not_repeat() {
        let ids = TraceIds::new();
        let all: std::collections::HashSet<uuid::Uuid> = (0..10_000).map(|_| ids.next()).collect();
        assert_eq!(all.len(), 10_000);
        assert_eq!(ids.next().get_version_num(), 4);
    }

    #[test]
    fn events_carry_account_and_a_trace_id() {
        let (log, _rx) = info_log(1);
        let a = log.event(EventType::Subscribe, Status::Success);
        let b = log.event(EventType::Subscribe, Status::Success);
        assert_eq!(&*a.account_id, "000000000000");
        assert_ne!(a.trace_id, b.trace_id);
        assert!(a.unix_millis().is_some());
    }

    #[test]
    fn off_logs_nothing() {
        let log = EventLog::off();
        let conn = ConnectionLevel::new(Some("c".into()), None, None, Vec::new());
        assert_eq!(conn.level(&log), LogLevel::Disabled);
        log.emit(log.event(EventType::Connect, Status::Success));
        assert_eq!(log.counters().queued(), 0);
    }
}
