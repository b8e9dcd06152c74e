//! The storage boundary. Every method is one atomic unit that keeps AWS IoT's
//! invariants (a policy cannot be deleted while attached, a thing type cannot
//! be deleted while things use it, `expectedVersion` checks); the `Registry`
//! above it validates input and shapes answers. SQLite is the embedded
//! default; PostgreSQL is the other implementation. Both run the same
//! statements (`sql/`), so they keep the same invariants and errors.

pub mod jobs;
pub mod logging;
pub mod postgres;
pub mod sqlite;

pub use jobs::JobStore;
pub use logging::LoggingStore;

use crate::error::Result;
use crate::model::*;
use async_trait::async_trait;

/// A change to apply to a record under the store's write lock, after the
/// optimistic version check and before the write. It may refuse the change.
pub type Change<T> = Box<dyn FnOnce(&mut T) -> Result<()> + Send>;

/// What a create found: the new record, or the one already stored.
#[derive(Debug)]
pub enum Created<T> {
    New(T),
    Existing(T),
}

#[derive(Clone, Debug, Default)]
pub struct ThingFilter {
    pub attribute_name: Option<String>,
    pub attribute_value: Option<String>,
    pub attribute_value_prefix: bool,
    pub thing_type_name: Option<String>,
}

#[async_trait]
/// Jobs are stored behind [`JobStore`] and event log settings behind
/// [`LoggingStore`], which every store implements too.
pub trait Store: JobStore + LoggingStore + Send + Sync + 'static {
    // Thing types.
    async fn create_thing_type(&self, thing_type: &ThingType) -> Result<Created<ThingType>>;
    async fn get_thing_type(&self, name: &str) -> Result<Option<ThingType>>;
    async fn list_thing_types(
        &self,
        name: Option<&str>,
        page: &PageRequest,
    ) -> Result<Vec<ThingType>>;
    async fn set_thing_type_deprecated(
        &self,
        name: &str,
        deprecated: bool,
        at: Millis,
    ) -> Result<()>;
    /// Deletes a type that is deprecated since `deprecated_before` or earlier and unused.
    async fn delete_thing_type(&self, name: &str, deprecated_before: Millis) -> Result<()>;

    // Things.
    async fn create_thing(&self, thing: &Thing) -> Result<Created<Thing>>;
    async fn get_thing(&self, name: &str) -> Result<Option<Thing>>;
    async fn update_thing(
        &self,
        name: &str,
        expected_version: Option<i64>,
        change: Change<Thing>,
    ) -> Result<Thing>;
    async fn delete_thing(&self, name: &str, expected_version: Option<i64>) -> Result<()>;
    async fn list_things(&self, filter: &ThingFilter, page: &PageRequest) -> Result<Vec<Thing>>;

    // Thing groups.
    async fn create_thing_group(&self, group: &ThingGroup) -> Result<Created<ThingGroup>>;
    async fn get_thing_group(&self, name: &str) -> Result<Option<ThingGroup>>;
    async fn update_thing_group(
        &self,
        name: &str,
        expected_version: Option<i64>,
        change: Change<ThingGroup>,
    ) -> Result<ThingGroup>;
    async fn delete_thing_group(&self, name: &str, expected_version: Option<i64>) -> Result<()>;
    async fn list_thing_groups(
        &self,
        parent: Option<&str>,
        name_prefix: Option<&str>,
        page: &PageRequest,
    ) -> Result<Vec<ThingGroup>>;
    async fn add_thing_to_group(&self, group: &str, thing: &str) -> Result<()>;
    async fn remove_thing_from_group(&self, group: &str, thing: &str) -> Result<()>;
    async fn list_things_in_group(&self, group: &str, page: &PageRequest) -> Result<Vec<String>>;
    async fn list_groups_of_thing(&self, thing: &str) -> Result<Vec<String>>;

    // Certificates.
    async fn insert_certificate(&self, cert: &Certificate) -> Result<Created<Certificate>>;
    async fn get_certificate(&self, id: &str) -> Result<Option<Certificate>>;
    async fn list_certificates(
        &self,
        ca_certificate_id: Option<&str>,
        page: &PageRequest,
    ) -> Result<Vec<Certificate>>;
    async fn update_certificate(
        &self,
        id: &str,
        change: Change<Certificate>,
    ) -> Result<Certificate>;
    /// Deletes an inactive certificate with no things attached; attached
    /// policies are detached with it when `force`, refused otherwise.
    async fn delete_certificate(&self, id: &str, arn: &str, force: bool) -> Result<()>;

    async fn insert_ca_certificate(&self, ca: &CaCertificate) -> Result<Created<CaCertificate>>;
    async fn get_ca_certificate(&self, id: &str) -> Result<Option<CaCertificate>>;
    async fn list_ca_certificates(&self) -> Result<Vec<CaCertificate>>;

    // Thing principals.
    async fn attach_thing_principal(
        &self,
        thing: &str,
        principal: &str,
        kind: ThingPrincipalType,
    ) -> Result<()>;
    async fn detach_thing_principal(&self, thing: &str, principal: &str) -> Result<()>;
    async fn list_thing_principals(&self, thing: &str, page: &PageRequest) -> Result<Vec<String>>;
    async fn list_principal_things(
        &self,
        principal: &str,
        page: &PageRequest,
    ) -> Result<Vec<String>>;

    // Policies.
    async fn create_policy(&self, policy: &Policy, document: &str) -> Result<()>;
    async fn get_policy(&self, name: &str) -> Result<Option<(Policy, PolicyVersion)>>;
    async fn list_policies(&self, page: &PageRequest) -> Result<Vec<Policy>>;
    /// Deletes a policy that has only its default version and no targets.
    async fn delete_policy(&self, name: &str) -> Result<()>;
    async fn create_policy_version(
        &self,
        name: &str,
        document: &str,
        set_as_default: bool,
        at: Millis,
        max_versions: usize,
    ) -> Result<PolicyVersion>;
    async fn get_policy_version(&self, name: &str, version: i64) -> Result<Option<PolicyVersion>>;
    async fn list_policy_versions(&self, name: &str) -> Result<Vec<PolicyVersion>>;
    async fn delete_policy_version(&self, name: &str, version: i64) -> Result<()>;
    async fn set_default_policy_version(&self, name: &str, version: i64, at: Millis) -> Result<()>;
    async fn attach_policy(&self, name: &str, target: &str, max_per_target: usize) -> Result<()>;
    async fn detach_policy(&self, name: &str, target: &str) -> Result<()>;
    async fn list_policy_targets(&self, name: &str, page: &PageRequest) -> Result<Vec<String>>;
    /// The policies attached to each of `targets`, with their default documents.
    async fn attached_policies(&self, targets: &[String]) -> Result<Vec<(Policy, PolicyVersion)>>;

    // Topic rules.
    async fn create_topic_rule(&self, rule: &crate::rules::TopicRule) -> Result<()>;
    async fn get_topic_rule(&self, name: &str) -> Result<Option<crate::rules::TopicRule>>;
    async fn replace_topic_rule(
        &self,
        name: &str,
        payload: &serde_json::Value,
        disabled: bool,
    ) -> Result<()>;
    async fn delete_topic_rule(&self, name: &str) -> Result<()>;
    async fn set_topic_rule_disabled(&self, name: &str, disabled: bool) -> Result<()>;
    async fn list_topic_rules(&self, page: &PageRequest) -> Result<Vec<crate::rules::TopicRule>>;

    // Topic rule destinations.
    /// Inserts a destination; a destination with the same confirmation URL
    /// is AlreadyExists (naming the one stored).
    async fn insert_topic_rule_destination(
        &self,
        destination: &crate::destinations::TopicRuleDestination,
    ) -> Result<()>;
    async fn get_topic_rule_destination(
        &self,
        arn: &str,
    ) -> Result<Option<crate::destinations::TopicRuleDestination>>;
    /// The destination whose current token has this SHA-256 (hex).
    async fn find_topic_rule_destination_by_token(
        &self,
        token_sha256: &str,
    ) -> Result<Option<crate::destinations::TopicRuleDestination>>;
    /// Destinations by ARN, after `page.after`.
    async fn list_topic_rule_destinations(
        &self,
        page: &PageRequest,
    ) -> Result<Vec<crate::destinations::TopicRuleDestination>>;
    /// Applies `change` to the stored destination in one transaction
    /// (NotFound when there is none) and returns it as written.
    async fn update_topic_rule_destination(
        &self,
        arn: &str,
        change: Change<crate::destinations::TopicRuleDestination>,
    ) -> Result<crate::destinations::TopicRuleDestination>;
    /// Returns false when no such destination existed.
    async fn delete_topic_rule_destination(&self, arn: &str) -> Result<bool>;

    // SNS topics and subscriptions.
    /// Inserts the topic unless one of that name exists; returns the stored topic.
    async fn sns_create_topic(&self, topic: &crate::sns::SnsTopic) -> Result<crate::sns::SnsTopic>;
    async fn sns_get_topic(&self, name: &str) -> Result<Option<crate::sns::SnsTopic>>;
    async fn sns_list_topics(&self) -> Result<Vec<crate::sns::SnsTopic>>;
    async fn sns_set_topic_attributes(
        &self,
        name: &str,
        attributes: &std::collections::BTreeMap<String, String>,
    ) -> Result<()>;
    /// Deletes the topic and all its subscriptions; a missing topic is fine.
    async fn sns_delete_topic(&self, name: &str) -> Result<()>;
    async fn sns_insert_subscription(&self, sub: &crate::sns::SnsSubscription) -> Result<()>;
    async fn sns_get_subscription(&self, arn: &str) -> Result<Option<crate::sns::SnsSubscription>>;
    /// A topic's subscriptions (all topics' with `None`), oldest first.
    async fn sns_list_subscriptions(
        &self,
        topic: Option<&str>,
    ) -> Result<Vec<crate::sns::SnsSubscription>>;
    async fn sns_update_subscription(&self, sub: &crate::sns::SnsSubscription) -> Result<()>;
    /// Returns false when no such subscription existed.
    async fn sns_delete_subscription(&self, arn: &str) -> Result<bool>;

    // Control-plane credentials.
    async fn insert_access_key(
        &self,
        access_key_id: &str,
        secret: &str,
        description: &str,
        at: Millis,
    ) -> Result<()>;
    async fn get_access_key_secret(&self, access_key_id: &str) -> Result<Option<String>>;
}
