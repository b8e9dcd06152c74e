//! Static thing groups.

use super::things::AttributePayload;
use super::{listing, put_opt};
use crate::error::ApiResult;
use crate::request::ApiRequest;
use crate::{epoch_seconds, ApiState};
use roost_registry::GroupMembership;
use serde::Deserialize;
use serde_json::{json, Map, Value};

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ThingGroupProperties {
    thing_group_description: Option<String>,
    attribute_payload: Option<AttributePayload>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateThingGroup {
    parent_group_name: Option<String>,
    thing_group_properties: Option<ThingGroupProperties>,
    #[allow(dead_code)]
    tags: Option<Vec<Value>>,
}

pub async fn create_thing_group(
    state: &ApiState,
    req: &ApiRequest,
    name: &str,
) -> ApiResult<Value> {
    let body: CreateThingGroup = req.json()?;
    let props = body.thing_group_properties.unwrap_or_default();
    let attributes = props
        .attribute_payload
        .and_then(|p| p.attributes)
        .unwrap_or_default();
    let g = state
        .registry()
        .create_thing_group(
            name,
            body.parent_group_name.as_deref(),
            props.thing_group_description,
            attributes,
        )
        .await?;
    Ok(json!({
        "thingGroupName": g.name,
        "thingGroupArn": state.registry().arns().thing_group(&g.name),
        "thingGroupId": g.id,
    }))
}

pub async fn describe_thing_group(state: &ApiState, name: &str) -> ApiResult<Value> {
    let d = state.registry().describe_thing_group(name).await?;
    let arns = state.registry().arns();
    let g = &d.group;
    let mut props = Map::new();
    put_opt(&mut props, "thingGroupDescription", g.description.clone());
    props.insert(
        "attributePayload".into(),
        json!({ "attributes": g.attributes }),
    );
    let mut meta = Map::new();
    put_opt(&mut meta, "parentGroupName", g.parent_name.clone());
    meta.insert(
        "rootToParentThingGroups".into(),
        Value::Array(
            d.root_to_parent
                .iter()
                .map(|n| json!({ "groupName": n, "groupArn": arns.thing_group(n) }))
                .collect(),
        ),
    );
    meta.insert("creationDate".into(), epoch_seconds(g.creation_date));
    Ok(json!({
        "thingGroupName": g.name,
        "thingGroupId": g.id,
        "thingGroupArn": arns.thing_group(&g.name),
        "version": g.version,
        "thingGroupProperties": props,
        "thingGroupMetadata": meta,
    }))
}

pub async fn delete_thing_group(
    state: &ApiState,
    req: &ApiRequest,
    name: &str,
) -> ApiResult<Value> {
    state
        .registry()
        .delete_thing_group(name, req.query_i64("expectedVersion")?)
        .await?;
    Ok(json!({}))
}

pub async fn list_thing_groups(state: &ApiState, req: &ApiRequest) -> ApiResult<Value> {
    let page = state
        .registry()
        .list_thing_groups(
            req.query("parentGroup"),
            req.query("namePrefixFilter"),
            req.query_bool("recursive")?.unwrap_or(false),
            req.query("nextToken"),
            req.query_i64("maxResults")?,
        )
        .await?;
    let arns = state.registry().arns();
    Ok(listing(
        "thingGroups",
        Value::Array(
            page.items
                .iter()
                .map(|g| json!({ "groupName": g.name, "groupArn": arns.thing_group(&g.name) }))
                .collect(),
        ),
        "nextToken",
        page.next_token,
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Membership {
    thing_group_name: Option<String>,
    thing_group_arn: Option<String>,
    thing_name: Option<String>,
    thing_arn: Option<String>,
    #[allow(dead_code)]
    override_dynamic_groups: Option<bool>,
}

impl From<Membership> for GroupMembership {
    fn from(m: Membership) -> Self {
        GroupMembership {
            thing_group_name: m.thing_group_name,
            thing_group_arn: m.thing_group_arn,
            thing_name: m.thing_name,
            thing_arn: m.thing_arn,
        }
    }
}

pub async fn add_thing_to_thing_group(state: &ApiState, req: &ApiRequest) -> ApiResult<Value> {
    let m: Membership = req.json()?;
    state.registry().add_thing_to_thing_group(&m.into()).await?;
    Ok(json!({}))
}

pub async fn remove_thing_from_thing_group(state: &ApiState, req: &ApiRequest) -> ApiResult<Value> {
    let m: Membership = req.json()?;
    state
        .registry()
        .remove_thing_from_thing_group(&m.into())
        .await?;
    Ok(json!({}))
}

pub async fn list_things_in_thing_group(
    state: &ApiState,
    req: &ApiRequest,
    name: &str,
) -> ApiResult<Value> {
    let page = state
        .registry()
        .list_things_in_thing_group(
            name,
            req.query_bool("recursive")?.unwrap_or(false),
            req.query("nextToken"),
            req.query_i64("maxResults")?,
        )
        .await?;
    Ok(listing(
        "things",
        json!(page.items),
        "nextToken",
        page.next_token,
    ))
}

pub async fn list_thing_groups_for_thing(
    state: &ApiState,
    req: &ApiRequest,
    name: &str,
) -> ApiResult<Value> {
    let page = state
        .registry()
        .list_thing_groups_for_thing(name, req.query("nextToken"), req.query_i64("maxResults")?)
        .await?;
    let arns = state.registry().arns();
    Ok(listing(
        "thingGroups",
        Value::Array(
            page.items
                .iter()
                .map(|g| json!({ "groupName": g, "groupArn": arns.thing_group(g) }))
                .collect(),
        ),
        "nextToken",
        page.next_token,
    ))
}
