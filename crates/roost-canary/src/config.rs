//! The canary's configuration: a TOML file (`--config`), the scenario's
//! command-line flags on top of it, and the checks `check-config` runs.
//!
//! Every error names the file, the line and the field, so that an operator
//! fixes it without guessing. Nothing here opens a socket or a key file
//! beyond checking that the files named exist.

use crate::services::ServiceKind;
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The whole configuration, after the file and the flags were merged.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub gateway: Gateway,
    #[serde(default)]
    pub reporting: Reporting,
    #[serde(default)]
    pub outbox: Outbox,
    #[serde(default)]
    pub jobs: Jobs,
    /// Where the outbox, the host keys and the status live.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    #[serde(default, rename = "service")]
    pub services: Vec<toml::Spanned<Service>>,
}

/// The MQTT connection to the gateway (Roost or AWS IoT Core).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gateway {
    /// Host name of the gateway (`-e`).
    pub endpoint: Option<String>,
    /// Port (`-p`); 8883 unless set. On 443 the canary asks for MQTT by ALPN
    /// (`x-amzn-mqtt-ca`), as AWS IoT Core expects.
    pub port: Option<u16>,
    /// The CA that signed the gateway's certificate (`-r`).
    pub root_ca: Option<PathBuf>,
    /// The device certificate (`-c`) and its private key (`-k`).
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// MQTT client id (`-id`); the thing name unless set.
    pub client_id: Option<String>,
    /// The thing name (`-n`): `canary` in every incident; the client id
    /// unless set.
    pub thing_name: Option<String>,
    /// The topic incidents go to (`-t`). `{thing}` and `{owner}` are
    /// replaced; `{owner}/{thing}/audit` unless set.
    pub topic: Option<String>,
    /// The thing's `Owner` attribute, for the default topic.
    pub owner: Option<String>,
    /// MQTT keep-alive.
    pub keep_alive_secs: Option<u64>,
    /// The longest wait between two connection attempts.
    pub max_backoff_secs: Option<u64>,
}

/// How attempts become incidents.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reporting {
    /// After a source's first attempt (reported at once), its further
    /// attempts are summarised once per window.
    #[serde(default = "default_window")]
    pub window_secs: u64,
    /// Incidents published per second at most (AWS IoT allows 100 per
    /// connection).
    #[serde(default = "default_rate")]
    pub max_publish_per_sec: u32,
    /// Sources followed one by one; attempts from further sources are
    /// summarised together per service.
    #[serde(default = "default_sources")]
    pub max_sources: usize,
    /// Distinct credentials a summary lists (the rest are counted).
    #[serde(default = "default_credentials")]
    pub max_credentials: usize,
}

impl Default for Reporting {
    fn default() -> Self {
        Self {
            window_secs: default_window(),
            max_publish_per_sec: default_rate(),
            max_sources: default_sources(),
            max_credentials: default_credentials(),
        }
    }
}

/// The on-disk outbox.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outbox {
    /// Bytes of unacknowledged incidents kept; past it the oldest are folded
    /// into one summary.
    #[serde(default = "default_outbox_bytes")]
    pub max_bytes: u64,
}

impl Default for Outbox {
    fn default() -> Self {
        Self {
            max_bytes: default_outbox_bytes(),
        }
    }
}

/// The jobs agent.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Jobs {
    /// Run the thing's jobs (localScan, rotate-cert) on the canary's
    /// connection.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The CA a rotated device certificate must chain to; the gateway's CA
    /// (`gateway.root_ca`) unless set (Roost signs both with its own CA).
    pub device_ca: Option<PathBuf>,
    /// How long the gateway has to accept a new certificate before the
    /// canary goes back to the previous one and fails the rotation.
    #[serde(default = "default_rotation_deadline")]
    pub rotation_deadline_secs: u64,
    /// How long a CSR rotation (the key made on the device) waits for the
    /// operator to sign its CSR and put the certificate up.
    #[serde(default = "default_csr_wait")]
    pub csr_wait_secs: u64,
}

impl Default for Jobs {
    fn default() -> Self {
        Self {
            enabled: true,
            device_ca: None,
            rotation_deadline_secs: default_rotation_deadline(),
            csr_wait_secs: default_csr_wait(),
        }
    }
}

/// One honeypot service.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    #[serde(rename = "type")]
    pub kind: ServiceKind,
    /// The address to listen on; all interfaces unless set.
    #[serde(default = "any_address")]
    pub address: IpAddr,
    /// The port; the service's usual one unless set (`tcp` needs one).
    pub port: Option<u16>,
    /// `http`/`https`: the login page's look: `admin`, `nas` or `router`.
    pub skin: Option<String>,
    /// The text the service introduces itself with (an SSH version, an FTP
    /// greeting, a `tcp` banner, a server version …); each service has a
    /// default that looks like a stock install.
    pub banner: Option<String>,
    /// Connections served at once; more are recorded and closed.
    #[serde(default = "default_connections")]
    pub max_connections: usize,
}

impl Service {
    pub fn new(kind: ServiceKind, listen: Option<SocketAddr>) -> Self {
        Self {
            kind,
            address: listen.map_or(any_address(), |a| a.ip()),
            port: listen.map(|a| a.port()),
            skin: None,
            banner: None,
            max_connections: default_connections(),
        }
    }

    pub fn listen(&self) -> SocketAddr {
        SocketAddr::new(
            self.address,
            self.port.unwrap_or_else(|| self.kind.default_port()),
        )
    }
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("roost-canary-state")
}
fn default_window() -> u64 {
    60
}
fn default_rate() -> u32 {
    50
}
fn default_sources() -> usize {
    10_000
}
fn default_credentials() -> usize {
    50
}
fn default_outbox_bytes() -> u64 {
    64 * 1024 * 1024
}
fn yes() -> bool {
    true
}
fn default_rotation_deadline() -> u64 {
    60
}
fn default_csr_wait() -> u64 {
    900
}
fn default_connections() -> usize {
    256
}
fn any_address() -> IpAddr {
    IpAddr::V4(Ipv4Addr::UNSPECIFIED)
}

/// A configuration error: where, which field, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: Option<usize>,
    pub field: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(
                f,
                "{}:{}: {}: {}",
                self.file, line, self.field, self.message
            ),
            None => write!(f, "{}: {}: {}", self.file, self.field, self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Several errors at once: `check-config` reports them all.
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl Config {
    /// The configuration of a canary run without a file: only flags.
    pub fn empty() -> Self {
        // An empty document has every default.
        toml::from_str("").unwrap_or_else(|_| unreachable!("the empty config parses"))
    }

    /// Parses `text` (read from `file`, for messages).
    pub fn parse(file: &str, text: &str) -> Result<Self, ConfigErrors> {
        let deserializer = toml::Deserializer::parse(text).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: file.to_owned(),
                line: e.span().map(|s| line_of(text, s.start)),
                field: "(syntax)".into(),
                message: first_line(e.message()),
            }])
        })?;
        serde_path_to_error::deserialize::<_, Config>(deserializer).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            ConfigErrors(vec![ConfigError {
                file: file.to_owned(),
                line: inner.span().map(|s| line_of(text, s.start)),
                field: field_name(&path),
                message: first_line(inner.message()),
            }])
        })
    }

    pub fn load(path: &Path) -> Result<Self, ConfigErrors> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: file.clone(),
                line: None,
                field: "(file)".into(),
                message: format!("cannot read the configuration: {e}"),
            }])
        })?;
        Self::parse(&file, &text)
    }

    /// Checks what parsing cannot: ports in use twice, options a service
    /// does not take, files that do not exist, values out of range. With
    /// `text`, errors carry the line of the service they are about.
    pub fn validate(&self, file: &str, text: Option<&str>) -> Result<(), ConfigErrors> {
        let mut errors = Vec::new();
        let mut error = |line: Option<usize>, field: String, message: String| {
            errors.push(ConfigError {
                file: file.to_owned(),
                line,
                field,
                message,
            })
        };
        let mut used: HashMap<SocketAddr, usize> = HashMap::new();
        for (i, spanned) in self.services.iter().enumerate() {
            let service = spanned.get_ref();
            let line = text.map(|t| line_of(t, spanned.span().start));
            let field = |name: &str| format!("service[{i}].{name}");
            if service.kind == ServiceKind::Tcp && service.port.is_none() {
                error(line, field("port"), "a tcp service needs a port".into());
            }
            if let Some(skin) = &service.skin {
                if !service.kind.has_skins() {
                    error(
                        line,
                        field("skin"),
                        format!("{} has no skins (only http and https)", service.kind.name()),
                    );
                } else if !crate::services::SKINS.contains(&skin.as_str()) {
                    error(
                        line,
                        field("skin"),
                        format!(
                            "unknown skin {skin:?}; one of {}",
                            crate::services::SKINS.join(", ")
                        ),
                    );
                }
            }
            if service.max_connections == 0 {
                error(line, field("max_connections"), "must be at least 1".into());
            }
            let listen = service.listen();
            // Port 0 (any free port) never collides.
            if listen.port() == 0 {
                continue;
            }
            if let Some(first) = used.insert(listen, i) {
                error(
                    line,
                    field("port"),
                    format!("{listen} is already used by service[{first}]"),
                );
            }
        }
        let reporting = &self.reporting;
        if reporting.window_secs == 0 {
            error(
                None,
                "reporting.window_secs".into(),
                "must be at least 1".into(),
            );
        }
        if reporting.max_publish_per_sec == 0 || reporting.max_publish_per_sec > 100 {
            error(
                None,
                "reporting.max_publish_per_sec".into(),
                "must be between 1 and 100 (AWS IoT's limit per connection)".into(),
            );
        }
        if reporting.max_sources == 0 {
            error(
                None,
                "reporting.max_sources".into(),
                "must be at least 1".into(),
            );
        }
        if self.outbox.max_bytes < 64 * 1024 {
            error(
                None,
                "outbox.max_bytes".into(),
                "must be at least 65536".into(),
            );
        }
        if !(5..=86_400).contains(&self.jobs.csr_wait_secs) {
            error(
                None,
                "jobs.csr_wait_secs".into(),
                "must be between 5 and 86400".into(),
            );
        }
        if !(5..=3600).contains(&self.jobs.rotation_deadline_secs) {
            error(
                None,
                "jobs.rotation_deadline_secs".into(),
                "must be between 5 and 3600".into(),
            );
        }
        let gateway = &self.gateway;
        for (name, path) in [
            ("gateway.root_ca", &gateway.root_ca),
            ("gateway.cert", &gateway.cert),
            ("gateway.key", &gateway.key),
            ("jobs.device_ca", &self.jobs.device_ca),
        ] {
            if let Some(path) = path {
                if !path.is_file() {
                    error(
                        None,
                        name.into(),
                        format!("{} does not exist", path.display()),
                    );
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// The settings a running agent needs, or what is missing.
    pub fn agent_settings(&self) -> Result<AgentSettings, String> {
        let g = &self.gateway;
        let missing = |flag: &str, field: &str| {
            format!("the gateway's {field} is not set: pass {flag} or set gateway.{field} in the config")
        };
        let endpoint = g
            .endpoint
            .clone()
            .ok_or_else(|| missing("-e/--endpoint", "endpoint"))?;
        let root_ca = g
            .root_ca
            .clone()
            .ok_or_else(|| missing("-r/--rootCA", "root_ca"))?;
        let cert = g.cert.clone().ok_or_else(|| missing("-c/--cert", "cert"))?;
        let key = g.key.clone().ok_or_else(|| missing("-k/--key", "key"))?;
        let thing = g
            .thing_name
            .clone()
            .or_else(|| g.client_id.clone())
            .ok_or_else(|| missing("-n/--thingName or -id/--clientId", "thing_name"))?;
        let client_id = g.client_id.clone().unwrap_or_else(|| thing.clone());
        let topic = match (&g.topic, &g.owner) {
            (Some(topic), owner) => fill_topic(topic, &thing, owner.as_deref())?,
            (None, Some(owner)) => format!("{owner}/{thing}/audit"),
            (None, None) => {
                return Err("no topic: pass -t/--topic, or set gateway.owner (the thing's Owner attribute) for {owner}/{thing}/audit".into())
            }
        };
        Ok(AgentSettings {
            endpoint,
            port: g.port.unwrap_or(8883),
            root_ca,
            cert,
            key,
            client_id,
            thing,
            topic,
            keep_alive: Duration::from_secs(g.keep_alive_secs.unwrap_or(60).clamp(5, 1200)),
            max_backoff: Duration::from_secs(g.max_backoff_secs.unwrap_or(120).max(1)),
        })
    }
}

/// The gateway settings of a running agent, all present.
#[derive(Clone, Debug)]
pub struct AgentSettings {
    pub endpoint: String,
    pub port: u16,
    pub root_ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_id: String,
    pub thing: String,
    pub topic: String,
    pub keep_alive: Duration,
    pub max_backoff: Duration,
}

fn fill_topic(template: &str, thing: &str, owner: Option<&str>) -> Result<String, String> {
    let mut topic = template.replace("{thing}", thing);
    if topic.contains("{owner}") {
        let owner = owner.ok_or("the topic names {owner} but gateway.owner is not set")?;
        topic = topic.replace("{owner}", owner);
    }
    if topic.is_empty() || topic.contains(['#', '+']) {
        return Err(format!("{topic:?} is not a topic one can publish to"));
    }
    Ok(topic)
}

/// `services[2].port` → `service[2].port` (the TOML array's own name).
fn field_name(path: &str) -> String {
    let path = path
        .replace(".$__serde_spanned_private_value", "")
        .replace("services", "service");
    if path.is_empty() || path == "." {
        "(document)".into()
    } else {
        path
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or(message).trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<String> {
        match Config::parse("canary.toml", text) {
            Err(e) => e.0.iter().map(ToString::to_string).collect(),
            Ok(config) => match config.validate("canary.toml", Some(text)) {
                Err(e) => e.0.iter().map(ToString::to_string).collect(),
                Ok(()) => vec![],
            },
        }
    }

    #[test]
    fn a_full_config_parses() {
        let text = r#"
state_dir = "/var/lib/roost-canary"

[gateway]
endpoint = "gateway.example"
thing_name = "canary-1"
owner = "abcde-12345"

[reporting]
window_secs = 30

[[service]]
type = "http"
port = 80
skin = "nas"

[[service]]
type = "ssh"

[[service]]
type = "tcp"
port = 9200
banner = "hello"
"#;
        assert_eq!(errors(text), Vec::<String>::new());
        let config = Config::parse("canary.toml", text).unwrap();
        assert_eq!(config.services.len(), 3);
        assert_eq!(config.services[1].get_ref().listen().port(), 2222);
        assert_eq!(config.reporting.window_secs, 30);
        assert_eq!(config.reporting.max_publish_per_sec, 50);
    }

    #[test]
    fn errors_name_the_file_the_line_and_the_field() {
        let text =
            "[gateway]\nendpoint = \"x\"\n\n[[service]]\ntype = \"http\"\nport = \"eighty\"\n";
        let e = errors(text);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("canary.toml:6: service[0].port: "),
            "{}",
            e[0]
        );

        let e = errors("[[service]]\ntype = \"gopher\"\n");
        assert!(
            e[0].starts_with("canary.toml:2: service[0].type: "),
            "{}",
            e[0]
        );
        assert!(e[0].contains("gopher"), "{}", e[0]);

        let e = errors("[gateway]\nendpont = \"x\"\n");
        assert!(e[0].starts_with("canary.toml:2: gateway"), "{}", e[0]);
        assert!(e[0].contains("endpont"), "{}", e[0]);

        let e = errors("[gateway\n");
        assert!(e[0].starts_with("canary.toml:1: (syntax)"), "{}", e[0]);
    }

    #[test]
    fn what_parsing_cannot_see_is_checked_too() {
        let text = "[[service]]\ntype = \"http\"\n\n[[service]]\ntype = \"tcp\"\nport = 8080\n\n[[service]]\ntype = \"ssh\"\nskin = \"nas\"\n\n[[service]]\ntype = \"tcp\"\n";
        let e = errors(text);
        assert!(
            e.iter()
                .any(|e| e.starts_with("canary.toml:4: service[1].port: ")
                    && e.contains("already used by service[0]")),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|e| e.starts_with("canary.toml:8: service[2].skin: ")),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|e| e.starts_with("canary.toml:12: service[3].port: ")
                    && e.contains("needs a port")),
            "{e:?}"
        );
        let e = errors("[reporting]\nmax_publish_per_sec = 500\n");
        assert!(e[0].contains("reporting.max_publish_per_sec"), "{e:?}");
    }

    proptest::proptest! {
        /// Any text: parsed or refused with an error that points inside the
        /// file, never a panic.
        #[test]
        fn any_text_is_parsed_or_refused_with_a_line_in_the_file(
            text in proptest::string::string_regex("(\\[\\[service\\]\\]\n|type = \"(tcp|http|ssh)\"\n|port = [0-9]{1,6}\n|[a-z_.]{1,12} = [\"a-z0-9\\[\\]{}]{0,8}\n|[ -~]{0,20}\n){0,12}").unwrap()
        ) {
            let lines = text.lines().count().max(1);
            match Config::parse("f.toml", &text) {
                Ok(config) => {
                    if let Err(errors) = config.validate("f.toml", Some(&text)) {
                        for e in errors.0 {
                            proptest::prop_assert!(e.line.is_none_or(|l| l >= 1 && l <= lines), "{e}");
                        }
                    }
                }
                Err(errors) => {
                    for e in errors.0 {
                        proptest::prop_assert!(e.line.is_none_or(|l| l >= 1 && l <= lines + 1), "{e}");
                        proptest::prop_assert!(!e.message.is_empty());
                    }
                }
            }
        }
    }

    #[test]
    fn the_topic_defaults_to_the_scenarios() {
        let mut config = Config::empty();
        config.gateway.endpoint = Some("h".into());
        config.gateway.root_ca = Some("ca".into());
        config.gateway.cert = Some("c".into());
        config.gateway.key = Some("k".into());
        config.gateway.client_id = Some("iot-webinar-device".into());
        assert!(config.agent_settings().unwrap_err().contains("-t/--topic"));
        config.gateway.owner = Some("abcde-12345".into());
        let settings = config.agent_settings().unwrap();
        assert_eq!(settings.topic, "abcde-12345/iot-webinar-device/audit");
        assert_eq!(settings.thing, "iot-webinar-device");
        config.gateway.topic = Some("tenants/{owner}/{thing}/audit".into());
        assert_eq!(
            config.agent_settings().unwrap().topic,
            "tenants/abcde-12345/iot-webinar-device/audit"
        );
        config.gateway.topic = Some("a/#".into());
        assert!(config.agent_settings().is_err());
    }
}
