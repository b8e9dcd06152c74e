"""The scenario's policy enforced on live MQTT connections: tenants and
things stay on their own topics; only registered, ACTIVE certificates
connect; a deactivated certificate's connection drops at once; policy
changes apply from the next action."""

import json
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from conftest import ACCOUNT, REGION, make_device, scenario_policy
from mqtt_helpers import Inbox, close, paho_connect, subscribe_wait as subscribe, wait_until

THING = "iot-webinar-device"
ARN = f"arn:aws:iot:{REGION}:{ACCOUNT}"


@pytest.fixture
def tenants(roost, tmp_path):
    """The scenario device (policy v2) and a device of another tenant with an
    allow-all policy, to publish into everyone's topics."""
    iot = roost.boto()
    iot.create_policy(policyName="iot-webinar-policy", policyDocument=scenario_policy(1))
    iot.create_policy_version(policyName="iot-webinar-policy", policyDocument=scenario_policy(2), setAsDefault=True)
    device = make_device(roost, tmp_path, THING, policy=None, attributes={"Owner": "abcde-12345"})
    iot.attach_policy(policyName="iot-webinar-policy", target=device.cert_arn)
    other = make_device(roost, tmp_path, "other-device", policy=None, attributes={"Owner": "abcde-12345"})
    iot.attach_policy(policyName="iot-webinar-policy", target=other.cert_arn)
    admin = make_device(roost, tmp_path, "admin-tool")
    return device, other, admin


def connect(device, port, client_id=None, protocol=mqtt.MQTTv311):
    client = device.paho(client_id or device.thing, protocol=protocol)
    inbox = Inbox()
    client.on_message = lambda c, u, m: inbox.put(m.topic, m.payload, m.qos)
    result = paho_connect(client, port)
    return client, inbox, result




def test_connect_only_as_own_thing_name(roost, tenants):
    device, _, _ = tenants
    client, _, result = connect(device, roost.mqtt_port)
    assert result["rc"] == 0
    client.disconnect()
    client.loop_stop()
    for protocol in [mqtt.MQTTv311, mqtt.MQTTv5]:
        impostor, _, result = connect(device, roost.mqtt_port, client_id="someone-else", protocol=protocol)
        # 3.1.1: CONNACK 0x05; 5: CONNACK 0x87. paho names both "Not authorized".
        assert str(result["rc"]) == "Not authorized", (protocol, result)
        impostor.loop_stop()


def test_tenant_isolation(roost, tenants):
    device, other, admin = tenants
    # The admin sees everything that gets through.
    admin_client, admin_inbox, _ = connect(admin, roost.mqtt_port)
    assert subscribe(admin_client, "#") == [1]
    client, inbox, _ = connect(device, roost.mqtt_port, protocol=mqtt.MQTTv5)
    # Subscribe: own jobs topics yes, another thing's, another tenant's or everything no.
    assert subscribe(client, f"$aws/things/{THING}/jobs/notify") == [1]
    assert subscribe(client, "$aws/things/other-device/jobs/notify") == [0x87]
    assert subscribe(client, "abcde-12345/other-device/audit") == [0x87]
    assert subscribe(client, "#") == [0x87]
    # Publish: own audit topic yes; other thing's, other tenant's, other topics no.
    for topic in ["abcde-12345/other-device/audit", f"other-tenant/{THING}/audit", f"abcde-12345/{THING}/other"]:
        client.publish(topic, b"denied", qos=1).wait_for_publish(10)
    client.publish(f"abcde-12345/{THING}/audit", b"allowed", qos=1).wait_for_publish(10)
    assert [(t, p) for t, p, _, _ in admin_inbox.take(1)] == [(f"abcde-12345/{THING}/audit", b"allowed")]
    assert admin_inbox.empty_for(0.5)
    # Receive: the jobs service notifies the other thing, then ours (a job
    # each); our device only gets its own notification.
    iot = roost.boto()
    for thing, job in [(other.thing, "not-for-you"), (THING, "for-you")]:
        iot.create_job(jobId=job, targets=[f"arn:aws:iot:{REGION}:{ACCOUNT}:thing/{thing}"], document="{}")
    [(topic, payload, _, _)] = inbox.take(1)
    assert topic == f"$aws/things/{THING}/jobs/notify"
    assert [j["jobId"] for j in json.loads(payload)["jobs"]["QUEUED"]] == ["for-you"]
    assert inbox.empty_for(0.5)
    close(client, admin_client)


def test_denied_publish_on_mqtt311_closes_the_connection(roost, tenants):
    device, _, admin = tenants
    admin_client, admin_inbox, _ = connect(admin, roost.mqtt_port)
    subscribe(admin_client, "+/+/audit")
    client, _, _ = connect(device, roost.mqtt_port)
    closed = threading.Event()
    client.on_disconnect = lambda *a: closed.set()
    client.publish("other-tenant/iot-webinar-device/audit", b"sneaky", qos=1)
    assert closed.wait(5), "AWS closes a 3.1.1 connection on a denied publish"
    assert admin_inbox.empty_for(0.5)
    client.loop_stop()
    admin_client.disconnect()
    admin_client.loop_stop()


def test_allowed_publish_reaches_subscribers_and_denied_ones_do_not(roost, tenants):
    device, _, admin = tenants
    admin_client, admin_inbox, _ = connect(admin, roost.mqtt_port)
    subscribe(admin_client, "+/+/audit")
    client, _, _ = connect(device, roost.mqtt_port, protocol=mqtt.MQTTv5)
    client.publish("abcde-12345/other-device/audit", b"denied", qos=1).wait_for_publish(10)
    client.publish(f"abcde-12345/{THING}/audit", b"allowed", qos=1).wait_for_publish(10)
    got = admin_inbox.take(1)
    assert [(t, p) for t, p, _, _ in got] == [(f"abcde-12345/{THING}/audit", b"allowed")]
    assert admin_inbox.empty_for(0.5)
    close(client, admin_client)


def test_unregistered_inactive_and_revoked_certificates_are_refused(roost, tenants, tmp_path):
    device, _, _ = tenants
    iot = roost.boto()
    # A certificate from Roost's CA that was never registered: delete it.
    stray = make_device(roost, tmp_path, "stray", policy=None, create_thing=False)
    iot.update_certificate(certificateId=stray.cert_id, newStatus="INACTIVE")
    iot.delete_certificate(certificateId=stray.cert_id)
    for dev in [stray]:
        client, _, result = _try_connect(dev, roost.mqtt_port)
        assert result is None, "an unregistered certificate must not get a CONNACK"
    iot.update_certificate(certificateId=device.cert_id, newStatus="INACTIVE")
    assert _try_connect(device, roost.mqtt_port)[2] is None
    iot.update_certificate(certificateId=device.cert_id, newStatus="ACTIVE")
    assert _try_connect(device, roost.mqtt_port)[2]["rc"] == 0
    iot.update_certificate(certificateId=device.cert_id, newStatus="REVOKED")
    assert _try_connect(device, roost.mqtt_port)[2] is None


def _try_connect(device, port):
    client = device.paho(device.thing)
    try:
        result = paho_connect(client, port, timeout=5)
        if "disconnected" in result and result.get("rc") == result.get("disconnected") and not result.get("flags"):
            result = None
    except (TimeoutError, OSError, Exception):
        result = None
    client.disconnect()
    client.loop_stop()
    return client, None, result


def test_live_connection_drops_within_a_second_of_deactivation(roost, tenants):
    device, _, _ = tenants
    client, _, result = connect(device, roost.mqtt_port)
    assert result["rc"] == 0
    dropped = threading.Event()
    client.on_disconnect = lambda *a: dropped.set()
    client.reconnect_delay_set(min_delay=60, max_delay=60)  # do not come back during the test
    start = time.monotonic()
    roost.boto().update_certificate(certificateId=device.cert_id, newStatus="INACTIVE")
    assert dropped.wait(1.0), "the connection must drop within one second"
    assert time.monotonic() - start < 1.0
    client.loop_stop()


def test_policy_changes_apply_from_the_next_action(roost, tenants):
    device, _, admin = tenants
    iot = roost.boto()
    admin_client, admin_inbox, _ = connect(admin, roost.mqtt_port)
    subscribe(admin_client, "+/+/audit")
    client, _, _ = connect(device, roost.mqtt_port, protocol=mqtt.MQTTv5)
    client.publish(f"abcde-12345/{THING}/audit", b"before", qos=1).wait_for_publish(10)
    assert [p for _, p, _, _ in admin_inbox.take(1)] == [b"before"]
    # The thing moves to another tenant: the old topic is denied on the same connection.
    iot.update_thing(thingName=THING, attributePayload={"attributes": {"Owner": "fghij-67890"}, "merge": True})
    client.publish(f"abcde-12345/{THING}/audit", b"old tenant", qos=1).wait_for_publish(10)
    client.publish(f"fghij-67890/{THING}/audit", b"new tenant", qos=1).wait_for_publish(10)
    assert [p for _, p, _, _ in admin_inbox.take(1)] == [b"new tenant"]
    # An explicit Deny attached later wins at once.
    deny = {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "iot:Publish", "Resource": "*"}]}
    iot.create_policy(policyName="deny-all", policyDocument=json.dumps(deny))
    iot.attach_policy(policyName="deny-all", target=device.cert_arn)
    client.publish(f"fghij-67890/{THING}/audit", b"after deny", qos=1).wait_for_publish(10)
    assert admin_inbox.empty_for(0.5)
    close(client, admin_client)


def test_provisioning_other_devices_leaves_a_connections_policies_alone(roost, tenants, tmp_path):
    """A change re-prepares the policies of the connections it may concern
    only: provisioning a fleet while devices are connected must not make
    every connection re-read its policies at every action."""
    device, _, _ = tenants
    iot = roost.boto()
    client, _, _ = connect(device, roost.mqtt_port, protocol=mqtt.MQTTv5)
    topic = f"abcde-12345/{THING}/audit"
    refreshes = lambda: roost.metric("roost_gateway_authorization_refreshes_total")
    before = refreshes()
    for i in range(10):
        # A new thing, certificate, thing principal and policy attachment each time.
        make_device(roost, tmp_path, f"fleet-{i}")
        client.publish(topic, b"still here", qos=1).wait_for_publish(10)
    # One global counter made that 10; scoped ones make it 0 (1 if two
    # certificates happen to share a slot of the generation table).
    assert refreshes() - before <= 1
    # A change that does concern the connection reaches it at its next action.
    settled = refreshes()
    deny = {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "iot:Publish", "Resource": "*"}]}
    iot.create_policy(policyName="deny-all", policyDocument=json.dumps(deny))
    iot.attach_policy(policyName="deny-all", target=device.cert_arn)
    info = client.publish(topic, b"denied", qos=1)
    info.wait_for_publish(10)
    assert refreshes() == settled + 1
    # So does a change to a policy document, which may concern everyone.
    iot.detach_policy(policyName="deny-all", target=device.cert_arn)
    client.publish(topic, b"allowed again", qos=1).wait_for_publish(10)
    iot.create_policy_version(policyName="iot-webinar-policy", policyDocument=scenario_policy(2), setAsDefault=True)
    client.publish(topic, b"after new version", qos=1).wait_for_publish(10)
    assert refreshes() == settled + 3
    client.disconnect()
    client.loop_stop()


def test_receive_is_checked_at_each_delivery(roost, tmp_path):
    """Subscribe allowed broadly, Receive only on public/*: a '#' subscriber
    gets public messages only (AWS's documented way to cut off deliveries)."""
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "iot:Connect", "Resource": f"{ARN}:client/reader"},
            {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": f"{ARN}:topicfilter/*"},
            {"Effect": "Allow", "Action": "iot:Receive", "Resource": f"{ARN}:topic/public/*"},
        ],
    }
    reader = make_device(roost, tmp_path, "reader", policy=json.dumps(policy))
    writer = make_device(roost, tmp_path, "writer")
    client, inbox, _ = connect(reader, roost.mqtt_port)
    assert subscribe(client, "#") == [1]
    pub, _, _ = connect(writer, roost.mqtt_port)
    for topic in ["private/a", "public/a", "private/b", "public/b"]:
        pub.publish(topic, topic.encode(), qos=1).wait_for_publish(10)
    assert sorted(t for t, _, _, _ in inbox.take(2)) == ["public/a", "public/b"]
    assert inbox.empty_for(0.5)
    # Receive can also be taken away on a live subscription.
    roost.boto().create_policy_version(
        policyName="policy-reader",
        policyDocument=json.dumps({**policy, "Statement": policy["Statement"][:2]}),
        setAsDefault=True,
    )
    pub.publish("public/c", b"c", qos=1).wait_for_publish(10)
    assert inbox.empty_for(0.5)
    for c in (client, pub):
        c.disconnect()
        c.loop_stop()


def test_certificate_id_variable_on_a_live_connection(roost, tmp_path):
    """`${iot:CertificateId}` resolves to the connecting certificate's id in
    the gateway's own per-connection authorization, not only in
    TestAuthorization."""
    policy = json.dumps({
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "iot:Connect", "Resource": f"{ARN}:client/${{iot:Connection.Thing.ThingName}}"},
            {"Effect": "Allow", "Action": "iot:Publish", "Resource": f"{ARN}:topic/certs/${{iot:CertificateId}}"},
        ],
    })
    device = make_device(roost, tmp_path, "cert-id-device", policy=policy)
    admin = make_device(roost, tmp_path, "cert-id-admin")
    admin_client, admin_inbox, _ = connect(admin, roost.mqtt_port)
    subscribe(admin_client, "certs/#")
    client, _, result = connect(device, roost.mqtt_port, protocol=mqtt.MQTTv5)
    assert result["rc"] == 0
    client.publish(f"certs/{admin.cert_id}", b"denied", qos=1).wait_for_publish(10)
    client.publish(f"certs/{device.cert_id}", b"allowed", qos=1).wait_for_publish(10)
    assert [(t, p) for t, p, _, _ in admin_inbox.take(1)] == [(f"certs/{device.cert_id}", b"allowed")]
    assert admin_inbox.empty_for(0.5)
    close(client, admin_client)
