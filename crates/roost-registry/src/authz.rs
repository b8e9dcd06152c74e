//! Who may do what: the policies and policy variables that apply to a
//! principal, and TestAuthorization over the same evaluator the gateway uses.

use crate::error::{RegistryError, Result};
use crate::model::*;
use crate::{pki, validate, Registry};
use roost_policy::{
    Action, ConnectionContext, Decision, NamedPolicy, PreparedPolicies, Request, ThingContext,
};

/// One TestAuthorization question: an action type and the resources to try.
#[derive(Clone, Debug)]
pub struct AuthInfo {
    pub action_type: String,
    pub resources: Vec<String>,
}

/// The answer to one `AuthInfo`.
#[derive(Clone, Debug)]
pub struct AuthResult {
    pub auth_info: AuthInfo,
    pub decision: Decision,
    pub allowed: Vec<String>,
    pub explicit_deny: Vec<String>,
    pub implicit_deny: Vec<String>,
    pub missing_context_values: Vec<String>,
}

/// Everything the authorizer needs about one connection.
pub struct PrincipalAuthorization {
    pub context: ConnectionContext,
    pub policies: Vec<NamedPolicy>,
}

fn action_of(action_type: &str) -> Result<Action> {
    Ok(match action_type {
        "CONNECT" => Action::Connect,
        "PUBLISH" => Action::Publish,
        "SUBSCRIBE" => Action::Subscribe,
        "RECEIVE" => Action::Receive,
        other => {
            return Err(RegistryError::invalid(format!(
                "actionType '{other}' is not valid: use CONNECT, PUBLISH, SUBSCRIBE or RECEIVE"
            )))
        }
    })
}

impl Registry {
    /// The context and effective policies of a connection made with `cert`
    /// and `client_id`: the certificate's policies, and when the client id
    /// names a thing this certificate is attached to, the thing's variables
    /// and the policies of its groups and their ancestors.
    pub async fn principal_authorization(
        &self,
        cert: &Certificate,
        client_id: Option<&str>,
    ) -> Result<PrincipalAuthorization> {
        let parsed = pki::parse_pem(&cert.pem)?;
        self.principal_authorization_for(&cert.id, pki::policy_context(&parsed), client_id)
            .await
    }

    /// [`Self::principal_authorization`] for a certificate whose policy
    /// variables were read already (live connections keep them, not the PEM).
    pub async fn principal_authorization_for(
        &self,
        certificate_id: &str,
        certificate: roost_policy::CertificateContext,
        client_id: Option<&str>,
    ) -> Result<PrincipalAuthorization> {
        let cert_arn = self.arns.cert(certificate_id);
        let mut targets = vec![cert_arn.clone()];
        let mut thing = None;
        if let Some(client_id) = client_id.filter(|c| validate::thing_name(c).is_ok()) {
            if let Some(t) = self.store.get_thing(client_id).await? {
                let attached = self
                    .store
                    .list_principal_things(
                        &cert_arn,
                        &PageRequest {
                            after: Some(String::new()),
                            limit: usize::MAX >> 1,
                            ascending: true,
                        },
                    )
                    .await?;
                if attached.iter().any(|n| n == client_id) {
                    for g in self.thing_groups_with_ancestors(client_id).await? {
                        targets.push(self.arns.thing_group(&g));
                    }
                    thing = Some(ThingContext {
                        name: t.name,
                        type_name: t.type_name,
                        attributes: t.attributes,
                    });
                }
            }
        }
        let mut policies = Vec::new();
        for (policy, version) in self.store.attached_policies(&targets).await? {
            // Documents were validated when stored; one that no longer parses
            // (e.g. after a parser change) grants nothing rather than failing.
            match self.policy_cache.get_or_parse(&version.document) {
                Ok(parsed) => policies.push(NamedPolicy {
                    name: policy.name,
                    policy: parsed,
                }),
                Err(e) => {
                    tracing::warn!(policy = %policy.name, error = %e, "stored policy no longer parses; ignoring it")
                }
            }
        }
        let context = ConnectionContext {
            region: self.settings.region.clone(),
            account: self.settings.account.clone(),
            client_id: client_id.map(str::to_string),
            source_ip: None,
            domain_name: None,
            thing,
            certificate: Some(certificate),
        };
        Ok(PrincipalAuthorization { context, policies })
    }

    /// TestAuthorization.
    pub async fn test_authorization(
        &self,
        principal: Option<&str>,
        client_id: Option<&str>,
        auth_infos: Vec<AuthInfo>,
        policy_names_to_add: &[String],
        policy_names_to_skip: &[String],
    ) -> Result<Vec<AuthResult>> {
        if auth_infos.is_empty() || auth_infos.len() > 10 {
            return Err(RegistryError::invalid(
                "authInfos must hold between 1 and 10 entries",
            ));
        }
        let mut auth = match principal {
            Some(p) => {
                let cert = match self.arns.parse(p) {
                    Some(("cert", id)) => self.describe_certificate(id).await?,
                    _ => {
                        return Err(RegistryError::invalid(format!(
                            "principal '{p}' is not a certificate ARN (arn:aws:iot:<region>:<account>:cert/<certificateId>)"
                        )))
                    }
                };
                self.principal_authorization(&cert, client_id).await?
            }
            None => PrincipalAuthorization {
                context: ConnectionContext {
                    region: self.settings.region.clone(),
                    account: self.settings.account.clone(),
                    client_id: client_id.map(str::to_string),
                    source_ip: None,
                    domain_name: None,
                    thing: None,
                    certificate: None,
                },
                policies: Vec::new(),
            },
        };
        auth.policies
            .retain(|p| !policy_names_to_skip.contains(&p.name));
        for name in policy_names_to_add {
            if auth.policies.iter().any(|p| &p.name == name) {
                continue;
            }
            let (_, version) = self.get_policy(name).await?;
            auth.policies.push(NamedPolicy {
                name: name.clone(),
                policy: self.policy_cache.get_or_parse(&version.document)?,
            });
        }
        let names: Vec<String> = auth.policies.iter().map(|p| p.name.clone()).collect();
        let prepared = PreparedPolicies::prepare(auth.policies, &auth.context);
        let mut results = Vec::with_capacity(auth_infos.len());
        for info in auth_infos {
            let action = action_of(&info.action_type)?;
            if info.resources.is_empty() {
                return Err(RegistryError::invalid(
                    "each authInfo needs at least one resource",
                ));
            }
            let mut decision = Decision::Allowed;
            let mut allowed = Vec::new();
            let mut explicit = Vec::new();
            let mut missing = Vec::new();
            for resource in &info.resources {
                let eval = prepared.evaluate(&Request {
                    action,
                    resource,
                    context_values: &[],
                });
                decision = match (decision, eval.decision) {
                    (Decision::ExplicitDeny, _) | (_, Decision::ExplicitDeny) => {
                        Decision::ExplicitDeny
                    }
                    (Decision::ImplicitDeny, _) | (_, Decision::ImplicitDeny) => {
                        Decision::ImplicitDeny
                    }
                    _ => Decision::Allowed,
                };
                for n in eval.allowed_by {
                    if !allowed.contains(&n) {
                        allowed.push(n);
                    }
                }
                for n in eval.explicitly_denied_by {
                    if !explicit.contains(&n) {
                        explicit.push(n);
                    }
                }
                for m in eval.missing_context_values {
                    if !missing.contains(&m) {
                        missing.push(m);
                    }
                }
            }
            let implicit = if decision == Decision::ImplicitDeny {
                names.clone()
            } else {
                Vec::new()
            };
            results.push(AuthResult {
                auth_info: info,
                decision,
                allowed: if decision == Decision::Allowed {
                    allowed
                } else {
                    Vec::new()
                },
                explicit_deny: explicit,
                implicit_deny: implicit,
                missing_context_values: missing,
            });
        }
        Ok(results)
    }
}
