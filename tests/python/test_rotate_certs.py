"""`roost rotate-certs`, the operator's side of certificate rotation, with the
real binary. A device written as the scenario's jobs handler
(AWSIoTPythonSDK's AWSIoTMQTTThingJobsClient: start-next, a bare GET of
both presigned URLs, overwrite its files, reconnect, report) rotates from the
job the command creates, also with the files sealed to its EC or RSA key; a
group rotates together against a remote Roost; a device that reports FAILED
keeps its old certificate; a SUCCEEDED naming another certificate switches
nothing off; a second run follows the first run's job, or finishes what it
left; a start that fails half-way, or a job deleted under it, leaves no
usable new certificate; bad input creates nothing."""

import hashlib
import json
import queue
import shutil
import ssl
import subprocess
import threading
import time
import urllib.request

import pytest
from conftest import Device, make_device, roost_binary, scenario_policy
from mqtt_helpers import mosquitto

OWNER = "abcde-12345"
CLI_TIMEOUT = 120


def scenario_device(roost, tmp_path, thing):
    """A thing with the scenario's Owner attribute and jobs policy (v2)."""
    return make_device(roost, tmp_path, thing, policy=scenario_policy(2),
                       attributes={"Owner": OWNER}, policy_name="iot-webinar-policy")


def rotate_certs(roost, *args, remote=False):
    """Starts `roost rotate-certs` against `roost` (not waited for): with its
    data directory, or `remote`ly with its URL and the AWS credentials chain."""
    target = ["--endpoint", roost.api_url] if remote else ["--data-dir", str(roost.data_dir)]
    return subprocess.Popen([roost_binary(), "rotate-certs", *args, *target], env=roost.aws_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finished(proc):
    out, err = proc.communicate(timeout=CLI_TIMEOUT)
    return proc.returncode, out, err


def certificate_id(pem: bytes) -> str:
    """A certificate's id as Roost and AWS compute it: SHA-256 of its DER."""
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem.decode())).hexdigest()


ECIES_INFO = b"roost-sealed ecies-p256-hkdf-sha256-aes256gcm v1"


def open_sealed(private_key_pem: bytes, sealed: bytes) -> bytes:
    """Opens a file sealed in the ecies-p256-hkdf-sha256-aes256gcm format, as
    its documentation describes it, with the `cryptography` package: "RSLD",
    version 1, the ephemeral SEC1 point, a 12-byte nonce, then AES-256-GCM
    under HKDF-SHA256(ECDH, info ‖ ephemeral ‖ recipient), the prefix as
    associated data."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    assert sealed[:5] == b"RSLD\x01", sealed[:5]
    ephemeral, nonce, prefix = sealed[5:70], sealed[70:82], sealed[:82]
    key = serialization.load_pem_private_key(private_key_pem, password=None)
    secret = key.exchange(ec.ECDH(), ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), ephemeral))
    recipient = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    aes_key = HKDF(hashes.SHA256(), 32, salt=None, info=ECIES_INFO + ephemeral + recipient).derive(secret)
    return AESGCM(aes_key).decrypt(nonce, sealed[82:], prefix)


def open_as_the_sample_does(private_key_pem: bytes, sealed: bytes) -> bytes:
    """The scenario's PyCryptodome sample (sample-asymmetric-crypto.py),
    decrypting: the RSA-OAEP encrypted session key, a 16-byte nonce, a
    16-byte tag, then the AES-EAX ciphertext."""
    from Crypto.Cipher import AES, PKCS1_OAEP
    from Crypto.PublicKey import RSA

    private_key = RSA.import_key(private_key_pem)
    size = private_key.size_in_bytes()
    enc_session_key, nonce, tag = sealed[:size], sealed[size:size + 16], sealed[size + 16:size + 32]
    session_key = PKCS1_OAEP.new(private_key).decrypt(enc_session_key)
    return AES.new(session_key, AES.MODE_EAX, nonce).decrypt_and_verify(sealed[size + 32:], tag)


def rsa_device(roost, tmp_path, thing):
    """A device whose key is RSA 2048 (its certificate from a CSR), as one
    made in the AWS console is."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    iot = roost.boto()
    iot.create_thing(thingName=thing, attributePayload={"attributes": {"Owner": OWNER}})
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, thing)]))
           .sign(key, hashes.SHA256()))
    cert = iot.create_certificate_from_csr(
        certificateSigningRequest=csr.public_bytes(serialization.Encoding.PEM).decode(), setAsActive=True)
    directory = tmp_path / f"device-{thing}"
    directory.mkdir()
    (directory / "certificate.pem.crt").write_text(cert["certificatePem"])
    (directory / "private.pem.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()))
    (directory / "root-ca.pem").write_text((roost.data_dir / "root-ca.pem").read_text())
    iot.attach_thing_principal(thingName=thing, principal=cert["certificateArn"])
    try:
        iot.create_policy(policyName="iot-webinar-policy", policyDocument=scenario_policy(2))
    except iot.exceptions.ResourceAlreadyExistsException:
        pass
    iot.attach_policy(policyName="iot-webinar-policy", target=cert["certificateArn"])
    return Device(roost, directory, thing, cert)


def keep_old_pair(device, tmp_path):
    """A copy of the device's current files, to try them again later."""
    old = tmp_path / f"old-{device.thing}"
    shutil.copytree(device.dir, old)
    return Device(device.roost, old, device.thing, {"certificateArn": device.cert_arn, "certificateId": device.cert_id})


class JobsHandler:
    """The scenario's jobs-handler.py: AWSIoTMQTTThingJobsClient subscribed to
    notify-next and the start-next and update replies."""

    def __init__(self, device):
        from AWSIoTPythonSDK.core.jobs.thingJobManager import jobExecutionTopicReplyType as reply
        from AWSIoTPythonSDK.core.jobs.thingJobManager import jobExecutionTopicType as topic
        from AWSIoTPythonSDK.MQTTLib import AWSIoTMQTTThingJobsClient

        self.device = device
        self.inbox = queue.Queue()
        self.client = AWSIoTMQTTThingJobsClient(device.thing, device.thing, QoS=1)
        self.client.configureEndpoint("localhost", device.roost.mqtt_port)
        self.client.configureCredentials(device.ca, device.keyfile, device.certfile)
        self.client.configureConnectDisconnectTimeout(10)
        self.client.configureMQTTOperationTimeout(10)
        assert self.client.connect()
        on = lambda kind: (lambda c, u, m: self.inbox.put((kind, json.loads(m.payload))))
        assert self.client.createJobSubscription(on("notify-next"), topic.JOB_NOTIFY_NEXT_TOPIC)
        assert self.client.createJobSubscription(on("started"), topic.JOB_START_NEXT_TOPIC, reply.JOB_ACCEPTED_REPLY_TYPE)
        assert self.client.createJobSubscription(on("updated"), topic.JOB_UPDATE_TOPIC, reply.JOB_ACCEPTED_REPLY_TYPE, "+")

    def next_job(self):
        """start-next until an execution comes (the job may not exist yet:
        then notify-next says when it does)."""
        assert self.client.sendJobsStartNext()
        while True:
            kind, payload = self.inbox.get(timeout=60)
            if kind == "started" and "execution" in payload:
                return payload["execution"]
            if kind == "notify-next" and "execution" in payload:
                assert self.client.sendJobsStartNext()

    def report(self, job_id, status, details, version):
        from AWSIoTPythonSDK.core.jobs.thingJobManager import jobExecutionStatus

        status = {"SUCCEEDED": jobExecutionStatus.JOB_EXECUTION_SUCCEEDED,
                  "FAILED": jobExecutionStatus.JOB_EXECUTION_FAILED}[status]
        assert self.client.sendJobsUpdate(job_id, status, statusDetails=details, expectedVersion=version)
        while True:
            kind, payload = self.inbox.get(timeout=30)
            if kind == "updated":
                return payload

    def disconnect(self):
        self.client.disconnect()


def rotate_as_the_scenario_does(device, outcome="SUCCEEDED"):
    """Runs one rotate-cert job as the scenario's handler: downloads both
    files with a bare GET, overwrites its own, reconnects with them and
    reports SUCCEEDED over the new connection (or reports FAILED with a
    reason and keeps its pair). Returns the execution and the new id."""
    handler = JobsHandler(device)
    execution = handler.next_job()
    document = execution["jobDocument"]
    cert, key = (urllib.request.urlopen(document[f]["url"], timeout=10).read() for f in ("cert", "privateKey"))
    if "encryption" in document:
        current_key = (device.dir / "private.pem.key").read_bytes()
        opener = {"ecies-p256-hkdf-sha256-aes256gcm": open_sealed,
                  "rsa-oaep-sha1-aes-eax": open_as_the_sample_does}[document["encryption"]["scheme"]]
        cert, key = opener(current_key, cert), opener(current_key, key)
    new_id = certificate_id(cert)
    assert document["certificateId"] == new_id
    if outcome == "FAILED":
        handler.report(execution["jobId"], "FAILED", {"reason": "the new pair was refused (test)"},
                       execution["versionNumber"])
        handler.disconnect()
        return execution, new_id
    with open(device.dir / document["cert"]["fileName"], "wb") as f:
        f.write(cert)
    with open(device.dir / document["privateKey"]["fileName"], "wb") as f:
        f.write(key)
    handler.disconnect()
    handler = JobsHandler(device)  # the same thing and client id, the new pair
    handler.report(execution["jobId"], "SUCCEEDED", {"certificateId": new_id}, execution["versionNumber"])
    handler.disconnect()
    return execution, new_id


def status(iot, cert_id):
    return iot.describe_certificate(certificateId=cert_id)["certificateDescription"]["status"]


def rotation_objects(roost):
    return sorted(p.relative_to(roost.data_dir / "objects").as_posix()
                  for p in (roost.data_dir / "objects").rglob("*") if p.is_file())


def test_a_scenario_jobs_handler_rotates_from_the_job_rotate_certs_creates(roost, tmp_path):
    thing = "iot-webinar-device"
    device = scenario_device(roost, tmp_path, thing)
    old = keep_old_pair(device, tmp_path)
    iot = roost.boto()
    cli = rotate_certs(roost, "--thing", thing, "--wait")
    execution, new_id = rotate_as_the_scenario_does(device)
    rc, out, err = finished(cli)
    assert rc == 0, (out, err)
    assert "1 rotated, 0 failed, 0 in progress" in out
    assert f"{thing}: rotated to {new_id}" in err

    # The job: one per device, named for the thing and the new certificate,
    # the scenario's document with the ids the contract adds.
    assert execution["jobId"] == f"rotate-cert-{thing}-{new_id[:12]}"
    stored = json.loads(iot.get_job_document(jobId=execution["jobId"])["document"])
    assert stored["operation"] == "rotate-cert" and stored["version"] == "1.0"
    assert stored["cert"]["fileName"] == "certificate.pem.crt" and stored["privateKey"]["fileName"] == "private.pem.key"
    assert stored["cert"]["url"] == ("${aws:iot:s3-presigned-url:https://s3.amazonaws.com/roost-rotation/"
                                     f"rotate-certs/{thing}/{new_id}/certificate.pem.crt}}")
    assert (stored["certificateId"], stored["previousCertificateId"]) == (new_id, device.cert_id)
    assert "encryption" not in stored

    # The old certificate INACTIVE, the new one ACTIVE with the old one's
    # policy and thing; the files gone from the object store.
    assert status(iot, device.cert_id) == "INACTIVE"
    assert status(iot, new_id) == "ACTIVE"
    new_arn = iot.describe_certificate(certificateId=new_id)["certificateDescription"]["certificateArn"]
    assert [p["policyName"] for p in iot.list_attached_policies(target=new_arn)["policies"]] == ["iot-webinar-policy"]
    assert new_arn in iot.list_thing_principals(thingName=thing)["principals"]
    assert rotation_objects(roost) == []

    # The device publishes with its new pair; its old one is refused.
    topic = f"{OWNER}/{thing}/audit"
    sent = mosquitto(device, roost.mqtt_port, "-i", thing, "-t", topic, "-m", "after rotation", "-q", "1")
    assert sent.returncode == 0, sent.stderr
    refused = mosquitto(old, roost.mqtt_port, "-i", thing, "-t", topic, "-m", "old pair", "-q", "1")
    assert refused.returncode != 0


@pytest.mark.parametrize("key, scheme", [("ec", "ecies-p256-hkdf-sha256-aes256gcm"), ("rsa", "rsa-oaep-sha1-aes-eax")])
def test_an_encrypted_rotation_opens_with_the_devices_current_key(roost, tmp_path, key, scheme):
    """--encrypt seals both files to the device's certificate. An EC P-256
    device (Roost's CreateKeysAndCertificate) opens the ECIES format, decoded
    here from its documentation; an RSA device (certificate from a CSR) opens
    them with the scenario's own PyCryptodome code. Both then rotate."""
    thing = f"sealed-{key}-device"
    device = (rsa_device if key == "rsa" else scenario_device)(roost, tmp_path, thing)
    iot = roost.boto()
    cli = rotate_certs(roost, "--thing", thing, "--wait", "--encrypt")
    execution, new_id = rotate_as_the_scenario_does(device)
    rc, out, err = finished(cli)
    assert rc == 0, (out, err)
    assert "1 rotated, 0 failed, 0 in progress" in out
    assert execution["jobDocument"]["encryption"] == {"scheme": scheme}
    assert status(iot, device.cert_id) == "INACTIVE" and status(iot, new_id) == "ACTIVE"
    sent = mosquitto(device, roost.mqtt_port, "-i", thing, "-t", f"{OWNER}/{thing}/audit", "-m", "sealed", "-q", "1")
    assert sent.returncode == 0, sent.stderr


def test_what_is_put_in_the_object_store_is_sealed(roost, tmp_path):
    """Anyone holding a presigned URL gets only ciphertext."""
    thing = "sealed-at-rest"
    device = scenario_device(roost, tmp_path, thing)
    rc, out, err = finished(rotate_certs(roost, "--thing", thing, "--encrypt"))
    assert rc == 0, (out, err)
    files = {p.name: p.read_bytes() for p in (roost.data_dir / "objects").rglob("*") if p.is_file()}
    assert sorted(files) == ["certificate.pem.crt", "private.pem.key"]
    for name, sealed in files.items():
        assert sealed.startswith(b"RSLD\x01") and b"-----BEGIN" not in sealed, name
    opened = open_sealed((device.dir / "private.pem.key").read_bytes(), files["certificate.pem.crt"])
    assert opened.startswith(b"-----BEGIN CERTIFICATE-----")


def test_a_device_that_reports_failed_keeps_its_old_certificate(roost, tmp_path):
    thing = "failing-device"
    device = scenario_device(roost, tmp_path, thing)
    iot = roost.boto()
    cli = rotate_certs(roost, "--thing", thing, "--wait")
    execution, new_id = rotate_as_the_scenario_does(device, outcome="FAILED")
    rc, out, err = finished(cli)
    assert rc != 0, (out, err)
    assert "0 rotated, 1 failed" in out
    assert f"failed: {thing}: FAILED: the new pair was refused (test)" in out
    assert "1 of 1 devices failed to rotate" in err
    assert status(iot, device.cert_id) == "ACTIVE"
    assert status(iot, new_id) == "INACTIVE"
    assert rotation_objects(roost) == []
    # The device still connects and publishes with the pair it kept.
    sent = mosquitto(device, roost.mqtt_port, "-i", thing, "-t", f"{OWNER}/{thing}/audit", "-m", "still here", "-q", "1")
    assert sent.returncode == 0, sent.stderr


def test_a_success_naming_another_certificate_switches_nothing_off(roost, tmp_path):
    """A device that reports SUCCEEDED while naming the certificate it still
    uses (not the new one) has not proved the new pair: both stay ACTIVE and
    the operator is told."""
    thing = "confused-device"
    device = scenario_device(roost, tmp_path, thing)
    iot = roost.boto()
    cli = rotate_certs(roost, "--thing", thing, "--wait")
    handler = JobsHandler(device)
    execution = handler.next_job()
    new_id = execution["jobDocument"]["certificateId"]
    handler.report(execution["jobId"], "SUCCEEDED", {"certificateId": device.cert_id}, execution["versionNumber"])
    handler.disconnect()
    rc, out, err = finished(cli)
    assert rc != 0, (out, err)
    assert f"the device reports certificate {device.cert_id}, not the new {new_id}" in out
    assert status(iot, device.cert_id) == "ACTIVE" and status(iot, new_id) == "ACTIVE"
    assert rotation_objects(roost) == []


def test_a_second_run_follows_the_first_runs_job(roost, tmp_path):
    thing = "resumed-device"
    device = scenario_device(roost, tmp_path, thing)
    iot = roost.boto()
    rc, out, err = finished(rotate_certs(roost, "--thing", thing))
    assert rc == 0, (out, err)
    [job] = [j["jobId"] for j in iot.list_jobs()["jobs"]]
    assert f"in progress: {thing} {job}" in out
    assert f"roost rotate-certs --thing {thing} --resume --wait" in out
    new_id = json.loads(iot.get_job_document(jobId=job)["document"])["certificateId"]
    assert status(iot, new_id) == "ACTIVE" and status(iot, device.cert_id) == "ACTIVE"
    assert len(rotation_objects(roost)) == 2

    cli = rotate_certs(roost, "--thing", thing, "--wait")
    execution, rotated_to = rotate_as_the_scenario_does(device)
    rc, out, err = finished(cli)
    assert rc == 0, (out, err)
    assert f"{thing}: resuming {job}" in err
    assert (execution["jobId"], rotated_to) == (job, new_id)
    assert [j["jobId"] for j in iot.list_jobs()["jobs"]] == [job]
    assert status(iot, device.cert_id) == "INACTIVE" and status(iot, new_id) == "ACTIVE"
    assert rotation_objects(roost) == []

    # With nothing left to finish, running it again rotates again.
    rc, out, err = finished(rotate_certs(roost, "--thing", thing))
    assert rc == 0, (out, err)
    assert len(iot.list_jobs()["jobs"]) == 2
    # --resume alone starts nothing.
    rc, out, err = finished(rotate_certs(roost, "--thing", thing, "--resume"))
    assert rc == 0 and len(iot.list_jobs()["jobs"]) == 2


def test_a_finished_rotation_is_completed_by_the_next_run(roost, tmp_path):
    """The device rotated while nobody waited: the next run only deactivates
    the old certificate, and starts no new rotation."""
    thing = "unattended-device"
    device = scenario_device(roost, tmp_path, thing)
    iot = roost.boto()
    rc, out, err = finished(rotate_certs(roost, "--thing", thing))
    assert rc == 0, (out, err)
    _, new_id = rotate_as_the_scenario_does(device)
    assert status(iot, device.cert_id) == "ACTIVE"
    rc, out, err = finished(rotate_certs(roost, "--thing", thing))
    assert rc == 0, (out, err)
    assert "1 rotated, 0 failed, 0 in progress" in out
    assert status(iot, device.cert_id) == "INACTIVE" and status(iot, new_id) == "ACTIVE"
    assert len(iot.list_jobs()["jobs"]) == 1 and rotation_objects(roost) == []


def test_bad_input_is_refused_and_creates_nothing(roost, tmp_path):
    scenario_device(roost, tmp_path, "real-device")
    iot = roost.boto()
    iot.create_thing(thingName="no-cert-device")
    certificates = len(iot.list_certificates()["certificates"])

    for args, message in [
        (["--thing", "no-such-thing"], "looking up thing 'no-such-thing'"),
        (["--group", "no-such-group"], "listing the things of group 'no-such-group'"),
        (["--thing", "real-device", "--expires-in", "30"], "from 60 to 3600 seconds"),
        (["--thing", "real-device", "--rate", "fast"], "N/min"),
        (["--thing", "real-device", "--bucket", "Bad/Bucket"], "is not a bucket name"),
    ]:
        rc, out, err = finished(rotate_certs(roost, *args))
        assert rc != 0, args
        assert message in err, (args, err)
    rc, _, err = finished(rotate_certs(roost, "--thing", "no-such-thing"))
    assert "ResourceNotFoundException" in err

    # A thing with no ACTIVE certificate is listed as a failure.
    rc, out, err = finished(rotate_certs(roost, "--thing", "no-cert-device", "--wait"))
    assert rc != 0
    assert "failed: no-cert-device: no ACTIVE certificate attached" in out

    assert len(iot.list_certificates()["certificates"]) == certificates
    assert iot.list_jobs()["jobs"] == []
    assert rotation_objects(roost) == []


def test_a_group_rotates_together_against_a_remote_roost(roost, tmp_path):
    """--group: every member (subgroups' too) rotates, each from its own job,
    paced by --rate; the CLI talks to the API's URL with AWS credentials."""
    iot = roost.boto()
    iot.create_thing_group(thingGroupName="fleet")
    iot.create_thing_group(thingGroupName="fleet-east", parentGroupName="fleet")
    # A thing name with colons (allowed) cannot be part of a job id: its hash is.
    devices = [scenario_device(roost, tmp_path, name) for name in ("fleet-0", "fleet-1", "fleet:east:2")]
    for device, group in zip(devices, ["fleet", "fleet", "fleet-east"]):
        iot.add_thing_to_thing_group(thingGroupName=group, thingName=device.thing)
    cli = rotate_certs(roost, "--group", "fleet", "--wait", "--rate", "120/min", remote=True)
    results, errors = {}, []

    def run(device):
        try:
            results[device.thing] = rotate_as_the_scenario_does(device)
        except Exception as e:  # reported below, with the CLI's output
            errors.append((device.thing, e))

    threads = [threading.Thread(target=run, args=(d,)) for d in devices]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    rc, out, err = finished(cli)
    assert not errors and rc == 0, (errors, out, err)
    assert "3 rotated, 0 failed, 0 in progress" in out
    assert len(iot.list_jobs()["jobs"]) == 3
    for device in devices:
        execution, new_id = results[device.thing]
        name = device.thing if ":" not in device.thing else hashlib.sha256(device.thing.encode()).hexdigest()[:16]
        assert execution["jobId"] == f"rotate-cert-{name}-{new_id[:12]}"
        assert status(iot, device.cert_id) == "INACTIVE" and status(iot, new_id) == "ACTIVE"
    assert rotation_objects(roost) == []


def test_a_group_larger_than_a_page_gets_one_job_per_thing(roost, tmp_path):
    """ListThingsInThingGroup and ListJobs answer 25 at a time by default:
    every member is found, and a second run finds every job again."""
    iot = roost.boto()
    iot.create_thing_group(thingGroupName="big")
    for i in range(30):
        make_device(roost, tmp_path, f"big-{i:02}", policy_name="allow-all")
        iot.add_thing_to_thing_group(thingGroupName="big", thingName=f"big-{i:02}")
    rc, out, err = finished(rotate_certs(roost, "--group", "big"))
    assert rc == 0, (out, err)
    assert "0 rotated, 0 failed, 30 in progress" in out
    jobs = iot.list_jobs(maxResults=100)["jobs"]
    assert sorted(j["jobId"].rsplit("-", 1)[0] for j in jobs) == [f"rotate-cert-big-{i:02}" for i in range(30)]
    rc, out, err = finished(rotate_certs(roost, "--group", "big", "--resume"))
    assert rc == 0 and err.count(": resuming rotate-cert-big-") == 30, (out, err)
    assert len(iot.list_jobs(maxResults=100)["jobs"]) == 30


def test_a_certificate_shared_by_two_things_stays_active_until_both_rotated(roost, tmp_path):
    """Two things on one certificate: the first to rotate only detaches it
    (the other still connects with it to fetch its own job); the last one
    deactivates it."""
    iot = roost.boto()
    first = scenario_device(roost, tmp_path, "shared-a")
    iot.create_thing(thingName="shared-b", attributePayload={"attributes": {"Owner": OWNER}})
    iot.attach_thing_principal(thingName="shared-b", principal=first.cert_arn)
    shutil.copytree(first.dir, tmp_path / "device-shared-b")
    second = Device(roost, tmp_path / "device-shared-b", "shared-b",
                    {"certificateArn": first.cert_arn, "certificateId": first.cert_id})
    iot.create_thing_group(thingGroupName="sharing")
    for thing in ("shared-a", "shared-b"):
        iot.add_thing_to_thing_group(thingGroupName="sharing", thingName=thing)
    cli = rotate_certs(roost, "--group", "sharing", "--wait")

    _, first_new = rotate_as_the_scenario_does(first)
    deadline = time.monotonic() + 60
    while first.cert_arn in iot.list_thing_principals(thingName="shared-a")["principals"]:
        assert time.monotonic() < deadline and cli.poll() is None, "the old certificate was never detached"
        time.sleep(0.1)
    assert status(iot, first.cert_id) == "ACTIVE"
    _, second_new = rotate_as_the_scenario_does(second)  # connects with the shared certificate first

    rc, out, err = finished(cli)
    assert rc == 0, (out, err)
    assert "2 rotated, 0 failed, 0 in progress" in out
    assert f"shared-a: rotated to {first_new}; old: {first.cert_id} detached, left ACTIVE for shared-b" in err
    assert f"shared-b: rotated to {second_new}; old: {first.cert_id} INACTIVE" in err
    assert status(iot, first.cert_id) == "INACTIVE"
    assert status(iot, first_new) == "ACTIVE" and status(iot, second_new) == "ACTIVE"


def test_a_start_that_fails_half_way_leaves_nothing_behind(roost_factory, tmp_path, moto_s3):
    """The object store refuses the files (the bucket does not exist in the
    S3-compatible store): the new certificate is detached and deleted, no job
    is created, and the device keeps its certificate."""
    roost = roost_factory("--s3-endpoint", moto_s3, "--s3-access-key-id", "moto", "--s3-secret-access-key", "moto")
    thing = "no-bucket-device"
    device = scenario_device(roost, tmp_path, thing)
    iot = roost.boto()
    rc, out, err = finished(rotate_certs(roost, "--thing", thing, "--wait"))
    assert rc != 0, (out, err)
    assert f"failed: {thing}: starting the rotation of {thing}: putting roost-rotation/rotate-certs/{thing}/" in out
    assert [c["certificateId"] for c in iot.list_certificates()["certificates"]] == [device.cert_id]
    assert status(iot, device.cert_id) == "ACTIVE"
    assert iot.list_thing_principals(thingName=thing)["principals"] == [device.cert_arn]
    assert iot.list_jobs()["jobs"] == []


def test_a_job_deleted_under_a_rotation_rolls_it_back(roost, tmp_path):
    thing = "deleted-job-device"
    device = scenario_device(roost, tmp_path, thing)
    iot = roost.boto()
    cli = rotate_certs(roost, "--thing", thing, "--wait")
    deadline = time.monotonic() + 60
    while not iot.list_jobs()["jobs"]:
        assert time.monotonic() < deadline and cli.poll() is None, "no job was created"
        time.sleep(0.1)
    [job] = iot.list_jobs()["jobs"]
    new_id = json.loads(iot.get_job_document(jobId=job["jobId"])["document"])["certificateId"]
    iot.delete_job(jobId=job["jobId"], force=True)
    rc, out, err = finished(cli)
    assert rc != 0, (out, err)
    assert f"failed: {thing}: DELETED: the job or its execution was deleted" in out
    assert status(iot, device.cert_id) == "ACTIVE" and status(iot, new_id) == "INACTIVE"
    assert rotation_objects(roost) == []
