"""`roost apply`, `plan` and `destroy` with the scenario's deployment file
(examples/iot-webinar.toml): apply creates the whole scenario (the device
connects with the certificate it wrote and its audit lands in the bucket),
a second apply changes nothing, plan shows exactly a change, destroy
leaves every resource kind empty, and a broken file is refused with its
line before anything changes."""

import json
import shutil
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from mqtt_helpers import close, paho_connect, wait_until

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "iot-webinar.toml"


@pytest.fixture
def roost(roost_factory):
    # Thing types may be deleted one second after their deprecation
    # (AWS: five minutes), so that destroy runs at test speed.
    return roost_factory("--thing-type-deletion-wait-secs", "1")


def run(roost, *args, check=True):
    return roost.roost(*args, "--data-dir", str(roost.data_dir), check=check)


def everything(roost):
    """Every resource of every kind the file describes, by kind."""
    iot = roost.boto()
    sns = roost.boto("sns")
    return {
        "thing types": [t["thingTypeName"] for t in iot.list_thing_types()["thingTypes"]],
        "thing groups": [g["groupName"] for g in iot.list_thing_groups()["thingGroups"]],
        "things": [t["thingName"] for t in iot.list_things()["things"]],
        "certificates": [c["certificateId"] for c in iot.list_certificates()["certificates"]],
        "policies": [p["policyName"] for p in iot.list_policies()["policies"]],
        "rules": [r["ruleName"] for r in iot.list_topic_rules()["rules"]],
        "jobs": [j["jobId"] for j in iot.list_jobs()["jobs"]],
        "topics": [t["TopicArn"] for t in sns.list_topics()["Topics"]],
    }


def test_the_scenario_applied_reapplied_planned_and_destroyed(roost, tmp_path):
    deployment = tmp_path / "iot-webinar.toml"
    shutil.copy(EXAMPLE, deployment)
    out = run(roost, "apply", "-f", str(deployment)).stdout
    assert "applied 11 changes" in out, out

    # The device connects with the certificate apply wrote, and its audit
    # goes through the policy and the rule into the bucket.
    certs = tmp_path / "certificates" / "iot-webinar-device"
    assert (certs / "private.pem.key").stat().st_mode & 0o777 == 0o600
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="iot-webinar-device")
    client.tls_set(ca_certs=str(certs / "root-ca.pem"), certfile=str(certs / "certificate.pem.crt"),
                   keyfile=str(certs / "private.pem.key"))
    assert paho_connect(client, roost.mqtt_port)["rc"] == 0
    client.publish("abcde-12345/iot-webinar-device/audit", json.dumps({"message": "hello"}), qos=1).wait_for_publish(10)
    close(client)
    bucket = roost.data_dir / "objects" / "iot-webinar-audits"
    assert wait_until(lambda: bucket.exists() and any(p.is_file() for p in bucket.rglob("*")), 10)
    iot = roost.boto()
    thing = iot.describe_thing(thingName="iot-webinar-device")
    assert thing["thingTypeName"] == "iot-webinar-type" and thing["attributes"] == {"Owner": "abcde-12345"}
    assert iot.list_targets_for_policy(policyName="iot-webinar-policy")["targets"]
    assert iot.describe_job(jobId="local-scan-job-01")["job"]["targets"][0].endswith(":thinggroup/iot-webinar-group")

    # Again: nothing to do.
    assert run(roost, "apply", "-f", str(deployment)).stdout.strip() == "no changes"

    # A change in the file: plan shows exactly it, and changes nothing.
    iot.create_thing(thingName="someone-elses-thing")
    deployment.write_text(deployment.read_text().replace('Owner = "abcde-12345"', 'Owner = "fghij-67890"'))
    plan = run(roost, "plan", "-f", str(deployment)).stdout.splitlines()
    assert plan[0] == '~ thing iot-webinar-device: type Some("iot-webinar-type"), attributes {"Owner": "fghij-67890"}'
    assert [l for l in plan if l.startswith(("+", "-", "~", "!"))] == plan[:1], plan
    assert "  thing someone-elses-thing" in plan
    assert iot.describe_thing(thingName="iot-webinar-device")["attributes"] == {"Owner": "abcde-12345"}
    out = run(roost, "apply", "-f", str(deployment)).stdout
    assert "applied 1 changes" in out
    assert iot.describe_thing(thingName="iot-webinar-device")["attributes"] == {"Owner": "fghij-67890"}

    # Destroy: exactly what the file describes, nothing left of it.
    out = run(roost, "destroy", "-f", str(deployment)).stdout
    assert "- thing type iot-webinar-type" in out, out
    left = everything(roost)
    assert left == {"thing types": [], "thing groups": [], "things": ["someone-elses-thing"], "certificates": [],
                    "policies": [], "rules": [], "jobs": [], "topics": []}, left
    assert run(roost, "destroy", "-f", str(deployment)).stdout.strip() == "nothing to destroy"


def test_a_broken_file_is_refused_with_its_line_and_changes_nothing(roost, tmp_path):
    deployment = tmp_path / "broken.toml"
    text = EXAMPLE.read_text()
    lines = text.splitlines()
    at = next(i for i, l in enumerate(lines) if l.startswith('name = "iot-webinar-device"'))
    lines.insert(at + 1, 'colour = "red"')
    deployment.write_text("\n".join(lines) + "\n")
    before = everything(roost)
    for command in ("apply", "plan", "destroy"):
        proc = run(roost, command, "-f", str(deployment), check=False)
        assert proc.returncode != 0
        assert f"{deployment}:{at + 2}: thing[0].colour: unknown field `colour`" in proc.stderr, proc.stderr
    assert everything(roost) == before

    # A policy document that is not JSON, named with its line.
    deployment.write_text(text.replace('"Version": "2012-10-17",', '"Version": "2012-10-17",,', 1))
    proc = run(roost, "apply", "-f", str(deployment), check=False)
    assert proc.returncode != 0 and "policy[0].document: not JSON" in proc.stderr, proc.stderr
    assert everything(roost) == before


def test_a_job_whose_document_changed_is_a_conflict_and_apply_changes_nothing(roost, tmp_path):
    deployment = tmp_path / "iot-webinar.toml"
    shutil.copy(EXAMPLE, deployment)
    run(roost, "apply", "-f", str(deployment))
    deployment.write_text(deployment.read_text().replace('{"operation": "localScan"}', '{"operation": "reboot"}'))
    deployment.write_text(deployment.read_text().replace('Owner = "abcde-12345"', 'Owner = "other"'))
    proc = run(roost, "apply", "-f", str(deployment), check=False)
    assert proc.returncode != 0 and "job local-scan-job-01" in proc.stderr and "nothing changed" in proc.stderr
    assert roost.boto().describe_thing(thingName="iot-webinar-device")["attributes"] == {"Owner": "abcde-12345"}


def test_the_json_schema_in_docs_accepts_the_example_and_refuses_what_roost_refuses(tmp_path):
    """Editors complete deployment files with docs/deployment.schema.json:
    it accepts the scenario's file and refuses an unknown field, as roost
    does."""
    import tomllib

    import jsonschema

    schema = json.loads((EXAMPLE.parents[1] / "docs" / "deployment.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    example = tomllib.loads(EXAMPLE.read_text())
    jsonschema.validate(example, schema)
    example["thing"][0]["colour"] = "red"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(example, schema)
