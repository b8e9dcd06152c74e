"""Malformed packets and protocol violations: each row of MALFORMED is a
scenario."""

from conformance_support import V5, V311, packets
from conformance import scenario


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
    "connect_will_retain_without_will_v311": (V311, False, lambda ctx: packets.connect(ctx.client_id("c"), extra_flags=0x20)),
    "connect_will_qos_without_will_v5": (V5, False, lambda ctx: packets.connect(ctx.client_id("c"), version=V5, extra_flags=0x08)),
    "connect_will_retain_without_will_v5": (V5, False, lambda ctx: packets.connect(ctx.client_id("c"), version=V5, extra_flags=0x20)),
    "connect_will_topic_empty_v311": (V311, False, lambda ctx: packets.connect(ctx.client_id("c"), will=("", b"w", 0, False))),
    "connect_will_topic_empty_v5": (V5, False, lambda ctx: packets.connect(ctx.client_id("c"), version=V5, will=("", b"w", 0, False))),
    "connect_will_topic_invalid_utf8_v311": (V311, False, lambda ctx: packets.connect(ctx.client_id("c"), will=(b"\xff\xfe", b"w", 0, False))),
    "connect_will_topic_invalid_utf8_v5": (V5, False, lambda ctx: packets.connect(ctx.client_id("c"), version=V5, will=(b"\xff\xfe", b"w", 0, False))),
    "connect_will_topic_wildcard_v5": (V5, False, lambda ctx: packets.connect(ctx.client_id("c"), version=V5, will=(ctx.topic("#"), b"w", 0, False))),
    "connect_authentication_method_v5": (V5, False, lambda ctx: packets.connect(ctx.client_id("c"), version=V5, properties=b"\x15" + packets.string("SCRAM-SHA-1"))),
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
    "subscribe_qos3_v5": (V5, True, lambda ctx: packets.subscribe(1, [(ctx.topic("x"), 3)], version=V5)),
    "unsubscribe_no_filters_v311": (V311, True, lambda ctx: packets.frame(0xA2, b"\x00\x01")),
    "unsubscribe_no_filters_v5": (V5, True, lambda ctx: packets.frame(0xA2, b"\x00\x01" + packets.properties())),
    "unsubscribe_invalid_filter_v5": (V5, True, lambda ctx: packets.frame(0xA2, b"\x00\x01" + packets.properties() + packets.string(ctx.topic("#/x")))),
    "unsubscribe_packet_id_zero_v5": (V5, True, lambda ctx: packets.frame(0xA2, b"\x00\x00" + packets.properties() + packets.string(ctx.topic("x")))),
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
    "auth_after_connect_v5": (V5, True, lambda ctx: packets.frame(0xF0, b"\x18" + packets.properties(b"\x15" + packets.string("SCRAM-SHA-1")))),
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
