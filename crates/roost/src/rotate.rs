//! `roost rotate-certs`: rotates the certificates of a thing or of a thing
//! group's things through rotate-cert jobs. For each device it creates a new
//! certificate with the old one's policies, puts the pair in the object store,
//! creates the job, and (with `--wait`) follows the execution: the old
//! certificate goes INACTIVE only once the device has reported SUCCEEDED
//! (which it does over the connection made with the new pair); a failure
//! leaves the old one ACTIVE and the new one INACTIVE.
//!
//! It is a client of the control plane only, so it works against a remote
//! Roost, and it keeps no state of its own: a later run finds its rotations
//! again from the jobs (`rotate-cert-…` ids, the document's certificate ids)
//! and resumes them. The decisions are `plan`'s pure functions; this file
//! makes the calls.
//!
//! What it must never do: switch off a device's certificate before the
//! device has shown the new pair works, or one that other things still
//! use; leave a usable certificate behind when a start fails.

mod plan;

use crate::cert::{create_keys_and_certificate, CreatedKeys};
use crate::client::{label, ApiClient, Listing, Target};
use crate::objects::object_path;
use anyhow::{anyhow, bail, Context, Result};
use plan::{Cert, Next, Outcome, PastExecution, Rotation};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// How often `--wait` asks for each followed execution's status.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Consecutive failed status requests after which a device is given up
/// (re-running resumes it).
const MAX_POLL_ERRORS: u32 = 5;

#[derive(clap::Args, Debug)]
pub struct RotateArgs {
    /// The thing whose certificate to rotate.
    #[arg(long, required_unless_present = "group", conflicts_with = "group")]
    thing: Option<String>,
    /// A thing group: every thing in it and in its subgroups.
    #[arg(long)]
    group: Option<String>,
    /// Follow the executions until each device has finished, then deactivate
    /// the old certificates (or the new ones after a failure).
    #[arg(long)]
    wait: bool,
    /// Seal the new certificate and key to the device's current certificate
    /// (roost-sealed: RSA keys in the scenario's PyCryptodome format, EC
    /// P-256 keys in its ECIES format); the job document names the scheme.
    #[arg(long)]
    encrypt: bool,
    /// Only follow and finish rotations already started; start none.
    #[arg(long)]
    resume: bool,
    /// Start at most N rotations a minute (N/min).
    #[arg(long, value_parser = plan::parse_rate)]
    rate: Option<Duration>,
    /// The bucket the new certificates and keys are put in until the devices
    /// have fetched them.
    #[arg(long, default_value = "roost-rotation")]
    bucket: String,
    /// How long the presigned URLs in the job documents stay valid (60-3600).
    #[arg(long, default_value_t = 3600)]
    expires_in: u64,
    #[command(flatten)]
    target: Target,
}

pub async fn run(args: RotateArgs) -> Result<()> {
    plan::check_expires_in(args.expires_in)?;
    check_bucket(&args.bucket)?;
    let control = Control {
        api: ApiClient::from_target(&args.target)?,
    };
    // Every device is looked up before anything is created, so a typo
    // creates nothing.
    let things = match (&args.thing, &args.group) {
        (Some(thing), _) => vec![thing.clone()],
        (None, Some(group)) => control.group_things(group).await?,
        (None, None) => bail!("name a --thing or a --group"),
    };
    let mut devices = Vec::with_capacity(things.len());
    for thing in things {
        let arn = control.thing_arn(&thing).await?;
        devices.push((thing, arn));
    }
    if devices.is_empty() {
        println!("the group has no things: nothing to rotate");
        return Ok(());
    }

    let mut run = Run::new(devices.len(), args.wait);
    let mut next_start = Instant::now();
    for (thing, thing_arn) in &devices {
        let result = async {
            let certs = control.certificates(thing).await?;
            let found = control.past_rotations(thing, &certs).await?;
            let plain: Vec<Cert> = certs.iter().map(|c| c.cert.clone()).collect();
            anyhow::Ok((certs, plan::next(&plain, &found)))
        }
        .await;
        match result {
            Err(e) => run.failed(thing, format!("{e:#}")),
            Ok((_, Next::Fail(reason))) => run.failed(thing, reason),
            Ok((_, Next::Follow(rotations))) => {
                for rotation in rotations {
                    run.line(format!("{thing}: resuming {}", rotation.job_id));
                    run.follow(thing, rotation);
                }
            }
            Ok((_, Next::Start { .. })) if args.resume => {
                run.line(format!("{thing}: no rotation in progress"));
                run.settle();
            }
            Ok((certs, Next::Start { previous })) => {
                if let Some(pause) = args.rate {
                    while Instant::now() < next_start {
                        if args.wait {
                            run.poll(&control).await;
                        }
                        let left = next_start.saturating_duration_since(Instant::now());
                        tokio::time::sleep(left.min(POLL_INTERVAL)).await;
                    }
                    next_start = Instant::now() + pause;
                }
                match start(&control, &args, thing, thing_arn, &certs, &previous).await {
                    Ok(rotation) => {
                        run.line(format!(
                            "{thing}: started {} (certificate {} replaces {})",
                            rotation.job_id,
                            rotation.new_cert,
                            previous.join(", ")
                        ));
                        run.follow(thing, rotation);
                    }
                    Err(e) => run.failed(thing, format!("{e:#}")),
                }
            }
        }
    }
    // Without --wait, one pass finishes what already ended and leaves the rest.
    run.poll(&control).await;
    while args.wait && run.open() > 0 {
        tokio::time::sleep(POLL_INTERVAL).await;
        run.poll(&control).await;
    }
    run.finish(&args)
}

/// S3's bucket names: 3 to 63 of lowercase letters, digits, dots and hyphens.
fn check_bucket(bucket: &str) -> Result<()> {
    let ok = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    if !ok {
        bail!("--bucket '{bucket}' is not a bucket name (3 to 63 lowercase letters, digits, dots and hyphens)");
    }
    Ok(())
}

/// A certificate attached to the device: what `plan` needs, and its ARN.
struct Attached {
    cert: Cert,
    arn: String,
    pem: String,
}

/// Creates the new certificate, gives it the old ones' policies and the
/// thing, puts the pair in the object store, activates the certificate and
/// creates the job. On any
/// error what was made is undone, so a failed start leaves nothing behind.
async fn start(
    control: &Control,
    args: &RotateArgs,
    thing: &str,
    thing_arn: &str,
    certs: &[Attached],
    previous: &[String],
) -> Result<Rotation> {
    let mut policies: Vec<String> = Vec::new();
    for old in certs.iter().filter(|c| previous.contains(&c.cert.id)) {
        for policy in control.attached_policies(&old.arn).await? {
            if !policies.contains(&policy) {
                policies.push(policy);
            }
        }
    }
    let plain: Vec<Cert> = certs.iter().map(|c| c.cert.clone()).collect();
    let newest = plan::newest(&plain, previous)
        .ok_or_else(|| anyhow!("no ACTIVE certificate attached"))?
        .id
        .clone();
    // The files are sealed to the certificate the device most likely holds;
    // a key encrypted delivery cannot use is refused before anything is made.
    let recipient = match args.encrypt {
        false => None,
        true => {
            let pem = certs
                .iter()
                .find(|c| c.cert.id == newest)
                .map(|c| c.pem.as_str())
                .unwrap_or_default();
            let scheme = roost_sealed::scheme_for(pem)
                .with_context(|| format!("--encrypt: certificate {newest}"))?;
            Some((pem, scheme.name()))
        }
    };
    // INACTIVE until the job is about to be created: a run killed half-way
    // leaves at worst an INACTIVE certificate, never a second usable one.
    let new = create_keys_and_certificate(&control.api, false).await?;
    let objects = plan::object_names(&args.bucket, thing, &new.id);
    let rotation = Rotation {
        job_id: plan::job_id(thing, &new.id),
        new_cert: new.id.clone(),
        previous: previous.to_vec(),
        objects: objects.to_vec(),
    };
    let made = async {
        for policy in &policies {
            control.attach_policy(policy, &new.arn).await?;
        }
        control.attach_thing_principal(thing, &new.arn).await?;
        let files = [
            new.certificate_pem.as_bytes(),
            new.private_key_pem.as_bytes(),
        ];
        for (object, file) in objects.iter().zip(files) {
            let bytes = match recipient {
                Some((pem, _)) => roost_sealed::seal(pem, file)
                    .with_context(|| format!("sealing {object} to certificate {newest}"))?,
                None => file.to_vec(),
            };
            control.put_object(object, &bytes).await?;
        }
        let scheme = recipient.map(|(_, scheme)| scheme);
        let document = plan::job_document(&objects, &new.id, &newest, scheme);
        control.set_status(&new.id, "ACTIVE").await?;
        control
            .create_job(&rotation.job_id, thing_arn, &document, args.expires_in)
            .await
    }
    .await;
    if let Err(e) = made {
        control.discard(thing, &new, &policies, &objects).await;
        return Err(e.context(format!("starting the rotation of {thing}")));
    }
    Ok(rotation)
}

/// One rotation being followed.
struct Followed {
    thing: String,
    rotation: Rotation,
    status: Option<String>,
    errors: u32,
    open: bool,
}

/// What this run did, and its progress on standard error: a bar when it is a
/// terminal, plain lines otherwise.
struct Run {
    followed: Vec<Followed>,
    failures: Vec<(String, String)>,
    succeeded: usize,
    bar: Option<indicatif::ProgressBar>,
    wait: bool,
    devices: usize,
}

impl Run {
    fn new(devices: usize, wait: bool) -> Self {
        let bar = (wait && std::io::IsTerminal::is_terminal(&std::io::stderr())).then(|| {
            let bar = indicatif::ProgressBar::new(devices as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} devices {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Self {
            followed: Vec::new(),
            failures: Vec::new(),
            succeeded: 0,
            bar,
            wait,
            devices,
        }
    }

    fn line(&self, text: String) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }

    fn settle(&self) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
            bar.set_message(format!(
                "({} rotated, {} failed)",
                self.succeeded,
                self.failures.len()
            ));
        }
    }

    fn failed(&mut self, thing: &str, reason: String) {
        self.line(format!("{thing}: failed: {reason}"));
        self.failures.push((thing.to_string(), reason));
        self.settle();
    }

    fn follow(&mut self, thing: &str, rotation: Rotation) {
        self.followed.push(Followed {
            thing: thing.to_string(),
            rotation,
            status: None,
            errors: 0,
            open: true,
        });
    }

    fn open(&self) -> usize {
        self.followed.iter().filter(|f| f.open).count()
    }

    /// Asks once for every open execution's status and finishes those that
    /// ended.
    async fn poll(&mut self, control: &Control) {
        for i in 0..self.followed.len() {
            if !self.followed[i].open {
                continue;
            }
            let (thing, job) = (
                self.followed[i].thing.clone(),
                self.followed[i].rotation.job_id.clone(),
            );
            let (status, details) = match control.execution(&thing, &job).await {
                Ok(answer) => answer,
                Err(e) => {
                    let f = &mut self.followed[i];
                    f.errors += 1;
                    if f.errors >= MAX_POLL_ERRORS {
                        f.open = false;
                        let reason = format!("lost track of {job}: {e:#} (run again to resume)");
                        self.failed(&thing, reason);
                    }
                    continue;
                }
            };
            self.followed[i].errors = 0;
            if self.followed[i].status.as_deref() != Some(status.as_str()) {
                if self.wait {
                    self.line(format!("{thing}: {job} {status}"));
                }
                self.followed[i].status = Some(status.clone());
            }
            let rotation = self.followed[i].rotation.clone();
            let outcome = plan::outcome(&status, &details, &rotation.new_cert);
            if outcome == Outcome::Pending {
                continue;
            }
            self.followed[i].open = false;
            match (
                conclude(control, &thing, &rotation, &outcome).await,
                outcome,
            ) {
                (Err(e), _) => self.failed(&thing, format!("{job}: {e:#} (run again to resume)")),
                (Ok(_), Outcome::Failed(reason)) => self.failed(
                    &thing,
                    format!(
                        "{reason} ({job}; certificate {} set INACTIVE, the old one kept)",
                        rotation.new_cert
                    ),
                ),
                (Ok(_), Outcome::Unconfirmed(reason)) => {
                    self.failed(&thing, format!("{reason} ({job})"))
                }
                (Ok(retired), _) => {
                    self.succeeded += 1;
                    self.line(format!(
                        "{thing}: rotated to {}; {retired}",
                        rotation.new_cert
                    ));
                    self.settle();
                }
            }
        }
    }

    /// Prints the summary on standard output; an error when any device failed.
    fn finish(self, args: &RotateArgs) -> Result<()> {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        let pending: Vec<&Followed> = self.followed.iter().filter(|f| f.open).collect();
        println!(
            "{} rotated, {} failed, {} in progress",
            self.succeeded,
            self.failures.len(),
            pending.len()
        );
        for f in &pending {
            println!("in progress: {} {}", f.thing, f.rotation.job_id);
        }
        if !pending.is_empty() {
            let which = match (&args.thing, &args.group) {
                (Some(thing), _) => format!("--thing {thing}"),
                (_, Some(group)) => format!("--group {group}"),
                _ => String::new(),
            };
            println!("follow them with: roost rotate-certs {which} --resume --wait (running it again also resumes them)");
        }
        for (thing, reason) in &self.failures {
            println!("failed: {thing}: {reason}");
        }
        if !self.failures.is_empty() {
            bail!(
                "{} of {} devices failed to rotate",
                self.failures.len(),
                self.devices
            );
        }
        Ok(())
    }
}

/// Finishes an ended rotation: after a success the old certificates go
/// INACTIVE (one still attached to other things is only detached from this
/// one: they rely on it until their own rotation); after a failure the new
/// one goes INACTIVE and the old ones stay; an unconfirmed success changes
/// neither. The pair leaves the object store. Says what became of the old
/// certificates.
async fn conclude(
    control: &Control,
    thing: &str,
    rotation: &Rotation,
    outcome: &Outcome,
) -> Result<String> {
    let mut retired = Vec::new();
    match outcome {
        Outcome::Succeeded => {
            for old in &rotation.previous {
                let arn = control.certificate_arn(old).await?;
                let holders = control.principal_things(&arn).await?;
                match plan::retire(&holders, thing) {
                    plan::Retire::Deactivate => {
                        control.set_status(old, "INACTIVE").await?;
                        retired.push(format!("{old} INACTIVE"));
                    }
                    plan::Retire::Detach(others) => {
                        control.detach_thing_principal(thing, &arn).await?;
                        retired.push(format!(
                            "{old} detached, left ACTIVE for {}",
                            others.join(", ")
                        ));
                    }
                }
            }
        }
        Outcome::Failed(_) => control.set_status(&rotation.new_cert, "INACTIVE").await?,
        Outcome::Pending | Outcome::Unconfirmed(_) => {}
    }
    for object in &rotation.objects {
        control.delete_object(object).await?;
    }
    Ok(match retired.is_empty() {
        true => "no old certificate".to_string(),
        false => format!("old: {}", retired.join("; ")),
    })
}

/// The control-plane calls rotate-certs makes.
struct Control {
    api: ApiClient,
}

impl Control {
    async fn get(&self, path: &str, query: &str) -> Result<Value> {
        self.api.call("GET", path, query, &[], None).await
    }

    async fn thing_arn(&self, thing: &str) -> Result<String> {
        let described = self
            .get(&format!("/things/{}", label(thing)), "")
            .await
            .with_context(|| format!("looking up thing '{thing}'"))?;
        described["thingArn"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("DescribeThing of '{thing}' answered no thingArn"))
    }

    /// The things of a group and of its subgroups, as a group job targets.
    async fn group_things(&self, group: &str) -> Result<Vec<String>> {
        let path = format!("/thing-groups/{}/things", label(group));
        let listing = Listing {
            query: "recursive=true",
            ..Listing::get(&path, "things")
        };
        let things = self
            .api
            .list_all(&listing)
            .await
            .with_context(|| format!("listing the things of group '{group}'"))?;
        Ok(things
            .iter()
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect())
    }

    /// The certificates attached to the thing (other principals are skipped).
    async fn certificates(&self, thing: &str) -> Result<Vec<Attached>> {
        let path = format!("/things/{}/principals", label(thing));
        let principals = self
            .api
            .list_all(&Listing::get(&path, "principals"))
            .await?;
        let mut certs = Vec::new();
        for arn in principals.iter().filter_map(Value::as_str) {
            let Some((_, id)) = arn.rsplit_once(":cert/") else {
                continue;
            };
            let described = self
                .get(&format!("/certificates/{}", label(id)), "")
                .await?;
            let d = &described["certificateDescription"];
            certs.push(Attached {
                cert: Cert {
                    id: id.to_string(),
                    active: d["status"] == "ACTIVE",
                    created: d["creationDate"].as_f64().unwrap_or(0.0),
                },
                arn: arn.to_string(),
                pem: d["certificatePem"].as_str().unwrap_or_default().to_string(),
            });
        }
        Ok(certs)
    }

    /// The rotations this tool started on the thing that may have work left:
    /// (execution, new certificate, objects).
    async fn past_rotations(
        &self,
        thing: &str,
        certs: &[Attached],
    ) -> Result<Vec<(PastExecution, String, Vec<String>)>> {
        let path = format!("/things/{}/jobs", label(thing));
        let summaries = self
            .api
            .list_all(&Listing::get(&path, "executionSummaries"))
            .await?;
        let past: Vec<PastExecution> = summaries
            .iter()
            .filter_map(|s| {
                Some(PastExecution {
                    job_id: s["jobId"].as_str()?.to_string(),
                    status: s["jobExecutionSummary"]["status"].as_str()?.to_string(),
                })
            })
            .collect();
        let plain: Vec<Cert> = certs.iter().map(|c| c.cert.clone()).collect();
        let mut found = Vec::new();
        for execution in plan::worth_reading(&past, &plain) {
            let answer = self
                .get(
                    &format!("/jobs/{}/job-document", label(&execution.job_id)),
                    "",
                )
                .await?;
            let document: Value = answer["document"]
                .as_str()
                .and_then(|d| serde_json::from_str(d).ok())
                .unwrap_or_default();
            if let Some((new_cert, objects)) = plan::read_document(&document) {
                found.push((execution.clone(), new_cert, objects));
            }
        }
        Ok(found)
    }

    async fn attached_policies(&self, cert_arn: &str) -> Result<Vec<String>> {
        let path = format!("/attached-policies/{}", label(cert_arn));
        let listing = Listing {
            method: "POST",
            query: "recursive=false",
            token: ("marker", "nextMarker"),
            ..Listing::get(&path, "policies")
        };
        let policies = self.api.list_all(&listing).await?;
        Ok(policies
            .iter()
            .filter_map(|p| p["policyName"].as_str().map(str::to_string))
            .collect())
    }

    async fn attach_policy(&self, policy: &str, target: &str) -> Result<()> {
        let path = format!("/target-policies/{}", label(policy));
        let body = json!({ "target": target });
        self.api.call("PUT", &path, "", &[], Some(&body)).await?;
        Ok(())
    }

    async fn certificate_arn(&self, cert_id: &str) -> Result<String> {
        let described = self
            .get(&format!("/certificates/{}", label(cert_id)), "")
            .await?;
        described["certificateDescription"]["certificateArn"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("DescribeCertificate of {cert_id} answered no certificateArn"))
    }

    /// ListPrincipalThings: the things a certificate is attached to.
    async fn principal_things(&self, arn: &str) -> Result<Vec<String>> {
        let header = [("x-amzn-principal", arn)];
        let listing = Listing {
            headers: &header,
            ..Listing::get("/principals/things", "things")
        };
        let things = self.api.list_all(&listing).await?;
        Ok(things
            .iter()
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect())
    }

    async fn detach_thing_principal(&self, thing: &str, principal: &str) -> Result<()> {
        let path = format!("/things/{}/principals", label(thing));
        let header = [("x-amzn-principal", principal)];
        self.api.call("DELETE", &path, "", &header, None).await?;
        Ok(())
    }

    async fn attach_thing_principal(&self, thing: &str, principal: &str) -> Result<()> {
        let path = format!("/things/{}/principals", label(thing));
        let header = [("x-amzn-principal", principal)];
        self.api.call("PUT", &path, "", &header, None).await?;
        Ok(())
    }

    async fn put_object(&self, object: &str, bytes: &[u8]) -> Result<()> {
        let body = Some((bytes.to_vec(), "application/octet-stream"));
        self.api
            .call_raw("PUT", &object_path(object)?, "", &[], body)
            .await
            .with_context(|| format!("putting {object}"))?;
        Ok(())
    }

    /// Removes an object; one already gone is fine.
    async fn delete_object(&self, object: &str) -> Result<()> {
        match self
            .api
            .call_raw("DELETE", &object_path(object)?, "", &[], None)
            .await
        {
            Err(e) if e.to_string().starts_with("NoSuchKey") => Ok(()),
            other => other
                .map(|_| ())
                .with_context(|| format!("removing {object}")),
        }
    }

    async fn create_job(
        &self,
        job_id: &str,
        thing_arn: &str,
        document: &Value,
        expires_in: u64,
    ) -> Result<()> {
        let body = json!({
            "targets": [thing_arn],
            "document": document.to_string(),
            "description": "roost rotate-certs",
            "targetSelection": "SNAPSHOT",
            "presignedUrlConfig": { "expiresInSec": expires_in },
        });
        let path = format!("/jobs/{}", label(job_id));
        self.api
            .call("PUT", &path, "", &[], Some(&body))
            .await
            .with_context(|| format!("creating job {job_id}"))?;
        Ok(())
    }

    /// DescribeJobExecution: the status and statusDetails (`DELETED` when
    /// the execution is gone).
    async fn execution(&self, thing: &str, job_id: &str) -> Result<(String, Value)> {
        let path = format!("/things/{}/jobs/{}", label(thing), label(job_id));
        let described = match self.get(&path, "").await {
            // Deleted (DeleteJob --force): it will never succeed.
            Err(e) if e.to_string().starts_with("ResourceNotFoundException") => {
                let reason = "the job or its execution was deleted";
                return Ok(("DELETED".to_string(), json!({ "reason": reason })));
            }
            other => other?,
        };
        let execution = &described["execution"];
        let status = execution["status"]
            .as_str()
            .ok_or_else(|| anyhow!("DescribeJobExecution answered no status"))?;
        Ok((
            status.to_string(),
            execution["statusDetails"]["detailsMap"].clone(),
        ))
    }

    async fn set_status(&self, cert_id: &str, status: &str) -> Result<()> {
        let path = format!("/certificates/{}", label(cert_id));
        self.api
            .call("PUT", &path, &format!("newStatus={status}"), &[], None)
            .await
            .with_context(|| format!("setting certificate {cert_id} {status}"))?;
        Ok(())
    }

    /// Undoes a start that failed half-way, as far as it can: nothing it made
    /// is left usable (the certificate is at least INACTIVE).
    async fn discard(
        &self,
        thing: &str,
        new: &CreatedKeys,
        policies: &[String],
        objects: &[String],
    ) {
        let _ = self.set_status(&new.id, "INACTIVE").await;
        let _ = self.detach_thing_principal(thing, &new.arn).await;
        for policy in policies {
            let path = format!("/target-policies/{}", label(policy));
            let body = json!({ "target": new.arn });
            let _ = self.api.call("POST", &path, "", &[], Some(&body)).await;
        }
        let path = format!("/certificates/{}", label(&new.id));
        let _ = self.api.call("DELETE", &path, "", &[], None).await;
        for object in objects {
            let _ = self.delete_object(object).await;
        }
    }
}
