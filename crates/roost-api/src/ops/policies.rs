//! IoT policies, versions and attachments.

use super::{listing, required};
use crate::error::ApiResult;
use crate::request::ApiRequest;
use crate::{epoch_seconds, ApiState};
use roost_registry::model::{Page, Policy};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Document {
    policy_document: Option<String>,
    #[allow(dead_code)]
    tags: Option<Vec<Value>>,
}

pub async fn create_policy(state: &ApiState, req: &ApiRequest, name: &str) -> ApiResult<Value> {
    let body: Document = req.json()?;
    let document = required(body.policy_document, "policyDocument")?;
    let (p, v) = state.registry().create_policy(name, &document).await?;
    Ok(json!({
        "policyName": p.name,
        "policyArn": state.registry().arns().policy(&p.name),
        "policyDocument": v.document,
        "policyVersionId": v.version_id.to_string(),
    }))
}

pub async fn get_policy(state: &ApiState, name: &str) -> ApiResult<Value> {
    let (p, v) = state.registry().get_policy(name).await?;
    Ok(json!({
        "policyName": p.name,
        "policyArn": state.registry().arns().policy(&p.name),
        "policyDocument": v.document,
        "defaultVersionId": p.default_version.to_string(),
        "creationDate": epoch_seconds(p.creation_date),
        "lastModifiedDate": epoch_seconds(p.last_modified_date),
        "generationId": p.generation_id,
    }))
}

pub async fn delete_policy(state: &ApiState, name: &str) -> ApiResult<Value> {
    state.registry().delete_policy(name).await?;
    Ok(json!({}))
}

pub async fn list_policies(state: &ApiState, req: &ApiRequest) -> ApiResult<Value> {
    let page = state
        .registry()
        .list_policies(
            req.query("marker"),
            req.query_i64("pageSize")?,
            req.query_bool("isAscendingOrder")?.unwrap_or(true),
        )
        .await?;
    Ok(policy_page(state, page))
}

pub async fn create_policy_version(
    state: &ApiState,
    req: &ApiRequest,
    name: &str,
) -> ApiResult<Value> {
    let body: Document = req.json()?;
    let document = required(body.policy_document, "policyDocument")?;
    let set_as_default = req.query_bool("setAsDefault")?.unwrap_or(false);
    let v = state
        .registry()
        .create_policy_version(name, &document, set_as_default)
        .await?;
    Ok(json!({
        "policyArn": state.registry().arns().policy(name),
        "policyDocument": v.document,
        "policyVersionId": v.version_id.to_string(),
        "isDefaultVersion": v.is_default,
    }))
}

pub async fn get_policy_version(state: &ApiState, name: &str, version: &str) -> ApiResult<Value> {
    let (p, v) = state.registry().get_policy_version(name, version).await?;
    Ok(json!({
        "policyArn": state.registry().arns().policy(&p.name),
        "policyName": p.name,
        "policyDocument": v.document,
        "policyVersionId": v.version_id.to_string(),
        "isDefaultVersion": v.is_default,
        "creationDate": epoch_seconds(v.creation_date),
        "lastModifiedDate": epoch_seconds(p.last_modified_date),
        "generationId": p.generation_id,
    }))
}

pub async fn list_policy_versions(state: &ApiState, name: &str) -> ApiResult<Value> {
    let versions = state.registry().list_policy_versions(name).await?;
    Ok(json!({
        "policyVersions": versions.iter().map(|v| json!({
            "versionId": v.version_id.to_string(),
            "isDefaultVersion": v.is_default,
            "createDate": epoch_seconds(v.creation_date),
        })).collect::<Vec<_>>(),
    }))
}

pub async fn delete_policy_version(
    state: &ApiState,
    name: &str,
    version: &str,
) -> ApiResult<Value> {
    state
        .registry()
        .delete_policy_version(name, version)
        .await?;
    Ok(json!({}))
}

pub async fn set_default_policy_version(
    state: &ApiState,
    name: &str,
    version: &str,
) -> ApiResult<Value> {
    state
        .registry()
        .set_default_policy_version(name, version)
        .await?;
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Target {
    target: Option<String>,
}

pub async fn attach_policy(state: &ApiState, req: &ApiRequest, name: &str) -> ApiResult<Value> {
    let body: Target = req.json()?;
    state
        .registry()
        .attach_policy(name, &required(body.target, "target")?)
        .await?;
    Ok(json!({}))
}

pub async fn detach_policy(state: &ApiState, req: &ApiRequest, name: &str) -> ApiResult<Value> {
    let body: Target = req.json()?;
    state
        .registry()
        .detach_policy(name, &required(body.target, "target")?)
        .await?;
    Ok(json!({}))
}

pub async fn list_attached_policies(
    state: &ApiState,
    req: &ApiRequest,
    target: &str,
) -> ApiResult<Value> {
    let page = state
        .registry()
        .list_attached_policies(
            target,
            req.query_bool("recursive")?.unwrap_or(false),
            req.query("marker"),
            req.query_i64("pageSize")?,
        )
        .await?;
    Ok(policy_page(state, page))
}

pub async fn list_targets_for_policy(
    state: &ApiState,
    req: &ApiRequest,
    name: &str,
) -> ApiResult<Value> {
    let page = state
        .registry()
        .list_targets_for_policy(name, req.query("marker"), req.query_i64("pageSize")?)
        .await?;
    Ok(listing(
        "targets",
        json!(page.items),
        "nextMarker",
        page.next_token,
    ))
}

/// ListPolicies and ListAttachedPolicies answer the same shape.
fn policy_page(state: &ApiState, page: Page<Policy>) -> Value {
    let arns = state.registry().arns();
    let policies = page
        .items
        .iter()
        .map(|p| json!({ "policyName": p.name, "policyArn": arns.policy(&p.name) }))
        .collect();
    listing(
        "policies",
        Value::Array(policies),
        "nextMarker",
        page.next_token,
    )
}
