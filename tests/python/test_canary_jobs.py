"""roost-canary's jobs agent end to end: the real canary runs the thing's
jobs over its own MQTT connection: the scenario's localScan, an unknown
operation (REJECTED), and rotate-cert — a rotation that works and keeps the
canary reporting, encrypted ones (Roost's EC format, and the scenario's
PyCryptodome sample with an RSA device key), a rotation to a certificate the gateway refuses (rolled
back, FAILED, still reporting with the old one), and a canary killed at
each step of a rotation (it restarts with a pair that connects)."""

import base64
import json
import subprocess
from pathlib import Path

import pytest

from canary_support import (Canary, audits, canary_binary, probe_tcp, scenario_device, scenario_rule, tcp_config,
                            wait_until)
from conftest import ACCOUNT, REGION, scenario_policy

FIXTURES = Path(__file__).parent / "fixtures" / "jobs"
TERMINAL = {"SUCCEEDED", "FAILED", "REJECTED", "TIMED_OUT", "CANCELED", "REMOVED"}


def thing_arn(thing):
    return f"arn:aws:iot:{REGION}:{ACCOUNT}:thing/{thing}"


def jobs_device(roost, tmp_path, thing="iot-webinar-device"):
    """The scenario's device with the scenario's policy version 2, which
    lets it use its jobs topics."""
    dev = scenario_device(roost, tmp_path, thing)
    iot = roost.boto()
    versions = iot.list_policy_versions(policyName="iot-webinar-policy")["policyVersions"]
    if not any(v["isDefaultVersion"] and v["versionId"] == "2" for v in versions):
        iot.create_policy_version(policyName="iot-webinar-policy", policyDocument=scenario_policy(2),
                                  setAsDefault=True)
    return dev


def start_canary(roost, tmp_path, dev, extra="", env=None, name="canary"):
    config = tcp_config() + extra
    return Canary(roost, dev, tmp_path / name, config, env=env).start()


def execution(roost, job, thing):
    return roost.boto().describe_job_execution(jobId=job, thingName=thing)["execution"]


def wait_terminal(roost, job, thing, canary, timeout=60):
    assert wait_until(lambda: execution(roost, job, thing)["status"] in TERMINAL, timeout), canary.read_log()
    return execution(roost, job, thing)


def new_certificate(roost, dev, revoke=False):
    """A new certificate for the device, attached like the old one, its
    files in the bucket where the scenario's rotation document points."""
    iot = roost.boto()
    cert = iot.create_keys_and_certificate(setAsActive=True)
    iot.attach_policy(policyName="iot-webinar-policy", target=cert["certificateArn"])
    iot.attach_thing_principal(thingName=dev.thing, principal=cert["certificateArn"])
    if revoke:
        iot.update_certificate(certificateId=cert["certificateId"], newStatus="REVOKED")
    certs = roost.data_dir / "objects" / "iot-webinar-audits" / "jobs" / "certs"
    certs.mkdir(parents=True, exist_ok=True)
    (certs / "certificate.pem.crt").write_text(cert["certificatePem"])
    (certs / "private.pem.key").write_text(cert["keyPair"]["PrivateKey"])
    return cert


def create_rotation(roost, dev, job):
    roost.boto().create_job(
        jobId=job, targets=[thing_arn(dev.thing)], document=(FIXTURES / "job-rotate-cert.json").read_text(),
        presignedUrlConfig={"roleArn": f"arn:aws:iam::{ACCOUNT}:role/iot-jobs-s3", "expiresInSec": 300})


def reports_an_incident(roost, canary, source_ip):
    """A probe from `source_ip` arrives in the bucket."""
    probe_tcp(canary.ports["tcp"], source_ip=source_ip)
    return wait_until(lambda: any(a["message"]["clientAddress"] == source_ip for a in audits(roost)), 30)


def uses(canary, certificate_id):
    """The canary's status names `certificate_id` as the one it connects
    with (the status file is rewritten once a second)."""
    return wait_until(lambda: (canary.status() or {}).get("certificateId") == certificate_id, 10)


def test_local_scan_reports_the_hosts_listening_ports_and_the_canarys_services(roost, tmp_path):
    dev = jobs_device(roost, tmp_path)
    canary = start_canary(roost, tmp_path, dev)
    try:
        roost.boto().create_job(jobId="local-scan-job-01", targets=[thing_arn(dev.thing)],
                                document=(FIXTURES / "job-local-scan.json").read_text())
        done = wait_terminal(roost, "local-scan-job-01", dev.thing, canary)
        assert done["status"] == "SUCCEEDED", done
        details = done["statusDetails"]["detailsMap"]
        ports = details["listeningPorts"].split(",")
        assert str(canary.ports["tcp"]) in ports and str(roost.mqtt_port) in ports
        assert details["canaryServices"] == f"tcp:{canary.ports['tcp']}"
        assert wait_until(lambda: (canary.status() or {}).get("lastJob") == "local-scan-job-01 SUCCEEDED", 10)
    finally:
        canary.stop()


def test_an_unknown_operation_is_rejected_with_a_reason_and_the_next_job_still_runs(roost, tmp_path):
    dev = jobs_device(roost, tmp_path)
    iot = roost.boto()
    iot.create_job(jobId="reboot-1", targets=[thing_arn(dev.thing)], document=json.dumps({"operation": "reboot"}))
    iot.create_job(jobId="scan-2", targets=[thing_arn(dev.thing)], document=json.dumps({"operation": "localScan"}))
    canary = start_canary(roost, tmp_path, dev)
    try:
        rejected = wait_terminal(roost, "reboot-1", dev.thing, canary)
        assert rejected["status"] == "REJECTED"
        assert "unknown operation \"reboot\"" in rejected["statusDetails"]["detailsMap"]["reason"]
        assert wait_terminal(roost, "scan-2", dev.thing, canary)["status"] == "SUCCEEDED"
    finally:
        canary.stop()


def test_a_rotation_installs_the_new_pair_and_the_canary_keeps_reporting(roost, tmp_path):
    scenario_rule(roost, unique_keys=True)
    dev = jobs_device(roost, tmp_path)
    canary = start_canary(roost, tmp_path, dev)
    try:
        assert wait_until(lambda: (canary.status() or {}).get("connected"), 20), canary.read_log()
        old = dev.cert_id
        assert uses(canary, old)
        new = new_certificate(roost, dev)
        create_rotation(roost, dev, "rotate-job-01")
        done = wait_terminal(roost, "rotate-job-01", dev.thing, canary)
        assert done["status"] == "SUCCEEDED", (done, canary.read_log())
        assert done["statusDetails"]["detailsMap"]["certificateId"] == new["certificateId"]
        assert Path(dev.certfile).read_text() == new["certificatePem"]
        assert Path(dev.keyfile).stat().st_mode & 0o777 == 0o600
        assert Path(dev.certfile + ".previous").read_text() != new["certificatePem"]
        assert uses(canary, new["certificateId"])
        shown = lambda: subprocess.run([canary_binary(), "status", "--state-dir", str(canary.state_dir)],
                                       capture_output=True, text=True, timeout=30).stdout
        assert wait_until(lambda: "last job: rotate-job-01 SUCCEEDED" in shown(), 10)
        assert f"certificate: {new['certificateId']}" in shown()
        # The old certificate retired: the canary still reports, with the new one.
        roost.boto().update_certificate(certificateId=old, newStatus="INACTIVE")
        assert reports_an_incident(roost, canary, "127.0.0.21"), canary.read_log()
    finally:
        canary.stop()
    # And after a restart, from the files.
    canary = start_canary(roost, tmp_path, dev)
    try:
        assert reports_an_incident(roost, canary, "127.0.0.22"), canary.read_log()
    finally:
        canary.stop()


def test_a_rotation_to_a_refused_certificate_is_rolled_back_and_reported_failed(roost, tmp_path):
    scenario_rule(roost, unique_keys=True)
    dev = jobs_device(roost, tmp_path)
    old_pem = Path(dev.certfile).read_text()
    canary = start_canary(roost, tmp_path, dev, extra="\n[jobs]\nrotation_deadline_secs = 5\n")
    try:
        assert wait_until(lambda: (canary.status() or {}).get("connected"), 20), canary.read_log()
        new = new_certificate(roost, dev, revoke=True)
        create_rotation(roost, dev, "rotate-job-refused")
        done = wait_terminal(roost, "rotate-job-refused", dev.thing, canary)
        assert done["status"] == "FAILED", (done, canary.read_log())
        reason = done["statusDetails"]["detailsMap"]["reason"]
        assert new["certificateId"] in reason and "did not accept" in reason, reason
        assert Path(dev.certfile).read_text() == old_pem
        assert uses(canary, dev.cert_id)
        assert reports_an_incident(roost, canary, "127.0.0.31"), canary.read_log()
    finally:
        canary.stop()


@pytest.mark.parametrize("point", ["after-download", "after-key", "after-cert", "before-report"])
def test_a_canary_killed_at_any_step_of_a_rotation_restarts_with_a_pair_that_connects(roost, tmp_path, point):
    scenario_rule(roost, unique_keys=True)
    dev = jobs_device(roost, tmp_path)
    dying = start_canary(roost, tmp_path, dev, env={"ROOST_CANARY_FAILPOINT": f"rotate:{point}"})
    assert wait_until(lambda: (dying.status() or {}).get("connected"), 20), dying.read_log()
    new = new_certificate(roost, dev)
    create_rotation(roost, dev, "rotate-job-01")
    assert wait_until(lambda: dying.proc.poll() is not None, 60), dying.read_log()
    assert f"failpoint rotate:{point}" in dying.read_log()
    dying.stop()
    # Back without the failpoint: it connects, finishes the job, and reports.
    canary = start_canary(roost, tmp_path, dev)
    try:
        assert reports_an_incident(roost, canary, "127.0.0.41"), canary.read_log()
        done = wait_terminal(roost, "rotate-job-01", dev.thing, canary)
        assert done["status"] == "SUCCEEDED", (done, canary.read_log())
        assert uses(canary, new["certificateId"])
        roost.boto().update_certificate(certificateId=dev.cert_id, newStatus="INACTIVE")
        assert reports_an_incident(roost, canary, "127.0.0.42"), canary.read_log()
    finally:
        canary.stop()


def test_a_canary_killed_after_installing_a_refused_certificate_comes_back_on_the_old_one(roost, tmp_path):
    """The new pair on disk is whole but the gateway refuses it: the restart
    must not use it. It goes back to the previous pair, runs the job again,
    and fails it."""
    scenario_rule(roost, unique_keys=True)
    dev = jobs_device(roost, tmp_path)
    dying = start_canary(roost, tmp_path, dev, env={"ROOST_CANARY_FAILPOINT": "rotate:after-cert"})
    assert wait_until(lambda: (dying.status() or {}).get("connected"), 20), dying.read_log()
    new = new_certificate(roost, dev, revoke=True)
    create_rotation(roost, dev, "rotate-job-refused")
    assert wait_until(lambda: dying.proc.poll() is not None, 60), dying.read_log()
    dying.stop()
    assert Path(dev.certfile).read_text() == new["certificatePem"]
    canary = start_canary(roost, tmp_path, dev, extra="\n[jobs]\nrotation_deadline_secs = 5\n")
    try:
        assert reports_an_incident(roost, canary, "127.0.0.51"), canary.read_log()
        done = wait_terminal(roost, "rotate-job-refused", dev.thing, canary)
        assert done["status"] == "FAILED", (done, canary.read_log())
        assert uses(canary, dev.cert_id)
    finally:
        canary.stop()


def put_rotation(roost, files: dict):
    certs = roost.data_dir / "objects" / "iot-webinar-audits" / "jobs" / "certs"
    certs.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (certs / name).write_bytes(data)


def create_encrypted_rotation(roost, dev, job, encryption):
    document = json.loads((FIXTURES / "job-rotate-cert.json").read_text())
    document.update(encryption)
    roost.boto().create_job(
        jobId=job, targets=[thing_arn(dev.thing)], document=json.dumps(document),
        presignedUrlConfig={"roleArn": f"arn:aws:iam::{ACCOUNT}:role/iot-jobs-s3", "expiresInSec": 300})


def test_an_encrypted_rotation_is_decrypted_with_the_devices_key(roost, tmp_path):
    """Roost's own keys are EC P-256: the files are sealed to the device's
    current certificate (`roost-canary encrypt`, the format roost
    rotate-certs --encrypt writes) and the document names the scheme."""
    scenario_rule(roost, unique_keys=True)
    dev = jobs_device(roost, tmp_path)
    canary = start_canary(roost, tmp_path, dev)
    try:
        assert wait_until(lambda: (canary.status() or {}).get("connected"), 20), canary.read_log()
        new = new_certificate(roost, dev)
        certs = roost.data_dir / "objects" / "iot-webinar-audits" / "jobs" / "certs"
        schemes = set()
        for name in ("certificate.pem.crt", "private.pem.key"):
            plain = certs / name
            proc = subprocess.run([canary_binary(), "encrypt", "--to", dev.certfile, "--in", str(plain),
                                   "--out", str(plain) + ".sealed"], capture_output=True, text=True, timeout=30)
            assert proc.returncode == 0, proc.stderr
            schemes.add(proc.stdout.strip())
            Path(str(plain) + ".sealed").replace(plain)
        assert schemes == {"ecies-p256-hkdf-sha256-aes256gcm"}
        assert b"PRIVATE KEY" not in (certs / "private.pem.key").read_bytes()
        create_encrypted_rotation(roost, dev, "rotate-sealed", {"encryption": {"scheme": schemes.pop()}})
        done = wait_terminal(roost, "rotate-sealed", dev.thing, canary)
        assert done["status"] == "SUCCEEDED", (done, canary.read_log())
        assert Path(dev.certfile).read_text() == new["certificatePem"]
        assert uses(canary, new["certificateId"])
    finally:
        canary.stop()


def rsa_device(roost, tmp_path, thing):
    """A device whose key is RSA 2048, as AWS's CreateKeysAndCertificate
    makes them: its certificate from a CSR."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    def issue():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        csr = (x509.CertificateSigningRequestBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, thing)]))
               .sign(key, hashes.SHA256()))
        cert = roost.boto().create_certificate_from_csr(
            certificateSigningRequest=csr.public_bytes(serialization.Encoding.PEM).decode(), setAsActive=True)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
        return cert, pem

    dev = jobs_device(roost, tmp_path, thing)
    iot = roost.boto()
    cert, key_pem = issue()
    iot.attach_policy(policyName="iot-webinar-policy", target=cert["certificateArn"])
    iot.attach_thing_principal(thingName=thing, principal=cert["certificateArn"])
    iot.update_certificate(certificateId=dev.cert_id, newStatus="INACTIVE")
    Path(dev.certfile).write_text(cert["certificatePem"])
    Path(dev.keyfile).write_bytes(key_pem)
    dev.cert_id, dev.cert_arn = cert["certificateId"], cert["certificateArn"]
    return dev, issue


def test_files_encrypted_by_the_scenarios_pycryptodome_sample_rotate_an_rsa_device(roost, tmp_path):
    """The scenario's bonus 2 end to end: the operator encrypts the new
    certificate and key with the device's RSA public key exactly as the
    scenario's sample does (PyCryptodome: RSA-OAEP session key, then nonce,
    tag and AES-EAX ciphertext), says so in the job body, and the canary
    decrypts them with its private key."""
    from Crypto.PublicKey import RSA

    from test_sealed_interop import sample_encrypt

    scenario_rule(roost, unique_keys=True)
    dev, issue = rsa_device(roost, tmp_path, "iot-webinar-rsa-device")
    canary = start_canary(roost, tmp_path, dev)
    try:
        assert uses(canary, dev.cert_id), canary.read_log()
        assert wait_until(lambda: (canary.status() or {}).get("connected"), 20), canary.read_log()
        new, new_key = issue()
        iot = roost.boto()
        iot.attach_policy(policyName="iot-webinar-policy", target=new["certificateArn"])
        iot.attach_thing_principal(thingName=dev.thing, principal=new["certificateArn"])
        public = RSA.import_key(Path(dev.keyfile).read_bytes()).publickey().export_key()
        put_rotation(roost, {"certificate.pem.crt": sample_encrypt(public, new["certificatePem"].encode()),
                             "private.pem.key": sample_encrypt(public, new_key)})
        create_encrypted_rotation(roost, dev, "rotate-pycryptodome", {"encrypted": True})
        done = wait_terminal(roost, "rotate-pycryptodome", dev.thing, canary)
        assert done["status"] == "SUCCEEDED", (done, canary.read_log())
        assert Path(dev.keyfile).read_bytes() == new_key
        assert uses(canary, new["certificateId"])
        iot.update_certificate(certificateId=dev.cert_id, newStatus="INACTIVE")
        assert reports_an_incident(roost, canary, "127.0.0.61"), canary.read_log()
    finally:
        canary.stop()



def test_a_csr_rotation_keeps_the_key_on_the_device_across_a_restart(roost, tmp_path):
    """`"csr": {}` in the document: the canary makes the key, sends its CSR
    in the IN_PROGRESS report's statusDetails, and waits for the certificate
    at the document's URL. The operator here is boto3 (CreateCertificateFromCsr,
    as with the aws CLI). The key never leaves the device, and a canary
    killed while it waits sends the same CSR when it comes back."""
    scenario_rule(roost, unique_keys=True)
    dev = jobs_device(roost, tmp_path)
    old_key = Path(dev.keyfile).read_text()
    canary = start_canary(roost, tmp_path, dev)
    iot = roost.boto()
    key = "jobs/csr/iot-webinar-device/certificate.pem.crt"
    document = {"operation": "rotate-cert", "version": "1.0", "csr": {},
                "cert": {"fileName": "certificate.pem.crt",
                         "url": "${aws:iot:s3-presigned-url:https://s3.amazonaws.com/iot-webinar-audits/" + key + "}"}}
    iot.create_job(jobId="rotate-csr", targets=[thing_arn(dev.thing)], document=json.dumps(document),
                   presignedUrlConfig={"roleArn": f"arn:aws:iam::{ACCOUNT}:role/iot-jobs-s3", "expiresInSec": 600})

    def csr():
        details = execution(roost, "rotate-csr", dev.thing).get("statusDetails", {}).get("detailsMap", {})
        return details.get("csr")

    try:
        assert wait_until(csr, 30), canary.read_log()
        first = csr()
        canary.kill()
        canary = start_canary(roost, tmp_path, dev)
        # The restarted canary sends its CSR again (a new signature: ECDSA
        # signs with a fresh nonce) for the same key, which it kept.
        assert wait_until(lambda: csr() != first, 30), canary.read_log()
        second = csr()
        assert public_key_of(second) == public_key_of(first)
        assert execution(roost, "rotate-csr", dev.thing)["status"] == "IN_PROGRESS"

        body = "\n".join(second[i:i + 64] for i in range(0, len(second), 64))
        pem = f"-----BEGIN CERTIFICATE REQUEST-----\n{body}\n-----END CERTIFICATE REQUEST-----\n"
        new = iot.create_certificate_from_csr(certificateSigningRequest=pem, setAsActive=True)
        iot.attach_policy(policyName="iot-webinar-policy", target=new["certificateArn"])
        iot.attach_thing_principal(thingName=dev.thing, principal=new["certificateArn"])
        obj = roost.data_dir / "objects" / "iot-webinar-audits" / key
        obj.parent.mkdir(parents=True, exist_ok=True)
        obj.write_text(new["certificatePem"])

        done = wait_terminal(roost, "rotate-csr", dev.thing, canary)
        assert done["status"] == "SUCCEEDED", (done, canary.read_log())
        assert done["statusDetails"]["detailsMap"]["certificateId"] == new["certificateId"]
        assert Path(dev.certfile).read_text() == new["certificatePem"]
        assert Path(dev.keyfile).read_text() != old_key
        assert Path(dev.keyfile).stat().st_mode & 0o777 == 0o600
        assert public_key_of(second) == public_key_of_pem(new["certificatePem"])
        # Once the job is reported, its state (which held the key) is gone.
        assert wait_until(lambda: not (canary.state_dir / "job.json").exists(), 10)
        iot.update_certificate(certificateId=dev.cert_id, newStatus="INACTIVE")
        assert reports_an_incident(roost, canary, "127.0.0.81"), canary.read_log()
    finally:
        canary.stop()


def public_key_of(csr_base64):
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    csr = x509.load_der_x509_csr(base64.b64decode(csr_base64))
    return csr.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def public_key_of_pem(cert_pem):
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    return cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
