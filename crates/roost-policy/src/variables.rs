//! Policy variables and connection condition keys (reference 1.6): what a name such
//! as `iot:Connection.Thing.Attributes[Owner]` means, and its value for a connection.
//!
//! The same names serve as `${...}` variables in `Resource` and condition values and,
//! without the braces, as condition keys. Names are compared case-insensitively, as
//! IAM compares condition keys; thing attribute names inside `[...]` stay
//! case-sensitive because the registry's attribute names are.
//!
//! This module decides *whether* a variable resolves; it must never decide what an
//! unresolved variable does to a statement (that is the evaluator's rule).

use crate::context::{CertificateContext, ConnectionContext};

/// Subject and issuer attributes AWS exposes, in the spelling of the variable names.
const DN_ATTRIBUTES: [&str; 13] = [
    "DistinguishedNameQualifier",
    "Country",
    "Organization",
    "OrganizationalUnit",
    "State",
    "CommonName",
    "SerialNumber",
    "Title",
    "Surname",
    "GivenName",
    "Initials",
    "Pseudonym",
    "GenerationQualifier",
];

/// Alternative-name kinds AWS exposes.
const ALT_NAME_KINDS: [&str; 5] = [
    "RFC822Name",
    "DNSName",
    "DirectoryName",
    "UniformResourceIdentifier",
    "IPAddress",
];

/// AWS uses at most the first five values of a repeated certificate attribute.
const MAX_CERT_VALUES: usize = 5;
/// A certificate value longer than this is not substituted.
const MAX_CERT_VALUE_CHARS: usize = 1024;
/// A certificate value containing any of these is not substituted, so that a
/// certificate cannot smuggle a wildcard into a policy.
const CERT_VALUE_FORBIDDEN: [char; 5] = ['*', '$', '+', '?', '#'];
/// Characters that must be backslash-escaped in compared certificate values.
const DN_SPECIAL: [char; 8] = [',', '"', '\\', '+', '=', '<', '>', ';'];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CertPart {
    Subject,
    Issuer,
}

impl CertPart {
    fn name(self) -> &'static str {
        match self {
            CertPart::Subject => "Subject",
            CertPart::Issuer => "Issuer",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CertField {
    /// Index into [`DN_ATTRIBUTES`].
    Dn(usize),
    /// Index into [`ALT_NAME_KINDS`].
    AltName(usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CertIndex {
    /// The bare name: the first value.
    First,
    /// `.N`, 0-based.
    At(usize),
    /// `.List`: every value (for `ForAnyValue:`/`ForAllValues:`).
    List,
}

/// A variable or condition key name, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Variable {
    ClientId,
    SourceIp,
    DomainName,
    ThingName,
    ThingTypeName,
    ThingAttribute(String),
    ThingIsAttached,
    /// `iot:CertificateId`: the id of the certificate the connection
    /// authenticated with (AWS's certificate policy examples name topics after it).
    CertificateId,
    CertificateSerialNumber,
    CertificateAvailableKeys,
    Certificate {
        part: CertPart,
        field: CertField,
        index: CertIndex,
    },
    /// Not a connection variable. As a condition key it is looked up among the
    /// request's context values; as a `${...}` variable it never resolves.
    Other,
}

impl Variable {
    pub(crate) fn parse(name: &str) -> Variable {
        let lower = name.to_ascii_lowercase();
        match lower.as_str() {
            "iot:clientid" => return Variable::ClientId,
            "aws:sourceip" => return Variable::SourceIp,
            "iot:domainname" => return Variable::DomainName,
            "iot:connection.thing.thingname" => return Variable::ThingName,
            "iot:connection.thing.thingtypename" => return Variable::ThingTypeName,
            "iot:connection.thing.isattached" => return Variable::ThingIsAttached,
            "iot:certificateid" => return Variable::CertificateId,
            "iot:certificate.serialnumber" => return Variable::CertificateSerialNumber,
            "iot:certificate.availablekeys" => return Variable::CertificateAvailableKeys,
            _ => {}
        }
        const ATTRIBUTES: &str = "iot:connection.thing.attributes[";
        if lower.starts_with(ATTRIBUTES)
            && lower.ends_with(']')
            && lower.len() > ATTRIBUTES.len() + 1
        {
            // ASCII lower-casing keeps byte offsets, so the original spelling of the
            // attribute name can be cut from `name`.
            return Variable::ThingAttribute(name[ATTRIBUTES.len()..name.len() - 1].to_string());
        }
        if let Some(rest) = lower.strip_prefix("iot:certificate.") {
            return parse_certificate(rest).unwrap_or(Variable::Other);
        }
        Variable::Other
    }

    /// Whether the value comes from the connection (as opposed to the request).
    pub(crate) fn is_connection_key(&self) -> bool {
        !matches!(self, Variable::Other)
    }

    /// The value for `${...}` substitution. Multi-valued names (`.List`,
    /// `AvailableKeys`) have no single value and do not resolve.
    pub(crate) fn substitute(&self, ctx: &ConnectionContext) -> Option<String> {
        match self {
            Variable::CertificateAvailableKeys
            | Variable::Certificate {
                index: CertIndex::List,
                ..
            } => None,
            _ => self.values(ctx).and_then(|mut v| match v.len() {
                1 => v.pop(),
                _ => None,
            }),
        }
    }

    /// The values of this name as a condition key; `None` when it has none.
    pub(crate) fn values(&self, ctx: &ConnectionContext) -> Option<Vec<String>> {
        let one = |v: Option<&String>| v.map(|v| vec![v.clone()]);
        match self {
            Variable::ClientId => one(ctx.client_id.as_ref()),
            // IPv4 clients seen on a dual-stack socket arrive as ::ffff:a.b.c.d; the
            // policy author wrote a.b.c.d.
            Variable::SourceIp => ctx.source_ip.map(|ip| vec![ip.to_canonical().to_string()]),
            Variable::DomainName => one(ctx.domain_name.as_ref()),
            Variable::ThingName => one(ctx.thing.as_ref().map(|t| &t.name)),
            Variable::ThingTypeName => one(ctx.thing.as_ref().and_then(|t| t.type_name.as_ref())),
            Variable::ThingAttribute(attribute) => {
                one(ctx.thing.as_ref().and_then(|t| t.attributes.get(attribute)))
            }
            Variable::ThingIsAttached => Some(vec![ctx.thing.is_some().to_string()]),
            // An empty id is a context built without one (never a real
            // certificate): it must not turn `topic/${iot:CertificateId}` into `topic/`.
            Variable::CertificateId => one(ctx
                .certificate
                .as_ref()
                .map(|c| &c.id)
                .filter(|id| !id.is_empty())),
            Variable::CertificateSerialNumber => {
                let cert = ctx.certificate.as_ref()?;
                usable(&cert.serial_number).then(|| vec![cert.serial_number.clone()])
            }
            Variable::CertificateAvailableKeys => {
                let keys = available_keys(ctx.certificate.as_ref()?);
                (!keys.is_empty()).then_some(keys)
            }
            Variable::Certificate { part, field, index } => {
                let cert = ctx.certificate.as_ref()?;
                let values: Vec<&str> = certificate_values(cert, *part, *field).collect();
                let render = |v: &str| -> Option<String> {
                    usable(v).then(|| match field {
                        CertField::Dn(_) => escape_dn(v),
                        CertField::AltName(_) => v.to_string(),
                    })
                };
                match index {
                    CertIndex::First => values.first().and_then(|v| render(v)).map(|v| vec![v]),
                    CertIndex::At(n) => values.get(*n).and_then(|v| render(v)).map(|v| vec![v]),
                    CertIndex::List => {
                        let all: Vec<String> = values.iter().filter_map(|v| render(v)).collect();
                        (!all.is_empty()).then_some(all)
                    }
                }
            }
            Variable::Other => None,
        }
    }
}

fn parse_certificate(rest: &str) -> Option<Variable> {
    let parts: Vec<&str> = rest.split('.').collect();
    let part = match *parts.first()? {
        "subject" => CertPart::Subject,
        "issuer" => CertPart::Issuer,
        _ => return None,
    };
    let find =
        |names: &[&str], wanted: &str| names.iter().position(|n| n.eq_ignore_ascii_case(wanted));
    let (field, index_parts) = if parts.get(1) == Some(&"alternativename") {
        (
            CertField::AltName(find(&ALT_NAME_KINDS, parts.get(2)?)?),
            &parts[3..],
        )
    } else {
        (
            CertField::Dn(find(&DN_ATTRIBUTES, parts.get(1)?)?),
            &parts[2..],
        )
    };
    let index = match index_parts {
        [] => CertIndex::First,
        ["list"] => CertIndex::List,
        [n] if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
            // An absurd index is simply out of range, like any index past the fifth.
            CertIndex::At(n.parse().unwrap_or(usize::MAX))
        }
        _ => return None,
    };
    Some(Variable::Certificate { part, field, index })
}

/// The first five values of one certificate attribute or alternative-name kind.
fn certificate_values(
    cert: &CertificateContext,
    part: CertPart,
    field: CertField,
) -> impl Iterator<Item = &str> {
    let (list, wanted) = match (part, field) {
        (CertPart::Subject, CertField::Dn(i)) => (&cert.subject, DN_ATTRIBUTES[i]),
        (CertPart::Issuer, CertField::Dn(i)) => (&cert.issuer, DN_ATTRIBUTES[i]),
        (CertPart::Subject, CertField::AltName(i)) => (&cert.subject_alt_names, ALT_NAME_KINDS[i]),
        (CertPart::Issuer, CertField::AltName(i)) => (&cert.issuer_alt_names, ALT_NAME_KINDS[i]),
    };
    list.iter()
        .filter(move |(name, _)| name.eq_ignore_ascii_case(wanted))
        .map(|(_, value)| value.as_str())
        .take(MAX_CERT_VALUES)
}

/// AWS's rules for certificate values that may be substituted.
fn usable(value: &str) -> bool {
    value.chars().count() <= MAX_CERT_VALUE_CHARS && !value.contains(CERT_VALUE_FORBIDDEN)
}

/// Distinguished-name values are compared in their escaped form: a policy matching an
/// organization `Example, Inc.` says `Example\, Inc.`.
fn escape_dn(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if DN_SPECIAL.contains(&c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `iot:Certificate.AvailableKeys`: the certificate variable names that have a value.
fn available_keys(cert: &CertificateContext) -> Vec<String> {
    let mut keys = Vec::new();
    if usable(&cert.serial_number) && !cert.serial_number.is_empty() {
        keys.push("iot:Certificate.SerialNumber".to_string());
    }
    for part in [CertPart::Subject, CertPart::Issuer] {
        for (i, attr) in DN_ATTRIBUTES.iter().enumerate() {
            if certificate_values(cert, part, CertField::Dn(i))
                .next()
                .is_some_and(usable)
            {
                keys.push(format!("iot:Certificate.{}.{attr}", part.name()));
            }
        }
        for (i, kind) in ALT_NAME_KINDS.iter().enumerate() {
            if certificate_values(cert, part, CertField::AltName(i))
                .next()
                .is_some_and(usable)
            {
                keys.push(format!(
                    "iot:Certificate.{}.AlternativeName.{kind}",
                    part.name()
                ));
            }
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::ThingContext;

    fn ctx() -> ConnectionContext {
        ConnectionContext {
            region: "us-east-1".into(),
            account: "000000000000".into(),
            client_id: Some("dev-1".into()),
            source_ip: Some("::ffff:192.0.2.7".parse().unwrap()),
            domain_name: Some("iot.example.com".into()),
            thing: Some(ThingContext {
                name: "dev-1".into(),
                type_name: None,
                attributes: [("Owner".to_string(), "t-1".to_string())].into(),
            }),
            certificate: Some(CertificateContext {
                id: "ab".repeat(32),
                serial_number: "10525622389124227206".into(),
                subject: vec![
                    ("Country".into(), "US".into()),
                    ("Country".into(), "CA".into()),
                    ("Organization".into(), "Example, Inc.".into()),
                    ("CommonName".into(), "dev*".into()),
                    ("OrganizationalUnit".into(), "x".repeat(1025)),
                ],
                issuer: vec![("CommonName".into(), "Root CA".into())],
                subject_alt_names: vec![
                    ("DNSName".into(), "a.example.com".into()),
                    ("DNSName".into(), "b.example.com".into()),
                ],
                issuer_alt_names: vec![],
            }),
        }
    }

    fn sub(name: &str) -> Option<String> {
        Variable::parse(name).substitute(&ctx())
    }

    #[test]
    fn basic_and_thing_variables() {
        assert_eq!(sub("iot:ClientId").as_deref(), Some("dev-1"));
        assert_eq!(sub("IOT:clientid").as_deref(), Some("dev-1"));
        assert_eq!(sub("aws:SourceIp").as_deref(), Some("192.0.2.7"));
        assert_eq!(sub("iot:DomainName").as_deref(), Some("iot.example.com"));
        assert_eq!(
            sub("iot:Connection.Thing.ThingName").as_deref(),
            Some("dev-1")
        );
        assert_eq!(sub("iot:Connection.Thing.ThingTypeName"), None);
        assert_eq!(
            sub("iot:Connection.Thing.Attributes[Owner]").as_deref(),
            Some("t-1")
        );
        assert_eq!(sub("iot:Connection.Thing.Attributes[owner]"), None);
        assert_eq!(sub("iot:Connection.Thing.Attributes[]"), None);
        assert_eq!(
            sub("iot:Connection.Thing.IsAttached").as_deref(),
            Some("true")
        );
        let detached = ConnectionContext {
            thing: None,
            ..ctx()
        };
        assert_eq!(
            Variable::ThingIsAttached.substitute(&detached).as_deref(),
            Some("false")
        );
        assert_eq!(Variable::ThingName.substitute(&detached), None);
        assert_eq!(sub("aws:username"), None);
        assert_eq!(Variable::parse("aws:username"), Variable::Other);
    }

    #[test]
    fn certificate_variables() {
        assert_eq!(
            sub("iot:Certificate.SerialNumber").as_deref(),
            Some("10525622389124227206")
        );
        assert_eq!(
            sub("iot:Certificate.Subject.Country").as_deref(),
            Some("US")
        );
        assert_eq!(
            sub("iot:Certificate.Subject.Country.0").as_deref(),
            Some("US")
        );
        assert_eq!(
            sub("iot:Certificate.Subject.Country.1").as_deref(),
            Some("CA")
        );
        assert_eq!(sub("iot:Certificate.Subject.Country.2"), None);
        assert_eq!(sub("iot:Certificate.Subject.Country.List"), None);
        assert_eq!(
            Variable::parse("iot:Certificate.Subject.Country.List").values(&ctx()),
            Some(vec!["US".to_string(), "CA".to_string()])
        );
        // Escaped for comparison; a wildcard or an over-long value never substitutes.
        assert_eq!(
            sub("iot:Certificate.Subject.Organization").as_deref(),
            Some("Example\\, Inc.")
        );
        assert_eq!(sub("iot:Certificate.Subject.CommonName"), None);
        assert_eq!(sub("iot:Certificate.Subject.OrganizationalUnit"), None);
        assert_eq!(
            sub("iot:Certificate.Issuer.CommonName").as_deref(),
            Some("Root CA")
        );
        assert_eq!(
            sub("iot:Certificate.Subject.AlternativeName.DNSName.1").as_deref(),
            Some("b.example.com")
        );
        assert_eq!(sub("iot:Certificate.Issuer.AlternativeName.DNSName"), None);
        assert_eq!(sub("iot:Certificate.Subject.Nope"), None);
        assert_eq!(
            Variable::parse("iot:Certificate.Subject.Nope"),
            Variable::Other
        );
        assert_eq!(
            Variable::parse("iot:Certificate.Subject.Country.x"),
            Variable::Other
        );
        assert_eq!(
            sub("iot:Certificate.Subject.Country.99999999999999999999999"),
            None
        );
    }

    #[test]
    fn certificate_id() {
        let id = "ab".repeat(32);
        assert_eq!(sub("iot:CertificateId").as_deref(), Some(id.as_str()));
        assert_eq!(sub("IOT:certificateid").as_deref(), Some(id.as_str()));
        assert_eq!(
            Variable::parse("iot:CertificateId"),
            Variable::CertificateId
        );
        assert!(Variable::CertificateId.is_connection_key());
        let no_cert = ConnectionContext {
            certificate: None,
            ..ctx()
        };
        assert_eq!(Variable::CertificateId.substitute(&no_cert), None);
        let mut no_id = ctx();
        if let Some(cert) = no_id.certificate.as_mut() {
            cert.id.clear();
        }
        assert_eq!(Variable::CertificateId.substitute(&no_id), None);
    }

    #[test]
    fn only_five_values_count() {
        let mut c = ctx();
        let cert = c.certificate.as_mut().unwrap();
        cert.subject = (0..7)
            .map(|i| ("Country".to_string(), format!("C{i}")))
            .collect();
        let v = Variable::parse("iot:Certificate.Subject.Country.List")
            .values(&c)
            .unwrap();
        assert_eq!(v, ["C0", "C1", "C2", "C3", "C4"]);
        assert_eq!(
            Variable::parse("iot:Certificate.Subject.Country.4")
                .substitute(&c)
                .as_deref(),
            Some("C4")
        );
        assert_eq!(
            Variable::parse("iot:Certificate.Subject.Country.5").substitute(&c),
            None
        );
    }

    #[test]
    fn available_keys_lists_what_has_a_value() {
        let keys = Variable::CertificateAvailableKeys.values(&ctx()).unwrap();
        assert_eq!(
            keys,
            [
                "iot:Certificate.SerialNumber",
                "iot:Certificate.Subject.Country",
                "iot:Certificate.Subject.Organization",
                "iot:Certificate.Subject.AlternativeName.DNSName",
                "iot:Certificate.Issuer.CommonName",
            ]
        );
        assert_eq!(Variable::CertificateAvailableKeys.substitute(&ctx()), None);
        let no_cert = ConnectionContext {
            certificate: None,
            ..ctx()
        };
        assert_eq!(Variable::CertificateAvailableKeys.values(&no_cert), None);
    }
}
