//! The route table: method and raw-path segments to operation. Reading this
//! file is reading the `iot` API surface Roost serves.

use crate::error::{ApiError, ApiResult};
use crate::ops::destinations::{self, greedy};
use crate::ops::{certificates, groups, jobs, logging, misc, policies, rules, things};
use crate::request::ApiRequest;
use crate::ApiState;
use serde_json::Value;

pub async fn dispatch(state: &ApiState, req: &ApiRequest) -> ApiResult<Value> {
    let segments: Vec<&str> = req.segments.iter().map(String::as_str).collect();
    match (req.method.as_str(), segments.as_slice()) {
        ("GET", ["endpoint"]) => misc::describe_endpoint(state, req).await,
        ("POST", ["test-authorization"]) => misc::test_authorization(state, req).await,
        ("GET", ["registrationcode"]) => misc::get_registration_code(state).await,

        ("GET", ["things"]) => things::list_things(state, req).await,
        ("POST", ["things", name]) => things::create_thing(state, req, name).await,
        ("GET", ["things", name]) => things::describe_thing(state, name).await,
        ("POST", ["things", name, "connectivity-data"]) => {
            things::get_thing_connectivity_data(state, name).await
        }
        ("PATCH", ["things", name]) => things::update_thing(state, req, name).await,
        ("DELETE", ["things", name]) => things::delete_thing(state, req, name).await,
        ("PUT", ["things", name, "principals"]) => {
            things::attach_thing_principal(state, req, name).await
        }
        ("DELETE", ["things", name, "principals"]) => {
            things::detach_thing_principal(state, req, name).await
        }
        ("GET", ["things", name, "principals"]) => {
            things::list_thing_principals(state, req, name).await
        }
        ("GET", ["things", name, "thing-groups"]) => {
            groups::list_thing_groups_for_thing(state, req, name).await
        }
        ("GET", ["things", thing, "jobs"]) => {
            jobs::list_job_executions_for_thing(state, req, thing).await
        }
        ("GET", ["things", thing, "jobs", job]) => {
            jobs::describe_job_execution(state, req, thing, job).await
        }
        ("PUT", ["things", thing, "jobs", job, "cancel"]) => {
            jobs::cancel_job_execution(state, req, thing, job).await
        }
        ("DELETE", ["things", thing, "jobs", job, "executionNumber", number]) => {
            jobs::delete_job_execution(state, req, thing, job, number).await
        }
        ("GET", ["principals", "things"]) => things::list_principal_things(state, req).await,

        ("GET", ["thing-types"]) => things::list_thing_types(state, req).await,
        ("POST", ["thing-types", name]) => things::create_thing_type(state, req, name).await,
        ("GET", ["thing-types", name]) => things::describe_thing_type(state, name).await,
        ("DELETE", ["thing-types", name]) => things::delete_thing_type(state, name).await,
        ("POST", ["thing-types", name, "deprecate"]) => {
            things::deprecate_thing_type(state, req, name).await
        }

        ("GET", ["thing-groups"]) => groups::list_thing_groups(state, req).await,
        ("PUT", ["thing-groups", "addThingToThingGroup"]) => {
            groups::add_thing_to_thing_group(state, req).await
        }
        ("PUT", ["thing-groups", "removeThingFromThingGroup"]) => {
            groups::remove_thing_from_thing_group(state, req).await
        }
        ("POST", ["thing-groups", name]) => groups::create_thing_group(state, req, name).await,
        ("GET", ["thing-groups", name]) => groups::describe_thing_group(state, name).await,
        ("DELETE", ["thing-groups", name]) => groups::delete_thing_group(state, req, name).await,
        ("GET", ["thing-groups", name, "things"]) => {
            groups::list_things_in_thing_group(state, req, name).await
        }

        ("POST", ["keys-and-certificate"]) => {
            certificates::create_keys_and_certificate(state, req).await
        }
        ("POST", ["certificates"]) => certificates::create_certificate_from_csr(state, req).await,
        ("GET", ["certificates"]) => certificates::list_certificates(state, req).await,
        ("GET", ["certificates", id]) => certificates::describe_certificate(state, id).await,
        ("PUT", ["certificates", id]) => certificates::update_certificate(state, req, id).await,
        ("DELETE", ["certificates", id]) => certificates::delete_certificate(state, req, id).await,
        ("POST", ["certificate", "register"]) => {
            certificates::register_certificate(state, req).await
        }
        ("POST", ["certificate", "register-no-ca"]) => {
            certificates::register_certificate_without_ca(state, req).await
        }
        ("POST", ["cacertificate"]) => certificates::register_ca_certificate(state, req).await,
        ("GET", ["cacertificate", id]) => certificates::describe_ca_certificate(state, id).await,
        ("GET", ["cacertificates"]) => certificates::list_ca_certificates(state).await,

        ("GET", ["policies"]) => policies::list_policies(state, req).await,
        ("POST", ["policies", name]) => policies::create_policy(state, req, name).await,
        ("GET", ["policies", name]) => policies::get_policy(state, name).await,
        ("DELETE", ["policies", name]) => policies::delete_policy(state, name).await,
        ("POST", ["policies", name, "version"]) => {
            policies::create_policy_version(state, req, name).await
        }
        ("GET", ["policies", name, "version"]) => policies::list_policy_versions(state, name).await,
        ("GET", ["policies", name, "version", version]) => {
            policies::get_policy_version(state, name, version).await
        }
        ("DELETE", ["policies", name, "version", version]) => {
            policies::delete_policy_version(state, name, version).await
        }
        ("PATCH", ["policies", name, "version", version]) => {
            policies::set_default_policy_version(state, name, version).await
        }
        ("PUT", ["target-policies", name]) => policies::attach_policy(state, req, name).await,
        ("POST", ["target-policies", name]) => policies::detach_policy(state, req, name).await,
        ("POST", ["attached-policies", target]) => {
            policies::list_attached_policies(state, req, target).await
        }
        ("POST", ["policy-targets", name]) => {
            policies::list_targets_for_policy(state, req, name).await
        }

        ("GET", ["jobs"]) => jobs::list_jobs(state, req).await,
        ("PUT", ["jobs", id]) => jobs::create_job(state, req, id).await,
        ("GET", ["jobs", id]) => jobs::describe_job(state, id).await,
        ("DELETE", ["jobs", id]) => jobs::delete_job(state, req, id).await,
        ("PATCH", ["jobs", id]) => jobs::update_job(state, req, id).await,
        ("POST", ["jobs", id, "targets"]) => jobs::associate_targets_with_job(state, req, id).await,
        ("GET", ["jobs", id, "job-document"]) => jobs::get_job_document(state, id).await,
        ("PUT", ["jobs", id, "cancel"]) => jobs::cancel_job(state, req, id).await,
        ("GET", ["jobs", id, "things"]) => jobs::list_job_executions_for_job(state, req, id).await,

        ("GET", ["rules"]) => rules::list_topic_rules(state, req).await,
        ("POST", ["roost", "check-topic-rule", name]) => {
            rules::check_topic_rule(state, req, name).await
        }
        ("POST", ["rules", name]) => rules::create_topic_rule(state, req, name).await,
        ("GET", ["rules", name]) => rules::get_topic_rule(state, name).await,
        ("PATCH", ["rules", name]) => rules::replace_topic_rule(state, req, name).await,
        ("DELETE", ["rules", name]) => rules::delete_topic_rule(state, name).await,
        ("POST", ["rules", name, "enable"]) => rules::set_disabled(state, name, false).await,
        ("POST", ["rules", name, "disable"]) => rules::set_disabled(state, name, true).await,

        ("GET", ["destinations"]) => destinations::list_topic_rule_destinations(state, req).await,
        ("POST", ["destinations"]) => destinations::create_topic_rule_destination(state, req).await,
        ("PATCH", ["destinations"]) => {
            destinations::update_topic_rule_destination(state, req).await
        }
        // `{arn+}`: the ARN's own slashes (ruledestination/http/<id>) are
        // path separators on the wire.
        ("GET", ["destinations", arn @ ..]) => {
            destinations::get_topic_rule_destination(state, &greedy(arn)).await
        }
        ("DELETE", ["destinations", arn @ ..]) => {
            destinations::delete_topic_rule_destination(state, &greedy(arn)).await
        }
        ("GET", ["confirmdestination", token @ ..]) if !token.is_empty() => {
            destinations::confirm_topic_rule_destination(state, &greedy(token)).await
        }

        ("POST", ["v2LoggingOptions"]) => logging::set_v2_logging_options(state, req).await,
        ("GET", ["v2LoggingOptions"]) => logging::get_v2_logging_options(state).await,
        ("POST", ["v2LoggingLevel"]) => logging::set_v2_logging_level(state, req).await,
        ("GET", ["v2LoggingLevel"]) => logging::list_v2_logging_levels(state, req).await,
        ("DELETE", ["v2LoggingLevel"]) => logging::delete_v2_logging_level(state, req).await,

        (method, _) => Err(unknown_route(method, &req.loggable_path())),
    }
}

fn unknown_route(method: &str, path: &str) -> ApiError {
    ApiError::new(
        404,
        "UnknownOperationException",
        format!("Roost does not serve {method} {path}: no such operation in the AWS IoT API, or not implemented by Roost"),
    )
}
