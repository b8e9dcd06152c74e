//! From what the registry holds ([`Actual`]) to what a deployment file
//! describes: the ordered changes `apply` makes, what it cannot change, what
//! exists that the file does not name; and the ordered removals `destroy`
//! makes. Pure: the edge reads the registry into an `Actual` and carries the
//! changes out.
//!
//! A thing, a topic or a policy the file names is the file's: its
//! attributes, groups, policies and subscriptions are made to match.
//! Resources the file does not name are never touched.

use crate::model::{to_json, Deployment, Job, Rule, Thing, ThingGroup, ThingType};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// AWS keeps at most five versions of a policy.
pub const MAX_POLICY_VERSIONS: usize = 5;

/// What the registry holds, for the kinds a deployment names.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Actual {
    pub thing_types: BTreeMap<String, TypeState>,
    pub thing_groups: BTreeMap<String, GroupState>,
    pub policies: BTreeMap<String, PolicyState>,
    pub things: BTreeMap<String, ThingState>,
    pub topics: BTreeMap<String, TopicState>,
    pub rules: BTreeMap<String, RuleState>,
    pub jobs: BTreeMap<String, JobState>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct TypeState {
    pub deprecated: bool,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct GroupState {
    pub description: Option<String>,
    pub parent: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct PolicyState {
    pub default_document: Value,
    /// (version id, is default), oldest first.
    pub versions: Vec<(String, bool)>,
    /// Certificate ARNs it is attached to.
    pub targets: BTreeSet<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ThingState {
    pub thing_type: Option<String>,
    pub attributes: BTreeMap<String, String>,
    pub groups: BTreeSet<String>,
    pub certificates: Vec<CertState>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct CertState {
    pub id: String,
    pub arn: String,
    pub status: String,
    pub policies: BTreeSet<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct TopicState {
    pub arn: String,
    /// (protocol, endpoint) → subscription ARN.
    pub subscriptions: BTreeMap<(String, String), String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct RuleState {
    /// The rule's payload as CreateTopicRule takes it (see [`rule_payload`]).
    pub payload: Value,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct JobState {
    pub document: Value,
    pub status: String,
}

/// One step of an apply or a destroy.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    CreateThingType(ThingType),
    UndeprecateThingType(String),
    CreateThingGroup(ThingGroup),
    UpdateThingGroup {
        name: String,
        description: Option<String>,
    },
    CreatePolicy {
        name: String,
        document: Value,
    },
    /// A new default version; `delete_version` first when five exist.
    NewPolicyVersion {
        name: String,
        document: Value,
        delete_version: Option<String>,
    },
    CreateThing(Thing),
    UpdateThing {
        name: String,
        thing_type: Option<String>,
        attributes: BTreeMap<String, String>,
    },
    AddThingToGroup {
        thing: String,
        group: String,
    },
    RemoveThingFromGroup {
        thing: String,
        group: String,
    },
    /// A certificate for the thing, its files written out.
    CreateCertificate {
        thing: String,
    },
    /// The policy attached to each ACTIVE certificate of the thing.
    AttachPolicy {
        policy: String,
        thing: String,
    },
    DetachPolicy {
        policy: String,
        target: String,
    },
    CreateTopic {
        name: String,
    },
    Subscribe {
        topic: String,
        protocol: String,
        endpoint: String,
    },
    Unsubscribe {
        topic: String,
        subscription_arn: String,
        endpoint: String,
    },
    CreateRule {
        name: String,
        payload: Value,
    },
    ReplaceRule {
        name: String,
        payload: Value,
    },
    CreateJob(Job),
    // Removals.
    DeleteJob {
        id: String,
    },
    DeleteRule {
        name: String,
    },
    DeleteTopic {
        name: String,
        arn: String,
    },
    DetachThingPrincipal {
        thing: String,
        arn: String,
    },
    DeactivateCertificate {
        id: String,
    },
    DeleteCertificate {
        id: String,
    },
    DeleteThing {
        name: String,
    },
    DeleteThingGroup {
        name: String,
    },
    DeletePolicyVersion {
        policy: String,
        version: String,
    },
    DeletePolicy {
        name: String,
    },
    DeprecateThingType {
        name: String,
    },
    DeleteThingType {
        name: String,
    },
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Change::*;
        match self {
            CreateThingType(t) => write!(f, "+ thing type {}", t.name),
            UndeprecateThingType(n) => write!(f, "~ thing type {n}: undeprecate"),
            CreateThingGroup(g) => match &g.parent {
                Some(p) => write!(f, "+ thing group {} (in {p})", g.name),
                None => write!(f, "+ thing group {}", g.name),
            },
            UpdateThingGroup { name, description } => {
                write!(f, "~ thing group {name}: description → {description:?}")
            }
            CreatePolicy { name, .. } => write!(f, "+ policy {name}"),
            NewPolicyVersion { name, delete_version, .. } => match delete_version {
                Some(v) => write!(f, "~ policy {name}: new default version (deleting version {v}, five is the limit)"),
                None => write!(f, "~ policy {name}: new default version"),
            },
            CreateThing(t) => {
                write!(f, "+ thing {}", t.name)?;
                if let Some(ty) = &t.thing_type {
                    write!(f, " (type {ty})")?;
                }
                if !t.attributes.is_empty() {
                    write!(f, " {:?}", t.attributes)?;
                }
                Ok(())
            }
            UpdateThing { name, thing_type, attributes } => {
                write!(f, "~ thing {name}: type {thing_type:?}, attributes {attributes:?}")
            }
            AddThingToGroup { thing, group } => write!(f, "+ thing {thing} in group {group}"),
            RemoveThingFromGroup { thing, group } => write!(f, "- thing {thing} from group {group}"),
            CreateCertificate { thing } => write!(f, "+ certificate for thing {thing}"),
            AttachPolicy { policy, thing } => {
                write!(f, "+ policy {policy} attached to thing {thing}'s certificates")
            }
            DetachPolicy { policy, target } => write!(f, "- policy {policy} detached from {target}"),
            CreateTopic { name } => write!(f, "+ topic {name}"),
            Subscribe { topic, protocol, endpoint } => {
                write!(f, "+ subscription {protocol}:{endpoint} to topic {topic}")
            }
            Unsubscribe { topic, endpoint, .. } => {
                write!(f, "- subscription {endpoint} to topic {topic}")
            }
            CreateRule { name, .. } => write!(f, "+ rule {name}"),
            ReplaceRule { name, .. } => write!(f, "~ rule {name}: replaced"),
            CreateJob(j) => write!(f, "+ job {}", j.id),
            DeleteJob { id } => write!(f, "- job {id}"),
            DeleteRule { name } => write!(f, "- rule {name}"),
            DeleteTopic { name, .. } => write!(f, "- topic {name}"),
            DetachThingPrincipal { thing, arn } => write!(f, "- certificate {arn} detached from thing {thing}"),
            DeactivateCertificate { id } => write!(f, "~ certificate {id}: INACTIVE"),
            DeleteCertificate { id } => write!(f, "- certificate {id}"),
            DeleteThing { name } => write!(f, "- thing {name}"),
            DeleteThingGroup { name } => write!(f, "- thing group {name}"),
            DeletePolicyVersion { policy, version } => write!(f, "- policy {policy} version {version}"),
            DeletePolicy { name } => write!(f, "- policy {name}"),
            DeprecateThingType { name } => write!(f, "~ thing type {name}: deprecate"),
            DeleteThingType { name } => write!(f, "- thing type {name}"),
        }
    }
}

/// What apply would do.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub changes: Vec<Change>,
    /// Differences apply cannot make (a job's document, …): apply refuses
    /// to start while there are any.
    pub conflicts: Vec<String>,
    /// Resources that exist and the file does not name (left alone).
    pub unmanaged: Vec<String>,
}

/// The payload CreateTopicRule and ReplaceTopicRule take for `rule`.
pub fn rule_payload(rule: &Rule) -> Value {
    let mut payload = json!({
        "sql": rule.sql,
        "ruleDisabled": rule.disabled,
        "actions": rule.actions.iter().map(to_json).collect::<Vec<_>>(),
        "awsIotSqlVersion": rule.sql_version.clone().unwrap_or_else(|| "2016-03-23".into()),
    });
    if let Some(d) = &rule.description {
        payload["description"] = json!(d);
    }
    if let Some(e) = &rule.error_action {
        payload["errorAction"] = to_json(e);
    }
    payload
}

/// The changes that take `actual` to what `d` describes.
pub fn plan(d: &Deployment, actual: &Actual, all: &Names) -> Plan {
    let mut p = Plan::default();
    let c = &mut p.changes;
    for t in d.thing_types() {
        match actual.thing_types.get(&t.name) {
            None => c.push(Change::CreateThingType(t.clone())),
            Some(s) if s.deprecated => c.push(Change::UndeprecateThingType(t.name.clone())),
            Some(_) => {}
        }
    }
    for g in groups_parents_first(d.thing_groups()) {
        match actual.thing_groups.get(&g.name) {
            None => c.push(Change::CreateThingGroup(g.clone())),
            Some(s) => {
                if s.parent != g.parent {
                    p.conflicts.push(format!(
                        "thing group {}: its parent is {:?}, the file says {:?} (a group's parent cannot change; remove the group first)",
                        g.name, s.parent, g.parent
                    ));
                }
                if g.description.is_some() && s.description != g.description {
                    c.push(Change::UpdateThingGroup {
                        name: g.name.clone(),
                        description: g.description.clone(),
                    });
                }
            }
        }
    }
    for pol in d.policies() {
        let document: Value = serde_json::from_str(&pol.document).unwrap_or(Value::Null);
        match actual.policies.get(&pol.name) {
            None => c.push(Change::CreatePolicy {
                name: pol.name.clone(),
                document,
            }),
            Some(s) if s.default_document != document => c.push(Change::NewPolicyVersion {
                name: pol.name.clone(),
                document,
                delete_version: (s.versions.len() >= MAX_POLICY_VERSIONS)
                    .then(|| {
                        s.versions
                            .iter()
                            .find(|(_, default)| !default)
                            .map(|(v, _)| v.clone())
                    })
                    .flatten(),
            }),
            Some(_) => {}
        }
    }
    for t in d.things() {
        plan_thing(t, actual.things.get(&t.name), c);
    }
    for topic in d.topics() {
        let existing = actual.topics.get(&topic.name);
        if existing.is_none() {
            c.push(Change::CreateTopic {
                name: topic.name.clone(),
            });
        }
        let wanted: BTreeSet<(String, String)> = topic
            .subscriptions
            .iter()
            .map(|s| (s.protocol.clone(), s.endpoint.clone()))
            .collect();
        for (protocol, endpoint) in &wanted {
            if !existing.is_some_and(|e| {
                e.subscriptions
                    .contains_key(&(protocol.clone(), endpoint.clone()))
            }) {
                c.push(Change::Subscribe {
                    topic: topic.name.clone(),
                    protocol: protocol.clone(),
                    endpoint: endpoint.clone(),
                });
            }
        }
        for ((protocol, endpoint), arn) in existing.map(|e| &e.subscriptions).into_iter().flatten()
        {
            if !wanted.contains(&(protocol.clone(), endpoint.clone())) {
                c.push(Change::Unsubscribe {
                    topic: topic.name.clone(),
                    subscription_arn: arn.clone(),
                    endpoint: endpoint.clone(),
                });
            }
        }
    }
    for r in d.rules() {
        let payload = rule_payload(r);
        match actual.rules.get(&r.name) {
            None => c.push(Change::CreateRule {
                name: r.name.clone(),
                payload,
            }),
            Some(s) if s.payload != payload => c.push(Change::ReplaceRule {
                name: r.name.clone(),
                payload,
            }),
            Some(_) => {}
        }
    }
    for j in d.jobs() {
        match actual.jobs.get(&j.id) {
            None => c.push(Change::CreateJob(j.clone())),
            Some(s) => {
                let document: Value = serde_json::from_str(&j.document).unwrap_or(Value::Null);
                if s.document != document {
                    p.conflicts.push(format!(
                        "job {}: its document differs from the file's, and a job's document cannot change (give the job a new id, or delete it first)",
                        j.id
                    ));
                }
            }
        }
    }
    p.unmanaged = unmanaged(d, all);
    p
}

fn plan_thing(t: &Thing, s: Option<&ThingState>, c: &mut Vec<Change>) {
    let Some(s) = s else {
        c.push(Change::CreateThing(t.clone()));
        for g in &t.groups {
            c.push(Change::AddThingToGroup {
                thing: t.name.clone(),
                group: g.clone(),
            });
        }
        if t.certificate {
            c.push(Change::CreateCertificate {
                thing: t.name.clone(),
            });
        }
        if t.certificate {
            for policy in &t.policies {
                c.push(Change::AttachPolicy {
                    policy: policy.clone(),
                    thing: t.name.clone(),
                });
            }
        }
        return;
    };
    if s.thing_type != t.thing_type || s.attributes != t.attributes {
        c.push(Change::UpdateThing {
            name: t.name.clone(),
            thing_type: t.thing_type.clone(),
            attributes: t.attributes.clone(),
        });
    }
    let wanted: BTreeSet<&String> = t.groups.iter().collect();
    for g in &t.groups {
        if !s.groups.contains(g) {
            c.push(Change::AddThingToGroup {
                thing: t.name.clone(),
                group: g.clone(),
            });
        }
    }
    for g in &s.groups {
        if !wanted.contains(g) {
            c.push(Change::RemoveThingFromGroup {
                thing: t.name.clone(),
                group: g.clone(),
            });
        }
    }
    let active: Vec<&CertState> = s
        .certificates
        .iter()
        .filter(|c| c.status == "ACTIVE")
        .collect();
    let new_certificate = t.certificate && active.is_empty();
    if new_certificate {
        c.push(Change::CreateCertificate {
            thing: t.name.clone(),
        });
    }
    let wanted: BTreeSet<&String> = t.policies.iter().collect();
    for policy in &t.policies {
        if new_certificate || active.iter().any(|cert| !cert.policies.contains(policy)) {
            c.push(Change::AttachPolicy {
                policy: policy.clone(),
                thing: t.name.clone(),
            });
        }
    }
    for cert in &active {
        for policy in &cert.policies {
            if !wanted.contains(policy) {
                c.push(Change::DetachPolicy {
                    policy: policy.clone(),
                    target: cert.arn.clone(),
                });
            }
        }
    }
}

/// Every name of each kind in the registry (to list what the file does
/// not name).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Names {
    pub thing_types: BTreeSet<String>,
    pub thing_groups: BTreeSet<String>,
    pub policies: BTreeSet<String>,
    pub things: BTreeSet<String>,
    pub topics: BTreeSet<String>,
    pub rules: BTreeSet<String>,
    pub jobs: BTreeSet<String>,
}

fn unmanaged(d: &Deployment, all: &Names) -> Vec<String> {
    let mut out = Vec::new();
    let mut kind = |label: &str, names: &BTreeSet<String>, named: BTreeSet<&str>| {
        for n in names {
            if !named.contains(n.as_str()) {
                out.push(format!("{label} {n}"));
            }
        }
    };
    kind(
        "thing type",
        &all.thing_types,
        d.thing_types().map(|t| t.name.as_str()).collect(),
    );
    kind(
        "thing group",
        &all.thing_groups,
        d.thing_groups().map(|t| t.name.as_str()).collect(),
    );
    kind(
        "policy",
        &all.policies,
        d.policies().map(|t| t.name.as_str()).collect(),
    );
    kind(
        "thing",
        &all.things,
        d.things().map(|t| t.name.as_str()).collect(),
    );
    kind(
        "topic",
        &all.topics,
        d.topics().map(|t| t.name.as_str()).collect(),
    );
    kind(
        "rule",
        &all.rules,
        d.rules().map(|t| t.name.as_str()).collect(),
    );
    kind("job", &all.jobs, d.jobs().map(|t| t.id.as_str()).collect());
    out
}

/// Groups in an order where a parent comes before its children.
fn groups_parents_first<'a>(groups: impl Iterator<Item = &'a ThingGroup>) -> Vec<&'a ThingGroup> {
    let groups: Vec<&ThingGroup> = groups.collect();
    let names: BTreeSet<&str> = groups.iter().map(|g| g.name.as_str()).collect();
    let mut placed: BTreeSet<&str> = BTreeSet::new();
    let mut out = Vec::new();
    while out.len() < groups.len() {
        let before = out.len();
        for g in &groups {
            let ready = match g.parent.as_deref() {
                Some(p) if names.contains(p) => placed.contains(p),
                _ => true,
            };
            if ready && !placed.contains(g.name.as_str()) {
                placed.insert(&g.name);
                out.push(*g);
            }
        }
        if out.len() == before {
            // A cycle: the rest in file order (the registry refuses them).
            out.extend(groups.iter().filter(|g| !placed.contains(g.name.as_str())));
            break;
        }
    }
    out
}

/// The removals that take away exactly what `d` describes, in an order the
/// registry accepts: jobs, rules, topics; each thing's certificates
/// detached (and, when the file made them, deactivated and deleted), the
/// thing; groups children first; policies after their versions; thing
/// types deprecated, then deleted.
pub fn destroy(d: &Deployment, actual: &Actual) -> Vec<Change> {
    let mut c = Vec::new();
    for j in d.jobs() {
        if actual.jobs.contains_key(&j.id) {
            c.push(Change::DeleteJob { id: j.id.clone() });
        }
    }
    for r in d.rules() {
        if actual.rules.contains_key(&r.name) {
            c.push(Change::DeleteRule {
                name: r.name.clone(),
            });
        }
    }
    for t in d.topics() {
        if let Some(s) = actual.topics.get(&t.name) {
            c.push(Change::DeleteTopic {
                name: t.name.clone(),
                arn: s.arn.clone(),
            });
        }
    }
    let policies: BTreeSet<&str> = d.policies().map(|p| p.name.as_str()).collect();
    for t in d.things() {
        let Some(s) = actual.things.get(&t.name) else {
            continue;
        };
        for cert in &s.certificates {
            if t.certificate {
                for policy in &cert.policies {
                    c.push(Change::DetachPolicy {
                        policy: policy.clone(),
                        target: cert.arn.clone(),
                    });
                }
            } else {
                for policy in cert
                    .policies
                    .iter()
                    .filter(|p| policies.contains(p.as_str()))
                {
                    c.push(Change::DetachPolicy {
                        policy: policy.clone(),
                        target: cert.arn.clone(),
                    });
                }
            }
            c.push(Change::DetachThingPrincipal {
                thing: t.name.clone(),
                arn: cert.arn.clone(),
            });
            if t.certificate {
                if cert.status == "ACTIVE" {
                    c.push(Change::DeactivateCertificate {
                        id: cert.id.clone(),
                    });
                }
                c.push(Change::DeleteCertificate {
                    id: cert.id.clone(),
                });
            }
        }
        c.push(Change::DeleteThing {
            name: t.name.clone(),
        });
    }
    let mut groups = groups_parents_first(d.thing_groups());
    groups.reverse();
    for g in groups {
        if actual.thing_groups.contains_key(&g.name) {
            c.push(Change::DeleteThingGroup {
                name: g.name.clone(),
            });
        }
    }
    for p in d.policies() {
        let Some(s) = actual.policies.get(&p.name) else {
            continue;
        };
        let detached: BTreeSet<&String> = c
            .iter()
            .filter_map(|ch| match ch {
                Change::DetachPolicy { policy, target } if policy == &p.name => Some(target),
                _ => None,
            })
            .collect();
        let rest: Vec<String> = s
            .targets
            .iter()
            .filter(|t| !detached.contains(t))
            .cloned()
            .collect();
        for target in rest {
            c.push(Change::DetachPolicy {
                policy: p.name.clone(),
                target,
            });
        }
        for (version, default) in &s.versions {
            if !default {
                c.push(Change::DeletePolicyVersion {
                    policy: p.name.clone(),
                    version: version.clone(),
                });
            }
        }
        c.push(Change::DeletePolicy {
            name: p.name.clone(),
        });
    }
    for t in d.thing_types() {
        let Some(s) = actual.thing_types.get(&t.name) else {
            continue;
        };
        if !s.deprecated {
            c.push(Change::DeprecateThingType {
                name: t.name.clone(),
            });
        }
        c.push(Change::DeleteThingType {
            name: t.name.clone(),
        });
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment() -> Deployment {
        Deployment::parse(
            "x.toml",
            r#"
[[thing_type]]
name = "t"

[[thing_group]]
name = "child"
parent = "parent"

[[thing_group]]
name = "parent"

[[policy]]
name = "p"
document = '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}]}'

[[thing]]
name = "d"
type = "t"
groups = ["child"]
attributes = { Owner = "o" }
certificate = true
policies = ["p"]

[[topic]]
name = "n"
subscriptions = [{ protocol = "email", endpoint = "a@example.com" }]

[[rule]]
name = "r"
sql = "SELECT * FROM 'a'"
actions = [{ republish = { topic = "b", roleArn = "arn:aws:iam::1:role/x" } }]

[[job]]
id = "j"
document = '{"operation": "localScan"}'
things = ["d"]
"#,
        )
        .unwrap()
    }

    fn names(plan: &Plan) -> Vec<String> {
        plan.changes.iter().map(|c| c.to_string()).collect()
    }

    /// The registry after `plan`'s changes: what a perfect apply leaves.
    fn applied(d: &Deployment) -> Actual {
        let mut a = Actual::default();
        for t in d.thing_types() {
            a.thing_types.insert(t.name.clone(), TypeState::default());
        }
        for g in d.thing_groups() {
            a.thing_groups.insert(
                g.name.clone(),
                GroupState {
                    description: g.description.clone(),
                    parent: g.parent.clone(),
                },
            );
        }
        for p in d.policies() {
            a.policies.insert(
                p.name.clone(),
                PolicyState {
                    default_document: serde_json::from_str(&p.document).unwrap(),
                    versions: vec![("1".into(), true)],
                    targets: ["arn:cert/1".to_string()].into(),
                },
            );
        }
        for t in d.things() {
            a.things.insert(
                t.name.clone(),
                ThingState {
                    thing_type: t.thing_type.clone(),
                    attributes: t.attributes.clone(),
                    groups: t.groups.iter().cloned().collect(),
                    certificates: vec![CertState {
                        id: "1".into(),
                        arn: "arn:cert/1".into(),
                        status: "ACTIVE".into(),
                        policies: t.policies.iter().cloned().collect(),
                    }],
                },
            );
        }
        for t in d.topics() {
            a.topics.insert(
                t.name.clone(),
                TopicState {
                    arn: format!("arn:sns:{}", t.name),
                    subscriptions: t
                        .subscriptions
                        .iter()
                        .map(|s| {
                            (
                                (s.protocol.clone(), s.endpoint.clone()),
                                "arn:sub".to_string(),
                            )
                        })
                        .collect(),
                },
            );
        }
        for r in d.rules() {
            a.rules.insert(
                r.name.clone(),
                RuleState {
                    payload: rule_payload(r),
                },
            );
        }
        for j in d.jobs() {
            a.jobs.insert(
                j.id.clone(),
                JobState {
                    document: serde_json::from_str(&j.document).unwrap(),
                    status: "IN_PROGRESS".into(),
                },
            );
        }
        a
    }

    #[test]
    fn an_empty_registry_gets_everything_parents_first() {
        let p = plan(&deployment(), &Actual::default(), &Names::default());
        let n = names(&p);
        let pos = |s: &str| {
            n.iter()
                .position(|x| x.starts_with(s))
                .unwrap_or_else(|| panic!("{s} in {n:?}"))
        };
        assert!(pos("+ thing group parent") < pos("+ thing group child (in parent)"));
        assert!(pos("+ thing type t") < pos("+ thing d"));
        assert!(pos("+ thing d") < pos("+ certificate for thing d"));
        assert!(pos("+ certificate for thing d") < pos("+ policy p attached"));
        assert!(pos("+ policy p") < pos("+ policy p attached"));
        assert!(pos("+ topic n") < pos("+ subscription email:a@example.com"));
        assert!(pos("+ rule r") < pos("+ job j"));
        assert!(p.conflicts.is_empty());
    }

    #[test]
    fn a_second_apply_changes_nothing() {
        let d = deployment();
        let p = plan(&d, &applied(&d), &Names::default());
        assert_eq!(p.changes, vec![], "{:?}", names(&p));
    }

    #[test]
    fn a_changed_file_shows_exactly_the_change() {
        let d = deployment();
        let mut a = applied(&d);
        a.things
            .get_mut("d")
            .unwrap()
            .attributes
            .insert("Owner".into(), "someone-else".into());
        a.rules.get_mut("r").unwrap().payload["sql"] = json!("SELECT 1 FROM 'x'");
        a.policies.get_mut("p").unwrap().default_document =
            json!({"Version": "2012-10-17", "Statement": []});
        a.topics
            .get_mut("n")
            .unwrap()
            .subscriptions
            .insert(("email".into(), "old@example.com".into()), "arn:old".into());
        let p = plan(&d, &a, &Names::default());
        assert_eq!(
            names(&p),
            vec![
                "~ policy p: new default version",
                "~ thing d: type Some(\"t\"), attributes {\"Owner\": \"o\"}",
                "- subscription old@example.com to topic n",
                "~ rule r: replaced",
            ]
        );
    }

    #[test]
    fn the_sixth_policy_version_deletes_the_oldest_non_default_one() {
        let d = deployment();
        let mut a = applied(&d);
        let s = a.policies.get_mut("p").unwrap();
        s.default_document = json!({});
        s.versions = vec![
            ("1".into(), false),
            ("2".into(), true),
            ("3".into(), false),
            ("4".into(), false),
            ("5".into(), false),
        ];
        let p = plan(&d, &a, &Names::default());
        assert!(
            matches!(&p.changes[0], Change::NewPolicyVersion { delete_version: Some(v), .. } if v == "1")
        );
    }

    #[test]
    fn what_cannot_change_is_a_conflict_and_unnamed_resources_are_listed() {
        let d = deployment();
        let mut a = applied(&d);
        a.jobs.get_mut("j").unwrap().document = json!({"operation": "other"});
        let all = Names {
            things: ["d".into(), "stranger".into()].into(),
            ..Default::default()
        };
        let p = plan(&d, &a, &all);
        assert_eq!(p.conflicts.len(), 1, "{:?}", p.conflicts);
        assert!(p.conflicts[0].contains("job j"));
        assert_eq!(p.unmanaged, vec!["thing stranger"]);
    }

    #[test]
    fn destroy_removes_in_an_order_the_registry_accepts() {
        let d = deployment();
        let n: Vec<String> = destroy(&d, &applied(&d))
            .iter()
            .map(|c| c.to_string())
            .collect();
        let pos = |s: &str| {
            n.iter()
                .position(|x| x.starts_with(s))
                .unwrap_or_else(|| panic!("{s} in {n:?}"))
        };
        assert!(pos("- job j") < pos("- thing d"));
        assert!(pos("- policy p detached from arn:cert/1") < pos("- certificate 1"));
        assert!(
            pos("- certificate arn:cert/1 detached from thing d")
                < pos("~ certificate 1: INACTIVE")
        );
        assert!(pos("~ certificate 1: INACTIVE") < pos("- certificate 1"));
        assert!(pos("- thing d") < pos("- thing group child"));
        assert!(pos("- thing group child") < pos("- thing group parent"));
        assert!(pos("~ thing type t: deprecate") < pos("- thing type t"));
        assert!(pos("- thing d") < pos("- thing type t"));
        assert_eq!(
            n.iter()
                .filter(|x| x.starts_with("- policy p detached"))
                .count(),
            1
        );
        // Nothing there: nothing to remove.
        assert_eq!(destroy(&d, &Actual::default()), vec![]);
    }
}
