//! The ARNs requests are checked against (reference 1.2).
//!
//! Only formatting: names go in verbatim (a topic's `+`, `#`, `$` and `/` included),
//! because AWS matches policies against exactly this text. These helpers must never
//! validate or escape names; the broker has already accepted them.

/// `arn:aws:iot:REGION:ACCOUNT:client/<clientId>`, checked for `iot:Connect`.
pub fn client_arn(region: &str, account: &str, client_id: &str) -> String {
    resource_arn(region, account, "client", client_id)
}

/// `arn:aws:iot:REGION:ACCOUNT:topic/<topic>`, checked for `iot:Publish`,
/// `iot:RetainPublish`, `iot:Receive` and `iot:GetRetainedMessage`.
pub fn topic_arn(region: &str, account: &str, topic: &str) -> String {
    resource_arn(region, account, "topic", topic)
}

/// `arn:aws:iot:REGION:ACCOUNT:topicfilter/<filter>`, checked for `iot:Subscribe`
/// with the filter exactly as the client sent it.
pub fn topicfilter_arn(region: &str, account: &str, filter: &str) -> String {
    resource_arn(region, account, "topicfilter", filter)
}

/// `arn:aws:iot:REGION:ACCOUNT:thing/<thingName>`, checked for the shadow and
/// HTTPS jobs actions.
pub fn thing_arn(region: &str, account: &str, thing_name: &str) -> String {
    resource_arn(region, account, "thing", thing_name)
}

/// `arn:aws:iot:REGION:ACCOUNT:<kind>/<name>` for any other resource type.
pub fn resource_arn(region: &str, account: &str, kind: &str, name: &str) -> String {
    format!("arn:aws:iot:{region}:{account}:{kind}/{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns() {
        assert_eq!(
            client_arn("us-east-1", "000000000000", "dev-1"),
            "arn:aws:iot:us-east-1:000000000000:client/dev-1"
        );
        assert_eq!(
            topic_arn("r", "1", "$aws/things/t/jobs/get"),
            "arn:aws:iot:r:1:topic/$aws/things/t/jobs/get"
        );
        assert_eq!(
            topicfilter_arn("r", "1", "a/+/#"),
            "arn:aws:iot:r:1:topicfilter/a/+/#"
        );
        assert_eq!(thing_arn("r", "1", "t"), "arn:aws:iot:r:1:thing/t");
    }
}
