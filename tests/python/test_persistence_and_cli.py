"""Everything survives a restart; `roost cert create` writes files that
openssl accepts; first start creates credentials and prints how to use them."""

import json
import os
import stat
import subprocess

from conftest import STORE, roost_binary, scenario_policy

THING = "iot-webinar-device"


def test_restart_keeps_everything(roost):
    iot = roost.boto()
    iot.create_thing_type(thingTypeName="iot-webinar-type")
    iot.create_thing_group(thingGroupName="iot-webinar-group")
    iot.create_thing(thingName=THING, thingTypeName="iot-webinar-type", attributePayload={"attributes": {"Owner": "abcde-12345"}})
    iot.add_thing_to_thing_group(thingGroupName="iot-webinar-group", thingName=THING)
    cert = iot.create_keys_and_certificate(setAsActive=True)
    iot.attach_thing_principal(thingName=THING, principal=cert["certificateArn"])
    iot.create_policy(policyName="p", policyDocument=scenario_policy(1))
    iot.create_policy_version(policyName="p", policyDocument=scenario_policy(2), setAsDefault=True)
    iot.attach_policy(policyName="p", target=cert["certificateArn"])
    root_before = (roost.data_dir / "root-ca.pem").read_text()
    key_before = roost.credentials()

    roost.restart()
    iot = roost.boto()
    assert roost.credentials() == key_before
    assert (roost.data_dir / "root-ca.pem").read_text() == root_before
    thing = iot.describe_thing(thingName=THING)
    assert thing["attributes"] == {"Owner": "abcde-12345"} and thing["thingTypeName"] == "iot-webinar-type"
    assert iot.list_things_in_thing_group(thingGroupName="iot-webinar-group")["things"] == [THING]
    assert iot.list_thing_principals(thingName=THING)["principals"] == [cert["certificateArn"]]
    assert iot.describe_certificate(certificateId=cert["certificateId"])["certificateDescription"]["status"] == "ACTIVE"
    assert iot.get_policy(policyName="p")["defaultVersionId"] == "2"
    assert [p["policyName"] for p in iot.list_attached_policies(target=cert["certificateArn"])["policies"]] == ["p"]
    # Every start prints the exports (a first start that failed loses
    # nothing); only the first says it created the credentials; no secret
    # is ever printed or logged.
    out = roost.read_stdout()
    assert out.count("export AWS_PROFILE=roost") == 2
    assert out.count("Roost created its admin credentials") == 1
    assert key_before[1] not in out and key_before[1] not in roost.read_log()
    # The log file has no terminal colour codes.
    assert "\x1b[" not in roost.read_log()


def test_first_start_prints_exports_and_protects_secrets(roost):
    out = roost.read_stdout()
    assert f"export AWS_SHARED_CREDENTIALS_FILE={roost.data_dir.resolve()}/credentials" in out
    assert "export AWS_PROFILE=roost" in out
    # On PostgreSQL the registry is not in the data directory at all.
    assert (roost.data_dir / "roost.db").exists() == (STORE == "sqlite")
    for name in ["credentials", "ca.key", "server.key"] + (["roost.db"] if STORE == "sqlite" else []):
        mode = stat.S_IMODE(os.stat(roost.data_dir / name).st_mode)
        assert mode == 0o600, f"{name} is {oct(mode)}"
    endpoints = json.loads((roost.data_dir / "endpoints.json").read_text())
    assert endpoints["api"].startswith("127.0.0.1:") and not endpoints["api"].endswith(":0")


def test_roost_env_prints_the_exports_and_help_shows_defaults(roost, tmp_path):
    out = roost.roost("env", "--data-dir", str(roost.data_dir)).stdout
    data = roost.data_dir.resolve()
    assert out == (f"export AWS_SHARED_CREDENTIALS_FILE={data}/credentials\n"
                   f"export AWS_CONFIG_FILE={data}/aws-config\nexport AWS_PROFILE=roost\n")
    missing = roost.roost("env", "--data-dir", str(tmp_path / "nowhere"), check=False)
    assert missing.returncode != 0 and "start Roost first" in missing.stderr
    help_text = roost.roost("serve", "--help").stdout
    for default in ("[default: ./roost-data]", "[default: 127.0.0.1:9080", "[default: 0.0.0.0:8883",
                    "[default: 0.0.0.0:8443", "[default: us-east-1]", "[default: 000000000000]"):
        assert default in " ".join(help_text.split()), default
    assert "ROOST_LOG" in roost.roost("--help").stdout


def test_client_commands_find_roost_through_the_aws_profile(roost, tmp_path):
    """Outside a folder with ./roost-data, `roost cert create` uses the
    endpoint_url of the AWS profile the exports select."""
    roost.boto().create_thing(thingName=THING)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in roost.aws_env().items() if k != "ROOST_DATA_DIR"}
    proc = subprocess.run([roost_binary(), "cert", "create", "--thing", THING, "--out", str(elsewhere / "device")],
                          cwd=elsewhere, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert (elsewhere / "device" / "private.pem.key").exists()


def test_cert_create_writes_files_openssl_accepts(roost, tmp_path):
    roost.boto().create_thing(thingName=THING)
    out_dir = tmp_path / "device"
    proc = roost.roost("cert", "create", "--thing", THING, "--out", str(out_dir), "--data-dir", str(roost.data_dir))
    assert "certificateId:" in proc.stdout
    for name in ["certificate.pem.crt", "private.pem.key", "public.pem.key", "root-ca.pem"]:
        assert (out_dir / name).exists(), name
    assert stat.S_IMODE(os.stat(out_dir / "private.pem.key").st_mode) == 0o600
    verify = subprocess.run(
        ["openssl", "verify", "-CAfile", str(out_dir / "root-ca.pem"), str(out_dir / "certificate.pem.crt")],
        capture_output=True, text=True,
    )
    assert verify.returncode == 0 and ": OK" in verify.stdout, verify.stderr
    # The key matches the certificate.
    pub_from_cert = subprocess.run(["openssl", "x509", "-in", str(out_dir / "certificate.pem.crt"), "-noout", "-pubkey"], capture_output=True, text=True).stdout
    pub_from_key = subprocess.run(["openssl", "pkey", "-in", str(out_dir / "private.pem.key"), "-pubout"], capture_output=True, text=True).stdout
    assert pub_from_cert == pub_from_key == (out_dir / "public.pem.key").read_text()
    iot = roost.boto()
    principals = iot.list_thing_principals(thingName=THING)["principals"]
    assert len(principals) == 1
    cid = principals[0].rsplit("/", 1)[1]
    assert iot.describe_certificate(certificateId=cid)["certificateDescription"]["status"] == "ACTIVE"


def test_cert_create_for_a_missing_thing_fails_cleanly(roost, tmp_path):
    proc = roost.roost("cert", "create", "--thing", "ghost", "--out", str(tmp_path / "x"), "--data-dir", str(roost.data_dir), check=False)
    assert proc.returncode != 0
    assert "ResourceNotFoundException" in proc.stderr and "create-thing" in proc.stderr
    assert roost.boto().list_certificates()["certificates"] == []
    assert not (tmp_path / "x").exists()


def test_cert_create_against_an_endpoint_with_env_credentials(roost, tmp_path):
    roost.boto().create_thing(thingName=THING)
    key, secret = roost.credentials()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=key, AWS_SECRET_ACCESS_KEY=secret)
    from conftest import roost_binary
    proc = subprocess.run(
        [roost_binary(), "cert", "create", "--thing", THING, "--out", str(tmp_path / "d"), "--endpoint", roost.api_url],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "d" / "certificate.pem.crt").exists()


def test_csr_and_ca_registration(roost, tmp_path):
    """CreateCertificateFromCsr, RegisterCACertificate with a verification
    certificate, RegisterCertificate for a device of that CA."""
    iot = roost.boto()
    run = lambda *a: subprocess.run(a, check=True, capture_output=True, cwd=tmp_path)  # noqa: E731
    run("openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "dev.key")
    run("openssl", "req", "-new", "-key", "dev.key", "-subj", "/CN=my-device/O=Acme", "-out", "dev.csr")
    csr = (tmp_path / "dev.csr").read_text()
    out = iot.create_certificate_from_csr(certificateSigningRequest=csr, setAsActive=True)
    (tmp_path / "issued.pem").write_text(out["certificatePem"])
    (tmp_path / "root.pem").write_text((roost.data_dir / "root-ca.pem").read_text())
    run("openssl", "verify", "-CAfile", "root.pem", "issued.pem")
    subject = run("openssl", "x509", "-in", "issued.pem", "-noout", "-subject").stdout.decode()
    assert "my-device" in subject

    # A customer CA, proven with a verification certificate.
    run("openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key")
    run("openssl", "req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=Acme CA", "-days", "30", "-out", "ca.pem",
        "-addext", "basicConstraints=critical,CA:TRUE")
    code = iot.get_registration_code()["registrationCode"]
    run("openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "verif.key")
    run("openssl", "req", "-new", "-key", "verif.key", "-subj", f"/CN={code}", "-out", "verif.csr")
    run("openssl", "x509", "-req", "-in", "verif.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "30", "-out", "verif.pem")
    ca = iot.register_ca_certificate(
        caCertificate=(tmp_path / "ca.pem").read_text(),
        verificationCertificate=(tmp_path / "verif.pem").read_text(),
        setAsActive=True,
    )
    assert len(ca["certificateId"]) == 64
    # A device certificate signed by that CA registers; one from elsewhere does not.
    run("openssl", "x509", "-req", "-in", "dev.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "30", "-out", "acme-dev.pem")
    reg = iot.register_certificate(certificatePem=(tmp_path / "acme-dev.pem").read_text(), setAsActive=True)
    desc = iot.describe_certificate(certificateId=reg["certificateId"])["certificateDescription"]
    assert desc["caCertificateId"] == ca["certificateId"] and desc["status"] == "ACTIVE"
    run("openssl", "req", "-x509", "-new", "-key", "dev.key", "-subj", "/CN=self", "-days", "30", "-out", "self.pem")
    err = roost.aws("iot", "register-certificate", "--certificate-pem", f"file://{tmp_path / 'self.pem'}", check=False)[2]
    assert "(CertificateValidationException)" in err
    no_ca = iot.register_certificate_without_ca(certificatePem=(tmp_path / "self.pem").read_text(), status="ACTIVE")
    desc = iot.describe_certificate(certificateId=no_ca["certificateId"])["certificateDescription"]
    assert desc["certificateMode"] == "SNI_ONLY"
    # Registering the same certificate twice is refused with its id.
    err = roost.aws("iot", "register-certificate-without-ca", "--certificate-pem", f"file://{tmp_path / 'self.pem'}", check=False)[2]
    assert "(ResourceAlreadyExistsException)" in err
    # A verification certificate with the wrong common name is refused.
    run("openssl", "req", "-new", "-key", "verif.key", "-subj", "/CN=wrong", "-out", "bad.csr")
    run("openssl", "x509", "-req", "-in", "bad.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "30", "-out", "bad.pem")
    run("openssl", "req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=Other CA", "-days", "30", "-out", "ca2.pem",
        "-addext", "basicConstraints=critical,CA:TRUE")
    err = roost.aws("iot", "register-ca-certificate", "--ca-certificate", f"file://{tmp_path / 'ca2.pem'}",
                    "--verification-certificate", f"file://{tmp_path / 'bad.pem'}", check=False)[2]
    assert "(CertificateValidationException)" in err or "(RegistrationCodeValidationException)" in err


def test_a_bad_postgres_url_is_refused_clearly_without_its_password(tmp_path):
    common = ["serve", "--data-dir", str(tmp_path / "d"), "--api-listen", "127.0.0.1:0",
              "--mqtt-listen", "127.0.0.1:0", "--https-listen", "127.0.0.1:0"]
    cases = [
        (["--postgres-url", "db.example:5432"], {}, "postgres_url: "),
        # Nothing listens on port 1: refused at once.
        ([], {"ROOST_POSTGRES_URL": "postgres://roost:s3cretpw@127.0.0.1:1/roost"}, "Connection refused"),
    ]
    for args, env, says in cases:
        proc = subprocess.run([roost_binary(), *common, *args], capture_output=True, text=True,
                              timeout=60, env={**os.environ, **env})
        assert proc.returncode == 1, proc.stderr
        assert says in proc.stderr and "panicked" not in proc.stderr, proc.stderr
        assert "s3cretpw" not in proc.stderr + proc.stdout
    assert "postgres://roost:***@127.0.0.1:1/roost" in proc.stderr
