"""Every error class a client can cause, as the real aws CLI shows it, and
that a refused request changes nothing."""

import json

import pytest

from conftest import scenario_policy

THING = "iot-webinar-device"


def cli_error(roost, *args, env=None):
    rc, out, err = roost.aws(*args, check=False, env=env)
    assert rc != 0, f"expected aws {' '.join(args)} to fail, got {out}"
    return err


@pytest.fixture
def setup(roost):
    iot = roost.boto()
    iot.create_thing(thingName=THING, attributePayload={"attributes": {"Owner": "abcde-12345"}})
    cert = iot.create_keys_and_certificate(setAsActive=True)
    iot.attach_thing_principal(thingName=THING, principal=cert["certificateArn"])
    iot.create_policy(policyName="p", policyDocument=scenario_policy(1))
    iot.attach_policy(policyName="p", target=cert["certificateArn"])
    return iot, cert


def test_resource_not_found(roost, setup):
    err = cli_error(roost, "iot", "describe-thing", "--thing-name", "nope")
    assert "An error occurred (ResourceNotFoundException) when calling the DescribeThing operation: Thing nope does not exist" in err
    assert "(ResourceNotFoundException)" in cli_error(roost, "iot", "get-policy", "--policy-name", "nope")
    assert "(ResourceNotFoundException)" in cli_error(roost, "iot", "describe-certificate", "--certificate-id", "a" * 64)


def test_resource_already_exists_and_idempotent_create(roost, setup):
    iot, _ = setup
    # The same configuration again is a no-op, as in AWS.
    roost.aws("iot", "create-thing", "--thing-name", THING, "--attribute-payload", '{"attributes":{"Owner":"abcde-12345"}}')
    err = cli_error(roost, "iot", "create-thing", "--thing-name", THING, "--attribute-payload", '{"attributes":{"Owner":"x"}}')
    assert "(ResourceAlreadyExistsException)" in err
    assert iot.describe_thing(thingName=THING)["attributes"] == {"Owner": "abcde-12345"}
    assert "(ResourceAlreadyExistsException)" in cli_error(roost, "iot", "create-policy", "--policy-name", "p", "--policy-document", scenario_policy(2))
    assert iot.get_policy(policyName="p")["defaultVersionId"] == "1"


def test_invalid_request(roost, setup):
    iot, _ = setup
    err = cli_error(roost, "iot", "create-thing", "--thing-name", "bad name!")
    assert "(InvalidRequestException)" in err and "[a-zA-Z0-9:_-]+" in err
    err = cli_error(roost, "iot", "create-thing", "--thing-name", "t4", "--attribute-payload", '{"attributes":{"a":"1","b":"2","c":"3","d":"4"}}')
    assert "(InvalidRequestException)" in err and "at most 3 attributes" in err
    err = cli_error(roost, "iot", "list-things", "--max-results", "1000")
    assert "(InvalidRequestException)" in err
    err = cli_error(roost, "iot", "update-certificate", "--certificate-id", "a" * 64, "--new-status", "PENDING_TRANSFER")
    assert "(InvalidRequestException)" in err
    assert [t["thingName"] for t in iot.list_things()["things"]] == [THING]


def test_version_conflict(roost, setup):
    iot, _ = setup
    err = cli_error(roost, "iot", "update-thing", "--thing-name", THING, "--expected-version", "7", "--attribute-payload", '{"attributes":{"Owner":"x"}}')
    assert "(VersionConflictException)" in err
    thing = iot.describe_thing(thingName=THING)
    assert thing["attributes"] == {"Owner": "abcde-12345"} and thing["version"] == 1
    roost.aws("iot", "update-thing", "--thing-name", THING, "--expected-version", "1", "--attribute-payload", '{"attributes":{"Owner":"x"}}')
    assert iot.describe_thing(thingName=THING)["version"] == 2


def test_delete_conflicts(roost, setup):
    iot, cert = setup
    err = cli_error(roost, "iot", "delete-policy", "--policy-name", "p")
    assert "(DeleteConflictException)" in err and "attached" in err
    err = cli_error(roost, "iot", "delete-certificate", "--certificate-id", cert["certificateId"])
    assert "(CertificateStateException)" in err and "ACTIVE" in err
    roost.aws("iot", "update-certificate", "--certificate-id", cert["certificateId"], "--new-status", "INACTIVE")
    err = cli_error(roost, "iot", "delete-certificate", "--certificate-id", cert["certificateId"])
    assert "(DeleteConflictException)" in err  # still attached to the thing
    iot.detach_thing_principal(thingName=THING, principal=cert["certificateArn"])
    err = cli_error(roost, "iot", "delete-certificate", "--certificate-id", cert["certificateId"])
    assert "(DeleteConflictException)" in err and "forceDelete" in err  # policy still attached
    roost.aws("iot", "delete-certificate", "--certificate-id", cert["certificateId"], "--force-delete")
    assert iot.list_targets_for_policy(policyName="p")["targets"] == []
    roost.aws("iot", "delete-policy", "--policy-name", "p")


def test_certificate_state_transitions(roost, setup):
    iot, cert = setup
    cid = cert["certificateId"]
    roost.aws("iot", "update-certificate", "--certificate-id", cid, "--new-status", "INACTIVE")
    roost.aws("iot", "update-certificate", "--certificate-id", cid, "--new-status", "ACTIVE")
    roost.aws("iot", "update-certificate", "--certificate-id", cid, "--new-status", "REVOKED")
    err = cli_error(roost, "iot", "update-certificate", "--certificate-id", cid, "--new-status", "ACTIVE")
    assert "(CertificateStateException)" in err and "REVOKED" in err
    assert iot.describe_certificate(certificateId=cid)["certificateDescription"]["status"] == "REVOKED"


def test_certificate_validation(roost, tmp_path):
    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    err = cli_error(roost, "iot", "register-certificate-without-ca", "--certificate-pem", f"file://{bad}")
    assert "(CertificateValidationException)" in err
    assert roost.boto().list_certificates()["certificates"] == []


def test_malformed_policy_says_what_and_where(roost, setup):
    iot, _ = setup
    bad = json.loads(scenario_policy(1))
    bad["Statement"][1]["Effect"] = "allow"
    err = cli_error(roost, "iot", "create-policy", "--policy-name", "bad", "--policy-document", json.dumps(bad))
    assert "(MalformedPolicyException)" in err and "Statement[1]" in err and "Effect" in err
    err = cli_error(roost, "iot", "create-policy", "--policy-name", "bad", "--policy-document", "{not json")
    assert "(MalformedPolicyException)" in err
    err = cli_error(roost, "iot", "create-policy-version", "--policy-name", "p", "--policy-document", "{}")
    assert "(MalformedPolicyException)" in err
    assert [v["versionId"] for v in iot.list_policy_versions(policyName="p")["policyVersions"]] == ["1"]
    assert all(p["policyName"] != "bad" for p in iot.list_policies()["policies"])


def test_policy_versions_limit(roost, setup):
    iot, _ = setup
    for _ in range(4):
        iot.create_policy_version(policyName="p", policyDocument=scenario_policy(2))
    err = cli_error(roost, "iot", "create-policy-version", "--policy-name", "p", "--policy-document", scenario_policy(2))
    assert "(VersionsLimitExceededException)" in err
    err = cli_error(roost, "iot", "delete-policy-version", "--policy-name", "p", "--policy-version-id", "1")
    assert "(DeleteConflictException)" in err  # the default version
    roost.aws("iot", "delete-policy-version", "--policy-name", "p", "--policy-version-id", "3")
    _, out, _ = roost.aws("iot", "create-policy-version", "--policy-name", "p", "--policy-document", scenario_policy(2))
    assert out["policyVersionId"] == "6"  # ids are never reused


def test_attached_policies_limit(roost, setup):
    iot, cert = setup
    for i in range(9):
        iot.create_policy(policyName=f"extra{i}", policyDocument=scenario_policy(1))
        iot.attach_policy(policyName=f"extra{i}", target=cert["certificateArn"])
    iot.create_policy(policyName="eleventh", policyDocument=scenario_policy(1))
    err = cli_error(roost, "iot", "attach-policy", "--policy-name", "eleventh", "--target", cert["certificateArn"])
    assert "(LimitExceededException)" in err
    assert len(iot.list_attached_policies(target=cert["certificateArn"])["policies"]) == 10


def test_thing_type_lifecycle(roost_factory):
    roost = roost_factory("--thing-type-deletion-wait-secs", "1")
    iot = roost.boto()
    iot.create_thing_type(thingTypeName="tt")
    iot.create_thing(thingName="typed", thingTypeName="tt")
    err = cli_error(roost, "iot", "delete-thing-type", "--thing-type-name", "tt")
    assert "(InvalidRequestException)" in err and "deprecated" in err
    roost.aws("iot", "deprecate-thing-type", "--thing-type-name", "tt")
    err = cli_error(roost, "iot", "create-thing", "--thing-name", "new", "--thing-type-name", "tt")
    assert "(InvalidRequestException)" in err and "deprecated" in err
    import time
    time.sleep(1.2)
    err = cli_error(roost, "iot", "delete-thing-type", "--thing-type-name", "tt")
    assert "(InvalidRequestException)" in err and "still use it" in err
    iot.delete_thing(thingName="typed")
    roost.aws("iot", "delete-thing-type", "--thing-type-name", "tt")
    assert "(ResourceNotFoundException)" in cli_error(roost, "iot", "describe-thing-type", "--thing-type-name", "tt")


def test_thing_type_deletion_waits_after_deprecation(roost):
    iot = roost.boto()
    iot.create_thing_type(thingTypeName="tt")
    iot.deprecate_thing_type(thingTypeName="tt")
    err = cli_error(roost, "iot", "delete-thing-type", "--thing-type-name", "tt")
    assert "(InvalidRequestException)" in err and "too recently" in err
    iot.deprecate_thing_type(thingTypeName="tt", undoDeprecate=True)
    assert iot.describe_thing_type(thingTypeName="tt")["thingTypeMetadata"]["deprecated"] is False


def test_wrong_secret_key_is_refused(roost):
    key, _ = roost.credentials()
    env = roost.aws_env(AWS_ACCESS_KEY_ID=key, AWS_SECRET_ACCESS_KEY="wrong" * 8, AWS_PROFILE="", AWS_DEFAULT_REGION="us-east-1")
    env.pop("AWS_PROFILE")
    env.pop("AWS_SHARED_CREDENTIALS_FILE")
    endpoint = ["--endpoint-url", roost.api_url]
    err = cli_error(roost, "iot", "create-thing", "--thing-name", "sneaky", *endpoint, env=env)
    assert "(InvalidSignatureException)" in err
    env["AWS_ACCESS_KEY_ID"] = "AKIANOTAKEY000000000"
    err = cli_error(roost, "iot", "create-thing", "--thing-name", "sneaky", *endpoint, env=env)
    assert "(UnrecognizedClientException)" in err
    assert roost.boto().list_things()["things"] == []


def test_unsigned_and_malformed_requests(roost):
    import urllib.request
    import urllib.error

    def send(method, path, body=None, headers=None):
        req = urllib.request.Request(roost.api_url + path, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    status, headers, body = send("POST", "/things/unsigned", b"{}")
    assert status == 403 and headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
    assert headers["x-amzn-RequestId"]
    status, headers, _ = send("POST", "/things/unsigned", b"{}", {"Authorization": "AWS4-HMAC-SHA256 garbage"})
    assert status == 403 and headers["x-amzn-ErrorType"] == "IncompleteSignatureException"
    status, _, _ = send("POST", "/things/big", b"x" * (2 * 1024 * 1024))
    assert status == 413
    # The CA certificate is public.
    status, _, body = send("GET", "/root-ca.pem")
    assert status == 200 and b"BEGIN CERTIFICATE" in body
    assert roost.boto().list_things()["things"] == []


def test_malformed_bodies_from_a_signed_client(roost):
    """Signed with botocore by hand, so the body can be anything."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    import urllib.request
    import urllib.error

    key, secret = roost.credentials()

    def signed(method, path, body):
        req = AWSRequest(method=method, url=roost.api_url + path, data=body, headers={"Content-Type": "application/json"})
        SigV4Auth(Credentials(key, secret), "iot", "us-east-1").add_auth(req)
        prepared = req.prepare()
        r = urllib.request.Request(prepared.url, data=body, method=method, headers=dict(prepared.headers))
        try:
            with urllib.request.urlopen(r) as resp:
                return resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    status, headers, body = signed("POST", "/things/t1", b"{not json")
    assert status == 400 and headers["x-amzn-ErrorType"] == "SerializationException", body
    status, headers, body = signed("POST", "/things/t1", b'{"attributePayload": {"attributes": {"a": 5}}}')
    assert status == 400 and headers["x-amzn-ErrorType"] == "InvalidRequestException"
    assert b"attributePayload.attributes.a" in body, body
    status, headers, body = signed("POST", "/things/t1", b'{"thingTypeName": 7}')
    assert status == 400 and b"thingTypeName" in body
    # SigV4 signs the normalised path: dot segments must not reach the router.
    status, headers, body = signed("POST", "/things/victim/../t1", b"{}")
    assert status in (400, 403) and roost.boto().list_things()["things"] == [], body
    status, headers, body = signed("POST", "/no/such/route", b"{}")
    assert status == 404 and headers["x-amzn-ErrorType"] == "UnknownOperationException"
    assert roost.boto().list_things()["things"] == []
