"""The rules engine: the scenario's rule with the real aws CLI, actions,
the error action, the checks Roost adds at rule creation, and volume."""

import base64
import json
import os
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from conftest import ACCOUNT, REGION, Roost, make_device, scenario_policy
from mqtt_helpers import Inbox, close, paho_connect, subscribe_wait, wait_until

THING = "iot-webinar-device"
AUDIT = {"message": "intrusion attempt", "source_ip": "203.0.113.7", "port": 3389, "service": "rdp"}


def objects(roost, bucket):
    root = roost.data_dir / "objects" / bucket
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")) if root.exists() else []


@pytest.fixture
def scenario_device(roost, tmp_path):
    iot = roost.boto()
    iot.create_policy(policyName="iot-webinar-policy", policyDocument=scenario_policy(2))
    dev = make_device(roost, tmp_path, THING, policy=None, attributes={"Owner": "abcde-12345"})
    iot.attach_policy(policyName="iot-webinar-policy", target=dev.cert_arn)
    return dev


def publish(dev, port, topic, payloads, qos=1, client_id=None):
    client = dev.paho(client_id or dev.thing)
    assert paho_connect(client, port)["rc"] == 0
    for p in payloads:
        client.publish(topic, p, qos=qos).wait_for_publish(30)
    close(client)


def test_scenario_rule_stores_every_audit_with_the_aws_cli(roost, scenario_device, tmp_path):
    payload = {
        "sql": "SELECT * FROM 'abcde-12345/+/audit'",
        "actions": [{"s3": {"bucketName": "iot-webinar-audits", "key": "${topic()}/${timestamp()}",
                             "roleArn": f"arn:aws:iam::{ACCOUNT}:role/iot-webinar-s3-role"}}],
        "ruleDisabled": False,
    }
    f = tmp_path / "rule.json"
    f.write_text(json.dumps(payload))
    roost.aws("iot", "create-topic-rule", "--rule-name", "IotWebinarRule", "--topic-rule-payload", f"file://{f}")
    _, rule, _ = roost.aws("iot", "get-topic-rule", "--rule-name", "IotWebinarRule")
    assert rule["rule"]["sql"] == payload["sql"] and rule["ruleArn"].endswith(":rule/IotWebinarRule")
    before = int(time.time() * 1000)
    publish(scenario_device, roost.mqtt_port, f"abcde-12345/{THING}/audit", [json.dumps(AUDIT)])
    assert wait_until(lambda: len(objects(roost, "iot-webinar-audits")) == 1, 10)
    [obj] = objects(roost, "iot-webinar-audits")
    rel = obj.relative_to(roost.data_dir / "objects" / "iot-webinar-audits")
    assert str(rel.parent) == f"abcde-12345/{THING}/audit"
    assert before <= int(rel.name) <= int(time.time() * 1000)
    assert json.loads(obj.read_text()) == AUDIT
    # Roost warns where AWS is silent: a timestamp-only key can overwrite.
    assert "unique only per millisecond" in roost.read_log()


def test_rule_crud_with_boto3(roost):
    iot = roost.boto()
    payload = {"sql": "SELECT temp FROM 'sensors/+'", "actions": [], "awsIotSqlVersion": "2016-03-23"}
    iot.create_topic_rule(ruleName="r1", topicRulePayload=payload)
    with pytest.raises(iot.exceptions.ResourceAlreadyExistsException):
        iot.create_topic_rule(ruleName="r1", topicRulePayload=payload)
    listed = iot.list_topic_rules()["rules"]
    assert [(r["ruleName"], r["topicPattern"], r["ruleDisabled"]) for r in listed] == [("r1", "sensors/+", False)]
    iot.disable_topic_rule(ruleName="r1")
    assert iot.get_topic_rule(ruleName="r1")["rule"]["ruleDisabled"] is True
    assert iot.list_topic_rules(ruleDisabled=False)["rules"] == []
    iot.enable_topic_rule(ruleName="r1")
    iot.replace_topic_rule(ruleName="r1", topicRulePayload={**payload, "sql": "SELECT * FROM 'other/#'"})
    assert iot.get_topic_rule(ruleName="r1")["rule"]["sql"] == "SELECT * FROM 'other/#'"
    assert iot.list_topic_rules(topic="other/#")["rules"][0]["ruleName"] == "r1"
    iot.delete_topic_rule(ruleName="r1")
    assert iot.list_topic_rules()["rules"] == []


def test_rule_creation_errors(roost):
    bad = {"sql": "SELECT * FROM 'a/b' WHERE", "actions": []}
    rc, _, err = roost.aws("iot", "create-topic-rule", "--rule-name", "bad", "--topic-rule-payload", json.dumps(bad), check=False)
    assert rc != 0 and "(SqlParseException)" in err and "column" in err, err
    bad_name = {"sql": "SELECT * FROM 'a/b'", "actions": []}
    rc, _, err = roost.aws("iot", "create-topic-rule", "--rule-name", "bad-name", "--topic-rule-payload", json.dumps(bad_name), check=False)
    assert rc != 0 and "(InvalidRequestException)" in err
    lambda_rule = {"sql": "SELECT * FROM 'a/b'", "actions": [{"lambda": {"functionArn": "arn:aws:lambda:us-east-1:1:function:f"}}]}
    rc, _, err = roost.aws("iot", "create-topic-rule", "--rule-name", "lam", "--topic-rule-payload", json.dumps(lambda_rule), check=False)
    assert rc != 0 and "not supported by Roost" in err
    assert roost.boto().list_topic_rules()["rules"] == []


def test_bonus_rule_warns_that_its_from_can_never_match(roost, scenario_device):
    payload = {"sql": "SELECT message as msg, topic(1) as tenant_id FROM '+/audit'",
               "actions": [{"republish": {"topic": "bonus/out", "roleArn": "arn:aws:iam::0:role/r"}}]}
    roost.boto().create_topic_rule(ruleName="BonusRule", topicRulePayload=payload)
    assert "matches no topic that an attached policy lets a device publish to" in roost.read_log()
    # It works as written for a two-level topic (published by the service).
    watcher = make_device(roost, scenario_device.dir.parent, "bonus-watcher")
    client = watcher.paho("bonus-watcher")
    inbox = Inbox()
    client.on_message = lambda c, u, m: inbox.put(m.topic, m.payload)
    paho_connect(client, roost.mqtt_port)
    subscribe_wait(client, "bonus/out")
    roost.boto("iot-data").publish(topic="abcde-12345/audit", payload=json.dumps(AUDIT).encode(), qos=1)
    [(topic, body, _, _)] = inbox.take(1)
    assert json.loads(body) == {"msg": "intrusion attempt", "tenant_id": "abcde-12345"}
    close(client)


def test_scenario_rule_gets_no_unreachable_from_warning(roost, scenario_device, tmp_path):
    """The scenario's own rule: its FROM has a literal tenant where the policy
    has ${iot:Connection.Thing.Attributes[Owner]}, and devices do publish
    there, so Roost must not say no device can."""
    payload = {
        "sql": "SELECT * FROM 'abcde-12345/+/audit'",
        "actions": [{"s3": {"bucketName": "iot-webinar-audits", "key": "${topic()}/${timestamp()}-${newuuid()}",
                             "roleArn": f"arn:aws:iam::{ACCOUNT}:role/iot-webinar-s3-role"}}],
    }
    f = tmp_path / "rule.json"
    f.write_text(json.dumps(payload))
    roost.aws("iot", "create-topic-rule", "--rule-name", "IotWebinarRule", "--topic-rule-payload", f"file://{f}")
    # The check ran and is live: the bonus rule, created next, is still warned
    # about, and that warning is the only one of its kind in the log.
    bonus = {"sql": "SELECT message as msg, topic(1) as tenant_id FROM '+/audit'", "actions": []}
    roost.aws("iot", "create-topic-rule", "--rule-name", "BonusRule", "--topic-rule-payload", json.dumps(bonus))
    assert wait_until(lambda: "FROM '+/audit' matches no topic" in roost.read_log(), 5)
    warned = [line for line in roost.read_log().splitlines() if "matches no topic" in line]
    assert len(warned) == 1 and "BonusRule" in warned[0], warned
    # And devices do reach the scenario rule.
    publish(scenario_device, roost.mqtt_port, f"abcde-12345/{THING}/audit", [json.dumps(AUDIT)])
    assert wait_until(lambda: len(objects(roost, "iot-webinar-audits")) == 1, 10)


def file_modes(root):
    """{path relative to root: mode & 0o777} of root and everything below it."""
    return {str(p.relative_to(root.parent)): p.stat().st_mode & 0o777 for p in [root, *root.rglob("*")]}


def test_rule_outputs_are_private_to_roosts_user(tmp_path):
    """Objects, log events and the error action's copies of payloads are the
    devices' data: 0600 files in 0700 folders, whatever the umask lets through."""
    old = os.umask(0o022)  # the usual umask, which left them world-readable
    try:
        roost = Roost(tmp_path / "data").start()
    finally:
        os.umask(old)
    try:
        dev = make_device(roost, tmp_path, "modes-device")
        role = "arn:aws:iam::0:role/r"
        roost.boto().create_topic_rule(ruleName="modes_rule", topicRulePayload={
            "sql": "SELECT * FROM 'modes/+'",
            "actions": [
                {"s3": {"bucketName": "modes-objects", "key": "${topic()}/deep/${newuuid()}", "roleArn": role}},
                {"cloudwatchLogs": {"logGroupName": "/roost/modes", "roleArn": role}},
            ],
        })
        # Every try of this action is refused (nothing listens on port 9), so
        # the error action stores its copy of the payload.
        roost.boto().create_topic_rule(ruleName="modes_failing_rule", topicRulePayload={
            "sql": "SELECT * FROM 'modes/+'",
            "actions": [{"http": {"url": "http://127.0.0.1:9/"}}],
            "errorAction": {"s3": {"bucketName": "modes-errors", "key": "errors/${newuuid()}", "roleArn": role}},
        })
        publish(dev, roost.mqtt_port, "modes/a", [b'{"secret": 1}'], client_id="modes-device")
        assert wait_until(lambda: objects(roost, "modes-objects") and objects(roost, "modes-errors"), 15)
        logs = roost.data_dir / "logs"
        assert wait_until(lambda: logs.exists() and any(logs.iterdir()), 5)
        [error_copy] = objects(roost, "modes-errors")
        assert base64.b64decode(json.loads(error_copy.read_text())["base64OriginalPayload"]) == b'{"secret": 1}'
        modes = {**file_modes(roost.data_dir / "objects"), **file_modes(logs)}
        files = {p for p in modes if (roost.data_dir / p).is_file()}
        assert {"objects/modes-objects", "objects/modes-objects/modes/a/deep", "objects/modes-errors/errors", "logs"} <= set(modes)
        # The event log (0600 in its 0700 folder too) is beside the log group's file.
        assert {"logs/roost_modes.log", "logs/AWSIotLogsV2/events.log"} <= files and len(files) == 4, files
        wrong = {p: oct(m) for p, m in modes.items() if m != (0o600 if p in files else 0o700)}
        assert not wrong, wrong
    finally:
        roost.stop()


def test_error_action_receives_failures_and_the_rule_recovers(roost, tmp_path):
    dev = make_device(roost, tmp_path, "err-device")
    payload = {
        "sql": "SELECT * FROM 'store/+'",
        "actions": [{"s3": {"bucketName": "fragile", "key": "${topic()}/${newuuid()}", "roleArn": "arn:aws:iam::0:role/r"}}],
        "errorAction": {"republish": {"topic": "errors/store", "qos": 1, "roleArn": "arn:aws:iam::0:role/r"}},
    }
    roost.boto().create_topic_rule(ruleName="fragile_rule", topicRulePayload=payload)
    watcher = dev.paho("error-watcher")
    inbox = Inbox()
    watcher.on_message = lambda c, u, m: inbox.put(m.topic, m.payload)
    paho_connect(watcher, roost.mqtt_port)
    subscribe_wait(watcher, "errors/#")
    # Make the store unwritable: the bucket's folder is a file.
    objects_dir = roost.data_dir / "objects"
    objects_dir.mkdir(parents=True, exist_ok=True)
    (objects_dir / "fragile").write_text("not a folder")
    publish(dev, roost.mqtt_port, "store/a", [b'{"n": 1}'], client_id="err-device")
    [(topic, body, _, _)] = inbox.take(1, timeout=15)
    error = json.loads(body)
    assert topic == "errors/store"
    assert error["ruleName"] == "fragile_rule" and error["topic"] == "store/a" and error["clientId"] == "err-device"
    assert base64.b64decode(error["base64OriginalPayload"]) == b'{"n": 1}'
    assert error["failures"][0]["failedAction"] == "S3Action" and error["failures"][0]["failedResource"] == "fragile"
    # Writable again: later messages flow.
    (objects_dir / "fragile").unlink()
    publish(dev, roost.mqtt_port, "store/b", [b'{"n": 2}'], client_id="err-device")
    assert wait_until(lambda: len(objects(roost, "fragile")) == 1, 10)
    assert inbox.empty_for(0.5)
    close(watcher)


def test_ten_thousand_messages_none_lost(roost, tmp_path):
    dev = make_device(roost, tmp_path, "volume-device")
    payload = {"sql": "SELECT * FROM 'volume/+'",
               "actions": [{"s3": {"bucketName": "volume", "key": "${topic()}/${timestamp()}-${newuuid()}", "roleArn": "arn:aws:iam::0:role/r"}}]}
    roost.boto().create_topic_rule(ruleName="volume_rule", topicRulePayload=payload)
    client = dev.paho("volume-device")
    client.max_inflight_messages_set(100)
    paho_connect(client, roost.mqtt_port)
    infos = [client.publish("volume/m", json.dumps({"i": i}).encode(), qos=1) for i in range(10_000)]
    for info in infos:
        info.wait_for_publish(60)
    close(client)
    assert wait_until(lambda: len(objects(roost, "volume")) >= 10_000, 120, interval=0.5)
    seen = sorted(json.loads(p.read_text())["i"] for p in objects(roost, "volume"))
    assert seen == list(range(10_000))


def test_basic_ingest_reaches_only_the_rule(roost, tmp_path):
    dev = make_device(roost, tmp_path, "ingest-device")
    payload = {"sql": "SELECT * FROM 'ingest/+'",
               "actions": [{"s3": {"bucketName": "ingest", "key": "${topic()}", "roleArn": "arn:aws:iam::0:role/r"}}]}
    roost.boto().create_topic_rule(ruleName="ingest_rule", topicRulePayload=payload)
    watcher = dev.paho("ingest-watcher")
    inbox = Inbox()
    watcher.on_message = lambda c, u, m: inbox.put(m.topic, m.payload)
    paho_connect(watcher, roost.mqtt_port)
    subscribe_wait(watcher, "#")
    publish(dev, roost.mqtt_port, "$aws/rules/ingest_rule/ingest/x", [b"cheap"], client_id="ingest-pub")
    assert wait_until(lambda: len(objects(roost, "ingest")) == 1, 10)
    assert objects(roost, "ingest")[0].relative_to(roost.data_dir / "objects" / "ingest").as_posix() == "ingest/x"
    assert inbox.empty_for(0.5)
    close(watcher)


def test_the_scenario_rule_writing_to_an_s3_compatible_store(roost_factory, tmp_path, moto_s3):
    import boto3
    s3 = boto3.client("s3", endpoint_url=moto_s3, region_name="us-east-1", aws_access_key_id="moto", aws_secret_access_key="moto")
    s3.create_bucket(Bucket="iot-webinar-audits")
    secret = "roost-test-s3-secret-value"
    roost = roost_factory("--s3-endpoint", moto_s3, "--s3-access-key-id", "moto", "--s3-secret-access-key", secret)
    dev = make_device(roost, tmp_path, "s3-device")
    payload = {"sql": "SELECT * FROM 'abcde-12345/+/audit'",
               "actions": [{"s3": {"bucketName": "iot-webinar-audits", "key": "${topic()}/${timestamp()}", "roleArn": "arn:aws:iam::0:role/r"}}]}
    roost.boto().create_topic_rule(ruleName="IotWebinarRule", topicRulePayload=payload)
    publish(dev, roost.mqtt_port, "abcde-12345/s3-device/audit", [json.dumps(AUDIT)], client_id="s3-device")

    def stored():
        return s3.list_objects_v2(Bucket="iot-webinar-audits").get("Contents", [])

    assert wait_until(lambda: len(stored()) == 1, 15)
    [obj] = stored()
    assert obj["Key"].startswith("abcde-12345/s3-device/audit/")
    body = s3.get_object(Bucket="iot-webinar-audits", Key=obj["Key"])["Body"].read()
    assert json.loads(body) == AUDIT
    assert secret not in roost.read_log()


def test_republish_sets_mqtt5_headers_from_templates(roost, tmp_path):
    from paho.mqtt.properties import Properties  # noqa: F401  (the client returns them)

    dev = make_device(roost, tmp_path, "headers-device")
    payload = {
        "sql": "SELECT reading FROM 'plant/+/temp'",
        "awsIotSqlVersion": "2016-03-23",
        "actions": [{"republish": {
            "topic": "alerts/${topic(2)}", "qos": 1, "roleArn": "arn:aws:iam::0:role/r",
            "headers": {
                "contentType": "application/json",
                "responseTopic": "replies/${topic(2)}",
                "correlationData": "${encode('id-' + topic(2), 'base64')}",
                "messageExpiry": "120",
                "payloadFormatIndicator": "UTF8_DATA",
                "userProperties": [{"key": "plant", "value": "${topic(2)}"}],
            },
        }}],
    }
    roost.boto().create_topic_rule(ruleName="headers_rule", topicRulePayload=payload)
    client = dev.paho("headers-watcher", protocol=mqtt.MQTTv5)
    inbox = Inbox()
    client.on_message = lambda c, u, m: inbox.q.put(m)
    paho_connect(client, roost.mqtt_port)
    subscribe_wait(client, "alerts/#")
    roost.boto("iot-data").publish(topic="plant/p7/temp", payload=b'{"reading": 81}', qos=1)
    m = inbox.get()
    p = m.properties
    assert m.topic == "alerts/p7" and json.loads(m.payload) == {"reading": 81}
    assert p.ContentType == "application/json" and p.ResponseTopic == "replies/p7"
    assert p.CorrelationData == b"id-p7" and p.PayloadFormatIndicator == 1
    assert 0 < p.MessageExpiryInterval <= 120 and p.UserProperty == [("plant", "p7")]
    close(client)
    bad = {**payload, "actions": [{"republish": {"topic": "x", "roleArn": "r", "headers": {"contentType": "${topic(}"}}}]}
    rc, _, err = roost.aws("iot", "create-topic-rule", "--rule-name", "bad_headers", "--topic-rule-payload", json.dumps(bad), check=False)
    assert rc != 0 and "(InvalidRequestException)" in err and "contentType" in err, err


def test_accountid_is_the_account_roost_runs_as(roost_factory, tmp_path):
    roost = roost_factory("--account", "123456789012")
    dev = make_device(roost, tmp_path, "account-device")
    roost.boto().create_topic_rule(ruleName="whose", topicRulePayload={
        "sql": "SELECT accountid() AS account FROM 'who/am/i'",
        "awsIotSqlVersion": "2016-03-23",
        "actions": [{"republish": {"topic": "who/answer", "qos": 1, "roleArn": "arn:aws:iam::0:role/r"}}],
    })
    client = dev.paho("account-watcher")
    inbox = Inbox()
    client.on_message = lambda c, u, m: inbox.put(m.topic, m.payload)
    paho_connect(client, roost.mqtt_port)
    subscribe_wait(client, "who/answer")
    roost.boto("iot-data").publish(topic="who/am/i", payload=b"{}", qos=1)
    topic, payload, _, _ = inbox.get()
    assert json.loads(payload) == {"account": "123456789012"}
    close(client)


def test_rule_warnings_are_shown_by_roost_rules_check_and_sql_with_typographic_quotes_is_named(roost):
    """CreateTopicRule's warnings reach the person who made the rule
    (`roost rules check`), and the scenario's SQL pasted with typographic
    quotes gets an error that says what to retype."""
    iot = roost.boto()
    iot.create_topic_rule(ruleName="IotWebinarRule", topicRulePayload={
        "sql": "SELECT * FROM 'abcde-12345/+/audit'",
        "actions": [{"s3": {"bucketName": "iot-webinar-audits", "key": "${topic()}/${timestamp()}",
                            "roleArn": "arn:aws:iam::000000000000:role/r"}}]})
    out = roost.roost("rules", "check", "--data-dir", str(roost.data_dir)).stdout
    assert "rule IotWebinarRule: warning: actions[0].s3.key" in out and "unique only per millisecond" in out, out
    try:
        iot.create_topic_rule(ruleName="Pasted", topicRulePayload={
            "sql": "SELECT * FROM \u2018abcde-12345/+/audit\u2019", "actions": []})
        raise AssertionError("typographic quotes were accepted")
    except iot.exceptions.SqlParseException as e:
        assert "straight single quote" in str(e), e
