//! The SNS-compatible API (AWS `query` protocol): form-encoded `POST /`
//! signed with the `sns` signing name, XML answers. The confirm and
//! unsubscribe links sent to subscribers are unsigned `GET /?Action=…`
//! requests and are let through for those two actions only. Delivery is
//! `roost-notify`'s: this module only hands it what to send.

use crate::request::ApiRequest;
use crate::ApiState;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use percent_encoding::percent_decode_str;
use roost_notify::{Notifier, Publication};
use roost_registry::sns::{MessageAttribute, MessageText, SnsSubscription};
use roost_registry::RegistryError;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

const XMLNS: &str = "http://sns.amazonaws.com/doc/2010-03-31/";
/// Items per page of ListTopics / ListSubscriptions(ByTopic).
const PAGE_SIZE: usize = 100;

/// An SNS error: `<ErrorResponse><Error><Type/><Code/><Message/></Error>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnsError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl SnsError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(400, "InvalidParameter", message)
    }

    fn missing(name: &str) -> Self {
        Self::invalid(format!(
            "Invalid parameter: {name} Reason: the parameter is required"
        ))
    }

    pub fn into_response_with_id(self, request_id: &str) -> Response {
        let kind = if self.status >= 500 {
            "Receiver"
        } else {
            "Sender"
        };
        let body = format!(
            "<ErrorResponse xmlns=\"{XMLNS}\"><Error><Type>{kind}</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>{}</RequestId></ErrorResponse>",
            escape(self.code),
            escape(&self.message),
            escape(request_id)
        );
        xml_response(
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST),
            body,
            request_id,
        )
    }
}

impl From<RegistryError> for SnsError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::NotFound(m) => Self::new(404, "NotFound", m),
            RegistryError::Internal(detail) => {
                tracing::error!(error = %detail, "internal failure in the registry (sns)");
                Self::new(
                    500,
                    "InternalError",
                    "An internal error occurred; see the server log",
                )
            }
            other => Self::invalid(other.to_string()),
        }
    }
}

fn xml_response(status: StatusCode, body: String, request_id: &str) -> Response {
    let mut response = (
        status,
        [(axum::http::header::CONTENT_TYPE, "text/xml")],
        body,
    )
        .into_response();
    if let Ok(id) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert("x-amzn-RequestId", id);
    }
    response
}

/// XML-escapes text content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
    out
}

/// The decoded parameters of a query-protocol request.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Params(Vec<(String, String)>);

fn form_decode(s: &str) -> Result<String, SnsError> {
    percent_decode_str(&s.replace('+', " "))
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| SnsError::invalid("the request is not valid percent-encoded UTF-8"))
}

impl Params {
    /// Parses `application/x-www-form-urlencoded` text (body or query).
    pub fn parse(text: &str) -> Result<Self, SnsError> {
        text.split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                Ok((form_decode(k)?, form_decode(v)?))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Params)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn required(&self, name: &str) -> Result<&str, SnsError> {
        self.get(name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| SnsError::missing(name))
    }

    /// A string map flattened as `<prefix>.entry.N.key` / `.value`.
    pub fn map(&self, prefix: &str) -> Result<BTreeMap<String, String>, SnsError> {
        let start = format!("{prefix}.entry.");
        let mut keys: BTreeMap<u32, (Option<String>, Option<String>)> = BTreeMap::new();
        for (k, v) in &self.0 {
            let Some(rest) = k.strip_prefix(&start) else {
                continue;
            };
            let (n, field) = rest
                .split_once('.')
                .ok_or_else(|| SnsError::invalid(format!("Invalid parameter: {k}")))?;
            let n: u32 = n
                .parse()
                .map_err(|_| SnsError::invalid(format!("Invalid parameter: {k}")))?;
            let slot = keys.entry(n).or_default();
            match field {
                "key" => slot.0 = Some(v.clone()),
                "value" => slot.1 = Some(v.clone()),
                _ => return Err(SnsError::invalid(format!("Invalid parameter: {k}"))),
            }
        }
        keys.into_values()
            .map(|(k, v)| match k {
                Some(k) => Ok((k, v.unwrap_or_default())),
                None => Err(SnsError::invalid(format!(
                    "Invalid parameter: {prefix} Reason: an entry has no key"
                ))),
            })
            .collect()
    }
}

/// Whether a request is a query-protocol call (SNS): `POST /` with a form
/// body, or `GET /?Action=…`.
pub fn is_query_request(req: &ApiRequest) -> bool {
    req.raw_path == "/"
        && match req.method.as_str() {
            "POST" => req
                .header("content-type")
                .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded")),
            "GET" => req.query("Action").is_some(),
            _ => false,
        }
}

/// The unsigned requests the mailed links make.
pub fn is_unsigned_link(req: &ApiRequest) -> bool {
    req.method == "GET"
        && req.raw_path == "/"
        && req.header("authorization").is_none()
        && req.query("X-Amz-Signature").is_none()
        && matches!(
            req.query("Action"),
            Some("ConfirmSubscription") | Some("Unsubscribe")
        )
}

/// Runs one SNS request and renders the XML answer.
pub async fn dispatch(
    state: &ApiState,
    req: &ApiRequest,
    authenticated: bool,
    request_id: &str,
) -> Response {
    let params = if req.method == "GET" {
        Ok(Params(req.query.clone()))
    } else {
        std::str::from_utf8(&req.body)
            .map_err(|_| SnsError::invalid("the request body is not UTF-8"))
            .and_then(Params::parse)
    };
    let result = match params {
        Ok(p) => run(state, &p, authenticated).await,
        Err(e) => Err(e),
    };
    match result {
        Ok((action, result)) => {
            let mut body = format!("<{action}Response xmlns=\"{XMLNS}\">");
            if let Some(inner) = result {
                let _ = write!(body, "<{action}Result>{inner}</{action}Result>");
            }
            let _ = write!(
                body,
                "<ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></{action}Response>",
                escape(request_id)
            );
            xml_response(StatusCode::OK, body, request_id)
        }
        Err(e) => {
            tracing::debug!(code = e.code, message = %e.message, "sns request failed");
            e.into_response_with_id(request_id)
        }
    }
}

fn element(name: &str, value: &str) -> String {
    format!("<{name}>{}</{name}>", escape(value))
}

fn entries(map: &BTreeMap<String, String>) -> String {
    map.iter()
        .map(|(k, v)| {
            format!(
                "<entry><key>{}</key><value>{}</value></entry>",
                escape(k),
                escape(v)
            )
        })
        .collect()
}

fn page<T>(items: Vec<T>, token: Option<&str>) -> Result<(Vec<T>, Option<String>), SnsError> {
    let start = match token.filter(|t| !t.is_empty()) {
        None => 0,
        Some(t) => t
            .parse::<usize>()
            .map_err(|_| SnsError::invalid("Invalid parameter: NextToken"))?,
    };
    let next = (items.len() > start + PAGE_SIZE).then(|| (start + PAGE_SIZE).to_string());
    Ok((
        items.into_iter().skip(start).take(PAGE_SIZE).collect(),
        next,
    ))
}

fn subscription_member(state: &ApiState, sub: &SnsSubscription) -> String {
    let registry = state.registry();
    format!(
        "<member>{}{}{}{}{}</member>",
        element(
            "SubscriptionArn",
            if sub.confirmed {
                &sub.arn
            } else {
                "PendingConfirmation"
            }
        ),
        element("Owner", &registry.settings().account),
        element("Protocol", &sub.protocol),
        element("Endpoint", &sub.endpoint),
        element("TopicArn", &registry.sns_topic_arn(&sub.topic_name)),
    )
}

fn notifier(state: &ApiState) -> Result<&Arc<Notifier>, SnsError> {
    state.config().sns.as_ref().ok_or_else(|| {
        SnsError::new(
            500,
            "InternalError",
            "notifications are not configured on this server",
        )
    })
}

fn flag(params: &Params, name: &str) -> Result<bool, SnsError> {
    match params.get(name) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(SnsError::invalid(format!("Invalid parameter: {name}"))),
    }
}

type Outcome = Result<(&'static str, Option<String>), SnsError>;

async fn run(state: &ApiState, p: &Params, authenticated: bool) -> Outcome {
    let registry = state.registry();
    let action = p
        .get("Action")
        .ok_or_else(|| SnsError::new(400, "MissingAction", "the Action parameter is required"))?;
    match action {
        "CreateTopic" => {
            let arn = registry
                .sns_create_topic(p.required("Name")?, p.map("Attributes")?)
                .await?;
            Ok(("CreateTopic", Some(element("TopicArn", &arn))))
        }
        "DeleteTopic" => {
            registry.sns_delete_topic(p.required("TopicArn")?).await?;
            Ok(("DeleteTopic", None))
        }
        "ListTopics" => {
            let (items, next) = page(registry.sns_list_topics().await?, p.get("NextToken"))?;
            let members: String = items
                .iter()
                .map(|a| format!("<member>{}</member>", element("TopicArn", a)))
                .collect();
            let next = next.map(|t| element("NextToken", &t)).unwrap_or_default();
            Ok((
                "ListTopics",
                Some(format!("<Topics>{members}</Topics>{next}")),
            ))
        }
        "GetTopicAttributes" => {
            let attrs = registry
                .sns_topic_attributes(p.required("TopicArn")?)
                .await?;
            Ok((
                "GetTopicAttributes",
                Some(format!("<Attributes>{}</Attributes>", entries(&attrs))),
            ))
        }
        "SetTopicAttributes" => {
            registry
                .sns_set_topic_attribute(
                    p.required("TopicArn")?,
                    p.required("AttributeName")?,
                    p.get("AttributeValue").unwrap_or(""),
                )
                .await?;
            Ok(("SetTopicAttributes", None))
        }
        "Subscribe" => {
            let notifier = notifier(state)?;
            let (sub, confirm) = registry
                .sns_subscribe(
                    p.required("TopicArn")?,
                    p.required("Protocol")?,
                    p.get("Endpoint").unwrap_or(""),
                    p.map("Attributes")?,
                )
                .await?;
            if confirm {
                notifier.send_confirmation(&sub);
            }
            let shown = if sub.confirmed || flag(p, "ReturnSubscriptionArn")? {
                sub.arn.as_str()
            } else {
                "pending confirmation"
            };
            Ok(("Subscribe", Some(element("SubscriptionArn", shown))))
        }
        "ConfirmSubscription" => {
            let sub = registry
                .sns_confirm_subscription(
                    p.required("TopicArn")?,
                    p.required("Token")?,
                    authenticated,
                )
                .await?;
            if authenticated && p.get("AuthenticateOnUnsubscribe") == Some("true") {
                registry
                    .sns_require_authenticated_unsubscribe(&sub.arn)
                    .await?;
            }
            Ok((
                "ConfirmSubscription",
                Some(element("SubscriptionArn", &sub.arn)),
            ))
        }
        "Unsubscribe" => {
            let arn = p.required("SubscriptionArn")?;
            let removed = registry.sns_unsubscribe(arn, authenticated).await?;
            if removed.confirmed {
                if let Ok(notifier) = notifier(state) {
                    notifier.send_unsubscribe_confirmation(&removed);
                }
            }
            Ok(("Unsubscribe", None))
        }
        "ListSubscriptionsByTopic" | "ListSubscriptions" => {
            let (name, topic) = if action == "ListSubscriptions" {
                ("ListSubscriptions", None)
            } else {
                ("ListSubscriptionsByTopic", Some(p.required("TopicArn")?))
            };
            let (items, next) = page(registry.sns_subscriptions(topic).await?, p.get("NextToken"))?;
            let members: String = items
                .iter()
                .map(|s| subscription_member(state, s))
                .collect();
            let next = next.map(|t| element("NextToken", &t)).unwrap_or_default();
            Ok((
                name,
                Some(format!("<Subscriptions>{members}</Subscriptions>{next}")),
            ))
        }
        "GetSubscriptionAttributes" => {
            let attrs = registry
                .sns_subscription_attributes(p.required("SubscriptionArn")?)
                .await?;
            Ok((
                "GetSubscriptionAttributes",
                Some(format!("<Attributes>{}</Attributes>", entries(&attrs))),
            ))
        }
        "SetSubscriptionAttributes" => {
            registry
                .sns_set_subscription_attribute(
                    p.required("SubscriptionArn")?,
                    p.required("AttributeName")?,
                    p.get("AttributeValue").unwrap_or(""),
                )
                .await?;
            Ok(("SetSubscriptionAttributes", None))
        }
        "Publish" => publish(state, p).await,
        other => Err(SnsError::new(
            400,
            "InvalidAction",
            format!("The action {other} is not valid for this endpoint"),
        )),
    }
}

/// Publish's `MessageAttributes.entry.N.Name` / `.Value.DataType` /
/// `.Value.StringValue` / `.Value.BinaryValue` (base64, decoded once and
/// shown re-encoded). Bad ones are `ParameterValueInvalid`, as in SNS.
pub fn message_attributes(p: &Params) -> Result<BTreeMap<String, MessageAttribute>, SnsError> {
    const MAX_ATTRIBUTES: usize = 10;
    let bad = |m: String| SnsError::new(400, "ParameterValueInvalid", m);
    let mut out = BTreeMap::new();
    for n in 1.. {
        let key = |field: &str| format!("MessageAttributes.entry.{n}.{field}");
        let Some(name) = p.get(&key("Name")) else {
            break;
        };
        if out.len() == MAX_ATTRIBUTES {
            return Err(bad(format!(
                "Number of message attributes [{}] exceeds the allowed maximum [{MAX_ATTRIBUTES}].",
                MAX_ATTRIBUTES + 1
            )));
        }
        if name.is_empty()
            || name.len() > 256
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            return Err(bad(format!(
                "The message attribute name '{name}' is invalid."
            )));
        }
        let data_type = p.get(&key("Value.DataType")).unwrap_or("");
        let base = data_type.split('.').next().unwrap_or("");
        let value = match (base, data_type) {
            ("Binary", _) => {
                let encoded = p.get(&key("Value.BinaryValue")).unwrap_or("");
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .ok()
                    .filter(|b| !b.is_empty())
                    .ok_or_else(|| {
                        bad(format!("The message attribute '{name}' must contain a non-empty base64 binary value for message attribute type 'Binary'."))
                    })?;
                base64::engine::general_purpose::STANDARD.encode(bytes)
            }
            ("String" | "Number", _) | (_, "String.Array") => {
                let v = p.get(&key("Value.StringValue")).unwrap_or("");
                if v.is_empty() {
                    return Err(bad(format!("The message attribute '{name}' must contain non-empty message attribute value for message attribute type '{data_type}'.")));
                }
                v.to_string()
            }
            _ => {
                return Err(bad(format!(
                    "The message attribute '{name}' has an invalid message attribute type, the set of supported type prefixes is Binary, Number, and String."
                )))
            }
        };
        out.insert(
            name.to_string(),
            MessageAttribute {
                data_type: data_type.to_string(),
                value,
            },
        );
    }
    Ok(out)
}

async fn publish(state: &ApiState, p: &Params) -> Outcome {
    let registry = state.registry();
    let notifier = notifier(state)?.clone();
    let arn = match (p.get("TopicArn"), p.get("TargetArn")) {
        (Some(a), None) | (None, Some(a)) => a,
        _ => {
            return Err(SnsError::invalid(
                "Invalid parameter: TopicArn or TargetArn Reason: exactly one must be given",
            ))
        }
    };
    if p.get("PhoneNumber").is_some() {
        return Err(SnsError::invalid(
            "Invalid parameter: PhoneNumber Reason: SMS is not supported by Roost",
        ));
    }
    let message = p.get("Message").unwrap_or("");
    let topic = registry.sns_topic(arn).await?;
    let subject = p.get("Subject");
    roost_registry::sns::check_publish(&topic, message, subject)?;
    let text = MessageText::parse(message, p.get("MessageStructure"))?;
    let publication = Publication::new(text, subject.map(str::to_string), message_attributes(p)?);
    let subs = registry.sns_subscriptions(Some(arn)).await?;
    let message_id = publication.message_id.clone();
    tokio::spawn(async move {
        // Failures are logged and counted by the notifier.
        let _ = notifier.deliver(&topic, &subs, &publication).await;
    });
    Ok(("Publish", Some(element("MessageId", &message_id))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_bodies_decode() {
        let p = Params::parse(
            "Action=CreateTopic&Version=2010-03-31&Name=my-topic&Attributes.entry.1.key=DisplayName&Attributes.entry.1.value=Hello+World%21&Attributes.entry.2.key=SignatureVersion&Attributes.entry.2.value=2&Endpoint=a%40example.com",
        )
        .unwrap();
        assert_eq!(p.get("Action"), Some("CreateTopic"));
        assert_eq!(p.get("Endpoint"), Some("a@example.com"));
        let m = p.map("Attributes").unwrap();
        assert_eq!(
            m.get("DisplayName").map(String::as_str),
            Some("Hello World!")
        );
        assert_eq!(m.get("SignatureVersion").map(String::as_str), Some("2"));
        assert_eq!(m.len(), 2);
        assert!(p.required("Missing").is_err());
        assert!(Params::parse("a=%FF").is_err());
        assert!(Params::parse("Attributes.entry.1.value=x")
            .unwrap()
            .map("Attributes")
            .is_err());
        assert_eq!(Params::parse("").unwrap(), Params::default());
    }

    #[test]
    fn xml_is_escaped() {
        assert_eq!(
            escape(r#"{"a":"<b>&'"}"#),
            "{&quot;a&quot;:&quot;&lt;b&gt;&amp;&apos;&quot;}"
        );
        assert_eq!(escape("plain é"), "plain é");
        let e = SnsError::new(404, "NotFound", "Topic <x> does not exist");
        let r = e.into_response_with_id("id-1");
        assert_eq!(r.status(), 404);
    }

    #[test]
    fn message_attributes_decode_and_validate() {
        let p = Params::parse("MessageAttributes.entry.1.Name=k1&MessageAttributes.entry.1.Value.DataType=String&MessageAttributes.entry.1.Value.StringValue=v1&MessageAttributes.entry.2.Name=k2&MessageAttributes.entry.2.Value.DataType=Binary&MessageAttributes.entry.2.Value.BinaryValue=QVFJRA%3D%3D&MessageAttributes.entry.3.Name=k3&MessageAttributes.entry.3.Value.DataType=Number.int&MessageAttributes.entry.3.Value.StringValue=3").unwrap();
        let a = message_attributes(&p).unwrap();
        assert_eq!(
            a["k1"],
            MessageAttribute {
                data_type: "String".into(),
                value: "v1".into()
            }
        );
        assert_eq!(a["k2"].value, "QVFJRA==");
        assert_eq!(a["k3"].data_type, "Number.int");
        for bad in [
            "MessageAttributes.entry.1.Name=k&MessageAttributes.entry.1.Value.DataType=Strange&MessageAttributes.entry.1.Value.StringValue=v",
            "MessageAttributes.entry.1.Name=k&MessageAttributes.entry.1.Value.DataType=String",
            "MessageAttributes.entry.1.Name=k&MessageAttributes.entry.1.Value.DataType=Binary&MessageAttributes.entry.1.Value.BinaryValue=!!!",
            "MessageAttributes.entry.1.Name=a+b&MessageAttributes.entry.1.Value.DataType=String&MessageAttributes.entry.1.Value.StringValue=v",
        ] {
            let e = message_attributes(&Params::parse(bad).unwrap()).unwrap_err();
            assert_eq!(e.code, "ParameterValueInvalid", "{bad}");
        }
        assert!(message_attributes(&Params::default()).unwrap().is_empty());
    }
}
