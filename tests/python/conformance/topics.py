"""Wildcards, `$` topics, long topics, lifecycle events, overlapping
subscriptions, unsubscribing."""

import time

from paho.mqtt.subscribeoptions import SubscribeOptions

from conformance_support import V5, V311, packets
from conformance import scenario, mqtt_match


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
    """A 1 MiB payload, a 30-level topic, a 1,000-byte topic (past AWS's
    256) and one of MQTT's largest, 65,535 bytes, subscribed to exactly and
    through a wildcard."""
    sub = ctx.connected("sub", version=V5)
    deep = ctx.topic("/".join(f"l{i}" for i in range(30)))
    long = ctx.topic("t" * 1000)
    longest = ctx.topic("m/" + "u" * (65535 - len(ctx.topic("m/"))))
    out = {"suback": sub.subscribe((ctx.topic("big"), 1), (deep, 1), (long, 1), (longest, 1))}
    wild = ctx.connected("wild", version=V5)
    out["wildcard_suback"] = wild.subscribe((ctx.topic("m/+"), 0))
    pub = ctx.connected("pub", version=V5)
    out["acks"] = [pub.publish(ctx.topic("big"), b"\x01" * (1 << 20), qos=1),
                   pub.publish(deep, "deep", qos=1), pub.publish(long, "long", qos=1),
                   pub.publish(longest, "longest", qos=1)]
    received = sub.wait_messages(4, timeout=5.0)
    out["received"] = [[m["topic"][:40], len(m["topic"]), len(m["payload"])] for m in received]
    out["wildcard_received"] = [[len(m["topic"]), m["payload"]] for m in wild.wait_messages(1)]
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


@scenario
def publish_to_server_topics(ctx):
    """PUBLISH by a client to `$SYS/...` or `$share/...` (topics only the
    server publishes on, and the form of a shared subscription's filter):
    MQTT 5 gets PUBACK/PUBREC 0x87 (Not authorized), 3.1.1 an ordinary
    acknowledgement; nothing is routed, the connection stays."""
    sub = ctx.connected("sub", version=V5)
    topics = {"sys": f"$SYS/{ctx.ns}/x", "share": f"$share/g/{ctx.ns}/x"}
    out = {"suback": sub.subscribe((f"$SYS/{ctx.ns}/#", 1), (ctx.topic("x"), 1))}
    for version in (V5, V311):
        raw = ctx.raw_connected(f"pub{version}", version=version)
        for n, (name, topic) in enumerate(topics.items()):
            for qos in (0, 1, 2):
                raw.send(packets.publish(topic, f"{name} qos{qos}", qos=qos,
                                         packet_id=(10 * n + qos) if qos else None, version=version))
                out[f"v{version}_{name}_qos{qos}"] = raw.read(0.3) if qos else None
        raw.send(packets.PINGREQ)
        out[f"v{version}_after"] = raw.collect(1.5, stop_at="PINGRESP")
    out["messages"] = sub.wait_messages(0, timeout=0, quiet=0.3)
    return out
