"""Event logs (AWSIotLogsV2 records under the data directory), read with
`roost logs` and configured with the real aws CLI and boto3: why a device
was refused, what a policy denied and which rule action failed are there
with their reason; DEBUG for one client id shows that client's payloads and
no one else's; the settings survive a restart; bad input gets AWS's error
and changes nothing."""

import json
import queue
import subprocess
import threading

import botocore.exceptions
import pytest

from conftest import ALLOW_ALL, make_device, roost_binary
from mqtt_helpers import close, connect_with_inbox, mosquitto, paho_connect, subscribe_wait, wait_until

RESTRICTED = json.dumps({
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"},
        {"Effect": "Allow", "Action": "iot:Publish", "Resource": "arn:aws:iot:us-east-1:000000000000:topic/allowed/*"},
    ],
})


def events(roost, *args):
    """`roost logs --json` with `args`: the events as dicts."""
    proc = roost.roost("logs", "--data-dir", str(roost.data_dir), "--json", *args)
    return [json.loads(line) for line in proc.stdout.splitlines()]


def readable(roost, *args):
    return roost.roost("logs", "--data-dir", str(roost.data_dir), *args).stdout


def wait_for_event(roost, predicate, *args, timeout=15):
    found = []

    def look():
        found[:] = [e for e in events(roost, *args) if predicate(e)]
        return bool(found)

    assert wait_until(look, timeout, interval=0.2), f"no such event in {events(roost)}"
    return found


def test_refusals_denials_and_failed_actions_are_logged_with_their_reason(roost, tmp_path):
    # A revoked certificate is refused before CONNECT.
    revoked = make_device(roost, tmp_path, "revoked-dev")
    roost.boto().update_certificate(certificateId=revoked.cert_id, newStatus="REVOKED")
    assert mosquitto(revoked, roost.mqtt_port, "-i", "revoked-dev", "-t", "allowed/a", "-m", "x").returncode != 0
    # A publish outside the device's policy: MQTT 3.1.1 closes the connection.
    limited = make_device(roost, tmp_path, "limited-dev", policy=RESTRICTED)
    mosquitto(limited, roost.mqtt_port, "-i", "limited-dev", "-q", "1", "-t", "secret/x", "-m", "s3cr3t-payload")
    # A rule whose s3 action cannot write: the bucket's folder is a file.
    roost.boto().create_topic_rule(ruleName="fragile_rule", topicRulePayload={
        "sql": "SELECT * FROM 'allowed/+'",
        "actions": [{"s3": {"bucketName": "fragile", "key": "${newuuid()}", "roleArn": "arn:aws:iam::0:role/r"}}],
    })
    (roost.data_dir / "objects").mkdir(parents=True, exist_ok=True)
    (roost.data_dir / "objects" / "fragile").write_text("not a folder")
    assert mosquitto(limited, roost.mqtt_port, "-i", "limited-dev", "-q", "1", "-t", "allowed/b", "-m", "{}").returncode == 0

    [refused] = wait_for_event(roost, lambda e: e["eventType"] == "Connect" and e["status"] == "Failure")
    assert refused["logLevel"] == "ERROR"
    assert refused["reason"] == "AUTHENTICATION_FAILURE"
    assert "REVOKED" in refused["details"]
    assert refused["principalId"] == revoked.cert_id
    assert refused["sourceIp"] == "127.0.0.1" and refused["accountId"] == "000000000000"

    [denied] = wait_for_event(roost, lambda e: e["eventType"] == "Publish-In")
    assert denied["status"] == "Failure" and denied["clientId"] == "limited-dev"
    assert denied["topicName"] == "secret/x" and denied["reason"] == "AUTHORIZATION_FAILURE"

    [failed] = wait_for_event(roost, lambda e: e["eventType"] == "RuleExecution", timeout=30)
    assert failed["status"] == "Failure" and failed["reason"] == "S3Action failed"
    assert "fragile_rule" in failed["details"] and failed["clientId"] == "limited-dev"

    # At the default level (ERROR) no payload and no success is written.
    text = "\n".join(p.read_text() for p in (roost.data_dir / "logs" / "AWSIotLogsV2").iterdir())
    assert "s3cr3t-payload" not in text
    assert all(e["status"] == "Failure" for e in events(roost))
    # The readable form says the same, one line per event.
    lines = readable(roost, "--event-type", "connect").splitlines()
    assert len(lines) == 1 and "ERROR Connect Failure" in lines[0] and "reason=AUTHENTICATION_FAILURE" in lines[0]
    assert readable(roost, "--client-id", "limited-dev", "--event-type", "Publish-In").count("reason=AUTHORIZATION_FAILURE") == 1
    assert events(roost, "--since", "1d") == events(roost)
    # Nothing was dropped on the way to the file.
    assert roost.metric("roost_event_log_dropped_total") == 0
    assert roost.metric("roost_event_log_events_total") >= 3


def test_debug_for_one_client_id_shows_its_publishes_and_no_one_elses(roost, tmp_path):
    device = make_device(roost, tmp_path, "loud", policy=ALLOW_ALL)
    roost.aws("iot", "set-v2-logging-level", "--log-target", "targetType=CLIENT_ID,targetName=loud", "--log-level", "DEBUG")
    # The quiet client publishes first: the writer keeps the order, so once
    # the loud client's events are there, the quiet one's would be too.
    assert mosquitto(device, roost.mqtt_port, "-i", "quiet", "-q", "1", "-t", "data/q", "-m", '{"who":"quiet"}').returncode == 0
    assert mosquitto(device, roost.mqtt_port, "-i", "loud", "-q", "1", "-t", "data/l", "-m", '{"who":"loud"}').returncode == 0
    [published] = wait_for_event(roost, lambda e: e["eventType"] == "Publish-In", "--client-id", "loud")
    assert published["logLevel"] == "INFO" and published["status"] == "Success"
    assert published["topicName"] == "data/l" and published["payload"] == '{"who":"loud"}'
    assert "quiet" not in {e.get("clientId") for e in events(roost)}
    # The loud client's connect and disconnect are there too.
    loud = {e["eventType"] for e in events(roost, "--client-id", "loud")}
    assert {"Connect", "Publish-In", "Disconnect"} <= loud
    # Levels filter: only the ERROR ones (none here).
    assert events(roost, "--client-id", "loud", "--level", "ERROR") == []

    # Removing the level stops it at once.
    roost.aws("iot", "delete-v2-logging-level", "--target-type", "CLIENT_ID", "--target-name", "loud")
    assert mosquitto(device, roost.mqtt_port, "-i", "loud", "-q", "1", "-t", "data/l2", "-m", "again").returncode == 0
    roost.boto().set_v2_logging_level(logTarget={"targetType": "CLIENT_ID", "targetName": "marker"}, logLevel="INFO")
    assert mosquitto(device, roost.mqtt_port, "-i", "marker", "-q", "1", "-t", "data/m", "-m", "m").returncode == 0
    wait_for_event(roost, lambda e: e["eventType"] == "Publish-In", "--client-id", "marker")
    assert [e["topicName"] for e in events(roost, "--client-id", "loud", "--event-type", "publish-in")] == ["data/l"]


RECEIVE_ONLY_OPEN = json.dumps({
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"},
        {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": "arn:aws:iot:us-east-1:000000000000:topicfilter/feed/*"},
        {"Effect": "Allow", "Action": "iot:Receive", "Resource": "arn:aws:iot:us-east-1:000000000000:topic/feed/open"},
    ],
})


def test_deliveries_are_logged_as_publish_out_and_a_denied_receive_says_why(roost, tmp_path):
    listener_dev = make_device(roost, tmp_path, "listener", policy=RECEIVE_ONLY_OPEN)
    sender = make_device(roost, tmp_path, "sender", policy=ALLOW_ALL)
    roost.aws("iot", "set-v2-logging-level", "--log-target", "targetType=CLIENT_ID,targetName=listener", "--log-level", "DEBUG")
    listener, inbox, result = connect_with_inbox(listener_dev, roost.mqtt_port, "listener")
    try:
        assert result["rc"] == 0
        assert subscribe_wait(listener, "feed/#") == [1]
        for topic in ("feed/closed", "feed/open"):
            assert mosquitto(sender, roost.mqtt_port, "-i", "sender", "-q", "1", "-t", topic, "-m", f"to {topic}").returncode == 0
        [delivered] = wait_for_event(roost, lambda e: e["eventType"] == "Publish-Out" and e["status"] == "Success", "--client-id", "listener")
        assert delivered["logLevel"] == "INFO" and delivered["topicName"] == "feed/open"
        assert delivered["payload"] == "to feed/open"
        [withheld] = wait_for_event(roost, lambda e: e["eventType"] == "Publish-Out" and e["status"] == "Failure", "--client-id", "listener")
        assert withheld["logLevel"] == "ERROR" and withheld["topicName"] == "feed/closed"
        assert withheld["reason"] == "AUTHORIZATION_FAILURE" and "iot:Receive" in withheld["details"]
        assert "payload" not in withheld
        # The sender's own events stay at the default level (ERROR): none.
        assert events(roost, "--client-id", "sender") == []
    finally:
        close(listener)


def test_logging_settings_survive_a_restart(roost, tmp_path):
    iot = roost.boto()
    assert iot.get_v2_logging_options()["defaultLogLevel"] == "ERROR"
    iot.set_v2_logging_options(defaultLogLevel="WARN", disableAllLogs=False, roleArn="arn:aws:iam::000000000000:role/logs")
    iot.set_v2_logging_level(logTarget={"targetType": "THING_GROUP", "targetName": "fleet-a"}, logLevel="DEBUG")
    iot.set_v2_logging_level(logTarget={"targetType": "SOURCE_IP", "targetName": "10.0.0.7"}, logLevel="INFO")
    iot.set_v2_logging_level(logTarget={"targetType": "PRINCIPAL_ID", "targetName": "abc123"}, logLevel="ERROR")
    iot.set_v2_logging_level(logTarget={"targetType": "PRINCIPAL_ID", "targetName": "abc123"}, logLevel="WARN")

    roost.restart()
    iot = roost.boto()
    options = iot.get_v2_logging_options()
    assert options["defaultLogLevel"] == "WARN" and options["disableAllLogs"] is False
    assert options["roleArn"] == "arn:aws:iam::000000000000:role/logs"
    listed = iot.list_v2_logging_levels()["logTargetConfigurations"]
    assert [(c["logTarget"]["targetType"], c["logTarget"].get("targetName"), c["logLevel"]) for c in listed] == [
        ("DEFAULT", None, "WARN"),
        ("THING_GROUP", "fleet-a", "DEBUG"),
        ("SOURCE_IP", "10.0.0.7", "INFO"),
        ("PRINCIPAL_ID", "abc123", "WARN"),
    ]
    only_groups = iot.list_v2_logging_levels(targetType="THING_GROUP")["logTargetConfigurations"]
    assert [c["logTarget"]["targetName"] for c in only_groups] == ["fleet-a"]
    # Paged by the aws CLI's own paginator.
    rc, out, _ = roost.aws("iot", "list-v2-logging-levels", "--page-size", "1")
    assert len(out["logTargetConfigurations"]) == 4
    iot.delete_v2_logging_level(targetType="SOURCE_IP", targetName="10.0.0.7")
    roost.restart()
    listed = roost.boto().list_v2_logging_levels()["logTargetConfigurations"]
    assert [c["logTarget"].get("targetName") for c in listed] == [None, "fleet-a", "abc123"]


def invalid(call):
    with pytest.raises(botocore.exceptions.ClientError) as err:
        call()
    assert err.value.response["Error"]["Code"] == "InvalidRequestException", err.value.response
    return err.value.response["Error"]["Message"]


def test_bad_logging_input_gets_aws_errors_and_changes_nothing(roost):
    iot = roost.boto()
    iot.set_v2_logging_options(defaultLogLevel="INFO")
    iot.set_v2_logging_level(logTarget={"targetType": "CLIENT_ID", "targetName": "kept"}, logLevel="DEBUG")

    def settings():
        options = iot.get_v2_logging_options()
        options.pop("ResponseMetadata")
        return options, iot.list_v2_logging_levels()["logTargetConfigurations"]

    before = settings()

    assert "LOUD" in invalid(lambda: iot.set_v2_logging_options(defaultLogLevel="LOUD"))
    invalid(lambda: iot.set_v2_logging_level(logTarget={"targetType": "CLIENT_ID", "targetName": "x"}, logLevel="LOUD"))
    invalid(lambda: iot.set_v2_logging_level(logTarget={"targetType": "THING", "targetName": "x"}, logLevel="INFO"))
    assert "targetName" in invalid(lambda: iot.set_v2_logging_level(logTarget={"targetType": "CLIENT_ID"}, logLevel="INFO"))
    invalid(lambda: iot.set_v2_logging_level(logTarget={"targetType": "DEFAULT", "targetName": "x"}, logLevel="INFO"))
    invalid(lambda: iot.set_v2_logging_level(logTarget={"targetType": "SOURCE_IP", "targetName": "not-an-ip"}, logLevel="INFO"))
    invalid(lambda: iot.set_v2_logging_level(logTarget={"targetType": "THING_GROUP", "targetName": "a b"}, logLevel="INFO"))
    invalid(lambda: iot.set_v2_logging_level(logTarget={"targetType": "CLIENT_ID", "targetName": "x" * 129}, logLevel="INFO"))
    invalid(lambda: iot.delete_v2_logging_level(targetType="NOPE", targetName="x"))
    invalid(lambda: iot.list_v2_logging_levels(targetType="NOPE"))
    invalid(lambda: iot.list_v2_logging_levels(nextToken="garbage"))
    rc, _, err = roost.aws("iot", "set-v2-logging-level", "--log-target", "targetType=CLIENT_ID", "--log-level", "INFO", check=False)
    assert rc != 0 and "InvalidRequestException" in err

    assert settings() == before
    # The CLI's own bad input: a clear message, exit status 2.
    proc = roost.roost("logs", "--data-dir", str(roost.data_dir), "--since", "10x", check=False)
    assert proc.returncode == 2 and "not a duration" in proc.stderr
    proc = roost.roost("logs", "--data-dir", str(roost.data_dir / "missing"), check=False)
    assert proc.returncode == 1 and "no data directory" in proc.stderr


def test_follow_prints_events_as_they_are_written_across_rotations(roost_factory, tmp_path):
    # Small files (the least allowed), two kept: rotation happens within the test.
    roost = roost_factory("--event-log-level", "INFO", "--event-log-max-file-bytes", "4096", "--event-log-max-files", "2")
    device = make_device(roost, tmp_path, "follower")
    follow = subprocess.Popen(
        [roost_binary(), "logs", "--data-dir", str(roost.data_dir), "--follow", "--json", "--event-type", "Publish-In"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        lines = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in follow.stdout], daemon=True).start()
        # Enough publishes to rotate several times, in batches of less than a
        # file, each read before the next is sent.
        client = device.paho("follower")
        paho_connect(client, roost.mqtt_port)
        seen = []
        for batch in range(8):
            for n in range(batch * 5, batch * 5 + 5):
                client.publish(f"follow/{n}", b"x", qos=1).wait_for_publish(10)
            while len(seen) < batch * 5 + 5:
                seen.append(json.loads(lines.get(timeout=15))["topicName"])
        close(client)
        assert seen == [f"follow/{n}" for n in range(40)]
    finally:
        follow.terminate()
        follow.wait(10)
    files = sorted(p.name for p in (roost.data_dir / "logs" / "AWSIotLogsV2").iterdir())
    assert files == ["events.log", "events.log.1"]
    assert all(p.stat().st_size <= 4096 for p in (roost.data_dir / "logs" / "AWSIotLogsV2").iterdir())


def test_https_publishes_are_logged_as_http(roost, tmp_path):
    import ssl
    import urllib.error
    import urllib.request

    device = make_device(roost, tmp_path, "http-dev", policy=RESTRICTED)
    ctx = ssl.create_default_context(cafile=device.ca)
    ctx.load_cert_chain(device.certfile, device.keyfile)
    req = urllib.request.Request(f"https://localhost:{roost.https_port}/topics/secret%2Fy?qos=1", data=b"hidden", method="POST")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, context=ctx, timeout=10)
    assert err.value.code == 403
    [denied] = wait_for_event(roost, lambda e: e["eventType"] == "Publish-In")
    assert denied["protocol"] == "HTTP" and denied["status"] == "Failure"
    assert denied["topicName"] == "secret/y" and denied["reason"] == "AUTHORIZATION_FAILURE"
    assert denied["principalId"] == device.cert_id and "payload" not in denied


def test_a_thing_groups_level_reaches_its_things_and_a_client_id_level_wins(roost, tmp_path):
    iot = roost.boto()
    iot.create_thing_group(thingGroupName="fleet")
    iot.create_thing_group(thingGroupName="fleet-east", parentGroupName="fleet")
    device = make_device(roost, tmp_path, "east-1")
    iot.add_thing_to_thing_group(thingGroupName="fleet-east", thingName="east-1")
    # The parent's level reaches the child group's thing.
    iot.set_v2_logging_level(logTarget={"targetType": "THING_GROUP", "targetName": "fleet"}, logLevel="DEBUG")
    assert mosquitto(device, roost.mqtt_port, "-i", "east-1", "-q", "1", "-t", "g/1", "-m", "one").returncode == 0
    [first] = wait_for_event(roost, lambda e: e["eventType"] == "Publish-In", "--client-id", "east-1")
    assert first["payload"] == "one"
    # The child group's own level comes before its parent's...
    iot.set_v2_logging_level(logTarget={"targetType": "THING_GROUP", "targetName": "fleet-east"}, logLevel="INFO")
    # ...and a client id's before any group's (a marker client shows the
    # writer got this far).
    iot.set_v2_logging_level(logTarget={"targetType": "CLIENT_ID", "targetName": "other"}, logLevel="INFO")
    assert mosquitto(device, roost.mqtt_port, "-i", "east-1", "-q", "1", "-t", "g/2", "-m", "two").returncode == 0
    assert mosquitto(device, roost.mqtt_port, "-i", "other", "-q", "1", "-t", "g/3", "-m", "three").returncode == 0
    wait_for_event(roost, lambda e: e["eventType"] == "Publish-In", "--client-id", "other")
    second = [e for e in events(roost, "--client-id", "east-1", "--event-type", "Publish-In") if e["topicName"] == "g/2"]
    assert len(second) == 1 and "payload" not in second[0]
    iot.set_v2_logging_level(logTarget={"targetType": "CLIENT_ID", "targetName": "east-1"}, logLevel="ERROR")
    assert mosquitto(device, roost.mqtt_port, "-i", "east-1", "-q", "1", "-t", "g/4", "-m", "four").returncode == 0
    assert mosquitto(device, roost.mqtt_port, "-i", "other", "-q", "1", "-t", "g/5", "-m", "five").returncode == 0
    wait_for_event(roost, lambda e: e.get("topicName") == "g/5")
    assert "g/4" not in {e.get("topicName") for e in events(roost)}


def test_job_execution_changes_are_logged(roost, tmp_path):
    make_device(roost, tmp_path, "jobs-dev")
    iot = roost.boto()
    thing_arn = iot.describe_thing(thingName="jobs-dev")["thingArn"]
    iot.create_job(jobId="scan-1", targets=[thing_arn], document='{"operation": "localScan"}')
    iot.set_v2_logging_level(logTarget={"targetType": "CLIENT_ID", "targetName": "jobs-dev"}, logLevel="INFO")
    aws = roost.aws
    aws("iot-jobs-data", "start-next-pending-job-execution", "--thing-name", "jobs-dev")
    aws("iot-jobs-data", "update-job-execution", "--thing-name", "jobs-dev", "--job-id", "scan-1", "--status", "FAILED")
    [failed] = wait_for_event(roost, lambda e: e["eventType"] == "JobExecution" and e["status"] == "Failure")
    assert failed["clientId"] == "jobs-dev" and failed["reason"] == "FAILED"
    assert "job scan-1 execution 1 on thing jobs-dev: IN_PROGRESS -> FAILED" == failed["details"]
    started = [e for e in events(roost, "--event-type", "JobExecution") if e["status"] == "Success"]
    assert [e["details"] for e in started] == ["job scan-1 execution 1 on thing jobs-dev: QUEUED -> IN_PROGRESS"]
