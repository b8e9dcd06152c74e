"""`roost objects put/get/ls/rm`: an operator uploads job files without
knowing where the object store lives, locally (--data-dir) or remotely
(--endpoint with AWS credentials), and a job's presigned URL serves them."""

import json
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from conftest import ACCOUNT, REGION, make_device, roost_binary

FIXTURES = Path(__file__).parent / "fixtures" / "jobs"


def test_put_ls_get_rm_locally_and_remotely(roost, tmp_path):
    cert = tmp_path / "certificate.pem.crt"
    cert.write_text("NEW CERTIFICATE")
    data = ["--data-dir", str(roost.data_dir)]
    out = roost.roost("objects", "put", "iot-webinar-audits/jobs/certs/certificate.pem.crt", str(cert), *data).stdout
    assert "put iot-webinar-audits/jobs/certs/certificate.pem.crt (15 bytes)" in out
    stored = roost.data_dir / "objects" / "iot-webinar-audits" / "jobs" / "certs" / "certificate.pem.crt"
    assert stored.read_text() == "NEW CERTIFICATE"
    assert stored.stat().st_mode & 0o777 == 0o600

    # Remotely: the endpoint and the AWS credentials chain.
    env = roost.aws_env()
    key = tmp_path / "private.pem.key"
    key.write_text("NEW KEY")
    remote = ["--endpoint", roost.api_url]
    run = lambda *args: subprocess.run([roost_binary(), "objects", *args, *remote], env=env,
                                       capture_output=True, text=True, timeout=60)
    put = run("put", "iot-webinar-audits/jobs/certs/private.pem.key", str(key))
    assert put.returncode == 0, put.stderr
    listed = run("ls", "iot-webinar-audits/jobs/")
    assert listed.returncode == 0, listed.stderr
    assert [line.split()[-1] for line in listed.stdout.splitlines()] == [
        "iot-webinar-audits/jobs/certs/certificate.pem.crt",
        "iot-webinar-audits/jobs/certs/private.pem.key",
    ]
    got = run("get", "iot-webinar-audits/jobs/certs/private.pem.key")
    assert got.returncode == 0 and got.stdout == "NEW KEY"

    # Mistakes are refused with a message that says what to fix.
    bad = run("put", "no-key-here", str(key))
    assert bad.returncode != 0 and "not BUCKET/KEY" in bad.stderr
    escape = run("put", "iot-webinar-audits/../../roost.db", str(key))
    assert escape.returncode != 0 and "inside its bucket" in escape.stderr
    missing = run("get", "iot-webinar-audits/nothing")
    assert missing.returncode != 0 and "NoSuchKey" in missing.stderr

    rm = roost.roost("objects", "rm", "iot-webinar-audits/jobs/certs/private.pem.key", *data)
    assert "removed" in rm.stdout
    assert not (stored.parent / "private.pem.key").exists()

    # Unsigned, the object route answers nothing.
    request = urllib.request.Request(f"{roost.api_url}/objects/iot-webinar-audits/jobs/certs/certificate.pem.crt")
    try:
        urllib.request.urlopen(request, timeout=10)
        raise AssertionError("an unsigned GET was served")
    except urllib.error.HTTPError as e:
        assert e.code in (400, 403)


def test_files_put_with_the_cli_are_what_the_rotation_job_serves(roost, tmp_path):
    thing = "canary-objects"
    make_device(roost, tmp_path, thing)
    data = ["--data-dir", str(roost.data_dir)]
    for name, text in [("certificate.pem.crt", "CERT"), ("private.pem.key", "KEY")]:
        f = tmp_path / name
        f.write_text(text)
        roost.roost("objects", "put", f"iot-webinar-audits/jobs/certs/{name}", str(f), *data)
    roost.boto().create_job(jobId="rotate", targets=[f"arn:aws:iot:{REGION}:{ACCOUNT}:thing/{thing}"],
                            document=(FIXTURES / "job-rotate-cert.json").read_text())
    _, described, _ = roost.aws("iot-jobs-data", "describe-job-execution", "--thing-name", thing, "--job-id", "rotate")
    document = json.loads(described["execution"]["jobDocument"])
    assert urllib.request.urlopen(document["cert"]["url"], timeout=10).read() == b"CERT"
    assert urllib.request.urlopen(document["privateKey"]["url"], timeout=10).read() == b"KEY"


def test_objects_go_to_the_s3_compatible_store_when_one_is_configured(roost_factory, tmp_path, moto_s3):
    import boto3

    s3 = boto3.client("s3", endpoint_url=moto_s3, region_name="us-east-1",
                      aws_access_key_id="moto", aws_secret_access_key="moto")
    s3.create_bucket(Bucket="iot-webinar-jobs")
    roost = roost_factory("--s3-endpoint", moto_s3, "--s3-access-key-id", "moto", "--s3-secret-access-key", "moto")
    data = ["--data-dir", str(roost.data_dir)]
    doc = tmp_path / "job-local-scan.json"
    doc.write_text((FIXTURES / "job-local-scan.json").read_text())
    roost.roost("objects", "put", "iot-webinar-jobs/documents/job-local-scan.json", str(doc), *data)
    stored = s3.get_object(Bucket="iot-webinar-jobs", Key="documents/job-local-scan.json")["Body"].read()
    assert json.loads(stored) == {"operation": "localScan"}
    assert not (roost.data_dir / "objects" / "iot-webinar-jobs").exists()
    listed = roost.roost("objects", "ls", "iot-webinar-jobs", *data).stdout
    assert listed.split()[-1] == "iot-webinar-jobs/documents/job-local-scan.json"
    got = roost.roost("objects", "get", "iot-webinar-jobs/documents/job-local-scan.json", *data).stdout
    assert json.loads(got) == {"operation": "localScan"}

    # documentSource reads from the same store.
    make_device(roost, tmp_path, "s3-thing")
    roost.aws("iot", "create-job", "--job-id", "from-s3", "--targets", f"arn:aws:iot:{REGION}:{ACCOUNT}:thing/s3-thing",
              "--document-source", "https://s3.amazonaws.com/iot-webinar-jobs/documents/job-local-scan.json")
    _, document, _ = roost.aws("iot", "get-job-document", "--job-id", "from-s3")
    assert json.loads(document["document"]) == {"operation": "localScan"}

    roost.roost("objects", "rm", "iot-webinar-jobs/documents/job-local-scan.json", *data)
    assert s3.list_objects_v2(Bucket="iot-webinar-jobs").get("KeyCount", 0) == 0
    missing = roost.roost("objects", "rm", "iot-webinar-jobs/documents/job-local-scan.json", *data, check=False)
    assert missing.returncode != 0 and "NoSuchKey" in missing.stderr
