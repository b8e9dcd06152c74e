"""SNS-compatible notification topics: the aws CLI and boto3 against Roost's
API port, email subscriptions confirmed through a real SMTP server
(aiosmtpd), and the topic rule `sns` action mailing each rule output."""

import email
import email.policy
import json
import re
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest
from aiosmtpd.controller import Controller

from conftest import ACCOUNT, REGION, make_device, scenario_policy
from mqtt_helpers import wait_until
from test_rules import AUDIT, THING, objects, publish

TOPIC_ARN = f"arn:aws:sns:{REGION}:{ACCOUNT}:iot-webinar-alerts"


class Collector:
    """An aiosmtpd handler keeping every message it receives."""

    def __init__(self):
        self.messages = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append((list(envelope.rcpt_tos), msg))
        return "250 Message accepted for delivery"

    def wait(self, count, timeout=15):
        assert wait_until(lambda: len(self.messages) >= count, timeout), f"{len(self.messages)} mails, wanted {count}"
        with self.lock:
            return list(self.messages)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp():
    collector = Collector()
    controller = Controller(collector, hostname="127.0.0.1", port=free_port())
    controller.start()
    collector.port = controller.port
    yield collector
    controller.stop()


@pytest.fixture
def roost_smtp(roost_factory, smtp):
    return roost_factory("--smtp-url", f"smtp://127.0.0.1:{smtp.port}?tls=none", "--smtp-from", "alerts@roost.test")


def body(msg):
    return msg.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")


def confirm_link(msg):
    match = re.search(r"http://\S+/\?Action=ConfirmSubscription&TopicArn=\S+&Token=[0-9a-f]+", body(msg))
    assert match, body(msg)
    return match.group(0)


def subscribe_and_confirm(roost, smtp, address, already=0):
    _, out, _ = roost.aws("sns", "subscribe", "--topic-arn", TOPIC_ARN, "--protocol", "email",
                          "--notification-endpoint", address)
    assert out == {"SubscriptionArn": "pending confirmation"}
    rcpt, msg = smtp.wait(already + 1)[already]
    assert rcpt == [address]
    assert msg["Subject"] == "AWS Notification - Subscription Confirmation"
    with urllib.request.urlopen(confirm_link(msg), timeout=10) as resp:
        assert resp.status == 200
        xml = resp.read().decode()
    arn = re.search(r"<SubscriptionArn>([^<]+)</SubscriptionArn>", xml).group(1)
    assert arn.startswith(TOPIC_ARN + ":") and "<ConfirmSubscriptionResponse" in xml
    return arn


def test_topic_subscription_lifecycle_with_the_aws_cli(roost_smtp, smtp):
    roost = roost_smtp
    _, out, _ = roost.aws("sns", "create-topic", "--name", "iot-webinar-alerts",
                          "--attributes", "DisplayName=Webinar alerts")
    assert out == {"TopicArn": TOPIC_ARN}
    _, again, _ = roost.aws("sns", "create-topic", "--name", "iot-webinar-alerts")
    assert again == out
    _, topics, _ = roost.aws("sns", "list-topics")
    assert topics["Topics"] == [{"TopicArn": TOPIC_ARN}]

    _, out, _ = roost.aws("sns", "subscribe", "--topic-arn", TOPIC_ARN, "--protocol", "email",
                          "--notification-endpoint", "ops@example.com")
    assert out == {"SubscriptionArn": "pending confirmation"}
    _, subs, _ = roost.aws("sns", "list-subscriptions-by-topic", "--topic-arn", TOPIC_ARN)
    assert subs["Subscriptions"] == [{"SubscriptionArn": "PendingConfirmation", "Owner": ACCOUNT, "Protocol": "email",
                                      "Endpoint": "ops@example.com", "TopicArn": TOPIC_ARN}]
    rcpt, msg = smtp.wait(1)[0]
    assert rcpt == ["ops@example.com"]
    assert msg["Subject"] == "AWS Notification - Subscription Confirmation"
    assert "alerts@roost.test" in msg["From"]
    assert TOPIC_ARN in body(msg)
    link = confirm_link(msg)
    assert link.startswith(roost.api_url + "/?Action=ConfirmSubscription&TopicArn=" + TOPIC_ARN)

    # Wrong token: InvalidParameter, through the CLI.
    rc, _, err = roost.aws("sns", "confirm-subscription", "--topic-arn", TOPIC_ARN, "--token", "00" * 32, check=False)
    assert rc == 255 and "An error occurred (InvalidParameter)" in err

    # The mailed link confirms without a signature and answers XML.
    with urllib.request.urlopen(link, timeout=10) as resp:
        assert resp.status == 200 and resp.headers["x-amzn-RequestId"]
        xml = resp.read().decode()
    sub_arn = re.search(r"<SubscriptionArn>([^<]+)</SubscriptionArn>", xml).group(1)
    assert re.fullmatch(re.escape(TOPIC_ARN) + r":[0-9a-f-]{36}", sub_arn)
    _, subs, _ = roost.aws("sns", "list-subscriptions-by-topic", "--topic-arn", TOPIC_ARN)
    assert [s["SubscriptionArn"] for s in subs["Subscriptions"]] == [sub_arn]
    _, all_subs, _ = roost.aws("sns", "list-subscriptions")
    assert [s["SubscriptionArn"] for s in all_subs["Subscriptions"]] == [sub_arn]
    # Subscribing again to a confirmed subscription returns its ARN, no new mail.
    _, out, _ = roost.aws("sns", "subscribe", "--topic-arn", TOPIC_ARN, "--protocol", "email",
                          "--notification-endpoint", "ops@example.com")
    assert out == {"SubscriptionArn": sub_arn}
    _, attrs, _ = roost.aws("sns", "get-topic-attributes", "--topic-arn", TOPIC_ARN)
    assert attrs["Attributes"]["SubscriptionsConfirmed"] == "1"
    assert attrs["Attributes"]["DisplayName"] == "Webinar alerts"

    # Publish: one mail to the confirmed subscriber.
    _, out, _ = roost.aws("sns", "publish", "--topic-arn", TOPIC_ARN, "--message", "disk <full> & hot",
                          "--subject", "Heads up")
    assert re.fullmatch(r"[0-9a-f-]{36}", out["MessageId"])
    rcpt, msg = smtp.wait(2)[1]
    assert rcpt == ["ops@example.com"] and msg["Subject"] == "Heads up"
    assert "Webinar alerts" in msg["From"]
    assert body(msg).startswith("disk <full> & hot\n")
    assert f"Action=Unsubscribe&SubscriptionArn={sub_arn}" in body(msg)

    # Errors as the CLI shows them.
    missing = f"arn:aws:sns:{REGION}:{ACCOUNT}:nope"
    for args, code in [
        (["subscribe", "--topic-arn", missing, "--protocol", "email", "--notification-endpoint", "a@example.com"], "NotFound"),
        (["subscribe", "--topic-arn", TOPIC_ARN, "--protocol", "sqs", "--notification-endpoint", "arn:aws:sqs:x"], "InvalidParameter"),
        (["subscribe", "--topic-arn", TOPIC_ARN, "--protocol", "email", "--notification-endpoint", "not-an-address"], "InvalidParameter"),
        (["list-subscriptions-by-topic", "--topic-arn", missing], "NotFound"),
        (["publish", "--topic-arn", missing, "--message", "x"], "NotFound"),
        (["publish", "--topic-arn", TOPIC_ARN, "--message", "x", "--subject", "a\nb"], "InvalidParameter"),
        (["create-topic", "--name", "bad name"], "InvalidParameter"),
        (["unsubscribe", "--subscription-arn", "PendingConfirmation"], "InvalidParameter"),
    ]:
        rc, _, err = roost.aws("sns", *args, check=False)
        assert rc == 255 and f"An error occurred ({code})" in err, (args, err)

    # Unsubscribe, then delete the topic (twice: idempotent).
    _, out, _ = roost.aws("sns", "unsubscribe", "--subscription-arn", sub_arn)
    assert out == {}
    _, subs, _ = roost.aws("sns", "list-subscriptions-by-topic", "--topic-arn", TOPIC_ARN)
    assert subs["Subscriptions"] == []
    roost.aws("sns", "delete-topic", "--topic-arn", TOPIC_ARN)
    roost.aws("sns", "delete-topic", "--topic-arn", TOPIC_ARN)
    rc, _, err = roost.aws("sns", "get-topic-attributes", "--topic-arn", TOPIC_ARN, check=False)
    assert rc == 255 and "An error occurred (NotFound) when calling the GetTopicAttributes operation: Topic does not exist" in err


def test_boto3_errors_and_unsigned_requests(roost_smtp, smtp):
    sns = roost_smtp.boto("sns")
    arn = sns.create_topic(Name="iot-webinar-alerts")["TopicArn"]
    assert arn == TOPIC_ARN
    with pytest.raises(sns.exceptions.NotFoundException):
        sns.get_topic_attributes(TopicArn=TOPIC_ARN + "-missing")
    with pytest.raises(sns.exceptions.InvalidParameterException):
        sns.confirm_subscription(TopicArn=TOPIC_ARN, Token="bogus")
    pending = sns.subscribe(TopicArn=TOPIC_ARN, Protocol="email", Endpoint="a@example.com",
                            ReturnSubscriptionArn=True)["SubscriptionArn"]
    assert pending.startswith(TOPIC_ARN + ":")
    assert sns.get_subscription_attributes(SubscriptionArn=pending)["Attributes"]["PendingConfirmation"] == "true"
    smtp.wait(1)
    # An unsigned call other than the mailed links is refused, in XML.
    req = urllib.request.Request(roost_smtp.api_url + "/", data=b"Action=ListTopics&Version=2010-03-31",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code in (400, 403) and b"<ErrorResponse" in e.value.read()
    # The unsubscribe link works unsigned.
    with urllib.request.urlopen(f"{roost_smtp.api_url}/?Action=Unsubscribe&SubscriptionArn={pending}", timeout=10) as r:
        assert b"<UnsubscribeResponse" in r.read()
    assert sns.list_subscriptions_by_topic(TopicArn=TOPIC_ARN)["Subscriptions"] == []


def test_scenario_rule_stores_the_audit_and_mails_it(roost_smtp, smtp, tmp_path):
    roost = roost_smtp
    iot = roost.boto()
    iot.create_policy(policyName="iot-webinar-policy", policyDocument=scenario_policy(2))
    dev = make_device(roost, tmp_path, THING, policy=None, attributes={"Owner": "abcde-12345"})
    iot.attach_policy(policyName="iot-webinar-policy", target=dev.cert_arn)
    roost.aws("sns", "create-topic", "--name", "iot-webinar-alerts")
    subscribe_and_confirm(roost, smtp, "secops@example.com")

    payload = {
        "sql": "SELECT * FROM 'abcde-12345/+/audit'",
        "actions": [
            {"s3": {"bucketName": "iot-webinar-audits", "key": "${topic()}/${timestamp()}",
                    "roleArn": f"arn:aws:iam::{ACCOUNT}:role/iot-webinar-s3-role"}},
            {"sns": {"targetArn": TOPIC_ARN, "roleArn": f"arn:aws:iam::{ACCOUNT}:role/iot-webinar-sns-role",
                     "messageFormat": "RAW"}},
        ],
        "ruleDisabled": False,
    }
    f = tmp_path / "rule.json"
    f.write_text(json.dumps(payload))
    roost.aws("iot", "create-topic-rule", "--rule-name", "IotWebinarRule", "--topic-rule-payload", f"file://{f}")
    publish(dev, roost.mqtt_port, f"abcde-12345/{THING}/audit", [json.dumps(AUDIT)])
    assert wait_until(lambda: len(objects(roost, "iot-webinar-audits")) == 1, 10)
    [obj] = objects(roost, "iot-webinar-audits")
    assert json.loads(obj.read_text()) == AUDIT
    rel = obj.relative_to(roost.data_dir / "objects" / "iot-webinar-audits")
    assert str(rel.parent) == f"abcde-12345/{THING}/audit" and rel.name.isdigit() and len(rel.name) == 13
    rcpt, msg = smtp.wait(2)[1]
    assert rcpt == ["secops@example.com"]
    assert msg["Subject"] == "AWS Notification Message"
    text = body(msg)
    assert json.loads(text.split("\n\n--\n", 1)[0]) == AUDIT


def test_sns_action_to_a_missing_topic_runs_the_error_action(roost_smtp, smtp, tmp_path):
    roost = roost_smtp
    dev = make_device(roost, tmp_path, "sns-err-device")
    payload = {
        "sql": "SELECT * FROM 'alerts/+'",
        "actions": [{"sns": {"targetArn": f"arn:aws:sns:{REGION}:{ACCOUNT}:missing", "roleArn": "arn:aws:iam::0:role/r"}}],
        "errorAction": {"s3": {"bucketName": "sns-errors", "key": "${newuuid()}", "roleArn": "arn:aws:iam::0:role/r"}},
    }
    roost.boto().create_topic_rule(ruleName="sns_missing", topicRulePayload=payload)
    publish(dev, roost.mqtt_port, "alerts/a", [b'{"n": 1}'], client_id="sns-err-device")
    assert wait_until(lambda: len(objects(roost, "sns-errors")) == 1, 15)
    [obj] = objects(roost, "sns-errors")
    failure = json.loads(obj.read_text())["failures"][0]
    assert failure["failedAction"] == "SnsAction" and "Topic does not exist" in failure["errorMessage"]
    assert smtp.messages == []


def test_a_bad_smtp_url_is_refused(roost_factory):
    with pytest.raises(RuntimeError) as e:
        roost_factory("--smtp-url", "smtp://user:hunter2@host:notaport")
    assert "hunter2" not in str(e.value)
