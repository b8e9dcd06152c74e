//! DescribeEndpoint, GetRegistrationCode and TestAuthorization.

use crate::error::{ApiError, ApiResult};
use crate::request::ApiRequest;
use crate::ApiState;
use roost_policy::Decision;
use roost_registry::AuthInfo;
use serde::Deserialize;
use serde_json::{json, Value};

pub async fn describe_endpoint(state: &ApiState, req: &ApiRequest) -> ApiResult<Value> {
    match req.query("endpointType") {
        None | Some("iot:Data" | "iot:Data-ATS" | "iot:Jobs" | "iot:CredentialProvider") => {}
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "endpointType '{other}' is not valid"
            )))
        }
    }
    Ok(json!({ "endpointAddress": state.config().endpoint_host }))
}

pub async fn get_registration_code(state: &ApiState) -> ApiResult<Value> {
    Ok(json!({ "registrationCode": state.registry().registration_code() }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AuthInfoBody {
    action_type: Option<String>,
    resources: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TestAuthorization {
    principal: Option<String>,
    cognito_identity_pool_id: Option<String>,
    auth_infos: Option<Vec<AuthInfoBody>>,
    policy_names_to_add: Option<Vec<String>>,
    policy_names_to_skip: Option<Vec<String>>,
}

fn policy_list(state: &ApiState, names: &[String]) -> Value {
    let arns = state.registry().arns();
    json!({ "policies": names.iter().map(|n| json!({ "policyName": n, "policyArn": arns.policy(n) })).collect::<Vec<_>>() })
}

pub async fn test_authorization(state: &ApiState, req: &ApiRequest) -> ApiResult<Value> {
    let body: TestAuthorization = req.json()?;
    if body.cognito_identity_pool_id.is_some() {
        return Err(ApiError::invalid(
            "Cognito identities are not supported by Roost: give a certificate principal",
        ));
    }
    let infos = body
        .auth_infos
        .ok_or_else(|| ApiError::invalid("authInfos is required"))?
        .into_iter()
        .map(|i| {
            Ok(AuthInfo {
                action_type: i
                    .action_type
                    .ok_or_else(|| ApiError::invalid("authInfos[].actionType is required"))?,
                resources: i.resources,
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    let results = state
        .registry()
        .test_authorization(
            body.principal.as_deref(),
            req.query("clientId"),
            infos,
            &body.policy_names_to_add.unwrap_or_default(),
            &body.policy_names_to_skip.unwrap_or_default(),
        )
        .await?;
    let results: Vec<Value> = results
        .into_iter()
        .map(|r| {
            let decision = match r.decision {
                Decision::Allowed => "ALLOWED",
                Decision::ExplicitDeny => "EXPLICIT_DENY",
                Decision::ImplicitDeny => "IMPLICIT_DENY",
            };
            json!({
                "authInfo": { "actionType": r.auth_info.action_type, "resources": r.auth_info.resources },
                "allowed": policy_list(state, &r.allowed),
                "denied": {
                    "implicitDeny": policy_list(state, &r.implicit_deny),
                    "explicitDeny": policy_list(state, &r.explicit_deny),
                },
                "authDecision": decision,
                "missingContextValues": r.missing_context_values,
            })
        })
        .collect();
    Ok(json!({ "authResults": results }))
}
