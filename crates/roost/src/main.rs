//! `roost`: the self-hosted AWS IoT Core compatible gateway.
//!
//! A thin binary: it parses the command line and configuration, wires the
//! crates together, and runs them. No AWS semantics live here.
#![forbid(unsafe_code)]

mod cert;
mod client;
mod config;
mod deploy;
mod logs;
mod metrics;
mod objects;
mod quickstart;
mod rotate;
mod rules;
mod serve;
mod sql;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "roost",
    version,
    about = "A self-hosted AWS IoT Core compatible device gateway",
    after_help = "Logs go to standard error; ROOST_LOG sets what is logged, as a tracing filter \
                  (default \"info,sqlx=warn,rustls=error\"; e.g. ROOST_LOG=debug, or \
                  ROOST_LOG=info,roost_broker=debug). Start with `roost quickstart` (docs: README.md)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run Roost: the control plane and the device gateway.
    Serve(Box<config::ServeArgs>),
    /// Certificates.
    #[command(subcommand)]
    Cert(CertCommand),
    /// IoT SQL.
    #[command(subcommand)]
    Sql(SqlCommand),
    /// Objects in Roost's object store (job files, what the s3 rule action wrote).
    #[command(subcommand)]
    Objects(ObjectsCommand),
    /// The whole scenario on this machine: Roost, the scenario applied, and a honeypot canary reporting to it.
    Quickstart(Box<quickstart::QuickstartArgs>),
    /// Rotate the certificates of a thing or a thing group's things through
    /// rotate-cert jobs; the old certificate goes INACTIVE only after the
    /// device reported SUCCEEDED with the new one. Running it again resumes.
    RotateCerts(Box<rotate::RotateArgs>),
    /// Print the export lines that point the aws CLI and boto3 at a local Roost: eval "$(roost env)".
    Env {
        /// The Roost data directory.
        #[arg(long, env = "ROOST_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Event logs: connects, refusals, publishes, rule failures (AWSIotLogsV2 records).
    Logs(logs::LogsArgs),
    /// Topic rules.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Create or update everything a deployment file describes (idempotent).
    Apply(deploy::DeployArgs),
    /// Show what `apply` would change, and what exists that the file does not name.
    Plan(deploy::DeployArgs),
    /// Remove exactly what a deployment file describes, in an order the registry accepts.
    Destroy(deploy::DeployArgs),
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Show the warnings Roost has for each rule (a FROM no device may publish to, an s3 key that can collide, …).
    Check {
        #[command(flatten)]
        target: client::Target,
    },
}

#[derive(Subcommand)]
enum ObjectsCommand {
    /// Upload FILE as BUCKET/KEY.
    Put {
        /// BUCKET/KEY, e.g. iot-webinar-audits/jobs/certs/certificate.pem.crt
        object: String,
        file: PathBuf,
        #[command(flatten)]
        target: client::Target,
    },
    /// Download BUCKET/KEY into FILE, or to standard output.
    Get {
        object: String,
        file: Option<PathBuf>,
        #[command(flatten)]
        target: client::Target,
    },
    /// List objects: all, one bucket's, or those under BUCKET/PREFIX.
    Ls {
        prefix: Option<String>,
        #[command(flatten)]
        target: client::Target,
    },
    /// Remove BUCKET/KEY.
    Rm {
        object: String,
        #[command(flatten)]
        target: client::Target,
    },
}

#[derive(Subcommand)]
enum SqlCommand {
    /// Evaluate a rule's SQL on one message, as the rules engine would, with
    /// no server: prints the payload an action would receive (exit 0), says
    /// when the message is filtered out (exit 1), or the error (exit 2).
    Eval(sql::EvalArgs),
}

#[derive(Subcommand)]
enum CertCommand {
    /// Create keys and a certificate for a thing ("one-click certificate"):
    /// writes certificate.pem.crt, private.pem.key (0600), public.pem.key and
    /// root-ca.pem into --out, activates the certificate and attaches it to the thing.
    Create {
        /// The thing to attach the certificate to (it must exist).
        #[arg(long)]
        thing: String,
        /// Folder to write the files into (created if missing).
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        target: client::Target,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        // The SQL playground needs no runtime and has its own exit codes.
        Command::Sql(SqlCommand::Eval(args)) => sql::eval(args),
        Command::Serve(args) => block_on(serve::run(*args)),
        Command::Logs(args) => block_on(async move { logs::run(args) }),
        Command::Cert(CertCommand::Create { thing, out, target }) => {
            block_on(async move { cert::create(&thing, &out, &target).await })
        }
        Command::Quickstart(args) => block_on(quickstart::run(*args)),
        Command::RotateCerts(args) => block_on(rotate::run(*args)),
        Command::Env { data_dir } => match serve::print_env(data_dir.as_deref()) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("roost: {e:#}");
                std::process::ExitCode::FAILURE
            }
        },
        Command::Rules(RulesCommand::Check { target }) => {
            block_on(async move { rules::check(&target).await })
        }
        Command::Apply(args) => block_on(async move { deploy::apply(&args).await }),
        Command::Plan(args) => block_on(async move { deploy::plan(&args).await }),
        Command::Destroy(args) => block_on(async move { deploy::destroy(&args).await }),
        Command::Objects(command) => block_on(async move {
            match command {
                ObjectsCommand::Put {
                    object,
                    file,
                    target,
                } => objects::put(&object, &file, &target).await,
                ObjectsCommand::Get {
                    object,
                    file,
                    target,
                } => objects::get(&object, file.as_deref(), &target).await,
                ObjectsCommand::Ls { prefix, target } => {
                    objects::ls(prefix.as_deref(), &target).await
                }
                ObjectsCommand::Rm { object, target } => objects::rm(&object, &target).await,
            }
        }),
    }
}

/// Runs a command on the async runtime; its error is printed with its causes.
fn block_on(
    command: impl std::future::Future<Output = anyhow::Result<()>>,
) -> std::process::ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("roost: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("roost: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
