"""Retained messages: set, replace, delete, wildcards, QoS."""

import time

from conformance_support import V311
from conformance import scenario


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
