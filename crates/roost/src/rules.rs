//! `roost rules check`: the warnings Roost gives for each stored rule (a
//! FROM no device may publish to, an s3 key that can collide, …), which
//! CreateTopicRule otherwise only writes to the server's log.

use crate::client::{label, ApiClient, Listing, Target};
use anyhow::Result;
use serde_json::Value;

/// The warnings for `payload` (a TopicRulePayload) under `name`.
pub async fn warnings(api: &ApiClient, name: &str, payload: &Value) -> Result<Vec<String>> {
    let answer = api
        .call(
            "POST",
            &format!("/roost/check-topic-rule/{}", label(name)),
            "",
            &[],
            Some(payload),
        )
        .await?;
    Ok(answer["warnings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|w| w.as_str().map(str::to_string))
        .collect())
}

pub async fn check(target: &Target) -> Result<()> {
    let api = ApiClient::from_target(target)?;
    let rules = api.list_all(&Listing::get("/rules", "rules")).await?;
    if rules.is_empty() {
        println!("no rules");
    }
    for rule in rules {
        let Some(name) = rule["ruleName"].as_str() else {
            continue;
        };
        let got = api
            .call("GET", &format!("/rules/{}", label(name)), "", &[], None)
            .await?;
        let mut payload = got["rule"].clone();
        if let Some(o) = payload.as_object_mut() {
            for k in ["ruleName", "createdAt", "ruleArn"] {
                o.remove(k);
            }
        }
        let found = warnings(&api, name, &payload).await?;
        if found.is_empty() {
            println!("rule {name}: no warnings");
        }
        for w in found {
            println!("rule {name}: warning: {w}");
        }
    }
    Ok(())
}
