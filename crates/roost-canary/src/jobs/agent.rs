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
/// A CSR rotation: how often the certificate URL is tried, and how often
/// the IN_PROGRESS report carrying the CSR is sent again (in case it was
/// lost with a connection).
const CSR_POLL: Duration = Duration::from_secs(2);
const CSR_PROGRESS_EVERY: Duration = Duration::from_secs(60);

pub struct JobsAgent {
    pub topics: Topics,
    pub events: mpsc::Receiver<LinkEvent>,
    pub requests: mpsc::Sender<LinkRequest>,
    pub store: Store,
    pub settings: AgentSettings,
    pub device_ca: Vec<CertificateDer<'static>>,
    pub rotation_deadline: Duration,
    /// How long a CSR rotation waits for its signed certificate.
    pub csr_wait: Duration,
    /// Turns true when the canary stops.
    pub shutdown: watch::Receiver<bool>,
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
                    Some(Ok(Operation::RotateCert(r))) => {
                        match self.rotate(&mut job, r, http).await {
                            Ok(report) => report,
                            Err(Interrupted) => {
                                // A clean stop: the job runs again at the
                                // next start, and this one does not count.
                                job.starts -= 1;
                                self.save(&job);
                                return job;
                            }
                        }
                    }
                }
            };
            job.report = Some(report);
            job.csr_key = None;
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
    ) -> Result<Report, Interrupted> {
        let failed = |reason: String| Report::new(ReportStatus::Failed).detail("reason", reason);
        let (cert, key) = if r.csr {
            match self.csr_exchange(job, &r, http).await? {
                Ok(pair) => pair,
                Err(reason) => return Ok(failed(reason)),
            }
        } else {
            let cert = match download(http, &r.cert_url).await {
                Ok(b) => b,
                Err(e) => return Ok(failed(format!("downloading the certificate: {e}"))),
            };
            let key_url = r.key_url.as_deref().unwrap_or_default();
            let key = match download(http, key_url).await {
                Ok(b) => b,
                Err(e) => return Ok(failed(format!("downloading the private key: {e}"))),
            };
            (cert, key)
        };
        failpoint("rotate:after-download");
        let paths = self.pair_paths();
        let current = match paths.read() {
            Ok(p) => p,
            Err(e) => return Ok(failed(format!("reading the certificate in use: {e}"))),
        };
        let (cert, key) = match &r.encryption {
            None => (cert, key),
            Some(scheme) => match decrypt(&current, scheme, cert, key) {
                Ok(files) => files,
                Err(e) => return Ok(failed(e)),
            },
        };
        let new = Pair {
            cert_pem: cert,
            key_pem: key,
        };
        let previous_id = match current.certificate_id() {
            Ok(id) => id,
            Err(e) => return Ok(failed(format!("the certificate in use: {e}"))),
        };
        let new_id = match new.check(
            &self.device_ca,
            r.certificate_id.as_deref(),
            UnixTime::now(),
        ) {
            Ok(id) => id,
            Err(e) => {
                return Ok(failed(format!(
                    "the new certificate was not installed: {e}"
                )))
            }
        };
        if new_id == previous_id {
            return Ok(Report::new(ReportStatus::Succeeded).detail("certificateId", new_id));
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
            return Ok(failed(format!(
                "writing the new pair: {e}{}",
                match restored {
                    Ok(()) => String::new(),
                    Err(e) => format!(" (and restoring the previous one: {e})"),
                }
            )));
        }
        let tls = match uplink::tls_config(&self.settings) {
            Ok(tls) => Arc::new(tls),
            Err(e) => {
                let _ = rotation::restore(&paths);
                job.rotation = None;
                self.save(job);
                return Ok(failed(format!("the new pair cannot be used: {e}")));
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
            Ok(()) => outcome.await.ok(),
            Err(_) => None,
        };
        let Some(outcome) = outcome else {
            // The connection task ended: the canary is stopping. The new
            // pair never connected; the previous one goes back and the job
            // runs again at the next start.
            let _ = rotation::restore(&paths);
            job.rotation = None;
            self.save(job);
            return Err(Interrupted);
        };
        Ok(match outcome {
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
        })
    }

    /// A CSR rotation's first half: a key made here (kept in the job state,
    /// 0600, so that a restart sends the same CSR), its CSR sent in an
    /// IN_PROGRESS report's statusDetails (`csr`: the DER in base64), then
    /// the certificate URL polled until the operator has put the signed
    /// certificate there. The certificate and the key, or why not.
    async fn csr_exchange(
        &mut self,
        job: &mut JobState,
        r: &RotateCert,
        http: &reqwest::Client,
    ) -> Result<Result<(Vec<u8>, Vec<u8>), String>, Interrupted> {
        let key_pem = match &job.csr_key {
            Some(pem) => pem.clone(),
            None => match rcgen::KeyPair::generate() {
                Ok(key) => {
                    let pem = key.serialize_pem();
                    job.csr_key = Some(pem.clone());
                    self.save(job);
                    pem
                }
                Err(e) => return Ok(Err(format!("making a key: {e}"))),
            },
        };
        let csr = match csr_der(&key_pem, &self.settings.thing) {
            Ok(der) => der,
            Err(e) => return Ok(Err(e)),
        };
        let progress = Report::new(ReportStatus::InProgress)
            .detail("step", "waiting-for-certificate")
            .detail(
                "csr",
                base64::Engine::encode(&base64::engine::general_purpose::STANDARD, csr),
            );
        let until = Instant::now() + self.csr_wait;
        let mut next_progress = Instant::now();
        loop {
            if Instant::now() >= next_progress {
                let token = uuid::Uuid::new_v4().simple().to_string();
                let _ = self
                    .requests
                    .send(LinkRequest::Publish {
                        topic: self.topics.update(&job.job_id),
                        payload: progress.payload(job.execution_number, &token),
                    })
                    .await;
                next_progress = Instant::now() + CSR_PROGRESS_EVERY;
            }
            match fetch(http, &r.cert_url).await {
                Ok(Some(cert)) => return Ok(Ok((cert, key_pem.into_bytes()))),
                Ok(None) => {}
                Err(e) => tracing::debug!(error = %e, "the signed certificate is not there yet"),
            }
            if Instant::now() >= until {
                return Ok(Err(format!(
                    "no certificate for the CSR within {}s",
                    self.csr_wait.as_secs()
                )));
            }
            tokio::select! {
                _ = tokio::time::sleep(CSR_POLL) => {}
                _ = self.shutdown.changed() => return Err(Interrupted),
            }
        }
    }
}

/// The job was cut short by the canary stopping: no report.
struct Interrupted;

/// A CSR (DER) for `key_pem` with the thing name as its common name.
fn csr_der(key_pem: &str, thing: &str) -> Result<Vec<u8>, String> {
    let key = rcgen::KeyPair::from_pem(key_pem).map_err(|e| format!("the CSR key: {e}"))?;
    let mut params =
        rcgen::CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, thing);
    let csr = params
        .serialize_request(&key)
        .map_err(|e| format!("making the CSR: {e}"))?;
    Ok(csr.der().to_vec())
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
    fetch(http, url).await?.ok_or_else(|| {
        let shown = url.split('?').next().unwrap_or_default();
        format!("{shown}: not found (HTTP 404 or 403)")
    })
}

/// As [`download`], with `None` for an object that is not there (yet):
/// S3 answers 403 for a missing key to a caller that may not list, Roost
/// 404.
async fn fetch(http: &reqwest::Client, url: &str) -> Result<Option<Vec<u8>>, String> {
    let shown = url.split('?').next().unwrap_or_default().to_string();
    let mut response = http
        .get(url)
        .send()
        .await
        .map_err(|e| format!("{shown}: {}", e.without_url()))?;
    if matches!(response.status().as_u16(), 403 | 404) {
        return Ok(None);
    }
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
    Ok(Some(body))
}

/// Stops the process here, as a kill -9 would, when the failpoint
/// environment variable names this point (tests only).
fn failpoint(name: &str) {
    if std::env::var(FAILPOINT_ENV).is_ok_and(|v| v == name) {
        eprintln!("roost-canary: failpoint {name}: stopping");
        std::process::abort();
    }
}
