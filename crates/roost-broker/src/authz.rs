//! Per-connection authorization: the connection's policies prepared once,
//! and re-prepared after the registry's authorization generation moves, so a changed
//! policy, default version, attachment or thing attribute applies from the
//! next action. Each preparation checks the certificate first: a
//! certificate that left ACTIVE stops the connection at its next action,
//! even before the revocation's broadcast has closed it.

use roost_policy::{Action, Decision, PreparedPolicies, Request};
use roost_registry::{CertificateRefusal, Registry, RegistryError};

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
#[derive(Clone)]
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
}

impl ConnectionAuthz {
    pub async fn new(
        registry: Registry,
        certificate: roost_policy::CertificateContext,
        client_id: Option<&str>,
        source_ip: Option<std::net::IpAddr>,
    ) -> Result<Self, AuthzError> {
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
        let publish = self.decide(Action::Publish, "topic", topic, &[]);
        if !retain || publish != Decision::Allowed {
            return publish;
        }
        self.decide(Action::RetainPublish, "topic", topic, &[])
    }

    pub fn subscribe(&self, filter: &str) -> Decision {
        self.decide(Action::Subscribe, "topicfilter", filter, &[])
    }

    pub fn receive(&self, topic: &str) -> Decision {
        self.decide(Action::Receive, "topic", topic, &[])
    }
}
