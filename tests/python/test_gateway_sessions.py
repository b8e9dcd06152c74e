"""Sessions, wills, retained messages and client-id takeover, as the real
clients see them."""

import socket
import threading
import time

import paho.mqtt.client as mqtt

from conftest import make_device
from mqtt_helpers import close, connect_with_inbox as connect, paho_connect, subscribe_wait as subscribe






def test_will_is_published_on_abrupt_disconnect_only(roost, tmp_path):
    dev = make_device(roost, tmp_path, "will-device")
    watcher, inbox, _ = connect(dev, roost.mqtt_port, "watcher")
    subscribe(watcher, "wills/#")
    # A clean DISCONNECT: no will.
    polite = dev.paho("polite")
    polite.will_set("wills/polite", b"gone", qos=1)
    paho_connect(polite, roost.mqtt_port)
    close(polite)
    assert inbox.empty_for(0.5)
    # The socket just dies: the will goes out.
    rude = dev.paho("rude")
    rude.will_set("wills/rude", b"gone", qos=1)
    paho_connect(rude, roost.mqtt_port)
    rude.loop_stop()
    rude.socket().shutdown(socket.SHUT_RDWR)
    rude.socket().close()
    assert [(t, p) for t, p, _, _ in inbox.take(1)] == [("wills/rude", b"gone")]
    close(watcher)


def test_will_topic_must_be_authorized(roost, tmp_path):
    import json
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"},
        {"Effect": "Allow", "Action": "iot:Publish", "Resource": "arn:aws:iot:*:*:topic/allowed/*"},
    ]}
    dev = make_device(roost, tmp_path, "will-authz", policy=json.dumps(policy))
    client = dev.paho("will-authz")
    client.will_set("forbidden/will", b"x")
    assert str(paho_connect(client, roost.mqtt_port)["rc"]) == "Not authorized"
    client.loop_stop()
    client = dev.paho("will-authz")
    client.will_set("allowed/will", b"x")
    assert paho_connect(client, roost.mqtt_port)["rc"] == 0
    close(client)


def test_retained_message_is_sent_on_subscribe(roost, tmp_path):
    dev = make_device(roost, tmp_path, "retain-device")
    pub, _, _ = connect(dev, roost.mqtt_port, "retainer")
    pub.publish("status/lamp", b"on", qos=1, retain=True).wait_for_publish(10)
    sub, inbox, _ = connect(dev, roost.mqtt_port, "late-subscriber")
    subscribe(sub, "status/lamp")
    assert [(t, p, r) for t, p, _, r in inbox.take(1)] == [("status/lamp", b"on", True)]
    # AWS sends retained messages only to a subscription to exactly that topic.
    sub2, inbox2, _ = connect(dev, roost.mqtt_port, "wildcard-subscriber")
    subscribe(sub2, "status/#")
    assert inbox2.empty_for(0.5)
    # Live forwarding clears RETAIN; an empty retained payload deletes it.
    pub.publish("status/lamp", b"", qos=1, retain=True).wait_for_publish(10)
    assert [(t, p, r) for t, p, _, r in inbox.take(1)] == [("status/lamp", b"", False)]
    sub3, inbox3, _ = connect(dev, roost.mqtt_port, "after-delete")
    subscribe(sub3, "status/lamp")
    assert inbox3.empty_for(0.5)
    close(pub, sub, sub2, sub3)


def test_client_id_takeover(roost, tmp_path):
    dev = make_device(roost, tmp_path, "takeover-device")
    first, _, _ = connect(dev, roost.mqtt_port, "same-id", protocol=mqtt.MQTTv5)
    dropped = threading.Event()
    reason = {}

    def on_disconnect(c, u, flags, rc, props):
        reason["rc"] = rc
        dropped.set()

    first.on_disconnect = on_disconnect
    first.reconnect_delay_set(60, 60)
    second, _, result = connect(dev, roost.mqtt_port, "same-id", protocol=mqtt.MQTTv5)
    assert result["rc"] == 0
    assert dropped.wait(5)
    assert str(reason["rc"]) == "Session taken over"
    first.loop_stop()
    close(second)


def test_persistent_session_keeps_subscriptions_and_queues_qos1(roost, tmp_path):
    dev = make_device(roost, tmp_path, "persistent-device")
    sub, _, result = connect(dev, roost.mqtt_port, "persistent", clean=False)
    assert result["flags"].session_present is False
    subscribe(sub, "queue/#", qos=1)
    close(sub)
    pub, _, _ = connect(dev, roost.mqtt_port, "producer")
    for i in range(20):
        pub.publish(f"queue/{i}", str(i).encode(), qos=1).wait_for_publish(10)
    pub.publish("queue/qos0", b"dropped while offline", qos=0).wait_for_publish(10)
    sub, inbox, result = connect(dev, roost.mqtt_port, "persistent", clean=False)
    assert result["flags"].session_present is True
    got = inbox.take(20)
    assert sorted(int(p) for _, p, _, _ in got) == list(range(20))
    assert inbox.empty_for(0.5)
    # A clean session discards it.
    close(sub)
    sub, inbox, result = connect(dev, roost.mqtt_port, "persistent", clean=True)
    assert result["flags"].session_present is False
    pub.publish("queue/after", b"x", qos=1).wait_for_publish(10)
    assert inbox.empty_for(0.5)
    close(sub, pub)


def test_qos2_is_refused_in_the_aws_profile(roost, tmp_path):
    dev = make_device(roost, tmp_path, "qos2-device")
    client, _, _ = connect(dev, roost.mqtt_port, "qos2", protocol=mqtt.MQTTv5)
    dropped = threading.Event()
    reason = {}
    client.on_disconnect = lambda c, u, f, rc, p: (reason.setdefault("rc", rc), dropped.set())
    client.reconnect_delay_set(60, 60)
    # A QoS 2 subscription is granted QoS 1.
    granted = {}
    done = threading.Event()
    client.on_subscribe = lambda c, u, mid, rcs, p: (granted.setdefault("rc", rcs), done.set())
    client.subscribe("q2/#", qos=2)
    assert done.wait(5)
    assert [rc.value for rc in granted["rc"]] == [1]
    # A QoS 2 PUBLISH closes the connection with "QoS not supported".
    client.publish("q2/x", b"x", qos=2)
    assert dropped.wait(5)
    assert str(reason["rc"]) == "QoS not supported"
    client.loop_stop()


def test_lifecycle_events(roost, tmp_path):
    import json
    dev = make_device(roost, tmp_path, "watched")
    watcher, inbox, _ = connect(dev, roost.mqtt_port, "event-watcher")
    subscribe(watcher, "$aws/events/presence/+/watched")
    client, _, _ = connect(dev, roost.mqtt_port, "watched")
    close(client)
    got = inbox.take(2)
    events = [json.loads(p) for _, p, _, _ in got]
    assert [e["eventType"] for e in events] == ["connected", "disconnected"]
    assert events[0]["clientId"] == "watched" and events[0]["principalIdentifier"] == dev.cert_id
    assert events[1]["disconnectReason"] == "CLIENT_INITIATED_DISCONNECT" and events[1]["clientInitiatedDisconnect"] is True
    close(watcher)


def test_persistent_session_survives_a_restart(roost, tmp_path):
    """The issue's check: subscribe at QoS 1 with a persistent session,
    disconnect, publish 100 messages, restart Roost, reconnect: all 100 arrive."""
    dev = make_device(roost, tmp_path, "restart-device")
    sub, _, _ = connect(dev, roost.mqtt_port, "survivor", clean=False)
    subscribe(sub, "durable/#", qos=1)
    close(sub)
    pub, _, _ = connect(dev, roost.mqtt_port, "restart-producer")
    pub.publish("durable/retained", b"kept", qos=1, retain=True).wait_for_publish(10)
    for i in range(100):
        pub.publish(f"durable/{i}", str(i).encode(), qos=1).wait_for_publish(10)
    close(pub)
    roost.restart()
    sub, inbox, result = connect(dev, roost.mqtt_port, "survivor", clean=False)
    assert result["flags"].session_present is True
    got = inbox.take(101, timeout=20)
    numbers = sorted(int(p) for t, p, _, _ in got if t != "durable/retained")
    assert numbers == list(range(100))
    assert inbox.empty_for(0.5)
    close(sub)
    # The retained message survived too.
    late, inbox2, _ = connect(dev, roost.mqtt_port, "late")
    subscribe(late, "durable/retained")
    assert [(t, p, r) for t, p, _, r in inbox2.take(1)] == [("durable/retained", b"kept", True)]
    close(late)
