//! Devices as an operator provisions them, through the registry API: a
//! thing, a certificate from Roost's CA (CreateKeysAndCertificate, ACTIVE)
//! attached to it, and a policy attached to the certificate. The device
//! keeps its key and the TLS client configuration that presents it.

use roost_registry::pki::IssuedKeys;
use roost_registry::Registry;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A policy allowing every IoT action on every resource.
pub fn allow_all() -> serde_json::Value {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]
    })
}

/// A provisioned device.
#[derive(Clone)]
pub struct Device {
    /// The thing's name (also the policy's: `policy-<thing>`).
    pub thing: String,
    pub certificate_id: String,
    pub certificate_arn: String,
    pub policy_name: String,
    pub(crate) tls: Arc<rustls::ClientConfig>,
}

impl Device {
    pub(crate) async fn create(
        registry: &Registry,
        thing: &str,
        policy: &serde_json::Value,
    ) -> Device {
        registry
            .create_thing(thing, None, BTreeMap::new())
            .await
            .expect("creating the thing");
        let created = registry
            .create_keys_and_certificate(true)
            .await
            .expect("creating the certificate");
        let keys = created
            .keys
            .expect("CreateKeysAndCertificate returns the keys");
        let certificate_id = created.certificate.id;
        let certificate_arn = registry.arns().cert(&certificate_id);
        registry
            .attach_thing_principal(
                thing,
                &certificate_arn,
                roost_registry::model::ThingPrincipalType::NonExclusive,
            )
            .await
            .expect("attaching the certificate to the thing");
        let policy_name = format!("policy-{thing}");
        registry
            .create_policy(&policy_name, &policy.to_string())
            .await
            .expect("creating the policy");
        registry
            .attach_policy(&policy_name, &certificate_arn)
            .await
            .expect("attaching the policy");
        let tls = client_config(registry, &keys);
        Device {
            thing: thing.to_string(),
            certificate_id,
            certificate_arn,
            policy_name,
            tls,
        }
    }
}

impl Device {
    /// A certificate Roost's CA issued that the registry has no record of
    /// (as if it had been deleted): no thing, no policy.
    pub(crate) fn unregistered(registry: &Registry) -> Device {
        let keys = registry
            .ca()
            .issue_keys_and_certificate()
            .expect("issuing a certificate");
        let tls = client_config(registry, &keys);
        Device {
            thing: String::new(),
            certificate_id: String::new(),
            certificate_arn: String::new(),
            policy_name: String::new(),
            tls,
        }
    }
}

/// Trusts Roost's CA and presents the device's certificate. No session
/// resumption: every connection makes a full handshake, as the gateway's
/// checks are made at each.
fn client_config(registry: &Registry, keys: &IssuedKeys) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(registry.ca().root_pem().as_bytes()) {
        roots
            .add(cert.expect("Roost's CA certificate"))
            .expect("trusting Roost's CA");
    }
    let chain = CertificateDer::pem_slice_iter(keys.certificate_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .expect("the device certificate");
    let key =
        PrivateKeyDer::from_pem_slice(keys.private_key_pem.as_bytes()).expect("the device key");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .expect("the device certificate and key");
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}
