//! Logging options and per-target levels, as SetV2LoggingOptions and
//! SetV2LoggingLevel set them, and the choice of the level that applies to
//! one client.
//!
//! Precedence (most specific first), as AWS IoT documents it for
//! resource-specific logging: CLIENT_ID, SOURCE_IP, PRINCIPAL_ID, then the
//! client's thing groups (a child group before its parents), then the
//! default level. `disableAllLogs` turns everything off whatever the
//! targets say.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// The longest target name accepted (AWS: 128 characters for a thing
/// group, a client id or a principal).
pub const MAX_TARGET_NAME_LEN: usize = 128;

/// A log level. The order is verbosity: `Disabled < Error < Warn < Info <
/// Debug`; an event is logged when its level is at most the configured one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    Disabled = 0,
    Error = 1,
    Warn = 2,
    Info = 3,
    Debug = 4,
}

impl LogLevel {
    pub const ALL: [LogLevel; 5] = [
        LogLevel::Disabled,
        LogLevel::Error,
        LogLevel::Warn,
        LogLevel::Info,
        LogLevel::Debug,
    ];

    /// AWS's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Disabled => "DISABLED",
            LogLevel::Error => "ERROR",
            LogLevel::Warn => "WARN",
            LogLevel::Info => "INFO",
            LogLevel::Debug => "DEBUG",
        }
    }

    /// Whether an event at `event` is logged when this level is configured.
    pub fn logs(self, event: LogLevel) -> bool {
        event != LogLevel::Disabled && event <= self
    }

    pub(crate) fn from_u8(value: u8) -> LogLevel {
        match value {
            1 => LogLevel::Error,
            2 => LogLevel::Warn,
            3 => LogLevel::Info,
            4 => LogLevel::Debug,
            _ => LogLevel::Disabled,
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LogLevel {
    type Err = ConfigError;

    /// AWS's names exactly (the API is case-sensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LogLevel::ALL
            .into_iter()
            .find(|level| level.as_str() == s)
            .ok_or_else(|| ConfigError::UnknownLevel(s.to_owned()))
    }
}

/// What a per-target level applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TargetType {
    Default,
    ThingGroup,
    ClientId,
    SourceIp,
    PrincipalId,
}

impl TargetType {
    pub const ALL: [TargetType; 5] = [
        TargetType::Default,
        TargetType::ThingGroup,
        TargetType::ClientId,
        TargetType::SourceIp,
        TargetType::PrincipalId,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TargetType::Default => "DEFAULT",
            TargetType::ThingGroup => "THING_GROUP",
            TargetType::ClientId => "CLIENT_ID",
            TargetType::SourceIp => "SOURCE_IP",
            TargetType::PrincipalId => "PRINCIPAL_ID",
        }
    }
}

impl fmt::Display for TargetType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TargetType {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TargetType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| ConfigError::UnknownTargetType(s.to_owned()))
    }
}

/// A log target with a name: a thing group, a client id, a source IP or a
/// principal (a certificate id).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogTarget {
    pub target_type: TargetType,
    pub target_name: String,
}

impl LogTarget {
    /// Checks a target as SetV2LoggingLevel and DeleteV2LoggingLevel get
    /// it. `DEFAULT` is not a target here: its level is the logging
    /// options' default level.
    pub fn new(target_type: TargetType, target_name: Option<&str>) -> Result<Self, ConfigError> {
        let name = match (target_type, target_name) {
            (TargetType::Default, _) => return Err(ConfigError::DefaultTarget),
            (_, None) => return Err(ConfigError::MissingTargetName(target_type)),
            (_, Some(name)) => name,
        };
        if name.is_empty() || name.chars().count() > MAX_TARGET_NAME_LEN {
            return Err(ConfigError::TargetNameLength(target_type));
        }
        let valid = match target_type {
            TargetType::SourceIp => name.parse::<IpAddr>().is_ok(),
            TargetType::ThingGroup => name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-')),
            _ => !name.chars().any(char::is_control),
        };
        if !valid {
            return Err(ConfigError::InvalidTargetName(target_type, name.to_owned()));
        }
        // A source IP is kept in its canonical spelling so that a lookup
        // by the peer's address finds it.
        let target_name = match target_type {
            TargetType::SourceIp => name
                .parse::<IpAddr>()
                .map(|ip| ip.to_string())
                .unwrap_or_default(),
            _ => name.to_owned(),
        };
        Ok(LogTarget {
            target_type,
            target_name,
        })
    }
}

/// Bad input to the logging API; each becomes InvalidRequestException.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid log level {0:?}: expected one of DEBUG, INFO, ERROR, WARN, DISABLED")]
    UnknownLevel(String),
    #[error("invalid target type {0:?}: expected one of DEFAULT, THING_GROUP, CLIENT_ID, SOURCE_IP, PRINCIPAL_ID")]
    UnknownTargetType(String),
    #[error("the DEFAULT target's level is the defaultLogLevel of SetV2LoggingOptions")]
    DefaultTarget,
    #[error("targetName is required for target type {0}")]
    MissingTargetName(TargetType),
    #[error("targetName for target type {0} must be 1 to 128 characters")]
    TargetNameLength(TargetType),
    #[error("invalid targetName {1:?} for target type {0}")]
    InvalidTargetName(TargetType, String),
}

/// What SetV2LoggingOptions sets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggingOptions {
    /// Kept only to be given back by GetV2LoggingOptions: Roost writes its
    /// logs itself and assumes no role.
    pub role_arn: Option<String>,
    pub default_log_level: LogLevel,
    pub disable_all_logs: bool,
}

impl Default for LoggingOptions {
    /// What a fresh Roost logs: errors only, so a refusal is always
    /// explained and a busy gateway writes nothing per message.
    fn default() -> Self {
        LoggingOptions {
            role_arn: None,
            default_log_level: LogLevel::Error,
            disable_all_logs: false,
        }
    }
}

/// Who an event is about, as far as the level choice needs it.
#[derive(Clone, Debug, Default)]
pub struct Subject<'a> {
    pub client_id: Option<&'a str>,
    pub source_ip: Option<IpAddr>,
    pub principal_id: Option<&'a str>,
    /// The client's thing groups, most specific first (a group before its
    /// parents).
    pub thing_groups: &'a [String],
}

/// The options and the per-target levels together: everything the level
/// choice reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoggingConfig {
    pub options: LoggingOptions,
    /// Per type, per name: a lookup by a borrowed name allocates nothing.
    levels: BTreeMap<TargetType, BTreeMap<String, LogLevel>>,
}

impl LoggingConfig {
    pub fn new(options: LoggingOptions) -> Self {
        LoggingConfig {
            options,
            levels: BTreeMap::new(),
        }
    }

    pub fn set_level(&mut self, target: LogTarget, level: LogLevel) {
        self.levels
            .entry(target.target_type)
            .or_default()
            .insert(target.target_name, level);
    }

    /// Whether there was a level for `target`.
    pub fn delete_level(&mut self, target: &LogTarget) -> bool {
        let Some(names) = self.levels.get_mut(&target.target_type) else {
            return false;
        };
        let removed = names.remove(&target.target_name).is_some();
        if names.is_empty() {
            self.levels.remove(&target.target_type);
        }
        removed
    }

    /// The per-target levels in a stable order (type, then name).
    pub fn levels(&self) -> impl Iterator<Item = (LogTarget, LogLevel)> + '_ {
        self.levels.iter().flat_map(|(target_type, names)| {
            names.iter().map(|(name, level)| {
                (
                    LogTarget {
                        target_type: *target_type,
                        target_name: name.clone(),
                    },
                    *level,
                )
            })
        })
    }

    /// Whether any target of this type has a level.
    pub fn has_targets(&self, target_type: TargetType) -> bool {
        self.levels.contains_key(&target_type)
    }

    fn level_of(&self, target_type: TargetType, name: &str) -> Option<LogLevel> {
        self.levels.get(&target_type)?.get(name).copied()
    }

    /// The level that applies to `subject`: the most specific target that
    /// names it, else the default; DISABLED when all logs are disabled.
    pub fn level_for(&self, subject: &Subject<'_>) -> LogLevel {
        if self.options.disable_all_logs {
            return LogLevel::Disabled;
        }
        let specific = subject
            .client_id
            .and_then(|id| self.level_of(TargetType::ClientId, id))
            .or_else(|| {
                subject
                    .source_ip
                    .and_then(|ip| self.level_of(TargetType::SourceIp, &ip.to_string()))
            })
            .or_else(|| {
                subject
                    .principal_id
                    .and_then(|p| self.level_of(TargetType::PrincipalId, p))
            })
            .or_else(|| {
                subject
                    .thing_groups
                    .iter()
                    .find_map(|g| self.level_of(TargetType::ThingGroup, g))
            });
        specific.unwrap_or(self.options.default_log_level)
    }

    /// The most verbose level any client can have: when it is DISABLED,
    /// nothing needs to be built at all.
    pub fn most_verbose(&self) -> LogLevel {
        if self.options.disable_all_logs {
            return LogLevel::Disabled;
        }
        self.levels
            .values()
            .flat_map(|names| names.values().copied())
            .chain([self.options.default_log_level])
            .max()
            .unwrap_or(LogLevel::Disabled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(t: TargetType, name: &str) -> LogTarget {
        LogTarget::new(t, Some(name)).unwrap()
    }

    #[test]
    fn levels_order_by_verbosity() {
        assert!(LogLevel::Debug.logs(LogLevel::Info));
        assert!(LogLevel::Info.logs(LogLevel::Error));
        assert!(!LogLevel::Error.logs(LogLevel::Info));
        assert!(!LogLevel::Disabled.logs(LogLevel::Error));
        assert!(!LogLevel::Debug.logs(LogLevel::Disabled));
    }

    #[test]
    fn the_most_specific_target_wins() {
        let mut config = LoggingConfig::new(LoggingOptions {
            default_log_level: LogLevel::Error,
            ..Default::default()
        });
        let groups = vec!["child".to_owned(), "parent".to_owned()];
        let subject = Subject {
            client_id: Some("sensor-1"),
            source_ip: Some("10.0.0.7".parse().unwrap()),
            principal_id: Some("abc"),
            thing_groups: &groups,
        };
        assert_eq!(config.level_for(&subject), LogLevel::Error);
        config.set_level(target(TargetType::ThingGroup, "parent"), LogLevel::Warn);
        assert_eq!(config.level_for(&subject), LogLevel::Warn);
        config.set_level(target(TargetType::ThingGroup, "child"), LogLevel::Disabled);
        assert_eq!(config.level_for(&subject), LogLevel::Disabled);
        config.set_level(target(TargetType::PrincipalId, "abc"), LogLevel::Info);
        assert_eq!(config.level_for(&subject), LogLevel::Info);
        config.set_level(target(TargetType::SourceIp, "10.0.0.7"), LogLevel::Error);
        assert_eq!(config.level_for(&subject), LogLevel::Error);
        config.set_level(target(TargetType::ClientId, "sensor-1"), LogLevel::Debug);
        assert_eq!(config.level_for(&subject), LogLevel::Debug);
        // Another client only gets what names it.
        let other = Subject {
            client_id: Some("sensor-2"),
            ..Default::default()
        };
        assert_eq!(config.level_for(&other), LogLevel::Error);
        assert_eq!(config.most_verbose(), LogLevel::Debug);

        config.options.disable_all_logs = true;
        assert_eq!(config.level_for(&subject), LogLevel::Disabled);
        assert_eq!(config.most_verbose(), LogLevel::Disabled);
    }

    #[test]
    fn deleting_a_level_falls_back() {
        let mut config = LoggingConfig::default();
        let t = target(TargetType::ClientId, "c");
        config.set_level(t.clone(), LogLevel::Debug);
        assert!(config.delete_level(&t));
        assert!(!config.delete_level(&t));
        let subject = Subject {
            client_id: Some("c"),
            ..Default::default()
        };
        assert_eq!(config.level_for(&subject), LogLevel::Error);
    }

    #[test]
    fn bad_targets_are_refused() {
        assert_eq!(
            LogTarget::new(TargetType::Default, None),
            Err(ConfigError::DefaultTarget)
        );
        assert_eq!(
            LogTarget::new(TargetType::ClientId, None),
            Err(ConfigError::MissingTargetName(TargetType::ClientId))
        );
        assert!(LogTarget::new(TargetType::SourceIp, Some("not-an-ip")).is_err());
        assert!(LogTarget::new(TargetType::ThingGroup, Some("a b")).is_err());
        assert!(LogTarget::new(TargetType::ClientId, Some(&"x".repeat(129))).is_err());
        assert!(LogTarget::new(TargetType::ClientId, Some("")).is_err());
        // IPv6 is stored canonically, so the peer's address finds it.
        assert_eq!(
            target(TargetType::SourceIp, "0:0:0:0:0:0:0:1").target_name,
            "::1"
        );
        assert!("debug".parse::<LogLevel>().is_err());
        assert!("CLIENTID".parse::<TargetType>().is_err());
    }
}
