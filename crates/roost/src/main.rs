//! `roost`: the self-hosted AWS IoT Core compatible gateway.
//!
//! A thin binary: it parses the command line and configuration, wires the
//! crates together, and runs them. No AWS semantics live here.
#![forbid(unsafe_code)]

mod cert;
mod client;
mod config;
mod serve;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "roost",
    version,
    about = "A self-hosted AWS IoT Core compatible device gateway"
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
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(*args).await,
            Command::Cert(CertCommand::Create { thing, out, target }) => {
                cert::create(&thing, &out, &target).await
            }
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("roost: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
