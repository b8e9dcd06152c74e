"""The scenario's Jobs section on the control plane, with the real aws CLI:
create-job as the scenario writes it (presigned-URL config included),
describe, list, documents, executions, cancel and delete; notifications to a
subscribed device (paho) carrying presigned URLs a bare HTTP GET downloads;
a tampered URL refused."""

import json
import queue
import urllib.error
import urllib.request
from pathlib import Path

from conftest import ACCOUNT, REGION, make_device
from mqtt_helpers import close, paho_connect, subscribe_wait

FIXTURES = Path(__file__).parent / "fixtures" / "jobs"
THING = "iot-webinar-device"
THING_ARN = f"arn:aws:iot:{REGION}:{ACCOUNT}:thing/{THING}"


def create_scenario_jobs(roost):
    aws = roost.aws
    _, scan, _ = aws(
        "iot", "create-job", "--job-id", "local-scan-job-01", "--targets", THING_ARN,
        "--document", f"file://{FIXTURES / 'job-local-scan.json'}",
        "--description", "example status job", "--target-selection", "SNAPSHOT",
    )
    assert scan == {
        "jobArn": f"arn:aws:iot:{REGION}:{ACCOUNT}:job/local-scan-job-01",
        "jobId": "local-scan-job-01",
        "description": "example status job",
    }
    aws(
        "iot", "create-job", "--job-id", "rotate-job-01", "--targets", THING_ARN,
        "--document", f"file://{FIXTURES / 'job-rotate-cert.json'}",
        "--description", "example cert rotation job", "--target-selection", "SNAPSHOT",
        "--presigned-url-config", f"roleArn=arn:aws:iam::{ACCOUNT}:role/iot-jobs-s3,expiresInSec=300",
    )


def test_the_scenarios_jobs_with_the_aws_cli(roost, tmp_path):
    make_device(roost, tmp_path, THING)
    create_scenario_jobs(roost)
    aws = roost.aws

    _, described, _ = aws("iot", "describe-job", "--job-id", "rotate-job-01")
    job = described["job"]
    assert job["status"] == "IN_PROGRESS"
    assert job["targets"] == [THING_ARN]
    assert job["presignedUrlConfig"] == {"roleArn": f"arn:aws:iam::{ACCOUNT}:role/iot-jobs-s3", "expiresInSec": 300}
    assert job["jobProcessDetails"]["numberOfQueuedThings"] == 1
    assert job["targetSelection"] == "SNAPSHOT" and job["forceCanceled"] is False

    _, listed, _ = aws("iot", "list-jobs")
    assert [j["jobId"] for j in listed["jobs"]] == ["local-scan-job-01", "rotate-job-01"]
    _, one, _ = aws("iot", "list-jobs", "--max-results", "1")
    assert len(one["jobs"]) == 1 and "nextToken" in one
    _, rest, _ = aws("iot", "list-jobs", "--max-results", "1", "--next-token", one["nextToken"])
    assert [j["jobId"] for j in rest["jobs"]] == ["rotate-job-01"] and "nextToken" not in rest
    _, in_progress, _ = aws("iot", "list-jobs", "--status", "IN_PROGRESS", "--target-selection", "SNAPSHOT")
    assert len(in_progress["jobs"]) == 2
    aws("iot", "create-thing-group", "--thing-group-name", "canaries")
    aws("iot", "add-thing-to-thing-group", "--thing-group-name", "canaries", "--thing-name", THING)
    aws("iot", "create-job", "--job-id", "group-job", "--targets",
        f"arn:aws:iot:{REGION}:{ACCOUNT}:thinggroup/canaries", "--document", "{}")
    _, by_group, _ = aws("iot", "list-jobs", "--thing-group-name", "canaries")
    assert [j["jobId"] for j in by_group["jobs"]] == ["group-job"]
    aws("iot", "delete-job", "--job-id", "group-job", "--force")

    _, document, _ = aws("iot", "get-job-document", "--job-id", "rotate-job-01")
    assert json.loads(document["document"]) == json.loads((FIXTURES / "job-rotate-cert.json").read_text())

    _, executions, _ = aws("iot", "list-job-executions-for-job", "--job-id", "rotate-job-01")
    [summary] = executions["executionSummaries"]
    assert summary["thingArn"] == THING_ARN
    assert summary["jobExecutionSummary"]["status"] == "QUEUED"
    assert summary["jobExecutionSummary"]["executionNumber"] == 1
    _, for_thing, _ = aws("iot", "list-job-executions-for-thing", "--thing-name", THING, "--status", "QUEUED")
    assert sorted(s["jobId"] for s in for_thing["executionSummaries"]) == ["local-scan-job-01", "rotate-job-01"]
    _, execution, _ = aws("iot", "describe-job-execution", "--job-id", "rotate-job-01", "--thing-name", THING)
    assert execution["execution"]["status"] == "QUEUED"
    assert execution["execution"]["versionNumber"] == 1
    assert execution["execution"]["thingArn"] == THING_ARN

    # The scenario's clean-up: cancel, then delete.
    aws("iot", "cancel-job", "--job-id", "local-scan-job-01", "--reason-code", "NO_LONGER_NEEDED", "--comment", "done")
    _, canceled, _ = aws("iot", "describe-job", "--job-id", "local-scan-job-01")
    assert canceled["job"]["status"] == "CANCELED"
    assert canceled["job"]["reasonCode"] == "NO_LONGER_NEEDED"
    assert canceled["job"]["jobProcessDetails"]["numberOfCanceledThings"] == 1
    aws("iot", "delete-job", "--job-id", "local-scan-job-01")
    rc, _, err = aws("iot", "describe-job", "--job-id", "local-scan-job-01", check=False)
    assert rc != 0 and "ResourceNotFoundException" in err

    # Deleting a job in progress needs force.
    rc, _, err = aws("iot", "delete-job", "--job-id", "rotate-job-01", check=False)
    assert rc != 0 and "InvalidStateTransitionException" in err
    aws("iot", "delete-job", "--job-id", "rotate-job-01", "--force")
    _, listed, _ = aws("iot", "list-jobs")
    assert listed["jobs"] == []


def test_bad_job_requests_get_aws_errors_and_change_nothing(roost, tmp_path):
    make_device(roost, tmp_path, THING)
    aws = roost.aws
    cases = [
        (["--targets", f"arn:aws:iot:{REGION}:{ACCOUNT}:thing/no-such-thing", "--document", "{}"], "ResourceNotFoundException"),
        (["--targets", "arn:aws:iot:elsewhere:1:thing/x", "--document", "{}"], "InvalidRequestException"),
        (["--targets", THING_ARN, "--document", "{not json"], "InvalidRequestException"),
        # (Bounds the aws CLI checks itself, such as expiresInSec >= 60, never
        # reach the server; these do.)
        (["--targets", THING_ARN, "--document", "{}", "--job-executions-retry-config",
          '{"criteriaList": [{"failureType": "TIMED_OUT", "numberOfRetries": 1}]}'], "InvalidRequestException"),
        (["--targets", THING_ARN, "--document", '{"url": "${aws:iot:s3-presigned-url:ftp://nowhere/x}"}'], "InvalidRequestException"),
    ]
    for args, code in cases:
        rc, _, err = aws("iot", "create-job", "--job-id", "bad-job", *args, check=False)
        assert rc != 0 and code in err, (args, err)
    _, listed, _ = aws("iot", "list-jobs")
    assert listed["jobs"] == []
    aws("iot", "create-job", "--job-id", "good-job", "--targets", THING_ARN, "--document", "{}")
    rc, _, err = aws("iot", "create-job", "--job-id", "good-job", "--targets", THING_ARN, "--document", "{}", check=False)
    assert rc != 0 and "ResourceAlreadyExistsException" in err
    rc, _, err = aws("iot", "cancel-job-execution", "--job-id", "good-job", "--thing-name", THING, "--expected-version", "7", check=False)
    assert rc != 0 and "VersionConflictException" in err


def test_a_subscribed_device_is_notified_and_downloads_its_presigned_files(roost, tmp_path):
    device = make_device(roost, tmp_path, THING)
    certs = roost.data_dir / "objects" / "iot-webinar-audits" / "jobs" / "certs"
    certs.mkdir(parents=True)
    (certs / "certificate.pem.crt").write_text("NEW CERTIFICATE")
    (certs / "private.pem.key").write_text("NEW KEY")

    got = queue.Queue()
    client = device.paho(THING)
    client.on_message = lambda c, u, m: got.put((m.topic, json.loads(m.payload)))
    assert paho_connect(client, roost.mqtt_port)["rc"] == 0
    subscribe_wait(client, f"$aws/things/{THING}/jobs/notify-next", 1)
    try:
        create_scenario_jobs(roost)
        topic, first = got.get(timeout=10)
        assert topic == f"$aws/things/{THING}/jobs/notify-next"
        assert first["execution"]["jobId"] == "local-scan-job-01"
        assert first["execution"]["jobDocument"] == {"operation": "localScan"}
        # The rotation job is second in line: no notify-next for it yet.
        roost.aws("iot", "cancel-job", "--job-id", "local-scan-job-01")
        topic, second = got.get(timeout=10)
        execution = second["execution"]
        assert execution["jobId"] == "rotate-job-01" and execution["status"] == "QUEUED"
        urls = [execution["jobDocument"]["cert"]["url"], execution["jobDocument"]["privateKey"]["url"]]
    finally:
        close(client)

    # A bare GET, no credentials, as the scenario's device does.
    bodies = [urllib.request.urlopen(url, timeout=10).read() for url in urls]
    assert bodies == [b"NEW CERTIFICATE", b"NEW KEY"]
    # One character of the signature changed: refused.
    tampered = urls[0][:-1] + ("0" if urls[0][-1] != "0" else "1")
    try:
        urllib.request.urlopen(tampered, timeout=10)
        raise AssertionError("a tampered URL was honoured")
    except urllib.error.HTTPError as e:
        assert e.code == 403
    # A key that tries to leave its bucket.
    escape = urls[0].replace("/jobs/certs/certificate.pem.crt", "/..%2F..%2Froost.db")
    try:
        urllib.request.urlopen(escape, timeout=10)
        raise AssertionError("a key outside the bucket was served")
    except urllib.error.HTTPError as e:
        assert e.code == 400


def test_aws_iot_jobs_data_takes_a_job_through(roost, tmp_path):
    """The device jobs API over HTTP on the API port (`aws iot-jobs-data`,
    signed with the admin key)."""
    make_device(roost, tmp_path, THING)
    create_scenario_jobs(roost)
    aws = roost.aws
    _, pending, _ = aws("iot-jobs-data", "get-pending-job-executions", "--thing-name", THING)
    assert [j["jobId"] for j in pending["queuedJobs"]] == ["local-scan-job-01", "rotate-job-01"]
    assert pending["inProgressJobs"] == []
    _, started, _ = aws("iot-jobs-data", "start-next-pending-job-execution", "--thing-name", THING,
                        "--status-details", "step=scanning", "--step-timeout-in-minutes", "10")
    execution = started["execution"]
    assert (execution["jobId"], execution["status"], execution["versionNumber"]) == ("local-scan-job-01", "IN_PROGRESS", 2)
    assert json.loads(execution["jobDocument"]) == {"operation": "localScan"}
    assert execution["statusDetails"] == {"step": "scanning"}
    _, described, _ = aws("iot-jobs-data", "describe-job-execution", "--thing-name", THING, "--job-id", "rotate-job-01")
    assert described["execution"]["status"] == "QUEUED"
    assert "/objects/iot-webinar-audits/jobs/certs/certificate.pem.crt?expires=" in described["execution"]["jobDocument"]
    _, updated, _ = aws("iot-jobs-data", "update-job-execution", "--thing-name", THING, "--job-id", "local-scan-job-01",
                        "--status", "SUCCEEDED", "--expected-version", "2", "--include-job-execution-state")
    assert updated["executionState"]["status"] == "SUCCEEDED" and updated["executionState"]["versionNumber"] == 3
    rc, _, err = aws("iot-jobs-data", "update-job-execution", "--thing-name", THING, "--job-id", "local-scan-job-01",
                     "--status", "FAILED", check=False)
    assert rc != 0 and "InvalidStateTransitionException" in err
    rc, _, err = aws("iot-jobs-data", "describe-job-execution", "--thing-name", THING, "--job-id", "no-such-job", check=False)
    assert rc != 0 and "ResourceNotFoundException" in err
    _, job, _ = aws("iot", "describe-job", "--job-id", "local-scan-job-01")
    assert job["job"]["status"] == "COMPLETED"


def test_update_job_and_associate_targets_with_job(roost, tmp_path):
    make_device(roost, tmp_path, THING)
    make_device(roost, tmp_path, "late-device")
    aws = roost.aws
    aws("iot", "create-job", "--job-id", "fleet-scan", "--targets", THING_ARN, "--document", "{}",
        "--target-selection", "CONTINUOUS")
    aws("iot", "update-job", "--job-id", "fleet-scan", "--description", "scan every canary",
        "--timeout-config", "inProgressTimeoutInMinutes=30")
    _, described, _ = aws("iot", "describe-job", "--job-id", "fleet-scan")
    assert described["job"]["description"] == "scan every canary"
    assert described["job"]["timeoutConfig"] == {"inProgressTimeoutInMinutes": 30}
    _, out, _ = aws("iot", "associate-targets-with-job", "--job-id", "fleet-scan",
                    "--targets", f"arn:aws:iot:{REGION}:{ACCOUNT}:thing/late-device")
    assert out["jobId"] == "fleet-scan"
    _, executions, _ = aws("iot", "list-job-executions-for-job", "--job-id", "fleet-scan")
    assert sorted(e["thingArn"].rsplit("/", 1)[1] for e in executions["executionSummaries"]) == ["iot-webinar-device", "late-device"]
    # Snapshot jobs take no new targets; an update of a canceled job is refused.
    aws("iot", "create-job", "--job-id", "once", "--targets", THING_ARN, "--document", "{}")
    rc, _, err = aws("iot", "associate-targets-with-job", "--job-id", "once", "--targets",
                     f"arn:aws:iot:{REGION}:{ACCOUNT}:thing/late-device", check=False)
    assert rc != 0 and "InvalidRequestException" in err and "CONTINUOUS" in err
    aws("iot", "cancel-job", "--job-id", "once")
    rc, _, err = aws("iot", "update-job", "--job-id", "once", "--description", "late", check=False)
    assert rc != 0 and "InvalidRequestException" in err


def test_a_restart_in_the_middle_of_a_job_loses_no_execution_state(roost, tmp_path):
    make_device(roost, tmp_path, THING)
    create_scenario_jobs(roost)
    aws = roost.aws
    _, started, _ = aws("iot-jobs-data", "start-next-pending-job-execution", "--thing-name", THING,
                        "--status-details", "step=downloading", "--step-timeout-in-minutes", "60")
    assert started["execution"]["versionNumber"] == 2
    roost.restart(kill=True)
    _, execution, _ = roost.aws("iot", "describe-job-execution", "--job-id", "local-scan-job-01", "--thing-name", THING)
    execution = execution["execution"]
    assert (execution["status"], execution["versionNumber"]) == ("IN_PROGRESS", 2)
    assert execution["statusDetails"]["detailsMap"] == {"step": "downloading"}
    assert 0 < execution["approximateSecondsBeforeTimedOut"] <= 3600
    _, updated, _ = roost.aws("iot-jobs-data", "update-job-execution", "--thing-name", THING,
                              "--job-id", "local-scan-job-01", "--status", "SUCCEEDED", "--expected-version", "2",
                              "--include-job-execution-state")
    assert updated["executionState"]["versionNumber"] == 3
    _, pending, _ = roost.aws("iot-jobs-data", "get-pending-job-executions", "--thing-name", THING)
    assert [j["jobId"] for j in pending["queuedJobs"]] == ["rotate-job-01"]


def test_a_job_document_from_the_object_store(roost, tmp_path):
    make_device(roost, tmp_path, THING)
    docs = roost.data_dir / "objects" / "iot-webinar-jobs" / "documents"
    docs.mkdir(parents=True)
    (docs / "job-local-scan.json").write_text((FIXTURES / "job-local-scan.json").read_text())
    aws = roost.aws
    source = "https://s3.amazonaws.com/iot-webinar-jobs/documents/job-local-scan.json"
    aws("iot", "create-job", "--job-id", "from-source", "--targets", THING_ARN, "--document-source", source)
    _, described, _ = aws("iot", "describe-job", "--job-id", "from-source")
    assert described["documentSource"] == source
    _, document, _ = aws("iot", "get-job-document", "--job-id", "from-source")
    assert json.loads(document["document"]) == {"operation": "localScan"}
    rc, _, err = aws("iot", "create-job", "--job-id", "missing", "--targets", THING_ARN, "--document-source",
                     "https://s3.amazonaws.com/iot-webinar-jobs/documents/nothing.json", check=False)
    assert rc != 0 and "InvalidRequestException" in err and "no object" in err
