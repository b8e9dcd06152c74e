"""Differential conformance: the same scripted client sessions run against
Roost (plain listener, `--mqtt-profile full`) and against Debian's Mosquitto
in the same test, and what the clients observe must be equal, except for the
differences listed in KNOWN_DIFFERENCES (each with its reason; `BUG:` marks
the ones Roost should fix). A new difference fails, and so does a listed one
that went away, until the table is updated. docs/conformance.md explains the
suite and carries the same table.

A scenario is a function of a `Context` (an endpoint and a namespace unique
to the scenario) that returns plain data: CONNACK codes and flags, SUBACK
and PUBACK codes, messages received, disconnects seen, raw packets received.
What legitimately varies between brokers is normalised before it is
recorded (see conformance_support): topics are relative to the namespace,
assigned client ids are recorded as "assigned or not", configured limits in
CONNACK (Receive Maximum, Topic Alias Maximum, Maximum Packet Size, Server
Keep Alive) are left out, messages on different topics are sorted by topic
(MQTT orders messages per topic only), reason strings are dropped, and
timings are recorded as "within the expected window" booleans, or not at all
where Mosquitto's timers are too coarse (keep-alive).

Run: .venv/bin/pytest tests/python/test_conformance.py (after cargo build -p
roost); ROOST_CONFORMANCE_DUMP=<dir> writes every observation as JSON.
"""

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.subscribeoptions import SubscribeOptions

from conformance_support import (
    V5, V311, Context, Mosquitto, connack_capabilities, diff, packets, props, render,
    roost_endpoint, start_roost_plain,
)

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = {}


def scenario(fn):
    SCENARIOS[fn.__name__] = fn
    return fn


def mqtt_match(topic_filter: str, topic: str) -> bool:
    """MQTT topic matching (spec 4.7), used only to know how many messages
    to wait for; the brokers' answers are what is compared."""
    if topic.startswith("$") and topic_filter[:1] in ("#", "+"):
        return False
    f, t = topic_filter.split("/"), topic.split("/")
    for i, level in enumerate(f):
        if level == "#":
            return True
        if i >= len(t) or (level != "+" and level != t[i]):
            return False
    return len(f) == len(t)


# ---- connect variants ------------------------------------------------------------


@scenario
def connect_v311_clean(ctx):
    out = {}
    for step in ("first", "second"):
        c = ctx.client("c", version=V311, clean=True)
        out[step] = c.connect()
        c.disconnect_cleanly()
    return out


@scenario
def connect_v311_persistent(ctx):
    """Session present follows the stored session: resumed, then discarded by
    a clean connect, then absent."""
    out = {}
    for step, clean in (("new", False), ("resume", False), ("clean", True), ("after_clean", False)):
        c = ctx.client("c", version=V311, clean=clean)
        out[step] = c.connect()
        if step == "new":
            out["suback"] = c.subscribe((ctx.topic("x"), 1))
        c.disconnect_cleanly()
    # The clean connect discarded the subscription too.
    c = ctx.connected("c", version=V311, clean=False)
    ctx.connected("pub", version=V311).publish(ctx.topic("x"), "after clean", qos=1)
    out["messages_after_clean"] = c.wait_messages(0, timeout=0, quiet=0.4)
    return out


@scenario
def connect_v311_empty_client_id(ctx):
    """3.1.1 allows an empty client id only with Clean Session = 1 (the server
    assigns one); with Clean Session = 0 the answer is CONNACK 0x02."""
    c = ctx.client(None, version=V311, clean=True)
    out = {"clean": c.connect()}
    out["usable"] = c.subscribe((ctx.topic("x"), 1))
    c.publish(ctx.topic("x"), "to myself", qos=1)
    out["messages"] = c.wait_messages(1)
    raw = ctx.raw(V311)
    out["persistent"] = raw.connect("", clean=False)
    out["persistent_after"] = raw.collect(1.0)
    return out


@scenario
def connect_v5_empty_client_id(ctx):
    """MQTT 5: the server assigns a client id and returns it in CONNACK."""
    c = ctx.client(None, version=V5)
    out = {"clean_start": c.connect()}
    out["clean_start_assigned"] = connack_capabilities(c.connack_props)["assigned_client_identifier"]
    raw = ctx.raw(V5)
    out["no_clean_start"] = raw.connect("", clean=False)
    out["no_clean_start_after"] = raw.collect(1.0)
    return out


@scenario
def connect_v5_capabilities(ctx):
    """What the MQTT 5 CONNACK says the server supports (defaults filled
    in), to a client that also asks for Response Information."""
    c = ctx.client("c", version=V5, connect_properties={"RequestResponseInformation": 1})
    out = {"connack": c.connect(), "capabilities": connack_capabilities(c.connack_props),
           "response_information": hasattr(c.connack_props, "ResponseInformation")}
    c.disconnect_cleanly()
    return out


@scenario
def connect_v5_session_expiry(ctx):
    out = {}
    steps = (("new", True, 60), ("resume", False, 60), ("resume_expiry0", False, 0), ("after_expiry0", False, 60))
    for step, clean, expiry in steps:
        c = ctx.client("c", version=V5, clean=clean, session_expiry=expiry)
        out[step] = c.connect()
        c.disconnect_cleanly()
    return out


@scenario
def v5_session_expiry_elapsed(ctx):
    """A session whose expiry has passed is gone. Mosquitto removes expired
    sessions on a timer (about every second; Roost checks at reconnect), so
    the check waits long enough for both."""
    c = ctx.client("c", version=V5, clean=True, session_expiry=1)
    out = {"new": c.connect()}
    c.disconnect_cleanly()
    time.sleep(6.5)
    c = ctx.client("c", version=V5, clean=False, session_expiry=0)
    out["after_expiry"] = c.connect()
    c.disconnect_cleanly()
    return out


@scenario
def connect_username_password(ctx):
    """A username and password are accepted (and, here, ignored) by both."""
    out = {}
    for version in (V311, V5):
        c = ctx.client(f"u{version}", version=version, username="someone", password="secret")
        out[f"v{version}"] = c.connect()
        c.disconnect_cleanly()
    return out


@scenario
def connect_mqtt31(ctx):
    """MQTT 3.1 (protocol name MQIsdp, level 3)."""
    raw = ctx.raw(V311)
    raw.send(packets.connect(ctx.client_id("c"), version=3, protocol_name="MQIsdp"))
    return {"connack": raw.read(), "after": raw.collect(0.5)}


@scenario
def connect_unsupported_protocol_level(ctx):
    raw = ctx.raw(V311)
    raw.send(packets.connect(ctx.client_id("c"), version=6))
    return {"connack": raw.read(), "after": raw.collect(1.0)}


@scenario
def connect_unusual_client_ids(ctx):
    """A 200-byte client id (above AWS's 128; the full profile allows more)
    and one with MQTT's special characters."""
    out = {}
    for name, client_id in (("long", "x" * 200), ("special", "a/b+c#d $e")):
        c = ctx.client(client_id, version=V311)
        out[name] = c.connect()
        c.disconnect_cleanly()
    return out


def silent_client(ctx, version):
    """Connects with keep-alive 1 s and a will, then says nothing; returns
    what it saw until the server closed the connection (or 8 s passed).

    When the close comes is not compared: the spec says 1.5 x keep-alive,
    Roost closes at 1.5 s, but Mosquitto 2.0.11 checks keep-alives on a
    coarse timer and closes anywhere between 1.5 and about 6.5 s."""
    raw = ctx.raw(version)
    connack = raw.connect(ctx.client_id(f"silent{version}"), keepalive=1,
                          will=(ctx.topic(f"will{version}"), b"timed out", 1, False))
    return {"connack": connack, "after": raw.collect(8.0)}


@scenario
def keepalive_timeout(ctx):
    """A client that goes silent is cut after 1.5 x keep-alive, and its will
    goes out. Both protocol versions at once, to keep the wait short."""
    watcher = ctx.connected("watcher", version=V5)
    watcher.subscribe((ctx.topic("#"), 1))
    with ThreadPoolExecutor(max_workers=2) as pool:
        v311, v5 = pool.map(lambda v: silent_client(ctx, v), (V311, V5))
    return {"v311": v311, "v5": v5, "wills": watcher.wait_messages(2, timeout=2.0)}


@scenario
def keepalive_zero(ctx):
    """Keep-alive 0 turns the mechanism off: still connected after 1.6 s."""
    raw = ctx.raw(V311)
    connack = raw.connect(ctx.client_id("c"), keepalive=0)
    time.sleep(1.6)
    raw.send(packets.PINGREQ)
    return {"connack": connack, "ping": raw.read()}


# ---- QoS flows ----------------------------------------------------------------------


def qos_matrix(ctx, version):
    """Every publish QoS against every subscription QoS: delivered at the
    lower of the two."""
    sub = ctx.connected("sub", version=version)
    out = {"suback": sub.subscribe((ctx.topic("s0/#"), 0), (ctx.topic("s1/#"), 1), (ctx.topic("s2/#"), 2))}
    pub = ctx.connected("pub", version=version)
    out["acks"] = {
        f"sub{s}_pub{p}": pub.publish(ctx.topic(f"s{s}/p{p}"), f"{s}{p}", qos=p)
        for s in range(3) for p in range(3)
    }
    out["messages"] = sub.wait_messages(9)
    return out


@scenario
def qos_matrix_v311(ctx):
    return qos_matrix(ctx, V311)


@scenario
def qos_matrix_v5(ctx):
    return qos_matrix(ctx, V5)


def qos2_inbound(ctx, version):
    """QoS 2 from a publisher: PUBREC, a retransmission before PUBREL is not
    delivered twice, PUBREL gets PUBCOMP, a PUBREL repeated after that still
    gets a PUBCOMP, and the packet id is free again afterwards."""
    sub = ctx.connected("sub", version=V5)
    sub.subscribe((ctx.topic("x"), 2))
    raw = ctx.raw_connected("pub", version=version)
    out = {}
    raw.send(packets.publish(ctx.topic("x"), "once", qos=2, packet_id=7, version=version))
    out["publish"] = raw.read()
    raw.send(packets.publish(ctx.topic("x"), "once", qos=2, packet_id=7, dup=True, version=version))
    out["retransmit"] = raw.read()
    raw.send(packets.ack("PUBREL", 7, version))
    out["pubrel"] = raw.read()
    raw.send(packets.ack("PUBREL", 7, version))
    out["pubrel_unknown"] = raw.read()
    raw.send(packets.publish(ctx.topic("x"), "again", qos=2, packet_id=7, version=version))
    out["reuse_id"] = raw.read()
    raw.send(packets.ack("PUBREL", 7, version))
    out["reuse_pubrel"] = raw.read()
    out["messages"] = sub.wait_messages(2)
    return out


@scenario
def qos2_inbound_v311(ctx):
    return qos2_inbound(ctx, V311)


@scenario
def qos2_inbound_v5(ctx):
    return qos2_inbound(ctx, V5)


@scenario
def qos2_inbound_across_reconnect(ctx):
    """QoS 2 state of a publisher's persistent session survives a reconnect
    (spec 4.1: the session holds QoS 2 messages received and not completely
    acknowledged): a PUBLISH retransmitted after the reconnect is not
    delivered again, and a PUBREL after the reconnect completes normally."""
    sub = ctx.connected("sub", version=V5)
    sub.subscribe((ctx.topic("x"), 2))
    expiry = packets.prop_u32(0x11, 60)
    raw = ctx.raw_connected("pub", version=V5, clean=True, properties=expiry)
    out = {}
    for packet_id in (9, 10):
        raw.send(packets.publish(ctx.topic("x"), f"id {packet_id}", qos=2, packet_id=packet_id, version=V5))
        out[f"publish_{packet_id}"] = raw.read()
    raw.close()
    time.sleep(0.2)
    again = ctx.raw(V5)
    out["reconnect"] = again.connect(ctx.client_id("pub"), clean=False, properties=expiry)
    again.send(packets.publish(ctx.topic("x"), "id 9", qos=2, packet_id=9, dup=True, version=V5))
    out["retransmit_9"] = again.read()
    for packet_id in (9, 10):
        again.send(packets.ack("PUBREL", packet_id, V5))
        out[f"pubrel_{packet_id}"] = again.read()
    out["messages"] = sub.wait_messages(2)
    again.send(packets.disconnect(V5, reason=0, properties=packets.prop_u32(0x11, 0)))
    return out


@scenario
def qos2_outbound(ctx):
    """QoS 2 to a subscriber: PUBLISH, PUBREC -> PUBREL, PUBCOMP; and with
    PUBCOMP outstanding across a reconnect, PUBREL is sent again."""
    raw = ctx.raw_connected("sub", version=V311, clean=False)
    raw.send(packets.subscribe(1, [(ctx.topic("x"), 2)]))
    out = {"suback": raw.read()}
    pub = ctx.connected("pub", version=V311)
    pub.publish(ctx.topic("x"), "first", qos=2)
    publish = raw.read()
    # Packet ids are the server's choice: compare whether they match up, not their values.
    packet_id = publish.pop("id", None)
    out["publish"] = publish
    raw.send(packets.ack("PUBREC", packet_id or 1))
    pubrel = raw.read()
    out["pubrel_for_that_id"] = pubrel.pop("id", None) == packet_id
    out["pubrel"] = pubrel
    # Drop the connection before PUBCOMP: the PUBREL must come again.
    raw.close()
    time.sleep(0.2)
    again = ctx.raw(V311)
    out["reconnect"] = again.connect(ctx.client_id("sub"), clean=False)
    resent = again.read()
    out["resent_for_that_id"] = resent.pop("id", None) == packet_id
    out["resent"] = resent
    again.send(packets.ack("PUBCOMP", packet_id or 1))
    out["after_pubcomp"] = again.collect(0.5)
    return out


@scenario
def qos1_redelivery_after_reconnect(ctx):
    """An unacknowledged QoS 1 message is sent again, with DUP, when the
    persistent session is resumed."""
    sub = ctx.connected("sub", version=V311, clean=False, manual_ack=True)
    out = {"suback": sub.subscribe((ctx.topic("x"), 1))}
    ctx.connected("pub", version=V311).publish(ctx.topic("x"), "unacked", qos=1)
    out["first"] = sub.wait_messages(1)
    sub.drop()
    again = ctx.client("sub", version=V311, clean=False)
    out["reconnect"] = again.connect()
    out["again"] = again.wait_messages(1)
    again.disconnect_cleanly()
    ctx.connected("sub", version=V311, clean=True).disconnect_cleanly()
    return out


def offline_queue(ctx, version):
    """A persistent session keeps QoS 1 and 2 messages while offline, not
    QoS 0 ones."""
    extra = {"session_expiry": 60} if version == V5 else {}
    sub = ctx.connected("sub", version=version, clean=False, **extra)
    out = {"suback": sub.subscribe((ctx.topic("q2"), 2), (ctx.topic("q1"), 1), (ctx.topic("q0"), 0))}
    sub.disconnect_cleanly()
    time.sleep(0.2)  # the subscriber must be offline, not still draining its connection
    pub = ctx.connected("pub", version=version)
    out["acks"] = [
        pub.publish(ctx.topic("q1"), "qos1 while offline", qos=1),
        pub.publish(ctx.topic("q1"), "qos0 while offline", qos=0),
        pub.publish(ctx.topic("q0"), "qos1 to a qos0 subscription", qos=1),
        pub.publish(ctx.topic("q2"), "qos2 while offline", qos=2),
    ]
    time.sleep(0.2)
    again = ctx.client("sub", version=version, clean=False, **extra)
    out["reconnect"] = again.connect()
    out["messages"] = again.wait_messages(2)
    again.disconnect_cleanly()
    return out


@scenario
def offline_queue_v311(ctx):
    return offline_queue(ctx, V311)


@scenario
def offline_queue_v5(ctx):
    return offline_queue(ctx, V5)


@scenario
def puback_reason_codes_v5(ctx):
    """PUBACK/PUBREC reason codes: 0x10 when nobody is subscribed, 0x00 when
    somebody is."""
    raw = ctx.raw_connected("pub", version=V5)
    out = {}
    raw.send(packets.publish(ctx.topic("nobody"), "x", qos=1, packet_id=1, version=V5))
    out["qos1_nobody"] = raw.read()
    raw.send(packets.publish(ctx.topic("nobody"), "x", qos=2, packet_id=2, version=V5))
    out["qos2_nobody"] = raw.read()
    raw.send(packets.ack("PUBREL", 2, V5))
    out["qos2_nobody_pubcomp"] = raw.read()
    sub = ctx.connected("sub", version=V5)
    sub.subscribe((ctx.topic("somebody"), 1))
    raw.send(packets.publish(ctx.topic("somebody"), "x", qos=1, packet_id=3, version=V5))
    out["qos1_somebody"] = raw.read()
    return out


@scenario
def mixed_versions(ctx):
    """3.1.1 and 5 clients exchange messages; properties reach only MQTT 5
    subscribers."""
    v3 = ctx.connected("v3", version=V311)
    v5 = ctx.connected("v5", version=V5)
    v3.subscribe((ctx.topic("x"), 1))
    v5.subscribe((ctx.topic("x"), 1))
    v5.publish(ctx.topic("x"), "from v5", qos=1, properties={"ContentType": "text/plain", "UserProperty": [("k", "v")]})
    v3.publish(ctx.topic("x"), "from v3", qos=1)
    return {"v3_received": v3.wait_messages(2), "v5_received": v5.wait_messages(2)}


# ---- wildcards ------------------------------------------------------------------------


@scenario
def wildcards(ctx):
    """`+` and `#` per MQTT (`#` also matches the parent level), one
    subscriber per filter so overlapping subscriptions play no part."""
    filters = {"plus_middle": "~/+/temp", "hash_under_a": "~/a/#", "plus_end": "~/+", "hash_all": "~/#",
               "plus_plus": "~/+/+", "exact": "~/a/temp", "empty_level": "~//temp"}
    topics = ["~", "~/", "~/a", "~/a/", "~/a/temp", "~/b/temp", "~/a/b/temp", "~//temp"]
    expand = lambda s: s.replace("~", ctx.ns)  # noqa: E731
    subs, out = {}, {"suback": {}, "received": {}}
    for name, f in filters.items():
        subs[name] = ctx.connected(f"s-{name}", version=V311)
        out["suback"][name] = subs[name].subscribe((expand(f), 1))
    pub = ctx.connected("pub", version=V311)
    for t in topics:
        pub.publish(expand(t), t, qos=1)
    for name, f in filters.items():
        expected = sum(mqtt_match(f, t) for t in topics)
        out["received"][name] = sorted(m["topic"] for m in subs[name].wait_messages(expected, quiet=0.05))
    return out


@scenario
def dollar_topics(ctx):
    """Filters starting with a wildcard do not match topics starting with $
    (spec 4.7.2); `$x/#` does."""
    filters = {"hash": "#", "plus_x": "+/x", "dollar_hash": f"${ctx.ns}/#", "dollar_plus": f"${ctx.ns}/+"}
    subs, out = {}, {"suback": {}, "received": {}}
    for name, f in filters.items():
        subs[name] = ctx.connected(f"s-{name}", version=V5)
        # Retain handling 2: not the retained messages other scenarios left behind.
        out["suback"][name] = subs[name].subscribe((f, SubscribeOptions(qos=1, retainHandling=2)))
    pub = ctx.connected("pub", version=V5)
    out["acks"] = [pub.publish(ctx.topic("x"), "plain", qos=1), pub.publish(f"${ctx.ns}/x", "dollar", qos=1)]
    expected = {"hash": 1, "plus_x": 1, "dollar_hash": 1, "dollar_plus": 1}
    for name in filters:
        out["received"][name] = [m["topic"] for m in subs[name].wait_messages(expected[name], quiet=0.05)]
    return out


@scenario
def dollar_topic_retained(ctx):
    """A retained message on a non-$aws `$` topic, which the full profile
    lets clients publish to."""
    pub = ctx.connected("pub", version=V5)
    out = {"ack": pub.publish(f"${ctx.ns}/r", "retained under $", qos=1, retain=True),
           "publisher_closed": pub.wait_closed(0.3)}
    sub = ctx.connected("sub", version=V5)
    sub.subscribe((f"${ctx.ns}/#", 1))
    out["retained"] = sub.wait_messages(1, timeout=1.0)
    return out


@scenario
def dollar_sys(ctx):
    """Broker statistics under $SYS."""
    sub = ctx.connected("sub", version=V311)
    out = {"suback": sub.subscribe(("$SYS/#", 0))}
    time.sleep(0.5)
    out["got_sys_messages"] = bool(sub.received(in_namespace=False))
    return out


@scenario
def large_payload_and_long_topics(ctx):
    """A 1 MiB payload, a 30-level topic and a 1,000-byte topic."""
    sub = ctx.connected("sub", version=V5)
    deep = ctx.topic("/".join(f"l{i}" for i in range(30)))
    long = ctx.topic("t" * 1000)
    out = {"suback": sub.subscribe((ctx.topic("big"), 1), (deep, 1), (long, 1))}
    pub = ctx.connected("pub", version=V5)
    out["acks"] = [pub.publish(ctx.topic("big"), b"\x01" * (1 << 20), qos=1),
                   pub.publish(deep, "deep", qos=1), pub.publish(long, "long", qos=1)]
    received = sub.wait_messages(3, timeout=5.0)
    out["received"] = [[m["topic"][:40], len(m["payload"])] for m in received]
    return out


@scenario
def aws_lifecycle_events(ctx):
    """AWS IoT lifecycle events ($aws/events/presence/...)."""
    sub = ctx.connected("sub", version=V311)
    sub.subscribe((f"$aws/events/presence/+/{ctx.client_id('device')}", 1))
    ctx.connected("device", version=V311).disconnect_cleanly()
    sub.wait_messages(2, timeout=1.0, quiet=0)
    return {"events": [m["topic"].rsplit("/", 2)[1] for m in sub.received(in_namespace=False)]}


def overlapping_subscriptions(ctx, version):
    """One client, two matching subscriptions at different QoS (in MQTT 5,
    each with its own Subscription Identifier: a single copy must carry
    both, spec 3.3.4)."""
    sub = ctx.connected("sub", version=version)
    if version == V5:
        out = {"suback": sub.subscribe((ctx.topic("#"), 0), properties={"SubscriptionIdentifier": 1})
               + sub.subscribe((ctx.topic("a"), 1), properties={"SubscriptionIdentifier": 2})}
    else:
        out = {"suback": sub.subscribe((ctx.topic("#"), 0), (ctx.topic("a"), 1))}
    ctx.connected("pub", version=version).publish(ctx.topic("a"), "both match", qos=1)
    out["messages"] = sub.wait_messages(1, quiet=0.4)
    return out


@scenario
def overlapping_subscriptions_v311(ctx):
    return overlapping_subscriptions(ctx, V311)


@scenario
def overlapping_subscriptions_v5(ctx):
    return overlapping_subscriptions(ctx, V5)


@scenario
def resubscribe_replaces(ctx):
    """Subscribing again to the same filter replaces the subscription."""
    sub = ctx.connected("sub", version=V311)
    out = {"first": sub.subscribe((ctx.topic("x"), 0)), "second": sub.subscribe((ctx.topic("x"), 1))}
    ctx.connected("pub", version=V311).publish(ctx.topic("x"), "once", qos=1)
    out["messages"] = sub.wait_messages(1)
    return out


def unsubscribe(ctx, version):
    sub = ctx.connected("sub", version=version)
    out = {"suback": sub.subscribe((ctx.topic("a"), 1), (ctx.topic("b"), 1))}
    out["unsuback"] = sub.unsubscribe(ctx.topic("a"), ctx.topic("never"))
    pub = ctx.connected("pub", version=version)
    pub.publish(ctx.topic("a"), "unsubscribed", qos=1)
    pub.publish(ctx.topic("b"), "still subscribed", qos=1)
    out["messages"] = sub.wait_messages(1)
    return out


@scenario
def unsubscribe_v311(ctx):
    return unsubscribe(ctx, V311)


@scenario
def unsubscribe_v5(ctx):
    return unsubscribe(ctx, V5)


# ---- retained messages -----------------------------------------------------------------


@scenario
def retained_lifecycle(ctx):
    """Set, replace, delete: live forwarding has RETAIN=0 (3.1.1), a new
    subscription gets the stored message with RETAIN=1, an empty retained
    message deletes it and is still forwarded."""
    pub = ctx.connected("pub", version=V311)
    out = {"set": pub.publish(ctx.topic("r"), "one", qos=1, retain=True)}
    s1 = ctx.connected("s1", version=V311)
    s1.subscribe((ctx.topic("r"), 1))
    out["s1_on_subscribe"] = s1.wait_messages(1)
    pub.publish(ctx.topic("r"), "two", qos=1, retain=True)
    out["s1_after_replace"] = s1.wait_messages(2)
    s2 = ctx.connected("s2", version=V311)
    s2.subscribe((ctx.topic("r"), 1))
    out["s2_on_subscribe"] = s2.wait_messages(1)
    pub.publish(ctx.topic("r"), "", qos=1, retain=True)
    out["s1_after_delete"] = s1.wait_messages(3)
    s3 = ctx.connected("s3", version=V311)
    s3.subscribe((ctx.topic("r"), 1))
    out["s3_after_delete"] = s3.wait_messages(0, timeout=0, quiet=0.4)
    return out


@scenario
def retained_wildcard(ctx):
    """Stored retained messages go to every matching new subscription."""
    pub = ctx.connected("pub", version=V311)
    for t in ("a/1", "a/2", "b/1", "a/deep/1"):
        pub.publish(ctx.topic(t), t, qos=1, retain=True)
    out = {}
    for name, f, count in (("plus", "a/+", 2), ("hash", "#", 4), ("plus_first", "+/1", 2)):
        s = ctx.connected(f"s-{name}", version=V311)
        s.subscribe((ctx.topic(f), 1))
        out[name] = s.wait_messages(count, quiet=0.1)
    return out


@scenario
def retained_qos(ctx):
    """A retained message is delivered at the lower of its QoS and the
    subscription's."""
    pub = ctx.connected("pub", version=V311)
    pub.publish(ctx.topic("q0"), "stored at 0", qos=0, retain=True)
    pub.publish(ctx.topic("q1"), "stored at 1", qos=1, retain=True)
    pub.publish(ctx.topic("q2"), "stored at 2", qos=2, retain=True)
    time.sleep(0.1)
    out = {}
    for sub_qos in (0, 1, 2):
        s = ctx.connected(f"s{sub_qos}", version=V311)
        s.subscribe((ctx.topic("+"), sub_qos))
        out[f"sub{sub_qos}"] = s.wait_messages(3, quiet=0.05)
    return out


# ---- wills -------------------------------------------------------------------------------


def will_args(ctx, name="will", qos=1, retain=False, properties=None):
    args = {"topic": ctx.topic(name), "payload": f"{name} payload", "qos": qos, "retain": retain}
    if properties:
        args["properties"] = props(PacketTypes.WILLMESSAGE, **properties)
    return args


def will_watcher(ctx, filter_suffix="#"):
    watcher = ctx.connected("watcher", version=V5)
    watcher.subscribe((ctx.topic(filter_suffix), 1))
    return watcher


def will_on_drop(ctx, version):
    watcher = will_watcher(ctx)
    extra = {}
    if version == V5:
        extra = {"properties": {"ContentType": "text/plain", "UserProperty": [("why", "gone")],
                                "ResponseTopic": ctx.topic("reply"), "CorrelationData": b"42"}}
    device = ctx.connected("device", version=version, will=will_args(ctx, **extra))
    device.drop()
    return {"will": watcher.wait_messages(1)}


@scenario
def will_abrupt_close_v311(ctx):
    return will_on_drop(ctx, V311)


@scenario
def will_abrupt_close_v5(ctx):
    return will_on_drop(ctx, V5)


@scenario
def will_clean_disconnect(ctx):
    """No will after a clean DISCONNECT (3.1.1 and MQTT 5 reason 0x00)."""
    watcher = will_watcher(ctx)
    for version in (V311, V5):
        ctx.connected(f"device{version}", version=version, will=will_args(ctx)).disconnect_cleanly()
    return {"will": watcher.wait_messages(0, timeout=0, quiet=0.5)}


@scenario
def will_v5_disconnect_with_will(ctx):
    """MQTT 5 DISCONNECT with reason 0x04 asks for the will."""
    watcher = will_watcher(ctx)
    ctx.connected("device", version=V5, will=will_args(ctx)).disconnect_cleanly(reason=0x04)
    return {"will": watcher.wait_messages(1)}


@scenario
def will_retain(ctx):
    """A retained will is stored: a later subscriber gets it with RETAIN=1."""
    watcher = will_watcher(ctx)
    ctx.connected("device", version=V311, will=will_args(ctx, retain=True)).drop()
    # Once the watcher has it, the will is stored.
    watcher.wait_messages(1, quiet=0)
    later = ctx.connected("later", version=V311)
    later.subscribe((ctx.topic("will"), 1))
    return {"stored_will": later.wait_messages(1)}


@scenario
def will_on_takeover(ctx):
    """The will of a connection closed by a takeover (same client id)."""
    watcher = will_watcher(ctx)
    out = {}
    for version in (V311, V5):
        ctx.connected(f"device{version}", version=version, will=will_args(ctx, f"will{version}"))
        ctx.connected(f"device{version}", version=version)
    out["wills"] = watcher.wait_messages(2, timeout=2)
    return out


@scenario
def will_on_protocol_error(ctx):
    """A connection closed for a malformed packet sends its will."""
    watcher = will_watcher(ctx)
    raw = ctx.raw_connected("device", version=V311, will=(ctx.topic("will"), b"broken", 1, False))
    raw.send(packets.publish(ctx.topic("x"), "qos 3", first_byte=0x36, packet_id=1))
    return {"after": raw.collect(1.0), "will": watcher.wait_messages(1)}


@scenario
def will_delay_session_ends(ctx):
    """Will Delay 2 s but Session Expiry 0: the session ends with the
    connection, so the will goes out at once (spec 3.1.3.2.2: at the delay
    or when the session ends, whichever is first)."""
    watcher = will_watcher(ctx)
    device = ctx.connected("device", version=V5, session_expiry=0,
                           will=will_args(ctx, properties={"WillDelayInterval": 2}))
    device.drop()
    started = time.monotonic()
    # Mosquitto runs will delays on a ~1 s timer (a 2 s delay fires after 2.6-2.9 s): wait long enough.
    received = watcher.wait_messages(1, timeout=6.0, quiet=0)
    return {"will": received, "within_1_s": bool(received) and time.monotonic() - started < 1.0}


@scenario
def will_delay_reconnect(ctx):
    """Will Delay with a persistent session: the will is published after the
    delay (1 s for "gone"), unless the client reconnects first (2 s for
    "back", which reconnects at once)."""
    watcher = will_watcher(ctx)
    gone = ctx.connected("gone", version=V5, session_expiry=60,
                         will=will_args(ctx, "gone", properties={"WillDelayInterval": 1}))
    back = ctx.connected("back", version=V5, session_expiry=60,
                         will=will_args(ctx, "back", properties={"WillDelayInterval": 2}))
    gone.drop()
    dropped_at = time.monotonic()
    back.drop()
    again = ctx.client("back", version=V5, clean=False, session_expiry=60)
    out = {"reconnect": again.connect()}
    watcher.wait_messages(1, timeout=5.0, quiet=0)
    # Long enough past back's delay for Mosquitto's ~1 s will-delay timer.
    time.sleep(max(0.0, dropped_at + 3.2 - time.monotonic()))
    out["wills"] = watcher.received()
    out["gone_not_before_its_delay"] = bool(watcher.arrivals) and watcher.arrivals[0] - dropped_at >= 0.9
    again.disconnect_cleanly()
    for name in ("gone", "back"):
        ctx.connected(name, version=V5).disconnect_cleanly()
    return out


@scenario
def will_delay_takeover(ctx):
    """Will Delay 1 s and a takeover that continues the session (Clean Start
    0): the will is not sent (spec 3.1.3.2.2)."""
    watcher = will_watcher(ctx)
    ctx.connected("device", version=V5, session_expiry=60, will=will_args(ctx, properties={"WillDelayInterval": 1}))
    new = ctx.client("device", version=V5, clean=False, session_expiry=60)
    out = {"takeover": new.connect(), "will": watcher.wait_messages(0, timeout=0, quiet=1.6)}
    new.disconnect_cleanly(properties={"SessionExpiryInterval": 0})
    return out


# ---- sessions and takeover ------------------------------------------------------------------


def takeover(ctx, version):
    old = ctx.connected("c", version=version)
    new = ctx.client("c", version=version)
    out = {"new": new.connect()}
    out["old_closed"] = old.wait_closed(3.0)
    out["new_still_connected"] = new.wait_closed(0.3) is None
    return out


@scenario
def takeover_v311(ctx):
    return takeover(ctx, V311)


@scenario
def takeover_v5(ctx):
    return takeover(ctx, V5)


@scenario
def takeover_persistent_session(ctx):
    """A takeover with Clean Session 0 continues the session: session present
    and the old subscriptions."""
    old = ctx.connected("c", version=V311, clean=False)
    old.subscribe((ctx.topic("x"), 1))
    new = ctx.client("c", version=V311, clean=False)
    out = {"new": new.connect(), "old_closed": old.wait_closed(3.0)}
    ctx.connected("pub", version=V311).publish(ctx.topic("x"), "to the session", qos=1)
    out["messages"] = new.wait_messages(1)
    new.disconnect_cleanly()
    ctx.connected("c", version=V311, clean=True).disconnect_cleanly()
    return out


@scenario
def takeover_clean_then_persistent(ctx):
    """The old connection had Clean Session 1, so its session ended with it:
    the new Clean Session 0 connection finds no session (spec 3.1.2.4)."""
    old = ctx.connected("c", version=V311, clean=True)
    old.subscribe((ctx.topic("x"), 1))
    new = ctx.client("c", version=V311, clean=False)
    out = {"new": new.connect(), "old_closed": old.wait_closed(3.0)}
    ctx.connected("pub", version=V311).publish(ctx.topic("x"), "to the old session", qos=1)
    out["messages"] = new.wait_messages(0, timeout=0, quiet=0.4)
    new.disconnect_cleanly()
    ctx.connected("c", version=V311, clean=True).disconnect_cleanly()
    return out


@scenario
def takeover_expiry0_then_resume_v5(ctx):
    """MQTT 5 form of the above: the old connection's Session Expiry was 0,
    so its session ended with it; Clean Start 0 finds no session."""
    old = ctx.connected("c", version=V5, clean=True, session_expiry=0)
    old.subscribe((ctx.topic("x"), 1))
    new = ctx.client("c", version=V5, clean=False, session_expiry=0)
    out = {"new": new.connect(), "old_closed": old.wait_closed(3.0) is not None}
    ctx.connected("pub", version=V5).publish(ctx.topic("x"), "to the old session", qos=1)
    out["messages"] = new.wait_messages(0, timeout=0, quiet=0.4)
    return out


@scenario
def v5_session_expiry_set_by_disconnect(ctx):
    """DISCONNECT can shorten the session expiry to 0: the session ends."""
    c = ctx.connected("c", version=V5, clean=True, session_expiry=60)
    c.subscribe((ctx.topic("x"), 1))
    c.disconnect_cleanly(properties={"SessionExpiryInterval": 0})
    again = ctx.client("c", version=V5, clean=False, session_expiry=0)
    return {"reconnect": again.connect()}


# ---- MQTT 5 properties and features ---------------------------------------------------------


@scenario
def v5_publish_properties(ctx):
    """User properties (order and repeats kept), content type, payload format,
    response topic and correlation data reach the subscriber unchanged."""
    sub = ctx.connected("sub", version=V5)
    sub.subscribe((ctx.topic("x"), 1))
    pub = ctx.connected("pub", version=V5)
    properties = {
        "UserProperty": [("b", "2"), ("a", "1"), ("a", "again")],
        "ContentType": "application/json",
        "PayloadFormatIndicator": 1,
        "ResponseTopic": ctx.topic("reply"),
        "CorrelationData": b"\x00\x01corr",
    }
    out = {"ack": pub.publish(ctx.topic("x"), '{"k": 1}', qos=1, properties=properties)}
    out["messages"] = sub.wait_messages(1)
    return out


@scenario
def v5_message_expiry(ctx):
    """Message Expiry: forwarded as the remaining time, and a message that
    expires while queued for an offline session is never delivered."""
    sub = ctx.connected("sub", version=V5, clean=True, session_expiry=60)
    sub.subscribe((ctx.topic("x"), 1))
    pub = ctx.connected("pub", version=V5)
    pub.publish(ctx.topic("x"), "live", qos=1, properties={"MessageExpiryInterval": 60})
    live = sub.wait_messages(1)
    out = {"live": [{**m, "message_expiry": 55 <= m.get("message_expiry", -1) <= 60} for m in live]}
    sub.disconnect_cleanly()
    time.sleep(0.2)  # the subscriber must be offline, not still draining its connection
    pub.publish(ctx.topic("x"), "expires", qos=1, properties={"MessageExpiryInterval": 1})
    pub.publish(ctx.topic("x"), "survives", qos=1, properties={"MessageExpiryInterval": 60})
    time.sleep(2.1)
    again = ctx.client("sub", version=V5, clean=False, session_expiry=0)
    out["reconnect"] = again.connect()
    queued = again.wait_messages(1)
    out["queued"] = [{**m, "message_expiry": 50 <= m.get("message_expiry", -1) <= 58} for m in queued]
    again.disconnect_cleanly()
    return out


@scenario
def v5_retained_message_expiry(ctx):
    """A retained message with an expiry is not sent to subscriptions made
    after it expired."""
    pub = ctx.connected("pub", version=V5)
    pub.publish(ctx.topic("short"), "expires", qos=1, retain=True, properties={"MessageExpiryInterval": 1})
    pub.publish(ctx.topic("long"), "stays", qos=1, retain=True, properties={"MessageExpiryInterval": 60})
    time.sleep(2.1)
    sub = ctx.connected("sub", version=V5)
    sub.subscribe((ctx.topic("+"), 1))
    received = sub.wait_messages(1)
    return {"retained": [{**m, "message_expiry": 50 <= m.get("message_expiry", -1) <= 58} for m in received]}


@scenario
def v5_topic_alias(ctx):
    """Client-to-server topic aliases: set, use, re-map. One subscriber allows
    no aliases (Topic Alias Maximum 0, the default), one allows 10: whether
    the server uses aliases towards it is observed."""
    sub = ctx.connected("sub", version=V5)
    sub.subscribe((ctx.topic("a"), 1), (ctx.topic("b"), 1))
    aliased = ctx.connected("aliased", version=V5, connect_properties={"TopicAliasMaximum": 10})
    aliased.subscribe((ctx.topic("a"), 1), (ctx.topic("b"), 1))
    raw = ctx.raw_connected("pub", version=V5)
    alias = packets.prop_u16(0x23, 1)
    steps = [("set", ctx.topic("a"), "set"), ("use", "", "use"), ("remap", ctx.topic("b"), "remap"),
             ("use_remapped", "", "use remapped")]
    out = {}
    for i, (step, topic, payload) in enumerate(steps, start=1):
        raw.send(packets.publish(topic, payload, qos=1, packet_id=i, version=V5, properties=alias))
        out[step] = raw.read()
    out["messages"] = sub.wait_messages(4)
    out["aliased_messages"] = aliased.wait_messages(4, quiet=0)
    return out


@scenario
def v5_receive_maximum(ctx):
    """The server sends no more unacknowledged QoS 1 messages than the
    client's Receive Maximum."""
    sub = ctx.connected("sub", version=V5, manual_ack=True, connect_properties={"ReceiveMaximum": 2})
    sub.subscribe((ctx.topic("x"), 1))
    pub = ctx.connected("pub", version=V5)
    for i in range(5):
        pub.publish(ctx.topic("x"), f"m{i}", qos=1)
    out = {"before_acks": len(sub.wait_messages(5, timeout=1.0, quiet=0))}
    deadline = time.monotonic() + 3
    while len(sub.received()) < 5 and time.monotonic() < deadline:
        sub.ack_all()
        time.sleep(0.05)
    sub.ack_all()
    out["in_order"] = [m["payload"] for m in sub.wait_messages(5, quiet=0.1)]
    return out


@scenario
def v5_maximum_packet_size(ctx):
    """A message larger than the client's Maximum Packet Size is dropped for
    that client (spec 3.1.2.11.4), the connection stays up."""
    sub = ctx.connected("sub", version=V5, connect_properties={"MaximumPacketSize": 128})
    sub.subscribe((ctx.topic("x"), 1))
    pub = ctx.connected("pub", version=V5)
    pub.publish(ctx.topic("x"), "x" * 300, qos=1)
    pub.publish(ctx.topic("x"), "small", qos=1)
    return {"messages": sub.wait_messages(1), "still_connected": sub.wait_closed(0.1) is None}


@scenario
def v5_no_local(ctx):
    sub = ctx.connected("sub", version=V5)
    out = {"suback": sub.subscribe((ctx.topic("nl"), SubscribeOptions(qos=1, noLocal=True)),
                                   (ctx.topic("l"), SubscribeOptions(qos=1, noLocal=False)))}
    sub.publish(ctx.topic("nl"), "own, no local", qos=1)
    sub.publish(ctx.topic("l"), "own, local", qos=1)
    ctx.connected("other", version=V5).publish(ctx.topic("nl"), "from another client", qos=1)
    out["messages"] = sub.wait_messages(2)
    return out


@scenario
def v5_retain_as_published(ctx):
    pub = ctx.connected("pub", version=V5)
    pub.publish(ctx.topic("x"), "stored", qos=1, retain=True)
    out = {}
    subs = {}
    for name, rap in (("rap", True), ("no_rap", False)):
        subs[name] = ctx.connected(name, version=V5)
        subs[name].subscribe((ctx.topic("x"), SubscribeOptions(qos=1, retainAsPublished=rap)))
    for s in subs.values():
        s.wait_messages(1, quiet=0)
    pub.publish(ctx.topic("x"), "live retained", qos=1, retain=True)
    pub.publish(ctx.topic("x"), "live plain", qos=1)
    for name, s in subs.items():
        out[name] = s.wait_messages(3)
    return out


@scenario
def v5_retain_handling(ctx):
    """Retain Handling 0 sends retained messages at every subscribe, 1 only
    for a new subscription, 2 never."""
    ctx.connected("pub", version=V5).publish(ctx.topic("x"), "stored", qos=1, retain=True)
    out = {}
    for rh in (0, 1, 2):
        s = ctx.connected(f"rh{rh}", version=V5)
        for _ in range(2):
            s.subscribe((ctx.topic("x"), SubscribeOptions(qos=1, retainHandling=rh)))
        out[f"rh{rh}"] = s.wait_messages({0: 2, 1: 1, 2: 0}[rh], quiet=0.2)
    return out


@scenario
def v5_subscription_identifiers(ctx):
    """Subscription Identifiers (spec 3.3.4, 3.8.2.1.2): a message carries the
    identifier of the subscription it matched, none for a subscription made
    without one; a new SUBSCRIBE to the same filter replaces the identifier;
    the retained message sent at subscribe time carries it; a persistent
    session keeps it for what was queued while it was away."""
    pub = ctx.connected("pub", version=V5)
    pub.publish(ctx.topic("si/retained"), "kept", qos=1, retain=True)
    sub = ctx.connected("sub", version=V5, clean=False, session_expiry=60)
    out = {"suback": sub.subscribe((ctx.topic("si/+"), 1), properties={"SubscriptionIdentifier": 268435455}),
           "suback_plain": sub.subscribe((ctx.topic("plain"), 1)),
           "closed": sub.wait_closed(0.3)}
    out["retained"] = sub.wait_messages(1, timeout=1.0)
    pub.publish(ctx.topic("si/a"), "matched", qos=1)
    pub.publish(ctx.topic("plain"), "no identifier", qos=1)
    out["messages"] = sub.wait_messages(3, timeout=1.0)[1:]
    out["resubscribe"] = sub.subscribe((ctx.topic("si/+"), 1), properties={"SubscriptionIdentifier": 7})
    pub.publish(ctx.topic("si/b"), "replaced", qos=1)
    out["after_resubscribe"] = sub.wait_messages(4, timeout=1.0)[3:]
    sub.disconnect_cleanly()
    pub.publish(ctx.topic("si/c"), "while away", qos=1)
    back = ctx.connected("sub", version=V5, clean=False, session_expiry=60)
    out["offline"] = back.wait_messages(1, timeout=1.0)
    back.unsubscribe(ctx.topic("si/+"), ctx.topic("plain"))
    pub.publish(ctx.topic("si/retained"), "", qos=1, retain=True)
    return out


@scenario
def v5_suback_reason_codes(ctx):
    sub = ctx.connected("sub", version=V5)
    return {"suback": sub.subscribe((ctx.topic("q0"), 0), (ctx.topic("q1"), 1), (ctx.topic("q2"), 2),
                                    (f"$share/g/{ctx.topic('s')}", 1))}


@scenario
def shared_subscription(ctx):
    """Each message to a share group goes to exactly one member (an MQTT 5
    and a 3.1.1 member); retained messages are not sent to shared
    subscriptions (spec 4.8.2)."""
    pub = ctx.connected("pub", version=V5)
    pub.publish(ctx.topic("x"), "retained before", qos=1, retain=True)
    members = [ctx.connected("m5", version=V5), ctx.connected("m3", version=V311)]
    out = {"suback": [m.subscribe((f"$share/g/{ctx.topic('x')}", 1)) for m in members]}
    for i in range(6):
        pub.publish(ctx.topic("x"), f"m{i}", qos=1)
    deadline = time.monotonic() + 3
    while sum(len(m.received()) for m in members) < 6 and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)
    out["delivered_once_each"] = sorted(m["payload"] for member in members for m in member.received())
    return out


@scenario
def v5_disconnect_session_expiry_after_zero(ctx):
    """DISCONNECT may not set a Session Expiry when CONNECT had 0 (spec
    3.14.2.2.2): a protocol error."""
    raw = ctx.raw_connected("c", version=V5)
    raw.send(packets.disconnect(V5, reason=0, properties=packets.prop_u32(0x11, 30)))
    return {"after": raw.collect(1.0)}


@scenario
def v5_payload_format_invalid(ctx):
    """Payload Format Indicator 1 with a payload that is not UTF-8."""
    sub = ctx.connected("sub", version=V5)
    sub.subscribe((ctx.topic("x"), 1))
    pub = ctx.connected("pub", version=V5)
    ack = pub.publish(ctx.topic("x"), b"\xff\xfe", qos=1, properties={"PayloadFormatIndicator": 1})
    return {"ack": ack, "messages": sub.wait_messages(0, timeout=0, quiet=0.4),
            "publisher_closed": pub.wait_closed(0.1)}


# ---- malformed packets and protocol violations ----------------------------------------------
# Each: optionally connect, send the bytes and a PINGREQ, record everything the
# server sends until it closes the connection, answers the PINGREQ, or 1.5 s
# pass.


MALFORMED = {
    # name: (version, connect first?, bytes given the context)
    "garbage_http": (V311, False, lambda ctx: b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
    "publish_before_connect": (V311, False, lambda ctx: packets.publish(ctx.topic("x"), "early")),
    "remaining_length_too_long_first": (V311, False, lambda ctx: b"\x10\xff\xff\xff\xff\x7f"),
    "connect_reserved_fixed_header_flags": (V311, False, lambda ctx: packets.connect(ctx.client_id("c"), first_byte=0x11)),
    "connect_reserved_flag_bit_v311": (V311, False, lambda ctx: packets.connect(ctx.client_id("c"), extra_flags=0x01)),
    "connect_reserved_flag_bit_v5": (V5, False, lambda ctx: packets.connect(ctx.client_id("c"), version=V5, extra_flags=0x01)),
    "connect_will_qos_without_will": (V311, False, lambda ctx: packets.connect(ctx.client_id("c"), extra_flags=0x08)),
    "connect_will_qos3": (V311, False, lambda ctx: packets.connect(ctx.client_id("c"), will=(ctx.topic("w"), b"w", 3, False))),
    "connect_password_without_username_v311": (V311, False, lambda ctx: packets.connect(ctx.client_id("c"), password="p")),
    "connect_bad_protocol_name": (V311, False, lambda ctx: packets.connect(ctx.client_id("c"), protocol_name="MQTX")),
    "connect_truncated_client_id": (V311, False, lambda ctx: packets.frame(0x10, packets.string("MQTT") + b"\x04\x02\x00\x3c\x00\x20abc")),
    "connect_invalid_utf8_client_id": (V311, False, lambda ctx: packets.connect(b"\xff\xfe")),
    "connect_will_topic_wildcard": (V311, False, lambda ctx: packets.connect(ctx.client_id("c"), will=(ctx.topic("+"), b"w", 0, False))),
    "remaining_length_too_long_v311": (V311, True, lambda ctx: b"\x30\xff\xff\xff\xff\x7f"),
    "remaining_length_too_long_v5": (V5, True, lambda ctx: b"\x30\xff\xff\xff\xff\x7f"),
    "second_connect_v311": (V311, True, lambda ctx: packets.connect(ctx.client_id("again"))),
    "second_connect_v5": (V5, True, lambda ctx: packets.connect(ctx.client_id("again"), version=V5)),
    "publish_qos3_v311": (V311, True, lambda ctx: packets.publish(ctx.topic("x"), "q3", packet_id=1, first_byte=0x36)),
    "publish_qos3_v5": (V5, True, lambda ctx: packets.publish(ctx.topic("x"), "q3", packet_id=1, first_byte=0x36, version=V5)),
    "publish_dup_qos0": (V311, True, lambda ctx: packets.publish(ctx.topic("x"), "dup", dup=True)),
    "publish_wildcard_topic_v311": (V311, True, lambda ctx: packets.publish(ctx.topic("+"), "w")),
    "publish_wildcard_topic_v5": (V5, True, lambda ctx: packets.publish(ctx.topic("#"), "w", version=V5)),
    "publish_empty_topic_v311": (V311, True, lambda ctx: packets.publish("", "no topic")),
    "publish_invalid_utf8_topic": (V311, True, lambda ctx: packets.publish(b"\xff\xfe", "x")),
    "publish_null_char_topic": (V311, True, lambda ctx: packets.publish(ctx.topic("a\x00b"), "x")),
    "publish_packet_id_zero": (V311, True, lambda ctx: packets.publish(ctx.topic("x"), "id 0", qos=1, packet_id=0)),
    "subscribe_reserved_flags_v311": (V311, True, lambda ctx: packets.subscribe(1, [(ctx.topic("x"), 0)], first_byte=0x80)),
    "subscribe_reserved_flags_v5": (V5, True, lambda ctx: packets.subscribe(1, [(ctx.topic("x"), 0)], version=V5, first_byte=0x80)),
    "subscribe_no_filters_v311": (V311, True, lambda ctx: packets.subscribe(1, [])),
    "subscribe_no_filters_v5": (V5, True, lambda ctx: packets.subscribe(1, [], version=V5)),
    "subscribe_invalid_filter_v311": (V311, True, lambda ctx: packets.subscribe(1, [(ctx.topic("#/x"), 0)])),
    "subscribe_invalid_filter_v5": (V5, True, lambda ctx: packets.subscribe(1, [(ctx.topic("a+"), 0)], version=V5)),
    "subscribe_qos3_v311": (V311, True, lambda ctx: packets.subscribe(1, [(ctx.topic("x"), 3)])),
    "subscribe_options_reserved_bits_v5": (V5, True, lambda ctx: packets.subscribe(1, [(ctx.topic("x"), 0xC1)], version=V5)),
    "subscribe_retain_handling_3_v5": (V5, True, lambda ctx: packets.subscribe(1, [(ctx.topic("x"), 0x31)], version=V5)),
    "subscribe_shared_no_local_v5": (V5, True, lambda ctx: packets.subscribe(1, [(f"$share/g/{ctx.topic('x')}", 0x05)], version=V5)),
    "unsubscribe_reserved_flags": (V311, True, lambda ctx: packets.frame(0xA0, b"\x00\x01" + packets.string(ctx.topic("x")))),
    "pubrel_reserved_flags": (V311, True, lambda ctx: packets.frame(0x60, b"\x00\x01")),
    "pingreq_with_body": (V311, True, lambda ctx: b"\xc0\x01\x00"),
    "disconnect_reserved_flags": (V311, True, lambda ctx: b"\xe1\x00"),
    "reserved_packet_type_0": (V311, True, lambda ctx: b"\x00\x00"),
    "auth_in_v311": (V311, True, lambda ctx: b"\xf0\x00"),
    "client_sends_connack": (V311, True, lambda ctx: b"\x20\x02\x00\x00"),
    "client_sends_suback": (V5, True, lambda ctx: b"\x90\x04\x00\x01\x00\x00"),
    "unknown_property_v5": (V5, True, lambda ctx: packets.publish(ctx.topic("x"), "p", version=V5, properties=b"\x7f\x00")),
    "subscription_id_in_publish_v5": (V5, True, lambda ctx: packets.publish(ctx.topic("x"), "p", version=V5, properties=b"\x0b\x01")),
    "topic_alias_zero_v5": (V5, True, lambda ctx: packets.publish(ctx.topic("x"), "p", version=V5, properties=packets.prop_u16(0x23, 0))),
    "topic_alias_unknown_v5": (V5, True, lambda ctx: packets.publish("", "p", version=V5, properties=packets.prop_u16(0x23, 3))),
    "topic_alias_over_maximum_v5": (V5, True, lambda ctx: packets.publish(ctx.topic("x"), "p", version=V5, properties=packets.prop_u16(0x23, 200))),
    "auth_without_method_v5": (V5, True, lambda ctx: b"\xf0\x00"),
    "puback_unknown_packet_id": (V311, True, lambda ctx: packets.ack("PUBACK", 99)),
    "pubrec_unknown_packet_id_v5": (V5, True, lambda ctx: packets.ack("PUBREC", 99, V5)),
}


def make_malformed(name, version, connect_first, data):
    def run(ctx):
        raw = ctx.raw_connected("c", version=version) if connect_first else ctx.raw(version)
        # A PINGREQ right behind the bad bytes: a server that lets them pass
        # answers it, which ends the wait early.
        raw.send(data(ctx) + packets.PINGREQ)
        return raw.collect(1.5, stop_at="PINGRESP")

    run.__name__ = f"malformed_{name}"
    return run


for _name, (_version, _connect_first, _data) in MALFORMED.items():
    scenario(make_malformed(_name, _version, _connect_first, _data))


# ---- the differences we know about ---------------------------------------------------------


@dataclass(frozen=True)
class Known:
    """An expected difference: the observation paths that differ, and why.
    A reason starting with "BUG:" is a Roost bug waiting for a fix."""

    paths: frozenset
    reason: str


def known(*paths, reason):
    return Known(frozenset(paths), reason)


DISCONNECT_BEFORE_CLOSE = (
    "Accepted: Roost tells the MQTT 5 client why before closing (DISCONNECT 0x81 Malformed Packet or "
    "0x82 Protocol Error); Mosquitto 2.0.11 closes silently. Both are allowed: the server MAY send a "
    "DISCONNECT with a reason code >= 0x80 before closing (spec 4.13.1)."
)

KNOWN_DIFFERENCES = {
    # ---- Roost bugs, most important first (none open) ----------------------------------------------
    # ---- accepted: Roost is AWS IoT, not a general broker --------------------------------------------
    "connect_mqtt31": known(
        "after.closed", "connack.code",
        reason="Accepted: Roost speaks MQTT 3.1.1 and 5, like AWS IoT Core; an MQTT 3.1 CONNECT (MQIsdp, "
        "level 3) gets CONNACK 0x01 (unacceptable protocol version) and is closed. Mosquitto still "
        "accepts MQTT 3.1.",
    ),
    "aws_lifecycle_events": known(
        "events",
        reason="Accepted: Roost publishes AWS IoT lifecycle events ($aws/events/presence/connected|"
        "disconnected/<clientId>); Mosquitto has nothing there.",
    ),
    "dollar_sys": known(
        "got_sys_messages",
        reason="Accepted: Mosquitto publishes broker statistics under $SYS; Roost does not (not part of "
        "MQTT; Roost reports its metrics elsewhere).",
    ),
    # ---- accepted: both allowed by the spec ------------------------------------------------------------
    "takeover_v5": known(
        "old_closed.by_server_packet", "old_closed.reason",
        reason="Accepted: on a takeover Roost sends the old MQTT 5 connection DISCONNECT 0x8E (Session "
        "taken over) before closing it, as spec 3.1.4 describes; Mosquitto 2.0.11 just closes it.",
    ),
    "keepalive_timeout": known(
        "v5.after.packets",
        reason="Accepted: on a keep-alive timeout Roost sends the MQTT 5 client DISCONNECT 0x8D (Keep "
        "Alive timeout) before closing; Mosquitto 2.0.11 just closes (spec 4.13.1: MAY).",
    ),
    "overlapping_subscriptions_v5": known(
        "messages",
        reason="Accepted: for one client with two matching subscriptions Roost sends one copy at the "
        "highest granted QoS, with both Subscription Identifiers; Mosquitto 2.0.11 sends MQTT 5 clients one "
        "copy per subscription, each with its own identifier (and 3.1.1 clients one copy). Spec 3.3.4 "
        "allows both.",
    ),
    "shared_subscription": known(
        "delivered_once_each",
        reason="Accepted, Roost follows the spec: retained messages go only to new non-shared "
        "subscriptions (spec 3.3.1.3); Mosquitto 2.0.11 also sends them to each new shared subscriber.",
    ),
    "puback_reason_codes_v5": known(
        "qos2_nobody.code",
        reason="Accepted: for a QoS 2 PUBLISH nobody subscribed to, Roost answers PUBREC 0x10 (No matching "
        "subscribers, allowed in PUBREC by spec 3.5.2.1); Mosquitto uses 0x10 only in PUBACK.",
    ),
    "qos2_inbound_v5": known(
        "pubrel_unknown.code",
        reason="Accepted: a PUBREL for a packet id with no QoS 2 state left gets PUBCOMP 0x92 (Packet "
        "Identifier not found, spec 3.7.2.1) from Roost and 0x00 from Mosquitto; both complete the flow.",
    ),
    "malformed_auth_without_method_v5": known("packets", reason=DISCONNECT_BEFORE_CLOSE),
    "malformed_remaining_length_too_long_v5": known("packets", reason=DISCONNECT_BEFORE_CLOSE),
    "malformed_second_connect_v5": known("packets", reason=DISCONNECT_BEFORE_CLOSE),
    "malformed_connect_reserved_flag_bit_v5": known(
        "packets",
        reason="Accepted: Roost refuses the malformed MQTT 5 CONNECT with CONNACK 0x81 before closing; "
        "Mosquitto closes silently. Spec 4.13.1 allows either.",
    ),
    # ---- accepted: which reason code --------------------------------------------------------------------
    "malformed_subscribe_no_filters_v5": known(
        "packets[0].code",
        reason="Accepted, Roost follows the spec: DISCONNECT 0x82 (Protocol Error), as spec 3.8.3 calls a "
        "SUBSCRIBE without filters [MQTT-3.8.3-2]; Mosquitto says 0x81 (Malformed Packet).",
    ),
    "malformed_subscribe_retain_handling_3_v5": known(
        "packets[0].code",
        reason="Accepted, Roost follows the spec: DISCONNECT 0x82, as spec 3.8.3.1 calls Retain Handling 3 "
        "a Protocol Error; Mosquitto says 0x81.",
    ),
    "malformed_subscribe_invalid_filter_v5": known(
        "packets[0].code",
        reason="Accepted: for a filter with a wildcard inside a level ('a+') Roost says 0x82 (Protocol "
        "Error), Mosquitto 0x81 (Malformed Packet); spec 4.7.1 names no code, either is reasonable.",
    ),
    "malformed_topic_alias_zero_v5": known(
        "packets[0].code",
        reason="Accepted, Roost follows the spec: DISCONNECT 0x94 (Topic Alias invalid) for Topic Alias 0 "
        "(spec 3.3.2.3.4); Mosquitto says 0x81.",
    ),
    # ---- accepted: Roost follows the spec where Mosquitto 2.0.11 does not -------------------------------
    "will_delay_session_ends": known(
        "within_1_s",
        reason="Accepted, Roost follows the spec: with Will Delay 2 s and Session Expiry 0 the session ends "
        "with the connection, so Roost publishes the will at once (spec 3.1.3.2.2: at the delay or when the "
        "session ends, whichever is first); Mosquitto 2.0.11 waits for the delay.",
    ),
    # ---- accepted: Roost stricter than Mosquitto ----------------------------------------------------------
    "malformed_client_sends_suback": known(
        "closed", "packets[0].code", "packets[0].type",
        reason="Accepted, Roost stricter: a SUBACK from a client (a server-to-client packet) is a Protocol "
        "Error; Roost sends DISCONNECT 0x82 and closes, Mosquitto 2.0.11 ignores it.",
    ),
    "malformed_pingreq_with_body": known(
        "closed", "packets",
        reason="Accepted, Roost stricter: a PINGREQ with a body is malformed (spec 3.12: no variable "
        "header, no payload); Roost closes, Mosquitto 2.0.11 answers PINGRESP.",
    ),
    "malformed_publish_dup_qos0": known(
        "closed", "packets",
        reason="Accepted, Roost stricter: DUP MUST be 0 on a QoS 0 PUBLISH [MQTT-3.3.1-2]; Roost closes "
        "the connection, Mosquitto 2.0.11 keeps it open.",
    ),
    "malformed_subscribe_shared_no_local_v5": known(
        "closed", "packets",
        reason="Accepted, Roost stricter: No Local on a shared subscription is a Protocol Error "
        "[MQTT-3.8.3-4]; Roost sends DISCONNECT 0x82, Mosquitto 2.0.11 grants the subscription.",
    ),
    "malformed_subscription_id_in_publish_v5": known(
        "closed", "packets[0].code", "packets[0].type",
        reason="Accepted, Roost stricter: a client PUBLISH MUST NOT carry a Subscription Identifier "
        "[MQTT-3.3.4-6]; Roost sends DISCONNECT 0x82, Mosquitto 2.0.11 keeps the connection open.",
    ),
}


# ---- the test --------------------------------------------------------------------------------


@dataclass
class Brokers:
    roost: object
    mosquitto: Mosquitto

    def endpoints(self):
        return [roost_endpoint(self.roost), self.mosquitto.endpoint()]


@pytest.fixture(scope="module")
def brokers(tmp_path_factory):
    roost = start_roost_plain(tmp_path_factory.mktemp("conformance-roost") / "data")
    mosquitto = None
    try:
        mosquitto = Mosquitto(tmp_path_factory.mktemp("conformance-mosquitto")).start()
        yield Brokers(roost, mosquitto)
    finally:
        roost.stop()
        if mosquitto:
            mosquitto.stop()


def observe(fn, endpoint):
    ctx = Context(endpoint, fn.__name__)
    try:
        return fn(ctx)
    finally:
        ctx.close_all()


def dump_observations(name, seen):
    """With ROOST_CONFORMANCE_DUMP=<dir>, writes both observations of every
    scenario there (one JSON file each): for reviewing what the suite sees."""
    directory = os.environ.get("ROOST_CONFORMANCE_DUMP")
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        (Path(directory) / f"{name}.json").write_text(render(seen) + "\n")


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_conformance(brokers, name):
    fn = SCENARIOS[name]
    # Both brokers at once: independent processes, and it halves the waiting.
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {ep.name: pool.submit(observe, fn, ep) for ep in brokers.endpoints()}
        seen = {broker: f.result() for broker, f in futures.items()}
    dump_observations(name, seen)
    # A broker that died (a Roost panic) fails the scenario that killed it.
    assert brokers.roost.proc.poll() is None, f"roost exited: {brokers.roost.read_log()[-4000:]}"
    assert brokers.mosquitto.alive(), "mosquitto exited"
    differences = diff(seen["roost"], seen["mosquitto"])
    found = frozenset(path for path, _, _ in differences)
    expected = KNOWN_DIFFERENCES.get(name, Known(frozenset(), "")).paths
    report = "\n".join(f"  {path}: roost={render(r)} mosquitto={render(m)}" for path, r, m in differences)
    assert found == expected, (
        f"{name}: differences {sorted(found)} but the table lists {sorted(expected)}\n{report}\n"
        f"roost: {render(seen['roost'])}\nmosquitto: {render(seen['mosquitto'])}"
    )


def test_known_differences_name_real_scenarios_and_are_documented():
    doc = (ROOT / "docs" / "conformance.md").read_text()
    for name, entry in KNOWN_DIFFERENCES.items():
        assert name in SCENARIOS, f"KNOWN_DIFFERENCES names no scenario: {name}"
        assert entry.paths and entry.reason, name
        assert f"`{name}`" in doc, f"docs/conformance.md does not list {name}"
