"""SNS http/https subscribers: a real HTTP receiver (http.server in a thread)
subscribed with the real aws CLI gets SNS's SubscriptionConfirmation,
Notification and UnsubscribeConfirmation POSTs, whose signatures are checked
with `cryptography` against the certificate behind SigningCertURL (and, for
SignatureVersion 1, with the off-the-shelf aws-sns-message-validator)."""

import base64
import datetime
import http.server
import ipaddress
import json
import re
import ssl
import threading
import urllib.error
import urllib.request

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.x509.oid import NameOID
from sns_message_validator import SNSMessageValidator

from conftest import ACCOUNT, REGION
from mqtt_helpers import wait_until
from test_rules import AUDIT, THING, publish, scenario_device  # noqa: F401 (a fixture)

TOPIC = "iot-webinar-alerts"
TOPIC_ARN = f"arn:aws:sns:{REGION}:{ACCOUNT}:{TOPIC}"
TIMESTAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
SIGNED_KEYS = {
    "Notification": ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"],
    "SubscriptionConfirmation": ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"],
    "UnsubscribeConfirmation": ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"],
}


class Receiver:
    """An HTTP(S) endpoint keeping every POST; answers `statuses` in turn, then 200."""

    def __init__(self, tls_context=None, statuses=()):
        self.posts = []
        self.statuses = list(statuses)
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    receiver.posts.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                                           "body": body.decode(), "status": status})
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        scheme = "http"
        if tls_context:
            self.server.socket = tls_context.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}/sns/hook?x=1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait(self, count, timeout=20):
        assert wait_until(lambda: len(self.posts) >= count, timeout), f"{len(self.posts)} POSTs, wanted {count}"
        with self.lock:
            return list(self.posts)

    def message(self, index, timeout=20):
        post = self.wait(index + 1, timeout)[index]
        return post, (json.loads(post["body"]) if post["headers"].get("x-amz-sns-rawdelivery") != "true" else None)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def string_to_sign(msg):
    return "".join(f"{k}\n{msg[k]}\n" for k in SIGNED_KEYS[msg["Type"]] if k in msg)


def verify_signature(msg):
    """Checks Signature against the certificate served at SigningCertURL."""
    with urllib.request.urlopen(msg["SigningCertURL"], timeout=10) as resp:
        assert resp.status == 200
        cert = x509.load_pem_x509_certificate(resp.read())
    digest = {"1": hashes.SHA1(), "2": hashes.SHA256()}[msg["SignatureVersion"]]
    # Raises InvalidSignature when it does not verify.
    cert.public_key().verify(base64.b64decode(msg["Signature"]), string_to_sign(msg).encode(), padding.PKCS1v15(), digest)
    return cert


def check_with_validator(roost, msg):
    """The off-the-shelf validator (SHA-1 only), its certificate URL pattern set to Roost's API."""
    SNSMessageValidator(cert_url_regex=r"^" + re.escape(roost.api_url) + "/").validate_message(msg)


def check_headers(post, kind, msg, sub_arn=None):
    h = post["headers"]
    assert post["path"] == "/sns/hook?x=1"
    assert h["x-amz-sns-message-type"] == kind
    assert h["x-amz-sns-topic-arn"] == TOPIC_ARN
    assert h["content-type"] == "text/plain; charset=UTF-8"
    assert h["user-agent"] == "Amazon Simple Notification Service Agent"
    assert re.fullmatch(re.escape(TOPIC_ARN) + ":" + UUID, h["x-amz-sns-subscription-arn"])
    if sub_arn:
        assert h["x-amz-sns-subscription-arn"] == sub_arn
    if msg is not None:
        assert h["x-amz-sns-message-id"] == msg["MessageId"]


def check_signed_fields(roost, msg, version):
    assert msg["SignatureVersion"] == version
    assert re.fullmatch(re.escape(roost.api_url) + r"/SimpleNotificationService-[0-9a-f]{32}\.pem", msg["SigningCertURL"])
    assert re.fullmatch(TIMESTAMP, msg["Timestamp"]) and re.fullmatch(UUID, msg["MessageId"])
    verify_signature(msg)
    if version == "1":
        check_with_validator(roost, msg)


def subscribe_and_confirm(roost, receiver, protocol="http", attributes=None, version="1", already=0):
    args = ["sns", "subscribe", "--topic-arn", TOPIC_ARN, "--protocol", protocol, "--notification-endpoint", receiver.url]
    if attributes:
        args += ["--attributes", attributes]
    _, out, _ = roost.aws(*args)
    assert out == {"SubscriptionArn": "pending confirmation"}
    post, msg = receiver.message(already)
    check_headers(post, "SubscriptionConfirmation", msg)
    assert list(msg) == ["Type", "MessageId", "Token", "TopicArn", "Message", "SubscribeURL", "Timestamp",
                         "SignatureVersion", "Signature", "SigningCertURL"]
    assert msg["Type"] == "SubscriptionConfirmation" and msg["TopicArn"] == TOPIC_ARN
    assert re.fullmatch(r"[0-9a-f]{64,}", msg["Token"])
    assert msg["Message"] == (f"You have chosen to subscribe to the topic {TOPIC_ARN}.\n"
                              "To confirm the subscription, visit the SubscribeURL included in this message.")
    assert msg["SubscribeURL"] == f"{roost.api_url}/?Action=ConfirmSubscription&TopicArn={TOPIC_ARN}&Token={msg['Token']}"
    check_signed_fields(roost, msg, version)
    _, subs, _ = roost.aws("sns", "list-subscriptions-by-topic", "--topic-arn", TOPIC_ARN)
    assert {"SubscriptionArn": "PendingConfirmation", "Owner": ACCOUNT, "Protocol": protocol,
            "Endpoint": receiver.url, "TopicArn": TOPIC_ARN} in subs["Subscriptions"]
    # What a receiver does: a plain GET of SubscribeURL.
    with urllib.request.urlopen(msg["SubscribeURL"], timeout=10) as resp:
        assert resp.status == 200
        xml = resp.read().decode()
    sub_arn = re.search(r"<SubscriptionArn>([^<]+)</SubscriptionArn>", xml).group(1)
    assert sub_arn == post["headers"]["x-amz-sns-subscription-arn"]
    return sub_arn


def test_http_subscriber_confirms_gets_signed_notifications_and_is_told_of_unsubscribe(roost, receiver):
    roost.aws("sns", "create-topic", "--name", TOPIC)
    sub_arn = subscribe_and_confirm(roost, receiver)
    _, attrs, _ = roost.aws("sns", "get-subscription-attributes", "--subscription-arn", sub_arn)
    assert attrs["Attributes"]["PendingConfirmation"] == "false" and attrs["Attributes"]["Protocol"] == "http"

    # With a Subject and message attributes.
    _, out, _ = roost.aws("sns", "publish", "--topic-arn", TOPIC_ARN, "--message", "disk <full>\nline 2 é",
                          "--subject", "Heads up", "--message-attributes",
                          '{"level": {"DataType": "String", "StringValue": "high"}, "n": {"DataType": "Number", "StringValue": "3"}}')
    post, msg = receiver.message(1)
    check_headers(post, "Notification", msg, sub_arn)
    assert list(msg) == ["Type", "MessageId", "TopicArn", "Subject", "Message", "Timestamp", "SignatureVersion",
                         "Signature", "SigningCertURL", "UnsubscribeURL", "MessageAttributes"]
    assert msg["MessageId"] == out["MessageId"]
    assert (msg["Type"], msg["TopicArn"], msg["Subject"], msg["Message"]) == (
        "Notification", TOPIC_ARN, "Heads up", "disk <full>\nline 2 é")
    assert msg["UnsubscribeURL"] == f"{roost.api_url}/?Action=Unsubscribe&SubscriptionArn={sub_arn}"
    assert msg["MessageAttributes"] == {"level": {"Type": "String", "Value": "high"}, "n": {"Type": "Number", "Value": "3"}}
    check_signed_fields(roost, msg, "1")

    # Without a Subject: no Subject key at all, and the signature still verifies.
    roost.aws("sns", "publish", "--topic-arn", TOPIC_ARN, "--message", "plain")
    post, msg = receiver.message(2)
    assert "Subject" not in msg and "MessageAttributes" not in msg and msg["Message"] == "plain"
    check_signed_fields(roost, msg, "1")

    # A tampered message fails verification.
    with pytest.raises(Exception):
        verify_signature({**msg, "Message": "forged"})

    # Unsubscribe: the subscriber is told, with a fresh token.
    roost.aws("sns", "unsubscribe", "--subscription-arn", sub_arn)
    post, msg = receiver.message(3)
    check_headers(post, "UnsubscribeConfirmation", msg, sub_arn)
    assert msg["Type"] == "UnsubscribeConfirmation" and re.fullmatch(r"[0-9a-f]{64,}", msg["Token"])
    assert msg["Message"] == (f"You have chosen to deactivate subscription {sub_arn}.\n"
                              "To cancel this operation and restore the subscription, visit the SubscribeURL included in this message.")
    assert msg["SubscribeURL"].startswith(f"{roost.api_url}/?Action=ConfirmSubscription&TopicArn={TOPIC_ARN}&Token=")
    check_signed_fields(roost, msg, "1")
    _, subs, _ = roost.aws("sns", "list-subscriptions-by-topic", "--topic-arn", TOPIC_ARN)
    assert subs["Subscriptions"] == []
    roost.aws("sns", "publish", "--topic-arn", TOPIC_ARN, "--message", "after")
    assert not wait_until(lambda: len(receiver.posts) > 4, 1.5)


def test_signature_version_2_uses_sha256_and_the_key_survives_a_restart(roost, receiver):
    roost.aws("sns", "create-topic", "--name", TOPIC, "--attributes", "SignatureVersion=2")
    subscribe_and_confirm(roost, receiver, version="2")
    roost.aws("sns", "publish", "--topic-arn", TOPIC_ARN, "--message", "v2", "--subject", "s")
    _, msg = receiver.message(1)
    check_signed_fields(roost, msg, "2")
    cert_url = msg["SigningCertURL"]
    assert (roost.data_dir / "sns-signing.key").stat().st_mode & 0o777 == 0o600

    rc, _, err = roost.aws("sns", "set-topic-attributes", "--topic-arn", TOPIC_ARN, "--attribute-name",
                           "SignatureVersion", "--attribute-value", "3", check=False)
    assert rc == 255 and "An error occurred (InvalidParameter)" in err
    roost.aws("sns", "set-topic-attributes", "--topic-arn", TOPIC_ARN, "--attribute-name",
              "SignatureVersion", "--attribute-value", "1")
    roost.restart()
    roost.aws("sns", "publish", "--topic-arn", TOPIC_ARN, "--message", "v1 again")
    _, msg = receiver.message(2)
    # Same certificate after the restart (the API port changed, the file name did not).
    assert msg["SigningCertURL"].rsplit("/", 1)[1] == cert_url.rsplit("/", 1)[1]
    check_signed_fields(roost, msg, "1")
    # Unknown certificate names are not found; no signature needed for the real one.
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"{roost.api_url}/SimpleNotificationService-{'0' * 32}.pem", timeout=10)
    assert e.value.code == 404


def test_raw_message_delivery_and_per_protocol_messages(roost, receiver):
    roost.aws("sns", "create-topic", "--name", TOPIC)
    sub_arn = subscribe_and_confirm(roost, receiver, attributes="RawMessageDelivery=true")
    roost.aws("sns", "publish", "--topic-arn", TOPIC_ARN, "--message", '{"raw": true}', "--subject", "ignored",
              "--message-attributes", '{"k": {"DataType": "String", "StringValue": "v"}}')
    post, msg = receiver.message(1)
    assert msg is None and post["body"] == '{"raw": true}'
    assert post["headers"]["x-amz-sns-rawdelivery"] == "true"
    check_headers(post, "Notification", None, sub_arn)

    # Back to the envelope; MessageStructure=json picks the http entry.
    roost.aws("sns", "set-subscription-attributes", "--subscription-arn", sub_arn,
              "--attribute-name", "RawMessageDelivery", "--attribute-value", "false")
    structured = json.dumps({"default": "d", "email": "e", "http": "for http"})
    roost.aws("sns", "publish", "--topic-arn", TOPIC_ARN, "--message", structured, "--message-structure", "json")
    post, msg = receiver.message(2)
    assert "x-amz-sns-rawdelivery" not in post["headers"] and msg["Message"] == "for http"
    check_signed_fields(roost, msg, "1")
    roost.aws("sns", "publish", "--topic-arn", TOPIC_ARN, "--message", json.dumps({"default": "d", "https": "x"}),
              "--message-structure", "json")
    _, msg = receiver.message(3)
    assert msg["Message"] == "d"


def test_a_failing_receiver_gets_the_notification_again(roost):
    # Confirmation answered 200, the first notification 500, then 200.
    receiver = Receiver(statuses=[200, 500])
    try:
        roost.aws("sns", "create-topic", "--name", TOPIC)
        subscribe_and_confirm(roost, receiver)
        _, out, _ = roost.aws("sns", "publish", "--topic-arn", TOPIC_ARN, "--message", "retry me")
        posts = receiver.wait(3)
        assert [p["status"] for p in posts[1:3]] == [500, 200]
        first, second = (json.loads(p["body"]) for p in posts[1:3])
        assert first == second and first["MessageId"] == out["MessageId"]
        verify_signature(second)
    finally:
        receiver.close()


def test_bad_endpoints_are_refused_and_nothing_is_stored(roost, receiver):
    roost.aws("sns", "create-topic", "--name", TOPIC)
    for protocol, endpoint, message in [
        ("http", receiver.url.replace("http://", "https://"), "Invalid parameter: Endpoint must match the specified protocol"),
        ("https", receiver.url, "Invalid parameter: Endpoint must match the specified protocol"),
        ("http", "not a url", "Invalid parameter: Endpoint must match the specified protocol"),
        ("http", "http:///no-host", "Invalid parameter: Endpoint"),
        ("http", "http://exa mple.com/", "Invalid parameter: Endpoint"),
    ]:
        rc, _, err = roost.aws("sns", "subscribe", "--topic-arn", TOPIC_ARN, "--protocol", protocol,
                               "--notification-endpoint", endpoint, check=False)
        assert rc == 255 and f"An error occurred (InvalidParameter) when calling the Subscribe operation: {message}" in err, err
    _, subs, _ = roost.aws("sns", "list-subscriptions")
    assert subs["Subscriptions"] == []
    assert receiver.posts == []


def test_scenario_rule_reaches_the_http_subscriber(roost, scenario_device, receiver, tmp_path):
    roost.aws("sns", "create-topic", "--name", TOPIC)
    sub_arn = subscribe_and_confirm(roost, receiver)
    payload = {
        "sql": "SELECT * FROM 'abcde-12345/+/audit'",
        "actions": [{"sns": {"targetArn": TOPIC_ARN, "roleArn": f"arn:aws:iam::{ACCOUNT}:role/iot-webinar-sns-role",
                             "messageFormat": "RAW"}}],
        "ruleDisabled": False,
    }
    f = tmp_path / "rule.json"
    f.write_text(json.dumps(payload))
    roost.aws("iot", "create-topic-rule", "--rule-name", "IotWebinarRule", "--topic-rule-payload", f"file://{f}")
    publish(scenario_device, roost.mqtt_port, f"abcde-12345/{THING}/audit", [json.dumps(AUDIT)])
    post, msg = receiver.message(1)
    check_headers(post, "Notification", msg, sub_arn)
    assert json.loads(msg["Message"]) == AUDIT and "Subject" not in msg
    check_signed_fields(roost, msg, "1")


def tls_material(tmp_path):
    """A test CA and a server certificate for 127.0.0.1 it issued."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "receiver test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "server.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                            serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "server.pem", tmp_path / "server.key")
    return tmp_path / "ca.pem", context


def test_https_subscriber_behind_a_private_ca(roost_factory, tmp_path):
    ca_file, context = tls_material(tmp_path)
    receiver = Receiver(tls_context=context)
    try:
        roost = roost_factory("--sns-ca-file", str(ca_file))
        roost.aws("sns", "create-topic", "--name", TOPIC)
        subscribe_and_confirm(roost, receiver, protocol="https")
        roost.aws("sns", "publish", "--topic-arn", TOPIC_ARN, "--message", "over tls")
        _, msg = receiver.message(1)
        assert msg["Message"] == "over tls"
        verify_signature(msg)
    finally:
        receiver.close()


def test_without_the_ca_an_https_subscriber_gets_nothing(roost, tmp_path):
    _, context = tls_material(tmp_path)
    receiver = Receiver(tls_context=context)
    try:
        roost.aws("sns", "create-topic", "--name", TOPIC)
        _, out, _ = roost.aws("sns", "subscribe", "--topic-arn", TOPIC_ARN, "--protocol", "https",
                              "--notification-endpoint", receiver.url)
        assert out == {"SubscriptionArn": "pending confirmation"}
        assert wait_until(lambda: "http delivery failed" in roost.read_log(), 20)
        assert receiver.posts == []
        # The log names the subscription and the URL without its query, never the token.
        line = next(l for l in roost.read_log().splitlines() if "http delivery failed" in l)
        assert "x=1" not in line and "Token" not in line
    finally:
        receiver.close()
