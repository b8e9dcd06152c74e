//! `roost-canary`: the binary. A drop-in for the scenario's
//! `canary-service.py` (same flags), with a TOML config for the rest.
#![forbid(unsafe_code)]

use clap::{Args, Parser, Subcommand};
use roost_canary::config::{Config, Service};
use roost_canary::services::ServiceKind;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

mod sealed_cli;

#[derive(Parser)]
#[command(
    name = "roost-canary",
    version,
    about = "A honeypot that reports every intrusion attempt to Roost or AWS IoT Core over MQTT with mutual TLS",
    long_about = "A honeypot that reports every intrusion attempt to Roost or AWS IoT Core over MQTT with \
mutual TLS. Each attempt is written to an on-disk outbox before it is published and stays there until the \
gateway acknowledges it.\n\nThe scenario's flags work as they did with canary-service.py:\n  \
roost-canary -e ENDPOINT -r root-ca.pem -c certificate.pem.crt -k private.pem.key -id iot-webinar-device -t abcde-12345/iot-webinar-device/audit\n\n\
Everything else (services, reporting windows, the outbox's size) goes in --config FILE; see docs/canary.md.",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the canary (the default).
    Run(Box<RunArgs>),
    /// Check a configuration file; every error names the file, the line and the field.
    CheckConfig {
        /// The TOML configuration to check.
        file: PathBuf,
    },
    /// Show a running canary's health: connected, outbox depth, attempts by service, last error.
    Status {
        /// The canary's state directory.
        #[arg(long, default_value = "roost-canary-state")]
        state_dir: PathBuf,
        /// Print the status as JSON.
        #[arg(long)]
        json: bool,
    },
    #[command(flatten)]
    Sealed(sealed_cli::Command),
}

#[derive(Args, Clone, Default)]
struct RunArgs {
    /// The gateway's host name (Roost's host, or your AWS IoT endpoint).
    #[arg(short = 'e', long = "endpoint")]
    endpoint: Option<String>,
    /// The gateway's MQTT port [default: 8883]; 443 uses ALPN as AWS IoT Core expects.
    #[arg(short = 'p', long = "port")]
    port: Option<u16>,
    /// The CA certificate that signed the gateway's certificate (PEM).
    #[arg(short = 'r', long = "rootCA")]
    root_ca: Option<PathBuf>,
    /// The device certificate (PEM).
    #[arg(short = 'c', long = "cert")]
    cert: Option<PathBuf>,
    /// The device certificate's private key (PEM).
    #[arg(short = 'k', long = "key")]
    key: Option<PathBuf>,
    /// The MQTT client id (`-id` works too) [default: the thing name].
    #[arg(long = "clientId")]
    client_id: Option<String>,
    /// The topic incidents are published to [default: {owner}/{thing}/audit].
    #[arg(short = 't', long = "topic")]
    topic: Option<String>,
    /// The thing name, `canary` in every incident [default: the client id].
    #[arg(short = 'n', long = "thingName")]
    thing_name: Option<String>,
    /// A TOML configuration (services, reporting, outbox); flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Where the http honeypot listens [default: 0.0.0.0:8080; the scenario used port 80].
    #[arg(long)]
    http_listen: Option<SocketAddr>,
    /// Where the ssh honeypot listens [default: 0.0.0.0:2222].
    #[arg(long)]
    ssh_listen: Option<SocketAddr>,
    /// The state directory: the outbox, host keys, the status [default: ./roost-canary-state].
    #[arg(long)]
    state_dir: Option<PathBuf>,
}

fn main() -> ExitCode {
    // The scenario's `-id` is not a one-letter flag: read it as --clientId.
    let args = std::env::args_os().map(|a| if a == "-id" { "--clientId".into() } else { a });
    let cli = Cli::parse_from(args);
    match cli.command {
        Some(Command::CheckConfig { file }) => check_config(&file),
        Some(Command::Status { state_dir, json }) => status(&state_dir, json),
        Some(Command::Run(args)) => run(*args),
        Some(Command::Sealed(command)) => command.run(),
        None => run(cli.run),
    }
}

fn check_config(file: &std::path::Path) -> ExitCode {
    let name = file.display().to_string();
    let result = std::fs::read_to_string(file)
        .map_err(|e| format!("{name}: cannot read the configuration: {e}"))
        .and_then(|text| {
            let config = Config::parse(&name, &text).map_err(|e| e.to_string())?;
            config
                .validate(&name, Some(&text))
                .map_err(|e| e.to_string())?;
            Ok(config)
        });
    match result {
        Ok(config) => {
            println!(
                "{name}: ok ({} services: {})",
                config.services.len(),
                config
                    .services
                    .iter()
                    .map(|s| format!("{} on {}", s.get_ref().kind.name(), s.get_ref().listen()))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn status(state_dir: &std::path::Path, json: bool) -> ExitCode {
    match roost_canary::status::read(state_dir) {
        Ok((snapshot, running)) => {
            if json {
                let mut value = serde_json::to_value(&snapshot).unwrap_or_default();
                value["running"] = running.into();
                println!(
                    "{}",
                    serde_json::to_string_pretty(&value).unwrap_or_default()
                );
            } else {
                print!("{}", roost_canary::status::render(&snapshot, running));
            }
            if running {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(3)
            }
        }
        Err(e) => {
            eprintln!("roost-canary status: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The configuration: the file if any, then the flags over it.
fn configure(args: RunArgs) -> Result<Config, String> {
    let mut config = match &args.config {
        Some(path) => {
            let name = path.display().to_string();
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("{name}: cannot read the configuration: {e}"))?;
            let config = Config::parse(&name, &text).map_err(|e| e.to_string())?;
            config
                .validate(&name, Some(&text))
                .map_err(|e| e.to_string())?;
            config
        }
        None => {
            // Without a file: the scenario's http page, and ssh.
            let mut config = Config::empty();
            for kind in [ServiceKind::Http, ServiceKind::Ssh] {
                config
                    .services
                    .push(toml::Spanned::new(0..0, Service::new(kind, None)));
            }
            config
        }
    };
    let g = &mut config.gateway;
    flag(args.endpoint, &mut g.endpoint);
    flag(args.port, &mut g.port);
    flag(args.root_ca, &mut g.root_ca);
    flag(args.cert, &mut g.cert);
    flag(args.key, &mut g.key);
    flag(args.client_id, &mut g.client_id);
    flag(args.topic, &mut g.topic);
    flag(args.thing_name, &mut g.thing_name);
    if let Some(dir) = args.state_dir {
        config.state_dir = dir;
    }
    for (kind, listen) in [
        (ServiceKind::Http, args.http_listen),
        (ServiceKind::Ssh, args.ssh_listen),
    ] {
        let Some(listen) = listen else { continue };
        match config
            .services
            .iter_mut()
            .find(|s| s.get_ref().kind == kind)
        {
            Some(service) => {
                let service = service.get_mut();
                service.address = listen.ip();
                service.port = Some(listen.port());
            }
            None => config
                .services
                .push(toml::Spanned::new(0..0, Service::new(kind, Some(listen)))),
        }
    }
    config
        .validate("(flags)", None)
        .map_err(|e| e.to_string())?;
    config.agent_settings()?;
    Ok(config)
}

/// A flag given on the command line wins over the file.
fn flag<T>(value: Option<T>, into: &mut Option<T>) {
    if value.is_some() {
        *into = value;
    }
}

fn run(args: RunArgs) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ROOST_CANARY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let config = match configure(args) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("roost-canary: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("roost-canary: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let state_dir = config.state_dir.clone();
    let result = runtime.block_on(roost_canary::agent::run(config, shutdown_signal(), |bound| {
        // Where each service listens, for whoever started us (port 0 in tests).
        let map: serde_json::Map<String, serde_json::Value> = bound
            .into_iter()
            .map(|(name, addr)| (name, addr.to_string().into()))
            .collect();
        let path = state_dir.join("services.json");
        if let Err(e) = std::fs::write(&path, serde_json::Value::Object(map).to_string()) {
            tracing::warn!(error = %e, path = %path.display(), "could not write the services file");
        }
    }));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("roost-canary: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down");
}
