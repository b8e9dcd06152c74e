//! The decisions of `roost rotate-certs`, as pure functions: which
//! certificates a device holds, what a past rotation left to do, the job id
//! and document of a new rotation, what an execution's status means. No I/O
//! here: `rotate.rs` asks the control plane and acts on what these decide.

use anyhow::{bail, Result};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::time::Duration;

/// Every rotation job's id starts with this; it is how a later run finds them.
pub const JOB_PREFIX: &str = "rotate-cert-";
/// A job id is at most 64 characters (CreateJob's limit).
const MAX_JOB_ID: usize = 64;
/// How much of the new certificate's id ends the job id.
const SHORT_CERT_ID: usize = 12;
/// How much of a thing name's SHA-256 stands for it when the name does not fit.
const THING_HASH: usize = 16;
/// The object names the job document gives the device, as in the scenario.
pub const CERT_FILE: &str = "certificate.pem.crt";
pub const KEY_FILE: &str = "private.pem.key";
const PLACEHOLDER: &str = "${aws:iot:s3-presigned-url:https://s3.amazonaws.com/";

/// One certificate attached to the device, as DescribeCertificate tells it.
#[derive(Debug, Clone, PartialEq)]
pub struct Cert {
    pub id: String,
    pub active: bool,
    /// creationDate, epoch seconds.
    pub created: f64,
}

/// A rotation this tool started, found again from its job.
#[derive(Debug, Clone, PartialEq)]
pub struct Rotation {
    pub job_id: String,
    /// The new certificate's id (the document's `certificateId`).
    pub new_cert: String,
    /// The certificates to set INACTIVE once the device has rotated.
    pub previous: Vec<String>,
    /// BUCKET/KEY of the certificate and key files, deleted at the end.
    pub objects: Vec<String>,
}

/// What a device's execution status means for its rotation.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// QUEUED or IN_PROGRESS: the device has not finished.
    Pending,
    Succeeded,
    /// FAILED, REJECTED, TIMED_OUT, CANCELED, REMOVED (or the execution
    /// deleted), with the reason.
    Failed(String),
    /// SUCCEEDED, but the device says it uses another certificate than the
    /// new one: neither certificate can safely be switched off.
    Unconfirmed(String),
}

/// An execution of a rotate-cert job on the device, as
/// ListJobExecutionsForThing lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct PastExecution {
    pub job_id: String,
    pub status: String,
}

/// What to do for one device.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Follow rotations already under way, or finish what a terminal one
    /// left (its old certificate still ACTIVE, or its new one after a failure).
    Follow(Vec<Rotation>),
    /// Start a new rotation away from these ACTIVE certificates.
    Start { previous: Vec<String> },
    /// Nothing can be done: the reason.
    Fail(String),
}

/// `--rate N/min` (or `N`): the pause between two rotations' starts.
pub fn parse_rate(text: &str) -> Result<Duration> {
    let number = text.strip_suffix("/min").unwrap_or(text).trim();
    match number.parse::<u32>() {
        Ok(n) if (1..=60_000).contains(&n) => Ok(Duration::from_secs(60) / n),
        _ => bail!("--rate '{text}' is not N/min with N from 1 to 60000 (e.g. --rate 10/min)"),
    }
}

/// `--expires-in`: CreateJob takes presigned URLs valid 60 s to 1 hour.
pub fn check_expires_in(secs: u64) -> Result<()> {
    if !(60..=3600).contains(&secs) {
        bail!("--expires-in {secs}: presigned URLs last from 60 to 3600 seconds");
    }
    Ok(())
}

/// `rotate-cert-<thing or its hash>-<first 12 of the new certificate id>`:
/// at most 64 characters of `[a-zA-Z0-9_-]`, as CreateJob requires. Thing
/// names may hold `:` and run to 128 characters; those that do not fit are
/// replaced by the start of their SHA-256.
pub fn job_id(thing: &str, new_cert: &str) -> String {
    let short = &new_cert[..new_cert.len().min(SHORT_CERT_ID)];
    let room = MAX_JOB_ID - JOB_PREFIX.len() - 1 - short.len();
    let plain = thing
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    let name = if plain && thing.len() <= room {
        thing.to_string()
    } else {
        hex::encode(Sha256::digest(thing.as_bytes()))[..THING_HASH].to_string()
    };
    format!("{JOB_PREFIX}{name}-{short}")
}

/// BUCKET/KEY of the certificate and key files of one rotation.
pub fn object_names(bucket: &str, thing: &str, new_cert: &str) -> [String; 2] {
    [CERT_FILE, KEY_FILE].map(|file| format!("{bucket}/rotate-certs/{thing}/{new_cert}/{file}"))
}

/// The job document: the scenario's format (`job-rotate-cert.json`) with
/// presigned placeholders, plus the ids the device and a later run check,
/// and the encryption scheme when the files are sealed.
pub fn job_document(
    objects: &[String; 2],
    new_cert: &str,
    previous: &str,
    scheme: Option<&str>,
) -> Value {
    let file = |name: &str, object: &str| json!({"fileName": name, "url": format!("{PLACEHOLDER}{object}}}")});
    let mut document = json!({
        "operation": "rotate-cert",
        "version": "1.0",
        "autoStart": "true",
        "workingDirectory": ".",
        "cert": file(CERT_FILE, &objects[0]),
        "privateKey": file(KEY_FILE, &objects[1]),
        "certificateId": new_cert,
        "previousCertificateId": previous,
    });
    if let Some(scheme) = scheme {
        document["encryption"] = json!({ "scheme": scheme });
    }
    document
}

/// The new certificate's id and the objects of a rotation's document; None
/// when the document is not one of ours.
pub fn read_document(document: &Value) -> Option<(String, Vec<String>)> {
    if document["operation"] != "rotate-cert" {
        return None;
    }
    let new_cert = document["certificateId"].as_str()?.to_string();
    let objects = ["cert", "privateKey"]
        .iter()
        .filter_map(|field| {
            document[field]["url"]
                .as_str()?
                .strip_prefix(PLACEHOLDER)?
                .strip_suffix('}')
                .map(str::to_string)
        })
        .collect();
    Some((new_cert, objects))
}

/// What an execution's status (and its statusDetails) means for a rotation
/// to `new_cert`. A device that names the certificate it now uses
/// (`certificateId`, as roost-canary does) must name the new one.
pub fn outcome(status: &str, details: &Value, new_cert: &str) -> Outcome {
    match status {
        "QUEUED" | "IN_PROGRESS" => Outcome::Pending,
        "SUCCEEDED" => match details.get("certificateId").and_then(Value::as_str) {
            Some(used) if used != new_cert => Outcome::Unconfirmed(format!(
                "SUCCEEDED, but the device reports certificate {used}, not the new {new_cert}: \
                 both left as they are"
            )),
            _ => Outcome::Succeeded,
        },
        other => {
            let reason = match details.get("reason").and_then(Value::as_str) {
                Some(reason) => reason.to_string(),
                None if details.as_object().is_some_and(|d| !d.is_empty()) => details.to_string(),
                None => "no reason given".to_string(),
            };
            Outcome::Failed(format!("{other}: {reason}"))
        }
    }
}

/// The certificates a rotation to `new_cert` replaces: every other ACTIVE
/// one that is not newer than it.
pub fn superseded(certs: &[Cert], new_cert: &str) -> Vec<String> {
    let Some(new) = certs.iter().find(|c| c.id == new_cert) else {
        return Vec::new();
    };
    certs
        .iter()
        .filter(|c| c.active && c.id != new.id && c.created <= new.created)
        .map(|c| c.id.clone())
        .collect()
}

/// Which of the device's past executions need their job document read:
/// every rotate-cert execution still pending, and the finished ones whose new
/// certificate (the end of the job id) is still ACTIVE, which may have
/// something left to finish. Older finished rotations are left alone, so the
/// cost does not grow with the device's history.
pub fn worth_reading<'a>(past: &'a [PastExecution], certs: &[Cert]) -> Vec<&'a PastExecution> {
    past.iter()
        .filter(|e| e.job_id.starts_with(JOB_PREFIX))
        .filter(|e| {
            outcome(&e.status, &Value::Null, "") == Outcome::Pending
                || e.job_id.rsplit_once('-').is_some_and(|(_, short)| {
                    certs.iter().any(|c| c.active && c.id.starts_with(short))
                })
        })
        .collect()
}

/// What to do for one device, from its certificates and the rotations found
/// in its past executions (`(execution, new certificate, objects)`).
pub fn next(certs: &[Cert], found: &[(PastExecution, String, Vec<String>)]) -> Next {
    let is_active = |id: &str| certs.iter().any(|c| c.active && c.id == id);
    let rotation = |e: &PastExecution, new_cert: &str, objects: &[String]| Rotation {
        job_id: e.job_id.clone(),
        new_cert: new_cert.to_string(),
        previous: superseded(certs, new_cert),
        objects: objects.to_vec(),
    };
    let follow: Vec<Rotation> = found
        .iter()
        .filter(
            |(e, new_cert, _)| match outcome(&e.status, &Value::Null, new_cert) {
                Outcome::Pending => true,
                // Its old certificate is still ACTIVE: deactivate it.
                Outcome::Succeeded | Outcome::Unconfirmed(_) => {
                    !superseded(certs, new_cert).is_empty()
                }
                // Its new certificate is still ACTIVE: deactivate that.
                Outcome::Failed(_) => is_active(new_cert),
            },
        )
        .map(|(e, new_cert, objects)| rotation(e, new_cert, objects))
        .collect();
    if !follow.is_empty() {
        return Next::Follow(follow);
    }
    let previous: Vec<String> = certs
        .iter()
        .filter(|c| c.active)
        .map(|c| c.id.clone())
        .collect();
    if previous.is_empty() {
        return Next::Fail("no ACTIVE certificate attached".to_string());
    }
    Next::Start { previous }
}

/// What to do with an old certificate once its device has rotated.
#[derive(Debug, Clone, PartialEq)]
pub enum Retire {
    Deactivate,
    /// Still attached to these other things, which rely on it until their
    /// own rotation: only detach it from this thing.
    Detach(Vec<String>),
}

/// How to retire an old certificate attached to `holders` (ListPrincipalThings)
/// after `thing` rotated away from it.
pub fn retire(holders: &[String], thing: &str) -> Retire {
    let others: Vec<String> = holders.iter().filter(|t| *t != thing).cloned().collect();
    match others.is_empty() {
        true => Retire::Deactivate,
        false => Retire::Detach(others),
    }
}

/// The certificate a sealed delivery is encrypted for: the newest ACTIVE
/// one, the one a device holding several most likely uses.
pub fn newest<'a>(certs: &'a [Cert], ids: &[String]) -> Option<&'a Cert> {
    certs
        .iter()
        .filter(|c| ids.contains(&c.id))
        .max_by(|a, b| a.created.total_cmp(&b.created))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(id: &str, active: bool, created: f64) -> Cert {
        Cert {
            id: id.to_string(),
            active,
            created,
        }
    }

    fn past(job_id: &str, status: &str) -> PastExecution {
        PastExecution {
            job_id: job_id.to_string(),
            status: status.to_string(),
        }
    }

    #[test]
    fn rates_are_a_pause_between_starts() {
        assert_eq!(parse_rate("10/min").unwrap(), Duration::from_secs(6));
        assert_eq!(parse_rate("120").unwrap(), Duration::from_millis(500));
        for bad in ["0/min", "-1/min", "ten/min", "10/s", "", "60001/min"] {
            let error = parse_rate(bad).unwrap_err().to_string();
            assert!(error.contains("N/min"), "{bad}: {error}");
        }
    }

    #[test]
    fn presigned_urls_last_from_a_minute_to_an_hour() {
        assert!(check_expires_in(60).is_ok() && check_expires_in(3600).is_ok());
        assert!(check_expires_in(59).is_err() && check_expires_in(3601).is_err());
    }

    #[test]
    fn job_ids_fit_create_jobs_limits() {
        let new = "ab".repeat(32);
        assert_eq!(
            job_id("canary-1", &new),
            "rotate-cert-canary-1-abababababab"
        );
        let long = "x".repeat(128);
        for thing in ["thing:with:colons", long.as_str(), &"y".repeat(40)] {
            let id = job_id(thing, &new);
            assert!(id.len() <= 64, "{id}");
            assert!(id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
            assert!(
                id.starts_with(JOB_PREFIX) && id.ends_with("-abababababab"),
                "{id}"
            );
        }
        // A name that just fits is kept; one character more is hashed.
        let fits = "z".repeat(39);
        assert_eq!(job_id(&fits, &new).len(), 64);
        assert!(job_id(&fits, &new).contains(&fits));
        assert!(!job_id(&format!("{fits}z"), &new).contains(&fits));
        // Different names that do not fit give different ids.
        assert_ne!(job_id("a:b", &new), job_id("a:c", &new));
    }

    #[test]
    fn the_document_keeps_the_scenarios_format_and_reads_back() {
        let objects = object_names("roost-rotation", "canary-1", "new1");
        assert_eq!(
            objects[0],
            "roost-rotation/rotate-certs/canary-1/new1/certificate.pem.crt"
        );
        let document = job_document(&objects, "new1", "old1", None);
        assert_eq!(
            document,
            json!({
                "operation": "rotate-cert",
                "version": "1.0",
                "autoStart": "true",
                "workingDirectory": ".",
                "cert": {"fileName": "certificate.pem.crt",
                         "url": "${aws:iot:s3-presigned-url:https://s3.amazonaws.com/roost-rotation/rotate-certs/canary-1/new1/certificate.pem.crt}"},
                "privateKey": {"fileName": "private.pem.key",
                               "url": "${aws:iot:s3-presigned-url:https://s3.amazonaws.com/roost-rotation/rotate-certs/canary-1/new1/private.pem.key}"},
                "certificateId": "new1",
                "previousCertificateId": "old1",
            })
        );
        assert_eq!(
            read_document(&document),
            Some(("new1".to_string(), objects.to_vec()))
        );
        let sealed = job_document(&objects, "new1", "old1", Some("scheme-x"));
        assert_eq!(sealed["encryption"], json!({"scheme": "scheme-x"}));
        assert_eq!(read_document(&json!({"operation": "localScan"})), None);
        assert_eq!(read_document(&json!({"operation": "rotate-cert"})), None);
    }

    #[test]
    fn outcomes_carry_the_devices_reason() {
        assert_eq!(outcome("QUEUED", &Value::Null, "new"), Outcome::Pending);
        assert_eq!(outcome("IN_PROGRESS", &json!({}), "new"), Outcome::Pending);
        assert_eq!(outcome("SUCCEEDED", &json!({}), "new"), Outcome::Succeeded);
        assert_eq!(
            outcome("FAILED", &json!({"reason": "new pair refused"}), "new"),
            Outcome::Failed("FAILED: new pair refused".into())
        );
        assert_eq!(
            outcome("REJECTED", &json!({"why": "busy"}), "new"),
            Outcome::Failed(r#"REJECTED: {"why":"busy"}"#.into())
        );
        // A device that names its certificate must name the new one.
        assert_eq!(
            outcome("SUCCEEDED", &json!({"certificateId": "new"}), "new"),
            Outcome::Succeeded
        );
        assert!(matches!(
            outcome("SUCCEEDED", &json!({"certificateId": "old"}), "new"),
            Outcome::Unconfirmed(reason) if reason.contains("reports certificate old, not the new new")
        ));
        assert_eq!(
            outcome("DELETED", &json!({"reason": "gone"}), "new"),
            Outcome::Failed("DELETED: gone".into())
        );
        assert_eq!(
            outcome("TIMED_OUT", &json!({}), "new"),
            Outcome::Failed("TIMED_OUT: no reason given".into())
        );
    }

    #[test]
    fn a_device_with_no_active_certificate_fails() {
        assert_eq!(
            next(&[cert("a", false, 1.0)], &[]),
            Next::Fail("no ACTIVE certificate attached".into())
        );
        assert!(matches!(next(&[], &[]), Next::Fail(_)));
    }

    #[test]
    fn a_device_at_rest_starts_a_rotation_from_its_active_certificates() {
        let certs = [
            cert("a", true, 1.0),
            cert("b", false, 2.0),
            cert("c", true, 3.0),
        ];
        assert_eq!(
            next(&certs, &[]),
            Next::Start {
                previous: vec!["a".into(), "c".into()]
            }
        );
        assert_eq!(newest(&certs, &["a".into(), "c".into()]).unwrap().id, "c");
    }

    #[test]
    fn a_pending_rotation_is_followed_not_started_again() {
        let certs = [cert("old", true, 1.0), cert("new", true, 2.0)];
        let objects = vec!["b/k1".to_string(), "b/k2".to_string()];
        let found = [(
            past("rotate-cert-t-new", "IN_PROGRESS"),
            "new".to_string(),
            objects.clone(),
        )];
        assert_eq!(
            next(&certs, &found),
            Next::Follow(vec![Rotation {
                job_id: "rotate-cert-t-new".into(),
                new_cert: "new".into(),
                previous: vec!["old".into()],
                objects,
            }])
        );
    }

    #[test]
    fn a_finished_rotation_is_finished_once_then_a_new_one_starts() {
        let found = |status: &str| [(past("rotate-cert-t-new", status), "new".to_string(), vec![])];
        // Succeeded, old still ACTIVE: follow it to deactivate the old one.
        let both = [cert("old", true, 1.0), cert("new", true, 2.0)];
        assert!(
            matches!(next(&both, &found("SUCCEEDED")), Next::Follow(r) if r[0].previous == ["old"])
        );
        // Done: the old is INACTIVE, so running again rotates again.
        let done = [cert("old", false, 1.0), cert("new", true, 2.0)];
        assert_eq!(
            next(&done, &found("SUCCEEDED")),
            Next::Start {
                previous: vec!["new".into()]
            }
        );
        // Failed, new still ACTIVE: follow it to deactivate the new one.
        assert!(matches!(next(&both, &found("FAILED")), Next::Follow(_)));
        let failed = [cert("old", true, 1.0), cert("new", false, 2.0)];
        assert_eq!(
            next(&failed, &found("FAILED")),
            Next::Start {
                previous: vec!["old".into()]
            }
        );
    }

    #[test]
    fn a_certificate_other_things_still_use_is_only_detached() {
        let holders = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        assert_eq!(retire(&holders(&["t"]), "t"), Retire::Deactivate);
        assert_eq!(retire(&[], "t"), Retire::Deactivate);
        assert_eq!(
            retire(&holders(&["a", "t", "b"]), "t"),
            Retire::Detach(holders(&["a", "b"]))
        );
    }

    #[test]
    fn superseded_certificates_are_the_older_active_ones() {
        let certs = [
            cert("old", true, 1.0),
            cert("off", false, 1.5),
            cert("new", true, 2.0),
            cert("later", true, 3.0),
        ];
        assert_eq!(superseded(&certs, "new"), ["old"]);
        assert!(superseded(&certs, "unknown").is_empty());
    }

    #[test]
    fn only_rotations_that_may_have_work_left_are_read() {
        let certs = [
            cert("aaaaaaaaaaaa11", true, 1.0),
            cert("bbbbbbbbbbbb22", false, 0.5),
        ];
        let history = [
            past("rotate-cert-t-aaaaaaaaaaaa", "SUCCEEDED"),
            past("rotate-cert-t-bbbbbbbbbbbb", "SUCCEEDED"),
            past("rotate-cert-t-cccccccccccc", "QUEUED"),
            past("local-scan-job-01", "IN_PROGRESS"),
        ];
        let read: Vec<&str> = worth_reading(&history, &certs)
            .iter()
            .map(|e| e.job_id.as_str())
            .collect();
        assert_eq!(
            read,
            ["rotate-cert-t-aaaaaaaaaaaa", "rotate-cert-t-cccccccccccc"]
        );
    }
}
