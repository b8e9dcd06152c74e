//! AWS IoT policy documents: parse, validate, and evaluate with policy variables.
//!
//! This crate is the authorizer's pure core. The control plane calls
//! [`parse_policy`] on CreatePolicy/CreatePolicyVersion and returns the
//! [`MalformedPolicy`] text in a `MalformedPolicyException`. The broker builds a
//! [`ConnectionContext`] once per connection, calls [`PreparedPolicies::prepare`] with
//! the connection's effective policies, and asks [`PreparedPolicies::decide`] for
//! every CONNECT, PUBLISH, SUBSCRIBE filter and delivery. TestAuthorization uses
//! [`PreparedPolicies::evaluate`] for the detail.
//!
//! The behaviour follows AWS IoT (IAM's policy language, restricted to what IoT
//! uses); `docs/policies.md` lists where Roost is deliberately stricter. This crate
//! does no I/O, keeps no clock and looks nothing up: everything it decides on is in
//! its arguments.
//!
//! ```
//! use std::sync::Arc;
//! use roost_policy::*;
//!
//! let policy = parse_policy(r#"{
//!     "Version": "2012-10-17",
//!     "Statement": {
//!         "Effect": "Allow",
//!         "Action": "iot:Publish",
//!         "Resource": "arn:aws:iot:us-east-1:000000000000:topic/${iot:ClientId}/*"
//!     }
//! }"#).unwrap();
//! let ctx = ConnectionContext {
//!     region: "us-east-1".into(),
//!     account: "000000000000".into(),
//!     client_id: Some("dev-1".into()),
//!     ..Default::default()
//! };
//! let prepared = PreparedPolicies::prepare(
//!     vec![NamedPolicy { name: "p".into(), policy: Arc::new(policy) }],
//!     &ctx,
//! );
//! let topic = topic_arn(&ctx.region, &ctx.account, "dev-1/telemetry");
//! assert_eq!(prepared.decide(&Request::new(Action::Publish, &topic)), Decision::Allowed);
//! let other = topic_arn(&ctx.region, &ctx.account, "dev-2/telemetry");
//! assert_eq!(prepared.decide(&Request::new(Action::Publish, &other)), Decision::ImplicitDeny);
//! ```

#![forbid(unsafe_code)]

mod action;
mod arn;
mod condition;
mod context;
mod document;
mod error;
mod evaluate;
mod glob;
mod json;
mod template;
mod variables;

pub use action::Action;
pub use arn::{client_arn, resource_arn, thing_arn, topic_arn, topicfilter_arn};
pub use context::{CertificateContext, ConnectionContext, ThingContext};
pub use document::{parse_policy, Effect, Policy, PolicyVersion, Statement};
pub use error::{MalformedPolicy, MAX_POLICY_CHARS};
pub use evaluate::{Decision, Evaluation, NamedPolicy, PreparedPolicies, Request};
