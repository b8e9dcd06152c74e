//! Certificates and CA certificates.

use super::{listing, put_opt, required};
use crate::error::ApiResult;
use crate::request::ApiRequest;
use crate::{epoch_seconds, ApiState};
use roost_registry::model::{CaCertificate, Certificate};
use roost_registry::CaRegistration;
use serde::Deserialize;
use serde_json::{json, Map, Value};

pub async fn create_keys_and_certificate(state: &ApiState, req: &ApiRequest) -> ApiResult<Value> {
    let active = req.query_bool("setAsActive")?.unwrap_or(false);
    let created = state.registry().create_keys_and_certificate(active).await?;
    let c = &created.certificate;
    let keys = created
        .keys
        .as_ref()
        .expect("CreateKeysAndCertificate returns keys");
    Ok(json!({
        "certificateArn": state.registry().arns().cert(&c.id),
        "certificateId": c.id,
        "certificatePem": c.pem,
        "keyPair": { "PublicKey": keys.public_key_pem, "PrivateKey": keys.private_key_pem },
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FromCsr {
    certificate_signing_request: Option<String>,
}

pub async fn create_certificate_from_csr(state: &ApiState, req: &ApiRequest) -> ApiResult<Value> {
    let body: FromCsr = req.json()?;
    let csr = required(
        body.certificate_signing_request,
        "certificateSigningRequest",
    )?;
    let active = req.query_bool("setAsActive")?.unwrap_or(false);
    let created = state
        .registry()
        .create_certificate_from_csr(&csr, active)
        .await?;
    let c = &created.certificate;
    Ok(json!({
        "certificateArn": state.registry().arns().cert(&c.id),
        "certificateId": c.id,
        "certificatePem": c.pem,
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Register {
    certificate_pem: Option<String>,
    ca_certificate_pem: Option<String>,
    status: Option<String>,
    #[allow(dead_code)]
    set_as_active: Option<bool>,
}

pub async fn register_certificate(state: &ApiState, req: &ApiRequest) -> ApiResult<Value> {
    let body: Register = req.json()?;
    let pem = required(body.certificate_pem, "certificatePem")?;
    let c = state
        .registry()
        .register_certificate(
            &pem,
            body.ca_certificate_pem.as_deref(),
            req.query_bool("setAsActive")?,
            body.status.as_deref(),
        )
        .await?;
    Ok(json!({ "certificateArn": state.registry().arns().cert(&c.id), "certificateId": c.id }))
}

pub async fn register_certificate_without_ca(
    state: &ApiState,
    req: &ApiRequest,
) -> ApiResult<Value> {
    let body: Register = req.json()?;
    let pem = required(body.certificate_pem, "certificatePem")?;
    let c = state
        .registry()
        .register_certificate_without_ca(&pem, body.status.as_deref())
        .await?;
    Ok(json!({ "certificateArn": state.registry().arns().cert(&c.id), "certificateId": c.id }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RegisterCa {
    ca_certificate: Option<String>,
    verification_certificate: Option<String>,
    certificate_mode: Option<String>,
    registration_config: Option<Value>,
    #[allow(dead_code)]
    tags: Option<Vec<Value>>,
}

pub async fn register_ca_certificate(state: &ApiState, req: &ApiRequest) -> ApiResult<Value> {
    let body: RegisterCa = req.json()?;
    if body.registration_config.is_some() {
        return Err(crate::ApiError::invalid(
            "registrationConfig (provisioning templates) is not supported by Roost",
        ));
    }
    let ca = state
        .registry()
        .register_ca_certificate(CaRegistration {
            ca_certificate: required(body.ca_certificate, "caCertificate")?,
            verification_certificate: body.verification_certificate,
            set_as_active: req.query_bool("setAsActive")?.unwrap_or(false),
            allow_auto_registration: req.query_bool("allowAutoRegistration")?.unwrap_or(false),
            certificate_mode: body.certificate_mode,
        })
        .await?;
    Ok(json!({ "certificateArn": state.registry().arns().ca_cert(&ca.id), "certificateId": ca.id }))
}

fn description(state: &ApiState, c: &Certificate) -> Value {
    let mut d = Map::new();
    d.insert(
        "certificateArn".into(),
        json!(state.registry().arns().cert(&c.id)),
    );
    d.insert("certificateId".into(), json!(c.id));
    put_opt(&mut d, "caCertificateId", c.ca_certificate_id.clone());
    d.insert("status".into(), json!(c.status.as_str()));
    d.insert("certificatePem".into(), json!(c.pem));
    d.insert("ownedBy".into(), json!(state.registry().settings().account));
    d.insert("creationDate".into(), epoch_seconds(c.creation_date));
    d.insert(
        "lastModifiedDate".into(),
        epoch_seconds(c.last_modified_date),
    );
    d.insert("customerVersion".into(), json!(c.customer_version));
    d.insert("transferData".into(), json!({}));
    d.insert("generationId".into(), json!(c.generation_id));
    d.insert(
        "validity".into(),
        json!({ "notBefore": epoch_seconds(c.not_before), "notAfter": epoch_seconds(c.not_after) }),
    );
    d.insert("certificateMode".into(), json!(c.mode.as_str()));
    Value::Object(d)
}

pub async fn describe_certificate(state: &ApiState, id: &str) -> ApiResult<Value> {
    let c = state.registry().describe_certificate(id).await?;
    Ok(json!({ "certificateDescription": description(state, &c) }))
}

pub async fn list_certificates(state: &ApiState, req: &ApiRequest) -> ApiResult<Value> {
    let page = state
        .registry()
        .list_certificates(
            None,
            req.query("marker"),
            req.query_i64("pageSize")?,
            req.query_bool("isAscendingOrder")?.unwrap_or(false),
        )
        .await?;
    let arns = state.registry().arns();
    Ok(listing(
        "certificates",
        Value::Array(
            page.items
                .iter()
                .map(|c| {
                    json!({
                        "certificateArn": arns.cert(&c.id),
                        "certificateId": c.id,
                        "status": c.status.as_str(),
                        "certificateMode": c.mode.as_str(),
                        "creationDate": epoch_seconds(c.creation_date),
                    })
                })
                .collect(),
        ),
        "nextMarker",
        page.next_token,
    ))
}

pub async fn update_certificate(state: &ApiState, req: &ApiRequest, id: &str) -> ApiResult<Value> {
    let status = req
        .query("newStatus")
        .ok_or_else(|| crate::ApiError::invalid("newStatus is required"))?;
    state.registry().update_certificate(id, status).await?;
    Ok(json!({}))
}

pub async fn delete_certificate(state: &ApiState, req: &ApiRequest, id: &str) -> ApiResult<Value> {
    state
        .registry()
        .delete_certificate(id, req.query_bool("forceDelete")?.unwrap_or(false))
        .await?;
    Ok(json!({}))
}

fn ca_description(state: &ApiState, c: &CaCertificate) -> Value {
    json!({
        "certificateArn": state.registry().arns().ca_cert(&c.id),
        "certificateId": c.id,
        "status": c.status.as_str(),
        "certificatePem": c.pem,
        "ownedBy": state.registry().settings().account,
        "creationDate": epoch_seconds(c.creation_date),
        "autoRegistrationStatus": if c.auto_registration { "ENABLE" } else { "DISABLE" },
        "lastModifiedDate": epoch_seconds(c.last_modified_date),
        "customerVersion": c.customer_version,
        "generationId": c.generation_id,
        "validity": { "notBefore": epoch_seconds(c.not_before), "notAfter": epoch_seconds(c.not_after) },
        "certificateMode": c.mode.as_str(),
    })
}

pub async fn describe_ca_certificate(state: &ApiState, id: &str) -> ApiResult<Value> {
    let c = state.registry().describe_ca_certificate(id).await?;
    Ok(json!({ "certificateDescription": ca_description(state, &c) }))
}

pub async fn list_ca_certificates(state: &ApiState) -> ApiResult<Value> {
    let arns = state.registry().arns();
    let cas = state.registry().list_ca_certificates().await?;
    Ok(json!({
        "certificates": cas.iter().map(|c| json!({
            "certificateArn": arns.ca_cert(&c.id),
            "certificateId": c.id,
            "status": c.status.as_str(),
            "creationDate": epoch_seconds(c.creation_date),
        })).collect::<Vec<_>>(),
    }))
}
