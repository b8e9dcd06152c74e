"""TestAuthorization over the scenario's policy: the same evaluator the
device gateway uses, exercised through boto3 and the aws CLI."""

import json

import pytest

from conftest import ACCOUNT, REGION, scenario_policy

THING = "iot-webinar-device"
ARN = f"arn:aws:iot:{REGION}:{ACCOUNT}"


@pytest.fixture
def device(roost):
    iot = roost.boto()
    iot.create_thing_type(thingTypeName="iot-webinar-type")
    iot.create_thing(thingName=THING, thingTypeName="iot-webinar-type", attributePayload={"attributes": {"Owner": "abcde-12345"}})
    iot.create_thing(thingName="other-device", attributePayload={"attributes": {"Owner": "abcde-12345"}})
    cert = iot.create_keys_and_certificate(setAsActive=True)
    iot.attach_thing_principal(thingName=THING, principal=cert["certificateArn"])
    iot.create_policy(policyName="iot-webinar-policy", policyDocument=scenario_policy(1))
    iot.attach_policy(policyName="iot-webinar-policy", target=cert["certificateArn"])
    return iot, cert["certificateArn"]


def decide(iot, principal, action, resource, client_id=THING):
    result = iot.test_authorization(
        principal=principal, clientId=client_id,
        authInfos=[{"actionType": action, "resources": [resource]}],
    )["authResults"][0]
    return result["authDecision"]


def test_connect_only_as_own_thing_name(device):
    iot, cert = device
    assert decide(iot, cert, "CONNECT", f"{ARN}:client/{THING}") == "ALLOWED"
    assert decide(iot, cert, "CONNECT", f"{ARN}:client/other-device", client_id="other-device") == "IMPLICIT_DENY"
    assert decide(iot, cert, "CONNECT", f"{ARN}:client/someone-else", client_id="someone-else") == "IMPLICIT_DENY"


def test_publish_only_to_own_tenant_audit_topic(device):
    iot, cert = device
    assert decide(iot, cert, "PUBLISH", f"{ARN}:topic/abcde-12345/{THING}/audit") == "ALLOWED"
    for topic in ["abcde-12345/other-device/audit", f"other-tenant/{THING}/audit", f"abcde-12345/{THING}/other"]:
        assert decide(iot, cert, "PUBLISH", f"{ARN}:topic/{topic}") == "IMPLICIT_DENY", topic


def test_version_2_allows_own_jobs_topics_only(device):
    iot, cert = device
    jobs = f"{ARN}:topicfilter/$aws/things/{THING}/jobs/*"
    assert decide(iot, cert, "SUBSCRIBE", jobs) == "IMPLICIT_DENY"  # not in version 1
    iot.create_policy_version(policyName="iot-webinar-policy", policyDocument=scenario_policy(2), setAsDefault=True)
    assert decide(iot, cert, "SUBSCRIBE", jobs) == "ALLOWED"
    assert decide(iot, cert, "SUBSCRIBE", f"{ARN}:topicfilter/$aws/things/{THING}/jobs/get/+") == "ALLOWED"
    assert decide(iot, cert, "SUBSCRIBE", f"{ARN}:topicfilter/$aws/things/other-device/jobs/*") == "IMPLICIT_DENY"
    assert decide(iot, cert, "RECEIVE", f"{ARN}:topic/$aws/things/{THING}/jobs/notify-next") == "ALLOWED"
    assert decide(iot, cert, "RECEIVE", f"{ARN}:topic/$aws/things/other-device/jobs/notify-next") == "IMPLICIT_DENY"
    # Going back to version 1 takes the jobs permissions away again.
    iot.set_default_policy_version(policyName="iot-webinar-policy", policyVersionId="1")
    assert decide(iot, cert, "SUBSCRIBE", jobs) == "IMPLICIT_DENY"


def test_changed_owner_attribute_moves_the_tenant(device):
    iot, cert = device
    old = f"{ARN}:topic/abcde-12345/{THING}/audit"
    new = f"{ARN}:topic/fghij-67890/{THING}/audit"
    assert decide(iot, cert, "PUBLISH", old) == "ALLOWED"
    iot.update_thing(thingName=THING, attributePayload={"attributes": {"Owner": "fghij-67890"}, "merge": True})
    assert decide(iot, cert, "PUBLISH", old) == "IMPLICIT_DENY"
    assert decide(iot, cert, "PUBLISH", new) == "ALLOWED"
    # Without the attribute the variable cannot resolve: nothing is allowed.
    iot.update_thing(thingName=THING, attributePayload={"attributes": {"Owner": ""}, "merge": True})
    result = iot.test_authorization(
        principal=cert, clientId=THING, authInfos=[{"actionType": "PUBLISH", "resources": [new]}]
    )["authResults"][0]
    assert result["authDecision"] == "IMPLICIT_DENY"
    assert any("Owner" in m for m in result["missingContextValues"]), result


def test_thing_variables_need_the_certificate_attached(device):
    iot, cert = device
    iot.detach_thing_principal(thingName=THING, principal=cert)
    assert decide(iot, cert, "CONNECT", f"{ARN}:client/{THING}") == "IMPLICIT_DENY"
    assert decide(iot, cert, "PUBLISH", f"{ARN}:topic/abcde-12345/{THING}/audit") == "IMPLICIT_DENY"


def test_explicit_deny_overrides_allow(device):
    iot, cert = device
    topic = f"{ARN}:topic/abcde-12345/{THING}/audit"
    deny = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Deny", "Action": "iot:Publish", "Resource": f"{ARN}:topic/abcde-12345/*"}],
    }
    iot.create_policy(policyName="deny-tenant", policyDocument=json.dumps(deny))
    iot.attach_policy(policyName="deny-tenant", target=cert)
    result = iot.test_authorization(
        principal=cert, clientId=THING, authInfos=[{"actionType": "PUBLISH", "resources": [topic]}]
    )["authResults"][0]
    assert result["authDecision"] == "EXPLICIT_DENY"
    assert [p["policyName"] for p in result["denied"]["explicitDeny"]["policies"]] == ["deny-tenant"]
    # policyNamesToSkip simulates without it.
    skipped = iot.test_authorization(
        principal=cert, clientId=THING, policyNamesToSkip=["deny-tenant"],
        authInfos=[{"actionType": "PUBLISH", "resources": [topic]}],
    )["authResults"][0]
    assert skipped["authDecision"] == "ALLOWED"
    assert [p["policyName"] for p in skipped["allowed"]["policies"]] == ["iot-webinar-policy"]


def test_thing_group_policies_apply_to_member_things(device):
    iot, cert = device
    topic = f"{ARN}:topic/fleet/broadcast"
    doc = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Publish", "Resource": topic}]}
    iot.create_thing_group(thingGroupName="fleet")
    iot.create_thing_group(thingGroupName="fleet-eu", parentGroupName="fleet")
    iot.create_policy(policyName="fleet-policy", policyDocument=json.dumps(doc))
    iot.attach_policy(policyName="fleet-policy", target=f"{ARN}:thinggroup/fleet")
    assert decide(iot, cert, "PUBLISH", topic) == "IMPLICIT_DENY"
    iot.add_thing_to_thing_group(thingGroupName="fleet-eu", thingName=THING)  # inherited from the parent
    assert decide(iot, cert, "PUBLISH", topic) == "ALLOWED"


def test_test_authorization_with_the_aws_cli(device, roost):
    _, cert = device
    _, out, _ = roost.aws(
        "iot", "test-authorization", "--principal", cert, "--client-id", THING,
        "--auth-infos", json.dumps([{"actionType": "PUBLISH", "resources": [f"{ARN}:topic/abcde-12345/{THING}/audit"]}]),
    )
    assert out["authResults"][0]["authDecision"] == "ALLOWED"


def test_certificate_id_variable_names_the_own_certificate(roost):
    """AWS's certificate policy example: a device may publish to the topic
    named after its own certificate id, and to no other certificate's."""
    iot = roost.boto()
    mine = iot.create_keys_and_certificate(setAsActive=True)
    theirs = iot.create_keys_and_certificate(setAsActive=True)
    doc = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["iot:Publish"], "Resource": [f"{ARN}:topic/${{iot:CertificateId}}"]},
            {"Effect": "Allow", "Action": ["iot:Connect"], "Resource": [f"{ARN}:client/client1"]},
        ],
    }
    roost.aws("iot", "create-policy", "--policy-name", "cert-id-topic", "--policy-document", json.dumps(doc))
    roost.aws("iot", "attach-policy", "--policy-name", "cert-id-topic", "--target", mine["certificateArn"])

    def decide_cli(topic):
        _, out, _ = roost.aws(
            "iot", "test-authorization", "--principal", mine["certificateArn"], "--client-id", "client1",
            "--auth-infos", json.dumps([{"actionType": "PUBLISH", "resources": [f"{ARN}:topic/{topic}"]}]),
        )
        return out["authResults"][0]

    own = decide_cli(mine["certificateId"])
    assert own["authDecision"] == "ALLOWED", own
    assert [p["policyName"] for p in own["allowed"]["policies"]] == ["cert-id-topic"]
    assert own.get("missingContextValues", []) == []
    for topic in [theirs["certificateId"], "${iot:CertificateId}", f"{mine['certificateId']}/more"]:
        assert decide_cli(topic)["authDecision"] == "IMPLICIT_DENY", topic
