"""The device half of jobs over MQTT, with the clients devices run:
AWSIoTPythonSDK's AWSIoTMQTTThingJobsClient and awsiotsdk's IotJobsClientV2
each take the scenario's two jobs through start-next -> IN_PROGRESS ->
SUCCEEDED (downloading the rotation job's files from their presigned URLs
with a bare GET); AWS's worked notify / notify-next sequence step by step;
and a device that cannot touch another thing's executions, whatever its
policy allows."""

import json
import queue
import time
import urllib.request
import uuid
from pathlib import Path

from conftest import ACCOUNT, REGION, make_device
from mqtt_helpers import close, paho_connect, subscribe_wait

FIXTURES = Path(__file__).parent / "fixtures" / "jobs"


def thing_arn(thing):
    return f"arn:aws:iot:{REGION}:{ACCOUNT}:thing/{thing}"


def put_rotation_files(roost):
    certs = roost.data_dir / "objects" / "iot-webinar-audits" / "jobs" / "certs"
    certs.mkdir(parents=True, exist_ok=True)
    (certs / "certificate.pem.crt").write_text("NEW CERTIFICATE")
    (certs / "private.pem.key").write_text("NEW KEY")


def create_scenario_jobs(roost, thing):
    iot = roost.boto()
    iot.create_job(jobId="local-scan-job-01", targets=[thing_arn(thing)],
                   document=(FIXTURES / "job-local-scan.json").read_text(), targetSelection="SNAPSHOT")
    iot.create_job(jobId="rotate-job-01", targets=[thing_arn(thing)],
                   document=(FIXTURES / "job-rotate-cert.json").read_text(), targetSelection="SNAPSHOT",
                   presignedUrlConfig={"roleArn": f"arn:aws:iam::{ACCOUNT}:role/iot-jobs-s3", "expiresInSec": 300})


def download_rotation_files(document):
    urls = [document["cert"]["url"], document["privateKey"]["url"]]
    return [urllib.request.urlopen(url, timeout=10).read() for url in urls]


def assert_both_jobs_done(roost, thing):
    iot = roost.boto()
    for job in ("local-scan-job-01", "rotate-job-01"):
        execution = iot.describe_job_execution(jobId=job, thingName=thing)["execution"]
        assert execution["status"] == "SUCCEEDED", (job, execution)
        assert iot.describe_job(jobId=job)["job"]["status"] == "COMPLETED"


def test_aws_iot_python_sdk_v1_jobs_client_runs_the_scenarios_jobs(roost, tmp_path):
    from AWSIoTPythonSDK.MQTTLib import AWSIoTMQTTThingJobsClient
    from AWSIoTPythonSDK.core.jobs.thingJobManager import (
        jobExecutionStatus, jobExecutionTopicReplyType, jobExecutionTopicType)

    thing = "canary-v1"
    device = make_device(roost, tmp_path, thing)
    put_rotation_files(roost)
    create_scenario_jobs(roost, thing)

    client = AWSIoTMQTTThingJobsClient(thing, thing, QoS=1)
    client.configureEndpoint("localhost", roost.mqtt_port)
    client.configureCredentials(device.ca, device.keyfile, device.certfile)
    client.configureConnectDisconnectTimeout(10)
    client.configureMQTTOperationTimeout(10)
    assert client.connect()
    replies = queue.Queue()
    try:
        on_reply = lambda c, u, m: replies.put((m.topic, json.loads(m.payload)))
        assert client.createJobSubscription(on_reply, jobExecutionTopicType.JOB_START_NEXT_TOPIC,
                                            jobExecutionTopicReplyType.JOB_ACCEPTED_REPLY_TYPE)
        assert client.createJobSubscription(on_reply, jobExecutionTopicType.JOB_UPDATE_TOPIC,
                                            jobExecutionTopicReplyType.JOB_ACCEPTED_REPLY_TYPE, "+")

        def next_reply(suffix):
            while True:
                topic, payload = replies.get(timeout=10)
                if topic.endswith(suffix):
                    return payload

        for job in ("local-scan-job-01", "rotate-job-01"):
            assert client.sendJobsStartNext(statusDetails={"step": "starting"})
            started = next_reply("/start-next/accepted")
            execution = started["execution"]
            assert execution["jobId"] == job
            assert execution["status"] == "IN_PROGRESS" and execution["versionNumber"] == 2
            assert started["clientToken"] == thing  # v1 uses its client id as the token
            if job == "rotate-job-01":
                assert download_rotation_files(execution["jobDocument"]) == [b"NEW CERTIFICATE", b"NEW KEY"]
            else:
                assert execution["jobDocument"] == {"operation": "localScan"}
            # v1 sends expectedVersion as a string.
            assert client.sendJobsUpdate(job, jobExecutionStatus.JOB_EXECUTION_SUCCEEDED,
                                         statusDetails={"result": "done"}, expectedVersion=2,
                                         includeJobExecutionState=True)
            updated = next_reply(f"/{job}/update/accepted")
            assert updated["executionState"] == {"status": "SUCCEEDED", "statusDetails": {"result": "done"}, "versionNumber": 3}
        # Nothing left: start-next answers without an execution.
        assert client.sendJobsStartNext()
        assert "execution" not in next_reply("/start-next/accepted")
    finally:
        client.disconnect()
    assert_both_jobs_done(roost, thing)


def test_awsiotsdk_v2_jobs_client_runs_the_scenarios_jobs(roost, tmp_path):
    from awscrt import mqtt_request_response
    from awsiot import iotjobs, mqtt_connection_builder

    thing = "canary-v2"
    device = make_device(roost, tmp_path, thing)
    put_rotation_files(roost)
    create_scenario_jobs(roost, thing)

    conn = mqtt_connection_builder.mtls_from_path(
        endpoint="localhost", port=roost.mqtt_port, cert_filepath=device.certfile, pri_key_filepath=device.keyfile,
        ca_filepath=device.ca, client_id=thing, clean_session=True, keep_alive_secs=30,
    )
    conn.connect().result(10)
    try:
        jobs = iotjobs.IotJobsClientV2(conn, mqtt_request_response.ClientOptions(
            max_request_response_subscriptions=4, max_streaming_subscriptions=2, operation_timeout_in_seconds=10))
        pending = jobs.get_pending_job_executions(iotjobs.GetPendingJobExecutionsRequest(thing_name=thing)).result(10)
        assert [j.job_id for j in pending.queued_jobs] == ["local-scan-job-01", "rotate-job-01"]
        assert pending.in_progress_jobs == []
        for job in ("local-scan-job-01", "rotate-job-01"):
            started = jobs.start_next_pending_job_execution(
                iotjobs.StartNextPendingJobExecutionRequest(thing_name=thing, step_timeout_in_minutes=5)).result(10)
            assert started.execution.job_id == job
            assert started.execution.status == "IN_PROGRESS"
            assert started.execution.version_number == 2
            if job == "rotate-job-01":
                assert download_rotation_files(started.execution.job_document) == [b"NEW CERTIFICATE", b"NEW KEY"]
            described = jobs.describe_job_execution(
                iotjobs.DescribeJobExecutionRequest(thing_name=thing, job_id=job, include_job_document=False)).result(10)
            assert described.execution.status == "IN_PROGRESS" and described.execution.job_document is None
            jobs.update_job_execution(iotjobs.UpdateJobExecutionRequest(
                thing_name=thing, job_id=job, status="SUCCEEDED", expected_version=2)).result(10)
        # A stale version is refused with the execution's state.
        try:
            jobs.update_job_execution(iotjobs.UpdateJobExecutionRequest(
                thing_name=thing, job_id="rotate-job-01", status="FAILED", expected_version=2)).result(10)
            raise AssertionError("an update of a finished execution was accepted")
        except Exception as e:  # awsiot.V2ServiceException
            error = getattr(e, "modeled_error", None)
            assert error is not None and error.code == "InvalidStateTransition", e
            assert error.execution_state.status == "SUCCEEDED"
    finally:
        conn.disconnect().result(10)
    assert_both_jobs_done(roost, thing)


class JobsDevice:
    """A paho device that sends raw jobs requests and keeps everything it
    receives in order. `barrier()` sends a get-pending request and returns
    what arrived before its reply: the service enqueues a change's
    notifications before the control-plane call returns, in the same
    session queue, so they arrive first."""

    def __init__(self, device, port, thing):
        self.thing = thing
        self.inbox = queue.Queue()
        self.client = device.paho(thing)
        self.client.on_message = lambda c, u, m: self.inbox.put((m.topic, json.loads(m.payload)))
        assert paho_connect(self.client, port)["rc"] == 0
        for leaf in ("notify", "notify-next"):
            subscribe_wait(self.client, f"$aws/things/{thing}/jobs/{leaf}", 1)

    def request(self, path, payload):
        self.client.publish(f"$aws/things/{self.thing}/jobs/{path}", json.dumps(payload), qos=1).wait_for_publish(10)

    def barrier(self):
        token = str(uuid.uuid4())
        self.request("get", {"clientToken": token})
        seen = []
        while True:
            topic, payload = self.inbox.get(timeout=10)
            if topic.endswith("/jobs/get/accepted") and payload.get("clientToken") == token:
                return seen, payload
            seen.append((topic.rsplit("/", 1)[1], payload))

    def step(self):
        seen, _ = self.barrier()
        notify = [p for leaf, p in seen if leaf == "notify"]
        notify_next = [p for leaf, p in seen if leaf == "notify-next"]
        assert len(notify) <= 1 and len(notify_next) <= 1, seen
        return (notify[0] if notify else None), (notify_next[0] if notify_next else None)


def ids(notify, status):
    return [j["jobId"] for j in notify["jobs"].get(status, [])]


def test_the_worked_notification_sequence_step_by_step(roost, tmp_path):
    thing = "worked-thing"
    dev = JobsDevice(make_device(roost, tmp_path, thing), roost.mqtt_port, thing)
    iot = roost.boto()

    def create(job):
        iot.create_job(jobId=job, targets=[thing_arn(thing)], document=json.dumps({"operation": job}))
        time.sleep(1.1)  # queue times one second apart, as in AWS's example

    try:
        dev.step()  # nothing yet
        # 1. job1 created: notify QUEUED[job1]; notify-next job1.
        create("job1")
        notify, nxt = dev.step()
        assert ids(notify, "QUEUED") == ["job1"]
        assert nxt["execution"]["jobId"] == "job1" and nxt["execution"]["jobDocument"] == {"operation": "job1"}
        # 2. job2 created: notify QUEUED[job1, job2]; no notify-next.
        create("job2")
        notify, nxt = dev.step()
        assert ids(notify, "QUEUED") == ["job1", "job2"] and nxt is None
        # 3. job1 starts: nothing.
        dev.request("job1/update", {"status": "IN_PROGRESS"})
        assert dev.step() == (None, None)
        # 4. job3 created: notify IN_PROGRESS[job1], QUEUED[job2, job3]; no notify-next.
        create("job3")
        notify, nxt = dev.step()
        assert ids(notify, "IN_PROGRESS") == ["job1"] and ids(notify, "QUEUED") == ["job2", "job3"] and nxt is None
        # 5. job1 succeeds: notify QUEUED[job2, job3]; notify-next job2.
        dev.request("job1/update", {"status": "SUCCEEDED"})
        notify, nxt = dev.step()
        assert notify["jobs"] == {"QUEUED": notify["jobs"]["QUEUED"]} and ids(notify, "QUEUED") == ["job2", "job3"]
        assert nxt["execution"]["jobId"] == "job2" and nxt["execution"]["status"] == "QUEUED"
        # 6. job3 starts ahead of job2: notify-next job3 at version 2; no notify.
        dev.request("job3/update", {"status": "IN_PROGRESS"})
        notify, nxt = dev.step()
        assert notify is None
        assert (nxt["execution"]["jobId"], nxt["execution"]["status"], nxt["execution"]["versionNumber"]) == ("job3", "IN_PROGRESS", 2)
        # 7. job2 rejected: notify IN_PROGRESS[job3]; no notify-next.
        dev.request("job2/update", {"status": "REJECTED"})
        notify, nxt = dev.step()
        assert notify["jobs"] == {"IN_PROGRESS": notify["jobs"]["IN_PROGRESS"]} and ids(notify, "IN_PROGRESS") == ["job3"]
        assert nxt is None
        # 8. job3 force-deleted: notify {}; notify-next only a timestamp.
        iot.delete_job(jobId="job3", force=True)
        notify, nxt = dev.step()
        assert notify["jobs"] == {}
        assert list(nxt) == ["timestamp"]
    finally:
        close(dev.client)


def test_a_device_cannot_reach_another_things_executions(roost, tmp_path):
    mine = make_device(roost, tmp_path, "thing-a")  # allow-all policy
    make_device(roost, tmp_path, "thing-b")
    iot = roost.boto()
    iot.create_job(jobId="b-job", targets=[thing_arn("thing-b")], document="{}")
    dev = JobsDevice(mine, roost.mqtt_port, "thing-a")
    try:
        for path, payload in [
            ("get", {"clientToken": "t1"}),
            ("start-next", {"clientToken": "t2"}),
            ("b-job/get", {"clientToken": "t3"}),
            ("b-job/update", {"status": "SUCCEEDED", "clientToken": "t4"}),
        ]:
            dev.client.publish(f"$aws/things/thing-b/jobs/{path}", json.dumps(payload), qos=1).wait_for_publish(10)
            topic, reply = dev.inbox.get(timeout=10)
            assert topic == f"$aws/things/thing-b/jobs/{path}/rejected", (topic, reply)
            assert reply["code"] == "InvalidRequest" and reply["clientToken"] == payload["clientToken"]
            assert "not attached to thing thing-b" in reply["message"]
    finally:
        close(dev.client)
    execution = iot.describe_job_execution(jobId="b-job", thingName="thing-b")["execution"]
    assert execution["status"] == "QUEUED" and execution["versionNumber"] == 1


def test_bad_requests_are_rejected_with_the_codes_aws_uses(roost, tmp_path):
    thing = "picky-thing"
    dev = JobsDevice(make_device(roost, tmp_path, thing), roost.mqtt_port, thing)
    iot = roost.boto()
    iot.create_job(jobId="j1", targets=[thing_arn(thing)], document="{}")
    dev.barrier()
    try:
        cases = [
            ("j1/update", b"{not json", "InvalidJson"),
            ("j1/update", json.dumps({"clientToken": "c"}).encode(), "InvalidRequest"),
            ("j1/update", json.dumps({"status": "QUEUED"}).encode(), "InvalidRequest"),
            ("j1/update", json.dumps({"status": "IN_PROGRESS", "expectedVersion": "9"}).encode(), "VersionMismatch"),
            ("nope/get", b"{}", "ResourceNotFound"),
            ("foo", b"{}", "InvalidTopic"),
        ]
        for path, payload, code in cases:
            dev.client.publish(f"$aws/things/{thing}/jobs/{path}", payload, qos=1).wait_for_publish(10)
            topic, reply = dev.inbox.get(timeout=10)
            assert topic == f"$aws/things/{thing}/jobs/{path}/rejected" and reply["code"] == code, (path, reply)
            if code == "VersionMismatch":
                assert reply["executionState"] == {"status": "QUEUED", "statusDetails": {}, "versionNumber": 1}
    finally:
        close(dev.client)
    assert iot.describe_job_execution(jobId="j1", thingName=thing)["execution"]["versionNumber"] == 1


def https_jobs(dev, port, method, path, body=None):
    """A device's own HTTPS request to the device port, with its certificate."""
    import ssl
    import urllib.error

    ctx = ssl.create_default_context(cafile=dev.ca)
    ctx.load_cert_chain(dev.certfile, dev.keyfile)
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"https://localhost:{port}{path}", data=data, method=method)
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            return resp.status, json.loads(resp.read()), None
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}"), e.headers.get("x-amzn-ErrorType")


def test_the_jobs_api_on_the_device_https_port(roost, tmp_path):
    thing = "https-canary"
    dev = make_device(roost, tmp_path, thing)  # allow-all policy
    make_device(roost, tmp_path, "https-other")
    iot = roost.boto()
    iot.create_job(jobId="scan", targets=[thing_arn(thing)], document=(FIXTURES / "job-local-scan.json").read_text())
    iot.create_job(jobId="theirs", targets=[thing_arn("https-other")], document="{}")
    port = roost.https_port

    status, pending, _ = https_jobs(dev, port, "GET", f"/things/{thing}/jobs")
    assert status == 200 and [j["jobId"] for j in pending["queuedJobs"]] == ["scan"]
    status, started, _ = https_jobs(dev, port, "PUT", f"/things/{thing}/jobs/$next", {"statusDetails": {"step": "one"}})
    assert status == 200 and started["execution"]["status"] == "IN_PROGRESS"
    assert json.loads(started["execution"]["jobDocument"]) == {"operation": "localScan"}
    status, described, _ = https_jobs(dev, port, "GET", f"/things/{thing}/jobs/scan?includeJobDocument=false")
    assert status == 200 and described["execution"]["versionNumber"] == 2 and "jobDocument" not in described["execution"]
    status, updated, _ = https_jobs(dev, port, "POST", f"/things/{thing}/jobs/scan",
                                    {"status": "SUCCEEDED", "expectedVersion": 2, "includeJobExecutionState": True})
    assert status == 200 and updated["executionState"]["status"] == "SUCCEEDED"
    status, _, error = https_jobs(dev, port, "POST", f"/things/{thing}/jobs/scan", {"status": "FAILED"})
    assert (status, error) == (409, "InvalidStateTransitionException")
    # Another thing's executions, even under an allow-all policy.
    status, body, error = https_jobs(dev, port, "PUT", "/things/https-other/jobs/$next", {})
    assert (status, error) == (400, "InvalidRequestException") and "not attached" in body["message"]
    assert iot.describe_job_execution(jobId="theirs", thingName="https-other")["execution"]["status"] == "QUEUED"


def test_the_device_https_jobs_api_needs_the_jobs_actions_in_the_policy(roost, tmp_path):
    thing = "https-limited"
    policy = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "iot:GetPendingJobExecutions", "Resource": f"arn:aws:iot:{REGION}:{ACCOUNT}:thing/{thing}"},
    ]})
    dev = make_device(roost, tmp_path, thing, policy=policy)
    roost.boto().create_job(jobId="j", targets=[thing_arn(thing)], document="{}")
    status, pending, _ = https_jobs(dev, roost.https_port, "GET", f"/things/{thing}/jobs")
    assert status == 200 and [j["jobId"] for j in pending["queuedJobs"]] == ["j"]
    status, _, _ = https_jobs(dev, roost.https_port, "PUT", f"/things/{thing}/jobs/$next", {})
    assert status == 403
    assert roost.boto().describe_job_execution(jobId="j", thingName=thing)["execution"]["status"] == "QUEUED"


def test_presigned_urls_of_an_s3_compatible_store(roost_factory, tmp_path, moto_s3):
    """With an S3-compatible object store configured, a job document's
    placeholders become the store's own presigned URLs (moto here)."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=moto_s3, region_name="us-east-1",
                      aws_access_key_id="moto", aws_secret_access_key="moto")
    s3.create_bucket(Bucket="iot-webinar-audits")
    s3.put_object(Bucket="iot-webinar-audits", Key="jobs/certs/certificate.pem.crt", Body=b"S3 CERT")
    s3.put_object(Bucket="iot-webinar-audits", Key="jobs/certs/private.pem.key", Body=b"S3 KEY")
    roost = roost_factory("--s3-endpoint", moto_s3, "--s3-access-key-id", "moto", "--s3-secret-access-key", "moto")
    thing = "s3-canary"
    make_device(roost, tmp_path, thing)
    create_scenario_jobs(roost, thing)
    _, described, _ = roost.aws("iot-jobs-data", "describe-job-execution", "--thing-name", thing, "--job-id", "rotate-job-01")
    document = json.loads(described["execution"]["jobDocument"])
    url = document["cert"]["url"]
    assert url.startswith(f"{moto_s3}/iot-webinar-audits/jobs/certs/certificate.pem.crt?") and "X-Amz-Signature=" in url, url
    assert "X-Amz-Expires=300" in url
    assert download_rotation_files(document) == [b"S3 CERT", b"S3 KEY"]
