//! Input rules AWS IoT enforces on names and attributes, with messages that
//! say what to fix. Pure functions: nothing here touches storage.

use crate::error::{RegistryError, Result};
use std::collections::BTreeMap;

/// Attributes a thing may carry without a thing type, and with one.
pub const MAX_ATTRIBUTES_UNTYPED: usize = 3;
pub const MAX_ATTRIBUTES_TYPED: usize = 50;
pub const MAX_GROUP_ATTRIBUTES: usize = 50;
pub const MAX_SEARCHABLE_ATTRIBUTES: usize = 3;
pub const MAX_THING_TYPE_DESCRIPTION: usize = 2028;
pub const MAX_GROUP_DESCRIPTION: usize = 2028;
pub const MAX_GROUP_DEPTH: usize = 7;
pub const MAX_GROUPS_PER_THING: usize = 10;
pub const MAX_POLICIES_PER_TARGET: usize = 10;
pub const MAX_POLICY_VERSIONS: usize = 5;

fn check_name(
    what: &str,
    name: &str,
    max: usize,
    allowed: impl Fn(char) -> bool,
    pattern: &str,
) -> Result<()> {
    if name.is_empty() || name.chars().count() > max {
        return Err(RegistryError::invalid(format!(
            "{what} must be between 1 and {max} characters long, got {}",
            name.chars().count()
        )));
    }
    if let Some(bad) = name.chars().find(|c| !allowed(*c)) {
        return Err(RegistryError::invalid(format!(
            "{what} '{name}' contains the character {bad:?}; it must match the pattern {pattern}"
        )));
    }
    Ok(())
}

fn registry_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-')
}

/// Thing, thing type and thing group names: `[a-zA-Z0-9:_-]+`, 1–128.
pub fn thing_name(name: &str) -> Result<()> {
    check_name(
        "Thing name",
        name,
        128,
        registry_name_char,
        "[a-zA-Z0-9:_-]+",
    )
}

pub fn thing_type_name(name: &str) -> Result<()> {
    check_name(
        "Thing type name",
        name,
        128,
        registry_name_char,
        "[a-zA-Z0-9:_-]+",
    )
}

pub fn thing_group_name(name: &str) -> Result<()> {
    check_name(
        "Thing group name",
        name,
        128,
        registry_name_char,
        "[a-zA-Z0-9:_-]+",
    )
}

/// Policy names: `[\w+=,.@-]+`, 1–128.
pub fn policy_name(name: &str) -> Result<()> {
    check_name(
        "Policy name",
        name,
        128,
        |c| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '=' | ',' | '.' | '@' | '-'),
        "[\\w+=,.@-]+",
    )
}

/// Certificate ids: 64 hex characters (the SHA-256 of the DER), an optional `0x`.
pub fn certificate_id(id: &str) -> Result<String> {
    let hex = id.strip_prefix("0x").unwrap_or(id);
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(RegistryError::invalid(format!(
            "certificateId '{id}' is not valid: it must be 64 hexadecimal characters"
        )));
    }
    Ok(hex.to_ascii_lowercase())
}

fn attribute_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ',' | '@' | '/' | ':' | '#' | '-')
}

fn attribute_value_char(c: char) -> bool {
    attribute_name_char(c) || matches!(c, '=' | '[' | ']')
}

/// One attribute: name `[a-zA-Z0-9_.,@/:#-]+` up to 128, value
/// `[a-zA-Z0-9_.,@/:#=\[\]-]*` up to 800.
pub fn attribute(name: &str, value: &str) -> Result<()> {
    check_name(
        "Attribute name",
        name,
        128,
        attribute_name_char,
        "[a-zA-Z0-9_.,@/:#-]+",
    )?;
    if value.chars().count() > 800 {
        return Err(RegistryError::invalid(format!(
            "Value of attribute '{name}' is longer than 800 characters"
        )));
    }
    if let Some(bad) = value.chars().find(|c| !attribute_value_char(*c)) {
        return Err(RegistryError::invalid(format!(
            "Value of attribute '{name}' contains the character {bad:?}; it must match the pattern [a-zA-Z0-9_.,@/:#=\\[\\]-]*"
        )));
    }
    Ok(())
}

pub fn attributes(map: &BTreeMap<String, String>) -> Result<()> {
    map.iter().try_for_each(|(k, v)| attribute(k, v))
}

/// A thing's attribute count against the limit that its type (or lack of one) sets.
pub fn attribute_count(count: usize, has_type: bool) -> Result<()> {
    let max = if has_type {
        MAX_ATTRIBUTES_TYPED
    } else {
        MAX_ATTRIBUTES_UNTYPED
    };
    if count > max {
        let why = if has_type {
            "a thing with a thing type may have at most 50 attributes".to_string()
        } else {
            "a thing without a thing type may have at most 3 attributes; give it a thing type for up to 50".to_string()
        };
        return Err(RegistryError::invalid(format!(
            "{count} attributes given: {why}"
        )));
    }
    Ok(())
}

/// `maxResults` / `pageSize`: AWS accepts 1–250.
pub fn page_size(value: Option<i64>, default: usize) -> Result<usize> {
    match value {
        None => Ok(default),
        Some(n) if (1..=250).contains(&n) => Ok(n as usize),
        Some(n) => Err(RegistryError::invalid(format!(
            "page size {n} is out of range: it must be between 1 and 250"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thing_names_follow_aws_pattern() {
        assert!(thing_name("iot-webinar-device").is_ok());
        assert!(thing_name("a:b_c-9").is_ok());
        assert!(thing_name("").is_err());
        assert!(thing_name(&"x".repeat(129)).is_err());
        assert!(thing_name(&"x".repeat(128)).is_ok());
        let e = thing_name("bad name").unwrap_err().to_string();
        assert!(e.contains("' '"), "{e}");
        assert!(thing_name("é").is_err());
    }

    #[test]
    fn attributes_follow_aws_pattern() {
        assert!(attribute("Owner", "abcde-12345").is_ok());
        assert!(attribute("Owner", "").is_ok());
        assert!(attribute("", "x").is_err());
        assert!(attribute("Owner", "has space").is_err());
        assert!(attribute("Owner", "a=b[0]").is_ok());
        assert!(attribute("a=b", "x").is_err());
        assert!(attribute("k", &"v".repeat(801)).is_err());
    }

    #[test]
    fn attribute_limits_depend_on_type() {
        assert!(attribute_count(3, false).is_ok());
        assert!(attribute_count(4, false).is_err());
        assert!(attribute_count(50, true).is_ok());
        assert!(attribute_count(51, true).is_err());
    }

    #[test]
    fn certificate_ids_are_normalised() {
        let id = "AB".repeat(32);
        assert_eq!(certificate_id(&id).unwrap(), "ab".repeat(32));
        assert_eq!(certificate_id(&format!("0x{id}")).unwrap(), "ab".repeat(32));
        assert!(certificate_id("abc").is_err());
        assert!(certificate_id(&"g".repeat(64)).is_err());
    }

    #[test]
    fn policy_names() {
        assert!(policy_name("iot-webinar-policy").is_ok());
        assert!(policy_name("a+b=c,d.e@f").is_ok());
        assert!(policy_name("a/b").is_err());
    }
}
