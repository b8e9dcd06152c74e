"""Several Roost nodes joined through a real nats-server: what a device
publishes on one node reaches the matching subscribers on another, with the
real clients (paho, mosquitto_pub). Until the registry is shared
(PostgreSQL), each node has its own devices."""

import json
import shutil
import ssl
import threading
import subprocess
import time
import urllib.error
import urllib.request

import pytest

import conftest
from conftest import make_device, roost_binary
from mqtt_helpers import close, connect_with_inbox, mosquitto, paho_connect, subscribe_wait, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.xdist_group("cluster")]


def nodes(roost_factory, nats, n=2):
    return [
        roost_factory("--nats-url", nats.url, "--node-id", f"node{i}", name=f"node{i}")
        for i in range(1, n + 1)
    ]


def test_a_publish_on_one_node_reaches_subscribers_on_another(roost_factory, nats_server, tmp_path):
    node1, node2 = nodes(roost_factory, nats_server)
    publisher = make_device(node1, tmp_path / "n1", "publisher")
    watcher = make_device(node2, tmp_path / "n2", "watcher")
    narrow, narrow_inbox, _ = connect_with_inbox(watcher, node2.mqtt_port, "narrow")
    wide, wide_inbox, _ = connect_with_inbox(watcher, node2.mqtt_port, "wide")
    assert subscribe_wait(narrow, "sensor/+/t", qos=1) == [1]
    assert subscribe_wait(narrow, "$aws/things/+/shadow/update", qos=1) == [1]
    assert subscribe_wait(wide, "#", qos=1) == [1]

    sent = [
        ("sensor/room.1/t", "0"),  # a dot inside a level
        ("sensor//t", "0"),  # an empty level
        ("$aws/things/t1/shadow/update", "0"),  # a reserved topic
        ("sensor/q/t", "1"),
    ]
    for topic, qos in sent:
        done = mosquitto(publisher, node1.mqtt_port, "-t", topic, "-m", topic, "-q", qos, "-i", "pub")
        assert done.returncode == 0, done.stderr

    got = sorted((t, p.decode(), q) for t, p, q, _ in narrow_inbox.take(4))
    assert got == [
        ("$aws/things/t1/shadow/update", "$aws/things/t1/shadow/update", 0),
        ("sensor//t", "sensor//t", 0),
        ("sensor/q/t", "sensor/q/t", 1),
        ("sensor/room.1/t", "sensor/room.1/t", 0),
    ]
    # `#` never sees a $ topic, even from another node.
    wide_got = sorted(t for t, *_ in wide_inbox.take(3))
    assert wide_got == ["sensor//t", "sensor/q/t", "sensor/room.1/t"]
    assert wide_inbox.empty_for(0.5) and narrow_inbox.empty_for(0.1)
    close(narrow, wide)

    # Each node counts what it forwarded and what it received.
    assert wait_until(lambda: (node2.metric("roost_cluster_received_total") or 0) >= 4)
    # QoS 0 over core NATS, QoS 1 through the stream.
    assert node1.metric("roost_cluster_forwarded_total") >= 3
    assert node1.metric("roost_cluster_stored_total") >= 1
    assert node2.metric("roost_gateway_messages_from_peers_total") == node2.metric("roost_cluster_received_total")
    for node in (node1, node2):
        assert node.metric("roost_cluster_forward_dropped_queue_full_total") == 0
        assert node.metric("roost_cluster_received_malformed_total") == 0


def test_a_retained_message_reaches_a_later_subscriber_on_another_node(roost_factory, nats_server, tmp_path):
    node1, _, node3 = nodes(roost_factory, nats_server, n=3)
    publisher = make_device(node3, tmp_path / "n3", "publisher")
    reader = make_device(node1, tmp_path / "n1", "reader")
    done = mosquitto(publisher, node3.mqtt_port, "-t", "state/door", "-m", "open", "-q", "1", "-r", "-i", "pub")
    assert done.returncode == 0, done.stderr
    # Set on node 3; node 1 holds it once it arrived; a new subscriber there gets it.
    def late_subscriber_sees_it(node, device):
        out = mosquitto(device, node.mqtt_port, "-t", "state/door", "-C", "1", "-W", "2", "-v", "-i", "reader", tool="mosquitto_sub")
        return out.stdout.strip() == "state/door open"

    assert wait_until(lambda: late_subscriber_sees_it(node1, reader), timeout=10)
    # Also set and deleted: a retained message that no longer exists.
    for message in (["-m", "x"], ["-n"]):
        done = mosquitto(publisher, node3.mqtt_port, "-t", "state/gone", *message, "-q", "1", "-r", "-i", "pub")
        assert done.returncode == 0, done.stderr
    assert wait_until(lambda: node3.metric("roost_cluster_retained_writes_total") == 3, timeout=10)
    # A node that joins the cluster afterwards starts with the cluster's
    # retained messages (its KV bucket), not with what it never received.
    node4 = roost_factory("--nats-url", nats_server.url, "--node-id", "node4", name="node4")
    assert node4.metric("roost_cluster_retained_loaded_total") == 1
    newcomer = make_device(node4, tmp_path / "n4", "reader")
    assert late_subscriber_sees_it(node4, newcomer)
    gone = mosquitto(newcomer, node4.mqtt_port, "-t", "state/gone", "-C", "1", "-W", "2", "-i", "reader", tool="mosquitto_sub")
    assert gone.stdout == "", gone.stdout


def test_a_node_that_cannot_join_says_why(tmp_path):
    for args, expected in [
        (["--nats-url", "http://example.invalid"], "not a NATS server address"),
        (["--nats-url", "nats://127.0.0.1:1"], "joining the cluster through NATS"),
        (["--nats-url", "nats://127.0.0.1:1", "--nats-subject-prefix", "a..b"], "nats_subject_prefix"),
    ]:
        proc = subprocess.run(
            [roost_binary(), "serve", "--data-dir", str(tmp_path / "data"), "--api-listen", "127.0.0.1:0",
             "--mqtt-listen", "127.0.0.1:0", "--https-listen", "127.0.0.1:0", *args],
            capture_output=True, text=True, timeout=60,
        )
        assert proc.returncode != 0
        assert expected in proc.stderr, proc.stderr
        assert "panicked" not in proc.stderr


def test_a_shared_subscription_over_two_nodes_delivers_each_message_once(roost_factory, nats_server, tmp_path):
    import paho.mqtt.client as mqtt

    node1, node2 = nodes(roost_factory, nats_server)
    publisher = make_device(node1, tmp_path / "n1", "publisher")
    w1 = make_device(node1, tmp_path / "n1", "worker1")
    w2 = make_device(node2, tmp_path / "n2", "worker2")
    c1, inbox1, _ = connect_with_inbox(w1, node1.mqtt_port, "worker1", protocol=mqtt.MQTTv5)
    c2, inbox2, _ = connect_with_inbox(w2, node2.mqtt_port, "worker2", protocol=mqtt.MQTTv5)
    assert subscribe_wait(c1, "$share/auditors/audit/#", qos=1) == [1]
    assert subscribe_wait(c2, "$share/auditors/audit/#", qos=1) == [1]
    # Each node holds the group in NATS before anything is published.
    for node in (node1, node2):
        assert wait_until(lambda: node.metric("roost_cluster_shared_subscriptions") == 1)

    n = 30
    lines = "\n".join(f"incident {i}" for i in range(n)) + "\n"
    done = subprocess.run(
        ["mosquitto_pub", "-h", "localhost", "-p", str(node1.mqtt_port), "--cafile", publisher.ca,
         "--cert", publisher.certfile, "--key", publisher.keyfile, "-i", "pub", "-q", "1",
         "-t", "audit/tenant-a", "-l"],
        input=lines, capture_output=True, text=True, timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert wait_until(lambda: inbox1.q.qsize() + inbox2.q.qsize() >= n, timeout=10)
    time.sleep(0.5)  # a duplicate, if any, would arrive by now
    got = [p.decode() for _, p, *_ in inbox1.take(n, timeout=0.5)] + [p.decode() for _, p, *_ in inbox2.take(n, timeout=0.5)]
    assert sorted(got) == sorted(f"incident {i}" for i in range(n)), "each message exactly once across the group"
    close(c1, c2)


def test_the_later_connection_with_a_client_id_wins_across_nodes(roost_factory, nats_server, tmp_path):
    import paho.mqtt.client as mqtt

    node1, node2 = nodes(roost_factory, nats_server)
    d1 = make_device(node1, tmp_path / "n1", "sensor")
    d2 = make_device(node2, tmp_path / "n2", "sensor")
    first = d1.paho("sensor-7", protocol=mqtt.MQTTv5)
    first_result = paho_connect(first, node1.mqtt_port)
    first.reconnect_delay_set(min_delay=60, max_delay=60)  # stay down once dropped
    later = d2.paho("sensor-7", protocol=mqtt.MQTTv5)
    later_result = paho_connect(later, node2.mqtt_port)
    assert not first_result["rc"].is_failure and not later_result["rc"].is_failure
    # AWS's DUPLICATE_CLIENTID: MQTT 5 reason 0x8E, Session taken over.
    assert wait_until(lambda: "disconnected" in first_result, timeout=10)
    assert first_result["disconnected"].value == 0x8E
    assert "disconnected" not in later_result
    assert node1.metric("roost_gateway_takeovers_total") == 1
    close(first, later)


# On PostgreSQL a node also checks that it has every registry change.
SHARED_REGISTRY_READY = "ok registry changes\n" if conftest.STORE == "postgres" else ""


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_readyz_says_when_a_node_lost_nats_and_healthz_that_it_lives(roost_factory, nats_server):
    alone = roost_factory(name="alone")
    shared = SHARED_REGISTRY_READY
    assert get(f"{alone.api_url}/readyz") == (200, "ok registry\n" + shared)
    (node,) = nodes(roost_factory, nats_server, n=1)
    assert get(f"{node.api_url}/healthz") == (200, "ok\n")
    assert get(f"{node.api_url}/readyz") == (200, "ok registry\n" + shared + "ok nats\n")
    nats_server.proc.kill()
    nats_server.proc.wait()
    assert wait_until(lambda: get(f"{node.api_url}/readyz")[0] == 503, timeout=10)
    status, body = get(f"{node.api_url}/readyz")
    assert "ok registry\n" in body and "failed nats: NATS connection" in body, body
    # Alive all the same: it still serves its own devices.
    assert get(f"{node.api_url}/healthz") == (200, "ok\n")


needs_postgres = pytest.mark.skipif(
    conftest.STORE != "postgres",
    reason="needs the registry on PostgreSQL: scripts/test runs this file again in its PostgreSQL pass",
)


def shared_registry_nodes(roost_factory, nats_server, tmp_path, n=2):
    """Nodes on one database and one CA (devices trust one root)."""
    node1 = roost_factory("--nats-url", nats_server.url, "--node-id", "node1", name="node1")
    others = []
    for i in range(2, n + 1):
        node_dir = tmp_path / f"node{i}"
        node_dir.mkdir()
        for name in ("ca.key", "root-ca.pem"):
            shutil.copy2(node1.data_dir / name, node_dir / name)
        conftest._databases[str(node_dir)] = conftest.postgres_url_for(node1.data_dir)
        others.append(roost_factory("--nats-url", nats_server.url, "--node-id", f"node{i}", name=f"node{i}"))
    return (node1, *others)


@needs_postgres
def test_the_connections_of_a_killed_node_get_their_will_and_disconnected_event_from_another(
    roost_factory, nats_server, tmp_path
):
    """kill -9 the node two devices are connected to: one of the surviving
    nodes (exactly one) publishes the disconnected lifecycle event of each
    (CONNECTION_LOST) and the will of the one that has a will; a device
    that disconnected cleanly before gets neither."""
    import paho.mqtt.client as mqtt

    node1, node2, node3 = shared_registry_nodes(roost_factory, nats_server, tmp_path, n=3)
    watcher = make_device(node1, tmp_path / "w", "watcher")
    canary = make_device(node1, tmp_path / "c", "canary")
    quiet = make_device(node1, tmp_path / "q", "quiet")
    watching, inbox, _ = connect_with_inbox(watcher, node1.mqtt_port, "watcher")
    assert subscribe_wait(watching, "status/#", qos=1) == [1]
    assert subscribe_wait(watching, "$aws/events/presence/disconnected/#", qos=1) == [1]

    with_will = canary.paho("canary", protocol=mqtt.MQTTv5)
    with_will.will_set("status/canary", b"offline", qos=1, retain=False)
    assert not paho_connect(with_will, node2.mqtt_port)["rc"].is_failure
    without_will, _, _ = connect_with_inbox(quiet, node2.mqtt_port, "quiet")
    gone_cleanly = canary.paho("canary-clean", protocol=mqtt.MQTTv5)
    gone_cleanly.will_set("status/canary-clean", b"offline", qos=1)
    assert not paho_connect(gone_cleanly, node2.mqtt_port)["rc"].is_failure
    gone_cleanly.disconnect()
    # The clean one's disconnection arrives from node 2 itself.
    topic, payload, _, _ = inbox.get(timeout=10)
    assert topic == "$aws/events/presence/disconnected/canary-clean", topic
    assert json.loads(payload)["disconnectReason"] == "CLIENT_INITIATED_DISCONNECT"

    node2.kill()
    seen = {}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(seen) < 3:
        for topic, payload, _, _ in inbox.take(1, timeout=1):
            seen.setdefault(topic, []).append(payload)
    assert seen.get("status/canary") == [b"offline"], seen
    for client in ("canary", "quiet"):
        events = seen.get(f"$aws/events/presence/disconnected/{client}")
        assert events and len(events) == 1, seen
        event = json.loads(events[0])
        assert (event["disconnectReason"], event["clientInitiatedDisconnect"]) == ("CONNECTION_LOST", False), event
    # Nothing more: not from the other surviving node, not for the clean one.
    assert inbox.empty_for(3), inbox.take(5, timeout=0.1)
    ended = node1.metric("roost_cluster_lost_connections_ended_total") + node3.metric("roost_cluster_lost_connections_ended_total")
    assert ended == 2
    close(watching, with_will, without_will, gone_cleanly)


@needs_postgres
def test_nodes_sharing_one_registry_serve_a_device_on_either(roost_factory, nats_server, tmp_path):
    node1, node2 = shared_registry_nodes(roost_factory, nats_server, tmp_path)

    # Registered once, through node 1's API ...
    device = make_device(node1, tmp_path, "sensor")
    assert node2.boto().describe_thing(thingName="sensor")["thingName"] == "sensor"
    # ... it connects to node 2 as well, and hears there what it publishes on node 1.
    sub, inbox, result = connect_with_inbox(device, node2.mqtt_port, "sensor-listener")
    assert not result["rc"].is_failure
    assert subscribe_wait(sub, "audit/#", qos=1) == [1]
    done = mosquitto(device, node1.mqtt_port, "-t", "audit/tenant-a", "-m", "intrusion", "-q", "1", "-i", "sensor-speaker")
    assert done.returncode == 0, done.stderr
    assert inbox.get() == ("audit/tenant-a", b"intrusion", 1, False)
    close(sub)


@needs_postgres
def test_a_change_made_through_one_node_is_enforced_on_the_others(roost_factory, nats_server, tmp_path):
    import paho.mqtt.client as mqtt

    node1, node2, node3 = shared_registry_nodes(roost_factory, nats_server, tmp_path, n=3)
    device = make_device(node1, tmp_path, "sensor")
    client, _, result = connect_with_inbox(device, node1.mqtt_port, "sensor", protocol=mqtt.MQTTv5)
    acks = []
    client.on_publish = lambda c, u, mid, reason_code, properties: acks.append(reason_code.value)

    def publish():
        client.publish("audit/a", b"x", qos=1).wait_for_publish(10)
        return acks[-1]

    assert publish() == 0  # allowed (on a cluster node: Success, subscribers elsewhere are not counted)
    # The policy detached through node 2: node 1 refuses the next publishes.
    iot2 = node2.boto()
    iot2.detach_policy(policyName="policy-sensor", target=device.cert_arn)
    assert wait_until(lambda: publish() == 0x87, timeout=5)
    # The certificate revoked through node 3: node 1 closes its connection
    # within a second of the API's answer (the database announces the change).
    node3.boto().update_certificate(certificateId=device.cert_id, newStatus="REVOKED")
    assert wait_until(lambda: "disconnected" in result, timeout=1.0)
    assert node1.metric("roost_gateway_kicked_certificate_total") == 1
    close(client)


@needs_postgres
def test_a_node_that_cannot_confirm_its_registry_is_current_is_not_ready_and_lets_no_one_new_in(
    roost_factory, nats_server, tmp_path
):
    """Registry changes are announced by the database in their own
    transaction and checked with a version poll every second; a node that
    cannot read the version (here: the table locked by another session)
    past --registry-freshness-secs reports not ready and refuses new
    connections with "server unavailable", keeps serving the ones it has,
    and recovers by itself."""
    import paho.mqtt.client as mqtt

    node1, node2 = shared_registry_nodes(roost_factory, nats_server, tmp_path)
    device = make_device(node1, tmp_path, "sensor")
    readyz = f"{node2.api_url}/readyz"
    assert get(readyz) == (200, "ok registry\nok registry changes\nok nats\n")
    early, _, early_result = connect_with_inbox(device, node2.mqtt_port, "sensor-early", protocol=mqtt.MQTTv5)
    assert not early_result["rc"].is_failure

    locker = subprocess.Popen(
        ["psql", "-q", "-d", conftest.postgres_url_for(node1.data_dir), "-c",
         "BEGIN; LOCK TABLE registry_version IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(12); COMMIT;"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_until(lambda: get(readyz)[0] == 503, timeout=20)
        status, body = get(readyz)
        assert "ok registry\n" in body and "failed registry changes: not confirmed up to date" in body, body
        assert get(f"{node2.api_url}/healthz") == (200, "ok\n")
        late, _, late_result = connect_with_inbox(device, node2.mqtt_port, "sensor-late", protocol=mqtt.MQTTv5)
        assert late_result["rc"].value == 0x88, late_result  # Server unavailable
        close(late)
        # The connection it already had still publishes.
        sent = early.publish("audit/a", b"x", qos=1)
        sent.wait_for_publish(10)
        assert sent.is_published()
    finally:
        # PostgreSQL notices a killed client only after its sleep: let it end.
        locker.wait(timeout=30)
    assert wait_until(lambda: get(readyz)[0] == 200, timeout=20)
    again, _, again_result = connect_with_inbox(device, node2.mqtt_port, "sensor-late", protocol=mqtt.MQTTv5)
    assert not again_result["rc"].is_failure
    close(early, again)


def test_a_stopping_node_sends_its_clients_to_another_server(roost_factory, nats_server, tmp_path):
    import paho.mqtt.client as mqtt

    alone = roost_factory("--shutdown-grace-secs", "2", name="alone")
    (node,) = nodes(roost_factory, nats_server, n=1)
    connected = []
    for server in (alone, node):
        device = make_device(server, tmp_path / server.data_dir.name, "sensor")
        client = device.paho("sensor", protocol=mqtt.MQTTv5)
        result = paho_connect(client, server.mqtt_port)
        client.reconnect_delay_set(min_delay=60, max_delay=60)  # stay down once dropped
        connected.append((server, client, result))
    for server, _, _ in connected:
        server.stop()  # SIGTERM
    # MQTT 5's reasons: alone, "server shutting down" (0x8B); a cluster
    # node, "use another server" (0x9C): the others serve the same devices.
    reasons = []
    for _, client, result in connected:
        assert wait_until(lambda: "disconnected" in result, timeout=10)
        reasons.append(result["disconnected"].value)
        client.loop_stop()
    assert reasons == [0x8B, 0x9C]


class NumberedPublisher:
    """A paho MQTT 5 publisher sending numbered QoS 1 messages, unpaced
    (50 in flight); `.acked` holds the numbers whose PUBACK said Success."""

    def __init__(self, device, port, client_id):
        import paho.mqtt.client as mqtt

        self.client = device.paho(client_id, protocol=mqtt.MQTTv5)
        self.client.max_inflight_messages_set(50)
        self.client.max_queued_messages_set(0)
        self.numbers, self.early = {}, {}
        self.payload = str
        self.acked, self.refused = set(), set()
        self.lock = threading.Lock()

        def on_publish(client, userdata, mid, reason_code, properties):
            with self.lock:
                number = self.numbers.pop(mid, None)
                if number is None:
                    self.early[mid] = reason_code.value
                else:
                    self.answered(number, reason_code.value)

        self.client.on_publish = on_publish
        assert paho_connect(self.client, port)["rc"] == 0

    def answered(self, number, reason):
        (self.acked if reason < 0x80 else self.refused).add(number)

    def send(self, numbers, topic):
        # Not under the lock: paho may call on_publish holding its own.
        for n in numbers:
            info = self.client.publish(topic, self.payload(n), qos=1)
            with self.lock:
                if info.mid in self.early:
                    self.answered(n, self.early.pop(info.mid))
                else:
                    self.numbers[info.mid] = n

    def wait_answered(self, timeout=60):
        return wait_until(lambda: not self.numbers, timeout=timeout)


def persistent_subscriber(device, port, client_id, inbox=None):
    import paho.mqtt.client as mqtt

    client = device.paho(client_id, protocol=mqtt.MQTTv311, clean=False)
    inbox = inbox if inbox is not None else []
    client.on_message = lambda c, u, m: inbox.append(int(m.payload))
    result = paho_connect(client, port)
    return client, inbox, result


def check_delivered(acked, received, label):
    """Every PUBACKed number arrived; duplicates are reported, not failed."""
    got = set(received)
    lost = sorted(acked - got)
    duplicates = len(received) - len(got)
    print(f"{label}: {len(acked)} acknowledged, {len(got)} received, {duplicates} duplicates, {len(lost)} lost")
    return lost


def test_a_persistent_session_survives_its_node_and_the_stream_leader_being_killed(roost_factory, nats_cluster, tmp_path):
    urls = ",".join(nats_cluster.urls)
    node1, node2, node3 = [
        roost_factory("--nats-url", urls, "--node-id", f"node{i}", name=f"node{i}") for i in (1, 2, 3)
    ]
    publisher_device = make_device(node1, tmp_path / "n1", "publisher")
    on_node2 = make_device(node2, tmp_path / "n2", "auditor")
    on_node3 = make_device(node3, tmp_path / "n3", "auditor")

    received = []
    sub, _, result = persistent_subscriber(on_node2, node2.mqtt_port, "auditor", received)
    assert result["rc"] == 0
    assert subscribe_wait(sub, "audit/#", qos=1) == [1]
    # The session's record, with its subscription, is written within
    # 100 ms of the change (docs/cluster.md).
    assert wait_until(lambda: (node2.metric("roost_cluster_session_writes_total") or 0) >= 1)
    time.sleep(1)

    publisher = NumberedPublisher(publisher_device, node1.mqtt_port, "publisher")
    sending = threading.Thread(target=publisher.send, args=(range(2000), "audit/tenant-a"))
    sending.start()
    assert wait_until(lambda: len(received) >= 500, timeout=60)
    node2.proc.kill()  # kill -9, mid-way
    node2.proc.wait()
    sub.loop_stop()

    back, _, result = persistent_subscriber(on_node3, node3.mqtt_port, "auditor", received)
    assert result["rc"] == 0
    assert result["flags"].session_present, "the session moved to node 3"
    sending.join()
    assert publisher.wait_answered()
    assert wait_until(lambda: not (publisher.acked - set(received)), timeout=60)
    assert check_delivered(publisher.acked, received, "node 2 killed") == []
    assert len(publisher.acked) == 2000, f"refused: {len(publisher.refused)}"
    assert node3.metric("roost_cluster_sessions_claimed_total") == 1

    # Then the stream's leader (a NATS server) is killed mid-way.
    leader = nats_cluster.stream_leader("roost-messages")
    assert leader is not None
    received.clear()
    publisher.acked.clear()
    sending = threading.Thread(target=publisher.send, args=(range(2000, 4000), "audit/tenant-a"))
    sending.start()
    assert wait_until(lambda: len(received) >= 500, timeout=60)
    nats_cluster.kill(leader)
    sending.join()
    assert publisher.wait_answered(timeout=120)
    assert wait_until(lambda: not (publisher.acked - set(received)), timeout=60)
    assert check_delivered(publisher.acked, received, f"stream leader {leader} killed") == []
    assert len(publisher.acked) + len(publisher.refused) == 2000
    close(back, publisher.client)


def test_a_rule_runs_once_per_message_across_nodes_and_none_is_lost_with_the_receiving_node(
        roost_factory, nats_cluster, moto_s3, tmp_path):
    import boto3

    s3 = boto3.client("s3", endpoint_url=moto_s3, region_name="us-east-1", aws_access_key_id="moto",
                      aws_secret_access_key="moto")
    s3.create_bucket(Bucket="iot-webinar-audits")
    urls = ",".join(nats_cluster.urls)
    nodes = [
        roost_factory("--nats-url", urls, "--node-id", f"node{i}", "--s3-endpoint", moto_s3,
                      "--s3-access-key-id", "moto", "--s3-secret-access-key", "moto", name=f"node{i}")
        for i in (1, 2, 3)
    ]
    # Each node has its own registry here: the same rule on each.
    rule = {"sql": "SELECT * FROM 'audit/#'",
            "actions": [{"s3": {"bucketName": "iot-webinar-audits", "key": "audits/${n}",
                                "roleArn": "arn:aws:iam::0:role/r"}}]}
    for node in nodes:
        node.boto().create_topic_rule(ruleName="AuditRule", topicRulePayload=rule)
    node1 = nodes[0]
    publisher = NumberedPublisher(make_device(node1, tmp_path / "n1", "publisher"), node1.mqtt_port, "publisher")
    publisher.payload = lambda n: json.dumps({"n": n})

    def stored_keys():
        keys, token = set(), None
        while True:
            kw = {"ContinuationToken": token} if token else {}
            page = s3.list_objects_v2(Bucket="iot-webinar-audits", Prefix="audits/", **kw)
            keys |= {int(o["Key"].split("/")[1]) for o in page.get("Contents", [])}
            if not page.get("IsTruncated"):
                return keys
            token = page["NextContinuationToken"]

    def runs(live):
        return sum(node.metric("roost_rule_succeeded_total", rule="AuditRule") or 0 for node in live)

    # Steady state: each message's actions run once, on one of the nodes.
    publisher.send(range(200), "audit/tenant-a")
    assert publisher.wait_answered()
    assert publisher.acked == set(range(200))
    assert wait_until(lambda: stored_keys() == set(range(200)), timeout=30)
    assert wait_until(lambda: runs(nodes) == 200, timeout=10)
    assert runs(nodes) == 200, "a rule ran more than once for a message"

    # The node that received the messages dies mid-way: the rules of every
    # message it acknowledged still run, on the other nodes.
    sending = threading.Thread(target=publisher.send, args=(range(200, 1200), "audit/tenant-a"))
    sending.start()
    assert wait_until(lambda: len(publisher.acked) >= 500, timeout=60)
    node1.proc.kill()
    node1.proc.wait()
    sending.join()
    acked = set(publisher.acked)
    assert wait_until(lambda: acked <= stored_keys(), timeout=60), f"lost: {sorted(acked - stored_keys())[:10]}"
    print(f"receiving node killed: {len(acked) - 200} acknowledged after the steady part, all acted on")


def test_a_node_whose_nats_lost_its_quorum_is_not_ready_and_acknowledges_no_qos1(roost_factory, nats_cluster, tmp_path):
    node = roost_factory("--nats-url", ",".join(nats_cluster.urls), "--node-id", "node1", name="node1")
    device = make_device(node, tmp_path, "device")
    assert get(f"{node.api_url}/readyz")[0] == 200
    # Two of three NATS servers gone: the node stays connected to the
    # third, but JetStream has no quorum and answers nothing.
    nats_cluster.kill("n1")
    nats_cluster.kill("n2")
    assert wait_until(lambda: "failed nats: JetStream has not answered" in get(f"{node.api_url}/readyz")[1],
                      timeout=20), get(f"{node.api_url}/readyz")
    assert get(f"{node.api_url}/readyz")[0] == 503
    # A clean CONNECT still works (the session bucket's replicas answer
    # reads), but a QoS 1 message cannot be stored: after Roost's 10 s of
    # retries an MQTT 5 publisher is told so (0x80), never acknowledged.
    import paho.mqtt.client as mqtt

    publisher = NumberedPublisher(device, node.mqtt_port, "device")
    publisher.send([1], "audit/tenant-a")
    assert publisher.wait_answered(timeout=30)
    assert publisher.refused == {1} and not publisher.acked
    assert node.metric("roost_cluster_store_failures_total") >= 1
    close(publisher.client)
    # Over HTTPS too: no 200 for a QoS 1 message that was not stored.
    ctx = ssl.create_default_context(cafile=device.ca)
    ctx.load_cert_chain(device.certfile, device.keyfile)
    request = urllib.request.Request(f"https://localhost:{node.https_port}/topics/audit%2Fhttps?qos=1",
                                     data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, context=ctx, timeout=30)
    assert refused.value.code == 503
    assert get(f"{node.api_url}/healthz")[0] == 200
