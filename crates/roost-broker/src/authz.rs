//! Per-connection authorization: the connection's policies prepared once,
//! and re-prepared after the registry's authorization generation moves, so a changed
//! policy, default version, attachment or thing attribute applies from the
//! next action. Each preparation checks the certificate first: a
//! certificate that left ACTIVE stops the connection at its next action,
//! even before the revocation's broadcast has closed it.

use crate::metrics::Metrics;
use crate::sync::Locked;
use roost_policy::{Action, Decision, PreparedPolicies, Request};
use roost_registry::{CertificateRefusal, Registry, RegistryError};
use std::sync::{Arc, Mutex};

/// How many recent decisions without request-level context values a
/// connection remembers: a device publishes to, and receives from, a handful
/// of topics, so most of its PUBLISHes and deliveries are answered without
/// building an ARN or walking its policies.
const REMEMBERED: usize = 8;

/// A connection's last decisions, oldest first; emptied whenever its
/// policies are prepared again.
#[derive(Default)]
struct Remembered {
    decisions: Vec<(Action, Box<str>, Decision)>,
}

impl Remembered {
    fn find(&self, action: Action, name: &str) -> Option<Decision> {
        self.decisions
            .iter()
            .find(|(a, n, _)| *a == action && **n == *name)
            .map(|(_, _, decision)| *decision)
    }

    /// Remembers a decision; `true` when the oldest was forgotten for it.
    fn remember(&mut self, action: Action, name: &str, decision: Decision) -> bool {
        let full = self.decisions.len() == REMEMBERED;
        if full {
            self.decisions.remove(0);
        }
        self.decisions.push((action, name.into(), decision));
        full
    }

    fn forget(&mut self) {
        self.decisions.clear();
    }
}

/// Why a connection's authorization could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum AuthzError {
    /// The certificate is no longer usable (revoked, inactive, deleted).
    #[error("{0}")]
    Refused(CertificateRefusal),
    /// The registry did not answer.
    #[error("{0}")]
    Registry(#[from] RegistryError),
}

/// What one connection may do.
pub struct ConnectionAuthz {
    registry: Registry,
    /// The certificate's policy variables, read once (not the whole record:
    /// thousands of connections each holding a PEM add up).
    certificate: roost_policy::CertificateContext,
    client_id: Option<String>,
    source_ip: Option<std::net::IpAddr>,
    prepared: PreparedPolicies,
    /// Where this connection's authorization generation is read, and the
    /// generation its policies were prepared at.
    watch: roost_registry::AuthorizationWatch,
    prepared_at: u64,
    /// `arn:aws:iot:<region>:<account>:`, built once: every PUBLISH and every
    /// delivery needs a resource ARN.
    arn_prefix: String,
    /// Decisions that depend only on (action, resource) under `prepared`:
    /// the broker passes no request-level values for publish, receive and
    /// subscribe, so these are pure until the next refresh.
    remembered: Mutex<Remembered>,
    metrics: Arc<Metrics>,
}

impl Clone for ConnectionAuthz {
    /// A clone starts with nothing remembered.
    fn clone(&self) -> Self {
        Self {
            registry: self.registry.clone(),
            certificate: self.certificate.clone(),
            client_id: self.client_id.clone(),
            source_ip: self.source_ip,
            prepared: self.prepared.clone(),
            watch: self.watch,
            prepared_at: self.prepared_at,
            arn_prefix: self.arn_prefix.clone(),
            remembered: Mutex::default(),
            metrics: self.metrics.clone(),
        }
    }
}

impl ConnectionAuthz {
    pub(crate) async fn new(
        registry: Registry,
        certificate: roost_policy::CertificateContext,
        client_id: Option<&str>,
        source_ip: Option<std::net::IpAddr>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, AuthzError> {
        // A node that cannot confirm it has every change the other nodes
        // made to a shared registry lets no one new in: a revocation may
        // be unheard.
        registry
            .freshness()
            .check()
            .map_err(|why| RegistryError::Internal(format!("registry: {why}")))?;
        let settings = registry.settings();
        let arn_prefix = format!("arn:aws:iot:{}:{}:", settings.region, settings.account);
        let watch = registry.authorization_watch(&certificate.id, client_id);
        let mut authz = Self {
            watch,
            registry,
            certificate,
            client_id: client_id.map(str::to_string),
            source_ip,
            prepared: PreparedPolicies::default(),
            prepared_at: 0,
            arn_prefix,
            remembered: Mutex::default(),
            metrics,
        };
        // Boxed: the registry lookups are large futures, needed only now;
        // inline they would bloat every connection's task for its whole life.
        Box::pin(authz.refresh()).await?;
        Ok(authz)
    }

    async fn refresh(&mut self) -> Result<(), AuthzError> {
        // Read before the checks: a change made while they run moves it
        // again, and the next action refreshes once more.
        let at = self.registry.authorization_generation(&self.watch);
        self.registry
            .check_device_certificate(&self.certificate.id)
            .await?
            .map_err(AuthzError::Refused)?;
        let mut auth = self
            .registry
            .principal_authorization_for(
                &self.certificate.id,
                self.certificate.clone(),
                self.client_id.as_deref(),
            )
            .await?;
        auth.context.source_ip = self.source_ip;
        self.prepared = PreparedPolicies::prepare(auth.policies, &auth.context);
        self.prepared_at = at;
        self.remembered.locked().forget();
        Ok(())
    }

    /// Re-prepares the policies if a change that may concern this
    /// connection was made since they were; `true` when it did.
    pub async fn ensure_fresh(&mut self) -> Result<bool, AuthzError> {
        if self.registry.authorization_generation(&self.watch) == self.prepared_at {
            return Ok(false);
        }
        Box::pin(self.refresh()).await?;
        Ok(true)
    }

    pub fn certificate_id(&self) -> &str {
        &self.certificate.id
    }

    fn arn(&self, kind: &str, name: &str) -> String {
        let mut arn = String::with_capacity(self.arn_prefix.len() + kind.len() + 1 + name.len());
        arn.push_str(&self.arn_prefix);
        arn.push_str(kind);
        arn.push('/');
        arn.push_str(name);
        arn
    }

    pub fn decide(
        &self,
        action: Action,
        kind: &str,
        name: &str,
        context_values: &[(&str, &[&str])],
    ) -> Decision {
        let resource = self.arn(kind, name);
        self.prepared.decide(&Request {
            action,
            resource: &resource,
            context_values,
        })
    }

    /// [`Self::decide`] with no request-level values, answered from the
    /// connection's recent decisions when it can be.
    fn decide_remembered(&self, action: Action, kind: &str, name: &str) -> Decision {
        let mut remembered = self.remembered.locked();
        if let Some(decision) = remembered.find(action, name) {
            return decision;
        }
        let decision = self.decide(action, kind, name, &[]);
        if remembered.remember(action, name, decision) {
            self.metrics
                .authz_decisions_replaced
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        decision
    }

    pub fn connect(&self, attributes: &[&str], last_will_topic: Option<&str>) -> Decision {
        let will_arn = last_will_topic.map(|t| self.arn("topic", t));
        let will_values: Vec<&str> = will_arn.iter().map(String::as_str).collect();
        let mut values: Vec<(&str, &[&str])> = vec![("iot:ConnectAttributes", attributes)];
        if !will_values.is_empty() {
            values.push(("iot:LastWillTopic", &will_values));
        }
        let client_id = self.client_id.as_deref().unwrap_or_default();
        self.decide(Action::Connect, "client", client_id, &values)
    }

    pub fn publish(&self, topic: &str, retain: bool) -> Decision {
        let publish = self.decide_remembered(Action::Publish, "topic", topic);
        if !retain || publish != Decision::Allowed {
            return publish;
        }
        self.decide_remembered(Action::RetainPublish, "topic", topic)
    }

    pub fn subscribe(&self, filter: &str) -> Decision {
        self.decide_remembered(Action::Subscribe, "topicfilter", filter)
    }

    pub fn receive(&self, topic: &str) -> Decision {
        self.decide_remembered(Action::Receive, "topic", topic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembered_decisions_are_bounded_and_replace_the_oldest() {
        let mut remembered = Remembered::default();
        for i in 0..REMEMBERED {
            let replaced =
                remembered.remember(Action::Publish, &format!("t/{i}"), Decision::Allowed);
            assert!(!replaced);
        }
        // Same name, other action: a separate decision.
        assert_eq!(remembered.find(Action::Receive, "t/0"), None);
        assert_eq!(
            remembered.find(Action::Publish, "t/0"),
            Some(Decision::Allowed)
        );
        assert!(remembered.remember(Action::Publish, "t/new", Decision::ExplicitDeny));
        assert_eq!(remembered.decisions.len(), REMEMBERED);
        assert_eq!(
            remembered.find(Action::Publish, "t/0"),
            None,
            "the oldest went"
        );
        assert_eq!(
            remembered.find(Action::Publish, "t/1"),
            Some(Decision::Allowed)
        );
        assert_eq!(
            remembered.find(Action::Publish, "t/new"),
            Some(Decision::ExplicitDeny)
        );
        remembered.forget();
        assert_eq!(remembered.find(Action::Publish, "t/1"), None);
    }
}
