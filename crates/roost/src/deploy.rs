//! `roost apply`, `plan` and `destroy`: a deployment file (roost-deploy's
//! model) against a Roost, through its control plane like any client. This
//! is the edge: it reads what the registry holds into a
//! `roost_deploy::Actual`, and carries out the changes roost-deploy plans.

use crate::client::{label, ApiClient, Listing, Target};
use anyhow::{bail, Context, Result};
use roost_deploy::plan::{
    CertState, GroupState, JobState, PolicyState, RuleState, ThingState, TopicState, TypeState,
};
use roost_deploy::{Actual, Change, Deployment, Names};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug, Clone)]
pub struct DeployArgs {
    /// The deployment file (TOML; see docs/deployments.md).
    #[arg(short = 'f', long = "file")]
    pub file: PathBuf,
    /// Where apply writes the certificates it creates, a folder per thing
    /// [default: `certificates/` beside the file].
    #[arg(long)]
    pub certificates_dir: Option<PathBuf>,
    #[command(flatten)]
    pub target: Target,
}

fn load(args: &DeployArgs) -> Result<Deployment> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    Deployment::parse(&args.file.display().to_string(), &text).map_err(|e| anyhow::anyhow!("{e}"))
}

pub async fn plan(args: &DeployArgs) -> Result<()> {
    let d = load(args)?;
    let api = ApiClient::from_target(&args.target)?;
    let (actual, names) = read(&api, &d, true).await?;
    let plan = roost_deploy::plan(&d, &actual, &names);
    print_plan(&plan);
    for rule in d.rules() {
        let payload = roost_deploy::plan::rule_payload(rule);
        match crate::rules::warnings(&api, &rule.name, &payload).await {
            Ok(found) => {
                for w in found {
                    println!("warning: rule {}: {w}", rule.name);
                }
            }
            Err(e) => println!("! rule {}: {e}", rule.name),
        }
    }
    Ok(())
}

fn print_plan(plan: &roost_deploy::Plan) {
    if plan.changes.is_empty() {
        println!("no changes");
    }
    for c in &plan.changes {
        println!("{c}");
    }
    for c in &plan.conflicts {
        println!("! {c}");
    }
    if !plan.unmanaged.is_empty() {
        println!("not in the file (left alone):");
        for u in &plan.unmanaged {
            println!("  {u}");
        }
    }
}

pub async fn apply(args: &DeployArgs) -> Result<()> {
    let d = load(args)?;
    let api = ApiClient::from_target(&args.target)?;
    let certificates = args.certificates_dir.clone().unwrap_or_else(|| {
        args.file
            .parent()
            .unwrap_or(Path::new("."))
            .join("certificates")
    });
    apply_deployment(&api, &d, &certificates).await.map(|_| ())
}

/// Applies `d`, printing each change; how many there were.
pub async fn apply_deployment(
    api: &ApiClient,
    d: &Deployment,
    certificates: &Path,
) -> Result<usize> {
    let (actual, names) = read(api, d, false).await?;
    let plan = roost_deploy::plan(d, &actual, &names);
    if !plan.conflicts.is_empty() {
        for c in &plan.conflicts {
            eprintln!("! {c}");
        }
        bail!("nothing changed: the file asks for changes apply cannot make (above)");
    }
    if plan.changes.is_empty() {
        println!("no changes");
        return Ok(0);
    }
    for change in &plan.changes {
        execute(api, change, certificates)
            .await
            .with_context(|| format!("{change}"))?;
        println!("{change}");
    }
    println!("applied {} changes", plan.changes.len());
    Ok(plan.changes.len())
}

pub async fn destroy(args: &DeployArgs) -> Result<()> {
    let d = load(args)?;
    let api = ApiClient::from_target(&args.target)?;
    let (actual, _) = read(&api, &d, false).await?;
    let changes = roost_deploy::destroy(&d, &actual);
    if changes.is_empty() {
        println!("nothing to destroy");
        return Ok(());
    }
    for change in &changes {
        execute(&api, change, Path::new("."))
            .await
            .with_context(|| format!("{change}"))?;
        println!("{change}");
    }
    println!("destroyed: {} changes", changes.len());
    Ok(())
}

/// Every item of a paginated list: `items` is the field holding the page.
async fn list(api: &ApiClient, path: &str, items: &str) -> Result<Vec<Value>> {
    let listing = Listing {
        query: "maxResults=250",
        ..Listing::get(path, items)
    };
    api.list_all(&listing).await
}

fn strings(values: &[Value], field: &str) -> BTreeSet<String> {
    values
        .iter()
        .filter_map(|v| v[field].as_str().map(str::to_string))
        .collect()
}

/// What the registry holds for the resources `d` names; with `all_names`,
/// also every name of each kind (what `plan` lists as not in the file).
async fn read(api: &ApiClient, d: &Deployment, all_names: bool) -> Result<(Actual, Names)> {
    let mut a = Actual::default();
    let mut n = Names::default();
    if all_names {
        let names = |path, items, field| async move {
            anyhow::Ok(strings(&list(api, path, items).await?, field))
        };
        n.thing_types = names("/thing-types", "thingTypes", "thingTypeName").await?;
        n.thing_groups = names("/thing-groups", "thingGroups", "groupName").await?;
        n.policies = names("/policies", "policies", "policyName").await?;
        n.things = names("/things", "things", "thingName").await?;
        n.rules = names("/rules", "rules", "ruleName").await?;
        n.jobs = names("/jobs", "jobs", "jobId").await?;
    }
    for t in d.thing_types() {
        if let Some(v) = api
            .call_opt("GET", &format!("/thing-types/{}", label(&t.name)), "", None)
            .await?
        {
            a.thing_types.insert(
                t.name.clone(),
                TypeState {
                    deprecated: v["thingTypeMetadata"]["deprecated"]
                        .as_bool()
                        .unwrap_or(false),
                },
            );
        }
    }
    for g in d.thing_groups() {
        if let Some(v) = api
            .call_opt(
                "GET",
                &format!("/thing-groups/{}", label(&g.name)),
                "",
                None,
            )
            .await?
        {
            a.thing_groups.insert(
                g.name.clone(),
                GroupState {
                    description: v["thingGroupProperties"]["thingGroupDescription"]
                        .as_str()
                        .map(str::to_string),
                    parent: v["thingGroupMetadata"]["parentGroupName"]
                        .as_str()
                        .map(str::to_string),
                },
            );
        }
    }
    for p in d.policies() {
        let path = format!("/policies/{}", label(&p.name));
        let Some(v) = api.call_opt("GET", &path, "", None).await? else {
            continue;
        };
        let document = v["policyDocument"]
            .as_str()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or(Value::Null);
        let versions = api
            .call("GET", &format!("{path}/version"), "", &[], None)
            .await?;
        let mut versions: Vec<(String, bool, i64)> = versions["policyVersions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| {
                (
                    v["versionId"].as_str().unwrap_or_default().to_string(),
                    v["isDefaultVersion"].as_bool().unwrap_or(false),
                    v["versionId"]
                        .as_str()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0),
                )
            })
            .collect();
        versions.sort_by_key(|v| v.2);
        let targets = api
            .call(
                "POST",
                &format!("/policy-targets/{}", label(&p.name)),
                "",
                &[],
                None,
            )
            .await?;
        a.policies.insert(
            p.name.clone(),
            PolicyState {
                default_document: document,
                versions: versions.into_iter().map(|(v, d, _)| (v, d)).collect(),
                targets: targets["targets"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|t| t.as_str().map(str::to_string))
                    .collect(),
            },
        );
    }
    for t in d.things() {
        if let Some(state) = read_thing(api, &t.name).await? {
            a.things.insert(t.name.clone(), state);
        }
    }
    let topics = sns_topics(api).await?;
    if all_names {
        n.topics = topics.keys().cloned().collect();
    }
    for t in d.topics() {
        if let Some(arn) = topics.get(&t.name) {
            a.topics.insert(
                t.name.clone(),
                TopicState {
                    arn: arn.clone(),
                    subscriptions: sns_subscriptions(api, arn).await?,
                },
            );
        }
    }
    for r in d.rules() {
        if let Some(v) = api
            .call_opt("GET", &format!("/rules/{}", label(&r.name)), "", None)
            .await?
        {
            let rule = &v["rule"];
            let mut payload = json!({
                "sql": rule["sql"],
                "ruleDisabled": rule["ruleDisabled"].as_bool().unwrap_or(false),
                "actions": rule["actions"].as_array().cloned().unwrap_or_default(),
                "awsIotSqlVersion": rule["awsIotSqlVersion"].as_str().unwrap_or("2016-03-23"),
            });
            if let Some(desc) = rule["description"].as_str().filter(|s| !s.is_empty()) {
                payload["description"] = json!(desc);
            }
            if !rule["errorAction"].is_null() {
                payload["errorAction"] = rule["errorAction"].clone();
            }
            a.rules.insert(r.name.clone(), RuleState { payload });
        }
    }
    for j in d.jobs() {
        let path = format!("/jobs/{}", label(&j.id));
        if let Some(v) = api.call_opt("GET", &path, "", None).await? {
            let document = api
                .call("GET", &format!("{path}/job-document"), "", &[], None)
                .await?;
            a.jobs.insert(
                j.id.clone(),
                JobState {
                    document: document["document"]
                        .as_str()
                        .and_then(|s| serde_json::from_str(s).ok())
                        .unwrap_or(Value::Null),
                    status: v["job"]["status"].as_str().unwrap_or_default().to_string(),
                },
            );
        }
    }
    Ok((a, n))
}

async fn read_thing(api: &ApiClient, name: &str) -> Result<Option<ThingState>> {
    let path = format!("/things/{}", label(name));
    let Some(v) = api.call_opt("GET", &path, "", None).await? else {
        return Ok(None);
    };
    let groups = list(api, &format!("{path}/thing-groups"), "thingGroups").await?;
    let principals = api
        .call("GET", &format!("{path}/principals"), "", &[], None)
        .await?;
    let mut certificates = Vec::new();
    for arn in principals["principals"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        let Some(id) = arn
            .strip_prefix("arn:")
            .and_then(|_| arn.rsplit_once("cert/"))
            .map(|(_, id)| id)
        else {
            continue;
        };
        let cert = api
            .call("GET", &format!("/certificates/{id}"), "", &[], None)
            .await?;
        let policies = api
            .call(
                "POST",
                &format!("/attached-policies/{}", label(arn)),
                "recursive=false",
                &[],
                None,
            )
            .await?;
        certificates.push(CertState {
            id: id.to_string(),
            arn: arn.to_string(),
            status: cert["certificateDescription"]["status"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            policies: strings(
                policies["policies"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default(),
                "policyName",
            ),
        });
    }
    Ok(Some(ThingState {
        thing_type: v["thingTypeName"].as_str().map(str::to_string),
        attributes: v["attributes"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
            .collect(),
        groups: strings(&groups, "groupName"),
        certificates,
    }))
}

#[derive(Deserialize)]
struct ListTopicsResponse {
    #[serde(rename = "ListTopicsResult")]
    result: ListTopicsResult,
}
#[derive(Deserialize)]
struct ListTopicsResult {
    #[serde(rename = "Topics", default)]
    topics: Members<TopicMember>,
    #[serde(rename = "NextToken", default)]
    next_token: Option<String>,
}
#[derive(Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
struct Members<T> {
    #[serde(rename = "member", default)]
    member: Vec<T>,
}
impl<T> Default for Members<T> {
    fn default() -> Self {
        Self { member: Vec::new() }
    }
}
#[derive(Deserialize)]
struct TopicMember {
    #[serde(rename = "TopicArn")]
    arn: String,
}
#[derive(Deserialize)]
struct ListSubscriptionsResponse {
    #[serde(rename = "ListSubscriptionsByTopicResult")]
    result: ListSubscriptionsResult,
}
#[derive(Deserialize)]
struct ListSubscriptionsResult {
    #[serde(rename = "Subscriptions", default)]
    subscriptions: Members<SubscriptionMember>,
    #[serde(rename = "NextToken", default)]
    next_token: Option<String>,
}
#[derive(Deserialize)]
struct SubscriptionMember {
    #[serde(rename = "SubscriptionArn")]
    arn: String,
    #[serde(rename = "Protocol")]
    protocol: String,
    #[serde(rename = "Endpoint")]
    endpoint: String,
}
fn xml<T: for<'de> Deserialize<'de>>(action: &str, text: &str) -> Result<T> {
    quick_xml::de::from_str(text)
        .with_context(|| format!("the server's {action} answer is not what SNS answers"))
}

/// Topic name → ARN.
pub(crate) async fn sns_topics(api: &ApiClient) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut token = None::<String>;
    loop {
        let params: Vec<(&str, &str)> = token
            .as_deref()
            .map(|t| vec![("NextToken", t)])
            .unwrap_or_default();
        let page: ListTopicsResponse = xml("ListTopics", &api.sns("ListTopics", &params).await?)?;
        for t in page.result.topics.member {
            if let Some((_, name)) = t.arn.rsplit_once(':') {
                out.insert(name.to_string(), t.arn.clone());
            }
        }
        match page.result.next_token.filter(|t| !t.is_empty()) {
            Some(t) => token = Some(t),
            None => return Ok(out),
        }
    }
}

pub(crate) async fn sns_subscriptions(
    api: &ApiClient,
    topic_arn: &str,
) -> Result<BTreeMap<(String, String), String>> {
    let mut out = BTreeMap::new();
    let mut token = None::<String>;
    loop {
        let mut params = vec![("TopicArn", topic_arn)];
        if let Some(t) = &token {
            params.push(("NextToken", t));
        }
        let page: ListSubscriptionsResponse = xml(
            "ListSubscriptionsByTopic",
            &api.sns("ListSubscriptionsByTopic", &params).await?,
        )?;
        for s in page.result.subscriptions.member {
            out.insert((s.protocol, s.endpoint), s.arn);
        }
        match page.result.next_token.filter(|t| !t.is_empty()) {
            Some(t) => token = Some(t),
            None => return Ok(out),
        }
    }
}

/// A thing type can be deleted only some time after it was deprecated (five
/// minutes on AWS and by default on Roost): wait for it, as Terraform does,
/// saying so once.
async fn delete_thing_type(api: &ApiClient, name: &str) -> Result<()> {
    let path = format!("/thing-types/{}", label(name));
    let started = std::time::Instant::now();
    let mut said = false;
    loop {
        match api.call("DELETE", &path, "", &[], None).await {
            Ok(_) => return Ok(()),
            Err(e)
                if started.elapsed() < THING_TYPE_WAIT
                    && e.downcast_ref::<crate::client::AwsError>()
                        .is_some_and(|a| {
                            a.status == 400
                                && (a.message.contains("too recently")
                                    || a.message.contains("5 minutes"))
                        }) =>
            {
                if !said {
                    eprintln!("waiting until thing type {name} may be deleted: {e}");
                    said = true;
                }
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The longest wait for a deprecated thing type to become deletable.
const THING_TYPE_WAIT: std::time::Duration = std::time::Duration::from_secs(400);

async fn arn_of(api: &ApiClient, kind: &str, name: &str) -> Result<String> {
    let (path, field) = match kind {
        "thing" => (format!("/things/{}", label(name)), "thingArn"),
        _ => (format!("/thing-groups/{}", label(name)), "thingGroupArn"),
    };
    let v = api.call("GET", &path, "", &[], None).await?;
    v[field]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("no {field} for {kind} {name}"))
}

async fn execute(api: &ApiClient, change: &Change, certificates: &Path) -> Result<()> {
    use Change::*;
    let post = |path: String, body: Value| async move {
        api.call("POST", &path, "", &[], Some(&body))
            .await
            .map(|_| ())
    };
    match change {
        CreateThingType(t) => {
            let mut props = json!({ "searchableAttributes": t.searchable_attributes });
            if let Some(d) = &t.description {
                props["thingTypeDescription"] = json!(d);
            }
            post(
                format!("/thing-types/{}", label(&t.name)),
                json!({ "thingTypeProperties": props }),
            )
            .await
        }
        UndeprecateThingType(name) => {
            post(
                format!("/thing-types/{}/deprecate", label(name)),
                json!({ "undoDeprecate": true }),
            )
            .await
        }
        CreateThingGroup(g) => {
            let mut body = json!({});
            if let Some(p) = &g.parent {
                body["parentGroupName"] = json!(p);
            }
            if let Some(d) = &g.description {
                body["thingGroupProperties"] = json!({ "thingGroupDescription": d });
            }
            post(format!("/thing-groups/{}", label(&g.name)), body).await
        }
        UpdateThingGroup { name, .. } => bail!(
            "changing thing group {name}'s description is not supported; remove the group first"
        ),
        CreatePolicy { name, document } => {
            post(
                format!("/policies/{}", label(name)),
                json!({ "policyDocument": document.to_string() }),
            )
            .await
        }
        NewPolicyVersion {
            name,
            document,
            delete_version,
        } => {
            if let Some(v) = delete_version {
                api.call(
                    "DELETE",
                    &format!("/policies/{}/version/{v}", label(name)),
                    "",
                    &[],
                    None,
                )
                .await?;
            }
            api.call(
                "POST",
                &format!("/policies/{}/version", label(name)),
                "setAsDefault=true",
                &[],
                Some(&json!({ "policyDocument": document.to_string() })),
            )
            .await
            .map(|_| ())
        }
        CreateThing(t) => {
            let mut body = json!({ "attributePayload": { "attributes": t.attributes } });
            if let Some(ty) = &t.thing_type {
                body["thingTypeName"] = json!(ty);
            }
            post(format!("/things/{}", label(&t.name)), body).await
        }
        UpdateThing {
            name,
            thing_type,
            attributes,
        } => {
            let current = read_thing(api, name).await?.unwrap_or_default();
            // merge=false would keep nothing; an empty value removes a key.
            let mut attrs: BTreeMap<String, String> = current
                .attributes
                .keys()
                .filter(|k| !attributes.contains_key(*k))
                .map(|k| (k.clone(), String::new()))
                .collect();
            attrs.extend(attributes.clone());
            let mut body = json!({ "attributePayload": { "attributes": attrs, "merge": true } });
            match thing_type {
                Some(ty) => body["thingTypeName"] = json!(ty),
                None if current.thing_type.is_some() => body["removeThingType"] = json!(true),
                None => {}
            }
            api.call(
                "PATCH",
                &format!("/things/{}", label(name)),
                "",
                &[],
                Some(&body),
            )
            .await
            .map(|_| ())
        }
        AddThingToGroup { thing, group } => api
            .call(
                "PUT",
                "/thing-groups/addThingToThingGroup",
                "",
                &[],
                Some(&json!({ "thingGroupName": group, "thingName": thing })),
            )
            .await
            .map(|_| ()),
        RemoveThingFromGroup { thing, group } => api
            .call(
                "PUT",
                "/thing-groups/removeThingFromThingGroup",
                "",
                &[],
                Some(&json!({ "thingGroupName": group, "thingName": thing })),
            )
            .await
            .map(|_| ()),
        CreateCertificate { thing } => {
            let out = certificates.join(thing);
            crate::cert::issue(api, thing, &out).await.map(|_| ())
        }
        AttachPolicy { policy, thing } => {
            let state = read_thing(api, thing).await?.unwrap_or_default();
            let active: Vec<&CertState> = state
                .certificates
                .iter()
                .filter(|c| c.status == "ACTIVE")
                .collect();
            if active.is_empty() {
                bail!("thing {thing} has no ACTIVE certificate to attach {policy} to (set certificate = true, or attach one)");
            }
            for cert in active {
                if !cert.policies.contains(policy) {
                    api.call(
                        "PUT",
                        &format!("/target-policies/{}", label(policy)),
                        "",
                        &[],
                        Some(&json!({ "target": cert.arn })),
                    )
                    .await?;
                }
            }
            Ok(())
        }
        DetachPolicy { policy, target } => {
            post(
                format!("/target-policies/{}", label(policy)),
                json!({ "target": target }),
            )
            .await
        }
        CreateTopic { name } => api.sns("CreateTopic", &[("Name", name)]).await.map(|_| ()),
        Subscribe {
            topic,
            protocol,
            endpoint,
        } => {
            let topics = sns_topics(api).await?;
            let arn = topics
                .get(topic)
                .with_context(|| format!("topic {topic} does not exist"))?;
            api.sns(
                "Subscribe",
                &[
                    ("TopicArn", arn),
                    ("Protocol", protocol),
                    ("Endpoint", endpoint),
                ],
            )
            .await
            .map(|_| ())
        }
        Unsubscribe {
            subscription_arn, ..
        } => api
            .sns("Unsubscribe", &[("SubscriptionArn", subscription_arn)])
            .await
            .map(|_| ()),
        CreateRule { name, payload } => {
            post(format!("/rules/{}", label(name)), payload.clone()).await
        }
        ReplaceRule { name, payload } => api
            .call(
                "PATCH",
                &format!("/rules/{}", label(name)),
                "",
                &[],
                Some(payload),
            )
            .await
            .map(|_| ()),
        CreateJob(j) => {
            let mut targets = Vec::new();
            for t in &j.things {
                targets.push(arn_of(api, "thing", t).await?);
            }
            for g in &j.groups {
                targets.push(arn_of(api, "group", g).await?);
            }
            let mut body = json!({ "targets": targets, "document": j.document });
            if let Some(d) = &j.description {
                body["description"] = json!(d);
            }
            if j.document.contains("${aws:iot:s3-presigned-url:") {
                let account = targets[0].split(':').nth(4).unwrap_or_default();
                body["presignedUrlConfig"] = json!({
                    "roleArn": format!("arn:aws:iam::{account}:role/roost-presigned-urls"),
                    "expiresInSec": j.presigned_url_expires_secs.unwrap_or(3600),
                });
            }
            api.call(
                "PUT",
                &format!("/jobs/{}", label(&j.id)),
                "",
                &[],
                Some(&body),
            )
            .await
            .map(|_| ())
        }
        DeleteJob { id } => {
            api.call(
                "DELETE",
                &format!("/jobs/{}", label(id)),
                "force=true",
                &[],
                None,
            )
            .await?;
            // The deletion runs in the background on AWS; wait until it is gone.
            for _ in 0..100 {
                if api
                    .call_opt("GET", &format!("/jobs/{}", label(id)), "", None)
                    .await?
                    .is_none()
                {
                    return Ok(());
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            bail!("job {id} is still being deleted")
        }
        DeleteRule { name } => api
            .call("DELETE", &format!("/rules/{}", label(name)), "", &[], None)
            .await
            .map(|_| ()),
        DeleteTopic { arn, .. } => api
            .sns("DeleteTopic", &[("TopicArn", arn)])
            .await
            .map(|_| ()),
        DetachThingPrincipal { thing, arn } => api
            .call(
                "DELETE",
                &format!("/things/{}/principals", label(thing)),
                "",
                &[("x-amzn-principal", arn)],
                None,
            )
            .await
            .map(|_| ()),
        DeactivateCertificate { id } => api
            .call(
                "PUT",
                &format!("/certificates/{id}"),
                "newStatus=INACTIVE",
                &[],
                None,
            )
            .await
            .map(|_| ()),
        DeleteCertificate { id } => api
            .call("DELETE", &format!("/certificates/{id}"), "", &[], None)
            .await
            .map(|_| ()),
        DeleteThing { name } => api
            .call("DELETE", &format!("/things/{}", label(name)), "", &[], None)
            .await
            .map(|_| ()),
        DeleteThingGroup { name } => api
            .call(
                "DELETE",
                &format!("/thing-groups/{}", label(name)),
                "",
                &[],
                None,
            )
            .await
            .map(|_| ()),
        DeletePolicyVersion { policy, version } => api
            .call(
                "DELETE",
                &format!("/policies/{}/version/{version}", label(policy)),
                "",
                &[],
                None,
            )
            .await
            .map(|_| ()),
        DeletePolicy { name } => api
            .call(
                "DELETE",
                &format!("/policies/{}", label(name)),
                "",
                &[],
                None,
            )
            .await
            .map(|_| ()),
        DeprecateThingType { name } => {
            post(
                format!("/thing-types/{}/deprecate", label(name)),
                json!({ "undoDeprecate": false }),
            )
            .await
        }
        DeleteThingType { name } => delete_thing_type(api, name).await,
    }
}
