//! The registry's records, as stored and as returned to callers. Plain data:
//! no storage or validation logic lives here.

use std::collections::BTreeMap;

/// Milliseconds since the Unix epoch, UTC. The control plane renders it as
/// epoch seconds with a fraction, which is what AWS's REST JSON clients parse.
pub type Millis = i64;

pub fn now_millis() -> Millis {
    let now = time::OffsetDateTime::now_utc();
    (now.unix_timestamp_nanos() / 1_000_000) as Millis
}

/// Builds ARNs the way AWS IoT spells them for this region and account.
#[derive(Clone, Debug)]
pub struct Arns {
    pub region: String,
    pub account: String,
}

impl Arns {
    fn arn(&self, kind: &str, name: &str) -> String {
        format!("arn:aws:iot:{}:{}:{kind}/{name}", self.region, self.account)
    }
    pub fn thing(&self, name: &str) -> String {
        self.arn("thing", name)
    }
    pub fn thing_type(&self, name: &str) -> String {
        self.arn("thingtype", name)
    }
    pub fn thing_group(&self, name: &str) -> String {
        self.arn("thinggroup", name)
    }
    pub fn cert(&self, id: &str) -> String {
        self.arn("cert", id)
    }
    pub fn ca_cert(&self, id: &str) -> String {
        self.arn("cacert", id)
    }
    pub fn policy(&self, name: &str) -> String {
        self.arn("policy", name)
    }

    /// Splits an IoT ARN into (kind, name), accepting any region and account
    /// (clients copy ARNs between regions in scripts; the name is what counts).
    pub fn parse<'a>(&self, arn: &'a str) -> Option<(&'a str, &'a str)> {
        let rest = arn.strip_prefix("arn:aws:iot:")?;
        let mut parts = rest.splitn(3, ':');
        let _region = parts.next()?;
        let _account = parts.next()?;
        let resource = parts.next()?;
        let (kind, name) = resource.split_once('/')?;
        if name.is_empty() {
            return None;
        }
        Some((kind, name))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Thing {
    pub name: String,
    pub id: String,
    pub type_name: Option<String>,
    pub attributes: BTreeMap<String, String>,
    pub version: i64,
    pub creation_date: Millis,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThingType {
    pub name: String,
    pub id: String,
    pub description: Option<String>,
    pub searchable_attributes: Vec<String>,
    pub deprecated: bool,
    pub deprecation_date: Option<Millis>,
    pub creation_date: Millis,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThingGroup {
    pub name: String,
    pub id: String,
    pub parent_name: Option<String>,
    pub description: Option<String>,
    pub attributes: BTreeMap<String, String>,
    pub version: i64,
    pub creation_date: Millis,
}

/// Certificate status, as AWS's `CertificateStatus` enum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertificateStatus {
    Active,
    Inactive,
    Revoked,
    PendingTransfer,
    RegisterInactive,
    PendingActivation,
}

impl CertificateStatus {
    pub const ALL: [CertificateStatus; 6] = [
        Self::Active,
        Self::Inactive,
        Self::Revoked,
        Self::PendingTransfer,
        Self::RegisterInactive,
        Self::PendingActivation,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "ACTIVE",
            Self::Inactive => "INACTIVE",
            Self::Revoked => "REVOKED",
            Self::PendingTransfer => "PENDING_TRANSFER",
            Self::RegisterInactive => "REGISTER_INACTIVE",
            Self::PendingActivation => "PENDING_ACTIVATION",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// How devices using a certificate must connect: `SNI_ONLY` for certificates
/// registered without their CA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertificateMode {
    Default,
    SniOnly,
}

impl CertificateMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Default => "DEFAULT",
            Self::SniOnly => "SNI_ONLY",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "DEFAULT" => Some(Self::Default),
            "SNI_ONLY" => Some(Self::SniOnly),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Certificate {
    pub id: String,
    pub pem: String,
    pub status: CertificateStatus,
    pub ca_certificate_id: Option<String>,
    pub mode: CertificateMode,
    pub customer_version: i64,
    pub generation_id: String,
    pub not_before: Millis,
    pub not_after: Millis,
    pub creation_date: Millis,
    pub last_modified_date: Millis,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaCertificate {
    pub id: String,
    pub pem: String,
    pub subject: String,
    pub status: CertificateStatus,
    pub auto_registration: bool,
    pub mode: CertificateMode,
    pub customer_version: i64,
    pub generation_id: String,
    pub not_before: Millis,
    pub not_after: Millis,
    pub creation_date: Millis,
    pub last_modified_date: Millis,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub name: String,
    pub default_version: i64,
    pub generation_id: String,
    pub creation_date: Millis,
    pub last_modified_date: Millis,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyVersion {
    pub policy_name: String,
    pub version_id: i64,
    pub document: String,
    pub creation_date: Millis,
    pub is_default: bool,
}

/// How a principal is attached to a thing (AWS `ThingPrincipalType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThingPrincipalType {
    Exclusive,
    NonExclusive,
}

impl ThingPrincipalType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Exclusive => "EXCLUSIVE_THING",
            Self::NonExclusive => "NON_EXCLUSIVE_THING",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "EXCLUSIVE_THING" => Some(Self::Exclusive),
            "NON_EXCLUSIVE_THING" => Some(Self::NonExclusive),
            _ => None,
        }
    }
}

/// One page of a listing plus the opaque token for the next one.
#[derive(Clone, Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_token: Option<String>,
}

/// Where a listing starts and how much it returns.
#[derive(Clone, Debug)]
pub struct PageRequest {
    /// Exclusive lower bound: the last key of the previous page.
    pub after: Option<String>,
    pub limit: usize,
    pub ascending: bool,
}

impl PageRequest {
    pub fn first(limit: usize) -> Self {
        Self {
            after: None,
            limit,
            ascending: true,
        }
    }
}
