"""QoS 0/1/2 flows in both directions, redelivery, offline queues, PUBACK codes."""

import time

from conformance_support import V5, V311, packets
from conformance import scenario


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


def qos2_id_reuse_before_pubrel(ctx, version):
    """A new QoS 2 PUBLISH (no DUP) reusing a packet id whose first message
    still awaits its PUBREL [MQTT-2.2.1-3], then the PUBREL: what each
    PUBLISH is answered, and which message subscribers get."""
    sub = ctx.connected("sub", version=V5)
    sub.subscribe((ctx.topic("x"), 2))
    raw = ctx.raw_connected("pub", version=version)
    out = {}
    raw.send(packets.publish(ctx.topic("x"), "first", qos=2, packet_id=7, version=version))
    out["first"] = raw.read()
    raw.send(packets.publish(ctx.topic("x"), "second", qos=2, packet_id=7, version=version))
    out["second"] = raw.read()
    raw.send(packets.ack("PUBREL", 7, version))
    out["pubrel"] = raw.read()
    out["messages"] = sub.wait_messages(1)
    return out


@scenario
def qos2_id_reuse_before_pubrel_v311(ctx):
    return qos2_id_reuse_before_pubrel(ctx, V311)


@scenario
def qos2_id_reuse_before_pubrel_v5(ctx):
    return qos2_id_reuse_before_pubrel(ctx, V5)


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
