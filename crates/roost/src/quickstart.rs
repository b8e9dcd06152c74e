//! `roost quickstart`: the whole reference scenario on this machine in one
//! command. Roost on its embedded defaults, the scenario applied from
//! examples/iot-webinar.toml (built into the binary), the notification
//! topic subscribed by a local sink that prints and keeps each
//! notification, and roost-canary in this process with the certificate
//! apply wrote: a honeypot page on http://127.0.0.1:8080 and ssh on 2222.
//! Ctrl-C stops everything; running it again reuses what exists;
//! `--reset` starts over.

use crate::client::{ApiClient, Target};
use crate::config::ServeArgs;
use anyhow::{bail, Context, Result};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use roost_canary::config::{Config as CanaryConfig, Service};
use roost_canary::services::ServiceKind;
use roost_deploy::model::Subscription;
use roost_deploy::Deployment;
use serde_json::Value;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The scenario, as `roost apply` takes it.
const SCENARIO: &str = include_str!("../../../examples/iot-webinar.toml");
/// The largest notification the sink takes.
const MAX_NOTIFICATION: usize = 256 * 1024;

#[derive(clap::Args, Debug)]
pub struct QuickstartArgs {
    #[command(flatten)]
    pub serve: ServeArgs,
    /// Where the canary's honeypot web page listens.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub http_listen: SocketAddr,
    /// Where the canary's ssh service listens.
    #[arg(long, default_value = "127.0.0.1:2222")]
    pub ssh_listen: SocketAddr,
    /// Remove the data directory first and start over.
    #[arg(long)]
    pub reset: bool,
}

pub async fn run(mut args: QuickstartArgs) -> Result<()> {
    crate::serve::init_logging("warn,roost=info,roost_canary=warn");
    let data_dir = args
        .serve
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(crate::config::DEFAULT_DATA_DIR));
    // (ROOST_POSTGRES_URL lands in postgres_url too.)
    if args.reset && args.serve.postgres_url.is_some() {
        bail!("--reset empties the data directory only, not a PostgreSQL database: drop and recreate the database yourself, or leave out --postgres-url");
    }
    if args.reset && data_dir.exists() {
        if !data_dir.join("roost.db").exists() && std::fs::read_dir(&data_dir)?.next().is_some() {
            bail!("--reset: {} does not look like a Roost data directory (no roost.db); not removing it", data_dir.display());
        }
        std::fs::remove_dir_all(&data_dir)
            .with_context(|| format!("removing {}", data_dir.display()))?;
        println!("removed {}", data_dir.display());
    }
    std::fs::create_dir_all(&data_dir)?;
    let data_dir = std::fs::canonicalize(&data_dir)?;
    args.serve.data_dir = Some(data_dir.clone());
    // endpoints.json is written last at start: a stale one must not be read.
    let endpoints_file = data_dir.join(crate::serve::ENDPOINTS_FILE);
    let _ = std::fs::remove_file(&endpoints_file);
    let _ = std::fs::remove_file(data_dir.join("quickstart").join("services.json"));

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut server = tokio::spawn(crate::serve::run_until(
        args.serve,
        stopped(stop_rx.clone()),
    ));
    let endpoints = tokio::select! {
        e = wait_for_endpoints(&endpoints_file) => e?,
        r = &mut server => bail!("Roost did not start: {}", match r {
            Ok(Err(e)) => format!("{e:#}"),
            Ok(Ok(())) => "it stopped".into(),
            Err(e) => e.to_string(),
        }),
    };
    let canary = match scenario(
        &data_dir,
        &endpoints,
        &args.http_listen,
        &args.ssh_listen,
        stop_rx,
    )
    .await
    {
        Ok(canary) => canary,
        Err(e) => {
            let _ = stop_tx.send(true);
            let _ = server.await;
            return Err(e);
        }
    };
    crate::serve::shutdown_signal().await;
    println!("stopping");
    let _ = stop_tx.send(true);
    match canary.await {
        Ok(Err(e)) => eprintln!("roost quickstart: the canary: {e:#}"),
        Err(e) => eprintln!("roost quickstart: the canary: {e}"),
        Ok(Ok(())) => {}
    }
    server.await.context("the server task")?
}

async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

async fn wait_for_endpoints(file: &Path) -> Result<Value> {
    loop {
        if let Ok(text) = std::fs::read_to_string(file) {
            if let Ok(v) = serde_json::from_str::<Value>(&text) {
                return Ok(v);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn scenario(
    data_dir: &Path,
    endpoints: &Value,
    http_listen: &SocketAddr,
    ssh_listen: &SocketAddr,
    stop: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<anyhow::Result<()>>> {
    let quick = data_dir.join("quickstart");
    std::fs::create_dir_all(&quick)?;
    let notifications = quick.join("notifications.log");
    let sink = notification_sink(notifications.clone(), stop.clone()).await?;

    let mut deployment = Deployment::parse("examples/iot-webinar.toml", SCENARIO)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    for topic in &mut deployment.topics {
        topic.get_mut().subscriptions = vec![Subscription {
            protocol: "http".into(),
            endpoint: format!("http://{sink}/notifications"),
        }];
    }
    // The region the server signs for, from the AWS config it wrote.
    let aws_config = std::fs::read_to_string(data_dir.join(crate::serve::AWS_CONFIG_FILE))?;
    let region = aws_config
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("region")
                .map(|v| v.trim_start_matches([' ', '=']).trim().to_string())
        })
        .unwrap_or_else(|| "us-east-1".into());
    let api = ApiClient::from_target(&Target {
        data_dir: Some(data_dir.to_path_buf()),
        endpoint: None,
        region,
    })?;
    let certificates = quick.join("certificates");
    println!("== applying the scenario (examples/iot-webinar.toml)");
    crate::deploy::apply_deployment(&api, &deployment, &certificates).await?;
    confirmed(&api, &format!("http://{sink}/notifications")).await?;

    let device = certificates.join("iot-webinar-device");
    let mqtt: SocketAddr = endpoints["mqtt"]
        .as_str()
        .context("endpoints.json has no mqtt address")?
        .parse()?;
    let mut config = CanaryConfig::empty();
    config.state_dir = quick.join("canary");
    let g = &mut config.gateway;
    g.endpoint = Some(if mqtt.ip().is_unspecified() {
        "127.0.0.1".into()
    } else {
        mqtt.ip().to_string()
    });
    g.port = Some(mqtt.port());
    g.root_ca = Some(device.join("root-ca.pem"));
    g.cert = Some(device.join("certificate.pem.crt"));
    g.key = Some(device.join("private.pem.key"));
    g.thing_name = Some("iot-webinar-device".into());
    g.owner = Some("abcde-12345".into());
    for (kind, listen) in [
        (ServiceKind::Http, http_listen),
        (ServiceKind::Ssh, ssh_listen),
    ] {
        config
            .services
            .push(toml::Spanned::new(0..0, Service::new(kind, Some(*listen))));
    }
    let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
    let canary = tokio::spawn(roost_canary::agent::run(
        config,
        stopped(stop),
        move |addrs| {
            let _ = bound_tx.send(addrs);
        },
    ));
    let bound = match bound_rx.await {
        Ok(b) => b,
        Err(_) => bail!(
            "the canary did not start: {}",
            match canary.await {
                Ok(Err(e)) => format!("{e:#}"),
                _ => "it stopped".into(),
            }
        ),
    };
    let addr = |name: &str| bound.iter().find(|(n, _)| n == name).map(|(_, a)| *a);
    let (http, ssh) = (
        addr("http").context("no http service")?,
        addr("ssh").context("no ssh service")?,
    );
    let mut services = serde_json::Map::new();
    for (name, a) in &bound {
        services.insert(name.clone(), Value::from(a.to_string()));
    }
    std::fs::write(
        quick.join("services.json"),
        serde_json::to_vec_pretty(&services)?,
    )?;
    println!(
        "\nThe scenario runs. A honeypot (roost-canary, thing iot-webinar-device) reports to Roost:\n\
         \n  try it:   open http://{http}/   (log in with anything)\n            ssh -p {} admin@{}\n\
         \n  see it:   the audits      {}\n            notifications  {}\n            \
         aws iot / boto3 with the exports above, or: roost objects ls iot-webinar-audits --data-dir {}\n\
         \nCtrl-C stops everything; run it again to carry on, with --reset to start over.",
        ssh.port(),
        ssh.ip(),
        data_dir.join("objects").join("iot-webinar-audits").display(),
        notifications.display(),
        data_dir.display(),
    );
    Ok(canary)
}

/// Waits until the sink's subscription is confirmed (the sink confirms it
/// as soon as Roost asks), so that the first attempt is notified too.
async fn confirmed(api: &ApiClient, endpoint: &str) -> Result<()> {
    let topics = crate::deploy::sns_topics(api).await?;
    let topic = topics
        .get("iot-webinar-sns-topic")
        .context("the scenario's topic was not created")?;
    for _ in 0..100 {
        let subscriptions = crate::deploy::sns_subscriptions(api, topic).await?;
        let arn = subscriptions.get(&("http".to_string(), endpoint.to_string()));
        if arn.is_some_and(|a| a != "PendingConfirmation") {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the notification subscription to {endpoint} was not confirmed within 10 s")
}

/// A local HTTP endpoint for the notification topic: it confirms the
/// subscription (a GET of its SubscribeURL) and appends each notification
/// to `log`, printing a line.
async fn notification_sink(log: PathBuf, stop: watch::Receiver<bool>) -> Result<SocketAddr> {
    // The port of the last run if it is free, so that the subscription
    // stays the same and a second run changes nothing.
    let remembered = log.with_file_name("sink-port");
    let last: u16 = std::fs::read_to_string(&remembered)
        .ok()
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or(0);
    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", last)).await {
        Ok(l) => l,
        Err(_) => tokio::net::TcpListener::bind("127.0.0.1:0").await?,
    };
    let addr = listener.local_addr()?;
    std::fs::write(&remembered, addr.port().to_string())?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let log = Arc::new(log);
    let config = roost_listener::ListenerConfig::new("notifications", 16);
    let stop_conn = stop.clone();
    tokio::spawn(roost_listener::serve(
        listener,
        config,
        Arc::new(roost_listener::ListenerStats::default()),
        stop,
        move |stream, _peer| {
            let (http, log, stop) = (http.clone(), log.clone(), stop_conn.clone());
            async move {
                let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                    let (http, log) = (http.clone(), log.clone());
                    async move {
                        let body = Limited::new(req.into_body(), MAX_NOTIFICATION)
                            .collect()
                            .await;
                        if let Ok(body) = body {
                            receive(&http, &log, &body.to_bytes()).await;
                        }
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                            Bytes::new(),
                        )))
                    }
                });
                let _ = roost_listener::serve_http1(
                    stream,
                    service,
                    Duration::from_secs(10),
                    stopped(stop),
                    Duration::from_secs(1),
                )
                .await;
            }
        },
    ));
    Ok(addr)
}

async fn receive(http: &reqwest::Client, log: &Path, body: &[u8]) {
    let Ok(message) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    match message["Type"].as_str() {
        Some("SubscriptionConfirmation") => {
            if let Some(url) = message["SubscribeURL"].as_str() {
                if let Err(e) = http
                    .get(url)
                    .send()
                    .await
                    .and_then(|r| r.error_for_status())
                {
                    tracing::warn!(error = %e, "could not confirm the notification subscription");
                }
            }
        }
        Some("Notification") => {
            let text = message["Message"].as_str().unwrap_or_default();
            println!(
                "notification: {}",
                text.chars().take(200).collect::<String>()
            );
            let line = serde_json::to_string(&message).unwrap_or_default();
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
            {
                let _ = writeln!(f, "{line}");
            }
        }
        _ => {}
    }
}
