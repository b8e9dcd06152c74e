"""No acknowledged message is lost under load: unpaced QoS 1 publishers into a
subscriber that stops reading for a while are slowed (their PUBACKs held)
instead of having their messages dropped; a subscriber slow past the
slow-consumer timeout is disconnected, and its persistent session delivers
everything on reconnect."""

import threading
import time

import pytest

from conftest import make_device
from mqtt_helpers import close, paho_connect, subscribe_wait, wait_until

PUBLISHERS = 20
PER_PUBLISHER = 500  # 10,000 messages: ten times a session's queue mark


class Receiver:
    """A paho subscriber that holds its network thread still (reads nothing)
    for `stall` seconds at its first message, then takes everything."""

    def __init__(self, device, port, client_id, stall, clean=True):
        self.stall = stall
        self.got = set()
        self.count = 0
        self.lock = threading.Lock()
        self.stalled = threading.Event()
        self.client = device.paho(client_id, clean=clean)
        self.client.max_inflight_messages_set(100)
        self.client.on_message = self.on_message
        self.result = paho_connect(self.client, port)
        assert self.result["rc"] == 0

    def on_message(self, client, userdata, message):
        if not self.stalled.is_set():
            self.stalled.set()
            time.sleep(self.stall)
        with self.lock:
            self.got.add(bytes(message.payload))
            self.count += 1


class Publisher:
    """An unpaced QoS 1 publisher: everything handed to paho at once, up to
    100 in flight; records which messages Roost acknowledged."""

    def __init__(self, device, port, client_id, topic, index):
        self.acked_mids = set()
        self.mids = {}
        self.client = device.paho(client_id)
        self.client.max_inflight_messages_set(100)
        self.client.max_queued_messages_set(0)
        # Called on paho's network thread; a set's add is atomic.
        self.client.on_publish = lambda c, u, mid, rc, props: self.acked_mids.add(mid)
        self.topic = topic
        self.index = index
        assert paho_connect(self.client, port)["rc"] == 0

    def run(self, count):
        for i in range(count):
            payload = f"{self.index}:{i}".encode()
            self.mids[self.client.publish(self.topic, payload, qos=1).mid] = payload

    @property
    def acked(self):
        return {self.mids[m] for m in list(self.acked_mids) if m in self.mids}


def publish_all(publishers, count):
    threads = [threading.Thread(target=p.run, args=(count,)) for p in publishers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def all_acked(publishers, count):
    return all(len(p.acked) == count for p in publishers)


@pytest.mark.xdist_group("heavy")
def test_unpaced_publishers_into_a_stalled_subscriber_lose_nothing(roost, tmp_path):
    dev = make_device(roost, tmp_path, "fanin")
    receiver = Receiver(dev, roost.mqtt_port, "fanin-sub", stall=3)
    assert subscribe_wait(receiver.client, "fanin/#", qos=1) == [1]
    publishers = [Publisher(dev, roost.mqtt_port, f"fanin-pub-{i}", f"fanin/{i}", i) for i in range(PUBLISHERS)]

    publish_all(publishers, PER_PUBLISHER)
    assert wait_until(lambda: all_acked(publishers, PER_PUBLISHER), timeout=120), \
        f"acknowledged: {sum(len(p.acked) for p in publishers)}"
    acked = set().union(*(p.acked for p in publishers))
    assert wait_until(lambda: receiver.got >= acked, timeout=60), \
        f"{len(acked - receiver.got)} acknowledged messages never arrived"

    metrics = roost.metrics()
    assert metrics[("roost_gateway_dropped_queue_full_total", ())] == 0
    # The load did reach the queue's mark: publishers were slowed, not dropped.
    assert metrics[("roost_gateway_publishers_slowed_total", ())] > 0
    assert metrics[("roost_gateway_slow_consumers_disconnected_total", ())] == 0
    close(receiver.client, *(p.client for p in publishers))


@pytest.mark.xdist_group("heavy")
def test_a_subscriber_slow_past_the_limit_is_disconnected_and_its_session_keeps_everything(roost_factory, tmp_path):
    # A small queue mark (100), so that what is queued when the subscriber
    # is cut (at most twice the mark, besides the 100 in flight) is all kept.
    roost = roost_factory("--slow-consumer-timeout-secs", "2", "--mqtt-max-queued-messages", "100")
    dev = make_device(roost, tmp_path, "slowpoke")
    receiver = Receiver(dev, roost.mqtt_port, "slowpoke-sub", stall=8, clean=False)
    assert subscribe_wait(receiver.client, "slow/#", qos=1) == [1]
    publishers = [Publisher(dev, roost.mqtt_port, f"slow-pub-{i}", f"slow/{i}", i) for i in range(4)]

    publish_all(publishers, 60)
    # The publishers are not held for ever: the stalled subscriber is
    # disconnected after the timeout, and they go on.
    assert wait_until(lambda: all_acked(publishers, 60), timeout=60)
    assert wait_until(lambda: roost.metric("roost_gateway_slow_consumers_disconnected_total") >= 1, timeout=10)
    receiver.client.loop_stop()
    receiver.client.disconnect()

    # Back with its persistent session: everything acknowledged arrives.
    again = Receiver(dev, roost.mqtt_port, "slowpoke-sub", stall=0, clean=False)
    assert again.result["flags"].session_present
    acked = set().union(*(p.acked for p in publishers))
    everything = lambda: (receiver.got | again.got) >= acked  # noqa: E731
    assert wait_until(everything, timeout=60), \
        f"{len(acked - receiver.got - again.got)} acknowledged messages never arrived"
    assert roost.metric("roost_gateway_dropped_queue_full_total") == 0
    close(again.client, *(p.client for p in publishers))


@pytest.mark.xdist_group("heavy")
def test_https_publishers_into_a_stalled_subscriber_are_answered_late_not_dropped(roost_factory, tmp_path):
    """HTTPS publishes are slowed like MQTT ones: the answer to a publish that
    left a subscriber's queue past its mark waits until the queue has room,
    so nothing answered 200 is dropped."""
    from test_gateway_http_publish import https_publish

    roost = roost_factory("--mqtt-max-queued-messages", "50")
    dev = make_device(roost, tmp_path, "https-fanin")
    receiver = Receiver(dev, roost.mqtt_port, "https-fanin-sub", stall=3)
    assert subscribe_wait(receiver.client, "hfan/#", qos=1) == [1]
    answers = {}

    def publish(index):
        for i in range(100):
            payload = f"{index}:{i}".encode()
            answers[payload] = https_publish(dev, roost.https_port, f"hfan/{index}", payload)[0]

    threads = [threading.Thread(target=publish, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 400 messages: the 100 in flight to the stalled client, then twice the
    # queue's mark (100) would have been all it could keep.
    accepted = {payload for payload, status in answers.items() if status == 200}
    assert len(accepted) == 400, f"answers other than 200: {[s for s in answers.values() if s != 200][:5]}"
    assert wait_until(lambda: receiver.got >= accepted, timeout=60), \
        f"{len(accepted - receiver.got)} accepted messages never arrived"
    assert roost.metric("roost_gateway_dropped_queue_full_total") == 0
    assert roost.metric("roost_gateway_publishers_slowed_total") > 0
    close(receiver.client)
