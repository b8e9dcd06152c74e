//! Deciding requests against a connection's policies (reference 1.4).
//!
//! [`PreparedPolicies::prepare`] does all the per-connection work once: it substitutes
//! policy variables, compiles resource patterns and condition values, and indexes the
//! statements by action. [`PreparedPolicies::decide`] is then the broker's hot path
//! and must never allocate; [`PreparedPolicies::evaluate`] gives the same decision
//! with TestAuthorization's detail and may.
//!
//! Unresolved variables (reference 1.6): a `Resource` entry whose variable has no
//! value matches nothing, while the statement's other entries still can, which is
//! what AWS's "left as is" amounts to. A `NotResource` entry or a condition value
//! whose variable has no value takes the whole statement out, for `Allow` and `Deny`
//! alike: AWS's literal reading would turn such an `Allow` into a grant of almost
//! everything. Either way the variable is reported in `missing_context_values`.

use std::sync::Arc;

use crate::action::{Action, ActionSet};
use crate::condition::PreparedCondition;
use crate::context::ConnectionContext;
use crate::document::{Effect, Policy};
use crate::glob::Pattern;

/// A policy and the name it is known by (for reports).
#[derive(Clone, Debug)]
pub struct NamedPolicy {
    pub name: String,
    pub policy: Arc<Policy>,
}

/// One authorization question.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub action: Action,
    /// The full ARN, e.g. from [`crate::topic_arn`].
    pub resource: &'a str,
    /// Request-level condition keys and their values, e.g.
    /// `("iot:ConnectAttributes", &["PersistentConnect"])`, `("iot:LastWillTopic", ..)`,
    /// `("aws:CurrentTime", ..)`. Names compare case-insensitively.
    pub context_values: &'a [(&'a str, &'a [&'a str])],
}

impl<'a> Request<'a> {
    /// A request with no request-level context values.
    pub fn new(action: Action, resource: &'a str) -> Request<'a> {
        Request {
            action,
            resource,
            context_values: &[],
        }
    }
}

/// The outcome, as TestAuthorization names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Decision {
    Allowed,
    ExplicitDeny,
    ImplicitDeny,
}

impl Decision {
    /// `ALLOWED`, `EXPLICIT_DENY` or `IMPLICIT_DENY`.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allowed => "ALLOWED",
            Decision::ExplicitDeny => "EXPLICIT_DENY",
            Decision::ImplicitDeny => "IMPLICIT_DENY",
        }
    }

    pub fn is_allowed(self) -> bool {
        self == Decision::Allowed
    }
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A decision with the detail TestAuthorization reports. The policies that were
/// evaluated (its `implicitDeny` list) are [`PreparedPolicies::policy_names`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evaluation {
    pub decision: Decision,
    /// Policies with a matching `Allow` statement, in attachment order.
    pub allowed_by: Vec<String>,
    /// Policies with a matching `Deny` statement, in attachment order.
    pub explicitly_denied_by: Vec<String>,
    /// Variables and condition keys that had no value in statements that apply to
    /// the request's action, as written in the policies, without duplicates.
    pub missing_context_values: Vec<String>,
}

#[derive(Clone, Debug)]
struct PreparedStatement {
    policy: usize,
    effect: Effect,
    actions: ActionSet,
    negated: bool,
    resources: Vec<Pattern>,
    conditions: Vec<PreparedCondition>,
    /// Variables that did not resolve.
    missing: Vec<String>,
    /// False when the statement can match nothing for this connection.
    active: bool,
}

impl PreparedStatement {
    fn resource_matches(&self, resource: &str) -> bool {
        self.resources.iter().any(|p| p.matches(resource)) != self.negated
    }

    fn matches(&self, request: &Request<'_>) -> bool {
        self.resource_matches(request.resource)
            && self
                .conditions
                .iter()
                .all(|c| c.holds(request.context_values, &mut |_| {}))
    }
}

/// A connection's policies, ready to answer requests.
#[derive(Clone, Debug)]
pub struct PreparedPolicies {
    names: Vec<String>,
    statements: Vec<PreparedStatement>,
    /// The active statements of each (effect, action) group, one group after
    /// another: group `g` is `members[bounds[g]..bounds[g + 1]]`. One slice
    /// rather than a list per group: thousands of connections each hold one.
    members: Box<[u32]>,
    bounds: [u32; GROUPS + 1],
}

impl Default for PreparedPolicies {
    fn default() -> Self {
        Self {
            names: Vec::new(),
            statements: Vec::new(),
            members: Box::default(),
            bounds: [0; GROUPS + 1],
        }
    }
}

/// Deny groups first, then allow groups, one per action.
const GROUPS: usize = 2 * Action::COUNT;

fn group(effect: Effect, action: Action) -> usize {
    match effect {
        Effect::Deny => action.index(),
        Effect::Allow => Action::COUNT + action.index(),
    }
}

impl PreparedPolicies {
    /// Done once per connection: substitute variables, compile resource globs.
    pub fn prepare(policies: Vec<NamedPolicy>, ctx: &ConnectionContext) -> PreparedPolicies {
        let mut prepared = PreparedPolicies::default();
        for (index, named) in policies.into_iter().enumerate() {
            for statement in named.policy.statements() {
                prepared
                    .statements
                    .push(prepare_statement(index, statement, ctx));
            }
            prepared.names.push(named.name);
        }
        let mut members = Vec::new();
        for g in 0..GROUPS {
            prepared.bounds[g] = members.len() as u32;
            let (effect, action) = if g < Action::COUNT {
                (Effect::Deny, Action::ALL[g])
            } else {
                (Effect::Allow, Action::ALL[g - Action::COUNT])
            };
            members.extend(
                prepared
                    .statements
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.active && s.effect == effect && s.actions.contains(action))
                    .map(|(id, _)| id as u32),
            );
        }
        prepared.bounds[GROUPS] = members.len() as u32;
        prepared.members = members.into_boxed_slice();
        prepared
    }

    /// The active statements of `effect` that name `action`.
    fn group(&self, effect: Effect, action: Action) -> impl Iterator<Item = &PreparedStatement> {
        let g = group(effect, action);
        let ids = &self.members[self.bounds[g] as usize..self.bounds[g + 1] as usize];
        ids.iter().map(|&id| &self.statements[id as usize])
    }

    /// The decision alone: any matching `Deny` wins, then any matching `Allow`,
    /// otherwise the implicit deny. Never allocates.
    pub fn decide(&self, request: &Request<'_>) -> Decision {
        if self
            .group(Effect::Deny, request.action)
            .any(|s| s.matches(request))
        {
            return Decision::ExplicitDeny;
        }
        if self
            .group(Effect::Allow, request.action)
            .any(|s| s.matches(request))
        {
            return Decision::Allowed;
        }
        Decision::ImplicitDeny
    }

    /// The decision with the policies that produced it and the missing context
    /// values, for TestAuthorization and for logging a denial.
    pub fn evaluate(&self, request: &Request<'_>) -> Evaluation {
        let mut allowed = vec![false; self.names.len()];
        let mut denied = vec![false; self.names.len()];
        let mut missing: Vec<String> = Vec::new();
        for s in &self.statements {
            if !s.actions.contains(request.action) {
                continue;
            }
            for name in &s.missing {
                note(name, &mut missing);
            }
            if !s.active || !s.resource_matches(request.resource) {
                continue;
            }
            // Every condition is decided, not just up to the first false one, so
            // that every missing key is reported.
            let mut holds = true;
            for c in &s.conditions {
                holds &= c.holds(request.context_values, &mut |key| note(key, &mut missing));
            }
            if holds {
                match s.effect {
                    Effect::Allow => allowed[s.policy] = true,
                    Effect::Deny => denied[s.policy] = true,
                }
            }
        }
        let pick = |flags: &[bool]| -> Vec<String> {
            self.names
                .iter()
                .zip(flags)
                .filter(|(_, &f)| f)
                .map(|(n, _)| n.clone())
                .collect()
        };
        let allowed_by = pick(&allowed);
        let explicitly_denied_by = pick(&denied);
        let decision = if !explicitly_denied_by.is_empty() {
            Decision::ExplicitDeny
        } else if !allowed_by.is_empty() {
            Decision::Allowed
        } else {
            Decision::ImplicitDeny
        };
        Evaluation {
            decision,
            allowed_by,
            explicitly_denied_by,
            missing_context_values: missing,
        }
    }

    /// The names of the prepared policies, in the order given to `prepare`.
    pub fn policy_names(&self) -> &[String] {
        &self.names
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

fn note(name: &str, missing: &mut Vec<String>) {
    if !missing.iter().any(|m| m == name) {
        missing.push(name.to_string());
    }
}

fn prepare_statement(
    policy: usize,
    statement: &crate::document::Statement,
    ctx: &ConnectionContext,
) -> PreparedStatement {
    let mut missing = Vec::new();
    let mut active = true;
    let negated = statement.resources.negated;
    let mut resources = Vec::with_capacity(statement.resources.entries.len());
    for entry in &statement.resources.entries {
        match entry.substitute(ctx) {
            Ok(s) => resources.push(Pattern::compile(s.segments())),
            Err(names) => {
                missing.extend(names);
                // Without the entry a NotResource would exclude less, i.e. cover more.
                active &= !negated;
            }
        }
    }
    if !negated && resources.is_empty() {
        active = false;
    }
    let mut conditions = Vec::with_capacity(statement.conditions.len());
    for condition in &statement.conditions {
        match condition.prepare(ctx) {
            Ok(c) => conditions.push(c),
            Err(names) => {
                missing.extend(names);
                active = false;
            }
        }
    }
    let mut unique: Vec<String> = Vec::with_capacity(missing.len());
    for name in missing {
        if !unique.contains(&name) {
            unique.push(name);
        }
    }
    PreparedStatement {
        policy,
        effect: statement.effect(),
        actions: statement.actions,
        negated,
        resources,
        conditions,
        missing: unique,
        active,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::ThingContext;
    use crate::parse_policy;

    fn named(name: &str, document: &str) -> NamedPolicy {
        NamedPolicy {
            name: name.to_string(),
            policy: Arc::new(parse_policy(document).unwrap()),
        }
    }

    fn ctx() -> ConnectionContext {
        ConnectionContext {
            region: "r".into(),
            account: "1".into(),
            client_id: Some("c1".into()),
            thing: Some(ThingContext {
                name: "c1".into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn check(p: &PreparedPolicies, action: Action, resource: &str) -> Evaluation {
        let request = Request::new(action, resource);
        let e = p.evaluate(&request);
        assert_eq!(
            e.decision,
            p.decide(&request),
            "decide and evaluate disagree on {resource}"
        );
        e
    }

    #[test]
    fn deny_wins_over_allow_across_policies() {
        let p = PreparedPolicies::prepare(
            vec![
                named(
                    "a",
                    r#"{"Statement":{"Effect":"Allow","Action":"iot:*","Resource":"*"}}"#,
                ),
                named(
                    "d",
                    r#"{"Statement":{"Effect":"Deny","Action":"iot:Publish","Resource":"arn:aws:iot:r:1:topic/secret/*"}}"#,
                ),
            ],
            &ctx(),
        );
        let e = check(&p, Action::Publish, "arn:aws:iot:r:1:topic/secret/x");
        assert_eq!(e.decision, Decision::ExplicitDeny);
        assert_eq!(e.allowed_by, ["a"]);
        assert_eq!(e.explicitly_denied_by, ["d"]);
        let e = check(&p, Action::Publish, "arn:aws:iot:r:1:topic/open");
        assert_eq!(e.decision, Decision::Allowed);
        assert!(e.explicitly_denied_by.is_empty());
        assert_eq!(p.policy_names(), ["a", "d"]);
    }

    #[test]
    fn nothing_attached_is_an_implicit_deny() {
        let p = PreparedPolicies::prepare(vec![], &ctx());
        assert!(p.is_empty());
        assert_eq!(
            check(&p, Action::Connect, "arn:aws:iot:r:1:client/c1").decision,
            Decision::ImplicitDeny
        );
    }

    #[test]
    fn not_resource_and_not_action() {
        let p = PreparedPolicies::prepare(
            vec![named(
                "p",
                r#"{"Statement":[
                    {"Effect":"Allow","Action":"iot:Receive","NotResource":"arn:aws:iot:r:1:topic/a/restricted/*"},
                    {"Effect":"Allow","NotAction":["iot:Receive","iot:Connect"],"Resource":"*"}]}"#,
            )],
            &ctx(),
        );
        assert_eq!(
            check(&p, Action::Receive, "arn:aws:iot:r:1:topic/a/x").decision,
            Decision::Allowed
        );
        assert_eq!(
            check(&p, Action::Receive, "arn:aws:iot:r:1:topic/a/restricted/x").decision,
            Decision::ImplicitDeny
        );
        assert_eq!(
            check(&p, Action::Publish, "arn:aws:iot:r:1:topic/a/restricted/x").decision,
            Decision::Allowed
        );
        assert_eq!(
            check(&p, Action::Connect, "arn:aws:iot:r:1:client/c1").decision,
            Decision::ImplicitDeny
        );
    }

    #[test]
    fn unresolved_resource_entry_matches_nothing_but_its_neighbours_still_do() {
        let p = PreparedPolicies::prepare(
            vec![named(
                "p",
                r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"iot:Publish","Resource":[
                    "arn:aws:iot:r:1:topic/${iot:Connection.Thing.Attributes[Owner]}/x",
                    "arn:aws:iot:r:1:topic/${iot:ClientId}/y"]}}"#,
            )],
            &ctx(),
        );
        let e = check(&p, Action::Publish, "arn:aws:iot:r:1:topic/c1/y");
        assert_eq!(e.decision, Decision::Allowed);
        assert_eq!(
            e.missing_context_values,
            ["iot:Connection.Thing.Attributes[Owner]"]
        );
        // The literal text of an unresolved variable grants nothing either.
        let e = check(
            &p,
            Action::Publish,
            "arn:aws:iot:r:1:topic/${iot:Connection.Thing.Attributes[Owner]}/x",
        );
        assert_eq!(e.decision, Decision::ImplicitDeny);
        // Statements for other actions are not reported.
        assert!(check(&p, Action::Receive, "arn:aws:iot:r:1:topic/c1/y")
            .missing_context_values
            .is_empty());
    }

    #[test]
    fn unresolved_not_resource_or_condition_takes_the_statement_out() {
        let p = PreparedPolicies::prepare(
            vec![named(
                "p",
                r#"{"Version":"2012-10-17","Statement":[
                    {"Effect":"Allow","Action":"iot:Receive","NotResource":"arn:aws:iot:r:1:topic/${iot:Connection.Thing.ThingTypeName}/*"},
                    {"Effect":"Deny","Action":"iot:Publish","Resource":"*",
                     "Condition":{"StringNotEquals":{"iot:ClientId":"${iot:Connection.Thing.Attributes[Owner]}"}}},
                    {"Effect":"Allow","Action":"iot:Publish","Resource":"*"}]}"#,
            )],
            &ctx(),
        );
        let e = check(&p, Action::Receive, "arn:aws:iot:r:1:topic/anything");
        assert_eq!(e.decision, Decision::ImplicitDeny);
        assert_eq!(
            e.missing_context_values,
            ["iot:Connection.Thing.ThingTypeName"]
        );
        let e = check(&p, Action::Publish, "arn:aws:iot:r:1:topic/anything");
        assert_eq!(e.decision, Decision::Allowed);
        assert_eq!(
            e.missing_context_values,
            ["iot:Connection.Thing.Attributes[Owner]"]
        );
    }

    #[test]
    fn missing_condition_keys_are_reported() {
        let p = PreparedPolicies::prepare(
            vec![named(
                "p",
                r#"{"Statement":{"Effect":"Allow","Action":"iot:Connect","Resource":"*",
                    "Condition":{"ForAnyValue:StringEquals":{"iot:ConnectAttributes":"PersistentConnect"},
                                 "StringEquals":{"iot:DomainName":"x"}}}}"#,
            )],
            &ctx(),
        );
        let e = check(&p, Action::Connect, "arn:aws:iot:r:1:client/c1");
        assert_eq!(e.decision, Decision::ImplicitDeny);
        assert_eq!(
            e.missing_context_values,
            ["iot:ConnectAttributes", "iot:DomainName"]
        );
        let ctx = ConnectionContext {
            domain_name: Some("x".into()),
            ..ctx()
        };
        let p = PreparedPolicies::prepare(
            vec![named(
                "p",
                r#"{"Statement":{"Effect":"Allow","Action":"iot:Connect","Resource":"*",
                    "Condition":{"ForAnyValue:StringEquals":{"iot:ConnectAttributes":"PersistentConnect"},
                                 "StringEquals":{"iot:DomainName":"x"}}}}"#,
            )],
            &ctx,
        );
        let attrs: &[(&str, &[&str])] =
            &[("iot:ConnectAttributes", &["PersistentConnect", "LastWill"])];
        let request = Request {
            action: Action::Connect,
            resource: "arn:aws:iot:r:1:client/c1",
            context_values: attrs,
        };
        assert_eq!(p.decide(&request), Decision::Allowed);
        assert!(p.evaluate(&request).missing_context_values.is_empty());
    }

    #[test]
    fn legacy_documents_do_not_substitute() {
        let p = PreparedPolicies::prepare(
            vec![named(
                "p",
                r#"{"Version":"2008-10-17","Statement":{"Effect":"Allow","Action":"iot:Connect","Resource":"arn:aws:iot:r:1:client/${iot:ClientId}"}}"#,
            )],
            &ctx(),
        );
        assert_eq!(
            check(&p, Action::Connect, "arn:aws:iot:r:1:client/c1").decision,
            Decision::ImplicitDeny
        );
        let e = check(
            &p,
            Action::Connect,
            "arn:aws:iot:r:1:client/${iot:ClientId}",
        );
        assert_eq!(e.decision, Decision::Allowed);
        assert!(e.missing_context_values.is_empty());
    }

    #[test]
    fn decisions_print_as_test_authorization_does() {
        assert_eq!(Decision::Allowed.to_string(), "ALLOWED");
        assert_eq!(Decision::ExplicitDeny.as_str(), "EXPLICIT_DENY");
        assert_eq!(Decision::ImplicitDeny.as_str(), "IMPLICIT_DENY");
        assert!(Decision::Allowed.is_allowed() && !Decision::ImplicitDeny.is_allowed());
    }

    #[test]
    fn shareable_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Policy>();
        assert_send_sync::<PreparedPolicies>();
        assert_send_sync::<NamedPolicy>();
    }
}
