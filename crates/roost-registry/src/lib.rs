//! The AWS IoT registry: things, thing types, thing groups, certificates and
//! their CA, IoT policies and their attachments, topic rules and their
//! destinations, and the control plane's access keys.
//!
//! `Registry` holds AWS's rules (names, limits, state transitions, idempotent
//! creates) and answers in AWS's terms (`RegistryError` maps one-to-one onto
//! AWS error codes). Storage sits behind the [`store::Store`] trait. This
//! crate never speaks HTTP or MQTT, and never logs secrets or private keys.
#![forbid(unsafe_code)]

pub mod error;
pub mod model;
pub mod pki;
pub mod store;
pub mod validate;

mod authz;
mod certificates;
pub mod destinations;
pub mod feed;
mod generations;
mod groups;
pub mod logging;
mod policies;
mod policy_cache;
pub mod rules;
pub mod sns;
mod things;

pub use authz::{AuthInfo, AuthResult, PrincipalAuthorization};
pub use certificates::{CaRegistration, CertificateCreated, CertificateRefusal};
pub use error::{RegistryError, Result};
pub use generations::{AuthorizationScope, AuthorizationWatch};
pub use groups::{GroupDescription, GroupMembership};
pub use things::{ThingTypeSpec, ThingUpdate};

use base64::Engine;
use model::*;
use pki::CertificateAuthority;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use store::Store;
use tokio::sync::broadcast;

/// Registry-wide settings.
#[derive(Clone, Debug)]
pub struct Settings {
    pub region: String,
    pub account: String,
    /// How long a thing type must stay deprecated before it can be deleted
    /// (AWS: 5 minutes).
    pub thing_type_deletion_wait: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            region: "us-east-1".into(),
            account: "000000000000".into(),
            thing_type_deletion_wait: Duration::from_secs(300),
        }
    }
}

/// Changes that live connections must react to. Sent on a bounded broadcast
/// channel; a receiver that lags must treat everything as changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegistryEvent {
    /// A certificate left (or entered) ACTIVE, or was deleted.
    CertificateStatusChanged {
        certificate_id: String,
        status: Option<CertificateStatus>,
    },
    /// Policies, their versions or attachments, or a thing's attributes,
    /// type, groups or principals changed: cached authorizations are stale.
    AuthorizationChanged,
    /// A topic rule was created, replaced, deleted, enabled or disabled.
    RulesChanged,
    /// A topic rule destination was created, confirmed, updated or deleted.
    DestinationsChanged,
    /// Changes made on other nodes may have been missed (the cluster's
    /// transport reconnected): treat everything as changed.
    Resynced,
}

/// How many registry events may wait for a slow receiver before it lags.
pub const EVENT_CHANNEL_CAPACITY: usize = 1024;

/// The registry service. Cheap to clone.
#[derive(Clone)]
pub struct Registry {
    store: Arc<dyn Store>,
    ca: Arc<CertificateAuthority>,
    arns: Arns,
    settings: Settings,
    events: broadcast::Sender<RegistryEvent>,
    /// On a shared database, the tag this registry's own changes carry in
    /// the change notifications ([`feed`]).
    origin: Option<Arc<str>>,
    /// Whether this node's view of a shared store is known to be current.
    freshness: Arc<feed::Freshness>,
    /// Bumped, before the call that changed anything returns, for every
    /// change that may alter an authorization decision, in the change's
    /// scope; connections compare their generation with the one their
    /// policies were prepared at.
    generations: Arc<generations::Generations>,
    /// Set once at start by the rules engine.
    rule_validator: Arc<std::sync::OnceLock<Arc<dyn rules::RuleValidator>>>,
    /// Set once at start by whoever delivers http messages.
    destination_confirmer: Arc<std::sync::OnceLock<Arc<dyn destinations::DestinationConfirmer>>>,
    /// Bumped before a call that changed topic rule destinations returns.
    destinations_generation: Arc<std::sync::atomic::AtomicU64>,
    /// Parsed policy documents (bounded), shared by every connection's
    /// authorization refresh.
    policy_cache: Arc<policy_cache::PolicyCache>,
}

impl Registry {
    /// The SQLite file inside a data directory.
    pub const DATABASE_FILE: &'static str = "roost.db";

    /// Opens the registry in `data_dir`: the SQLite database and the CA, both
    /// created on first start.
    pub async fn open(data_dir: &Path, settings: Settings) -> Result<Self> {
        std::fs::create_dir_all(data_dir)?;
        let store = store::sqlite::SqliteStore::open(&data_dir.join(Self::DATABASE_FILE)).await?;
        Self::open_with(data_dir, Arc::new(store), settings)
    }

    /// Opens the registry with its records in the PostgreSQL database at
    /// `url` (migrated on open); the CA stays in `data_dir`.
    pub async fn open_postgres(
        data_dir: &Path,
        url: &store::postgres::PostgresUrl,
        settings: Settings,
    ) -> Result<Self> {
        std::fs::create_dir_all(data_dir)?;
        let store = store::postgres::PostgresStore::connect(url).await?;
        let origin = Arc::from(store.origin());
        let mut registry = Self::open_with(data_dir, Arc::new(store), settings)?;
        registry.origin = Some(origin);
        Ok(registry)
    }

    fn open_with(data_dir: &Path, store: Arc<dyn Store>, settings: Settings) -> Result<Self> {
        let ca = CertificateAuthority::load_or_create(data_dir)?;
        Ok(Self::with_store(store, Arc::new(ca), settings))
    }

    pub fn with_store(
        store: Arc<dyn Store>,
        ca: Arc<CertificateAuthority>,
        settings: Settings,
    ) -> Self {
        let arns = Arns {
            region: settings.region.clone(),
            account: settings.account.clone(),
        };
        let (events, _) = broadcast::channel(EVENT_CHANNEL_CAPACITY);
        Self {
            store,
            ca,
            arns,
            settings,
            events,
            origin: None,
            freshness: Arc::default(),
            generations: Arc::default(),
            rule_validator: Arc::new(std::sync::OnceLock::new()),
            destination_confirmer: Arc::new(std::sync::OnceLock::new()),
            destinations_generation: Arc::default(),
            policy_cache: Arc::default(),
        }
    }

    /// Times the parsed-policy cache was full and emptied.
    pub fn policy_cache_flushes(&self) -> u64 {
        self.policy_cache
            .flushes
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Installs the rules engine's validator for CreateTopicRule and
    /// ReplaceTopicRule (once; later calls are ignored).
    pub fn set_rule_validator(&self, validator: Arc<dyn rules::RuleValidator>) {
        let _ = self.rule_validator.set(validator);
    }

    pub(crate) fn rule_validator(&self) -> Option<Arc<dyn rules::RuleValidator>> {
        self.rule_validator.get().cloned()
    }

    pub fn arns(&self) -> &Arns {
        &self.arns
    }

    /// Where jobs and job executions are kept. What their changes mean is
    /// the jobs service's (roost-jobs decides, the store keeps).
    pub fn job_store(&self) -> &dyn store::JobStore {
        &*self.store
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn ca(&self) -> &CertificateAuthority {
        &self.ca
    }

    /// Subscribes to changes that affect live connections.
    pub fn events(&self) -> broadcast::Receiver<RegistryEvent> {
        self.events.subscribe()
    }

    /// Applies an event (a change made here, or heard from another node
    /// sharing the store: [`feed`]) to this node: synchronously first, so the very next
    /// action of the connections concerned sees the change; then the
    /// broadcast for those that must act (drop a connection). No receivers
    /// is fine: nothing is connected yet.
    fn publish(&self, event: RegistryEvent) {
        if let RegistryEvent::CertificateStatusChanged { certificate_id, .. } = &event {
            self.generations
                .bump(AuthorizationScope::Certificate(certificate_id));
        }
        let _ = self.events.send(event);
    }

    /// Records a change that may alter authorization decisions in `scope`.
    fn authorization_changed(&self, scope: AuthorizationScope<'_>) {
        self.generations.bump(scope);
        self.publish(RegistryEvent::AuthorizationChanged);
    }

    /// Where a connection with this certificate and client id reads its
    /// authorization generation.
    pub fn authorization_watch(
        &self,
        certificate_id: &str,
        client_id: Option<&str>,
    ) -> AuthorizationWatch {
        self.generations.watch(certificate_id, client_id)
    }

    /// Changes whenever an authorization decision of the watched connection
    /// may have changed.
    pub fn authorization_generation(&self, watch: &AuthorizationWatch) -> u64 {
        self.generations.generation(watch)
    }

    // ---- control-plane credentials -------------------------------------

    /// Creates an access key pair for the control plane and returns it.
    pub async fn create_access_key(&self, description: &str) -> Result<(String, String)> {
        let id = format!(
            "AKIA{}",
            &uuid::Uuid::new_v4().simple().to_string().to_uppercase()[..16]
        );
        let secret = base64::engine::general_purpose::STANDARD
            .encode(
                [
                    uuid::Uuid::new_v4().into_bytes(),
                    uuid::Uuid::new_v4().into_bytes(),
                ]
                .concat(),
            )
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(40)
            .collect::<String>();
        self.store
            .insert_access_key(&id, &secret, description, now_millis())
            .await?;
        Ok((id, secret))
    }

    /// Whether the store answers: the cheapest read every store has (a
    /// primary-key lookup that finds nothing), for `/readyz`.
    pub async fn ping(&self) -> Result<()> {
        self.store.get_access_key_secret("").await.map(|_| ())
    }

    /// Stores an access key pair made elsewhere (the data directory's
    /// credentials file, when the registry's database is new), unless that
    /// key id is stored already. Returns whether it was stored.
    pub async fn import_access_key(
        &self,
        id: &str,
        secret: &str,
        description: &str,
    ) -> Result<bool> {
        if self.store.get_access_key_secret(id).await?.is_some() {
            return Ok(false);
        }
        self.store
            .insert_access_key(id, secret, description, now_millis())
            .await?;
        Ok(true)
    }

    /// The secret of an access key, for SigV4 verification.
    pub async fn access_key_secret(&self, access_key_id: &str) -> Result<Option<String>> {
        self.store.get_access_key_secret(access_key_id).await
    }
}

/// Listing tokens are opaque to clients: base64url of the last key returned.
pub(crate) fn encode_token(key: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key)
}

pub(crate) fn decode_token(token: Option<&str>) -> Result<Option<String>> {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .map(Some)
        .ok_or_else(|| {
            RegistryError::invalid("The pagination token (nextToken/marker) is not valid")
        })
}

/// Runs a keyset-paginated listing: asks the store for one more item than
/// the page holds, so the token is only set when there really is a next page.
pub async fn paged<T, F, Fut>(
    token: Option<&str>,
    limit: usize,
    ascending: bool,
    key: impl Fn(&T) -> String,
    fetch: F,
) -> Result<Page<T>>
where
    F: FnOnce(PageRequest) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<T>>>,
{
    let after = decode_token(token)?;
    let mut items = fetch(PageRequest {
        after,
        limit: limit + 1,
        ascending,
    })
    .await?;
    let next_token = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|last| encode_token(&key(last)))
    } else {
        None
    };
    Ok(Page { items, next_token })
}
