//! `roost objects`: put, get, list and remove objects in Roost's object
//! store (the local folder that the `s3` rule action writes and that job
//! documents' presigned URLs serve from), through the control plane like
//! any client, so it works against a remote Roost too.

use crate::client::{label, ApiClient, Target};
use anyhow::{bail, Context, Result};
use std::io::Write;
use std::path::Path;

/// `BUCKET/KEY` split, the key's segments percent-encoded for the path.
pub fn object_path(spec: &str) -> Result<String> {
    let Some((bucket, key)) = spec
        .split_once('/')
        .filter(|(b, k)| !b.is_empty() && !k.is_empty())
    else {
        bail!("'{spec}' is not BUCKET/KEY (for example iot-webinar-audits/jobs/certs/certificate.pem.crt)");
    };
    if key
        .split('/')
        .any(|segment| matches!(segment, "" | "." | ".."))
    {
        bail!("'{spec}': the key must be a path of plain segments inside its bucket (no empty, '.' or '..' segment)");
    }
    let key: Vec<String> = key.split('/').map(label).collect();
    Ok(format!("/objects/{}/{}", label(bucket), key.join("/")))
}

pub async fn put(spec: &str, file: &Path, target: &Target) -> Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let api = ApiClient::from_target(target)?;
    api.call_raw(
        "PUT",
        &object_path(spec)?,
        "",
        &[],
        Some((bytes, "application/octet-stream")),
    )
    .await
    .with_context(|| format!("putting {spec}"))?;
    println!("put {spec} ({} bytes)", std::fs::metadata(file)?.len());
    Ok(())
}

pub async fn get(spec: &str, file: Option<&Path>, target: &Target) -> Result<()> {
    let api = ApiClient::from_target(target)?;
    let bytes = api
        .call_raw("GET", &object_path(spec)?, "", &[], None)
        .await
        .with_context(|| format!("getting {spec}"))?;
    match file {
        Some(file) => {
            std::fs::write(file, &bytes).with_context(|| format!("writing {}", file.display()))?
        }
        None => std::io::stdout().write_all(&bytes)?,
    }
    Ok(())
}

pub async fn ls(spec: Option<&str>, target: &Target) -> Result<()> {
    let query = match spec {
        None => String::new(),
        Some(spec) => {
            let (bucket, prefix) = spec.split_once('/').unwrap_or((spec, ""));
            let mut query = format!("bucket={}", label(bucket));
            if !prefix.is_empty() {
                query.push_str(&format!("&prefix={}", label(prefix)));
            }
            query
        }
    };
    let api = ApiClient::from_target(target)?;
    let bytes = api.call_raw("GET", "/objects", &query, &[], None).await?;
    let listed: serde_json::Value =
        serde_json::from_slice(&bytes).context("the server's listing is not JSON")?;
    for object in listed["objects"].as_array().into_iter().flatten() {
        println!(
            "{:>10}  {}/{}",
            object["size"],
            object["bucket"].as_str().unwrap_or_default(),
            object["key"].as_str().unwrap_or_default()
        );
    }
    if listed["truncated"].as_bool() == Some(true) {
        eprintln!("(listing truncated: name a bucket or a prefix)");
    }
    Ok(())
}

pub async fn rm(spec: &str, target: &Target) -> Result<()> {
    let api = ApiClient::from_target(target)?;
    api.call_raw("DELETE", &object_path(spec)?, "", &[], None)
        .await
        .with_context(|| format!("removing {spec}"))?;
    println!("removed {spec}");
    Ok(())
}
