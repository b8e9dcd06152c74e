//! `GET /metrics` on the API port: the gateway's, the rules engine's and
//! the notification delivery's counters in the OpenMetrics text format
//! (Prometheus scrapes it as is). Values are read at each scrape; nothing
//! here keeps state of its own.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use roost_listener::ListenerStats;
use roost_rules::RuleStats;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Every metric's name starts with this.
const PREFIX: &str = "roost";

/// Per-rule counters: (metric name, help, the value in a rule's stats).
type RuleField = (&'static str, &'static str, fn(&RuleStats) -> u64);
const RULE_FIELDS: &[RuleField] = &[
    (
        "rule_matched",
        "messages whose topic matched the rule's FROM",
        |s| s.matched,
    ),
    (
        "rule_filtered",
        "matched messages the rule's WHERE left out",
        |s| s.filtered,
    ),
    (
        "rule_succeeded",
        "messages every action of the rule took",
        |s| s.succeeded,
    ),
    (
        "rule_failed",
        "messages an action failed on after its retries (sent to the error action)",
        |s| s.failed,
    ),
    (
        "rule_dropped",
        "messages dropped because the rule's queue was full",
        |s| s.dropped,
    ),
    (
        "rule_sql_errors",
        "messages the rule's SQL could not evaluate",
        |s| s.sql_errors,
    ),
    (
        "rule_error_action_failed",
        "failures the error action could not take either",
        |s| s.error_action_failed,
    ),
];

/// Each listener's counters.
#[derive(Clone, Debug, Default)]
pub struct Listeners {
    pub mqtt: Arc<ListenerStats>,
    pub mqtt_plain: Arc<ListenerStats>,
    pub https: Arc<ListenerStats>,
    pub api: Arc<ListenerStats>,
}

impl Listeners {
    fn each(&self) -> [(&'static str, &ListenerStats); 4] {
        [
            ("mqtt", &self.mqtt),
            ("mqtt_plain", &self.mqtt_plain),
            ("https", &self.https),
            ("api", &self.api),
        ]
    }
}

/// Per-listener values: (metric name, help, the value, a gauge?).
type ListenerField = (&'static str, &'static str, fn(&ListenerStats) -> u64, bool);
const LISTENER_FIELDS: &[ListenerField] = &[
    (
        "listener_connections_accepted",
        "TCP connections accepted",
        |s| s.accepted.load(Ordering::Relaxed),
        false,
    ),
    (
        "listener_connections_refused_capacity",
        "connections closed at once because the listener was at its cap",
        |s| s.refused_capacity.load(Ordering::Relaxed),
        false,
    ),
    (
        "listener_connections_refused_proxy_header",
        "connections from a trusted proxy closed because their PROXY protocol header was missing, malformed, too large or late",
        |s| s.refused_proxy_header.load(Ordering::Relaxed),
        false,
    ),
    (
        "listener_accept_errors",
        "errors accept returned (out of descriptors, say), each followed by a backoff",
        |s| s.accept_errors.load(Ordering::Relaxed),
        false,
    ),
    (
        "listener_connections",
        "connections being served now (TLS handshakes included)",
        |s| s.current.load(Ordering::Relaxed),
        true,
    ),
];

/// Reads the counters of the running parts at each scrape.
#[derive(Clone)]
pub struct Exporter {
    pub broker: roost_broker::Broker,
    pub rules: roost_rules::RulesEngine,
    pub notifier: Arc<roost_notify::Notifier>,
    pub listeners: Listeners,
    pub registry: roost_registry::Registry,
    /// The cluster link's counters, on a node joined to one.
    pub cluster: Option<Arc<roost_nats::LinkCounters>>,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter").finish_non_exhaustive()
    }
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> std::fmt::Result {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> std::fmt::Result {
    let metric = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

impl Collector for Exporter {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        for field in self.broker.metrics().fields() {
            let name = format!("gateway_{}", field.name);
            if field.gauge {
                gauge(&mut encoder, &name, field.help, field.value)?;
            } else {
                counter(&mut encoder, &name, field.help, field.value)?;
            }
        }

        for (name, help, value, is_gauge) in LISTENER_FIELDS {
            let kind = if *is_gauge {
                MetricType::Gauge
            } else {
                MetricType::Counter
            };
            let mut family = encoder.encode_descriptor(name, help, None, kind)?;
            for (listener, stats) in self.listeners.each() {
                let labels = [("listener", listener)];
                let v = value(stats);
                if *is_gauge {
                    ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX))
                        .encode(family.encode_family(&labels)?)?;
                } else {
                    ConstCounter::new(v).encode(family.encode_family(&labels)?)?;
                }
            }
        }

        let stats = self.rules.stats();
        for (name, help, value) in RULE_FIELDS {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (rule, s) in &stats {
                let labels = [("rule", rule.as_str())];
                ConstCounter::new(value(s)).encode(family.encode_family(&labels)?)?;
            }
        }

        let events = self.broker.event_log().counters();
        counter(
            &mut encoder,
            "event_log_events",
            "events handed to the event log's writer",
            events.queued(),
        )?;
        counter(
            &mut encoder,
            "event_log_dropped",
            "events dropped because the event log's queue was full",
            events.dropped(),
        )?;
        counter(
            &mut encoder,
            "event_log_write_failures",
            "event log writes (or flushes) that failed",
            events.write_failures(),
        )?;

        if let Some(cluster) = &self.cluster {
            for (name, help, value) in cluster.fields() {
                counter(&mut encoder, &format!("cluster_{name}"), help, value)?;
            }
            gauge(
                &mut encoder,
                "cluster_shared_subscriptions",
                "shared subscriptions with a member on this node, held as NATS queue subscriptions now",
                cluster.shared_held.load(Ordering::Relaxed),
            )?;
        }

        let sns = &self.notifier.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        counter(
            &mut encoder,
            "sns_mail_sent",
            "notification mails the SMTP server accepted",
            load(&sns.mail_sent),
        )?;
        counter(
            &mut encoder,
            "sns_mail_failed",
            "notification mails that could not be sent",
            load(&sns.mail_failed),
        )?;
        counter(
            &mut encoder,
            "sns_http_sent",
            "http/https notifications a subscriber accepted",
            load(&sns.http_sent),
        )?;
        counter(
            &mut encoder,
            "registry_policy_cache_flushes",
            "times the parsed-policy cache was full and emptied (its documents are parsed again on demand)",
            self.registry.policy_cache_flushes(),
        )?;
        counter(
            &mut encoder,
            "sns_http_failed",
            "http/https notifications given up on (after retries, or dropped)",
            load(&sns.http_failed),
        )?;
        counter(
            &mut encoder,
            "rule_destination_confirmations_sent",
            "topic rule destination confirmation messages the confirmation URL accepted",
            load(&sns.destination_confirmations_sent),
        )?;
        counter(
            &mut encoder,
            "rule_destination_confirmations_failed",
            "topic rule destination confirmation messages given up on (the destination goes to ERROR)",
            load(&sns.destination_confirmations_failed),
        )?;
        Ok(())
    }
}

/// Renders every metric, as `GET /metrics` answers.
pub fn renderer(exporter: Exporter) -> impl Fn() -> String + Send + Sync + 'static {
    let mut registry = prometheus_client::registry::Registry::with_prefix(PREFIX);
    registry.register_collector(Box::new(exporter));
    move || {
        let mut text = String::new();
        match prometheus_client::encoding::text::encode(&mut text, &registry) {
            Ok(()) => text,
            Err(e) => {
                // Only a formatting error of a String, which does not fail.
                tracing::error!(error = %e, "encoding the metrics failed");
                String::new()
            }
        }
    }
}
