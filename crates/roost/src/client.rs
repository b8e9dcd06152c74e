//! A small SigV4-signing client for Roost's control plane, used by the
//! native CLI commands. It talks to the API like any other AWS client, so the
//! same commands work against a remote Roost.

use crate::serve::{CREDENTIALS_FILE, ENDPOINTS_FILE, PROFILE};
use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Where the CLI finds the server and its credentials.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Target {
    /// A local Roost data directory: its endpoints.json and credentials are used.
    #[arg(long, env = "ROOST_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The control-plane URL (e.g. http://127.0.0.1:9080); credentials then
    /// come from the usual AWS chain (environment, shared credentials file).
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Region to sign requests for.
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
}

pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    access_key_id: String,
    secret_access_key: String,
    region: String,
}

/// The keys of the first INI section `wanted` accepts, in an AWS
/// credentials or config file; `None` when the file does not exist.
fn ini_section(
    path: &Path,
    wanted: impl Fn(&str) -> bool,
) -> Result<Option<std::collections::HashMap<String, String>>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let (mut inside, mut keys) = (false, std::collections::HashMap::new());
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = wanted(name.trim());
        } else if let Some((k, v)) = line.split_once('=').filter(|_| inside) {
            keys.entry(k.trim().to_string())
                .or_insert_with(|| v.trim().to_string());
        }
    }
    Ok(Some(keys))
}

/// Reads `[profile]` keys from an AWS shared-credentials style INI file.
fn read_profile(path: &Path, profile: &str) -> Result<Option<(String, String)>> {
    let Some(keys) = ini_section(path, |s| s == profile)? else {
        return Ok(None);
    };
    Ok(keys
        .get("aws_access_key_id")
        .cloned()
        .zip(keys.get("aws_secret_access_key").cloned()))
}

impl ApiClient {
    pub fn from_target(target: &Target) -> Result<Self> {
        let default_dir = PathBuf::from(crate::config::DEFAULT_DATA_DIR);
        let profile = if target.endpoint.is_none()
            && target.data_dir.is_none()
            && !default_dir.join(ENDPOINTS_FILE).exists()
        {
            aws_profile_endpoint()?
        } else {
            None
        };
        let mut region = target.region.clone();
        let (base, creds) = match (&target.endpoint, &target.data_dir, profile) {
            (Some(endpoint), _, _) => (endpoint.trim_end_matches('/').to_string(), None),
            // Outside a folder with a roost-data: the AWS profile's
            // endpoint_url (the `roost` profile roost serve writes).
            (None, None, Some((endpoint, profile_region))) => {
                if let Some(r) = profile_region {
                    region = r;
                }
                (endpoint.trim_end_matches('/').to_string(), None)
            }
            (None, dir, _) => {
                let dir = dir
                    .clone()
                    .unwrap_or_else(|| PathBuf::from(crate::config::DEFAULT_DATA_DIR));
                let endpoints = dir.join(ENDPOINTS_FILE);
                let text = std::fs::read_to_string(&endpoints).with_context(|| {
                    format!(
                        "cannot read {}: is Roost running with --data-dir {}? (or pass --endpoint URL)",
                        endpoints.display(),
                        dir.display()
                    )
                })?;
                let json: Value = serde_json::from_str(&text)
                    .with_context(|| format!("{} is not valid JSON", endpoints.display()))?;
                let api = json["api"]
                    .as_str()
                    .ok_or_else(|| anyhow!("{} has no \"api\" address", endpoints.display()))?;
                let creds = read_profile(&dir.join(CREDENTIALS_FILE), PROFILE)?;
                (format!("http://{api}"), creds)
            }
        };
        let (access_key_id, secret_access_key) = match creds {
            Some(c) => c,
            None => aws_credentials()?,
        };
        Ok(Self {
            http: reqwest::Client::new(),
            base,
            access_key_id,
            secret_access_key,
            region,
        })
    }

    /// Calls one operation. `path` is already percent-encoded; `query` too.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        query: &str,
        extra_headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value> {
        let body = body.map(|b| (b.to_string().into_bytes(), "application/json"));
        let text = self
            .call_raw(method, path, query, extra_headers, body)
            .await?;
        if text.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Object(Default::default()));
        }
        serde_json::from_slice(&text).context("the server's answer is not JSON")
    }

    /// Calls one operation; `None` when the server answers 404 (the
    /// resource does not exist).
    pub async fn call_opt(
        &self,
        method: &str,
        path: &str,
        query: &str,
        body: Option<&Value>,
    ) -> Result<Option<Value>> {
        match self.call(method, path, query, &[], body).await {
            Ok(v) => Ok(Some(v)),
            Err(e)
                if e.downcast_ref::<AwsError>()
                    .is_some_and(|a| a.status == 404) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Calls one SNS action (the query protocol: a form body, signed for
    /// `sns`); the XML answer.
    pub async fn sns(&self, action: &str, params: &[(&str, &str)]) -> Result<String> {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("Action", action);
        form.append_pair("Version", "2010-03-31");
        for (k, v) in params {
            form.append_pair(k, v);
        }
        let body = form.finish().into_bytes();
        let bytes = self
            .call_raw_as(
                "sns",
                "POST",
                "/",
                "",
                &[],
                Some((body, "application/x-www-form-urlencoded")),
            )
            .await?;
        String::from_utf8(bytes).context("the server's SNS answer is not UTF-8")
    }

    /// Calls one operation with a raw body (and its content type); the
    /// answer's bytes, or the AWS error it was.
    pub async fn call_raw(
        &self,
        method: &str,
        path: &str,
        query: &str,
        extra_headers: &[(&str, &str)],
        body: Option<(Vec<u8>, &str)>,
    ) -> Result<Vec<u8>> {
        self.call_raw_as("iot", method, path, query, extra_headers, body)
            .await
    }

    async fn call_raw_as(
        &self,
        service: &str,
        method: &str,
        path: &str,
        query: &str,
        extra_headers: &[(&str, &str)],
        body: Option<(Vec<u8>, &str)>,
    ) -> Result<Vec<u8>> {
        let url = if query.is_empty() {
            format!("{}{path}", self.base)
        } else {
            format!("{}{path}?{query}", self.base)
        };
        let parsed =
            reqwest::Url::parse(&url).with_context(|| format!("'{url}' is not a valid URL"))?;
        let host = match parsed.port() {
            Some(p) => format!("{}:{p}", parsed.host_str().unwrap_or_default()),
            None => parsed.host_str().unwrap_or_default().to_string(),
        };
        let (body_bytes, content_type) = match body {
            Some((bytes, content_type)) => (bytes, Some(content_type)),
            None => (Vec::new(), None),
        };
        let mut headers: Vec<(&str, &str)> = vec![("host", host.as_str())];
        if let Some(content_type) = content_type {
            headers.push(("content-type", content_type));
        }
        headers.extend_from_slice(extra_headers);
        let signed = roost_sigv4::sign(
            &roost_sigv4::Request {
                method,
                raw_path: path,
                raw_query: query,
                headers: &headers,
                body: &body_bytes,
            },
            &roost_sigv4::SigningParams {
                access_key_id: &self.access_key_id,
                secret_access_key: &self.secret_access_key,
                region: &self.region,
                service,
                time: SystemTime::now(),
            },
        );
        let mut request = self.http.request(method.parse()?, parsed);
        for (k, v) in headers.iter().filter(|(k, _)| *k != "host") {
            request = request.header(*k, *v);
        }
        for (k, v) in &signed {
            request = request.header(k.as_str(), v.as_str());
        }
        let response = request
            .body(body_bytes)
            .send()
            .await
            .with_context(|| format!("cannot reach Roost at {}", self.base))?;
        let status = response.status();
        let code = response
            .headers()
            .get("x-amzn-ErrorType")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(':').next().unwrap_or(v).to_string());
        let bytes = response.bytes().await?.to_vec();
        if !status.is_success() {
            let text = String::from_utf8_lossy(&bytes).to_string();
            let xml = xml_error(&text);
            let message = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v["message"].as_str().map(str::to_string))
                .or_else(|| xml.as_ref().map(|(_, m)| m.clone()))
                .unwrap_or_else(|| text.clone());
            let code = code
                .or_else(|| xml.map(|(c, _)| c))
                .unwrap_or_else(|| status.to_string());
            return Err(AwsError {
                code,
                status: status.as_u16(),
                message,
            }
            .into());
        }
        Ok(bytes)
    }

    /// A plain unauthenticated GET (e.g. /root-ca.pem).
    pub async fn get_text(&self, path: &str) -> Result<String> {
        let response = self.http.get(format!("{}{path}", self.base)).send().await?;
        if !response.status().is_success() {
            bail!("GET {path} answered {}", response.status());
        }
        Ok(response.text().await?)
    }
}

/// An error the server answered with.
#[derive(Debug, thiserror::Error)]
#[error("{code} ({status}): {message}")]
pub struct AwsError {
    pub code: String,
    pub status: u16,
    pub message: String,
}

/// An SNS (query protocol) error answer.
#[derive(serde::Deserialize)]
struct XmlErrorResponse {
    #[serde(rename = "Error")]
    error: XmlError,
}

#[derive(serde::Deserialize)]
struct XmlError {
    #[serde(rename = "Code")]
    code: String,
    #[serde(rename = "Message", default)]
    message: String,
}

fn xml_error(text: &str) -> Option<(String, String)> {
    let e: XmlErrorResponse = quick_xml::de::from_str(text).ok()?;
    Some((e.error.code, e.error.message))
}

/// One paginated List operation: where its pages' items are and how the
/// next page is asked for.
pub struct Listing<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// The query every page carries (the token is added to it).
    pub query: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
    /// The answer's field holding the page's items.
    pub items: &'a str,
    /// The token's query parameter and the answer's field naming the next
    /// page (`nextToken` both, or `marker` / `nextMarker`).
    pub token: (&'a str, &'a str),
}

impl<'a> Listing<'a> {
    /// A GET listing paged with `nextToken`.
    pub fn get(path: &'a str, items: &'a str) -> Self {
        Self {
            method: "GET",
            path,
            query: "",
            headers: &[],
            items,
            token: ("nextToken", "nextToken"),
        }
    }
}

/// A listing longer than this many pages is refused rather than followed
/// forever.
const MAX_PAGES: usize = 10_000;

impl ApiClient {
    /// Every item of a paginated listing.
    pub async fn list_all(&self, listing: &Listing<'_>) -> Result<Vec<Value>> {
        let (token_in, token_out) = listing.token;
        let mut items = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut query = listing.query.to_string();
            if let Some(t) = &token {
                if !query.is_empty() {
                    query.push('&');
                }
                query.push_str(&format!("{token_in}={}", label(t)));
            }
            let page = self
                .call(listing.method, listing.path, &query, listing.headers, None)
                .await?;
            items.extend(page[listing.items].as_array().cloned().unwrap_or_default());
            match page[token_out].as_str() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(items),
            }
        }
        bail!("{}: more than {MAX_PAGES} pages", listing.path)
    }
}

/// The `endpoint_url` (and region) of the AWS profile in use
/// (`AWS_PROFILE`, else `default`) in the AWS config file
/// (`AWS_CONFIG_FILE`, else ~/.aws/config), if it has one.
fn aws_profile_endpoint() -> Result<Option<(String, Option<String>)>> {
    let Some(path) = std::env::var_os("AWS_CONFIG_FILE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".aws/config")))
    else {
        return Ok(None);
    };
    let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into());
    let wanted = |section: &str| match profile.as_str() {
        "default" => section == "default",
        p => section.strip_prefix("profile ").map(str::trim) == Some(p),
    };
    let Some(keys) = ini_section(&path, wanted)? else {
        return Ok(None);
    };
    Ok(keys
        .get("endpoint_url")
        .map(|e| (e.clone(), keys.get("region").cloned())))
}

/// The usual AWS credential chain, as far as a CLI needs it: environment
/// variables, then the shared credentials file and profile.
fn aws_credentials() -> Result<(String, String)> {
    if let (Ok(id), Ok(secret)) = (
        std::env::var("AWS_ACCESS_KEY_ID"),
        std::env::var("AWS_SECRET_ACCESS_KEY"),
    ) {
        return Ok((id, secret));
    }
    let path = std::env::var_os("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".aws/credentials")));
    let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into());
    if let Some(path) = path {
        if let Some(creds) = read_profile(&path, &profile)? {
            return Ok(creds);
        }
    }
    bail!("no credentials: pass --data-dir of a local Roost, or set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE")
}

/// Percent-encodes one path label the way AWS clients do (`/` included).
pub fn label(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, &LABEL).to_string()
}

const LABEL: percent_encoding::AsciiSet = percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');
