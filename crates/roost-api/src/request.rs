//! A control-plane request as the operations see it: the raw path split into
//! percent-decoded segments (so `%2F` inside a label stays inside it), the
//! decoded query, headers and the whole body.

use crate::error::{ApiError, ApiResult};
use axum::http::HeaderMap;
use percent_encoding::percent_decode_str;
use serde::de::DeserializeOwned;

pub struct ApiRequest {
    pub method: String,
    pub raw_path: String,
    pub raw_query: String,
    pub segments: Vec<String>,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

fn decode(s: &str) -> ApiResult<String> {
    percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| ApiError::invalid(format!("'{s}' is not valid percent-encoded UTF-8")))
}

impl ApiRequest {
    pub fn new(
        method: String,
        raw_path: String,
        raw_query: String,
        headers: HeaderMap,
        body: Vec<u8>,
    ) -> ApiResult<Self> {
        // SigV4 signs the normalised path, so `/a/./b`, `/a/../b` and `/a//b`
        // would verify with the signature of another path: refuse them.
        let trimmed = raw_path.strip_prefix('/').unwrap_or(&raw_path);
        let segments = if trimmed.is_empty() {
            Vec::new()
        } else {
            trimmed
                .split('/')
                .map(|s| match s {
                    "" | "." | ".." => Err(ApiError::invalid(format!(
                        "the path '{raw_path}' has an empty, '.' or '..' segment"
                    ))),
                    s => decode(s),
                })
                .collect::<ApiResult<Vec<_>>>()?
        };
        let query = raw_query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                Ok((
                    decode(&k.replace('+', " "))?,
                    decode(&v.replace('+', "%20"))?,
                ))
            })
            .collect::<ApiResult<Vec<_>>>()?;
        Ok(Self {
            method,
            raw_path,
            raw_query,
            segments,
            query,
            headers,
            body,
        })
    }

    /// The path as logs may show it: a confirmation token (the credential of
    /// ConfirmTopicRuleDestination and its unsigned enableUrl) is replaced.
    pub fn loggable_path(&self) -> String {
        match self.segments.first().map(String::as_str) {
            Some("confirmdestination") => "/confirmdestination/<token>".into(),
            _ => self.raw_path.clone(),
        }
    }

    /// The unsigned GET of a destination's enableUrl (no Authorization
    /// header, no presigned query): the token alone confirms.
    pub fn is_unsigned_destination_confirmation(&self) -> bool {
        self.method == "GET"
            && self.segments.len() >= 2
            && self.segments[0] == "confirmdestination"
            && self.header("authorization").is_none()
            && self.query("X-Amz-Signature").is_none()
    }

    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn query_bool(&self, name: &str) -> ApiResult<Option<bool>> {
        match self.query(name) {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(other) => Err(ApiError::invalid(format!(
                "{name} must be true or false, got '{other}'"
            ))),
        }
    }

    pub fn query_i64(&self, name: &str) -> ApiResult<Option<i64>> {
        self.query(name)
            .map(|v| {
                v.parse::<i64>().map_err(|_| {
                    ApiError::invalid(format!("{name} must be a whole number, got '{v}'"))
                })
            })
            .transpose()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn required_header(&self, name: &str) -> ApiResult<&str> {
        self.header(name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ApiError::invalid(format!("the {name} header is required")))
    }

    /// The JSON body as `T`. An empty body reads as `{}`. Type errors name
    /// the member at fault.
    pub fn json<T: DeserializeOwned>(&self) -> ApiResult<T> {
        let body: &[u8] = if self.body.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &self.body
        };
        let de = &mut serde_json::Deserializer::from_slice(body);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if inner.is_syntax() || inner.is_eof() {
                ApiError::new(
                    400,
                    "SerializationException",
                    format!("the request body is not valid JSON: {inner}"),
                )
            } else if path == "." {
                ApiError::invalid(format!("the request body is not valid: {inner}"))
            } else {
                ApiError::invalid(format!("{path}: {inner}"))
            }
        })
    }
}
