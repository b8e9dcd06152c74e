"""Real MQTT clients against the gateway over mutual TLS: each connects with a
registered certificate and publishes and receives at QoS 0 and 1."""

import subprocess
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from conftest import make_device
from mqtt_helpers import Inbox, mosquitto, paho_connect


def test_mosquitto_clients(roost, tmp_path):
    dev = make_device(roost, tmp_path, "mosq-device")
    for version in ["mqttv311", "mqttv5"]:
        for qos in ["0", "1"]:
            topic = f"test/mosquitto/{version}/{qos}"
            sub = subprocess.Popen(
                ["mosquitto_sub", "-h", "localhost", "-p", str(roost.mqtt_port), "--cafile", dev.ca,
                 "--cert", dev.certfile, "--key", dev.keyfile, "-i", f"sub-{version}-{qos}", "-V", version,
                 "-t", topic, "-q", qos, "-C", "1", "-W", "15"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
            time.sleep(0.5)  # let the subscription land
            pub = mosquitto(dev, roost.mqtt_port, "-i", f"pub-{version}-{qos}", "-V", version, "-t", topic, "-m", f"hello {version} {qos}", "-q", qos)
            assert pub.returncode == 0, pub.stderr
            out, err = sub.communicate(timeout=20)
            assert sub.returncode == 0, err
            assert out.strip() == f"hello {version} {qos}"


@pytest.mark.parametrize("protocol", [mqtt.MQTTv311, mqtt.MQTTv5], ids=["3.1.1", "5"])
def test_paho(roost, tmp_path, protocol):
    dev = make_device(roost, tmp_path, "paho-device")
    inbox = Inbox()
    sub = dev.paho("paho-sub", protocol=protocol)
    sub.on_message = lambda c, u, m: inbox.put(m.topic, m.payload, m.qos, m.retain)
    assert paho_connect(sub, roost.mqtt_port)["rc"] == 0
    subscribed = threading.Event()
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.subscribe("paho/#", qos=1)
    assert subscribed.wait(10)
    pub = dev.paho("paho-pub", protocol=protocol)
    assert paho_connect(pub, roost.mqtt_port)["rc"] == 0
    pub.publish("paho/q0", b"zero", qos=0).wait_for_publish(10)
    info = pub.publish("paho/q1", b"one", qos=1)
    info.wait_for_publish(10)
    assert info.is_published()
    got = sorted(inbox.take(2))
    assert [(t, p, q) for t, p, q, _ in got] == [("paho/q0", b"zero", 0), ("paho/q1", b"one", 1)]
    for c in (sub, pub):
        c.disconnect()
        c.loop_stop()


def test_aws_iot_python_sdk_v1(roost, tmp_path):
    from AWSIoTPythonSDK.MQTTLib import AWSIoTMQTTClient

    dev = make_device(roost, tmp_path, "v1-device")
    client = AWSIoTMQTTClient("v1-device")
    client.configureEndpoint("localhost", roost.mqtt_port)
    client.configureCredentials(dev.ca, dev.keyfile, dev.certfile)
    client.configureConnectDisconnectTimeout(10)
    client.configureMQTTOperationTimeout(10)
    assert client.connect()
    inbox = Inbox()
    assert client.subscribe("v1/test/+", 1, lambda c, u, m: inbox.put(m.topic, m.payload, m.qos))
    assert client.publish("v1/test/q1", "hello-v1", 1)
    assert client.publish("v1/test/q0", "hello-v0", 0)
    got = sorted((t, p, q) for t, p, q, _ in inbox.take(2))
    assert got == [("v1/test/q0", b"hello-v0", 0), ("v1/test/q1", b"hello-v1", 1)]
    assert client.disconnect()


def test_awsiotsdk_mqtt3_mtls_from_path(roost, tmp_path):
    from awscrt import mqtt as crt_mqtt
    from awsiot import mqtt_connection_builder

    dev = make_device(roost, tmp_path, "crt3-device")
    conn = mqtt_connection_builder.mtls_from_path(
        endpoint="localhost", port=roost.mqtt_port, cert_filepath=dev.certfile, pri_key_filepath=dev.keyfile,
        ca_filepath=dev.ca, client_id="crt3-device", clean_session=False, keep_alive_secs=30,
    )
    result = conn.connect().result(10)
    assert result["session_present"] is False
    inbox = Inbox()
    fut, _ = conn.subscribe("crt3/+", crt_mqtt.QoS.AT_LEAST_ONCE, callback=lambda topic, payload, dup, qos, retain, **kw: inbox.put(topic, payload, int(qos)))
    fut.result(10)
    conn.publish("crt3/q1", b"one", crt_mqtt.QoS.AT_LEAST_ONCE)[0].result(10)
    conn.publish("crt3/q0", b"zero", crt_mqtt.QoS.AT_MOST_ONCE)[0].result(10)
    got = sorted((t, p, q) for t, p, q, _ in inbox.take(2))
    assert got == [("crt3/q0", b"zero", 0), ("crt3/q1", b"one", 1)]
    conn.disconnect().result(10)
    # Clean session off: reconnecting resumes the session.
    again = conn.connect().result(10)
    assert again["session_present"] is True
    conn.disconnect().result(10)


def test_awsiotsdk_mqtt5_client_builder(roost, tmp_path):
    from awscrt import mqtt5
    from awsiot import mqtt5_client_builder

    dev = make_device(roost, tmp_path, "crt5-device")
    inbox = Inbox()
    connected = threading.Event()
    stopped = threading.Event()
    client = mqtt5_client_builder.mtls_from_path(
        endpoint="localhost", port=roost.mqtt_port, cert_filepath=dev.certfile, pri_key_filepath=dev.keyfile,
        ca_filepath=dev.ca, client_id="crt5-device",
        on_publish_received=lambda data: inbox.put(data.publish_packet.topic, data.publish_packet.payload, int(data.publish_packet.qos)),
        on_lifecycle_connection_success=lambda data: connected.set(),
        on_lifecycle_stopped=lambda data: stopped.set(),
    )
    client.start()
    assert connected.wait(10)
    suback = client.subscribe(mqtt5.SubscribePacket(subscriptions=[mqtt5.Subscription(topic_filter="crt5/#", qos=mqtt5.QoS.AT_LEAST_ONCE)])).result(10)
    assert suback.reason_codes == [mqtt5.SubackReasonCode.GRANTED_QOS_1]
    puback = client.publish(mqtt5.PublishPacket(topic="crt5/q1", payload=b"one", qos=mqtt5.QoS.AT_LEAST_ONCE)).result(10)
    assert puback.puback.reason_code == mqtt5.PubackReasonCode.SUCCESS
    client.publish(mqtt5.PublishPacket(topic="crt5/q0", payload=b"zero", qos=mqtt5.QoS.AT_MOST_ONCE)).result(10)
    got = sorted((t, p, q) for t, p, q, _ in inbox.take(2))
    assert got == [("crt5/q0", b"zero", 0), ("crt5/q1", b"one", 1)]
    client.stop(mqtt5.DisconnectPacket())
    assert stopped.wait(10)
