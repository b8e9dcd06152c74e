"""Nothing lost: QoS 1 end to end, across a crash. Roost is killed with
SIGKILL (no shutdown code runs) right after the clients got their answers,
then started again on the same data directory: what it acknowledged is
still there.

Commits of gateway state happen in the order the changes were made, so the
PUBACK of a later durable change (a retained QoS 1 publish, here called a
barrier) proves that everything journaled before it is committed too: the
tests use one where the change they check was not itself acknowledged (a
delivery, a subscriber's PUBACK)."""

import socket
import sqlite3
import ssl

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from conformance_support import Raw, packets
from conftest import make_device
from mqtt_helpers import close, connect_with_inbox as connect, paho_connect, subscribe_wait as subscribe, wait_until
from test_gateway_http_publish import https_publish


def raw_tls(dev, port, client_id, clean=False):
    """A hand-driven MQTT 3.1.1 client over mutual TLS (it never PUBACKs on
    its own) and the server's CONNACK."""
    context = ssl.create_default_context(cafile=dev.ca)
    context.load_cert_chain(dev.certfile, dev.keyfile)
    sock = context.wrap_socket(socket.create_connection(("localhost", port), timeout=10), server_hostname="localhost")
    raw = Raw.over(sock)
    return raw, raw.connect(client_id, clean=clean)


def kill_and_restart(roost, *clients):
    """SIGKILL, then a start on the same data directory. The clients of the
    killed process are closed (raw) or stopped (paho) in between."""
    roost.kill()
    for client in clients:
        if isinstance(client, Raw):
            client.close()
        else:
            client.loop_stop()
    roost.start()


def barrier(client):
    """A durable change whose PUBACK proves that every earlier one is committed."""
    client.publish("barrier/retained", b"b", qos=1, retain=True).wait_for_publish(10)


def gateway_db(roost):
    """Read-only rows of gateway.db (sessions by client id, subscription filters, message counts)."""
    db = sqlite3.connect(f"file:{roost.data_dir / 'gateway.db'}?mode=ro", uri=True)
    try:
        sessions = dict(db.execute("SELECT client_id, id FROM sessions"))
        filters = {(s, f) for s, f in db.execute("SELECT session_id, filter FROM session_subscriptions")}
        messages = dict(db.execute("SELECT session_id, COUNT(*) FROM session_messages GROUP BY session_id"))
    finally:
        db.close()
    return sessions, filters, messages


def persistent(version):
    """connect() arguments for a persistent session in `version`."""
    if version == 5:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        return {"protocol": mqtt.MQTTv5, "clean_start": False, "properties": props}
    return {"protocol": mqtt.MQTTv311, "clean": False}


@pytest.mark.parametrize("version,sync", [(4, "normal"), (5, "full")])
def test_acknowledged_messages_survive_sigkill_in_order(roost_factory, tmp_path, version, sync):
    """The issue's check: a persistent subscriber is away; 200 QoS 1
    messages are each PUBACKed; Roost is killed at once; after the restart
    the subscriber gets all 200, in order. With either --state-sync."""
    roost = roost_factory("--state-sync", sync)
    dev = make_device(roost, tmp_path, f"kill-device-{version}")
    sub, _, _ = connect(dev, roost.mqtt_port, "away", **persistent(version))
    subscribe(sub, "durable/stream", qos=1)
    close(sub)
    pub = dev.paho("kill-producer")
    pub.max_inflight_messages_set(100)
    paho_connect(pub, roost.mqtt_port)
    sent = [pub.publish("durable/stream", str(i).encode(), qos=1) for i in range(200)]
    for info in sent:
        info.wait_for_publish(20)
    assert all(info.is_published() for info in sent)
    kill_and_restart(roost, pub)
    sub, inbox, result = connect(dev, roost.mqtt_port, "away", **persistent(version))
    assert result["flags"].session_present is True
    got = inbox.take(200, timeout=30)
    assert [int(p) for _, p, _, _ in got] == list(range(200))
    assert all(t == "durable/stream" and q == 1 for t, _, q, _ in got)
    assert inbox.empty_for(0.5)
    close(sub)


def test_unacknowledged_deliveries_come_again_with_dup_after_sigkill(roost, tmp_path):
    dev = make_device(roost, tmp_path, "dup-device")
    raw, connack = raw_tls(dev, roost.mqtt_port, "never-acks")
    assert connack == {"type": "CONNACK", "session_present": False, "code": 0}
    raw.send(packets.subscribe(1, [("inflight/#", 1)]))
    assert raw.read()["type"] == "SUBACK"
    pub, _, _ = connect(dev, roost.mqtt_port, "dup-producer")
    for i in range(5):
        pub.publish("inflight/x", f"m{i}".encode(), qos=1).wait_for_publish(10)
    first = [raw.read(5) for _ in range(5)]
    assert [(p["type"], p["payload"], p["dup"]) for p in first] == [("PUBLISH", f"m{i}", False) for i in range(5)]
    barrier(pub)
    kill_and_restart(roost, raw, pub)
    raw, connack = raw_tls(dev, roost.mqtt_port, "never-acks")
    assert connack["session_present"] is True
    again = [raw.read(5) for _ in range(5)]
    assert [(p["type"], p["payload"], p["dup"]) for p in again] == [("PUBLISH", f"m{i}", True) for i in range(5)]
    for p in again:
        raw.send(packets.ack("PUBACK", p["id"]))
    # The PINGRESP shows the PUBACKs were handled; the barrier, that their
    # changes are committed.
    raw.send(packets.PINGREQ)
    assert raw.read()["type"] == "PINGRESP"
    pub, _, _ = connect(dev, roost.mqtt_port, "dup-producer")
    barrier(pub)
    kill_and_restart(roost, raw, pub)
    raw, connack = raw_tls(dev, roost.mqtt_port, "never-acks")
    assert connack["session_present"] is True
    raw.send(packets.PINGREQ)
    assert raw.collect(1.0, stop_at="PINGRESP")["packets"] == [{"type": "PINGRESP"}]
    raw.close()


def test_retained_set_and_clear_survive_sigkill(roost, tmp_path):
    dev = make_device(roost, tmp_path, "retain-kill-device")
    pub, _, _ = connect(dev, roost.mqtt_port, "retain-kill-producer")
    pub.publish("status/lamp", b"on", qos=1, retain=True).wait_for_publish(10)
    kill_and_restart(roost, pub)
    sub, inbox, _ = connect(dev, roost.mqtt_port, "retain-kill-reader")
    subscribe(sub, "status/lamp")
    assert [(t, p, r) for t, p, _, r in inbox.take(1)] == [("status/lamp", b"on", True)]
    close(sub)
    assert roost.boto("iot-data").get_retained_message(topic="status/lamp")["payload"] == b"on"

    pub, _, _ = connect(dev, roost.mqtt_port, "retain-kill-producer")
    pub.publish("status/lamp", b"", qos=1, retain=True).wait_for_publish(10)
    kill_and_restart(roost, pub)
    sub, inbox, _ = connect(dev, roost.mqtt_port, "retain-kill-reader")
    subscribe(sub, "status/lamp")
    assert inbox.empty_for(1.0)
    close(sub)


def test_subscriptions_survive_sigkill_and_clean_sessions_leave_nothing(roost, tmp_path):
    dev = make_device(roost, tmp_path, "subs-kill-device")
    sub, live, _ = connect(dev, roost.mqtt_port, "subscribed-at-kill", clean=False)
    subscribe(sub, "a/+", qos=1)
    subscribe(sub, "b/#", qos=1)
    subscribe(sub, "c/x", qos=1)
    unsubscribed = []
    sub.on_unsubscribe = lambda *args: unsubscribed.append(True)
    sub.unsubscribe("c/x")
    clean, _, _ = connect(dev, roost.mqtt_port, "clean-at-kill", clean=True)
    subscribe(clean, "a/+", qos=1)
    pub, _, _ = connect(dev, roost.mqtt_port, "subs-kill-producer")
    # Delivered live to both (and acknowledged by both).
    pub.publish("a/0", b"to both", qos=1).wait_for_publish(10)
    assert [p for _, p, _, _ in live.take(1)] == [b"to both"]
    assert wait_until(lambda: unsubscribed, timeout=10)
    barrier(pub)
    roost.kill()
    for c in (sub, clean, pub):
        c.loop_stop()

    sessions, filters, messages = gateway_db(roost)
    assert "clean-at-kill" not in sessions
    persistent_id = sessions["subscribed-at-kill"]
    assert {f for s, f in filters if s == persistent_id} == {"a/+", "b/#"}
    assert {s for s, _ in filters} <= set(sessions.values())
    assert set(messages) <= set(sessions.values()), "only persistent sessions have messages saved"

    roost.start()
    pub, _, _ = connect(dev, roost.mqtt_port, "subs-kill-producer")
    for topic in ("a/1", "b/2/3", "c/x"):
        pub.publish(topic, topic.encode(), qos=1).wait_for_publish(10)
    sub, inbox, result = connect(dev, roost.mqtt_port, "subscribed-at-kill", clean=False)
    assert result["flags"].session_present is True
    got = inbox.take(2, timeout=10)
    assert sorted(p for _, p, _, _ in got) == [b"a/1", b"b/2/3"]
    assert inbox.empty_for(0.5)
    clean, _, result = connect(dev, roost.mqtt_port, "clean-at-kill", clean=False)
    assert result["flags"].session_present is False
    close(sub, clean, pub)


def test_https_and_iot_data_publishes_survive_sigkill(roost, tmp_path):
    """HTTPS publish and iot-data Publish answer after the message is saved."""
    dev = make_device(roost, tmp_path, "http-kill-device")
    sub, _, _ = connect(dev, roost.mqtt_port, "http-away", clean=False)
    subscribe(sub, "via/#", qos=1)
    close(sub)
    status, _ = https_publish(dev, roost.https_port, "via/https", b"over https")
    assert status == 200
    roost.boto("iot-data").publish(topic="via/iot-data", payload=b"over iot-data", qos=1)
    kill_and_restart(roost)
    sub, inbox, result = connect(dev, roost.mqtt_port, "http-away", clean=False)
    assert result["flags"].session_present is True
    assert [(t, p) for t, p, _, _ in inbox.take(2)] == [("via/https", b"over https"), ("via/iot-data", b"over iot-data")]
    close(sub)


def test_a_failing_state_store_never_acknowledges_success(roost, tmp_path):
    """While gateway.db refuses writes (here: a table renamed away under
    Roost), a QoS 1 publish that a persistent session must keep is not
    acknowledged as saved: MQTT 5 gets PUBACK 0x80, MQTT 3.1.1 has its
    connection closed. Roost retries; once the table is back the messages are
    saved and delivered (at least once), and publishing works again."""
    dev = make_device(roost, tmp_path, "failing-device")
    sub, _, _ = connect(dev, roost.mqtt_port, "failing-away", clean=False)
    subscribe(sub, "fail/#", qos=1)
    close(sub)
    db = sqlite3.connect(roost.data_dir / "gateway.db", timeout=10)
    db.execute("ALTER TABLE session_messages RENAME TO session_messages_away")
    db.commit()

    v5, _, _ = connect(dev, roost.mqtt_port, "failing-v5", protocol=mqtt.MQTTv5)
    acks = []
    v5.on_publish = lambda c, u, mid, rc, props: acks.append(rc.value)
    v5.publish("fail/v5", b"refused", qos=1).wait_for_publish(10)
    assert acks == [0x80]

    v3, _, _ = connect(dev, roost.mqtt_port, "failing-v311")
    v3.reconnect_delay_set(60, 60)
    closed = []
    v3.on_disconnect = lambda *args: closed.append(True)
    v3.publish("fail/v311", b"closed", qos=1)
    assert wait_until(lambda: closed, timeout=10)
    v3.loop_stop()
    assert "SAVING GATEWAY STATE FAILED" in roost.read_log()

    db.execute("ALTER TABLE session_messages_away RENAME TO session_messages")
    db.commit()
    db.close()
    # The writer's retries (backing off up to 5 s) now succeed.
    assert wait_until(lambda: "gateway state saved after failures" in roost.read_log(), timeout=20)
    v5.publish("fail/v5", b"saved", qos=1).wait_for_publish(10)
    assert acks == [0x80, 0]
    close(v5)
    sub, inbox, _ = connect(dev, roost.mqtt_port, "failing-away", clean=False)
    got = [p for _, p, _, _ in inbox.take(3)]
    assert got == [b"refused", b"closed", b"saved"]
    close(sub)
