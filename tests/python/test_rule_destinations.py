"""Topic rule destinations and the http rule action: a real HTTP receiver
(http.server in a thread) gets the confirmation POST, the real aws CLI and
boto3 confirm, list, update and delete destinations, and the rules engine
sends an http action only to a URL under an ENABLED destination, whatever
the message says."""

import json
import re
import urllib.error
import urllib.request

import pytest
from botocore.exceptions import ClientError

from conftest import ACCOUNT, REGION, make_device
from mqtt_helpers import wait_until
from test_rules import objects, publish
from test_sns_http import Receiver, receiver  # noqa: F401 (a fixture)

ARN = re.compile(re.escape(f"arn:aws:iot:{REGION}:{ACCOUNT}:ruledestination/http/") + r"[0-9a-f-]{36}")
CONFIRMATION = "DestinationConfirmation"


def base(receiver):
    return f"http://127.0.0.1:{receiver.server.server_address[1]}"


def confirmations(receiver):
    return [p for p in list(receiver.posts) if p["headers"].get("x-amz-rules-engine-message-type") == CONFIRMATION]


def data_posts(receiver):
    return [p for p in list(receiver.posts) if "x-amz-rules-engine-message-type" not in p["headers"]]


def confirmation(receiver, count=1):
    """The `count`-th confirmation message the receiver got, and its JSON body."""
    assert wait_until(lambda: len(confirmations(receiver)) >= count, 20), receiver.posts
    post = confirmations(receiver)[count - 1]
    return post, json.loads(post["body"])


def client_error(call, **kwargs):
    with pytest.raises(ClientError) as e:
        call(**kwargs)
    return e.value.response["Error"]["Code"], e.value.response["Error"]["Message"]


def create_and_confirm(roost, receiver, url, count=1):
    iot = roost.boto()
    arn = iot.create_topic_rule_destination(
        destinationConfiguration={"httpUrlConfiguration": {"confirmationUrl": url}})["topicRuleDestination"]["arn"]
    _, body = confirmation(receiver, count)
    assert body["arn"] == arn
    iot.confirm_topic_rule_destination(confirmationToken=body["confirmationToken"])
    assert iot.get_topic_rule_destination(arn=arn)["topicRuleDestination"]["status"] == "ENABLED"
    return arn


def failed(roost, rule):
    return roost.metric("roost_rule_failed_total", rule=rule) or 0


def test_create_confirm_get_list_update_delete_with_the_aws_cli(roost, receiver):
    url = f"{base(receiver)}/iot/in"
    _, out, _ = roost.aws("iot", "create-topic-rule-destination", "--destination-configuration",
                          json.dumps({"httpUrlConfiguration": {"confirmationUrl": url}}))
    d = out["topicRuleDestination"]
    arn = d["arn"]
    assert ARN.fullmatch(arn), arn
    assert d["status"] == "IN_PROGRESS" and d["httpUrlProperties"] == {"confirmationUrl": url}
    assert d["statusReason"].startswith("Awaiting confirmation. Confirmation message sent on ")
    assert d["createdAt"] and d["lastUpdatedAt"]

    # The confirmation message, as AWS IoT sends it.
    post, body = confirmation(receiver)
    token = body["confirmationToken"]
    assert re.fullmatch(r"[0-9a-f]{64}", token)
    assert post["path"] == f"/iot/in?confirmationToken={token}"
    assert post["headers"]["x-amz-rules-engine-destination-arn"] == arn
    assert post["headers"]["content-type"] == "application/json"
    assert body == {"arn": arn, "confirmationToken": token, "enableUrl": f"{roost.api_url}/confirmdestination/{token}",
                    "messageType": CONFIRMATION}

    # Nothing confirms it but the token; failed calls change nothing.
    for status in ("ENABLED", "DISABLED", "ERROR", "DELETING"):
        rc, _, err = roost.aws("iot", "update-topic-rule-destination", "--arn", arn, "--status", status, check=False)
        assert rc == 255 and "(InvalidRequestException)" in err, (status, err)
    rc, _, err = roost.aws("iot", "confirm-topic-rule-destination", "--confirmation-token", "0" * 64, check=False)
    assert rc == 255 and "(InvalidRequestException)" in err and "not valid" in err
    _, got, _ = roost.aws("iot", "get-topic-rule-destination", "--arn", arn)
    assert got["topicRuleDestination"]["status"] == "IN_PROGRESS"

    roost.aws("iot", "confirm-topic-rule-destination", "--confirmation-token", token)
    _, got, _ = roost.aws("iot", "get-topic-rule-destination", "--arn", arn)
    got = got["topicRuleDestination"]
    assert got["status"] == "ENABLED" and "statusReason" not in got and got["httpUrlProperties"]["confirmationUrl"] == url
    _, listed, _ = roost.aws("iot", "list-topic-rule-destinations")
    [summary] = listed["destinationSummaries"]
    assert summary["arn"] == arn and summary["status"] == "ENABLED" and summary["httpUrlSummary"] == {"confirmationUrl": url}

    roost.aws("iot", "update-topic-rule-destination", "--arn", arn, "--status", "DISABLED")
    _, got, _ = roost.aws("iot", "get-topic-rule-destination", "--arn", arn)
    assert got["topicRuleDestination"]["status"] == "DISABLED"
    rc, _, err = roost.aws("iot", "confirm-topic-rule-destination", "--confirmation-token", token, check=False)
    assert rc == 255 and "(InvalidRequestException)" in err and "DISABLED" in err
    roost.aws("iot", "update-topic-rule-destination", "--arn", arn, "--status", "ENABLED")

    # The same confirmation URL again, and URLs AWS (or Roost) refuses.
    rc, _, err = roost.aws("iot", "create-topic-rule-destination", "--destination-configuration",
                           json.dumps({"httpUrlConfiguration": {"confirmationUrl": url}}), check=False)
    assert rc == 255 and "(ResourceAlreadyExistsException)" in err
    for bad in ("ftp://127.0.0.1/x", "not a url", f"{base(receiver)}/${{topic()}}", "https://", "https://u:p@example.com/"):
        rc, _, err = roost.aws("iot", "create-topic-rule-destination", "--destination-configuration",
                               json.dumps({"httpUrlConfiguration": {"confirmationUrl": bad}}), check=False)
        assert rc == 255 and "(InvalidRequestException)" in err, (bad, err)
    rc, _, err = roost.aws("iot", "create-topic-rule-destination", "--destination-configuration",
                           json.dumps({"vpcConfiguration": {"subnetIds": ["s"], "vpcId": "v", "roleArn": "r"}}), check=False)
    assert rc == 255 and "(InvalidRequestException)" in err
    _, listed, _ = roost.aws("iot", "list-topic-rule-destinations")
    assert [s["arn"] for s in listed["destinationSummaries"]] == [arn]
    assert len(confirmations(receiver)) == 1

    # It survives a restart; the token was never logged.
    roost.restart()
    _, got, _ = roost.aws("iot", "get-topic-rule-destination", "--arn", arn)
    assert got["topicRuleDestination"]["status"] == "ENABLED"
    assert token not in roost.read_log()

    roost.aws("iot", "delete-topic-rule-destination", "--arn", arn)
    for args in (("get-topic-rule-destination", "--arn", arn), ("delete-topic-rule-destination", "--arn", arn),
                 ("update-topic-rule-destination", "--arn", arn, "--status", "ENABLED")):
        rc, _, err = roost.aws("iot", *args, check=False)
        assert rc == 255 and "(ResourceNotFoundException)" in err, (args, err)
    rc, _, err = roost.aws("iot", "get-topic-rule-destination", "--arn", f"arn:aws:iot:{REGION}:{ACCOUNT}:rule/x", check=False)
    assert rc == 255 and "(InvalidRequestException)" in err
    _, listed, _ = roost.aws("iot", "list-topic-rule-destinations")
    assert listed["destinationSummaries"] == []


def test_the_enable_url_confirms_unsigned_and_a_new_challenge_replaces_the_token(roost, receiver):
    iot = roost.boto()
    arn = iot.create_topic_rule_destination(
        destinationConfiguration={"httpUrlConfiguration": {"confirmationUrl": f"{base(receiver)}/hook"}})["topicRuleDestination"]["arn"]
    _, first = confirmation(receiver)
    # IN_PROGRESS again: a new message with a new token; the first stops working.
    iot.update_topic_rule_destination(arn=arn, status="IN_PROGRESS")
    _, second = confirmation(receiver, 2)
    assert second["confirmationToken"] != first["confirmationToken"]
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(first["enableUrl"], timeout=10)
    assert e.value.code == 400 and e.value.headers["x-amzn-ErrorType"] == "InvalidRequestException"
    assert iot.get_topic_rule_destination(arn=arn)["topicRuleDestination"]["status"] == "IN_PROGRESS"
    # What the owner does: open the enableUrl (no signature).
    with urllib.request.urlopen(second["enableUrl"], timeout=10) as resp:
        assert resp.status == 200
    assert iot.get_topic_rule_destination(arn=arn)["topicRuleDestination"]["status"] == "ENABLED"
    # Other paths still need a signature.
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"{roost.api_url}/destinations", timeout=10)
    assert e.value.code == 403
    assert second["confirmationToken"] not in roost.read_log()


def test_listing_pages_and_its_errors(roost, receiver):
    iot = roost.boto()
    arns = sorted(
        iot.create_topic_rule_destination(
            destinationConfiguration={"httpUrlConfiguration": {"confirmationUrl": f"{base(receiver)}/{n}"}}
        )["topicRuleDestination"]["arn"]
        for n in ("a", "b", "c")
    )
    first = iot.list_topic_rule_destinations(maxResults=2)
    assert len(first["destinationSummaries"]) == 2 and first["nextToken"]
    rest = iot.list_topic_rule_destinations(maxResults=2, nextToken=first["nextToken"])
    assert "nextToken" not in rest
    seen = [s["arn"] for s in first["destinationSummaries"] + rest["destinationSummaries"]]
    assert seen == arns
    paginated = [s["arn"] for page in iot.get_paginator("list_topic_rule_destinations").paginate(PaginationConfig={"PageSize": 1})
                 for s in page["destinationSummaries"]]
    assert paginated == arns
    code, _ = client_error(iot.list_topic_rule_destinations, maxResults=1001)
    assert code == "InvalidRequestException"
    code, _ = client_error(iot.list_topic_rule_destinations, nextToken="!!not-a-token")
    assert code == "InvalidRequestException"


def test_a_templated_url_needs_a_confirmation_url_that_prefixes_it(roost, receiver):
    iot = roost.boto()
    for action, why in [
        ({"url": "https://collector.example.com/${topic()}"}, "confirmationUrl is required"),
        ({"url": "https://collector.example.com/${topic()}", "confirmationUrl": "https://other.example.com/"},
         "must be a prefix"),
        ({"url": "https://collector.example.com/in-admin", "confirmationUrl": "https://collector.example.com/in"},
         "does not lie under"),
        ({"url": "https://${topic()}/x", "confirmationUrl": "https://"}, "confirmationUrl"),
    ]:
        payload = {"sql": "SELECT * FROM 'dest/+'", "actions": [{"http": action}]}
        code, message = client_error(iot.create_topic_rule, ruleName="steerable", topicRulePayload=payload)
        assert code == "InvalidRequestException" and why in message, (action, message)
    assert iot.list_topic_rules()["rules"] == []
    assert iot.list_topic_rule_destinations()["destinationSummaries"] == []
    assert receiver.posts == []


def test_a_confirmed_destination_carries_device_messages_and_a_disabled_one_does_not(roost, receiver, tmp_path):
    iot = roost.boto()
    prefix = f"{base(receiver)}/iot/"
    arn = create_and_confirm(roost, receiver, prefix)
    iot.create_topic_rule(ruleName="to_http", topicRulePayload={
        "sql": "SELECT * FROM 'dest/+'",
        "actions": [{"http": {"url": prefix + "${topic(2)}", "confirmationUrl": prefix,
                              "headers": [{"key": "x-device", "value": "${clientid()}"}]}}],
        "errorAction": {"s3": {"bucketName": "dest-errors", "key": "${newuuid()}", "roleArn": "arn:aws:iam::0:role/r"}},
    })
    # Its confirmation URL has a destination already: none is created.
    assert len(iot.list_topic_rule_destinations()["destinationSummaries"]) == 1
    dev = make_device(roost, tmp_path, "dest-device")
    publish(dev, roost.mqtt_port, "dest/a", [b'{"n": 1}'], client_id="dest-device")
    assert wait_until(lambda: len(data_posts(receiver)) == 1, 15), receiver.posts
    [post] = data_posts(receiver)
    assert post["path"] == "/iot/a" and json.loads(post["body"]) == {"n": 1}
    assert post["headers"]["x-device"] == "dest-device"

    # DISABLED: the very next message is not sent, counted and reported.
    iot.update_topic_rule_destination(arn=arn, status="DISABLED")
    publish(dev, roost.mqtt_port, "dest/b", [b'{"n": 2}'], client_id="dest-device")
    assert wait_until(lambda: failed(roost, "to_http") == 1, 15)
    assert wait_until(lambda: len(objects(roost, "dest-errors")) == 1, 15)
    error = json.loads(objects(roost, "dest-errors")[0].read_text())
    assert error["topic"] == "dest/b" and error["failures"][0]["failedAction"] == "HttpAction"
    assert "no ENABLED topic rule destination covers" in error["failures"][0]["errorMessage"]
    assert not wait_until(lambda: len(data_posts(receiver)) > 1, 1.5)

    # ENABLED again: messages flow.
    iot.update_topic_rule_destination(arn=arn, status="ENABLED")
    publish(dev, roost.mqtt_port, "dest/c", [b'{"n": 3}'], client_id="dest-device")
    assert wait_until(lambda: len(data_posts(receiver)) == 2, 15)
    assert data_posts(receiver)[1]["path"] == "/iot/c"
    assert failed(roost, "to_http") == 1


def test_a_never_confirmed_destination_carries_nothing(roost, receiver):
    iot = roost.boto()
    url = f"{base(receiver)}/hook"
    # No template and no confirmationUrl: as AWS, the url is the confirmation
    # URL, and its destination is created (IN_PROGRESS) with the rule.
    iot.create_topic_rule(ruleName="unconfirmed", topicRulePayload={
        "sql": "SELECT * FROM 'plain/+'", "actions": [{"http": {"url": url}}]})
    [summary] = iot.list_topic_rule_destinations()["destinationSummaries"]
    assert summary["status"] == "IN_PROGRESS" and summary["httpUrlSummary"]["confirmationUrl"] == url
    post, body = confirmation(receiver)
    assert post["path"] == f"/hook?confirmationToken={body['confirmationToken']}" and body["arn"] == summary["arn"]

    data = roost.boto("iot-data")
    data.publish(topic="plain/1", payload=b'{"n": 1}', qos=1)
    assert wait_until(lambda: failed(roost, "unconfirmed") == 1, 15)
    assert not wait_until(lambda: data_posts(receiver), 1.5)
    assert "no ENABLED topic rule destination covers" in roost.read_log()

    iot.confirm_topic_rule_destination(confirmationToken=body["confirmationToken"])
    data.publish(topic="plain/2", payload=b'{"n": 2}', qos=1)
    assert wait_until(lambda: len(data_posts(receiver)) == 1, 15)
    assert data_posts(receiver)[0]["path"] == "/hook" and json.loads(data_posts(receiver)[0]["body"]) == {"n": 2}
    # Replacing the rule with the same url creates no second destination.
    iot.replace_topic_rule(ruleName="unconfirmed", topicRulePayload={
        "sql": "SELECT * FROM 'plain/#'", "actions": [{"http": {"url": url}}]})
    assert len(iot.list_topic_rule_destinations()["destinationSummaries"]) == 1
    assert len(confirmations(receiver)) == 1


def test_a_message_cannot_steer_the_url_outside_the_confirmed_prefix(roost, receiver):
    other = Receiver()
    try:
        iot = roost.boto()
        host = base(receiver)
        create_and_confirm(roost, receiver, f"{host}/in")
        # The url's whole tail comes from the message: only the confirmation
        # of /in (not of the host) lets anything through.
        iot.create_topic_rule(ruleName="steered", topicRulePayload={
            "sql": "SELECT * FROM 'steer/+'",
            "actions": [{"http": {"url": host + "${suffix}", "confirmationUrl": host}}],
        })
        # The host-wide confirmation URL got its own destination, not confirmed.
        assert wait_until(lambda: len(confirmations(receiver)) == 2, 15)
        other_port = other.server.server_address[1]
        attempts = [
            "/../admin",
            "/in/../admin",
            "/in/%2e%2e/admin",
            "/in-admin",
            "/admin",
            f"@127.0.0.1:{other_port}/in/x",
            ".evil.example/in/x",
            "0/in/x",
            "\\\\evil.example/in/x",
        ]
        data = roost.boto("iot-data")
        for i, suffix in enumerate(attempts):
            data.publish(topic=f"steer/{i}", payload=json.dumps({"suffix": suffix}).encode(), qos=1)
        data.publish(topic="steer/ok", payload=json.dumps({"suffix": "/in/ok?x=1"}).encode(), qos=1)
        assert wait_until(lambda: len(data_posts(receiver)) == 1, 15)
        assert wait_until(lambda: failed(roost, "steered") == len(attempts), 15), failed(roost, "steered")
        assert not wait_until(lambda: len(data_posts(receiver)) > 1 or other.posts, 1.5)
        assert data_posts(receiver)[0]["path"] == "/in/ok?x=1"
        assert roost.metric("roost_rule_succeeded_total", rule="steered") == 1
    finally:
        other.close()
