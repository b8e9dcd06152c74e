"""The scenario's "Device Creation" and "IoT Policy Creation" sections, run
end to end with the real aws CLI and with boto3."""

import json

from conftest import ACCOUNT, REGION, scenario_policy

THING = "iot-webinar-device"
TYPE = "iot-webinar-type"
GROUP = "iot-webinar-group"
POLICY = "iot-webinar-policy"


def test_device_creation_and_policies_with_aws_cli(roost, tmp_path):
    aws = roost.aws
    _, out, _ = aws("iot", "create-thing-type", "--thing-type-name", TYPE)
    assert out["thingTypeArn"] == f"arn:aws:iot:{REGION}:{ACCOUNT}:thingtype/{TYPE}"
    _, out, _ = aws("iot", "create-thing-group", "--thing-group-name", GROUP)
    assert out["thingGroupArn"] == f"arn:aws:iot:{REGION}:{ACCOUNT}:thinggroup/{GROUP}"
    _, thing, _ = aws(
        "iot", "create-thing", "--thing-name", THING, "--thing-type-name", TYPE,
        "--attribute-payload", '{"attributes":{"Owner":"abcde-12345"}}',
    )
    assert thing["thingArn"] == f"arn:aws:iot:{REGION}:{ACCOUNT}:thing/{THING}"
    aws("iot", "add-thing-to-thing-group", "--thing-group-name", GROUP, "--thing-name", THING)

    _, cert, _ = aws("iot", "create-keys-and-certificate", "--set-as-active")
    assert len(cert["certificateId"]) == 64
    assert cert["certificateArn"].endswith(f":cert/{cert['certificateId']}")
    assert "BEGIN CERTIFICATE" in cert["certificatePem"]
    assert "PRIVATE KEY" in cert["keyPair"]["PrivateKey"]
    assert "PUBLIC KEY" in cert["keyPair"]["PublicKey"]
    aws("iot", "attach-thing-principal", "--thing-name", THING, "--principal", cert["certificateArn"])

    v1 = tmp_path / "policy-v1.json"
    v1.write_text(scenario_policy(1))
    _, created, _ = aws("iot", "create-policy", "--policy-name", POLICY, "--policy-document", f"file://{v1}")
    assert created["policyVersionId"] == "1"
    assert created["policyArn"] == f"arn:aws:iot:{REGION}:{ACCOUNT}:policy/{POLICY}"
    v2 = tmp_path / "policy-v2.json"
    v2.write_text(scenario_policy(2))
    _, version, _ = aws(
        "iot", "create-policy-version", "--policy-name", POLICY,
        "--policy-document", f"file://{v2}", "--set-as-default",
    )
    assert version["policyVersionId"] == "2" and version["isDefaultVersion"] is True
    aws("iot", "attach-policy", "--policy-name", POLICY, "--target", cert["certificateArn"])

    # Read everything back, as the console's "review" step would.
    _, described, _ = aws("iot", "describe-thing", "--thing-name", THING)
    assert described["thingTypeName"] == TYPE
    assert described["attributes"] == {"Owner": "abcde-12345"}
    assert described["thingId"] == thing["thingId"]
    _, members, _ = aws("iot", "list-things-in-thing-group", "--thing-group-name", GROUP)
    assert members["things"] == [THING]
    _, groups, _ = aws("iot", "list-thing-groups-for-thing", "--thing-name", THING)
    assert [g["groupName"] for g in groups["thingGroups"]] == [GROUP]
    _, principals, _ = aws("iot", "list-thing-principals", "--thing-name", THING)
    assert principals["principals"] == [cert["certificateArn"]]
    _, things, _ = aws("iot", "list-principal-things", "--principal", cert["certificateArn"])
    assert things["things"] == [THING]
    _, desc, _ = aws("iot", "describe-certificate", "--certificate-id", cert["certificateId"])
    assert desc["certificateDescription"]["status"] == "ACTIVE"
    assert desc["certificateDescription"]["certificatePem"].strip() == cert["certificatePem"].strip()
    _, versions, _ = aws("iot", "list-policy-versions", "--policy-name", POLICY)
    assert sorted((v["versionId"], v["isDefaultVersion"]) for v in versions["policyVersions"]) == [("1", False), ("2", True)]
    _, policy, _ = aws("iot", "get-policy", "--policy-name", POLICY)
    assert policy["defaultVersionId"] == "2"
    assert json.loads(policy["policyDocument"]) == json.loads(scenario_policy(2))
    _, v1_back, _ = aws("iot", "get-policy-version", "--policy-name", POLICY, "--policy-version-id", "1")
    assert json.loads(v1_back["policyDocument"]) == json.loads(scenario_policy(1))
    _, attached, _ = aws("iot", "list-attached-policies", "--target", cert["certificateArn"])
    assert [p["policyName"] for p in attached["policies"]] == [POLICY]
    _, targets, _ = aws("iot", "list-targets-for-policy", "--policy-name", POLICY)
    assert targets["targets"] == [cert["certificateArn"]]
    _, types, _ = aws("iot", "describe-thing-type", "--thing-type-name", TYPE)
    assert types["thingTypeMetadata"]["deprecated"] is False


def test_device_creation_and_policies_with_boto3(roost):
    iot = roost.boto()
    iot.create_thing_type(thingTypeName=TYPE)
    iot.create_thing_group(thingGroupName=GROUP)
    iot.create_thing(thingName=THING, thingTypeName=TYPE, attributePayload={"attributes": {"Owner": "abcde-12345"}})
    iot.add_thing_to_thing_group(thingGroupName=GROUP, thingName=THING)
    cert = iot.create_keys_and_certificate(setAsActive=True)
    iot.attach_thing_principal(thingName=THING, principal=cert["certificateArn"])
    iot.create_policy(policyName=POLICY, policyDocument=scenario_policy(1))
    iot.create_policy_version(policyName=POLICY, policyDocument=scenario_policy(2), setAsDefault=True)
    iot.attach_policy(policyName=POLICY, target=cert["certificateArn"])

    desc = iot.describe_certificate(certificateId=cert["certificateId"])["certificateDescription"]
    assert desc["status"] == "ACTIVE"
    assert desc["creationDate"].year >= 2025  # boto3 parsed the epoch-seconds timestamp
    assert desc["validity"]["notAfter"].year == 2049
    assert iot.describe_thing(thingName=THING)["attributes"] == {"Owner": "abcde-12345"}
    assert iot.list_things_in_thing_group(thingGroupName=GROUP)["things"] == [THING]
    assert iot.get_policy(policyName=POLICY)["defaultVersionId"] == "2"
    assert [p["policyName"] for p in iot.list_attached_policies(target=cert["certificateArn"])["policies"]] == [POLICY]
    listed = iot.list_certificates()["certificates"]
    assert [c["certificateId"] for c in listed] == [cert["certificateId"]]
    # Paginators follow nextToken/nextMarker.
    for i in range(7):
        iot.create_thing(thingName=f"extra-{i}")
    names = [t["thingName"] for page in iot.get_paginator("list_things").paginate(PaginationConfig={"PageSize": 3}) for t in page["things"]]
    assert names == sorted([THING] + [f"extra-{i}" for i in range(7)])
    by_owner = iot.list_things(attributeName="Owner", attributeValue="abcde-12345")["things"]
    assert [t["thingName"] for t in by_owner] == [THING]
    by_prefix = iot.list_things(attributeName="Owner", attributeValue="abcde", usePrefixAttributeValue=True)["things"]
    assert [t["thingName"] for t in by_prefix] == [THING]
    assert iot.list_things(thingTypeName=TYPE)["things"][0]["thingName"] == THING


def test_describe_endpoint_names_the_device_endpoint(roost):
    """The scenario's 'note your service endpoint address' step."""
    _, out, _ = roost.aws("iot", "describe-endpoint", "--endpoint-type", "iot:Data-ATS")
    assert out["endpointAddress"] == "localhost"
    rc, _, err = roost.aws("iot", "describe-endpoint", "--endpoint-type", "iot:Nope", check=False)
    assert rc != 0 and "(InvalidRequestException)" in err
