//! Things and thing types.

use crate::error::{RegistryError, Result};
use crate::model::*;
use crate::store::{Created, ThingFilter};
use crate::{paged, validate, AuthorizationScope, Registry};
use std::collections::BTreeMap;

/// CreateThingType's properties.
#[derive(Clone, Debug, Default)]
pub struct ThingTypeSpec {
    pub description: Option<String>,
    pub searchable_attributes: Vec<String>,
}

/// UpdateThing's request.
#[derive(Clone, Debug, Default)]
pub struct ThingUpdate {
    pub thing_type_name: Option<String>,
    pub remove_thing_type: bool,
    /// New attributes and whether they merge into (true) or replace (false)
    /// the current ones. With merge, an empty value removes the attribute.
    pub attributes: Option<(BTreeMap<String, String>, bool)>,
    pub expected_version: Option<i64>,
}

impl Registry {
    pub async fn create_thing_type(&self, name: &str, spec: ThingTypeSpec) -> Result<ThingType> {
        validate::thing_type_name(name)?;
        if let Some(d) = &spec.description {
            if d.chars().count() > validate::MAX_THING_TYPE_DESCRIPTION {
                return Err(RegistryError::invalid(
                    "thingTypeDescription is longer than 2028 characters",
                ));
            }
        }
        if spec.searchable_attributes.len() > validate::MAX_SEARCHABLE_ATTRIBUTES {
            return Err(RegistryError::invalid(format!(
                "{} searchable attributes given: a thing type may declare at most 3",
                spec.searchable_attributes.len()
            )));
        }
        for a in &spec.searchable_attributes {
            validate::attribute(a, "")?;
        }
        let candidate = ThingType {
            name: name.to_string(),
            id: uuid::Uuid::new_v4().to_string(),
            description: spec.description,
            searchable_attributes: spec.searchable_attributes,
            deprecated: false,
            deprecation_date: None,
            creation_date: now_millis(),
        };
        match self.store.create_thing_type(&candidate).await? {
            Created::New(t) => Ok(t),
            Created::Existing(t)
                if t.description == candidate.description
                    && t.searchable_attributes == candidate.searchable_attributes =>
            {
                Ok(t)
            }
            Created::Existing(t) => Err(RegistryError::AlreadyExists {
                message: format!("Thing type {name} already exists with different properties"),
                resource_id: Some(t.id),
                resource_arn: Some(self.arns.thing_type(name)),
            }),
        }
    }

    pub async fn describe_thing_type(&self, name: &str) -> Result<ThingType> {
        validate::thing_type_name(name)?;
        self.store
            .get_thing_type(name)
            .await?
            .ok_or_else(|| RegistryError::not_found(format!("Thing type {name} does not exist")))
    }

    pub async fn list_thing_types(
        &self,
        name: Option<&str>,
        token: Option<&str>,
        max: Option<i64>,
    ) -> Result<Page<ThingType>> {
        let limit = validate::page_size(max, 50)?;
        paged(
            token,
            limit,
            true,
            |t: &ThingType| t.name.clone(),
            |p| async move { self.store.list_thing_types(name, &p).await },
        )
        .await
    }

    pub async fn deprecate_thing_type(&self, name: &str, undo: bool) -> Result<()> {
        validate::thing_type_name(name)?;
        self.store
            .set_thing_type_deprecated(name, !undo, now_millis())
            .await
    }

    pub async fn delete_thing_type(&self, name: &str) -> Result<()> {
        validate::thing_type_name(name)?;
        let wait = self.settings.thing_type_deletion_wait.as_millis() as i64;
        self.store
            .delete_thing_type(name, now_millis() - wait)
            .await
    }

    pub async fn create_thing(
        &self,
        name: &str,
        thing_type_name: Option<&str>,
        attributes: BTreeMap<String, String>,
    ) -> Result<Thing> {
        validate::thing_name(name)?;
        if let Some(t) = thing_type_name {
            validate::thing_type_name(t)?;
        }
        validate::attributes(&attributes)?;
        validate::attribute_count(attributes.len(), thing_type_name.is_some())?;
        let candidate = Thing {
            name: name.to_string(),
            id: uuid::Uuid::new_v4().to_string(),
            type_name: thing_type_name.map(str::to_string),
            attributes,
            version: 1,
            creation_date: now_millis(),
        };
        match self.store.create_thing(&candidate).await? {
            Created::New(t) => Ok(t),
            // Creating the same thing again with the same configuration is a no-op.
            Created::Existing(t)
                if t.type_name == candidate.type_name && t.attributes == candidate.attributes =>
            {
                Ok(t)
            }
            Created::Existing(t) => Err(RegistryError::AlreadyExists {
                message: format!("Thing {name} already exists with different attributes"),
                resource_id: Some(t.id),
                resource_arn: Some(self.arns.thing(name)),
            }),
        }
    }

    pub async fn describe_thing(&self, name: &str) -> Result<Thing> {
        validate::thing_name(name)?;
        self.store
            .get_thing(name)
            .await?
            .ok_or_else(|| RegistryError::not_found(format!("Thing {name} does not exist")))
    }

    pub async fn update_thing(&self, name: &str, update: ThingUpdate) -> Result<Thing> {
        validate::thing_name(name)?;
        if update.remove_thing_type && update.thing_type_name.is_some() {
            return Err(RegistryError::invalid(
                "removeThingType and thingTypeName cannot both be given",
            ));
        }
        if let Some(t) = &update.thing_type_name {
            validate::thing_type_name(t)?;
        }
        if let Some((attrs, _)) = &update.attributes {
            // With merge an empty value means "remove"; it is a well-formed value either way.
            validate::attributes(attrs)?;
        }
        let expected = update.expected_version;
        let thing = self
            .store
            .update_thing(
                name,
                expected,
                Box::new(move |thing: &mut Thing| {
                    if update.remove_thing_type {
                        thing.type_name = None;
                    }
                    if let Some(t) = update.thing_type_name {
                        thing.type_name = Some(t);
                    }
                    if let Some((attrs, merge)) = update.attributes {
                        if merge {
                            for (k, v) in attrs {
                                if v.is_empty() {
                                    thing.attributes.remove(&k);
                                } else {
                                    thing.attributes.insert(k, v);
                                }
                            }
                        } else {
                            thing.attributes = attrs;
                        }
                    }
                    validate::attribute_count(thing.attributes.len(), thing.type_name.is_some())
                }),
            )
            .await?;
        self.authorization_changed(AuthorizationScope::Thing(&thing.name));
        Ok(thing)
    }

    pub async fn delete_thing(&self, name: &str, expected_version: Option<i64>) -> Result<()> {
        validate::thing_name(name)?;
        self.store.delete_thing(name, expected_version).await?;
        self.authorization_changed(AuthorizationScope::Thing(name));
        Ok(())
    }

    pub async fn list_things(
        &self,
        filter: ThingFilter,
        token: Option<&str>,
        max: Option<i64>,
    ) -> Result<Page<Thing>> {
        let limit = validate::page_size(max, 50)?;
        if filter.attribute_value.is_some() && filter.attribute_name.is_none() {
            return Err(RegistryError::invalid(
                "attributeValue requires attributeName",
            ));
        }
        let filter = &filter;
        paged(
            token,
            limit,
            true,
            |t: &Thing| t.name.clone(),
            |p| async move { self.store.list_things(filter, &p).await },
        )
        .await
    }

    // ---- thing principals ----------------------------------------------

    /// Resolves a principal given to the API: a certificate ARN (of this
    /// registry) that must exist.
    async fn certificate_principal(&self, principal: &str) -> Result<String> {
        match self.arns.parse(principal) {
            Some(("cert", id)) => {
                let id = validate::certificate_id(id)?;
                if self.store.get_certificate(&id).await?.is_none() {
                    return Err(RegistryError::not_found(format!("Certificate {id} does not exist")));
                }
                Ok(self.arns.cert(&id))
            }
            _ => Err(RegistryError::invalid(format!(
                "principal '{principal}' is not a certificate ARN (arn:aws:iot:<region>:<account>:cert/<certificateId>)"
            ))),
        }
    }

    pub async fn attach_thing_principal(
        &self,
        thing: &str,
        principal: &str,
        kind: ThingPrincipalType,
    ) -> Result<()> {
        validate::thing_name(thing)?;
        let principal = self.certificate_principal(principal).await?;
        self.store
            .attach_thing_principal(thing, &principal, kind)
            .await?;
        self.principal_changed(thing, &principal);
        Ok(())
    }

    /// A thing's principals changed: its connections and the certificate's.
    fn principal_changed(&self, thing: &str, principal_arn: &str) {
        self.authorization_changed(AuthorizationScope::Thing(thing));
        match self.arns.parse(principal_arn) {
            Some(("cert", id)) => self.authorization_changed(AuthorizationScope::Certificate(id)),
            _ => self.authorization_changed(AuthorizationScope::All),
        }
    }

    pub async fn detach_thing_principal(&self, thing: &str, principal: &str) -> Result<()> {
        validate::thing_name(thing)?;
        let principal = match self.arns.parse(principal) {
            Some(("cert", id)) => self.arns.cert(&validate::certificate_id(id)?),
            _ => principal.to_string(),
        };
        self.store.detach_thing_principal(thing, &principal).await?;
        self.principal_changed(thing, &principal);
        Ok(())
    }

    pub async fn list_thing_principals(
        &self,
        thing: &str,
        token: Option<&str>,
        max: Option<i64>,
    ) -> Result<Page<String>> {
        self.describe_thing(thing).await?;
        let limit = validate::page_size(max, 25)?;
        paged(token, limit, true, String::clone, |p| async move {
            self.store.list_thing_principals(thing, &p).await
        })
        .await
    }

    pub async fn list_principal_things(
        &self,
        principal: &str,
        token: Option<&str>,
        max: Option<i64>,
    ) -> Result<Page<String>> {
        let principal = self.certificate_principal(principal).await?;
        let limit = validate::page_size(max, 25)?;
        let principal = &principal;
        paged(token, limit, true, String::clone, |p| async move {
            self.store.list_principal_things(principal, &p).await
        })
        .await
    }
}
