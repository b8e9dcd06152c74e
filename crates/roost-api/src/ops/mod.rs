//! The operations, one module per resource family. Each function takes the
//! request, calls the registry, and shapes AWS's JSON answer.

pub mod certificates;
pub mod destinations;
pub mod groups;
pub mod jobs;
pub mod logging;
pub mod misc;
pub mod policies;
pub mod rules;
pub mod things;

use crate::error::{ApiError, ApiResult};
use serde_json::{Map, Value};

/// Inserts `value` under `key` only when it is present, as AWS omits absent members.
pub(crate) fn put_opt(map: &mut Map<String, Value>, key: &str, value: Option<impl Into<Value>>) {
    if let Some(v) = value {
        map.insert(key.to_string(), v.into());
    }
}

/// A required body member.
pub(crate) fn required<T>(value: Option<T>, name: &str) -> ApiResult<T> {
    value.ok_or_else(|| ApiError::invalid(format!("{name} is required")))
}

/// A listing's answer: the items under `items_key`, and the token for the
/// next page under `token_key` only when there is one.
pub(crate) fn listing(
    items_key: &str,
    items: Value,
    token_key: &str,
    next: Option<String>,
) -> Value {
    let mut out = Map::new();
    out.insert(items_key.to_string(), items);
    put_opt(&mut out, token_key, next);
    Value::Object(out)
}
