//! The jobs agent: works through the thing's jobs over the canary's own
//! MQTT connection (through the uplink's [`JobsLink`]).
//!
//! On every connection it either sends the report it still owes, or asks
//! for the next job (start-next); a notify-next while idle asks again. Each
//! job runs to a report, which is written to the job state before it is
//! sent and forgotten only once the service accepted it (or says the
//! execution is already settled), so that a restart in between sends it
//! again rather than losing it. Requests that get no reply are sent again.

use super::document::{self, Operation, RotateCert};
use super::protocol::{Execution, Incoming, Report, ReportStatus, Topics};
use super::rotation::{self, Journal, Pair, PairPaths, Phase};
use super::scan;
use super::state::{JobState, Store, MAX_STARTS};
use crate::config::AgentSettings;
use crate::status::Status;
use crate::uplink::{self, LinkEvent, LinkRequest};
use rustls::pki_types::{CertificateDer, UnixTime};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};

/// A request with no reply after this long is sent again.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// Downloads: the longest wait and the largest file (a certificate or key
/// is a few KB).
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_DOWNLOAD: usize = 64 * 1024;
/// The environment variable that stops the canary at a named point of a
/// rotation (`rotate:after-download`, `rotate:after-key`,
/// `rotate:after-cert`, `rotate:before-report`), as a kill -9 would: the
/// tests use it to show that every such death is survived.
pub const FAILPOINT_ENV: &str = "ROOST_CANARY_FAILPOINT";

pub struct JobsAgent {
    pub topics: Topics,
    pub events: mpsc::Receiver<LinkEvent>,
    pub requests: mpsc::Sender<LinkRequest>,
    pub store: Store,
    pub settings: AgentSettings,
    pub device_ca: Vec<CertificateDer<'static>>,
    pub rotation_deadline: Duration,
    /// The canary's own services and where they listen (for localScan).
    pub services: Vec<(String, SocketAddr)>,
    pub status: Arc<Status>,
}

/// The request waiting for its reply.
struct Waiting {
    token: String,
    sent: Instant,
}

impl JobsAgent {
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut job = match self.store.load() {
            Ok(job) => job,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the job state; jobs are not run");
                return;
            }
        };
        let http = match reqwest::Client::builder()
            .timeout(DOWNLOAD_TIMEOUT)
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "cannot build the download client; jobs are not run");
                return;
            }
        };
        let mut ready = false;
        let mut waiting: Option<Waiting> = None;
        loop {
            let resend_in = waiting
                .as_ref()
                .map(|w| REPLY_TIMEOUT.saturating_sub(w.sent.elapsed()));
            let event = tokio::select! {
                event = self.events.recv() => match event {
                    Some(event) => event,
                    None => return,
                },
                _ = tokio::time::sleep(resend_in.unwrap_or_default()), if resend_in.is_some() => {
                    tracing::warn!("no reply from the jobs service; asking again");
                    waiting = self.next_request(&job).await;
                    continue;
                }
                _ = shutdown.changed() => return,
            };
            match event {
                LinkEvent::Ready { jobs } => {
                    ready = jobs;
                    waiting = None;
                    if ready {
                        waiting = self.next_request(&job).await;
                    }
                }
                LinkEvent::Down => {
                    ready = false;
                    waiting = None;
                }
                LinkEvent::Message { topic, payload } => {
                    let incoming = match self.topics.classify(&topic, &payload) {
                        Ok(incoming) => incoming,
                        Err(e) => {
                            tracing::warn!(error = %e, "an unreadable jobs message; ignored");
                            continue;
                        }
                    };
                    let ours = |token: &Option<String>| {
                        waiting.as_ref().map(|w| &w.token) == token.as_ref()
                    };
                    match incoming {
                        Incoming::StartNextAccepted(reply) if ours(&reply.client_token) => {
                            waiting = None;
                            if let Some(execution) = reply.execution {
                                let state = self.work(job.take(), execution, &http).await;
                                job = Some(state);
                                if ready {
                                    waiting = self.next_request(&job).await;
                                }
                            }
                        }
                        Incoming::UpdateAccepted { job_id, token } if ours(&token) => {
                            if job.as_ref().is_some_and(|j| j.job_id == job_id) {
                                job = self.finished(job.take());
                            }
                            waiting = self.next_request(&job).await;
                        }
                        Incoming::Rejected { request, error } if ours(&error.client_token) => {
                            waiting = None;
                            tracing::warn!(request = %request, code = %error.code, message = %error.message, "the jobs service rejected a request");
                            if request.ends_with("/update")
                                && (error.execution_is_settled()
                                    || matches!(
                                        error.code.as_str(),
                                        "InvalidRequest" | "VersionMismatch" | "InvalidJson"
                                    ))
                            {
                                // Nothing more can be said about this job.
                                job = self.finished(job.take());
                                waiting = self.next_request(&job).await;
                            }
                            // Otherwise (throttled, an internal error): asked
                            // again at the next connection or notification.
                        }
                        Incoming::NotifyNext(n)
                            if n.execution.is_some()
                                && ready
                                && waiting.is_none()
                                && job.is_none() =>
                        {
                            waiting = self.next_request(&job).await;
                        }
                        _ => {}
                    }
                }
            }
        }
    }

    /// Sends what the job state calls for: its report, or start-next.
    async fn next_request(&self, job: &Option<JobState>) -> Option<Waiting> {
        let token = uuid::Uuid::new_v4().simple().to_string();
        let (topic, payload) = match job.as_ref().and_then(|j| Some((j, j.report.as_ref()?))) {
            Some((j, report)) => (
                self.topics.update(&j.job_id),
                report.payload(j.execution_number, &token),
            ),
            None => (
                self.topics.start_next(),
                super::protocol::start_next_payload(&token),
            ),
        };
        self.requests
            .send(LinkRequest::Publish { topic, payload })
            .await
            .ok()?;
        Some(Waiting {
            token,
            sent: Instant::now(),
        })
    }

    /// The job's report was accepted: it is forgotten.
    fn finished(&self, job: Option<JobState>) -> Option<JobState> {
        if let Some(j) = &job {
            if let Some(report) = &j.report {
                self.status.job_ended(&j.job_id, report.status.name());
                tracing::info!(job = %j.job_id, status = report.status.name(), "job reported");
            }
        }
        if let Err(e) = self.store.clear() {
            tracing::error!(error = %e, "cannot remove the finished job's state");
        }
        None
    }

    /// Runs `execution` (resuming it if the state says it was started
    /// before) to its report, which is in the returned state and on disk.
    async fn work(
        &mut self,
        previous: Option<JobState>,
        execution: Execution,
        http: &reqwest::Client,
    ) -> JobState {
        let mut job = match previous {
            Some(j) if j.job_id == execution.job_id => j,
            _ => JobState::new(&execution.job_id, execution.execution_number),
        };
        if job.report.is_none() {
            job.starts += 1;
            self.save(&job);
            tracing::info!(job = %job.job_id, start = job.starts, "job started");
            let report = if job.starts > MAX_STARTS {
                job.settle_after_restart();
                job.report
                    .take()
                    .unwrap_or_else(|| Report::new(ReportStatus::Failed))
            } else {
                match execution.job_document.as_ref().map(document::parse) {
                    None => Report::new(ReportStatus::Rejected)
                        .detail("reason", "the execution came without its job document"),
                    Some(Err(refusal)) => {
                        Report::new(ReportStatus::Rejected).detail("reason", refusal.to_string())
                    }
                    Some(Ok(Operation::LocalScan)) => self.local_scan(),
                    Some(Ok(Operation::RotateCert(r))) => self.rotate(&mut job, r, http).await,
                }
            };
            job.report = Some(report);
            self.save(&job);
        }
        job
    }

    fn save(&self, job: &JobState) {
        if let Err(e) = self.store.save(job) {
            tracing::error!(error = %e, "cannot write the job state");
        }
    }

    fn local_scan(&self) -> Report {
        match scan::listening() {
            Ok(listeners) => {
                let services: Vec<String> = self
                    .services
                    .iter()
                    .map(|(name, addr)| format!("{name}:{}", addr.port()))
                    .collect();
                Report::new(ReportStatus::Succeeded)
                    .detail("listeningPorts", scan::ports(&listeners))
                    .detail("listeningSockets", listeners.len().to_string())
                    .detail("canaryServices", services.join(","))
            }
            Err(e) => Report::new(ReportStatus::Failed)
                .detail("reason", format!("cannot read the host's sockets: {e}")),
        }
    }

    fn pair_paths(&self) -> PairPaths {
        PairPaths {
            cert: self.settings.cert.clone(),
            key: self.settings.key.clone(),
        }
    }

    async fn rotate(
        &mut self,
        job: &mut JobState,
        r: RotateCert,
        http: &reqwest::Client,
    ) -> Report {
        let failed = |reason: String| Report::new(ReportStatus::Failed).detail("reason", reason);
        let cert = match download(http, &r.cert_url).await {
            Ok(b) => b,
            Err(e) => return failed(format!("downloading the certificate: {e}")),
        };
        let key = match download(http, &r.key_url).await {
            Ok(b) => b,
            Err(e) => return failed(format!("downloading the private key: {e}")),
        };
        failpoint("rotate:after-download");
        let paths = self.pair_paths();
        let current = match paths.read() {
            Ok(p) => p,
            Err(e) => return failed(format!("reading the certificate in use: {e}")),
        };
        let (cert, key) = match &r.encryption {
            None => (cert, key),
            Some(scheme) => match decrypt(&current, scheme, cert, key) {
                Ok(files) => files,
                Err(e) => return failed(e),
            },
        };
        let new = Pair {
            cert_pem: cert,
            key_pem: key,
        };
        let previous_id = match current.certificate_id() {
            Ok(id) => id,
            Err(e) => return failed(format!("the certificate in use: {e}")),
        };
        let new_id = match new.check(
            &self.device_ca,
            r.certificate_id.as_deref(),
            UnixTime::now(),
        ) {
            Ok(id) => id,
            Err(e) => return failed(format!("the new certificate was not installed: {e}")),
        };
        if new_id == previous_id {
            return Report::new(ReportStatus::Succeeded).detail("certificateId", new_id);
        }
        job.rotation = Some(Journal {
            phase: Phase::Installing,
            previous_certificate_id: previous_id.clone(),
            certificate_id: new_id.clone(),
        });
        self.save(job);
        if let Err(e) =
            rotation::install(&paths, &new, |point| failpoint(&format!("rotate:{point}")))
        {
            let restored = rotation::restore(&paths);
            job.rotation = None;
            self.save(job);
            return failed(format!(
                "writing the new pair: {e}{}",
                match restored {
                    Ok(()) => String::new(),
                    Err(e) => format!(" (and restoring the previous one: {e})"),
                }
            ));
        }
        let tls = match uplink::tls_config(&self.settings) {
            Ok(tls) => Arc::new(tls),
            Err(e) => {
                let _ = rotation::restore(&paths);
                job.rotation = None;
                self.save(job);
                return failed(format!("the new pair cannot be used: {e}"));
            }
        };
        let (done, outcome) = oneshot::channel();
        let switched = self
            .requests
            .send(LinkRequest::Switch {
                tls,
                deadline: self.rotation_deadline,
                done,
            })
            .await;
        let outcome = match switched {
            Ok(()) => outcome
                .await
                .unwrap_or_else(|_| Err("the connection task ended".into())),
            Err(_) => Err("the connection task ended".into()),
        };
        match outcome {
            Ok(()) => {
                if let Some(j) = job.rotation.as_mut() {
                    j.phase = Phase::Confirmed;
                }
                self.save(job);
                self.status.certificate(&new_id);
                tracing::info!(certificate = %new_id, previous = %previous_id, "connected with the new certificate");
                failpoint("rotate:before-report");
                Report::new(ReportStatus::Succeeded).detail("certificateId", new_id)
            }
            Err(reason) => {
                let restored = rotation::restore(&paths);
                job.rotation = None;
                self.save(job);
                tracing::warn!(reason = %reason, "the gateway refused the new certificate; back on the previous one");
                failed(format!(
                    "the gateway did not accept the new certificate {new_id} within {}s ({reason}); back on {previous_id}{}",
                    self.rotation_deadline.as_secs(),
                    match restored {
                        Ok(()) => String::new(),
                        Err(e) => format!(" (restoring its files failed: {e})"),
                    }
                ))
            }
        }
    }
}

/// Decrypts the two downloaded files with the device's current key
/// (docs/encrypted-delivery.md): the scheme
/// the document names, or the one that fits the key.
fn decrypt(
    current: &Pair,
    scheme: &str,
    cert: Vec<u8>,
    key: Vec<u8>,
) -> Result<(Vec<u8>, Vec<u8>), String> {
    let private = std::str::from_utf8(&current.key_pem)
        .map_err(|_| "the private key in use is not PEM text".to_string())?;
    let open = |what: &str, sealed: &[u8]| {
        let opened = if scheme == document::SCHEME_BY_KEY {
            roost_sealed::open(private, sealed)
        } else {
            roost_sealed::open_with_scheme(scheme, private, sealed)
        };
        opened.map_err(|e| format!("decrypting the {what} ({scheme}): {e}"))
    };
    Ok((open("certificate", &cert)?, open("private key", &key)?))
}

/// GETs `url` (a presigned URL: no credentials), at most `MAX_DOWNLOAD`
/// bytes. The error never shows the URL's query (its signature).
async fn download(http: &reqwest::Client, url: &str) -> Result<Vec<u8>, String> {
    let shown = url.split('?').next().unwrap_or_default().to_string();
    let mut response = http
        .get(url)
        .send()
        .await
        .map_err(|e| format!("{shown}: {}", e.without_url()))?;
    if !response.status().is_success() {
        return Err(format!("{shown}: HTTP {}", response.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("{shown}: {}", e.without_url()))?
    {
        if body.len() + chunk.len() > MAX_DOWNLOAD {
            return Err(format!("{shown}: larger than {MAX_DOWNLOAD} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Stops the process here, as a kill -9 would, when the failpoint
/// environment variable names this point (tests only).
fn failpoint(name: &str) {
    if std::env::var(FAILPOINT_ENV).is_ok_and(|v| v == name) {
        eprintln!("roost-canary: failpoint {name}: stopping");
        std::process::abort();
    }
}
