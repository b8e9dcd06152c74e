//! `roost cert create`: the scenario's "one-click certificate".

use crate::client::{label, ApiClient, Target};
use anyhow::{Context, Result};
use roost_registry::pki::{write_private_file, write_public_file};
use std::path::Path;

pub async fn create(thing: &str, out: &Path, target: &Target) -> Result<()> {
    let api = ApiClient::from_target(target)?;
    let (id, arn) = issue(&api, thing, out).await?;
    println!("certificateId: {id}");
    println!("certificateArn: {arn}");
    println!(
        "wrote certificate.pem.crt, private.pem.key (0600), public.pem.key and root-ca.pem to {}",
        out.display()
    );
    Ok(())
}

/// Creates an ACTIVE certificate for `thing`, attaches it, and writes its
/// files (key 0600) and the root CA to `out`: (certificate id, ARN).
pub async fn issue(api: &ApiClient, thing: &str, out: &Path) -> Result<(String, String)> {
    // Check the thing first, so a typo does not leave an orphan certificate.
    api.call("GET", &format!("/things/{}", label(thing)), "", &[], None)
        .await
        .with_context(|| format!("looking up thing '{thing}' (create it first: aws iot create-thing --thing-name {thing})"))?;
    let created = create_keys_and_certificate(api, true).await?;
    let (arn, id) = (created.arn.clone(), created.id.clone());
    let attach = api
        .call(
            "PUT",
            &format!("/things/{}/principals", label(thing)),
            "",
            &[("x-amzn-principal", arn.as_str())],
            None,
        )
        .await;
    if let Err(e) = attach {
        // Do not leave an active, unattached certificate behind.
        let _ = api
            .call(
                "PUT",
                &format!("/certificates/{id}"),
                "newStatus=INACTIVE",
                &[],
                None,
            )
            .await;
        let _ = api
            .call("DELETE", &format!("/certificates/{id}"), "", &[], None)
            .await;
        return Err(e).context("attaching the certificate to the thing");
    }
    let root = api.get_text("/root-ca.pem").await?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    write_public_file(
        &out.join("certificate.pem.crt"),
        created.certificate_pem.as_bytes(),
    )?;
    write_private_file(
        &out.join("private.pem.key"),
        created.private_key_pem.as_bytes(),
    )?;
    write_public_file(
        &out.join("public.pem.key"),
        created.public_key_pem.as_bytes(),
    )?;
    write_public_file(&out.join("root-ca.pem"), root.as_bytes())?;
    Ok((id, arn))
}

/// A certificate CreateKeysAndCertificate made, with its keys.
pub struct CreatedKeys {
    pub id: String,
    pub arn: String,
    pub certificate_pem: String,
    pub private_key_pem: String,
    pub public_key_pem: String,
}

/// CreateKeysAndCertificate, the certificate ACTIVE or INACTIVE.
pub async fn create_keys_and_certificate(api: &ApiClient, active: bool) -> Result<CreatedKeys> {
    let query = format!("setAsActive={active}");
    let created = api
        .call("POST", "/keys-and-certificate", &query, &[], None)
        .await?;
    let field = |v: &serde_json::Value| {
        v.as_str()
            .map(str::to_string)
            .context("unexpected answer from CreateKeysAndCertificate")
    };
    Ok(CreatedKeys {
        id: field(&created["certificateId"])?,
        arn: field(&created["certificateArn"])?,
        certificate_pem: field(&created["certificatePem"])?,
        private_key_pem: field(&created["keyPair"]["PrivateKey"])?,
        public_key_pem: field(&created["keyPair"]["PublicKey"])?,
    })
}
