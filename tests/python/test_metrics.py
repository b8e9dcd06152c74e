"""GET /metrics on the API port: the gateway's, the rules engine's and SNS
delivery's counters in the OpenMetrics text format, read by the Prometheus
project's own parser."""

import json
import urllib.error
import urllib.request

from conftest import make_device
from mqtt_helpers import close, paho_connect, wait_until

TENANT_POLICY = json.dumps({
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"},
        {"Effect": "Allow", "Action": "iot:Publish", "Resource": "arn:aws:iot:*:*:topic/metrics/allowed"},
    ],
})


def scrape(roost):
    """Every sample of GET /metrics, and the families' types (one request)."""
    families = roost.metric_families()
    return roost.metrics(families), {f.name: f.type for f in families}


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))


def test_metrics_count_what_devices_and_rules_did(roost, tmp_path):
    iot = roost.boto()
    iot.create_topic_rule(ruleName="CountMe", topicRulePayload={
        "sql": "SELECT * FROM 'metrics/allowed'",
        "actions": [{"s3": {"bucketName": "metrics-bucket", "key": "${newuuid()}", "roleArn": "arn:aws:iam::0:role/r"}}],
    })
    # The engine loads a new rule as it hears of it, just after the call
    # returns: its counters appear (at zero) once it is loaded.
    def loaded():
        samples, types = scrape(roost)
        return (samples, types) if value(samples, "roost_rule_matched_total", rule="CountMe") is not None else None

    assert wait_until(loaded, 10), "the rule never appeared in /metrics"
    before, types = loaded()
    assert types["roost_gateway_messages_in"] == "counter"
    assert types["roost_gateway_connections_current"] == "gauge"
    assert value(before, "roost_rule_matched_total", rule="CountMe") == 0
    assert value(before, "roost_gateway_connections_current") == 0

    dev = make_device(roost, tmp_path, "metrics-device", policy=TENANT_POLICY)
    client = dev.paho("metrics-device")
    assert paho_connect(client, roost.mqtt_port)["rc"] == 0
    for _ in range(3):
        client.publish("metrics/allowed", b'{"n": 1}', qos=1).wait_for_publish(10)
    # Not allowed: 3.1.1 has no way to say no, so the connection is closed.
    client.publish("metrics/forbidden", b"{}", qos=1)

    def after():
        samples, _ = scrape(roost)
        return samples if value(samples, "roost_rule_succeeded_total", rule="CountMe") == 3 \
            and value(samples, "roost_gateway_publish_denied_total") == 1 else None

    assert wait_until(after, 10), scrape(roost)[0]
    samples = after()
    assert value(samples, "roost_listener_connections_accepted_total", listener="mqtt") >= 1
    assert value(samples, "roost_listener_connections_accepted_total", listener="api") >= 1
    # The three publishes and the device's connected and disconnected events.
    assert value(samples, "roost_gateway_messages_in_total") == 5
    assert value(samples, "roost_rule_matched_total", rule="CountMe") == 3
    assert value(samples, "roost_rule_failed_total", rule="CountMe") == 0
    assert value(samples, "roost_rule_dropped_total", rule="CountMe") == 0
    assert value(samples, "roost_sns_mail_failed_total") == 0
    close(client)
    # The gauge comes back down when the connection is gone.
    assert wait_until(lambda: roost.metric("roost_gateway_connections_current") == 0, 10)


def test_a_refused_certificate_is_counted(roost, tmp_path):
    dev = make_device(roost, tmp_path, "metrics-revoked")
    roost.boto().update_certificate(certificateId=dev.cert_id, newStatus="REVOKED")
    client = dev.paho("metrics-revoked")
    try:
        paho_connect(client, roost.mqtt_port, timeout=5)
    except Exception:
        pass
    close(client)
    assert wait_until(lambda: roost.metric("roost_gateway_certificates_refused_total") == 1, 10)


def test_metrics_need_no_signature_but_nothing_else_opens(roost):
    scrape(roost)
    for method, path in (("GET", "/things"), ("POST", "/metrics"), ("GET", "/metrics/x")):
        req = urllib.request.Request(f"{roost.api_url}{path}", method=method, data=b"" if method == "POST" else None)
        try:
            urllib.request.urlopen(req, timeout=10)
            raise AssertionError(f"{method} {path} answered without a signature")
        except urllib.error.HTTPError as e:
            assert e.code == 403, (method, path, e.code)
