"""The differences between Roost and Mosquitto that are known and accepted
(or, marked BUG, waiting for a fix), each with its reason. docs/conformance.md
carries the same table."""

from dataclasses import dataclass


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

CONNACK_BEFORE_CLOSE = (
    "Accepted: Roost refuses the malformed MQTT 5 CONNECT with a CONNACK saying why (0x81 Malformed "
    "Packet, 0x82 Protocol Error) before closing; Mosquitto 2.0.11 closes silently. Spec 3.1.4 and "
    "4.13.1 allow either."
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
    "malformed_auth_after_connect_v5": known("packets", reason=DISCONNECT_BEFORE_CLOSE),
    "malformed_connect_reserved_flag_bit_v5": known("packets", reason=CONNACK_BEFORE_CLOSE),
    "malformed_connect_will_qos_without_will_v5": known("packets", reason=CONNACK_BEFORE_CLOSE),
    "malformed_connect_will_retain_without_will_v5": known("packets", reason=CONNACK_BEFORE_CLOSE),
    "malformed_connect_will_topic_empty_v5": known("packets", reason=CONNACK_BEFORE_CLOSE),
    "malformed_connect_will_topic_invalid_utf8_v5": known("packets", reason=CONNACK_BEFORE_CLOSE),
    "malformed_connect_will_topic_wildcard_v5": known("packets", reason=CONNACK_BEFORE_CLOSE),
    "qos2_id_reuse_before_pubrel_v311": known(
        "messages[0].payload",
        reason="Accepted: a new QoS 2 PUBLISH (no DUP) reusing a packet id that still awaits its PUBREL "
        "breaks [MQTT-2.2.1-3]. Both answer PUBREC and deliver one message [MQTT-4.3.3-10]: Roost delivers "
        "at PUBLISH (spec 4.3.3 method A), so the first one, and does not route the reuse; Mosquitto "
        "2.0.11 delivers at PUBREL (method B) and replaces the stored message, so the second.",
    ),
    "qos2_id_reuse_before_pubrel_v5": known(
        "messages[0].payload", "second.code",
        reason="Accepted: as in 3.1.1 (Roost delivers the first message at its PUBLISH, Mosquitto the "
        "second at PUBREL; both allowed by spec 4.3.3), and Roost's PUBREC tells the MQTT 5 client "
        "0x91 (Packet Identifier in use: the message was not taken); Mosquitto says 0x00.",
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
    "malformed_subscribe_qos3_v5": known(
        "packets[0].code",
        reason="Accepted, Roost follows the spec: DISCONNECT 0x82, as spec 3.8.3.1 calls a requested QoS of 3 "
        "a Protocol Error; Mosquitto says 0x81.",
    ),
    "malformed_unsubscribe_no_filters_v5": known(
        "packets[0].code",
        reason="Accepted, Roost follows the spec: DISCONNECT 0x82, as spec 3.10.3 calls an UNSUBSCRIBE "
        "without filters a Protocol Error [MQTT-3.10.3-2]; Mosquitto says 0x81.",
    ),
    "malformed_unsubscribe_invalid_filter_v5": known(
        "packets[0].code",
        reason="Accepted: for an UNSUBSCRIBE filter with '#' before its last level Roost says 0x82 (Protocol "
        "Error), as for SUBSCRIBE, and Mosquitto 0x81; spec 4.7.1 names no code.",
    ),
    "malformed_unsubscribe_packet_id_zero_v5": known(
        "packets[0].code",
        reason="Accepted: for an UNSUBSCRIBE with packet identifier 0 [MQTT-2.2.1-3] Roost says 0x82 "
        "(Protocol Error), Mosquitto 0x81; spec 2.2.1 names no code.",
    ),
    "malformed_topic_alias_zero_v5": known(
        "packets[0].code",
        reason="Accepted, Roost follows the spec: DISCONNECT 0x94 (Topic Alias invalid) for Topic Alias 0 "
        "(spec 3.3.2.3.4); Mosquitto says 0x81.",
    ),
    # ---- accepted: Roost follows the spec where Mosquitto 2.0.11 does not -------------------------------
    "v5_receive_maximum_inbound": known(
        "over.closed", "over.packets[0].code", "over.packets[0].id", "over.packets[0].type",
        reason="Accepted, Roost follows the spec: a QoS 2 PUBLISH past the server's Receive Maximum gets "
        "DISCONNECT 0x93 (Receive Maximum exceeded, spec 3.3.4) and the connection is closed; Mosquitto "
        "2.0.11 answers PUBREC 0x97 (Quota exceeded) and keeps it. Neither delivers the message.",
    ),
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
