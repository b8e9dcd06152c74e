//! Static thing groups: hierarchy, membership.

use crate::error::{RegistryError, Result};
use crate::model::*;
use crate::store::Created;
use crate::{paged, validate, AuthorizationScope, Registry};
use std::collections::{BTreeMap, BTreeSet};

/// AddThingToThingGroup / RemoveThingFromThingGroup: each side by name or ARN.
#[derive(Clone, Debug, Default)]
pub struct GroupMembership {
    pub thing_group_name: Option<String>,
    pub thing_group_arn: Option<String>,
    pub thing_name: Option<String>,
    pub thing_arn: Option<String>,
}

/// DescribeThingGroup's answer: the group and its ancestors, root first.
#[derive(Clone, Debug)]
pub struct GroupDescription {
    pub group: ThingGroup,
    pub root_to_parent: Vec<String>,
}

impl Registry {
    pub async fn create_thing_group(
        &self,
        name: &str,
        parent: Option<&str>,
        description: Option<String>,
        attributes: BTreeMap<String, String>,
    ) -> Result<ThingGroup> {
        validate::thing_group_name(name)?;
        if let Some(p) = parent {
            validate::thing_group_name(p)?;
        }
        if description
            .as_ref()
            .is_some_and(|d| d.chars().count() > validate::MAX_GROUP_DESCRIPTION)
        {
            return Err(RegistryError::invalid(
                "thingGroupDescription is longer than 2028 characters",
            ));
        }
        validate::attributes(&attributes)?;
        if attributes.len() > validate::MAX_GROUP_ATTRIBUTES {
            return Err(RegistryError::invalid(
                "a thing group may have at most 50 attributes",
            ));
        }
        let candidate = ThingGroup {
            name: name.to_string(),
            id: uuid::Uuid::new_v4().to_string(),
            parent_name: parent.map(str::to_string),
            description,
            attributes,
            version: 1,
            creation_date: now_millis(),
        };
        match self.store.create_thing_group(&candidate).await? {
            Created::New(g) => Ok(g),
            Created::Existing(g)
                if g.parent_name == candidate.parent_name
                    && g.description == candidate.description
                    && g.attributes == candidate.attributes =>
            {
                Ok(g)
            }
            Created::Existing(g) => Err(RegistryError::AlreadyExists {
                message: format!("Thing group {name} already exists with different properties"),
                resource_id: Some(g.id),
                resource_arn: Some(self.arns.thing_group(name)),
            }),
        }
    }

    async fn group(&self, name: &str) -> Result<ThingGroup> {
        validate::thing_group_name(name)?;
        self.store
            .get_thing_group(name)
            .await?
            .ok_or_else(|| RegistryError::not_found(format!("Thing group {name} does not exist")))
    }

    pub async fn describe_thing_group(&self, name: &str) -> Result<GroupDescription> {
        let group = self.group(name).await?;
        let mut chain = Vec::new();
        let mut cursor = group.parent_name.clone();
        while let Some(parent) = cursor {
            if chain.len() > validate::MAX_GROUP_DEPTH {
                break;
            }
            cursor = self
                .store
                .get_thing_group(&parent)
                .await?
                .and_then(|g| g.parent_name);
            chain.push(parent);
        }
        chain.reverse();
        Ok(GroupDescription {
            group,
            root_to_parent: chain,
        })
    }

    pub async fn delete_thing_group(
        &self,
        name: &str,
        expected_version: Option<i64>,
    ) -> Result<()> {
        validate::thing_group_name(name)?;
        self.store
            .delete_thing_group(name, expected_version)
            .await?;
        self.authorization_changed(AuthorizationScope::All);
        Ok(())
    }

    pub async fn list_thing_groups(
        &self,
        parent: Option<&str>,
        name_prefix: Option<&str>,
        recursive: bool,
        token: Option<&str>,
        max: Option<i64>,
    ) -> Result<Page<ThingGroup>> {
        let limit = validate::page_size(max, 50)?;
        if let Some(p) = parent {
            self.group(p).await?;
        }
        if recursive && parent.is_some() {
            // Every descendant of `parent`, paged in name order.
            let mut all: Vec<ThingGroup> = self
                .descendants(parent.unwrap_or_default())
                .await?
                .into_iter()
                .skip(1)
                .collect();
            if let Some(prefix) = name_prefix {
                all.retain(|g| g.name.starts_with(prefix));
            }
            all.sort_by(|a, b| a.name.cmp(&b.name));
            return paged(
                token,
                limit,
                true,
                |g: &ThingGroup| g.name.clone(),
                |p| async move {
                    Ok(all
                        .into_iter()
                        .filter(|g| p.after.as_ref().is_none_or(|a| &g.name > a))
                        .take(p.limit)
                        .collect())
                },
            )
            .await;
        }
        paged(
            token,
            limit,
            true,
            |g: &ThingGroup| g.name.clone(),
            |p| async move { self.store.list_thing_groups(parent, name_prefix, &p).await },
        )
        .await
    }

    /// `name` and every group below it, breadth first.
    async fn descendants(&self, name: &str) -> Result<Vec<ThingGroup>> {
        let mut out = vec![self.group(name).await?];
        let mut index = 0;
        while index < out.len() {
            let parent = out[index].name.clone();
            let children = self
                .store
                .list_thing_groups(Some(&parent), None, &PageRequest::first(usize::MAX >> 1))
                .await?;
            out.extend(children);
            index += 1;
        }
        Ok(out)
    }

    /// A name given directly or through an ARN of `arn_kind`.
    fn name_or_arn<'a>(
        &self,
        what: &str,
        name: Option<&'a str>,
        arn: Option<&'a str>,
        arn_kind: &str,
    ) -> Result<&'a str> {
        match (name, arn) {
            (Some(n), _) => Ok(n),
            (None, Some(a)) => match self.arns.parse(a) {
                Some((kind, n)) if kind == arn_kind => Ok(n),
                _ => Err(RegistryError::invalid(format!(
                    "{what}Arn '{a}' is not a {arn_kind} ARN"
                ))),
            },
            (None, None) => Err(RegistryError::invalid(format!(
                "{what}Name or {what}Arn is required"
            ))),
        }
    }

    /// The (group, thing) a membership request names, validated.
    fn membership<'a>(&self, m: &'a GroupMembership) -> Result<(&'a str, &'a str)> {
        let group = self.name_or_arn(
            "thingGroup",
            m.thing_group_name.as_deref(),
            m.thing_group_arn.as_deref(),
            "thinggroup",
        )?;
        let thing = self.name_or_arn(
            "thing",
            m.thing_name.as_deref(),
            m.thing_arn.as_deref(),
            "thing",
        )?;
        validate::thing_group_name(group)?;
        validate::thing_name(thing)?;
        Ok((group, thing))
    }

    pub async fn add_thing_to_thing_group(&self, m: &GroupMembership) -> Result<()> {
        let (group, thing) = self.membership(m)?;
        self.store.add_thing_to_group(group, thing).await?;
        self.authorization_changed(AuthorizationScope::Thing(thing));
        Ok(())
    }

    pub async fn remove_thing_from_thing_group(&self, m: &GroupMembership) -> Result<()> {
        let (group, thing) = self.membership(m)?;
        self.store.remove_thing_from_group(group, thing).await?;
        self.authorization_changed(AuthorizationScope::Thing(thing));
        Ok(())
    }

    pub async fn list_things_in_thing_group(
        &self,
        group: &str,
        recursive: bool,
        token: Option<&str>,
        max: Option<i64>,
    ) -> Result<Page<String>> {
        let limit = validate::page_size(max, 25)?;
        if !recursive {
            self.group(group).await?;
            return paged(token, limit, true, String::clone, |p| async move {
                self.store.list_things_in_group(group, &p).await
            })
            .await;
        }
        let mut things = BTreeSet::new();
        for g in self.descendants(group).await? {
            things.extend(
                self.store
                    .list_things_in_group(&g.name, &PageRequest::first(usize::MAX >> 1))
                    .await?,
            );
        }
        paged(token, limit, true, String::clone, |p| async move {
            Ok(things
                .into_iter()
                .filter(|t| p.after.as_ref().is_none_or(|a| t > a))
                .take(p.limit)
                .collect())
        })
        .await
    }

    /// The groups a thing is directly in, and their ancestors (for policy
    /// inheritance), each once.
    pub async fn thing_groups_with_ancestors(&self, thing: &str) -> Result<Vec<String>> {
        let mut out: Vec<String> = Vec::new();
        for g in self.store.list_groups_of_thing(thing).await? {
            let mut cursor = Some(g);
            let mut depth = 0;
            while let Some(name) = cursor {
                if out.contains(&name) || depth > validate::MAX_GROUP_DEPTH {
                    break;
                }
                cursor = self
                    .store
                    .get_thing_group(&name)
                    .await?
                    .and_then(|g| g.parent_name);
                out.push(name);
                depth += 1;
            }
        }
        Ok(out)
    }

    pub async fn list_thing_groups_for_thing(
        &self,
        thing: &str,
        token: Option<&str>,
        max: Option<i64>,
    ) -> Result<Page<String>> {
        self.describe_thing(thing).await?;
        let limit = validate::page_size(max, 25)?;
        let groups = self.store.list_groups_of_thing(thing).await?;
        paged(token, limit, true, String::clone, |p| async move {
            Ok(groups
                .into_iter()
                .filter(|g| p.after.as_ref().is_none_or(|a| g > a))
                .take(p.limit)
                .collect())
        })
        .await
    }
}
