//! IoT policies: documents, versions and attachments.

use crate::error::{RegistryError, Result};
use crate::model::*;
use crate::{paged, validate, AuthorizationScope, Registry};

/// Checks a policy document with the same parser the authorizer uses, so
/// that what is stored is exactly what will be evaluated.
pub(crate) fn check_document(document: &str) -> Result<roost_policy::Policy> {
    roost_policy::parse_policy(document).map_err(|e| RegistryError::MalformedPolicy(e.to_string()))
}

fn parse_version_id(version: &str) -> Result<i64> {
    version
        .parse::<i64>()
        .ok()
        .filter(|v| *v > 0 && version.chars().all(|c| c.is_ascii_digit()))
        .ok_or_else(|| {
            RegistryError::invalid(format!(
                "policyVersionId '{version}' is not valid: it must be a positive number"
            ))
        })
}

impl Registry {
    pub async fn create_policy(
        &self,
        name: &str,
        document: &str,
    ) -> Result<(Policy, PolicyVersion)> {
        validate::policy_name(name)?;
        check_document(document)?;
        let now = now_millis();
        let policy = Policy {
            name: name.to_string(),
            default_version: 1,
            generation_id: uuid::Uuid::new_v4().simple().to_string(),
            creation_date: now,
            last_modified_date: now,
        };
        self.store.create_policy(&policy, document).await?;
        let version = PolicyVersion {
            policy_name: name.to_string(),
            version_id: 1,
            document: document.to_string(),
            creation_date: now,
            is_default: true,
        };
        Ok((policy, version))
    }

    /// GetPolicy: the policy and its default version.
    pub async fn get_policy(&self, name: &str) -> Result<(Policy, PolicyVersion)> {
        validate::policy_name(name)?;
        self.store
            .get_policy(name)
            .await?
            .ok_or_else(|| RegistryError::not_found(format!("Policy {name} does not exist")))
    }

    pub async fn delete_policy(&self, name: &str) -> Result<()> {
        validate::policy_name(name)?;
        self.store.delete_policy(name).await
    }

    pub async fn list_policies(
        &self,
        marker: Option<&str>,
        page_size: Option<i64>,
        ascending: bool,
    ) -> Result<Page<Policy>> {
        let limit = validate::page_size(page_size, 25)?;
        paged(
            marker,
            limit,
            ascending,
            |p: &Policy| p.name.clone(),
            |p| async move { self.store.list_policies(&p).await },
        )
        .await
    }

    pub async fn create_policy_version(
        &self,
        name: &str,
        document: &str,
        set_as_default: bool,
    ) -> Result<PolicyVersion> {
        validate::policy_name(name)?;
        check_document(document)?;
        let version = self
            .store
            .create_policy_version(
                name,
                document,
                set_as_default,
                now_millis(),
                validate::MAX_POLICY_VERSIONS,
            )
            .await?;
        if set_as_default {
            self.authorization_changed(AuthorizationScope::All);
        }
        Ok(version)
    }

    pub async fn get_policy_version(
        &self,
        name: &str,
        version: &str,
    ) -> Result<(Policy, PolicyVersion)> {
        let (policy, _) = self.get_policy(name).await?;
        let id = parse_version_id(version)?;
        let version = self
            .store
            .get_policy_version(name, id)
            .await?
            .ok_or_else(|| {
                RegistryError::not_found(format!("Policy {name} has no version {version}"))
            })?;
        Ok((policy, version))
    }

    pub async fn list_policy_versions(&self, name: &str) -> Result<Vec<PolicyVersion>> {
        validate::policy_name(name)?;
        self.store.list_policy_versions(name).await
    }

    pub async fn delete_policy_version(&self, name: &str, version: &str) -> Result<()> {
        validate::policy_name(name)?;
        self.store
            .delete_policy_version(name, parse_version_id(version)?)
            .await
    }

    pub async fn set_default_policy_version(&self, name: &str, version: &str) -> Result<()> {
        validate::policy_name(name)?;
        self.store
            .set_default_policy_version(name, parse_version_id(version)?, now_millis())
            .await?;
        self.authorization_changed(AuthorizationScope::All);
        Ok(())
    }

    /// Policies attach to certificates and to thing groups. Returns the
    /// target's canonical ARN after checking it exists.
    async fn policy_target(&self, target: &str) -> Result<String> {
        match self.arns.parse(target) {
            Some(("cert", id)) => {
                let id = validate::certificate_id(id)?;
                self.describe_certificate(&id).await?;
                Ok(self.arns.cert(&id))
            }
            Some(("thinggroup", name)) => {
                self.describe_thing_group(name).await?;
                Ok(self.arns.thing_group(name))
            }
            _ => Err(RegistryError::invalid(format!(
                "target '{target}' is not a certificate ARN or a thing group ARN"
            ))),
        }
    }

    /// A policy was attached to or detached from `target` (an ARN): a
    /// certificate's connections, or every connection for a thing group
    /// (its members and its descendants' members).
    fn attachment_changed(&self, target: &str) {
        match self.arns.parse(target) {
            Some(("cert", id)) => self.authorization_changed(AuthorizationScope::Certificate(id)),
            _ => self.authorization_changed(AuthorizationScope::All),
        }
    }

    pub async fn attach_policy(&self, name: &str, target: &str) -> Result<()> {
        validate::policy_name(name)?;
        let target = self.policy_target(target).await?;
        self.store
            .attach_policy(name, &target, validate::MAX_POLICIES_PER_TARGET)
            .await?;
        self.attachment_changed(&target);
        Ok(())
    }

    pub async fn detach_policy(&self, name: &str, target: &str) -> Result<()> {
        validate::policy_name(name)?;
        let target = self.policy_target(target).await?;
        self.store.detach_policy(name, &target).await?;
        self.attachment_changed(&target);
        Ok(())
    }

    /// ListAttachedPolicies. With `recursive` on a thing group, the policies
    /// its ancestors pass down are included.
    pub async fn list_attached_policies(
        &self,
        target: &str,
        recursive: bool,
        marker: Option<&str>,
        page_size: Option<i64>,
    ) -> Result<Page<Policy>> {
        let limit = validate::page_size(page_size, 25)?;
        let target = self.policy_target(target).await?;
        let mut targets = vec![target.clone()];
        if recursive {
            if let Some(("thinggroup", name)) = self.arns.parse(&target) {
                let chain = self.describe_thing_group(name).await?.root_to_parent;
                targets.extend(chain.iter().map(|g| self.arns.thing_group(g)));
            }
        }
        let mut policies: Vec<Policy> = self
            .store
            .attached_policies(&targets)
            .await?
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        policies.sort_by(|a, b| a.name.cmp(&b.name));
        paged(
            marker,
            limit,
            true,
            |p: &Policy| p.name.clone(),
            |p| async move {
                Ok(policies
                    .into_iter()
                    .filter(|x| p.after.as_ref().is_none_or(|a| &x.name > a))
                    .take(p.limit)
                    .collect())
            },
        )
        .await
    }

    pub async fn list_targets_for_policy(
        &self,
        name: &str,
        marker: Option<&str>,
        page_size: Option<i64>,
    ) -> Result<Page<String>> {
        validate::policy_name(name)?;
        let limit = validate::page_size(page_size, 25)?;
        paged(marker, limit, true, String::clone, |p| async move {
            self.store.list_policy_targets(name, &p).await
        })
        .await
    }
}
