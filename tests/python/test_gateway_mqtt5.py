"""MQTT 5 features and AWS IoT's limits as paho v5 sees them."""

import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from conftest import make_device
from mqtt_helpers import Inbox, close, paho_connect, subscribe_wait as subscribe, wait_until


class V5Inbox(Inbox):
    def on_message(self, client, userdata, m):
        self.q.put(m)


def connect5(dev, port, client_id, properties=None):
    client = dev.paho(client_id, protocol=mqtt.MQTTv5)
    inbox = V5Inbox()
    client.on_message = inbox.on_message
    result = paho_connect(client, port, properties=properties)
    return client, inbox, result






def test_connack_announces_aws_limits(roost, tmp_path):
    dev = make_device(roost, tmp_path, "v5-limits")
    client, _, result = connect5(dev, roost.mqtt_port, "v5-limits")
    props = result["properties"]
    assert props.MaximumQoS == 1
    assert props.TopicAliasMaximum == 8
    assert props.ReceiveMaximum == 100
    assert props.SubscriptionIdentifierAvailable == 0
    assert props.SharedSubscriptionAvailable == 1
    close(client)


def test_publish_properties_reach_subscribers(roost, tmp_path):
    dev = make_device(roost, tmp_path, "v5-props")
    sub, inbox, _ = connect5(dev, roost.mqtt_port, "v5-sub")
    assert subscribe(sub, "props/#") == [1]
    pub, _, _ = connect5(dev, roost.mqtt_port, "v5-pub")
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = [("tenant", "abcde-12345"), ("trace", "1")]
    props.ContentType = "application/json"
    props.ResponseTopic = "props/replies"
    props.CorrelationData = b"\x01\x02"
    props.PayloadFormatIndicator = 1
    props.MessageExpiryInterval = 60
    pub.publish("props/a", b"{}", qos=1, properties=props).wait_for_publish(10)
    m = inbox.get()
    p = m.properties
    assert m.topic == "props/a"
    assert p.UserProperty == [("tenant", "abcde-12345"), ("trace", "1")]
    assert p.ContentType == "application/json" and p.ResponseTopic == "props/replies"
    assert p.CorrelationData == b"\x01\x02" and p.PayloadFormatIndicator == 1
    assert 0 < p.MessageExpiryInterval <= 60
    close(sub, pub)


def test_topic_aliases(roost, tmp_path):
    dev = make_device(roost, tmp_path, "v5-alias")
    sub, inbox, _ = connect5(dev, roost.mqtt_port, "alias-sub")
    subscribe(sub, "alias/#")
    pub, _, _ = connect5(dev, roost.mqtt_port, "alias-pub")
    first = Properties(PacketTypes.PUBLISH)
    first.TopicAlias = 3
    pub.publish("alias/long/topic", b"1", qos=1, properties=first).wait_for_publish(10)
    # Same alias, empty topic: the server resolves it.
    pub.publish("", b"2", qos=1, properties=first).wait_for_publish(10)
    got = [(m.topic, m.payload) for m in (inbox.get(), inbox.get())]
    assert got == [("alias/long/topic", b"1"), ("alias/long/topic", b"2")]
    # An alias above the announced maximum is a protocol error.
    dropped = threading.Event()
    reason = {}
    pub.on_disconnect = lambda c, u, f, rc, p: (reason.setdefault("rc", rc), dropped.set())
    pub.reconnect_delay_set(60, 60)
    bad = Properties(PacketTypes.PUBLISH)
    bad.TopicAlias = 9
    pub.publish("alias/x", b"3", qos=1, properties=bad)
    assert dropped.wait(5)
    assert str(reason["rc"]) == "Topic alias invalid"
    pub.loop_stop()
    close(sub)


def test_denied_publish_gets_puback_not_authorized_and_keeps_the_connection(roost, tmp_path):
    import json
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["iot:Connect", "iot:Subscribe", "iot:Receive"], "Resource": "*"},
        {"Effect": "Allow", "Action": "iot:Publish", "Resource": "arn:aws:iot:*:*:topic/ok/*"},
    ]}
    dev = make_device(roost, tmp_path, "v5-deny", policy=json.dumps(policy))
    client, inbox, _ = connect5(dev, roost.mqtt_port, "v5-deny")
    acks = {}
    done = threading.Event()

    def on_publish(c, u, mid, rc, props):
        acks[mid] = rc
        if len(acks) == 2:
            done.set()

    client.on_publish = on_publish
    subscribe(client, "ok/#")
    denied = client.publish("nope/x", b"x", qos=1)
    allowed = client.publish("ok/x", b"y", qos=1)
    assert done.wait(10)
    assert str(acks[denied.mid]) == "Not authorized"
    assert str(acks[allowed.mid]) == "Success"
    assert inbox.get().payload == b"y"
    close(client)


def test_shared_subscriptions_deliver_each_message_once(roost, tmp_path):
    dev = make_device(roost, tmp_path, "shared")
    members = [connect5(dev, roost.mqtt_port, f"worker-{i}") for i in range(3)]
    for client, _, _ in members:
        assert subscribe(client, "$share/workers/jobs/+") == [1]
    pub, _, _ = connect5(dev, roost.mqtt_port, "dispatcher")
    for i in range(30):
        pub.publish(f"jobs/{i}", str(i).encode(), qos=1).wait_for_publish(10)
    received = []
    counts = []
    for _, inbox, _ in members:
        got = [m.payload for m in inbox.take(30, timeout=2)]
        counts.append(len(got))
        received.extend(got)
    assert sorted(int(p) for p in received) == list(range(30))
    assert all(c > 0 for c in counts), counts
    close(pub, *(c for c, _, _ in members))


def test_aws_limits_refuse_with_reason_codes(roost, tmp_path):
    dev = make_device(roost, tmp_path, "limits")
    client, _, _ = connect5(dev, roost.mqtt_port, "limits")
    # Topic filters: too many levels (8 allowed) or too long (256 bytes) are invalid.
    assert subscribe(client, "/".join(["l"] * 9)) == [0x8F]
    assert subscribe(client, "/".join(["l"] * 8)) == [1]
    # Reserved $aws/events cannot be published to: the connection is closed.
    dropped = threading.Event()
    client.on_disconnect = lambda *a: dropped.set()
    client.reconnect_delay_set(60, 60)
    client.publish("$aws/events/presence/connected/x", b"fake", qos=1)
    assert dropped.wait(5)
    client.loop_stop()
    # A client id longer than 128 bytes is refused at CONNECT.
    long_id = dev.paho("x" * 129, protocol=mqtt.MQTTv5)
    result = paho_connect(long_id, roost.mqtt_port)
    assert str(result["rc"]) in ("Client identifier not valid", "Not authorized"), result
    long_id.loop_stop()
    # A filter over 256 bytes is refused before it is even parsed: DISCONNECT 0x8F.
    client, _, _ = connect5(dev, roost.mqtt_port, "long-filter")
    dropped = threading.Event()
    reason = {}
    client.on_disconnect = lambda c, u, f, rc, p: (reason.setdefault("rc", rc), dropped.set())
    client.reconnect_delay_set(60, 60)
    client.subscribe("l/" + "x" * 300, qos=1)
    assert dropped.wait(5)
    assert str(reason["rc"]) == "Topic filter invalid"
    client.loop_stop()
    # 50 subscriptions per connection: the 51st gets Quota exceeded.
    client, _, _ = connect5(dev, roost.mqtt_port, "quota")
    for i in range(50):
        assert subscribe(client, f"q/{i}") == [1]
    assert subscribe(client, "q/50") == [0x97]
    close(client)


def test_subscription_events(roost, tmp_path):
    import json
    dev = make_device(roost, tmp_path, "sub-events")
    watcher, inbox, _ = connect5(dev, roost.mqtt_port, "event-reader")
    subscribe(watcher, "$aws/events/subscriptions/+/subscriber")
    client, _, _ = connect5(dev, roost.mqtt_port, "subscriber")
    subscribe(client, "a/b")
    client.unsubscribe("a/b")
    events = [json.loads(inbox.get().payload) for _ in range(2)]
    assert [(e["eventType"], e["topics"]) for e in events] == [("subscribed", ["a/b"]), ("unsubscribed", ["a/b"])]
    close(client, watcher)


def test_an_expired_session_is_not_resumed(roost, tmp_path):
    """Session expiry is exact at reconnect: 1 s after the disconnect the
    session is gone, whether or not the periodic sweep (every 5 s) ran."""
    dev = make_device(roost, tmp_path, "v5-expiry")

    def connect(expiry):
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = expiry
        client = dev.paho("v5-expiry", protocol=mqtt.MQTTv5)
        result = paho_connect(client, roost.mqtt_port, properties=props, clean_start=False)
        assert result["rc"] == 0
        return client, None, result

    client, _, _ = connect(1)
    assert subscribe(client, "expiry/t", qos=1) == [1]
    close(client)
    # Still within its expiry: resumed, with its subscription.
    client, _, result = connect(1)
    assert result["flags"].session_present
    close(client)
    time.sleep(1.3)
    before = roost.metric("roost_gateway_sessions_expired_total")
    client, _, result = connect(60)
    assert not result["flags"].session_present
    assert roost.metric("roost_gateway_sessions_expired_total") == before + 1
    close(client)


def test_a_message_larger_than_the_clients_maximum_packet_size_is_dropped_and_counted(roost, tmp_path):
    """Spec 3.1.2.11.4: the server never sends a client a packet larger than
    its Maximum Packet Size; such a message is dropped for that client (QoS
    0 and 1 alike), counted, and the connection goes on."""
    dev = make_device(roost, tmp_path, "v5-small")
    small = Properties(PacketTypes.CONNECT)
    small.MaximumPacketSize = 256
    sub, inbox, _ = connect5(dev, roost.mqtt_port, "v5-small-sub", properties=small)
    assert subscribe(sub, "sized/#") == [1]
    pub, _, _ = connect5(dev, roost.mqtt_port, "v5-small-pub")
    pub.publish("sized/big", b"x" * 1000, qos=0)
    pub.publish("sized/big", b"y" * 1000, qos=1).wait_for_publish(10)
    pub.publish("sized/small", b"fits", qos=1).wait_for_publish(10)
    m = inbox.get()
    assert (m.topic, m.payload) == ("sized/small", b"fits")
    assert inbox.empty_for(0.3)
    assert wait_until(lambda: roost.metric("roost_gateway_dropped_too_large_total") == 2, 10)
    assert sub.is_connected()
    close(sub, pub)
