//! Things, thing types and thing principals.

use super::{listing, put_opt};
use crate::error::{ApiError, ApiResult};
use crate::request::ApiRequest;
use crate::{epoch_seconds, ApiState};
use roost_registry::model::{Thing, ThingPrincipalType, ThingType};
use roost_registry::store::ThingFilter;
use roost_registry::{ThingTypeSpec, ThingUpdate};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AttributePayload {
    #[serde(default)]
    pub attributes: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub merge: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateThing {
    thing_type_name: Option<String>,
    attribute_payload: Option<AttributePayload>,
    billing_group_name: Option<String>,
}

pub async fn create_thing(state: &ApiState, req: &ApiRequest, name: &str) -> ApiResult<Value> {
    let body: CreateThing = req.json()?;
    if body.billing_group_name.is_some() {
        return Err(ApiError::invalid(
            "billing groups are not supported by Roost",
        ));
    }
    let attributes = body
        .attribute_payload
        .and_then(|p| p.attributes)
        .unwrap_or_default();
    let thing = state
        .registry()
        .create_thing(name, body.thing_type_name.as_deref(), attributes)
        .await?;
    Ok(json!({
        "thingName": thing.name,
        "thingArn": state.registry().arns().thing(&thing.name),
        "thingId": thing.id,
    }))
}

/// GetThingConnectivityData: whether a client with the thing's name as its
/// client id is connected to this node now, and since when. The
/// last disconnection is not kept: a thing not connected answers
/// `connected: false` alone.
pub async fn get_thing_connectivity_data(state: &ApiState, name: &str) -> ApiResult<Value> {
    let thing = state.registry().describe_thing(name).await?;
    Ok(match state.broker().connected_since(&thing.name) {
        Some(at) => json!({
            "thingName": thing.name,
            "connected": true,
            "timestamp": crate::epoch_seconds(at),
        }),
        None => json!({"thingName": thing.name, "connected": false}),
    })
}

pub async fn describe_thing(state: &ApiState, name: &str) -> ApiResult<Value> {
    let thing = state.registry().describe_thing(name).await?;
    let mut out = Map::new();
    out.insert("defaultClientId".into(), json!(thing.name));
    out.insert("thingName".into(), json!(thing.name));
    out.insert("thingId".into(), json!(thing.id));
    out.insert(
        "thingArn".into(),
        json!(state.registry().arns().thing(&thing.name)),
    );
    put_opt(&mut out, "thingTypeName", thing.type_name.clone());
    out.insert("attributes".into(), json!(thing.attributes));
    out.insert("version".into(), json!(thing.version));
    Ok(Value::Object(out))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UpdateThing {
    thing_type_name: Option<String>,
    attribute_payload: Option<AttributePayload>,
    expected_version: Option<i64>,
    remove_thing_type: Option<bool>,
}

pub async fn update_thing(state: &ApiState, req: &ApiRequest, name: &str) -> ApiResult<Value> {
    let body: UpdateThing = req.json()?;
    let attributes = body
        .attribute_payload
        .and_then(|p| p.attributes.map(|a| (a, p.merge.unwrap_or(false))));
    state
        .registry()
        .update_thing(
            name,
            ThingUpdate {
                thing_type_name: body.thing_type_name,
                remove_thing_type: body.remove_thing_type.unwrap_or(false),
                attributes,
                expected_version: body.expected_version,
            },
        )
        .await?;
    Ok(json!({}))
}

pub async fn delete_thing(state: &ApiState, req: &ApiRequest, name: &str) -> ApiResult<Value> {
    state
        .registry()
        .delete_thing(name, req.query_i64("expectedVersion")?)
        .await?;
    Ok(json!({}))
}

fn thing_attribute(state: &ApiState, t: &Thing) -> Value {
    let mut out = Map::new();
    out.insert("thingName".into(), json!(t.name));
    put_opt(&mut out, "thingTypeName", t.type_name.clone());
    out.insert(
        "thingArn".into(),
        json!(state.registry().arns().thing(&t.name)),
    );
    out.insert("attributes".into(), json!(t.attributes));
    out.insert("version".into(), json!(t.version));
    Value::Object(out)
}

pub async fn list_things(state: &ApiState, req: &ApiRequest) -> ApiResult<Value> {
    let filter = ThingFilter {
        attribute_name: req.query("attributeName").map(str::to_string),
        attribute_value: req.query("attributeValue").map(str::to_string),
        attribute_value_prefix: req.query_bool("usePrefixAttributeValue")?.unwrap_or(false),
        thing_type_name: req.query("thingTypeName").map(str::to_string),
    };
    let page = state
        .registry()
        .list_things(filter, req.query("nextToken"), req.query_i64("maxResults")?)
        .await?;
    let things = page
        .items
        .iter()
        .map(|t| thing_attribute(state, t))
        .collect();
    Ok(listing(
        "things",
        Value::Array(things),
        "nextToken",
        page.next_token,
    ))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ThingTypeProperties {
    thing_type_description: Option<String>,
    searchable_attributes: Option<Vec<String>>,
    mqtt5_configuration: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateThingType {
    thing_type_properties: Option<ThingTypeProperties>,
    #[allow(dead_code)]
    tags: Option<Vec<Value>>,
}

pub async fn create_thing_type(state: &ApiState, req: &ApiRequest, name: &str) -> ApiResult<Value> {
    let body: CreateThingType = req.json()?;
    let props = body.thing_type_properties.unwrap_or_default();
    if props.mqtt5_configuration.is_some() {
        return Err(ApiError::invalid(
            "mqtt5Configuration (propagating attributes) is not supported by Roost yet",
        ));
    }
    let t = state
        .registry()
        .create_thing_type(
            name,
            ThingTypeSpec {
                description: props.thing_type_description,
                searchable_attributes: props.searchable_attributes.unwrap_or_default(),
            },
        )
        .await?;
    Ok(json!({
        "thingTypeName": t.name,
        "thingTypeArn": state.registry().arns().thing_type(&t.name),
        "thingTypeId": t.id,
    }))
}

fn thing_type_json(state: &ApiState, t: &ThingType) -> Value {
    let mut props = Map::new();
    put_opt(&mut props, "thingTypeDescription", t.description.clone());
    props.insert(
        "searchableAttributes".into(),
        json!(t.searchable_attributes),
    );
    let mut meta = Map::new();
    meta.insert("deprecated".into(), json!(t.deprecated));
    put_opt(
        &mut meta,
        "deprecationDate",
        t.deprecation_date.map(epoch_seconds),
    );
    meta.insert("creationDate".into(), epoch_seconds(t.creation_date));
    json!({
        "thingTypeName": t.name,
        "thingTypeId": t.id,
        "thingTypeArn": state.registry().arns().thing_type(&t.name),
        "thingTypeProperties": props,
        "thingTypeMetadata": meta,
    })
}

pub async fn describe_thing_type(state: &ApiState, name: &str) -> ApiResult<Value> {
    let t = state.registry().describe_thing_type(name).await?;
    Ok(thing_type_json(state, &t))
}

pub async fn list_thing_types(state: &ApiState, req: &ApiRequest) -> ApiResult<Value> {
    let page = state
        .registry()
        .list_thing_types(
            req.query("thingTypeName"),
            req.query("nextToken"),
            req.query_i64("maxResults")?,
        )
        .await?;
    Ok(listing(
        "thingTypes",
        Value::Array(
            page.items
                .iter()
                .map(|t| {
                    let mut v = thing_type_json(state, t);
                    if let Some(o) = v.as_object_mut() {
                        o.remove("thingTypeId");
                    }
                    v
                })
                .collect(),
        ),
        "nextToken",
        page.next_token,
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DeprecateThingType {
    undo_deprecate: Option<bool>,
}

pub async fn deprecate_thing_type(
    state: &ApiState,
    req: &ApiRequest,
    name: &str,
) -> ApiResult<Value> {
    let body: DeprecateThingType = req.json()?;
    state
        .registry()
        .deprecate_thing_type(name, body.undo_deprecate.unwrap_or(false))
        .await?;
    Ok(json!({}))
}

pub async fn delete_thing_type(state: &ApiState, name: &str) -> ApiResult<Value> {
    state.registry().delete_thing_type(name).await?;
    Ok(json!({}))
}

pub async fn attach_thing_principal(
    state: &ApiState,
    req: &ApiRequest,
    name: &str,
) -> ApiResult<Value> {
    let principal = req.required_header("x-amzn-principal")?;
    let kind = match req.query("thingPrincipalType") {
        None => ThingPrincipalType::NonExclusive,
        Some(k) => ThingPrincipalType::parse(k).ok_or_else(|| {
            ApiError::invalid(format!(
                "thingPrincipalType '{k}' is not EXCLUSIVE_THING or NON_EXCLUSIVE_THING"
            ))
        })?,
    };
    state
        .registry()
        .attach_thing_principal(name, principal, kind)
        .await?;
    Ok(json!({}))
}

pub async fn detach_thing_principal(
    state: &ApiState,
    req: &ApiRequest,
    name: &str,
) -> ApiResult<Value> {
    let principal = req.required_header("x-amzn-principal")?;
    state
        .registry()
        .detach_thing_principal(name, principal)
        .await?;
    Ok(json!({}))
}

pub async fn list_thing_principals(
    state: &ApiState,
    req: &ApiRequest,
    name: &str,
) -> ApiResult<Value> {
    let page = state
        .registry()
        .list_thing_principals(name, req.query("nextToken"), req.query_i64("maxResults")?)
        .await?;
    Ok(listing(
        "principals",
        json!(page.items),
        "nextToken",
        page.next_token,
    ))
}

pub async fn list_principal_things(state: &ApiState, req: &ApiRequest) -> ApiResult<Value> {
    let principal = req.required_header("x-amzn-principal")?;
    let page = state
        .registry()
        .list_principal_things(
            principal,
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
