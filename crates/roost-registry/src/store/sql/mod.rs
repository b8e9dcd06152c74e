//! The SQL both stores run, compiled once per engine: `sqlite.rs` and
//! `postgres.rs` each declare this module and provide, in their own scope,
//! the engine's types (`DbRow`, `DbConn`), the store type `This`, the few
//! SQL fragments that differ between engines, and how to write and read:
//! `begin_write` (a write transaction, serialised like SQLite's single
//! writer), `WriteOne::write_one` (a statement that writes on its own, just
//! as serialised) and `begin_read` (several reads that see one snapshot).
//! Statements use `$N` placeholders, which both engines accept. Nothing
//! here may assume one engine: a statement that needs an engine's own
//! function goes through a fragment of the parent.

use super::{begin_read, begin_write, DbConn, DbRow, This, WriteOne, THING_ATTRIBUTE};
use crate::destinations::{DestinationStatus, TopicRuleDestination};
use crate::error::{RegistryError, Result};
use crate::model::*;
use crate::store::{Change, Created, Store, ThingFilter};
use async_trait::async_trait;
use sqlx::Row;
use std::collections::BTreeMap;

mod jobs;
mod logging;

fn json_map(text: &str) -> BTreeMap<String, String> {
    serde_json::from_str(text).unwrap_or_default()
}

fn json_text<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("maps and lists of strings serialise")
}

fn thing_type_row(row: &DbRow) -> ThingType {
    ThingType {
        name: row.get("name"),
        id: row.get("id"),
        description: row.get("description"),
        searchable_attributes: serde_json::from_str(row.get::<&str, _>("searchable_attributes"))
            .unwrap_or_default(),
        deprecated: row.get::<bool, _>("deprecated"),
        deprecation_date: row.get("deprecation_date"),
        creation_date: row.get("creation_date"),
    }
}

fn thing_row(row: &DbRow) -> Thing {
    Thing {
        name: row.get("name"),
        id: row.get("id"),
        type_name: row.get("type_name"),
        attributes: json_map(row.get("attributes")),
        version: row.get("version"),
        creation_date: row.get("creation_date"),
    }
}

fn group_row(row: &DbRow) -> ThingGroup {
    ThingGroup {
        name: row.get("name"),
        id: row.get("id"),
        parent_name: row.get("parent_name"),
        description: row.get("description"),
        attributes: json_map(row.get("attributes")),
        version: row.get("version"),
        creation_date: row.get("creation_date"),
    }
}

fn status(text: &str) -> CertificateStatus {
    CertificateStatus::parse(text).unwrap_or(CertificateStatus::Inactive)
}

fn mode(text: &str) -> CertificateMode {
    CertificateMode::parse(text).unwrap_or(CertificateMode::Default)
}

fn cert_row(row: &DbRow) -> Certificate {
    Certificate {
        id: row.get("id"),
        pem: row.get("pem"),
        status: status(row.get("status")),
        ca_certificate_id: row.get("ca_certificate_id"),
        mode: mode(row.get("mode")),
        customer_version: row.get("customer_version"),
        generation_id: row.get("generation_id"),
        not_before: row.get("not_before"),
        not_after: row.get("not_after"),
        creation_date: row.get("creation_date"),
        last_modified_date: row.get("last_modified_date"),
    }
}

fn ca_row(row: &DbRow) -> CaCertificate {
    CaCertificate {
        id: row.get("id"),
        pem: row.get("pem"),
        subject: row.get("subject"),
        status: status(row.get("status")),
        auto_registration: row.get::<bool, _>("auto_registration"),
        mode: mode(row.get("mode")),
        customer_version: row.get("customer_version"),
        generation_id: row.get("generation_id"),
        not_before: row.get("not_before"),
        not_after: row.get("not_after"),
        creation_date: row.get("creation_date"),
        last_modified_date: row.get("last_modified_date"),
    }
}

fn policy_row(row: &DbRow) -> Policy {
    Policy {
        name: row.get("name"),
        default_version: row.get("default_version"),
        generation_id: row.get("generation_id"),
        creation_date: row.get("creation_date"),
        last_modified_date: row.get("last_modified_date"),
    }
}

fn version_row(row: &DbRow, default_version: i64) -> PolicyVersion {
    let version_id: i64 = row.get("version_id");
    PolicyVersion {
        policy_name: row.get("policy_name"),
        version_id,
        document: row.get("document"),
        creation_date: row.get("creation_date"),
        is_default: version_id == default_version,
    }
}

fn rule_row(row: &DbRow) -> crate::rules::TopicRule {
    crate::rules::TopicRule {
        name: row.get("name"),
        payload: serde_json::from_str(row.get::<&str, _>("payload")).unwrap_or_default(),
        disabled: row.get::<bool, _>("disabled"),
        created_at: row.get("created_at"),
    }
}

fn destination_row(row: &DbRow) -> TopicRuleDestination {
    TopicRuleDestination {
        arn: row.get("arn"),
        confirmation_url: row.get("confirmation_url"),
        // Only this crate writes the column; an unknown value reads as the
        // status that carries no traffic.
        status: DestinationStatus::parse(row.get("status")).unwrap_or(DestinationStatus::Error),
        status_reason: row.get("status_reason"),
        token_sha256: row.get("token_sha256"),
        created_at: row.get("created_at"),
        last_updated_at: row.get("last_updated_at"),
    }
}

/// `text` as a LIKE pattern that matches only itself (with `ESCAPE '\'`).
fn like_literal(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

fn limit(page: &PageRequest) -> i64 {
    page.limit.min(10_000) as i64
}

fn generation_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

async fn thing_in(conn: &mut DbConn, name: &str) -> Result<Option<Thing>> {
    Ok(sqlx::query("SELECT * FROM things WHERE name = $1")
        .bind(name)
        .fetch_optional(conn)
        .await?
        .map(|r| thing_row(&r)))
}

async fn group_in(conn: &mut DbConn, name: &str) -> Result<Option<ThingGroup>> {
    Ok(sqlx::query("SELECT * FROM thing_groups WHERE name = $1")
        .bind(name)
        .fetch_optional(conn)
        .await?
        .map(|r| group_row(&r)))
}

async fn policy_in(conn: &mut DbConn, name: &str) -> Result<Policy> {
    sqlx::query("SELECT * FROM policies WHERE name = $1")
        .bind(name)
        .fetch_optional(conn)
        .await?
        .map(|r| policy_row(&r))
        .ok_or_else(|| RegistryError::not_found(format!("Policy {name} does not exist")))
}

/// A thing may only name a type that exists and is not deprecated.
async fn check_usable_type(conn: &mut DbConn, type_name: &str) -> Result<()> {
    let row = sqlx::query("SELECT deprecated FROM thing_types WHERE name = $1")
        .bind(type_name)
        .fetch_optional(conn)
        .await?;
    match row {
        None => Err(RegistryError::not_found(format!(
            "Thing type {type_name} does not exist"
        ))),
        Some(r) if r.get::<bool, _>("deprecated") => Err(RegistryError::invalid(format!(
            "Thing type {type_name} is deprecated: new things cannot use it"
        ))),
        Some(_) => Ok(()),
    }
}

fn check_version(what: &str, expected: Option<i64>, actual: i64) -> Result<()> {
    match expected {
        Some(v) if v != actual => Err(RegistryError::VersionConflict(format!(
            "The version for {what} does not match: expected {v}, current version is {actual}"
        ))),
        _ => Ok(()),
    }
}

#[async_trait]
impl Store for This {
    async fn create_thing_type(&self, t: &ThingType) -> Result<Created<ThingType>> {
        let mut tx = begin_write(&self.write).await?;
        if let Some(row) = sqlx::query("SELECT * FROM thing_types WHERE name = $1")
            .bind(&t.name)
            .fetch_optional(&mut *tx)
            .await?
        {
            return Ok(Created::Existing(thing_type_row(&row)));
        }
        sqlx::query(
            "INSERT INTO thing_types (name, id, description, searchable_attributes, deprecated, creation_date) VALUES ($1, $2, $3, $4, FALSE, $5)",
        )
        .bind(&t.name)
        .bind(&t.id)
        .bind(&t.description)
        .bind(json_text(&t.searchable_attributes))
        .bind(t.creation_date)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Created::New(t.clone()))
    }

    async fn get_thing_type(&self, name: &str) -> Result<Option<ThingType>> {
        Ok(sqlx::query("SELECT * FROM thing_types WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.read)
            .await?
            .map(|r| thing_type_row(&r)))
    }

    async fn list_thing_types(
        &self,
        name: Option<&str>,
        page: &PageRequest,
    ) -> Result<Vec<ThingType>> {
        let rows = sqlx::query(
            "SELECT * FROM thing_types WHERE ($1 IS NULL OR name = $1) AND ($2 IS NULL OR name > $2) ORDER BY name LIMIT $3",
        )
        .bind(name)
        .bind(&page.after)
        .bind(limit(page))
        .fetch_all(&self.read)
        .await?;
        Ok(rows.iter().map(thing_type_row).collect())
    }

    async fn set_thing_type_deprecated(
        &self,
        name: &str,
        deprecated: bool,
        at: Millis,
    ) -> Result<()> {
        let done = sqlx::query(
            "UPDATE thing_types SET deprecated = $1, deprecation_date = $2 WHERE name = $3",
        )
        .bind(deprecated)
        .bind(deprecated.then_some(at))
        .bind(name)
        .write_one(&self.write)
        .await?;
        if done.rows_affected() == 0 {
            return Err(RegistryError::not_found(format!(
                "Thing type {name} does not exist"
            )));
        }
        Ok(())
    }

    async fn delete_thing_type(&self, name: &str, deprecated_before: Millis) -> Result<()> {
        let mut tx = begin_write(&self.write).await?;
        let Some(row) = sqlx::query("SELECT * FROM thing_types WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Err(RegistryError::not_found(format!(
                "Thing type {name} does not exist"
            )));
        };
        let t = thing_type_row(&row);
        match (t.deprecated, t.deprecation_date) {
            (false, _) | (true, None) => {
                return Err(RegistryError::invalid(format!(
                    "Thing type {name} must be deprecated before it can be deleted (DeprecateThingType)"
                )))
            }
            (true, Some(at)) if at > deprecated_before => {
                let wait_s = (at - deprecated_before + 999) / 1000;
                return Err(RegistryError::invalid(format!(
                    "Thing type {name} was deprecated too recently: it can be deleted in {wait_s} seconds"
                )));
            }
            _ => {}
        }
        let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM things WHERE type_name = $1")
            .bind(name)
            .fetch_one(&mut *tx)
            .await?;
        if users > 0 {
            return Err(RegistryError::invalid(format!(
                "Thing type {name} cannot be deleted: {users} thing(s) still use it"
            )));
        }
        sqlx::query("DELETE FROM thing_types WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn create_thing(&self, thing: &Thing) -> Result<Created<Thing>> {
        let mut tx = begin_write(&self.write).await?;
        if let Some(existing) = thing_in(&mut tx, &thing.name).await? {
            return Ok(Created::Existing(existing));
        }
        if let Some(type_name) = &thing.type_name {
            check_usable_type(&mut tx, type_name).await?;
        }
        sqlx::query("INSERT INTO things (name, id, type_name, attributes, version, creation_date) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(&thing.name)
            .bind(&thing.id)
            .bind(&thing.type_name)
            .bind(json_text(&thing.attributes))
            .bind(thing.version)
            .bind(thing.creation_date)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Created::New(thing.clone()))
    }

    async fn get_thing(&self, name: &str) -> Result<Option<Thing>> {
        let mut conn = self.read.acquire().await?;
        thing_in(&mut conn, name).await
    }

    async fn update_thing(
        &self,
        name: &str,
        expected_version: Option<i64>,
        change: Change<Thing>,
    ) -> Result<Thing> {
        let mut tx = begin_write(&self.write).await?;
        let mut thing = thing_in(&mut tx, name)
            .await?
            .ok_or_else(|| RegistryError::not_found(format!("Thing {name} does not exist")))?;
        check_version(&format!("thing {name}"), expected_version, thing.version)?;
        let old_type = thing.type_name.clone();
        change(&mut thing)?;
        if thing.type_name != old_type {
            if let Some(t) = &thing.type_name {
                check_usable_type(&mut tx, t).await?;
            }
        }
        thing.version += 1;
        sqlx::query(
            "UPDATE things SET type_name = $1, attributes = $2, version = $3 WHERE name = $4",
        )
        .bind(&thing.type_name)
        .bind(json_text(&thing.attributes))
        .bind(thing.version)
        .bind(name)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(thing)
    }

    async fn delete_thing(&self, name: &str, expected_version: Option<i64>) -> Result<()> {
        let mut tx = begin_write(&self.write).await?;
        let Some(thing) = thing_in(&mut tx, name).await? else {
            // AWS answers success for a thing that does not exist.
            return Ok(());
        };
        check_version(&format!("thing {name}"), expected_version, thing.version)?;
        let principals: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM thing_principals WHERE thing_name = $1")
                .bind(name)
                .fetch_one(&mut *tx)
                .await?;
        if principals > 0 {
            return Err(RegistryError::invalid(format!(
                "Cannot delete thing {name}: {principals} principal(s) are still attached; detach them first (DetachThingPrincipal)"
            )));
        }
        sqlx::query("DELETE FROM things WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_things(&self, filter: &ThingFilter, page: &PageRequest) -> Result<Vec<Thing>> {
        // Attribute filtering on the JSON column: exact or prefix match on the value.
        let value_pattern = filter.attribute_value.as_ref().map(|v| {
            if filter.attribute_value_prefix {
                format!("{}%", like_literal(v))
            } else {
                v.clone()
            }
        });
        let sql = format!(
            "SELECT * FROM things WHERE ($1 IS NULL OR type_name = $1) \
             AND ($2 IS NULL OR {THING_ATTRIBUTE} IS NOT NULL) \
             AND ($3 IS NULL OR (CASE WHEN $4 THEN {THING_ATTRIBUTE} LIKE $3 ESCAPE '\\' \
                                      ELSE {THING_ATTRIBUTE} = $3 END)) \
             AND ($5 IS NULL OR name > $5) ORDER BY name LIMIT $6",
        );
        let rows = sqlx::query(&sql)
            .bind(&filter.thing_type_name)
            .bind(&filter.attribute_name)
            .bind(&value_pattern)
            .bind(filter.attribute_value_prefix)
            .bind(&page.after)
            .bind(limit(page))
            .fetch_all(&self.read)
            .await?;
        Ok(rows.iter().map(thing_row).collect())
    }

    async fn create_thing_group(&self, group: &ThingGroup) -> Result<Created<ThingGroup>> {
        let mut tx = begin_write(&self.write).await?;
        if let Some(existing) = group_in(&mut tx, &group.name).await? {
            return Ok(Created::Existing(existing));
        }
        if let Some(parent) = &group.parent_name {
            // Walk up to enforce AWS's hierarchy depth limit.
            let mut depth = 1;
            let mut cursor = Some(parent.clone());
            while let Some(name) = cursor {
                let g = group_in(&mut tx, &name).await?.ok_or_else(|| {
                    RegistryError::not_found(format!("Thing group {name} does not exist"))
                })?;
                depth += 1;
                cursor = g.parent_name;
            }
            if depth > crate::validate::MAX_GROUP_DEPTH {
                return Err(RegistryError::invalid(format!(
                    "Thing group {} would be at depth {depth}; a hierarchy may be at most {} deep",
                    group.name,
                    crate::validate::MAX_GROUP_DEPTH
                )));
            }
        }
        sqlx::query(
            "INSERT INTO thing_groups (name, id, parent_name, description, attributes, version, creation_date) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&group.name)
        .bind(&group.id)
        .bind(&group.parent_name)
        .bind(&group.description)
        .bind(json_text(&group.attributes))
        .bind(group.version)
        .bind(group.creation_date)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Created::New(group.clone()))
    }

    async fn get_thing_group(&self, name: &str) -> Result<Option<ThingGroup>> {
        let mut conn = self.read.acquire().await?;
        group_in(&mut conn, name).await
    }

    async fn update_thing_group(
        &self,
        name: &str,
        expected_version: Option<i64>,
        change: Change<ThingGroup>,
    ) -> Result<ThingGroup> {
        let mut tx = begin_write(&self.write).await?;
        let mut group = group_in(&mut tx, name).await?.ok_or_else(|| {
            RegistryError::not_found(format!("Thing group {name} does not exist"))
        })?;
        check_version(
            &format!("thing group {name}"),
            expected_version,
            group.version,
        )?;
        change(&mut group)?;
        group.version += 1;
        sqlx::query(
            "UPDATE thing_groups SET description = $1, attributes = $2, version = $3 WHERE name = $4",
        )
        .bind(&group.description)
        .bind(json_text(&group.attributes))
        .bind(group.version)
        .bind(name)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(group)
    }

    async fn delete_thing_group(&self, name: &str, expected_version: Option<i64>) -> Result<()> {
        let mut tx = begin_write(&self.write).await?;
        let Some(group) = group_in(&mut tx, name).await? else {
            return Ok(());
        };
        check_version(
            &format!("thing group {name}"),
            expected_version,
            group.version,
        )?;
        let children: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM thing_groups WHERE parent_name = $1")
                .bind(name)
                .fetch_one(&mut *tx)
                .await?;
        if children > 0 {
            return Err(RegistryError::invalid(format!(
                "Cannot delete thing group {name}: it has {children} child group(s); delete them first"
            )));
        }
        // Policies attached to a group go with it, as in AWS.
        // The target is the group's ARN; `_` and `%` in a name are literal.
        sqlx::query("DELETE FROM policy_targets WHERE target LIKE $1 ESCAPE '\\'")
            .bind(format!("%:thinggroup/{}", like_literal(name)))
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM thing_groups WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_thing_groups(
        &self,
        parent: Option<&str>,
        name_prefix: Option<&str>,
        page: &PageRequest,
    ) -> Result<Vec<ThingGroup>> {
        let prefix = name_prefix.map(|p| format!("{}%", like_literal(p)));
        let rows = sqlx::query(
            "SELECT * FROM thing_groups WHERE ($1 IS NULL OR parent_name = $1) AND ($2 IS NULL OR name LIKE $2 ESCAPE '\\') \
             AND ($3 IS NULL OR name > $3) ORDER BY name LIMIT $4",
        )
        .bind(parent)
        .bind(prefix)
        .bind(&page.after)
        .bind(limit(page))
        .fetch_all(&self.read)
        .await?;
        Ok(rows.iter().map(group_row).collect())
    }

    async fn add_thing_to_group(&self, group: &str, thing: &str) -> Result<()> {
        let mut tx = begin_write(&self.write).await?;
        let target = group_in(&mut tx, group).await?.ok_or_else(|| {
            RegistryError::not_found(format!("Thing group {group} does not exist"))
        })?;
        thing_in(&mut tx, thing)
            .await?
            .ok_or_else(|| RegistryError::not_found(format!("Thing {thing} does not exist")))?;
        let current: Vec<String> =
            sqlx::query_scalar("SELECT group_name FROM thing_group_members WHERE thing_name = $1")
                .bind(thing)
                .fetch_all(&mut *tx)
                .await?;
        if current.iter().any(|g| g == group) {
            return Ok(());
        }
        if current.len() >= crate::validate::MAX_GROUPS_PER_THING {
            return Err(RegistryError::invalid(format!(
                "Thing {thing} is already in {} groups, the most a thing can be in",
                current.len()
            )));
        }
        // A thing may be in only one group of any one hierarchy: compare roots.
        let root_of = |start: ThingGroup| async move {
            let mut cursor = start;
            let mut conn = self.read.acquire().await?;
            while let Some(parent) = cursor.parent_name.clone() {
                match group_in(&mut conn, &parent).await? {
                    Some(g) => cursor = g,
                    None => break,
                }
            }
            Ok::<String, RegistryError>(cursor.name)
        };
        let target_root = root_of(target).await?;
        for other in &current {
            if let Some(g) = group_in(&mut tx, other).await? {
                if root_of(g).await? == target_root {
                    return Err(RegistryError::invalid(format!(
                        "Thing {thing} is already in group {other} of the same hierarchy as {group}"
                    )));
                }
            }
        }
        sqlx::query("INSERT INTO thing_group_members (group_name, thing_name) VALUES ($1, $2)")
            .bind(group)
            .bind(thing)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn remove_thing_from_group(&self, group: &str, thing: &str) -> Result<()> {
        let mut tx = begin_write(&self.write).await?;
        group_in(&mut tx, group).await?.ok_or_else(|| {
            RegistryError::not_found(format!("Thing group {group} does not exist"))
        })?;
        thing_in(&mut tx, thing)
            .await?
            .ok_or_else(|| RegistryError::not_found(format!("Thing {thing} does not exist")))?;
        sqlx::query("DELETE FROM thing_group_members WHERE group_name = $1 AND thing_name = $2")
            .bind(group)
            .bind(thing)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_things_in_group(&self, group: &str, page: &PageRequest) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT thing_name FROM thing_group_members WHERE group_name = $1 AND ($2 IS NULL OR thing_name > $2) ORDER BY thing_name LIMIT $3",
        )
        .bind(group)
        .bind(&page.after)
        .bind(limit(page))
        .fetch_all(&self.read)
        .await?)
    }

    async fn list_groups_of_thing(&self, thing: &str) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT group_name FROM thing_group_members WHERE thing_name = $1 ORDER BY group_name",
        )
        .bind(thing)
        .fetch_all(&self.read)
        .await?)
    }

    async fn insert_certificate(&self, c: &Certificate) -> Result<Created<Certificate>> {
        let mut tx = begin_write(&self.write).await?;
        if let Some(row) = sqlx::query("SELECT * FROM certificates WHERE id = $1")
            .bind(&c.id)
            .fetch_optional(&mut *tx)
            .await?
        {
            return Ok(Created::Existing(cert_row(&row)));
        }
        sqlx::query(
            "INSERT INTO certificates (id, pem, status, ca_certificate_id, mode, customer_version, generation_id, not_before, not_after, creation_date, last_modified_date) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&c.id)
        .bind(&c.pem)
        .bind(c.status.as_str())
        .bind(&c.ca_certificate_id)
        .bind(c.mode.as_str())
        .bind(c.customer_version)
        .bind(&c.generation_id)
        .bind(c.not_before)
        .bind(c.not_after)
        .bind(c.creation_date)
        .bind(c.last_modified_date)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Created::New(c.clone()))
    }

    async fn get_certificate(&self, id: &str) -> Result<Option<Certificate>> {
        Ok(sqlx::query("SELECT * FROM certificates WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.read)
            .await?
            .map(|r| cert_row(&r)))
    }

    async fn list_certificates(
        &self,
        ca: Option<&str>,
        page: &PageRequest,
    ) -> Result<Vec<Certificate>> {
        // The page key is "<creation millis>:<id>", ordered by creation date.
        let (after_date, after_id) = match page.after.as_deref().and_then(|a| a.split_once(':')) {
            Some((d, id)) => (d.parse::<i64>().ok(), Some(id.to_string())),
            None => (None, None),
        };
        let sql = if page.ascending {
            "SELECT * FROM certificates WHERE ($1 IS NULL OR ca_certificate_id = $1) \
             AND ($2 IS NULL OR creation_date > $2 OR (creation_date = $2 AND id > $3)) \
             ORDER BY creation_date, id LIMIT $4"
        } else {
            "SELECT * FROM certificates WHERE ($1 IS NULL OR ca_certificate_id = $1) \
             AND ($2 IS NULL OR creation_date < $2 OR (creation_date = $2 AND id < $3)) \
             ORDER BY creation_date DESC, id DESC LIMIT $4"
        };
        let rows = sqlx::query(sql)
            .bind(ca)
            .bind(after_date)
            .bind(after_id)
            .bind(limit(page))
            .fetch_all(&self.read)
            .await?;
        Ok(rows.iter().map(cert_row).collect())
    }

    async fn update_certificate(
        &self,
        id: &str,
        change: Change<Certificate>,
    ) -> Result<Certificate> {
        let mut tx = begin_write(&self.write).await?;
        let mut cert = sqlx::query("SELECT * FROM certificates WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| cert_row(&r))
            .ok_or_else(|| RegistryError::not_found(format!("Certificate {id} does not exist")))?;
        change(&mut cert)?;
        cert.generation_id = generation_id();
        sqlx::query("UPDATE certificates SET status = $1, customer_version = $2, generation_id = $3, last_modified_date = $4 WHERE id = $5")
            .bind(cert.status.as_str())
            .bind(cert.customer_version)
            .bind(&cert.generation_id)
            .bind(cert.last_modified_date)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(cert)
    }

    async fn delete_certificate(&self, id: &str, arn: &str, force: bool) -> Result<()> {
        let mut tx = begin_write(&self.write).await?;
        let cert = sqlx::query("SELECT * FROM certificates WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| cert_row(&r))
            .ok_or_else(|| RegistryError::not_found(format!("Certificate {id} does not exist")))?;
        if cert.status == CertificateStatus::Active {
            return Err(RegistryError::CertificateState(format!(
                "Certificate {id} is ACTIVE: deactivate it (UpdateCertificate --new-status INACTIVE) before deleting it"
            )));
        }
        let things: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM thing_principals WHERE principal = $1")
                .bind(arn)
                .fetch_one(&mut *tx)
                .await?;
        if things > 0 {
            return Err(RegistryError::DeleteConflict(format!(
                "Certificate {id} is attached to {things} thing(s): detach it first (DetachThingPrincipal)"
            )));
        }
        let policies: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM policy_targets WHERE target = $1")
                .bind(arn)
                .fetch_one(&mut *tx)
                .await?;
        if policies > 0 && !force {
            return Err(RegistryError::DeleteConflict(format!(
                "Certificate {id} has {policies} policy(ies) attached: detach them (DetachPolicy) or use forceDelete"
            )));
        }
        sqlx::query("DELETE FROM policy_targets WHERE target = $1")
            .bind(arn)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM certificates WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn insert_ca_certificate(&self, c: &CaCertificate) -> Result<Created<CaCertificate>> {
        let mut tx = begin_write(&self.write).await?;
        if let Some(row) = sqlx::query("SELECT * FROM ca_certificates WHERE id = $1")
            .bind(&c.id)
            .fetch_optional(&mut *tx)
            .await?
        {
            return Ok(Created::Existing(ca_row(&row)));
        }
        sqlx::query(
            "INSERT INTO ca_certificates (id, pem, subject, status, auto_registration, mode, customer_version, generation_id, not_before, not_after, creation_date, last_modified_date) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&c.id)
        .bind(&c.pem)
        .bind(&c.subject)
        .bind(c.status.as_str())
        .bind(c.auto_registration)
        .bind(c.mode.as_str())
        .bind(c.customer_version)
        .bind(&c.generation_id)
        .bind(c.not_before)
        .bind(c.not_after)
        .bind(c.creation_date)
        .bind(c.last_modified_date)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Created::New(c.clone()))
    }

    async fn get_ca_certificate(&self, id: &str) -> Result<Option<CaCertificate>> {
        Ok(sqlx::query("SELECT * FROM ca_certificates WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.read)
            .await?
            .map(|r| ca_row(&r)))
    }

    async fn list_ca_certificates(&self) -> Result<Vec<CaCertificate>> {
        let rows = sqlx::query("SELECT * FROM ca_certificates ORDER BY creation_date, id")
            .fetch_all(&self.read)
            .await?;
        Ok(rows.iter().map(ca_row).collect())
    }

    async fn attach_thing_principal(
        &self,
        thing: &str,
        principal: &str,
        kind: ThingPrincipalType,
    ) -> Result<()> {
        let mut tx = begin_write(&self.write).await?;
        thing_in(&mut tx, thing)
            .await?
            .ok_or_else(|| RegistryError::not_found(format!("Thing {thing} does not exist")))?;
        let others: Vec<(String, String)> = sqlx::query_as(
            "SELECT thing_name, principal_type FROM thing_principals WHERE principal = $1 AND thing_name != $2",
        )
        .bind(principal)
        .bind(thing)
        .fetch_all(&mut *tx)
        .await?;
        if let Some((other, _)) = others
            .iter()
            .find(|(_, t)| t == ThingPrincipalType::Exclusive.as_str())
        {
            return Err(RegistryError::invalid(format!(
                "Principal {principal} is attached exclusively to thing {other}"
            )));
        }
        if kind == ThingPrincipalType::Exclusive && !others.is_empty() {
            return Err(RegistryError::invalid(format!(
                "Principal {principal} is already attached to other things; an EXCLUSIVE_THING attachment needs it to have none"
            )));
        }
        sqlx::query(
            "INSERT INTO thing_principals (thing_name, principal, principal_type) VALUES ($1, $2, $3) \
             ON CONFLICT (thing_name, principal) DO UPDATE SET principal_type = excluded.principal_type",
        )
        .bind(thing)
        .bind(principal)
        .bind(kind.as_str())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn detach_thing_principal(&self, thing: &str, principal: &str) -> Result<()> {
        let mut tx = begin_write(&self.write).await?;
        thing_in(&mut tx, thing)
            .await?
            .ok_or_else(|| RegistryError::not_found(format!("Thing {thing} does not exist")))?;
        sqlx::query("DELETE FROM thing_principals WHERE thing_name = $1 AND principal = $2")
            .bind(thing)
            .bind(principal)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_thing_principals(&self, thing: &str, page: &PageRequest) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT principal FROM thing_principals WHERE thing_name = $1 AND ($2 IS NULL OR principal > $2) ORDER BY principal LIMIT $3",
        )
        .bind(thing)
        .bind(&page.after)
        .bind(limit(page))
        .fetch_all(&self.read)
        .await?)
    }

    async fn list_principal_things(
        &self,
        principal: &str,
        page: &PageRequest,
    ) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT thing_name FROM thing_principals WHERE principal = $1 AND ($2 IS NULL OR thing_name > $2) ORDER BY thing_name LIMIT $3",
        )
        .bind(principal)
        .bind(&page.after)
        .bind(limit(page))
        .fetch_all(&self.read)
        .await?)
    }

    async fn create_policy(&self, p: &Policy, document: &str) -> Result<()> {
        let mut tx = begin_write(&self.write).await?;
        let exists: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM policies WHERE name = $1")
            .bind(&p.name)
            .fetch_one(&mut *tx)
            .await?;
        if exists > 0 {
            return Err(RegistryError::AlreadyExists {
                message: format!("Policy {} already exists", p.name),
                resource_id: Some(p.name.clone()),
                resource_arn: None,
            });
        }
        sqlx::query(
            "INSERT INTO policies (name, default_version, next_version, generation_id, creation_date, last_modified_date) VALUES ($1, 1, 2, $2, $3, $4)",
        )
        .bind(&p.name)
        .bind(&p.generation_id)
        .bind(p.creation_date)
        .bind(p.last_modified_date)
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO policy_versions (policy_name, version_id, document, creation_date) VALUES ($1, 1, $2, $3)")
            .bind(&p.name)
            .bind(document)
            .bind(p.creation_date)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_policy(&self, name: &str) -> Result<Option<(Policy, PolicyVersion)>> {
        let Some(row) = sqlx::query("SELECT * FROM policies WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.read)
            .await?
        else {
            return Ok(None);
        };
        let policy = policy_row(&row);
        let version =
            sqlx::query("SELECT * FROM policy_versions WHERE policy_name = $1 AND version_id = $2")
                .bind(name)
                .bind(policy.default_version)
                .fetch_one(&self.read)
                .await?;
        let version = version_row(&version, policy.default_version);
        Ok(Some((policy, version)))
    }

    async fn list_policies(&self, page: &PageRequest) -> Result<Vec<Policy>> {
        let sql = if page.ascending {
            "SELECT * FROM policies WHERE ($1 IS NULL OR name > $1) ORDER BY name LIMIT $2"
        } else {
            "SELECT * FROM policies WHERE ($1 IS NULL OR name < $1) ORDER BY name DESC LIMIT $2"
        };
        let rows = sqlx::query(sql)
            .bind(&page.after)
            .bind(limit(page))
            .fetch_all(&self.read)
            .await?;
        Ok(rows.iter().map(policy_row).collect())
    }

    async fn delete_policy(&self, name: &str) -> Result<()> {
        let mut tx = begin_write(&self.write).await?;
        policy_in(&mut tx, name).await?;
        let targets: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM policy_targets WHERE policy_name = $1")
                .bind(name)
                .fetch_one(&mut *tx)
                .await?;
        if targets > 0 {
            return Err(RegistryError::DeleteConflict(format!(
                "Policy {name} is attached to {targets} target(s): detach it first (DetachPolicy)"
            )));
        }
        let versions: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM policy_versions WHERE policy_name = $1")
                .bind(name)
                .fetch_one(&mut *tx)
                .await?;
        if versions > 1 {
            return Err(RegistryError::DeleteConflict(format!(
                "Policy {name} has {} non-default version(s): delete them first (DeletePolicyVersion)",
                versions - 1
            )));
        }
        sqlx::query("DELETE FROM policy_versions WHERE policy_name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM policies WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn create_policy_version(
        &self,
        name: &str,
        document: &str,
        set_as_default: bool,
        at: Millis,
        max_versions: usize,
    ) -> Result<PolicyVersion> {
        let mut tx = begin_write(&self.write).await?;
        policy_in(&mut tx, name).await?;
        let versions: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM policy_versions WHERE policy_name = $1")
                .bind(name)
                .fetch_one(&mut *tx)
                .await?;
        if versions as usize >= max_versions {
            return Err(RegistryError::VersionsLimitExceeded(format!(
                "The policy {name} already has the maximum number of versions ({max_versions}): delete one first (DeletePolicyVersion)"
            )));
        }
        let version_id: i64 =
            sqlx::query_scalar("SELECT next_version FROM policies WHERE name = $1")
                .bind(name)
                .fetch_one(&mut *tx)
                .await?;
        sqlx::query("INSERT INTO policy_versions (policy_name, version_id, document, creation_date) VALUES ($1, $2, $3, $4)")
            .bind(name)
            .bind(version_id)
            .bind(document)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE policies SET next_version = next_version + 1, last_modified_date = $1, generation_id = $2, \
             default_version = CASE WHEN $3 THEN $4 ELSE default_version END WHERE name = $5",
        )
        .bind(at)
        .bind(generation_id())
        .bind(set_as_default)
        .bind(version_id)
        .bind(name)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(PolicyVersion {
            policy_name: name.to_string(),
            version_id,
            document: document.to_string(),
            creation_date: at,
            is_default: set_as_default,
        })
    }

    async fn get_policy_version(&self, name: &str, version: i64) -> Result<Option<PolicyVersion>> {
        let Some(policy) = sqlx::query("SELECT * FROM policies WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.read)
            .await?
            .map(|r| policy_row(&r))
        else {
            return Ok(None);
        };
        Ok(
            sqlx::query("SELECT * FROM policy_versions WHERE policy_name = $1 AND version_id = $2")
                .bind(name)
                .bind(version)
                .fetch_optional(&self.read)
                .await?
                .map(|r| version_row(&r, policy.default_version)),
        )
    }

    async fn list_policy_versions(&self, name: &str) -> Result<Vec<PolicyVersion>> {
        let mut conn = self.read.acquire().await?;
        let policy = policy_in(&mut conn, name).await?;
        let rows = sqlx::query(
            "SELECT * FROM policy_versions WHERE policy_name = $1 ORDER BY version_id DESC",
        )
        .bind(name)
        .fetch_all(&mut *conn)
        .await?;
        Ok(rows
            .iter()
            .map(|r| version_row(r, policy.default_version))
            .collect())
    }

    async fn delete_policy_version(&self, name: &str, version: i64) -> Result<()> {
        let mut tx = begin_write(&self.write).await?;
        let policy = policy_in(&mut tx, name).await?;
        if policy.default_version == version {
            return Err(RegistryError::DeleteConflict(format!(
                "Version {version} is the default version of policy {name}: set another default first, or delete the policy"
            )));
        }
        let done =
            sqlx::query("DELETE FROM policy_versions WHERE policy_name = $1 AND version_id = $2")
                .bind(name)
                .bind(version)
                .execute(&mut *tx)
                .await?;
        if done.rows_affected() == 0 {
            return Err(RegistryError::not_found(format!(
                "Policy {name} has no version {version}"
            )));
        }
        tx.commit().await?;
        Ok(())
    }

    async fn set_default_policy_version(&self, name: &str, version: i64, at: Millis) -> Result<()> {
        let mut tx = begin_write(&self.write).await?;
        policy_in(&mut tx, name).await?;
        let exists: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM policy_versions WHERE policy_name = $1 AND version_id = $2",
        )
        .bind(name)
        .bind(version)
        .fetch_one(&mut *tx)
        .await?;
        if exists == 0 {
            return Err(RegistryError::not_found(format!(
                "Policy {name} has no version {version}"
            )));
        }
        sqlx::query("UPDATE policies SET default_version = $1, last_modified_date = $2, generation_id = $3 WHERE name = $4")
            .bind(version)
            .bind(at)
            .bind(generation_id())
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn attach_policy(&self, name: &str, target: &str, max_per_target: usize) -> Result<()> {
        let mut tx = begin_write(&self.write).await?;
        policy_in(&mut tx, name).await?;
        let attached: Vec<String> =
            sqlx::query_scalar("SELECT policy_name FROM policy_targets WHERE target = $1")
                .bind(target)
                .fetch_all(&mut *tx)
                .await?;
        if attached.iter().any(|p| p == name) {
            return Ok(());
        }
        if attached.len() >= max_per_target {
            return Err(RegistryError::LimitExceeded(format!(
                "{target} already has {} policies attached, the most a target can have",
                attached.len()
            )));
        }
        sqlx::query("INSERT INTO policy_targets (policy_name, target) VALUES ($1, $2)")
            .bind(name)
            .bind(target)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn detach_policy(&self, name: &str, target: &str) -> Result<()> {
        let mut tx = begin_write(&self.write).await?;
        policy_in(&mut tx, name).await?;
        sqlx::query("DELETE FROM policy_targets WHERE policy_name = $1 AND target = $2")
            .bind(name)
            .bind(target)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_policy_targets(&self, name: &str, page: &PageRequest) -> Result<Vec<String>> {
        let mut conn = self.read.acquire().await?;
        policy_in(&mut conn, name).await?;
        Ok(sqlx::query_scalar(
            "SELECT target FROM policy_targets WHERE policy_name = $1 AND ($2 IS NULL OR target > $2) ORDER BY target LIMIT $3",
        )
        .bind(name)
        .bind(&page.after)
        .bind(limit(page))
        .fetch_all(&mut *conn)
        .await?)
    }

    async fn attached_policies(&self, targets: &[String]) -> Result<Vec<(Policy, PolicyVersion)>> {
        // One read transaction, so the policies and their documents agree.
        let mut tx = begin_read(&self.read).await?;
        let mut out: Vec<(Policy, PolicyVersion)> = Vec::new();
        for target in targets {
            let rows = sqlx::query(
                "SELECT p.*, v.policy_name, v.version_id, v.document, v.creation_date AS v_created FROM policy_targets t \
                 JOIN policies p ON p.name = t.policy_name \
                 JOIN policy_versions v ON v.policy_name = p.name AND v.version_id = p.default_version \
                 WHERE t.target = $1 ORDER BY p.name",
            )
            .bind(target)
            .fetch_all(&mut *tx)
            .await?;
            for row in rows {
                let policy = policy_row(&row);
                if out.iter().any(|(p, _)| p.name == policy.name) {
                    continue;
                }
                let version = PolicyVersion {
                    policy_name: policy.name.clone(),
                    version_id: row.get("version_id"),
                    document: row.get("document"),
                    creation_date: row.get("v_created"),
                    is_default: true,
                };
                out.push((policy, version));
            }
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn sns_create_topic(&self, topic: &crate::sns::SnsTopic) -> Result<crate::sns::SnsTopic> {
        sqlx::query(
            "INSERT INTO sns_topics (name, attributes, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
        )
        .bind(&topic.name)
        .bind(json_text(&topic.attributes))
        .bind(topic.created_at)
        .write_one(&self.write)
        .await?;
        let row = sqlx::query("SELECT * FROM sns_topics WHERE name = $1")
            .bind(&topic.name)
            .fetch_one(&self.write)
            .await?;
        Ok(sns_topic_row(&row))
    }

    async fn sns_get_topic(&self, name: &str) -> Result<Option<crate::sns::SnsTopic>> {
        Ok(sqlx::query("SELECT * FROM sns_topics WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.read)
            .await?
            .map(|r| sns_topic_row(&r)))
    }

    async fn sns_list_topics(&self) -> Result<Vec<crate::sns::SnsTopic>> {
        Ok(sqlx::query("SELECT * FROM sns_topics ORDER BY name")
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(sns_topic_row)
            .collect())
    }

    async fn sns_set_topic_attributes(
        &self,
        name: &str,
        attributes: &BTreeMap<String, String>,
    ) -> Result<()> {
        let done = sqlx::query("UPDATE sns_topics SET attributes = $1 WHERE name = $2")
            .bind(json_text(attributes))
            .bind(name)
            .write_one(&self.write)
            .await?;
        if done.rows_affected() == 0 {
            return Err(RegistryError::not_found("Topic does not exist"));
        }
        Ok(())
    }

    async fn sns_delete_topic(&self, name: &str) -> Result<()> {
        let mut tx = begin_write(&self.write).await?;
        sqlx::query("DELETE FROM sns_subscriptions WHERE topic_name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM sns_topics WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn sns_insert_subscription(&self, sub: &crate::sns::SnsSubscription) -> Result<()> {
        sqlx::query(
            "INSERT INTO sns_subscriptions (arn, topic_name, protocol, endpoint, token, confirmed, attributes, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&sub.arn)
        .bind(&sub.topic_name)
        .bind(&sub.protocol)
        .bind(&sub.endpoint)
        .bind(&sub.token)
        .bind(sub.confirmed)
        .bind(json_text(&sub.attributes))
        .bind(sub.created_at)
        .write_one(&self.write)
        .await?;
        Ok(())
    }

    async fn sns_get_subscription(&self, arn: &str) -> Result<Option<crate::sns::SnsSubscription>> {
        Ok(
            sqlx::query("SELECT * FROM sns_subscriptions WHERE arn = $1")
                .bind(arn)
                .fetch_optional(&self.read)
                .await?
                .map(|r| sns_subscription_row(&r)),
        )
    }

    async fn sns_list_subscriptions(
        &self,
        topic: Option<&str>,
    ) -> Result<Vec<crate::sns::SnsSubscription>> {
        let rows = match topic {
            Some(t) => sqlx::query(
                "SELECT * FROM sns_subscriptions WHERE topic_name = $1 ORDER BY created_at, arn",
            )
            .bind(t)
            .fetch_all(&self.read)
            .await?,
            None => {
                sqlx::query("SELECT * FROM sns_subscriptions ORDER BY created_at, arn")
                    .fetch_all(&self.read)
                    .await?
            }
        };
        Ok(rows.iter().map(sns_subscription_row).collect())
    }

    async fn sns_update_subscription(&self, sub: &crate::sns::SnsSubscription) -> Result<()> {
        sqlx::query(
            "UPDATE sns_subscriptions SET token = $1, confirmed = $2, attributes = $3 WHERE arn = $4",
        )
        .bind(&sub.token)
        .bind(sub.confirmed)
        .bind(json_text(&sub.attributes))
        .bind(&sub.arn)
        .write_one(&self.write)
        .await?;
        Ok(())
    }

    async fn sns_delete_subscription(&self, arn: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM sns_subscriptions WHERE arn = $1")
            .bind(arn)
            .write_one(&self.write)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn create_topic_rule(&self, rule: &crate::rules::TopicRule) -> Result<()> {
        let done = sqlx::query(
            "INSERT INTO topic_rules (name, payload, disabled, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING",
        )
        .bind(&rule.name)
        .bind(rule.payload.to_string())
        .bind(rule.disabled)
        .bind(rule.created_at)
        .write_one(&self.write)
        .await?;
        if done.rows_affected() == 0 {
            return Err(RegistryError::AlreadyExists {
                message: format!("Rule {} already exists", rule.name),
                resource_id: None,
                resource_arn: None,
            });
        }
        Ok(())
    }

    async fn get_topic_rule(&self, name: &str) -> Result<Option<crate::rules::TopicRule>> {
        Ok(sqlx::query("SELECT * FROM topic_rules WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.read)
            .await?
            .map(|r| rule_row(&r)))
    }

    async fn replace_topic_rule(
        &self,
        name: &str,
        payload: &serde_json::Value,
        disabled: bool,
    ) -> Result<()> {
        let done =
            sqlx::query("UPDATE topic_rules SET payload = $1, disabled = $2 WHERE name = $3")
                .bind(payload.to_string())
                .bind(disabled)
                .bind(name)
                .write_one(&self.write)
                .await?;
        if done.rows_affected() == 0 {
            return Err(RegistryError::not_found(format!(
                "Rule {name} does not exist"
            )));
        }
        Ok(())
    }

    async fn delete_topic_rule(&self, name: &str) -> Result<()> {
        sqlx::query("DELETE FROM topic_rules WHERE name = $1")
            .bind(name)
            .write_one(&self.write)
            .await?;
        Ok(())
    }

    async fn set_topic_rule_disabled(&self, name: &str, disabled: bool) -> Result<()> {
        let done = sqlx::query("UPDATE topic_rules SET disabled = $1 WHERE name = $2")
            .bind(disabled)
            .bind(name)
            .write_one(&self.write)
            .await?;
        if done.rows_affected() == 0 {
            return Err(RegistryError::not_found(format!(
                "Rule {name} does not exist"
            )));
        }
        Ok(())
    }

    async fn list_topic_rules(&self, page: &PageRequest) -> Result<Vec<crate::rules::TopicRule>> {
        let rows = sqlx::query(
            "SELECT * FROM topic_rules WHERE ($1 IS NULL OR name > $1) ORDER BY name LIMIT $2",
        )
        .bind(&page.after)
        .bind(limit(page))
        .fetch_all(&self.read)
        .await?;
        Ok(rows.iter().map(rule_row).collect())
    }

    async fn insert_topic_rule_destination(&self, d: &TopicRuleDestination) -> Result<()> {
        let done = sqlx::query(
            "INSERT INTO topic_rule_destinations (arn, confirmation_url, status, status_reason, token_sha256, created_at, last_updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (confirmation_url) DO NOTHING",
        )
        .bind(&d.arn)
        .bind(&d.confirmation_url)
        .bind(d.status.as_str())
        .bind(&d.status_reason)
        .bind(&d.token_sha256)
        .bind(d.created_at)
        .bind(d.last_updated_at)
        .write_one(&self.write)
        .await?;
        if done.rows_affected() == 0 {
            let existing: Option<String> = sqlx::query_scalar(
                "SELECT arn FROM topic_rule_destinations WHERE confirmation_url = $1",
            )
            .bind(&d.confirmation_url)
            .fetch_optional(&self.write)
            .await?;
            return Err(RegistryError::AlreadyExists {
                message: format!(
                    "A topic rule destination with confirmation URL {} already exists",
                    d.confirmation_url
                ),
                resource_id: None,
                resource_arn: existing,
            });
        }
        Ok(())
    }

    async fn get_topic_rule_destination(&self, arn: &str) -> Result<Option<TopicRuleDestination>> {
        Ok(
            sqlx::query("SELECT * FROM topic_rule_destinations WHERE arn = $1")
                .bind(arn)
                .fetch_optional(&self.read)
                .await?
                .map(|r| destination_row(&r)),
        )
    }

    async fn find_topic_rule_destination_by_token(
        &self,
        token_sha256: &str,
    ) -> Result<Option<TopicRuleDestination>> {
        Ok(
            sqlx::query("SELECT * FROM topic_rule_destinations WHERE token_sha256 = $1")
                .bind(token_sha256)
                .fetch_optional(&self.read)
                .await?
                .map(|r| destination_row(&r)),
        )
    }

    async fn list_topic_rule_destinations(
        &self,
        page: &PageRequest,
    ) -> Result<Vec<TopicRuleDestination>> {
        let rows = sqlx::query(
            "SELECT * FROM topic_rule_destinations WHERE ($1 IS NULL OR arn > $1) ORDER BY arn LIMIT $2",
        )
        .bind(&page.after)
        .bind(limit(page))
        .fetch_all(&self.read)
        .await?;
        Ok(rows.iter().map(destination_row).collect())
    }

    async fn update_topic_rule_destination(
        &self,
        arn: &str,
        change: Change<TopicRuleDestination>,
    ) -> Result<TopicRuleDestination> {
        let mut tx = begin_write(&self.write).await?;
        let mut d = sqlx::query("SELECT * FROM topic_rule_destinations WHERE arn = $1")
            .bind(arn)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| destination_row(&r))
            .ok_or_else(|| {
                RegistryError::not_found(format!("Topic rule destination {arn} does not exist"))
            })?;
        change(&mut d)?;
        sqlx::query("UPDATE topic_rule_destinations SET status = $1, status_reason = $2, token_sha256 = $3, last_updated_at = $4 WHERE arn = $5")
            .bind(d.status.as_str())
            .bind(&d.status_reason)
            .bind(&d.token_sha256)
            .bind(d.last_updated_at)
            .bind(arn)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(d)
    }

    async fn delete_topic_rule_destination(&self, arn: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM topic_rule_destinations WHERE arn = $1")
            .bind(arn)
            .write_one(&self.write)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn insert_access_key(
        &self,
        id: &str,
        secret: &str,
        description: &str,
        at: Millis,
    ) -> Result<()> {
        sqlx::query("INSERT INTO access_keys (access_key_id, secret_access_key, description, creation_date) VALUES ($1, $2, $3, $4)")
            .bind(id)
            .bind(secret)
            .bind(description)
            .bind(at)
            .write_one(&self.write)
            .await?;
        Ok(())
    }

    async fn get_access_key_secret(&self, id: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar(
                "SELECT secret_access_key FROM access_keys WHERE access_key_id = $1",
            )
            .bind(id)
            .fetch_optional(&self.read)
            .await?,
        )
    }
}

fn sns_topic_row(r: &DbRow) -> crate::sns::SnsTopic {
    crate::sns::SnsTopic {
        name: r.get("name"),
        attributes: json_map(r.get::<&str, _>("attributes")),
        created_at: r.get("created_at"),
    }
}

fn sns_subscription_row(r: &DbRow) -> crate::sns::SnsSubscription {
    crate::sns::SnsSubscription {
        arn: r.get("arn"),
        topic_name: r.get("topic_name"),
        protocol: r.get("protocol"),
        endpoint: r.get("endpoint"),
        token: r.get("token"),
        confirmed: r.get("confirmed"),
        attributes: json_map(r.get::<&str, _>("attributes")),
        created_at: r.get("created_at"),
    }
}
