"""MQTT 5 properties and features: message properties, expiry, topic
aliases, flow control, subscription options and identifiers."""

import time

from paho.mqtt.subscribeoptions import SubscribeOptions

from conformance_support import V5, V311, packets
from conformance import scenario


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
def v5_request_response(ctx):
    """Request/response (spec 4.10): the requester publishes a request with a
    Response Topic and Correlation Data; the responder answers on the
    Response Topic it received, with the Correlation Data it received; both
    pass through unchanged, and the response reaches the requester."""
    responder = ctx.connected("responder", version=V5)
    responder.subscribe((ctx.topic("requests"), 1))
    requester = ctx.connected("requester", version=V5)
    requester.subscribe((ctx.topic("responses/requester"), 1))
    out = {"request_ack": requester.publish(
        ctx.topic("requests"), "what time is it", qos=1,
        properties={"ResponseTopic": ctx.topic("responses/requester"), "CorrelationData": b"\x00\x01req-1"})}
    out["request"] = responder.wait_messages(1)
    if out["request"]:
        request = out["request"][0]
        out["response_ack"] = responder.publish(
            request.get("response_topic", ""), "noon", qos=1,
            properties={"CorrelationData": request.get("correlation_data", "").encode()})
    out["response"] = requester.wait_messages(1)
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
def v5_receive_maximum_inbound(ctx):
    """A client may have at most the server's Receive Maximum (from its
    CONNACK) QoS 1 and 2 PUBLISHes unanswered: QoS 2 PUBLISHes sent without
    their PUBRELs fill that window, and one more is a violation
    [MQTT-3.3.4-7]. What the server answers within the window and to the
    one past it, which is not delivered."""
    sub = ctx.connected("sub", version=V5)
    sub.subscribe((ctx.topic("x"), 2))
    probe = ctx.connected("probe", version=V5)
    window = getattr(probe.connack_props, "ReceiveMaximum", 65535)
    raw = ctx.raw_connected("pub", version=V5)
    out = {}
    raw.send(b"".join(packets.publish(ctx.topic("x"), f"m{i}", qos=2, packet_id=i, version=V5)
                      for i in range(1, window + 1)))
    within = [raw.read() for _ in range(window)]
    out["within"] = sorted({(p["type"], p.get("code")) for p in within})
    raw.send(packets.publish(ctx.topic("x"), "over", qos=2, packet_id=window + 1, version=V5))
    out["over"] = raw.collect(1.5)
    # Roost delivers a QoS 2 message at its PUBLISH, Mosquitto at its
    # PUBREL: only the one past the window is comparable (never delivered).
    received = sub.wait_messages(0, timeout=0, quiet=0.5)
    out["over_delivered"] = [m for m in received if m["payload"] == "over"]
    return out


@scenario
def v5_maximum_packet_size(ctx):
    """A message larger than the client's Maximum Packet Size is dropped for
    that client (spec 3.1.2.11.4), at QoS 0 and 1; the connection stays up."""
    sub = ctx.connected("sub", version=V5, connect_properties={"MaximumPacketSize": 128})
    sub.subscribe((ctx.topic("x"), 1))
    pub = ctx.connected("pub", version=V5)
    pub.publish(ctx.topic("x"), "w" * 300, qos=0)
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
