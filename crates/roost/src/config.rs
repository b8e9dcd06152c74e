//! Configuration: command-line flags over an optional TOML file over defaults.

use anyhow::{Context, Result};
use roost_registry::store::postgres::PostgresUrl;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug, Default)]
pub struct ServeArgs {
    /// Data directory: SQLite file, CA, credentials, endpoints.json
    /// [default: ./roost-data].
    #[arg(long, env = "ROOST_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Keep the registry (things, groups, certificates, policies, rules,
    /// SNS topics, jobs, logging settings) in this PostgreSQL database
    /// instead of the data directory's SQLite file:
    /// postgres://user:password@host:port/database. Prefer the environment
    /// variable, which keeps the password off the command line.
    #[arg(long, env = "ROOST_POSTGRES_URL", hide_env_values = true)]
    pub postgres_url: Option<String>,
    /// TOML configuration file; flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Control-plane (AWS IoT REST API) listen address; port 0 picks a free
    /// port [default: 127.0.0.1:9080, loopback only].
    #[arg(long)]
    pub api_listen: Option<SocketAddr>,
    /// MQTT over mutual TLS listen address; port 0 picks a free port
    /// [default: 0.0.0.0:8883, every interface].
    #[arg(long)]
    pub mqtt_listen: Option<SocketAddr>,
    /// HTTPS data-plane listen address (device publish with a client
    /// certificate, as AWS IoT's port 8443); port 0 picks a free port
    /// [default: 0.0.0.0:8443, every interface].
    #[arg(long)]
    pub https_listen: Option<SocketAddr>,
    /// Plain-TCP MQTT listen address, for development and conformance
    /// testing (off by default). Its connections act under
    /// --mqtt-plain-principal. Loopback only unless --mqtt-plain-allow-remote.
    #[arg(long)]
    pub mqtt_plain_listen: Option<SocketAddr>,
    /// The certificate id whose policies (and thing) plain-TCP connections use.
    #[arg(long)]
    pub mqtt_plain_principal: Option<String>,
    /// Let the plain-TCP listener bind a non-loopback address.
    #[arg(long)]
    pub mqtt_plain_allow_remote: bool,
    /// A load balancer's network or address (10.0.0.0/8, fd00::/8,
    /// 192.0.2.7) whose connections to the device ports (MQTT, HTTPS) must
    /// start with a PROXY protocol header (HAProxy's send-proxy-v2, or
    /// v1): their devices are seen at the address the header gives.
    /// Repeat, or separate with commas. Connections from anywhere else are
    /// served as direct. Off by default (docs/proxy-protocol.md).
    #[arg(
        long = "proxy-protocol-from",
        env = "ROOST_PROXY_PROTOCOL_FROM",
        value_delimiter = ',',
        value_parser = roost_listener::proxy::parse_network
    )]
    pub proxy_protocol_from: Vec<roost_listener::proxy::IpNet>,
    /// MQTT feature set: "aws" (AWS IoT Core's, the default) or "full"
    /// (adds QoS 2 and MQTT's own matching and limits).
    #[arg(long)]
    pub mqtt_profile: Option<roost_broker::Profile>,
    /// Most live MQTT connections plus TLS handshakes in progress.
    #[arg(long)]
    pub mqtt_max_connections: Option<usize>,
    /// Seconds a TLS handshake may take before the connection is cut.
    #[arg(long)]
    pub mqtt_handshake_timeout_secs: Option<u64>,
    /// Seconds a client may take to send CONNECT once connected.
    #[arg(long)]
    pub mqtt_connect_timeout_secs: Option<u64>,
    /// Most connections the control plane (API port) serves at once; more
    /// are closed at once and counted. Lowered to the API's share of the
    /// process's open-files limit (docs/gateway.md, "Bounds").
    #[arg(long)]
    pub api_max_connections: Option<usize>,
    /// Most device HTTPS connections served at once (likewise lowered).
    #[arg(long)]
    pub https_max_connections: Option<usize>,
    /// Seconds an HTTP client (API and device HTTPS) may take to send a
    /// request's headers, or stay idle between requests.
    #[arg(long)]
    pub http_header_timeout_secs: Option<u64>,
    /// Seconds an HTTP client may take to send a request's body.
    #[arg(long)]
    pub http_body_timeout_secs: Option<u64>,
    /// Messages queued for one session: an offline session keeps at most
    /// this many; past it, a connected one's publishers are slowed.
    /// Default 1000.
    #[arg(long)]
    pub mqtt_max_queued_messages: Option<usize>,
    /// Seconds a connected subscriber may keep a publisher waiting for room
    /// in its queue before it is disconnected as a slow consumer (its
    /// persistent session keeps what was queued). Default 30.
    #[arg(long)]
    pub slow_consumer_timeout_secs: Option<u64>,
    /// The longest keep alive a client gets, in seconds (1–65535): an MQTT 5
    /// client asking for more (or, in the full profile, for none) is told
    /// this one (Server Keep Alive). Default: 1200 (aws), 65535 (full).
    #[arg(long)]
    pub mqtt_max_keep_alive_secs: Option<u16>,
    /// Seconds a device's clock may be off when its certificate's validity
    /// is checked (default 300).
    #[arg(long)]
    pub certificate_clock_skew_secs: Option<u64>,
    /// S3-compatible endpoint for the `s3` rule action (e.g.
    /// http://127.0.0.1:9000 for MinIO); without it objects go to
    /// <data-dir>/objects/<bucket>/<key>.
    #[arg(long, env = "ROOST_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    #[arg(long, env = "ROOST_S3_REGION")]
    pub s3_region: Option<String>,
    #[arg(long, env = "ROOST_S3_ACCESS_KEY_ID")]
    pub s3_access_key_id: Option<String>,
    /// Prefer the environment variable: a flag is visible to other users in `ps`.
    #[arg(long, env = "ROOST_S3_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub s3_secret_access_key: Option<String>,
    /// SMTP server for SNS email subscriptions and the `sns` rule action:
    /// smtp://[user:pass@]host:port[?tls=none|starttls|tls] (default
    /// starttls). Prefer the environment variable when it holds a password.
    #[arg(long, env = "ROOST_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// Sender address of SNS mails [default: roost@localhost].
    #[arg(long, env = "ROOST_SMTP_FROM")]
    pub smtp_from: Option<String>,
    /// PEM file of CA certificates to trust, besides the system's, for
    /// SNS https subscribers (receivers behind a private CA).
    #[arg(long, env = "ROOST_SNS_CA_FILE")]
    pub sns_ca_file: Option<PathBuf>,
    /// A NATS server of the cluster this node joins (nats://host:4222;
    /// repeat, or separate with commas, for several servers of one NATS
    /// cluster). Without it this node runs alone (docs/cluster.md).
    #[arg(
        long = "nats-url",
        env = "ROOST_NATS_URLS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub nats_urls: Vec<String>,
    /// This node's name in the cluster [default: the host name].
    #[arg(long, env = "ROOST_NODE_ID")]
    pub node_id: Option<String>,
    /// The cluster's NATS subjects start with this [default: roost].
    #[arg(long)]
    pub nats_subject_prefix: Option<String>,
    /// Replicas of the JetStream stream and session bucket, when Roost
    /// creates them [default: 3 when the NATS server is clustered, else 1].
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=5))]
    pub jetstream_replicas: Option<u8>,
    /// How hard each commit of gateway state (persistent sessions, their
    /// queued QoS 1 messages, retained messages) is pushed to disk: "normal"
    /// (the default) survives Roost being killed, not a power loss; "full"
    /// fsyncs every commit and survives a power loss too.
    #[arg(long)]
    pub state_sync: Option<roost_broker::StateSync>,
    /// Obsolete: gateway state is now saved as it changes, not in
    /// snapshots. Accepted and ignored, with a warning.
    #[arg(long, hide = true)]
    pub state_save_interval_secs: Option<u64>,
    /// Region used in ARNs and signatures [default: us-east-1].
    #[arg(long)]
    pub region: Option<String>,
    /// Account id used in ARNs, 12 digits [default: 000000000000].
    #[arg(long)]
    pub account: Option<String>,
    /// Host name devices connect to, returned by DescribeEndpoint and put in
    /// the server certificate (repeat for several; the first is the endpoint).
    #[arg(long = "host")]
    pub hosts: Vec<String>,
    /// Seconds a thing type must stay deprecated before it can be deleted
    /// [default: 300, as AWS].
    #[arg(long)]
    pub thing_type_deletion_wait_secs: Option<u64>,
    /// The event log's default level (DEBUG, INFO, WARN, ERROR, DISABLED)
    /// until SetV2LoggingOptions sets one. Default ERROR.
    #[arg(long)]
    pub event_log_level: Option<String>,
    /// The event log file's size before it is rotated. Default 10 MiB.
    #[arg(long)]
    pub event_log_max_file_bytes: Option<u64>,
    /// Event log files kept, the one being written included. Default 5.
    #[arg(long)]
    pub event_log_max_files: Option<usize>,
    /// Seconds connections get to say goodbye on SIGTERM or Ctrl-C (MQTT 5
    /// DISCONNECT: "server shutting down", or on a cluster node "use another
    /// server") before the last state is committed. Default 5.
    #[arg(long)]
    pub shutdown_grace_secs: Option<u64>,
    /// With --postgres-url: seconds this node may go without confirming it
    /// has every registry change the other nodes made (a version poll every
    /// second) before /readyz fails and new connections are refused with
    /// "server unavailable". Default 5.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub registry_freshness_secs: Option<u64>,
}

/// The file's keys, all optional.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    postgres_url: Option<String>,
    api_listen: Option<SocketAddr>,
    mqtt_listen: Option<SocketAddr>,
    https_listen: Option<SocketAddr>,
    mqtt_plain_listen: Option<SocketAddr>,
    mqtt_plain_principal: Option<String>,
    mqtt_plain_allow_remote: Option<bool>,
    mqtt_profile: Option<String>,
    state_sync: Option<String>,
    /// Obsolete (see ServeArgs); accepted so old files still load.
    state_save_interval_secs: Option<u64>,
    mqtt_max_connections: Option<usize>,
    s3_endpoint: Option<String>,
    s3_region: Option<String>,
    s3_access_key_id: Option<String>,
    s3_secret_access_key: Option<String>,
    smtp_url: Option<String>,
    smtp_from: Option<String>,
    sns_ca_file: Option<PathBuf>,
    nats_urls: Option<Vec<String>>,
    proxy_protocol_from: Option<Vec<String>>,
    node_id: Option<String>,
    nats_subject_prefix: Option<String>,
    jetstream_replicas: Option<u8>,
    mqtt_handshake_timeout_secs: Option<u64>,
    mqtt_connect_timeout_secs: Option<u64>,
    api_max_connections: Option<usize>,
    https_max_connections: Option<usize>,
    http_header_timeout_secs: Option<u64>,
    http_body_timeout_secs: Option<u64>,
    certificate_clock_skew_secs: Option<u64>,
    slow_consumer_timeout_secs: Option<u64>,
    mqtt_max_queued_messages: Option<usize>,
    mqtt_max_keep_alive_secs: Option<u16>,
    region: Option<String>,
    account: Option<String>,
    hosts: Option<Vec<String>>,
    thing_type_deletion_wait_secs: Option<u64>,
    event_log_level: Option<String>,
    event_log_max_file_bytes: Option<u64>,
    event_log_max_files: Option<usize>,
    shutdown_grace_secs: Option<u64>,
    registry_freshness_secs: Option<u64>,
}

/// The resolved configuration `serve` runs with.
#[derive(Debug)]
pub struct Config {
    pub data_dir: PathBuf,
    /// The registry's PostgreSQL database; SQLite in the data directory
    /// when `None`. (Its Debug form hides the password.)
    pub postgres_url: Option<PostgresUrl>,
    pub api_listen: SocketAddr,
    pub mqtt_listen: SocketAddr,
    pub https_listen: SocketAddr,
    /// The plain listener and the certificate id its connections act under.
    pub mqtt_plain: Option<(SocketAddr, String)>,
    pub mqtt_profile: roost_broker::Profile,
    pub state_sync: roost_broker::StateSync,
    pub broker: roost_broker::BrokerConfig,
    /// The API port's bounds; its cap before the descriptor budget.
    pub api_limits: roost_api::HttpLimits,
    /// The device HTTPS cap before the descriptor budget.
    pub https_max_connections: usize,
    pub object_store: roost_rules::ObjectStoreConfig,
    /// Parsed SMTP URL (its Debug form hides the password).
    pub smtp: Option<roost_notify::mail::SmtpConfig>,
    pub smtp_from: String,
    /// Extra CA certificates (PEM) for https subscribers, read at start.
    pub sns_ca_pem: Option<Vec<u8>>,
    /// The cluster this node joins through NATS; `None` runs it alone.
    pub cluster: Option<roost_nats::NatsConfig>,
    pub region: String,
    pub account: String,
    pub hosts: Vec<String>,
    pub thing_type_deletion_wait_secs: u64,
    /// The event log's options until SetV2LoggingOptions stores its own.
    pub event_log: roost_eventlog::LoggingOptions,
    pub event_log_rotation: crate::logs::files::Rotation,
    /// How long connections get to close on shutdown.
    pub shutdown_grace: std::time::Duration,
    /// On a shared registry, how long this node may go without confirming
    /// it is current before it is not ready.
    pub registry_freshness: std::time::Duration,
}

/// The machine's host name, the default node id; `roost` if it has none.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "roost".into())
}

/// The account Roost plays when none is configured: `serve`'s ARNs and
/// `sql eval`'s `accountid()`.
pub const DEFAULT_ACCOUNT: &str = "000000000000";

/// An AWS account id: exactly 12 digits.
pub fn is_account_id(account: &str) -> bool {
    account.len() == 12 && account.chars().all(|c| c.is_ascii_digit())
}

/// How long a node on a shared registry may go unconfirmed (seconds).
pub const DEFAULT_REGISTRY_FRESHNESS_SECS: u64 = 5;

pub const DEFAULT_SMTP_FROM: &str = "roost@localhost";
pub const DEFAULT_DATA_DIR: &str = "./roost-data";
pub const DEFAULT_API_LISTEN: &str = "127.0.0.1:9080";
pub const DEFAULT_MQTT_LISTEN: &str = "0.0.0.0:8883";
pub const DEFAULT_HTTPS_LISTEN: &str = "0.0.0.0:8443";
pub const DEFAULT_HTTPS_MAX_CONNECTIONS: usize = 1024;
pub const DEFAULT_SHUTDOWN_GRACE_SECS: u64 = 5;

impl Config {
    pub fn resolve(args: ServeArgs) -> Result<Self> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let region = args
            .region
            .or(file.region)
            .unwrap_or_else(|| "us-east-1".into());
        let account = args
            .account
            .or(file.account)
            .unwrap_or_else(|| DEFAULT_ACCOUNT.into());
        if !is_account_id(&account) {
            anyhow::bail!("account '{account}' must be 12 digits");
        }
        if region.is_empty()
            || !region
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            anyhow::bail!("region '{region}' is not a valid region name (e.g. us-east-1)");
        }
        let mut hosts = if args.hosts.is_empty() {
            file.hosts.unwrap_or_default()
        } else {
            args.hosts
        };
        for default in ["localhost", "127.0.0.1", "::1"] {
            if !hosts.iter().any(|h| h == default) {
                hosts.push(default.to_string());
            }
        }
        let mqtt_profile = match (args.mqtt_profile, file.mqtt_profile) {
            (Some(p), _) => p,
            (None, Some(p)) => p.parse().map_err(anyhow::Error::msg)?,
            (None, None) => roost_broker::Profile::Aws,
        };
        let plain_listen = args.mqtt_plain_listen.or(file.mqtt_plain_listen);
        let plain_principal = args.mqtt_plain_principal.or(file.mqtt_plain_principal);
        let allow_remote =
            args.mqtt_plain_allow_remote || file.mqtt_plain_allow_remote.unwrap_or(false);
        let mqtt_plain = match (plain_listen, plain_principal) {
            (None, None) => None,
            (Some(_), None) => anyhow::bail!(
                "mqtt_plain_listen needs mqtt_plain_principal: the certificate id whose policies plain-TCP connections act under"
            ),
            (None, Some(_)) => anyhow::bail!("mqtt_plain_principal is set but mqtt_plain_listen is not"),
            (Some(addr), Some(_)) if !addr.ip().is_loopback() && !allow_remote => anyhow::bail!(
                "refusing to serve plain (unencrypted) MQTT on {addr}: use a loopback address, or pass --mqtt-plain-allow-remote"
            ),
            (Some(addr), Some(principal)) => Some((addr, principal)),
        };
        let state_sync = match (args.state_sync, file.state_sync) {
            (Some(s), _) => s,
            (None, Some(s)) => s.parse().map_err(anyhow::Error::msg)?,
            (None, None) => roost_broker::StateSync::Normal,
        };
        if args
            .state_save_interval_secs
            .or(file.state_save_interval_secs)
            .is_some()
        {
            tracing::warn!("state_save_interval_secs is obsolete and ignored: gateway state is saved as it changes (see --state-sync)");
        }
        let mut broker = roost_broker::BrokerConfig::new(mqtt_profile);
        if let Some(n) = args.mqtt_max_connections.or(file.mqtt_max_connections) {
            broker.limits.max_connections = n;
        }
        if let Some(s) = args
            .mqtt_handshake_timeout_secs
            .or(file.mqtt_handshake_timeout_secs)
        {
            broker.limits.handshake_timeout = std::time::Duration::from_secs(s.max(1));
        }
        if let Some(s) = args
            .mqtt_connect_timeout_secs
            .or(file.mqtt_connect_timeout_secs)
        {
            broker.limits.connect_timeout = std::time::Duration::from_secs(s.max(1));
        }
        broker.proxy_protocol_from = if args.proxy_protocol_from.is_empty() {
            let nets = file.proxy_protocol_from.clone().unwrap_or_default();
            nets.iter()
                .map(|n| roost_listener::proxy::parse_network(n))
                .collect::<Result<_, _>>()
                .map_err(anyhow::Error::msg)
                .context("proxy_protocol_from")?
        } else {
            args.proxy_protocol_from.clone()
        };
        let mut api_limits = roost_api::HttpLimits::default();
        if let Some(n) = args.api_max_connections.or(file.api_max_connections) {
            api_limits.max_connections = n.max(1);
        }
        if let Some(s) = args
            .http_header_timeout_secs
            .or(file.http_header_timeout_secs)
        {
            api_limits.header_timeout = std::time::Duration::from_secs(s.max(1));
        }
        if let Some(s) = args.http_body_timeout_secs.or(file.http_body_timeout_secs) {
            api_limits.body_timeout = std::time::Duration::from_secs(s.max(1));
        }
        broker.limits.https_header_timeout = api_limits.header_timeout;
        broker.limits.https_body_timeout = api_limits.body_timeout;
        if let Some(s) = args
            .certificate_clock_skew_secs
            .or(file.certificate_clock_skew_secs)
        {
            broker.limits.certificate_clock_skew = std::time::Duration::from_secs(s);
        }
        if let Some(s) = args
            .slow_consumer_timeout_secs
            .or(file.slow_consumer_timeout_secs)
        {
            broker.limits.slow_consumer_timeout = std::time::Duration::from_secs(s.max(1));
        }
        if let Some(n) = args
            .mqtt_max_queued_messages
            .or(file.mqtt_max_queued_messages)
        {
            broker.limits.max_queued_messages = n.max(1);
        }
        if let Some(secs) = args
            .mqtt_max_keep_alive_secs
            .or(file.mqtt_max_keep_alive_secs)
        {
            if secs == 0 {
                anyhow::bail!("mqtt_max_keep_alive_secs must be 1 to 65535 seconds");
            }
            broker.limits.max_keep_alive = secs;
            broker.limits.min_keep_alive = broker.limits.min_keep_alive.min(secs);
        }
        let https_max_connections = args
            .https_max_connections
            .or(file.https_max_connections)
            .unwrap_or(DEFAULT_HTTPS_MAX_CONNECTIONS)
            .max(1);
        let object_store = match args.s3_endpoint.or(file.s3_endpoint) {
            None => roost_rules::ObjectStoreConfig::Local,
            Some(endpoint) => {
                if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                    anyhow::bail!("s3_endpoint '{endpoint}' must be an http:// or https:// URL");
                }
                let key = args.s3_access_key_id.or(file.s3_access_key_id);
                let secret = args.s3_secret_access_key.or(file.s3_secret_access_key);
                let (Some(access_key_id), Some(secret_access_key)) = (key, secret) else {
                    anyhow::bail!("s3_endpoint needs s3_access_key_id and s3_secret_access_key (or ROOST_S3_ACCESS_KEY_ID / ROOST_S3_SECRET_ACCESS_KEY)");
                };
                roost_rules::ObjectStoreConfig::S3 {
                    endpoint,
                    region: args
                        .s3_region
                        .or(file.s3_region)
                        .unwrap_or_else(|| "us-east-1".into()),
                    access_key_id,
                    secret_access_key,
                }
            }
        };
        let postgres_url = match args.postgres_url.or(file.postgres_url) {
            None => None,
            Some(url) => {
                Some(PostgresUrl::parse(&url).map_err(|e| anyhow::anyhow!("postgres_url: {e}"))?)
            }
        };
        let smtp = match args.smtp_url.or(file.smtp_url) {
            None => None,
            Some(url) => Some(
                roost_notify::mail::SmtpConfig::parse(&url)
                    .map_err(|e| anyhow::anyhow!("smtp_url: {e}"))?,
            ),
        };
        let smtp_from = args
            .smtp_from
            .or(file.smtp_from)
            .unwrap_or_else(|| DEFAULT_SMTP_FROM.into());
        if smtp_from.parse::<roost_notify::mail::Address>().is_err() {
            anyhow::bail!("smtp_from '{smtp_from}' is not a valid email address");
        }
        let sns_ca_pem = match args.sns_ca_file.or(file.sns_ca_file) {
            None => None,
            Some(path) => Some(
                std::fs::read(&path)
                    .with_context(|| format!("reading sns_ca_file {}", path.display()))?,
            ),
        };
        let nats_urls = if args.nats_urls.is_empty() {
            file.nats_urls.unwrap_or_default()
        } else {
            args.nats_urls
        };
        let cluster = if nats_urls.is_empty() {
            None
        } else {
            for url in &nats_urls {
                roost_nats::check_url(url).map_err(|e| anyhow::anyhow!("nats_url: {e}"))?;
            }
            let subject_prefix = args
                .nats_subject_prefix
                .or(file.nats_subject_prefix)
                .unwrap_or_else(|| roost_nats::NatsConfig::DEFAULT_PREFIX.into());
            roost_cluster::SubjectSpace::new(&subject_prefix)
                .map_err(|e| anyhow::anyhow!("nats_subject_prefix '{subject_prefix}': {e}"))?;
            let node_id = args.node_id.or(file.node_id).unwrap_or_else(host_name);
            if node_id.is_empty() || node_id.chars().any(|c| c.is_whitespace() || c.is_control()) {
                anyhow::bail!("node_id '{node_id}' must be a non-empty name without spaces");
            }
            Some(roost_nats::NatsConfig {
                urls: nats_urls,
                node_id,
                subject_prefix,
                queue_capacity: roost_nats::NatsConfig::DEFAULT_QUEUE_CAPACITY,
                store: roost_nats::StoreConfig {
                    replicas: args
                        .jetstream_replicas
                        .or(file.jetstream_replicas)
                        .map(usize::from),
                    ..Default::default()
                },
            })
        };
        let event_log = roost_eventlog::LoggingOptions {
            default_log_level: match args.event_log_level.or(file.event_log_level) {
                Some(level) => level
                    .parse()
                    .map_err(|e| anyhow::anyhow!("event_log_level: {e}"))?,
                None => roost_eventlog::LoggingOptions::default().default_log_level,
            },
            ..Default::default()
        };
        let mut event_log_rotation = crate::logs::files::Rotation::default();
        if let Some(bytes) = args
            .event_log_max_file_bytes
            .or(file.event_log_max_file_bytes)
        {
            if bytes < 4096 {
                anyhow::bail!("event_log_max_file_bytes must be at least 4096");
            }
            event_log_rotation.max_file_bytes = bytes;
        }
        if let Some(files) = args.event_log_max_files.or(file.event_log_max_files) {
            if files == 0 {
                anyhow::bail!("event_log_max_files must be at least 1");
            }
            event_log_rotation.max_files = files;
        }
        Ok(Self {
            postgres_url,
            event_log,
            event_log_rotation,
            shutdown_grace: std::time::Duration::from_secs(
                args.shutdown_grace_secs
                    .or(file.shutdown_grace_secs)
                    .unwrap_or(DEFAULT_SHUTDOWN_GRACE_SECS),
            ),
            registry_freshness: std::time::Duration::from_secs(
                match args
                    .registry_freshness_secs
                    .or(file.registry_freshness_secs)
                {
                    Some(0) => anyhow::bail!("registry_freshness_secs must be at least 1"),
                    Some(secs) => secs,
                    None => DEFAULT_REGISTRY_FRESHNESS_SECS,
                },
            ),
            api_limits,
            https_max_connections,
            object_store,
            smtp,
            smtp_from,
            sns_ca_pem,
            cluster,
            broker,
            mqtt_listen: args
                .mqtt_listen
                .or(file.mqtt_listen)
                .unwrap_or_else(|| DEFAULT_MQTT_LISTEN.parse().expect("valid default")),
            https_listen: args
                .https_listen
                .or(file.https_listen)
                .unwrap_or_else(|| DEFAULT_HTTPS_LISTEN.parse().expect("valid default")),
            mqtt_plain,
            mqtt_profile,
            state_sync,
            data_dir: args
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            api_listen: args
                .api_listen
                .or(file.api_listen)
                .unwrap_or_else(|| DEFAULT_API_LISTEN.parse().expect("valid default")),
            region,
            account,
            hosts,
            thing_type_deletion_wait_secs: args
                .thing_type_deletion_wait_secs
                .or(file.thing_type_deletion_wait_secs)
                .unwrap_or(300),
        })
    }
}

fn read_file(path: &Path) -> Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("config file {} is not valid", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file_and_defaults_apply() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("roost.toml");
        std::fs::write(
            &file,
            "region = \"eu-west-1\"\napi_listen = \"127.0.0.1:0\"\n",
        )
        .unwrap();
        let cfg = Config::resolve(ServeArgs {
            config: Some(file.clone()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(cfg.region, "eu-west-1");
        assert_eq!(cfg.api_listen.port(), 0);
        assert_eq!(cfg.account, "000000000000");
        assert_eq!(cfg.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        let cfg = Config::resolve(ServeArgs {
            config: Some(file),
            region: Some("ap-south-1".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(cfg.region, "ap-south-1");
    }

    #[test]
    fn postgres_url_comes_from_flag_or_file_and_is_checked() {
        assert!(Config::resolve(ServeArgs::default())
            .unwrap()
            .postgres_url
            .is_none());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("roost.toml");
        std::fs::write(&file, "postgres_url = \"postgres://r:pw@db/roost\"\n").unwrap();
        let cfg = Config::resolve(ServeArgs {
            config: Some(file.clone()),
            ..Default::default()
        })
        .unwrap();
        let url = cfg.postgres_url.as_ref().unwrap();
        assert_eq!(url.expose(), "postgres://r:pw@db/roost");
        assert!(!format!("{cfg:?}").contains("pw@"));
        let flag = Config::resolve(ServeArgs {
            config: Some(file),
            postgres_url: Some("postgresql://other/roost".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            flag.postgres_url.unwrap().expose(),
            "postgresql://other/roost"
        );
        let bad = Config::resolve(ServeArgs {
            postgres_url: Some("db:5432".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(format!("{bad:#}").starts_with("postgres_url: "), "{bad:#}");
    }

    #[test]
    fn registry_freshness_comes_from_flag_or_file_and_is_at_least_a_second() {
        let defaults = Config::resolve(ServeArgs::default()).unwrap();
        assert_eq!(
            defaults.registry_freshness,
            std::time::Duration::from_secs(5)
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("roost.toml");
        std::fs::write(&file, "registry_freshness_secs = 12\n").unwrap();
        let from_file = Config::resolve(ServeArgs {
            config: Some(file.clone()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            from_file.registry_freshness,
            std::time::Duration::from_secs(12)
        );
        std::fs::write(&file, "registry_freshness_secs = 0\n").unwrap();
        let zero = Config::resolve(ServeArgs {
            config: Some(file),
            ..Default::default()
        })
        .unwrap_err();
        assert!(format!("{zero:#}").contains("at least 1"), "{zero:#}");
    }

    #[test]
    fn event_log_settings_come_from_flag_or_file() {
        use roost_eventlog::LogLevel;
        let defaults = Config::resolve(ServeArgs::default()).unwrap();
        assert_eq!(defaults.event_log.default_log_level, LogLevel::Error);
        assert_eq!(defaults.event_log_rotation.max_file_bytes, 10 * 1024 * 1024);
        assert_eq!(defaults.event_log_rotation.max_files, 5);
        assert_eq!(defaults.shutdown_grace, std::time::Duration::from_secs(5));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("roost.toml");
        std::fs::write(
            &file,
            "event_log_level = \"INFO\"\nevent_log_max_file_bytes = 65536\nevent_log_max_files = 2\nshutdown_grace_secs = 9\n",
        )
        .unwrap();
        let from_file = Config::resolve(ServeArgs {
            config: Some(file.clone()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(from_file.event_log.default_log_level, LogLevel::Info);
        assert_eq!(from_file.event_log_rotation.max_file_bytes, 65536);
        assert_eq!(from_file.event_log_rotation.max_files, 2);
        assert_eq!(from_file.shutdown_grace, std::time::Duration::from_secs(9));
        let from_flag = Config::resolve(ServeArgs {
            config: Some(file),
            event_log_level: Some("DEBUG".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(from_flag.event_log.default_log_level, LogLevel::Debug);
        for bad in [
            ServeArgs {
                event_log_level: Some("info".into()),
                ..Default::default()
            },
            ServeArgs {
                event_log_max_files: Some(0),
                ..Default::default()
            },
            ServeArgs {
                event_log_max_file_bytes: Some(10),
                ..Default::default()
            },
        ] {
            assert!(Config::resolve(bad).is_err());
        }
    }

    #[test]
    fn state_sync_comes_from_flag_or_file_and_the_old_interval_still_loads() {
        use roost_broker::StateSync;
        assert_eq!(
            Config::resolve(ServeArgs::default()).unwrap().state_sync,
            StateSync::Normal
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("roost.toml");
        std::fs::write(
            &file,
            "state_sync = \"full\"\nstate_save_interval_secs = 30\n",
        )
        .unwrap();
        let from_file = |sync| ServeArgs {
            config: Some(file.clone()),
            state_sync: sync,
            ..Default::default()
        };
        assert_eq!(
            Config::resolve(from_file(None)).unwrap().state_sync,
            StateSync::Full
        );
        assert_eq!(
            Config::resolve(from_file(Some(StateSync::Normal)))
                .unwrap()
                .state_sync,
            StateSync::Normal
        );
        std::fs::write(&file, "state_sync = \"sometimes\"\n").unwrap();
        let err = Config::resolve(from_file(None)).unwrap_err();
        assert!(err.to_string().contains("'normal' or 'full'"), "{err}");
    }

    #[test]
    fn plain_listener_needs_a_principal_and_loopback() {
        let args = |listen: &str, principal: Option<&str>, remote: bool| ServeArgs {
            mqtt_plain_listen: Some(listen.parse().unwrap()),
            mqtt_plain_principal: principal.map(str::to_string),
            mqtt_plain_allow_remote: remote,
            ..Default::default()
        };
        assert!(Config::resolve(args("127.0.0.1:1883", None, false)).is_err());
        let err = Config::resolve(args("0.0.0.0:1883", Some("abc"), false)).unwrap_err();
        assert!(
            err.to_string().contains("--mqtt-plain-allow-remote"),
            "{err}"
        );
        assert!(Config::resolve(args("0.0.0.0:1883", Some("abc"), true)).is_ok());
        let cfg = Config::resolve(args("127.0.0.1:0", Some("abc"), false)).unwrap();
        assert_eq!(cfg.mqtt_plain.unwrap().1, "abc");
    }

    #[test]
    fn bad_values_are_refused_with_the_reason() {
        let err = Config::resolve(ServeArgs {
            account: Some("123".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("12 digits"));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("roost.toml");
        std::fs::write(&file, "no_such_key = 1\n").unwrap();
        let err = Config::resolve(ServeArgs {
            config: Some(file),
            ..Default::default()
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("no_such_key"), "{err:#}");
        let err = Config::resolve(ServeArgs {
            mqtt_max_keep_alive_secs: Some(0),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("1 to 65535"), "{err}");
    }

    #[test]
    fn max_keep_alive_comes_from_flag_or_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("roost.toml");
        std::fs::write(&file, "mqtt_max_keep_alive_secs = 60\n").unwrap();
        let from_file = Config::resolve(ServeArgs {
            config: Some(file.clone()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(from_file.broker.limits.max_keep_alive, 60);
        let from_flag = Config::resolve(ServeArgs {
            config: Some(file),
            mqtt_max_keep_alive_secs: Some(10),
            ..Default::default()
        })
        .unwrap();
        // Below the aws profile's 30 s floor: the floor follows.
        assert_eq!(from_flag.broker.limits.max_keep_alive, 10);
        assert_eq!(from_flag.broker.limits.min_keep_alive, 10);
    }
}
