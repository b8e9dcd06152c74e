"""Publishing without MQTT: HTTPS publish with a device certificate (AWS IoT's
port 8443) and `aws iot-data publish` on the API port both reach MQTT
subscribers; retained messages are readable through iot-data."""

import base64
import json
import ssl
import threading
import urllib.error
import urllib.request

from conftest import ACCOUNT, REGION, make_device
from mqtt_helpers import Inbox, paho_connect


def https_publish(dev, port, topic, payload, query="qos=1"):
    ctx = ssl.create_default_context(cafile=dev.ca)
    ctx.load_cert_chain(dev.certfile, dev.keyfile)
    quoted = urllib.request.quote(topic, safe="")
    req = urllib.request.Request(f"https://localhost:{port}/topics/{quoted}?{query}", data=payload, method="POST")
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def subscriber(dev, port, topic_filter):
    inbox = Inbox()
    client = dev.paho("http-watcher")
    client.on_message = lambda c, u, m: inbox.put(m.topic, m.payload, m.qos, m.retain)
    paho_connect(client, port)
    done = threading.Event()
    client.on_subscribe = lambda *a: done.set()
    client.subscribe(topic_filter, qos=1)
    assert done.wait(10)
    return client, inbox


def test_https_publish_reaches_mqtt_subscribers_under_policy(roost, tmp_path):
    arn = f"arn:aws:iot:{REGION}:{ACCOUNT}"
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "iot:Publish", "Resource": f"{arn}:topic/sensors/*"},
    ]}
    dev = make_device(roost, tmp_path, "http-device", policy=json.dumps(policy))
    watcher_dev = make_device(roost, tmp_path, "http-watcher")
    client, inbox = subscriber(watcher_dev, roost.mqtt_port, "#")
    status, body = https_publish(dev, roost.https_port, "sensors/temp", b'{"c": 21}')
    assert status == 200 and body["message"] == "OK"
    assert [(t, p, q) for t, p, q, _ in inbox.take(1)] == [("sensors/temp", b'{"c": 21}', 1)]
    status, body = https_publish(dev, roost.https_port, "other/topic", b"nope")
    assert status == 403 and body["message"] == "Forbidden"
    status, _ = https_publish(dev, roost.https_port, "sensors/#", b"bad topic")
    assert status == 400
    status, _ = https_publish(dev, roost.https_port, "sensors/big", b"x" * (129 * 1024))
    assert status == 413
    assert inbox.empty_for(0.5)
    client.disconnect()
    client.loop_stop()


def test_https_publish_needs_an_active_registered_certificate(roost, tmp_path):
    dev = make_device(roost, tmp_path, "http-inactive")
    roost.boto().update_certificate(certificateId=dev.cert_id, newStatus="INACTIVE")
    try:
        status, _ = https_publish(dev, roost.https_port, "a/b", b"x")
    except (urllib.error.URLError, ConnectionError, ssl.SSLError):
        status = None
    assert status is None, "the connection must be refused"


def test_aws_iot_data_publish_reaches_mqtt_subscribers(roost, tmp_path):
    watcher_dev = make_device(roost, tmp_path, "data-watcher")
    client, inbox = subscriber(watcher_dev, roost.mqtt_port, "cli/#")
    roost.aws("iot-data", "publish", "--topic", "cli/hello", "--payload", '{"hello":"world"}', "--qos", "1")
    assert [(t, p, q) for t, p, q, _ in inbox.take(1)] == [("cli/hello", b'{"hello":"world"}', 1)]
    data = roost.boto("iot-data")
    data.publish(topic="cli/retained", payload=b"\x00\x01\xff", qos=1, retain=True, userProperties=[{"k": "v"}])
    assert [(t, p) for t, p, _, _ in inbox.take(1)] == [("cli/retained", b"\x00\x01\xff")]
    got = data.get_retained_message(topic="cli/retained")
    assert got["payload"] == b"\x00\x01\xff" and got["qos"] == 1 and got["lastModifiedTime"] > 0
    assert json.loads(got["userProperties"]) == [{"k": "v"}]
    listed = data.list_retained_messages()["retainedTopics"]
    assert [(r["topic"], r["payloadSize"]) for r in listed] == [("cli/retained", 3)]
    rc, _, err = roost.aws("iot-data", "get-retained-message", "--topic", "cli/nothing", check=False)
    assert rc != 0 and "(ResourceNotFoundException)" in err
    rc, _, err = roost.aws("iot-data", "publish", "--topic", "cli/#", "--payload", "x", check=False)
    assert rc != 0 and "(InvalidRequestException)" in err
    client.disconnect()
    client.loop_stop()
