//! `roost serve`: open the data directory, start the listeners, write
//! `endpoints.json`, and run until SIGINT or SIGTERM.

use crate::config::{Config, ServeArgs};
use anyhow::{Context, Result};
use roost_registry::pki::{write_private_file, write_public_file};
use roost_registry::{Registry, Settings};
use std::path::Path;
use std::time::Duration;
use tokio::net::TcpListener;

/// Files `serve` keeps in the data directory for clients.
pub const ENDPOINTS_FILE: &str = "endpoints.json";
pub const CREDENTIALS_FILE: &str = "credentials";
pub const AWS_CONFIG_FILE: &str = "aws-config";
pub const PROFILE: &str = "roost";

pub async fn run(args: ServeArgs) -> Result<()> {
    init_logging("info,sqlx=warn,rustls=error");
    run_until(args, shutdown_signal()).await
}

/// Logs to standard error, filtered by `ROOST_LOG` (else `default`), in
/// colour only on a terminal (a log file gets no escape codes).
pub fn init_logging(default: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ROOST_LOG")
                .unwrap_or_else(|_| default.into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Runs Roost until `shutdown` completes.
pub async fn run_until(
    args: ServeArgs,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let cfg = Config::resolve(args)?;
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating the data directory {}", cfg.data_dir.display()))?;
    let data_dir = std::fs::canonicalize(&cfg.data_dir)?;
    let settings = Settings {
        region: cfg.region.clone(),
        account: cfg.account.clone(),
        thing_type_deletion_wait: Duration::from_secs(cfg.thing_type_deletion_wait_secs),
    };
    let registry = match &cfg.postgres_url {
        None => Registry::open(&data_dir, settings)
            .await
            .context("opening the registry")?,
        Some(url) => Registry::open_postgres(&data_dir, url, settings)
            .await
            .with_context(|| format!("opening the registry in PostgreSQL at {url}"))?,
    };
    let store = match &cfg.postgres_url {
        None => format!(
            "sqlite:{}",
            data_dir.join(Registry::DATABASE_FILE).display()
        ),
        Some(url) => url.masked(),
    };
    registry
        .ca()
        .server_certificate(&data_dir, &cfg.hosts)
        .context("preparing the TLS server certificate")?;
    let new_credentials = ensure_credentials(&registry, &data_dir).await?;

    let (cert_path, key_path) = registry
        .ca()
        .server_certificate(&data_dir, &cfg.hosts)
        .context("preparing the TLS server certificate")?;
    let tls = roost_broker::DeviceTls::load(
        &cert_path,
        &key_path,
        cfg.broker.limits.certificate_clock_skew,
    )?;

    let api = TcpListener::bind(cfg.api_listen)
        .await
        .with_context(|| format!("binding the control plane to {}", cfg.api_listen))?;
    let api_addr = api.local_addr()?;
    let mqtt = TcpListener::bind(cfg.mqtt_listen)
        .await
        .with_context(|| format!("binding MQTT to {}", cfg.mqtt_listen))?;
    let mqtt_addr = mqtt.local_addr()?;
    let https = TcpListener::bind(cfg.https_listen)
        .await
        .with_context(|| format!("binding HTTPS to {}", cfg.https_listen))?;
    let https_addr = https.local_addr()?;
    let mut endpoints = serde_json::json!({
        "api": api_addr.to_string(),
        "mqtt": mqtt_addr.to_string(),
        "https": https_addr.to_string(),
    });
    let plain = match &cfg.mqtt_plain {
        Some((addr, principal)) => {
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding plain MQTT to {addr}"))?;
            endpoints["mqtt_plain"] = serde_json::json!(listener.local_addr()?.to_string());
            Some((
                listener,
                roost_broker::PlainPrincipal {
                    certificate_id: principal.clone(),
                },
            ))
        }
        None => None,
    };
    write_aws_config(&data_dir, &cfg.region, &format!("http://{api_addr}"))?;
    tracing::info!(api = %api_addr, mqtt = %mqtt_addr, https = %https_addr, data_dir = %data_dir.display(), registry = %store, profile = ?cfg.mqtt_profile, "roost is listening");
    if let Some(()) = new_credentials {
        println!(
            "Roost created its admin credentials in {}.",
            data_dir.join(CREDENTIALS_FILE).display()
        );
    }
    // Every start: how to point the aws CLI and boto3 at Roost (also
    // `roost env`), so that a first start that failed loses nothing.
    println!("To use the aws CLI and boto3 with this Roost, run (or: eval \"$(roost env --data-dir {})\"):", data_dir.display());
    println!();
    print!("{}", env_lines(&data_dir));
    println!();
    println!(
        "(the profile sets the region and endpoint_url; or pass --endpoint-url http://{api_addr})"
    );
    // Last: endpoints.json is what scripts wait for, so everything printed
    // above is out when it appears (the listeners are bound; connections
    // wait in their backlogs until they serve).
    write_public_file(
        &data_dir.join(ENDPOINTS_FILE),
        serde_json::to_vec_pretty(&endpoints)?.as_slice(),
    )?;

    // Every listener draws on one descriptor table: each gets its share, so
    // a flood on one port cannot starve the others.
    let budget = roost_listener::DescriptorBudget::of_process();
    let shares = budget.shares(roost_listener::ListenerShares {
        mqtt: cfg.broker.limits.max_connections,
        https: cfg.https_max_connections,
        api: cfg.api_limits.max_connections,
    });
    tracing::info!(
        open_files = budget.limit(),
        reserve = budget.reserve(),
        mqtt = shares.mqtt,
        https = shares.https,
        api = shares.api,
        "connection caps"
    );
    let mut broker_config = cfg.broker.clone();
    broker_config.limits.max_connections = shares.mqtt;
    let api_limits = roost_api::HttpLimits {
        max_connections: shares.api,
        ..cfg.api_limits.clone()
    };
    let listeners = crate::metrics::Listeners::default();

    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    // On a shared database, the other nodes' registry changes reach this
    // one (the database announces them: LISTEN/NOTIFY, and a version poll).
    let registry_feed = match &cfg.postgres_url {
        Some(url) => Some(
            roost_registry::store::postgres::notify::start(
                url,
                registry.clone(),
                cfg.registry_freshness,
                stop.clone(),
            )
            .await
            .with_context(|| format!("listening for registry changes in PostgreSQL at {url}"))?,
        ),
        None => None,
    };
    let broker = roost_broker::Broker::new(registry.clone(), broker_config);
    // The event log: its stored options (or the configuration's) and levels,
    // a bounded queue, and the thread that writes the files.
    let (event_log, event_queue) = roost_eventlog::EventLog::new(
        &cfg.account,
        registry
            .logging_config(&cfg.event_log)
            .await
            .context("reading the event log settings")?,
        roost_eventlog::QUEUE_CAPACITY,
    );
    crate::logs::files::start(
        crate::logs::files::dir_under(&data_dir),
        cfg.event_log_rotation,
        event_queue,
        event_log.counters().clone(),
    )
    .context("opening the event log")?;
    broker.set_event_log(event_log);
    // The rules engine installs its rule validator in the registry and its
    // tap in the broker before any listener opens.
    let notifier = std::sync::Arc::new(
        roost_notify::Notifier::new(
            registry.clone(),
            roost_notify::NotifierConfig {
                smtp: cfg.smtp.clone(),
                smtp_from: cfg.smtp_from.clone(),
                base_url: format!("http://{api_addr}"),
                data_dir: data_dir.clone(),
                subscriber_ca_pem: cfg.sns_ca_pem.clone(),
            },
        )
        .map_err(|e| anyhow::anyhow!("setting up SNS delivery: {e}"))?,
    );
    // Topic rule destinations' confirmation messages go through the same
    // bounded http deliveries as SNS's.
    registry.set_destination_confirmer(std::sync::Arc::new(
        roost_notify::destination::DestinationConfirmations(notifier.clone()),
    ));
    match &cfg.smtp {
        Some(smtp) => {
            tracing::info!(host = %smtp.host, port = smtp.port, tls = ?smtp.tls, from = %cfg.smtp_from, "SNS email delivery enabled")
        }
        None => tracing::info!("no SMTP server configured (--smtp-url): SNS email delivery is off"),
    }
    let rules = roost_rules::RulesEngine::start(
        registry.clone(),
        broker.clone(),
        roost_rules::RulesConfig {
            object_store: cfg.object_store.clone(),
            sns: Some(notifier.clone()),
            ..roost_rules::RulesConfig::under(&data_dir)
        },
        stop.clone(),
    )
    .await
    .context("starting the rules engine")?;
    // Jobs: presigned URLs point at this server's object route, by the name
    // devices reach it with.
    let object_signer = std::sync::Arc::new(
        roost_jobs_service::presign::LocalSigner::load_or_create(
            &data_dir,
            format!("http://{}:{}", cfg.hosts[0], api_addr.port()),
        )
        .context("reading the objects signing key")?,
    );
    // An S3-compatible object store, if configured: what `roost objects`
    // and documentSource use, and what presigns job documents' URLs.
    let s3_store = match &cfg.object_store {
        roost_rules::ObjectStoreConfig::Local => None,
        roost_rules::ObjectStoreConfig::S3 {
            endpoint,
            region,
            access_key_id,
            secret_access_key,
        } => Some(roost_jobs_service::presign::S3Store {
            endpoint: endpoint.clone(),
            region: region.clone(),
            access_key_id: access_key_id.clone(),
            secret_access_key: secret_access_key.clone(),
        }),
    };
    // Job documents' presigned URLs: Roost's own object route for the local
    // folder, the store's own presigned URLs for an S3-compatible store.
    let url_signer: std::sync::Arc<dyn roost_jobs_service::UrlSigner> = match &s3_store {
        None => object_signer.clone(),
        Some(store) => std::sync::Arc::new(roost_jobs_service::presign::S3Signer(store.clone())),
    };
    let jobs = roost_jobs_service::JobsService::new(
        registry.clone(),
        std::sync::Arc::new(broker.clone()),
        url_signer,
    );
    // The device jobs API: $aws/things/{thing}/jobs/... requests are the
    // service's, answered to the requester alone.
    broker.set_device_service(std::sync::Arc::new(jobs.clone()));
    // A cluster node joins before any listener serves, so that every message
    // it accepts reaches the other nodes.
    let cluster = match cfg.cluster.clone() {
        None => None,
        Some(nats) => {
            let (node, urls) = (nats.node_id.clone(), format!("{nats:?}"));
            let joined = roost_nats::join(&broker, nats, stop.clone())
                .await
                .context("joining the cluster through NATS (--nats-url)")?;
            tracing::info!(%node, config = %urls, "joined the cluster through NATS");
            Some(joined)
        }
    };
    // Gateway state is read back before any listener serves, and from then
    // on every durable change is written as it happens.
    let gateway_state = roost_broker::BrokerStore::open(
        &data_dir.join(roost_broker::BrokerStore::FILE),
        cfg.state_sync,
    )
    .await
    .context("opening the gateway state")?;
    let device_listeners = roost_broker::DeviceListeners {
        mqtt,
        mqtt_stats: listeners.mqtt.clone(),
        https,
        https_stats: listeners.https.clone(),
        https_max_connections: shares.https,
        mqtt_plain: plain
            .map(|(listener, principal)| (listener, principal, listeners.mqtt_plain.clone())),
    };
    let gateway = broker
        .start_gateway(gateway_state, tls, device_listeners, stop.clone())
        .await
        .context("restoring the gateway state")?;
    tracing::info!(sync = ?cfg.state_sync, "gateway started");
    // The jobs clock: time-outs, rollout, retries, abort, completion.
    let jobs_clock = tokio::spawn(jobs.clone().run(stop.clone()));
    let state = roost_api::ApiState::new(
        registry.clone(),
        broker.clone(),
        roost_api::ApiConfig {
            endpoint_host: cfg.hosts[0].clone(),
            metrics: Some(std::sync::Arc::new(crate::metrics::renderer(
                crate::metrics::Exporter {
                    broker: broker.clone(),
                    rules,
                    notifier: notifier.clone(),
                    listeners: listeners.clone(),
                    registry: registry.clone(),
                    cluster: cluster.as_ref().map(|c| c.counters().clone()),
                },
            ))),
            sns: Some(notifier),
            jobs: Some(jobs),
            readiness: readiness_checks(&registry, cfg.postgres_url.is_some(), cluster.as_ref()),
            objects: Some(roost_api::ObjectsConfig {
                dir: data_dir.join("objects"),
                signer: object_signer,
                s3: s3_store,
            }),
        },
    );
    // The web console shares the API's port and its operations.
    let app = roost_api::router(state.clone()).merge(roost_console::router(state));
    let api_task = tokio::spawn(roost_api::serve(
        api,
        app,
        api_limits,
        listeners.api.clone(),
        stop.clone(),
    ));
    shutdown.await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    // Connections get a moment to say goodbye (MQTT 5 DISCONNECT), then
    // their last changes (sessions detached) are committed.
    gateway.stop(cfg.shutdown_grace).await;
    api_task.await.context("control plane task")?;
    jobs_clock.await.context("jobs clock task")?;
    if let Some(feed) = registry_feed {
        feed.await.context("registry change feed task")?;
    }
    if let Some(cluster) = cluster {
        cluster.stopped().await;
    }
    tracing::info!("roost stopped");
    Ok(())
}

/// SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = terminate => {},
    }
}

/// The shell lines that point the aws CLI and boto3 at the Roost whose
/// data directory is `data_dir`.
pub fn env_lines(data_dir: &Path) -> String {
    format!(
        "export AWS_SHARED_CREDENTIALS_FILE={}\nexport AWS_CONFIG_FILE={}\nexport AWS_PROFILE={PROFILE}\n",
        data_dir.join(CREDENTIALS_FILE).display(),
        data_dir.join(AWS_CONFIG_FILE).display(),
    )
}

/// `roost env`: the export lines for a data directory, checked to exist.
pub fn print_env(data_dir: Option<&Path>) -> Result<()> {
    let dir = data_dir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| std::path::PathBuf::from(crate::config::DEFAULT_DATA_DIR));
    let dir = std::fs::canonicalize(&dir).with_context(|| {
        format!(
            "{} does not exist: start Roost first (roost serve --data-dir {})",
            dir.display(),
            dir.display()
        )
    })?;
    if !dir.join(CREDENTIALS_FILE).exists() {
        anyhow::bail!(
            "{} has no credentials file: start Roost once with --data-dir {}",
            dir.display(),
            dir.display()
        );
    }
    print!("{}", env_lines(&dir));
    Ok(())
}

/// Creates the admin access key and the shared-credentials file on first
/// start. Returns Some when it created them.
async fn ensure_credentials(registry: &Registry, data_dir: &Path) -> Result<Option<()>> {
    let path = data_dir.join(CREDENTIALS_FILE);
    if path.exists() {
        // A registry database newer than the data directory (a first start
        // on PostgreSQL, say) learns the key the file holds.
        let text = std::fs::read_to_string(&path).context("reading the credentials file")?;
        let value = |key: &str| {
            text.lines()
                .filter_map(|l| l.split_once('='))
                .find(|(k, _)| k.trim() == key)
                .map(|(_, v)| v.trim().to_string())
        };
        if let (Some(id), Some(secret)) =
            (value("aws_access_key_id"), value("aws_secret_access_key"))
        {
            if registry
                .import_access_key(&id, &secret, "admin key from the data directory")
                .await?
            {
                tracing::info!(access_key_id = %id, "stored the credentials file's key in the registry");
            }
        }
        return Ok(None);
    }
    let (id, secret) = registry
        .create_access_key("admin key created on first start")
        .await?;
    let text = format!("[{PROFILE}]\naws_access_key_id = {id}\naws_secret_access_key = {secret}\n");
    write_private_file(&path, text.as_bytes()).context("writing the credentials file")?;
    Ok(Some(()))
}

/// An AWS config file whose `roost` profile points every client at this server.
fn write_aws_config(data_dir: &Path, region: &str, endpoint: &str) -> Result<()> {
    let text = format!("[profile {PROFILE}]\nregion = {region}\nendpoint_url = {endpoint}\n");
    write_public_file(&data_dir.join(AWS_CONFIG_FILE), text.as_bytes())?;
    Ok(())
}

/// What `/readyz` checks besides the registry's read: on a shared registry,
/// that this node has every change the others made, lately; on a cluster
/// node, NATS and JetStream.
fn readiness_checks(
    registry: &Registry,
    shared_registry: bool,
    cluster: Option<&roost_nats::Joined>,
) -> Vec<roost_api::health::ReadinessCheck> {
    let mut checks: Vec<roost_api::health::ReadinessCheck> = Vec::new();
    if shared_registry {
        let registry = registry.clone();
        checks.push((
            "registry changes",
            std::sync::Arc::new(move || registry.freshness().check()),
        ));
    }
    if let Some(cluster) = cluster {
        checks.push(("nats", std::sync::Arc::new(cluster.connection_check())));
    }
    checks
}
