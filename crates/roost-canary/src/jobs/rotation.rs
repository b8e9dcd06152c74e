//! Certificate rotation's checks and file handling.
//!
//! A new pair is installed only after it passed every check (the key is the
//! certificate's, the certificate is valid now and chains to the device CA,
//! and it is the one the job names). Files are replaced atomically (a
//! temporary file in the same directory, fsync, rename, fsync of the
//! directory; keys 0600), and the pair in use before is kept beside it
//! (`<file>.previous`). A journal in the state directory says how far a
//! rotation went, so that a canary killed at any point comes back with a
//! pair that connects: until the new pair has connected, the previous one
//! is what a restart uses.

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A certificate (with any intermediates) and its private key, as PEM.
#[derive(Clone)]
pub struct Pair {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for Pair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("Pair").finish_non_exhaustive()
    }
}

/// Where a pair lives on disk.
#[derive(Clone, Debug)]
pub struct PairPaths {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl Pair {
    fn chain(&self) -> Result<Vec<CertificateDer<'static>>, String> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&self.cert_pem)
            .collect::<Result<_, _>>()
            .map_err(|e| format!("the certificate is not PEM: {e}"))?;
        if chain.is_empty() {
            return Err("the certificate file holds no certificate".into());
        }
        Ok(chain)
    }

    fn key(&self) -> Result<PrivateKeyDer<'static>, String> {
        PrivateKeyDer::from_pem_slice(&self.key_pem)
            .map_err(|e| format!("the private key is not a PEM private key: {e}"))
    }

    /// The certificate's id: SHA-256 of its DER, lowercase hex (as AWS IoT
    /// and Roost name certificates).
    pub fn certificate_id(&self) -> Result<String, String> {
        Ok(hex::encode(Sha256::digest(self.chain()?[0].as_ref())))
    }

    /// The key is the certificate's.
    pub fn check_keys_match(&self) -> Result<(), String> {
        rustls::sign::CertifiedKey::from_der(self.chain()?, self.key()?, &provider())
            .map(|_| ())
            .map_err(|e| match e {
                rustls::Error::InconsistentKeys(_) => {
                    "the private key does not belong to the certificate".to_string()
                }
                other => format!("the private key cannot be used: {other}"),
            })
    }

    /// Every check a new pair passes before it is installed: returns its
    /// certificate id.
    pub fn check(
        &self,
        device_ca: &[CertificateDer<'static>],
        expected_id: Option<&str>,
        now: UnixTime,
    ) -> Result<String, String> {
        let id = self.certificate_id()?;
        if let Some(expected) = expected_id {
            if expected != id {
                return Err(format!(
                    "the downloaded certificate is {id}, the job names {expected}"
                ));
            }
        }
        self.check_keys_match()?;
        let chain = self.chain()?;
        let mut roots = rustls::RootCertStore::empty();
        for ca in device_ca {
            roots
                .add(ca.clone())
                .map_err(|e| format!("the device CA is not usable: {e}"))?;
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider(),
        )
        .build()
        .map_err(|e| format!("the device CA is not usable: {e}"))?;
        verifier
            .verify_client_cert(&chain[0], &chain[1..], now)
            .map_err(|e| match e {
                rustls::Error::InvalidCertificate(rustls::CertificateError::Expired) => {
                    "the certificate has expired".to_string()
                }
                rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidYet) => {
                    "the certificate is not valid yet (check the device's clock)".to_string()
                }
                rustls::Error::InvalidCertificate(
                    rustls::CertificateError::UnknownIssuer
                    | rustls::CertificateError::BadSignature,
                ) => "the certificate does not chain to the device CA".to_string(),
                other => format!("the certificate is not acceptable: {other}"),
            })?;
        Ok(id)
    }
}

/// Reads a CA file (one or more PEM certificates).
pub fn read_cas(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let cas: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| format!("{}: not a PEM CA certificate: {e}", path.display()))?;
    if cas.is_empty() {
        return Err(format!("{}: holds no certificate", path.display()));
    }
    Ok(cas)
}

impl PairPaths {
    /// The pair kept from before the last rotation.
    pub fn previous(&self) -> PairPaths {
        PairPaths {
            cert: with_suffix(&self.cert, ".previous"),
            key: with_suffix(&self.key, ".previous"),
        }
    }

    pub fn read(&self) -> std::io::Result<Pair> {
        Ok(Pair {
            cert_pem: std::fs::read(&self.cert)?,
            key_pem: std::fs::read(&self.key)?,
        })
    }

    /// Writes `pair` here: the key first, then the certificate, each
    /// atomically. `after_key` runs between the two (a crash there is one of
    /// the cases recovery handles).
    pub fn write(&self, pair: &Pair, after_key: impl FnOnce()) -> std::io::Result<()> {
        write_atomic(&self.key, &pair.key_pem, true)?;
        after_key();
        write_atomic(&self.cert, &pair.cert_pem, false)
    }

    /// The pair here, if both files are there and the key is the
    /// certificate's; with its certificate id.
    fn consistent(&self) -> Option<(Pair, String)> {
        let pair = self.read().ok()?;
        pair.check_keys_match().ok()?;
        let id = pair.certificate_id().ok()?;
        Some((pair, id))
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Replaces `path` with `bytes` atomically: a temporary file in the same
/// directory (0600 for a private key, 0644 otherwise), fsync, rename over
/// `path`, fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8], private: bool) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other(format!("{} names no file", path.display())))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".roost-tmp");
    let tmp = dir.join(tmp_name);
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(if private { 0o600 } else { 0o644 })
        .open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(&dir)?.sync_all()
}

/// How far a rotation went, kept in the job's state.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Journal {
    pub phase: Phase,
    pub previous_certificate_id: String,
    pub certificate_id: String,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// The new pair is being written or tried: not yet known to connect.
    Installing,
    /// The new pair connected: it stays.
    Confirmed,
}

/// What recovery did with an interrupted rotation.
#[derive(Debug, PartialEq, Eq)]
pub enum Recovered {
    /// The previous pair is in place again.
    RolledBack,
    /// The new pair had connected; it stays.
    Kept,
    /// Neither pair on disk is whole and the one in use before; the files
    /// are left as they are (the reason says what was found).
    Unresolved(String),
}

/// Brings the files back to a pair that connects after a rotation was
/// interrupted. Before confirmation that is the previous pair: the one in
/// place if it is whole and the previous one, else the kept copy.
pub fn recover(paths: &PairPaths, journal: &Journal) -> std::io::Result<Recovered> {
    if journal.phase == Phase::Confirmed {
        return Ok(Recovered::Kept);
    }
    let wanted = &journal.previous_certificate_id;
    if let Some((_, id)) = paths.consistent() {
        if &id == wanted {
            return Ok(Recovered::RolledBack);
        }
    }
    match paths.previous().consistent() {
        Some((pair, id)) if &id == wanted => {
            paths.write(&pair, || {})?;
            Ok(Recovered::RolledBack)
        }
        _ => Ok(Recovered::Unresolved(format!(
            "neither {} nor its .previous copy is the certificate {wanted} with its key",
            paths.cert.display()
        ))),
    }
}

/// Keeps the pair in place as `.previous`, then writes `new` in its place.
/// `failpoint` is called after the key and after the certificate.
pub fn install(paths: &PairPaths, new: &Pair, failpoint: impl Fn(&str)) -> std::io::Result<()> {
    let current = paths.read()?;
    paths.previous().write(&current, || {})?;
    paths.write(new, || failpoint("after-key"))?;
    failpoint("after-cert");
    Ok(())
}

/// Puts the previous pair back in place.
pub fn restore(paths: &PairPaths) -> std::io::Result<()> {
    let previous = paths.previous().read()?;
    paths.write(&previous, || {})
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    use std::os::unix::fs::PermissionsExt;

    struct Ca {
        pem: String,
        issuer: Issuer<'static, KeyPair>,
    }

    fn ca() -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    fn device(ca: &Ca, days_valid: (i64, i64)) -> Pair {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now + time::Duration::days(days_valid.0);
        params.not_after = now + time::Duration::days(days_valid.1);
        let cert = params.signed_by(&key, &ca.issuer).unwrap();
        Pair {
            cert_pem: cert.pem().into_bytes(),
            key_pem: key.serialize_pem().into_bytes(),
        }
    }

    fn roots(ca: &Ca) -> Vec<CertificateDer<'static>> {
        CertificateDer::pem_slice_iter(ca.pem.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn a_good_pair_passes_and_each_fault_is_named() {
        let ca = ca();
        let now = UnixTime::now();
        let good = device(&ca, (-1, 30));
        let id = good.check(&roots(&ca), None, now).unwrap();
        assert_eq!(id.len(), 64);
        assert_eq!(good.check(&roots(&ca), Some(&id), now).unwrap(), id);

        let other = device(&ca, (-1, 30));
        let swapped = Pair {
            cert_pem: good.cert_pem.clone(),
            key_pem: other.key_pem.clone(),
        };
        let e = swapped.check(&roots(&ca), None, now).unwrap_err();
        assert!(e.contains("does not belong"), "{e}");

        let e = good
            .check(&roots(&ca), Some(&other.certificate_id().unwrap()), now)
            .unwrap_err();
        assert!(e.contains("the job names"), "{e}");

        let expired = device(&ca, (-30, -1));
        let e = expired.check(&roots(&ca), None, now).unwrap_err();
        assert!(e.contains("expired"), "{e}");

        let future = device(&ca, (2, 30));
        let e = future.check(&roots(&ca), None, now).unwrap_err();
        assert!(e.contains("not valid yet"), "{e}");

        let stranger = device(&self::ca(), (-1, 30));
        let e = stranger.check(&roots(&ca), None, now).unwrap_err();
        assert!(e.contains("does not chain"), "{e}");

        let garbage = Pair {
            cert_pem: b"nope".to_vec(),
            key_pem: good.key_pem.clone(),
        };
        assert!(garbage.check(&roots(&ca), None, now).is_err());
    }

    fn paths(dir: &Path) -> PairPaths {
        PairPaths {
            cert: dir.join("certificate.pem.crt"),
            key: dir.join("private.pem.key"),
        }
    }

    #[test]
    fn install_keeps_the_previous_pair_and_restore_brings_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ca();
        let (old, new) = (device(&ca, (-1, 30)), device(&ca, (-1, 30)));
        let p = paths(dir.path());
        p.write(&old, || {}).unwrap();
        install(&p, &new, |_| {}).unwrap();
        assert_eq!(p.read().unwrap().cert_pem, new.cert_pem);
        assert_eq!(p.previous().read().unwrap().key_pem, old.key_pem);
        for key in [&p.key, &p.previous().key] {
            let mode = std::fs::metadata(key).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", key.display());
        }
        restore(&p).unwrap();
        assert_eq!(p.read().unwrap().cert_pem, old.cert_pem);
        // No temporary files left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.iter().all(|n| !n.contains("roost-tmp")), "{names:?}");
    }

    /// A crash at each point of an installation: recovery always leaves
    /// the previous pair in place, whole.
    #[test]
    fn recovery_from_every_crash_point_gives_back_the_previous_pair() {
        let ca = ca();
        let (old, new) = (device(&ca, (-1, 30)), device(&ca, (-1, 30)));
        let journal = Journal {
            phase: Phase::Installing,
            previous_certificate_id: old.certificate_id().unwrap(),
            certificate_id: new.certificate_id().unwrap(),
        };
        // (key written, cert written, previous copy present)
        let states = [
            (false, false, false), // before the copy of the previous pair
            (false, false, true),  // the copy made, nothing replaced
            (true, false, true),   // after the key
            (true, true, true),    // after the certificate, before it connected
        ];
        for (key_new, cert_new, copy) in states {
            let dir = tempfile::tempdir().unwrap();
            let p = paths(dir.path());
            // A stale copy from an older rotation must never be restored.
            let stale = device(&ca, (-1, 30));
            p.previous().write(&stale, || {}).unwrap();
            if copy {
                p.previous().write(&old, || {}).unwrap();
            }
            write_atomic(
                &p.key,
                if key_new { &new.key_pem } else { &old.key_pem },
                true,
            )
            .unwrap();
            write_atomic(
                &p.cert,
                if cert_new {
                    &new.cert_pem
                } else {
                    &old.cert_pem
                },
                false,
            )
            .unwrap();
            assert_eq!(recover(&p, &journal).unwrap(), Recovered::RolledBack);
            let pair = p.read().unwrap();
            assert_eq!(
                pair.certificate_id().unwrap(),
                journal.previous_certificate_id
            );
            pair.check_keys_match().unwrap();
        }
        // Confirmed: the new pair stays.
        let dir = tempfile::tempdir().unwrap();
        let p = paths(dir.path());
        p.write(&new, || {}).unwrap();
        let confirmed = Journal {
            phase: Phase::Confirmed,
            ..journal.clone()
        };
        assert_eq!(recover(&p, &confirmed).unwrap(), Recovered::Kept);
        assert_eq!(p.read().unwrap().cert_pem, new.cert_pem);
        // Nothing whole to go back to: said, and nothing touched.
        let dir = tempfile::tempdir().unwrap();
        let p = paths(dir.path());
        write_atomic(&p.key, &new.key_pem, true).unwrap();
        write_atomic(&p.cert, &old.cert_pem, false).unwrap();
        assert!(matches!(
            recover(&p, &journal).unwrap(),
            Recovered::Unresolved(_)
        ));
    }
}
