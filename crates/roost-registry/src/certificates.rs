//! Device certificates and registered CA certificates.

use crate::error::{RegistryError, Result};
use crate::model::*;
use crate::pki::{self, IssuedKeys, ParsedCertificate};
use crate::store::Created;
use crate::{paged, validate, Registry, RegistryEvent};

/// What CreateKeysAndCertificate / CreateCertificateFromCsr return.
pub struct CertificateCreated {
    pub certificate: Certificate,
    /// Only for CreateKeysAndCertificate: the one time the private key is seen.
    pub keys: Option<IssuedKeys>,
}

/// RegisterCACertificate's request.
#[derive(Clone, Debug, Default)]
pub struct CaRegistration {
    pub ca_certificate: String,
    pub verification_certificate: Option<String>,
    pub set_as_active: bool,
    pub allow_auto_registration: bool,
    pub certificate_mode: Option<String>,
}

impl Registry {
    fn new_certificate(
        &self,
        parsed: &ParsedCertificate,
        pem: &str,
        status: CertificateStatus,
        ca: Option<String>,
        mode: CertificateMode,
    ) -> Certificate {
        let now = now_millis();
        Certificate {
            id: parsed.id.clone(),
            pem: pem.trim().to_string() + "\n",
            status,
            ca_certificate_id: ca,
            mode,
            customer_version: 1,
            generation_id: uuid::Uuid::new_v4().simple().to_string(),
            not_before: parsed.not_before,
            not_after: parsed.not_after,
            creation_date: now,
            last_modified_date: now,
        }
    }

    async fn insert_new_certificate(&self, cert: Certificate) -> Result<Certificate> {
        match self.store.insert_certificate(&cert).await? {
            Created::New(c) => Ok(c),
            Created::Existing(c) => Err(RegistryError::AlreadyExists {
                message: format!("The certificate is already registered as {}", c.id),
                resource_arn: Some(self.arns.cert(&c.id)),
                resource_id: Some(c.id),
            }),
        }
    }

    fn active_or_inactive(set_as_active: bool) -> CertificateStatus {
        if set_as_active {
            CertificateStatus::Active
        } else {
            CertificateStatus::Inactive
        }
    }

    pub async fn create_keys_and_certificate(
        &self,
        set_as_active: bool,
    ) -> Result<CertificateCreated> {
        let keys = self.ca.issue_keys_and_certificate()?;
        let parsed = pki::parse_pem(&keys.certificate_pem)?;
        let cert = self.new_certificate(
            &parsed,
            &keys.certificate_pem,
            Self::active_or_inactive(set_as_active),
            None,
            CertificateMode::Default,
        );
        let certificate = self.insert_new_certificate(cert).await?;
        Ok(CertificateCreated {
            certificate,
            keys: Some(keys),
        })
    }

    pub async fn create_certificate_from_csr(
        &self,
        csr_pem: &str,
        set_as_active: bool,
    ) -> Result<CertificateCreated> {
        if csr_pem.len() > 4096 {
            return Err(RegistryError::invalid(
                "certificateSigningRequest is longer than 4096 characters",
            ));
        }
        let pem = self.ca.issue_from_csr(csr_pem)?;
        let parsed = pki::parse_pem(&pem)?;
        let cert = self.new_certificate(
            &parsed,
            &pem,
            Self::active_or_inactive(set_as_active),
            None,
            CertificateMode::Default,
        );
        let certificate = self.insert_new_certificate(cert).await?;
        Ok(CertificateCreated {
            certificate,
            keys: None,
        })
    }

    /// GetRegistrationCode: the code a CA's verification certificate must
    /// carry as its common name. Stable for this Roost installation.
    pub fn registration_code(&self) -> String {
        pki::certificate_id(
            format!(
                "roost-registration-code:{}",
                pki::certificate_id(self.ca.root_der())
            )
            .as_bytes(),
        )
    }

    pub async fn register_ca_certificate(&self, req: CaRegistration) -> Result<CaCertificate> {
        let parsed = pki::parse_pem(&req.ca_certificate)?;
        if !parsed.is_ca {
            return Err(RegistryError::CertificateValidation(
                "caCertificate is not a CA certificate: its basic constraints do not allow it to sign certificates".into(),
            ));
        }
        let mode = match req.certificate_mode.as_deref() {
            None => CertificateMode::Default,
            Some(m) => CertificateMode::parse(m).ok_or_else(|| {
                RegistryError::invalid(format!("certificateMode '{m}' is not DEFAULT or SNI_ONLY"))
            })?,
        };
        match (mode, &req.verification_certificate) {
            (CertificateMode::Default, None) => {
                return Err(RegistryError::invalid(
                    "verificationCertificate is required in DEFAULT mode: sign a certificate whose common name is the registration code (GetRegistrationCode) with this CA",
                ))
            }
            (CertificateMode::SniOnly, Some(_)) => {
                return Err(RegistryError::invalid("verificationCertificate must not be given in SNI_ONLY mode"))
            }
            (CertificateMode::Default, Some(v)) => {
                let verification = pki::parse_pem(v)?;
                if !pki::is_signed_by(&verification, &parsed) {
                    return Err(RegistryError::CertificateValidation(
                        "verificationCertificate is not signed by caCertificate".into(),
                    ));
                }
                let code = self.registration_code();
                if !verification.subject.contains(&format!("CN={code}")) {
                    return Err(RegistryError::RegistrationCodeValidation(format!(
                        "verificationCertificate's common name must be the registration code {code}"
                    )));
                }
            }
            (CertificateMode::SniOnly, None) => {}
        }
        let now = now_millis();
        let ca = CaCertificate {
            id: parsed.id.clone(),
            pem: req.ca_certificate.trim().to_string() + "\n",
            subject: parsed.subject.clone(),
            status: Self::active_or_inactive(req.set_as_active),
            auto_registration: req.allow_auto_registration,
            mode,
            customer_version: 1,
            generation_id: uuid::Uuid::new_v4().simple().to_string(),
            not_before: parsed.not_before,
            not_after: parsed.not_after,
            creation_date: now,
            last_modified_date: now,
        };
        match self.store.insert_ca_certificate(&ca).await? {
            Created::New(c) => Ok(c),
            Created::Existing(c) => Err(RegistryError::AlreadyExists {
                message: format!("The CA certificate is already registered as {}", c.id),
                resource_arn: Some(self.arns.ca_cert(&c.id)),
                resource_id: Some(c.id),
            }),
        }
    }

    pub async fn describe_ca_certificate(&self, id: &str) -> Result<CaCertificate> {
        let id = validate::certificate_id(id)?;
        self.store
            .get_ca_certificate(&id)
            .await?
            .ok_or_else(|| RegistryError::not_found(format!("CA certificate {id} does not exist")))
    }

    pub async fn list_ca_certificates(&self) -> Result<Vec<CaCertificate>> {
        self.store.list_ca_certificates().await
    }

    fn registration_status(
        set_as_active: Option<bool>,
        status: Option<&str>,
    ) -> Result<CertificateStatus> {
        let status = match status {
            None => None,
            Some(s) => Some(CertificateStatus::parse(s).ok_or_else(|| {
                RegistryError::invalid(format!("status '{s}' is not a certificate status"))
            })?),
        };
        match status {
            Some(CertificateStatus::PendingTransfer | CertificateStatus::PendingActivation) => {
                Err(RegistryError::CertificateState(
                    "a certificate cannot be registered as PENDING_TRANSFER or PENDING_ACTIVATION"
                        .into(),
                ))
            }
            Some(s) => Ok(s),
            None => Ok(Self::active_or_inactive(set_as_active.unwrap_or(false))),
        }
    }

    pub async fn register_certificate(
        &self,
        pem: &str,
        ca_pem: Option<&str>,
        set_as_active: Option<bool>,
        status: Option<&str>,
    ) -> Result<Certificate> {
        let parsed = pki::parse_pem(pem)?;
        let status = Self::registration_status(set_as_active, status)?;
        check_validity(&parsed)?;
        // Candidates: the registered CA given, or every registered CA, plus Roost's own CA.
        let registered = self.store.list_ca_certificates().await?;
        let wanted = match ca_pem {
            Some(p) => Some(pki::parse_pem(p)?.id),
            None => None,
        };
        let mut signer: Option<Option<CaCertificate>> = None;
        for ca in registered
            .iter()
            .filter(|c| wanted.as_ref().is_none_or(|w| w == &c.id))
        {
            let ca_parsed = pki::parse_pem(&ca.pem)?;
            if pki::is_signed_by(&parsed, &ca_parsed) {
                signer = Some(Some(ca.clone()));
                break;
            }
        }
        if signer.is_none() && wanted.is_none() {
            let own = pki::parse_pem(self.ca.root_pem())?;
            if pki::is_signed_by(&parsed, &own) {
                signer = Some(None);
            }
        }
        let ca = match signer {
            None => {
                return Err(RegistryError::CertificateValidation(
                    "The certificate is not signed by a registered CA certificate: register its CA first (RegisterCACertificate), or use RegisterCertificateWithoutCA".into(),
                ))
            }
            Some(ca) => ca,
        };
        if let Some(ca) = &ca {
            if ca.status != CertificateStatus::Active && status == CertificateStatus::Active {
                return Err(RegistryError::CertificateState(format!(
                    "The CA certificate {} is {}: a certificate it signed cannot be registered as ACTIVE",
                    ca.id,
                    ca.status.as_str()
                )));
            }
        }
        let cert = self.new_certificate(
            &parsed,
            pem,
            status,
            ca.map(|c| c.id),
            CertificateMode::Default,
        );
        self.insert_new_certificate(cert).await
    }

    pub async fn register_certificate_without_ca(
        &self,
        pem: &str,
        status: Option<&str>,
    ) -> Result<Certificate> {
        let parsed = pki::parse_pem(pem)?;
        let status = Self::registration_status(None, status)?;
        check_validity(&parsed)?;
        let cert = self.new_certificate(&parsed, pem, status, None, CertificateMode::SniOnly);
        self.insert_new_certificate(cert).await
    }

    pub async fn describe_certificate(&self, id: &str) -> Result<Certificate> {
        let id = validate::certificate_id(id)?;
        self.store
            .get_certificate(&id)
            .await?
            .ok_or_else(|| RegistryError::not_found(format!("Certificate {id} does not exist")))
    }

    pub async fn list_certificates(
        &self,
        ca: Option<&str>,
        marker: Option<&str>,
        page_size: Option<i64>,
        ascending: bool,
    ) -> Result<Page<Certificate>> {
        let limit = validate::page_size(page_size, 25)?;
        paged(
            marker,
            limit,
            ascending,
            |c: &Certificate| format!("{}:{}", c.creation_date, c.id),
            |p| async move { self.store.list_certificates(ca, &p).await },
        )
        .await
    }

    /// UpdateCertificate, with AWS's allowed transitions: REVOKED is final,
    /// and PENDING_* states cannot be set by hand.
    pub async fn update_certificate(&self, id: &str, new_status: &str) -> Result<Certificate> {
        let id = validate::certificate_id(id)?;
        let target = CertificateStatus::parse(new_status).ok_or_else(|| {
            RegistryError::invalid(format!(
                "newStatus '{new_status}' is not valid: use ACTIVE, INACTIVE or REVOKED"
            ))
        })?;
        if matches!(
            target,
            CertificateStatus::PendingTransfer | CertificateStatus::PendingActivation
        ) {
            return Err(RegistryError::invalid(format!(
                "newStatus {new_status} cannot be set with UpdateCertificate"
            )));
        }
        let cert = self
            .store
            .update_certificate(
                &id,
                Box::new(move |cert: &mut Certificate| {
                    if cert.status == target {
                        return Ok(());
                    }
                    if cert.status == CertificateStatus::Revoked {
                        return Err(RegistryError::CertificateState(format!(
                            "Certificate {} is REVOKED: a revoked certificate cannot change state",
                            cert.id
                        )));
                    }
                    if cert.status == CertificateStatus::PendingTransfer {
                        return Err(RegistryError::CertificateState(format!(
                            "Certificate {} is PENDING_TRANSFER",
                            cert.id
                        )));
                    }
                    cert.status = target;
                    cert.last_modified_date = now_millis();
                    Ok(())
                }),
            )
            .await?;
        self.publish(RegistryEvent::CertificateStatusChanged {
            certificate_id: id,
            status: Some(cert.status),
        });
        Ok(cert)
    }

    pub async fn delete_certificate(&self, id: &str, force: bool) -> Result<()> {
        let id = validate::certificate_id(id)?;
        self.store
            .delete_certificate(&id, &self.arns.cert(&id), force)
            .await?;
        self.publish(RegistryEvent::CertificateStatusChanged {
            certificate_id: id,
            status: None,
        });
        Ok(())
    }
}

fn check_validity(parsed: &ParsedCertificate) -> Result<()> {
    let now = now_millis();
    if parsed.not_after < now {
        return Err(RegistryError::CertificateValidation(
            "The certificate has expired".into(),
        ));
    }
    if parsed.not_before > now + 5 * 60 * 1000 {
        return Err(RegistryError::CertificateValidation(
            "The certificate is not yet valid".into(),
        ));
    }
    Ok(())
}

/// Why a device's certificate was refused at connect time.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CertificateRefusal {
    #[error("certificate {0} is not registered")]
    Unknown(String),
    #[error("certificate {id} is {status}")]
    NotActive { id: String, status: &'static str },
    #[error("certificate {id} was signed by CA {ca_id}, which is {status}")]
    CaNotActive {
        id: String,
        ca_id: String,
        status: &'static str,
    },
}

impl Registry {
    /// Decides whether the device certificate `id` may be used now: it must
    /// be registered and ACTIVE, and so must the CA it was registered with,
    /// if any. Asked at the handshake, at CONNECT, and whenever a live
    /// connection's authorization is refreshed, so that a revocation applies
    /// from the next thing a device does.
    pub async fn check_device_certificate(
        &self,
        id: &str,
    ) -> Result<std::result::Result<(), CertificateRefusal>> {
        let Some(cert) = self.store.get_certificate(id).await? else {
            return Ok(Err(CertificateRefusal::Unknown(id.to_string())));
        };
        if cert.status != CertificateStatus::Active {
            return Ok(Err(CertificateRefusal::NotActive {
                id: cert.id,
                status: cert.status.as_str(),
            }));
        }
        if let Some(ca_id) = &cert.ca_certificate_id {
            let status = self
                .store
                .get_ca_certificate(ca_id)
                .await?
                .map(|ca| ca.status);
            if status != Some(CertificateStatus::Active) {
                return Ok(Err(CertificateRefusal::CaNotActive {
                    id: cert.id.clone(),
                    ca_id: ca_id.clone(),
                    status: status
                        .map(CertificateStatus::as_str)
                        .unwrap_or("not registered"),
                }));
            }
        }
        Ok(Ok(()))
    }
}
