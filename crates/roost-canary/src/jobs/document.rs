//! What a job asks the canary to do, read from its document. No I/O.
//!
//! Two operations are known: `localScan` (the scenario's
//! `{"operation": "localScan"}`) and `rotate-cert` (the scenario's
//! document: `cert` and `privateKey`, each a `fileName` and a `url`, which
//! the service has turned into a presigned URL). Anything else is refused
//! with a reason the operator reads in the execution's statusDetails.

use serde::Deserialize;
use serde_json::Value;

/// The longest download URL taken (a presigned S3 URL is ~1.5 KB).
const MAX_URL: usize = 8192;

#[derive(Clone, Debug, PartialEq)]
pub enum Operation {
    LocalScan,
    RotateCert(RotateCert),
}

/// A rotate-cert document.
#[derive(Clone, Debug, PartialEq)]
pub struct RotateCert {
    pub cert_url: String,
    /// The new key's URL; `None` for a CSR rotation (the key is made here).
    pub key_url: Option<String>,
    /// The device makes the key and sends a CSR; the certificate appears at
    /// `cert_url` once the operator signed it.
    pub csr: bool,
    /// The new certificate's id when the document names it (Roost's
    /// `rotate-certs` does): the downloaded certificate must have it.
    pub certificate_id: Option<String>,
    /// The files are encrypted for the device's current key, in this scheme.
    pub encryption: Option<String>,
}

/// Why a document is not one the canary runs: the job is REJECTED with
/// this as its reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "the job document has no \"operation\" (a string such as \"localScan\" or \"rotate-cert\")"
    )]
    NoOperation,
    #[error("unknown operation {0:?}: this canary runs \"localScan\" and \"rotate-cert\"")]
    Unknown(String),
    #[error("the rotate-cert document is not valid: {0}")]
    BadRotation(String),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RotateDoc {
    cert: FileRef,
    #[serde(default)]
    private_key: Option<FileRef>,
    #[serde(default)]
    csr: Option<CsrRequest>,
    #[serde(default)]
    certificate_id: Option<String>,
    #[serde(default)]
    encryption: Option<Encryption>,
    /// The scenario's way of saying so ("indicate that it is encrypted in
    /// the job body"): the scheme then follows from the device's key.
    #[serde(default)]
    encrypted: Option<bool>,
}

#[derive(Deserialize)]
struct FileRef {
    url: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CsrRequest {
    /// The key the device makes; only `ec-p256` (the default).
    #[serde(default)]
    key_type: Option<String>,
}

#[derive(Deserialize)]
struct Encryption {
    scheme: String,
}

/// The scheme name meaning "whichever fits the device's key".
pub const SCHEME_BY_KEY: &str = "device-key";

pub fn parse(document: &Value) -> Result<Operation, Refusal> {
    let operation = document
        .get("operation")
        .and_then(Value::as_str)
        .ok_or(Refusal::NoOperation)?;
    match operation {
        "localScan" => Ok(Operation::LocalScan),
        "rotate-cert" => rotate(document).map(Operation::RotateCert),
        other => Err(Refusal::Unknown(other.chars().take(64).collect())),
    }
}

fn rotate(document: &Value) -> Result<RotateCert, Refusal> {
    let bad = |m: String| Refusal::BadRotation(m);
    let doc: RotateDoc =
        serde_json::from_value(document.clone()).map_err(|e| bad(e.to_string()))?;
    let csr = match (&doc.csr, &doc.private_key) {
        (Some(_), Some(_)) => return Err(bad(
            "a CSR rotation makes its key on the device: the document must not carry privateKey"
                .into(),
        )),
        (None, None) => {
            return Err(bad(
                "missing field `privateKey` (or `csr`, for a key made on the device)".into(),
            ))
        }
        (Some(c), None) => {
            if let Some(kind) = c.key_type.as_deref().filter(|k| *k != "ec-p256") {
                return Err(bad(format!(
                    "csr.keyType {kind:?} is not one this canary makes (\"ec-p256\")"
                )));
            }
            true
        }
        (None, Some(_)) => false,
    };
    let key_url = doc.private_key.as_ref().map(|k| &k.url);
    for (field, url) in [
        ("cert.url", Some(&doc.cert.url)),
        ("privateKey.url", key_url),
    ] {
        let Some(url) = url else { continue };
        if url.starts_with("${") {
            return Err(bad(format!(
                "{field} is still a placeholder ({}…): the service did not presign it",
                url.chars().take(40).collect::<String>()
            )));
        }
        if !(url.starts_with("https://") || url.starts_with("http://")) || url.len() > MAX_URL {
            return Err(bad(format!("{field} is not an http(s) URL")));
        }
    }
    if let Some(id) = &doc.certificate_id {
        if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad(
                "certificateId is not a certificate id (64 hex digits)".into()
            ));
        }
    }
    let encryption = match (doc.encryption, doc.encrypted) {
        (Some(e), _) => Some(e.scheme),
        (None, Some(true)) => Some(SCHEME_BY_KEY.to_string()),
        (None, _) => None,
    };
    if csr && encryption.is_some() {
        return Err(bad(
            "a CSR rotation has nothing secret to encrypt: drop `encryption`".into(),
        ));
    }
    Ok(RotateCert {
        cert_url: doc.cert.url,
        key_url: doc.private_key.map(|k| k.url),
        csr,
        certificate_id: doc.certificate_id.map(|id| id.to_ascii_lowercase()),
        encryption,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// The scenario's document, as the service gives it (URLs presigned).
    fn scenario_rotation() -> Value {
        json!({
            "operation": "rotate-cert", "version": "1.0", "autoStart": "true", "workingDirectory": ".",
            "cert": {"fileName": "certificate.pem.crt", "url": "http://127.0.0.1:9/objects/b/c.crt?expires=1&signature=ab"},
            "privateKey": {"fileName": "private.pem.key", "url": "http://127.0.0.1:9/objects/b/k.key?expires=1&signature=cd"}
        })
    }

    #[test]
    fn the_scenarios_documents_are_understood() {
        assert_eq!(
            parse(&json!({"operation": "localScan"})),
            Ok(Operation::LocalScan)
        );
        let Ok(Operation::RotateCert(r)) = parse(&scenario_rotation()) else {
            panic!("not a rotation")
        };
        assert!(r.cert_url.contains("c.crt") && r.key_url.unwrap().contains("k.key"));
        assert!(!r.csr);
        assert_eq!(r.encryption, None);
        assert_eq!(r.certificate_id, None);
    }

    #[test]
    fn encryption_is_named_or_follows_the_key() {
        let mut doc = scenario_rotation();
        doc["encrypted"] = json!(true);
        let Ok(Operation::RotateCert(r)) = parse(&doc) else {
            panic!()
        };
        assert_eq!(r.encryption.as_deref(), Some(SCHEME_BY_KEY));
        doc["encryption"] = json!({"scheme": "rsa-oaep-sha1-aes-eax"});
        let Ok(Operation::RotateCert(r)) = parse(&doc) else {
            panic!()
        };
        assert_eq!(r.encryption.as_deref(), Some("rsa-oaep-sha1-aes-eax"));
    }

    #[test]
    fn a_csr_rotation_names_only_the_certificate() {
        let mut doc = scenario_rotation();
        doc.as_object_mut().unwrap().remove("privateKey");
        doc["csr"] = json!({});
        let Ok(Operation::RotateCert(r)) = parse(&doc) else {
            panic!()
        };
        assert!(r.csr && r.key_url.is_none());
        doc["csr"] = json!({"keyType": "rsa-2048"});
        assert!(parse(&doc).unwrap_err().to_string().contains("keyType"));
        let mut both = scenario_rotation();
        both["csr"] = json!({});
        assert!(parse(&both)
            .unwrap_err()
            .to_string()
            .contains("must not carry privateKey"));
    }

    #[test]
    fn unknown_operations_and_bad_rotations_are_refused_with_a_reason() {
        assert_eq!(
            parse(&json!({"operation": "reboot"})),
            Err(Refusal::Unknown("reboot".into()))
        );
        assert_eq!(parse(&json!({"op": "x"})), Err(Refusal::NoOperation));
        let mut doc = scenario_rotation();
        doc["cert"]["url"] = json!("${aws:iot:s3-presigned-url:https://s3.amazonaws.com/b/c}");
        let err = parse(&doc).unwrap_err().to_string();
        assert!(err.contains("placeholder"), "{err}");
        let mut doc = scenario_rotation();
        doc["privateKey"]["url"] = json!("file:///etc/shadow");
        assert!(parse(&doc)
            .unwrap_err()
            .to_string()
            .contains("privateKey.url"));
        let mut doc = scenario_rotation();
        doc["certificateId"] = json!("not-an-id");
        assert!(parse(&doc).is_err());
        let mut doc = scenario_rotation();
        doc.as_object_mut().unwrap().remove("privateKey");
        assert!(matches!(parse(&doc), Err(Refusal::BadRotation(_))));
    }

    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            "[a-zA-Z:/.${}-]{0,20}".prop_map(Value::from),
            Just(Value::from("rotate-cert")),
            Just(Value::from("localScan")),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                proptest::collection::btree_map(
                    prop_oneof![
                        Just("operation".to_string()),
                        Just("cert".to_string()),
                        Just("privateKey".to_string()),
                        Just("url".to_string()),
                        Just("encryption".to_string()),
                        "[a-z]{1,6}".prop_map(String::from),
                    ],
                    inner,
                    0..5
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_document_is_understood_or_refused_without_panic(doc in any_json()) {
            let _ = parse(&doc);
        }
    }
}
