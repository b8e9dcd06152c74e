//! Message signatures: Roost's SNS signing key (RSA-2048) and the
//! self-signed certificate receivers verify with, created once under the
//! data directory and reused across restarts. Signatures are RSA PKCS#1
//! v1.5 over the envelope's string to sign, SHA-1 for `SignatureVersion`
//! "1" and SHA-256 for "2", as SNS does.
//!
//! Key generation takes a while (seconds in a debug build): callers run
//! [`Signer::load_or_create`] on a blocking thread. The private key never
//! leaves its 0600 file and this struct (whose Debug form hides it).

use base64::Engine;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use rsa::signature::{SignatureEncoding, Signer as _};
use rsa::RsaPrivateKey;
use std::path::Path;

/// The signing key's size (SNS's certificates carry RSA-2048 keys).
pub const KEY_BITS: usize = 2048;

/// Roost's message signer: the key, its certificate, and the certificate's
/// published file name.
pub struct Signer {
    key: RsaPrivateKey,
    certificate_pem: String,
    file_name: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("certificate", &self.file_name)
            .finish_non_exhaustive()
    }
}

/// A signing failure (key files, certificate building).
#[derive(Debug, thiserror::Error)]
#[error("message signing: {0}")]
pub struct SigningError(String);

fn err(what: &'static str) -> impl Fn(String) -> SigningError {
    move |e| SigningError(format!("{what}: {e}"))
}

impl Signer {
    /// The private key's file in the data directory (mode 0600).
    pub const KEY_FILE: &'static str = "sns-signing.key";
    /// The certificate's file in the data directory (public).
    pub const CERT_FILE: &'static str = "sns-signing.pem";

    /// Loads the key and certificate from `dir`, or creates both there.
    /// Blocking (and slow on creation).
    pub fn load_or_create(dir: &Path) -> Result<Self, SigningError> {
        let key_path = dir.join(Self::KEY_FILE);
        let cert_path = dir.join(Self::CERT_FILE);
        if key_path.exists() && cert_path.exists() {
            let key_pem = std::fs::read_to_string(&key_path)
                .map_err(|e| err("reading the signing key")(e.to_string()))?;
            let cert_pem = std::fs::read_to_string(&cert_path)
                .map_err(|e| err("reading the signing certificate")(e.to_string()))?;
            let key = RsaPrivateKey::from_pkcs8_pem(&key_pem)
                .map_err(|e| err("reading the signing key")(e.to_string()))?;
            return Self::new(key, cert_pem);
        }
        let key = RsaPrivateKey::new(&mut rsa::rand_core::OsRng, KEY_BITS)
            .map_err(|e| err("generating the signing key")(e.to_string()))?;
        let key_pem = key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| err("encoding the signing key")(e.to_string()))?;
        let cert_pem = self_signed_certificate(&key_pem)?;
        roost_registry::pki::write_private_file(&key_path, key_pem.as_bytes())
            .map_err(|e| err("writing the signing key")(e.to_string()))?;
        roost_registry::pki::write_public_file(&cert_path, cert_pem.as_bytes())
            .map_err(|e| err("writing the signing certificate")(e.to_string()))?;
        tracing::info!(path = %cert_path.display(), "created the SNS message signing key and certificate");
        Self::new(key, cert_pem)
    }

    fn new(key: RsaPrivateKey, certificate_pem: String) -> Result<Self, SigningError> {
        let parsed = roost_registry::pki::parse_pem(&certificate_pem)
            .map_err(|e| err("reading the signing certificate")(e.to_string()))?;
        // The certificate id is the SHA-256 of the DER, in hex.
        let file_name = format!("SimpleNotificationService-{}.pem", &parsed.id[..32]);
        Ok(Self {
            key,
            certificate_pem,
            file_name,
        })
    }

    /// `SimpleNotificationService-<32 hex of the certificate's SHA-256>.pem`:
    /// the path (under the API's root) the certificate is served at.
    pub fn certificate_file_name(&self) -> &str {
        &self.file_name
    }

    pub fn certificate_pem(&self) -> &str {
        &self.certificate_pem
    }

    /// Base64 of the PKCS#1 v1.5 signature of `text`: SHA-256 when
    /// `version` is "2", else SHA-1.
    pub fn sign(&self, version: &str, text: &str) -> String {
        let signature = if version == "2" {
            SigningKey::<sha2::Sha256>::new(self.key.clone())
                .sign(text.as_bytes())
                .to_vec()
        } else {
            SigningKey::<sha1::Sha1>::new(self.key.clone())
                .sign(text.as_bytes())
                .to_vec()
        };
        base64::engine::general_purpose::STANDARD.encode(signature)
    }
}

/// A self-signed certificate for the key (CN "Roost SNS message signing").
fn self_signed_certificate(key_pem: &str) -> Result<String, SigningError> {
    let rcgen_err = |what: &'static str| move |e: rcgen::Error| err(what)(e.to_string());
    let key_pair = rcgen::KeyPair::from_pem_and_sign_algo(key_pem, &rcgen::PKCS_RSA_SHA256)
        .map_err(rcgen_err("loading the signing key"))?;
    let mut params = rcgen::CertificateParams::default();
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::OrganizationName, "Roost");
    dn.push(rcgen::DnType::CommonName, "Roost SNS message signing");
    params.distinguished_name = dn;
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    params.not_after = time::macros::datetime!(2049-12-31 23:59:59 UTC);
    let cert = params
        .self_signed(&key_pair)
        .map_err(rcgen_err("self-signing the signing certificate"))?;
    Ok(cert.pem())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs1v15::{Signature, VerifyingKey};
    use rsa::pkcs8::DecodePublicKey;
    use rsa::signature::Verifier;
    use std::os::unix::fs::PermissionsExt;

    fn verify(signer: &Signer, version: &str, text: &str, signature_b64: &str) -> bool {
        let der = roost_registry::pki::parse_pem(signer.certificate_pem())
            .unwrap()
            .der;
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let public = rsa::RsaPublicKey::from_public_key_der(cert.public_key().raw).unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(signature_b64)
            .unwrap();
        let signature = Signature::try_from(bytes.as_slice()).unwrap();
        if version == "2" {
            VerifyingKey::<sha2::Sha256>::new(public)
                .verify(text.as_bytes(), &signature)
                .is_ok()
        } else {
            VerifyingKey::<sha1::Sha1>::new(public)
                .verify(text.as_bytes(), &signature)
                .is_ok()
        }
    }

    #[test]
    fn signs_with_sha1_and_sha256_and_reuses_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let signer = Signer::load_or_create(dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join(Signer::KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let name = signer.certificate_file_name();
        assert!(name.starts_with("SimpleNotificationService-") && name.ends_with(".pem"));
        assert_eq!(name.len(), "SimpleNotificationService-".len() + 32 + 4);
        assert!(!format!("{signer:?}").contains("PRIVATE"));

        let text = "Message\nhi\nMessageId\n1\nTimestamp\nt\nTopicArn\na\nType\nNotification\n";
        let v1 = signer.sign("1", text);
        let v2 = signer.sign("2", text);
        assert!(verify(&signer, "1", text, &v1));
        assert!(verify(&signer, "2", text, &v2));
        assert!(!verify(&signer, "2", text, &v1));
        assert!(!verify(&signer, "1", &text.replace("hi", "ho"), &v1));

        // A restart reads the same key and certificate back.
        let again = Signer::load_or_create(dir.path()).unwrap();
        assert_eq!(again.certificate_file_name(), name);
        assert!(verify(&again, "1", text, &v1));
        assert_eq!(again.sign("1", text), v1, "PKCS#1 v1.5 is deterministic");
    }
}
