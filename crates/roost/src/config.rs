//! Configuration: command-line flags over an optional TOML file over defaults.

use anyhow::{Context, Result};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug, Default)]
pub struct ServeArgs {
    /// Data directory: SQLite file, CA, credentials, endpoints.json.
    #[arg(long, env = "ROOST_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// TOML configuration file; flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Control-plane (AWS IoT REST API) listen address; port 0 picks a free port.
    #[arg(long)]
    pub api_listen: Option<SocketAddr>,
    /// Region used in ARNs.
    #[arg(long)]
    pub region: Option<String>,
    /// Account id used in ARNs (12 digits).
    #[arg(long)]
    pub account: Option<String>,
    /// Host name devices connect to, returned by DescribeEndpoint and put in
    /// the server certificate (repeat for several; the first is the endpoint).
    #[arg(long = "host")]
    pub hosts: Vec<String>,
    /// Seconds a thing type must stay deprecated before it can be deleted.
    #[arg(long)]
    pub thing_type_deletion_wait_secs: Option<u64>,
}

/// The file's keys, all optional.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    api_listen: Option<SocketAddr>,
    region: Option<String>,
    account: Option<String>,
    hosts: Option<Vec<String>>,
    thing_type_deletion_wait_secs: Option<u64>,
}

/// The resolved configuration `serve` runs with.
#[derive(Debug)]
pub struct Config {
    pub data_dir: PathBuf,
    pub api_listen: SocketAddr,
    pub region: String,
    pub account: String,
    pub hosts: Vec<String>,
    pub thing_type_deletion_wait_secs: u64,
}

pub const DEFAULT_DATA_DIR: &str = "./roost-data";
pub const DEFAULT_API_LISTEN: &str = "127.0.0.1:9080";

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
            .unwrap_or_else(|| "000000000000".into());
        if account.len() != 12 || !account.chars().all(|c| c.is_ascii_digit()) {
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
        Ok(Self {
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
    }
}
