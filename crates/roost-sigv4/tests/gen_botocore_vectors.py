#!/usr/bin/env python3
"""Generate known-answer SigV4 vectors from real botocore.

Run (from anywhere):

    python3 -m venv /tmp/sigv4venv
    /tmp/sigv4venv/bin/pip install botocore==1.44.8
    /tmp/sigv4venv/bin/python crates/roost-sigv4/tests/gen_botocore_vectors.py

It rewrites ``botocore_vectors.json`` next to this file. The Rust test
``tests/botocore.rs`` reads only that JSON; this script is never run by the
build or the tests.

Two ways of producing a request are used, both the ones the AWS CLI and boto3
use for real:

* a botocore *client* (``iot``, ``iot-data``, ``iot-jobs-data``, ``s3``) whose
  request is captured at the ``before-send`` event, so serialisation, URL
  building and signing are exactly botocore's;
* for edge cases no modelled operation produces (repeated query keys, odd
  header spacing, binary bodies, ...), a request dict handed to
  ``prepare_request_dict`` + ``create_request_object`` (how the client builds
  an ``AWSRequest`` from a URL), signed with ``SigV4Auth`` /
  ``SigV4QueryAuth`` and then ``prepare()``d into the wire request.

The signing time is pinned by replacing ``botocore.auth.get_current_datetime``
and invocation ids are made deterministic, so re-running the script gives the
same file apart from the (unsigned) User-Agent line.
"""

import datetime
import json
import os
import sys
import uuid
from urllib.parse import urlsplit

import botocore
import botocore.auth
import botocore.awsrequest
import botocore.session
from botocore.config import Config
from botocore.credentials import Credentials

EXPECTED_BOTOCORE = "1.44.8"

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "botocore_vectors.json")

# Headers Roost's own `sign` puts in SignedHeaders: host, content-type and
# x-amz* (minus the trace id, which proxies add). When botocore signed exactly
# this set, our signer must reproduce botocore's Authorization byte for byte.
def roost_would_sign(name):
    n = name.lower()
    if n in ("host", "content-type"):
        return True
    return n.startswith("x-amz") and n != "x-amzn-trace-id"


# --- pinned clock and ids ----------------------------------------------------

_NOW = [datetime.datetime(2026, 11, 30, 10, 42, 27)]


def _fixed_now(remove_tzinfo=True):
    return _NOW[0]


botocore.auth.get_current_datetime = _fixed_now

_uuid_counter = [0]


def _fixed_uuid4():
    _uuid_counter[0] += 1
    return uuid.UUID(int=_uuid_counter[0])


uuid.uuid4 = _fixed_uuid4

# Record botocore's canonical request for every signature it computes, so the
# Rust test can compare its own canonical request line by line.
_last_canonical = [None]
_orig_string_to_sign = botocore.auth.SigV4Auth.string_to_sign


def _recording_string_to_sign(self, request, canonical_request):
    _last_canonical[0] = canonical_request
    return _orig_string_to_sign(self, request, canonical_request)


botocore.auth.SigV4Auth.string_to_sign = _recording_string_to_sign


def set_time(dt):
    _NOW[0] = dt


def amz_date(dt):
    return dt.strftime("%Y%m%dT%H%M%SZ")


def epoch(dt):
    return int(dt.replace(tzinfo=datetime.timezone.utc).timestamp())


def to_text(v):
    if isinstance(v, bytes):
        return v.decode("utf-8")
    return str(v)


def to_bytes(body):
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    if hasattr(body, "read"):
        pos = body.tell()
        data = body.read()
        body.seek(pos)
        return to_bytes(data)
    raise TypeError(type(body))


def wire_headers(url, headers):
    """Headers as a server receives them: botocore's own plus the Host line
    the HTTP client adds (lowercase host, port unless it is the default).
    `headers` is a list of (name, value) pairs, repeats kept."""
    out = [["host", botocore.auth._host_from_url(url)]]
    for name, value in headers:
        out.append([name, to_text(value)])
    return out


def signed_headers_of(authorization=None, query=None):
    if authorization is not None:
        for part in authorization.split(", "):
            if part.startswith("SignedHeaders="):
                return part[len("SignedHeaders="):]
    if query is not None:
        for pair in query.split("&"):
            if pair.startswith("X-Amz-SignedHeaders="):
                return pair[len("X-Amz-SignedHeaders="):].replace("%3B", ";")
    raise ValueError("no SignedHeaders")


VECTORS = []


def record_header_vector(name, service, region, creds, prepared, canonical, header_lines=None):
    parts = urlsplit(prepared.url)
    if header_lines is None:
        header_lines = list(prepared.headers.items())
    authorization = to_text(prepared.headers["Authorization"])
    signed = signed_headers_of(authorization=authorization)
    VECTORS.append(
        {
            "name": name,
            "kind": "header",
            "uri_encoding": "double",
            "method": prepared.method,
            "raw_path": parts.path,
            "raw_query": parts.query,
            "headers": wire_headers(prepared.url, header_lines),
            "body_hex": to_bytes(prepared.body).hex(),
            "access_key_id": creds.access_key,
            "secret_access_key": creds.secret_key,
            "session_token": creds.token,
            "region": region,
            "service": service,
            "amz_date": amz_date(_NOW[0]),
            "epoch_seconds": epoch(_NOW[0]),
            "signed_headers": signed,
            "authorization": authorization,
            "canonical_request": canonical,
            "roost_signs_same_headers": all(roost_would_sign(h) for h in signed.split(";"))
            and creds.token is None,
        }
    )


def record_presigned_vector(name, method, service, region, creds, url, headers, expires, encoding,
                            canonical):
    parts = urlsplit(url)
    query = parts.query
    marker = "X-Amz-Algorithm="
    idx = query.find(marker)
    before = query[: idx - 1] if idx > 0 else ""
    signed = signed_headers_of(query=query)
    hdrs = [["host", botocore.auth._host_from_url(url)]]
    for hname, hvalue in headers:
        hdrs.append([hname, hvalue])
    VECTORS.append(
        {
            "name": name,
            "kind": "presigned",
            "uri_encoding": encoding,
            "method": method,
            "raw_path": parts.path,
            "raw_query": query,
            "query_before_signing": before,
            "expires": expires,
            "headers": hdrs,
            "body_hex": "",
            "access_key_id": creds.access_key,
            "secret_access_key": creds.secret_key,
            "session_token": creds.token,
            "region": region,
            "service": service,
            "amz_date": amz_date(_NOW[0]),
            "epoch_seconds": epoch(_NOW[0]),
            "signed_headers": signed,
            "canonical_request": canonical,
            "roost_signs_same_headers": signed == "host" and creds.token is None,
        }
    )


# --- real clients -------------------------------------------------------------


class _Captured(Exception):
    def __init__(self, request):
        super().__init__("captured")
        self.request = request


def _capture(request, **kwargs):
    raise _Captured(request)


SESSION = botocore.session.get_session()


def make_client(service, endpoint, region, creds, **config):
    client = SESSION.create_client(
        service,
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=creds.access_key,
        aws_secret_access_key=creds.secret_key,
        aws_session_token=creds.token,
        config=Config(retries={"total_max_attempts": 1}, **config),
    )
    client.meta.events.register("before-send", _capture)
    return client


def via_client(name, service, signing_name, call, endpoint="http://127.0.0.1:18080",
               region="eu-west-1", creds=None, when=None):
    creds = creds or Credentials("test", "test")
    if when is not None:
        set_time(when)
    client = make_client(service, endpoint, region, creds)
    _last_canonical[0] = None
    try:
        call(client)
    except _Captured as c:
        record_header_vector(name, signing_name, region, creds, c.request, _last_canonical[0])
        return
    raise RuntimeError(f"{name}: request was not captured")


# --- hand-built requests (how the client turns a request dict into a URL) -------


def via_request_dict(name, service, method, url_path, query, headers, body,
                     endpoint="http://127.0.0.1:18080", region="eu-west-1",
                     creds=None, when=None, extra_headers=()):
    creds = creds or Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    if when is not None:
        set_time(when)
    request_dict = {
        "url_path": url_path,
        "query_string": query,
        "method": method,
        "headers": dict(headers),
        "body": body,
    }
    botocore.awsrequest.prepare_request_dict(request_dict, endpoint_url=endpoint)
    request = botocore.awsrequest.create_request_object(request_dict)
    # HTTPHeaders appends on assignment: this is how a header line repeats.
    for hname, hvalue in extra_headers:
        request.headers[hname] = hvalue
    _last_canonical[0] = None
    botocore.auth.SigV4Auth(creds, service, region).add_auth(request)
    prepared = request.prepare()
    # prepare() keeps one line per header name; the signed request (and what
    # an HTTP client given these headers sends) has every line, repeats too.
    lines = list(request.headers.items())
    lines += [(k, v) for k, v in prepared.headers.items() if k not in request.headers]
    record_header_vector(name, service, region, creds, prepared, _last_canonical[0], lines)


def presign_request_dict(name, service, method, url_path, query, expires,
                         endpoint="http://127.0.0.1:18080", region="eu-west-1",
                         creds=None, when=None):
    creds = creds or Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    if when is not None:
        set_time(when)
    request_dict = {
        "url_path": url_path,
        "query_string": query,
        "method": method,
        "headers": {},
        "body": b"",
    }
    botocore.awsrequest.prepare_request_dict(request_dict, endpoint_url=endpoint)
    request = botocore.awsrequest.create_request_object(request_dict)
    _last_canonical[0] = None
    botocore.auth.SigV4QueryAuth(creds, service, region, expires=expires).add_auth(request)
    prepared = request.prepare()
    record_presigned_vector(name, method, service, region, creds, prepared.url, [], expires,
                            "double", _last_canonical[0])


def presign_s3(name, method, operation, params, expires, headers=(), creds=None, when=None,
               endpoint="http://127.0.0.1:9000", region="us-east-1"):
    creds = creds or Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    if when is not None:
        set_time(when)
    client = make_client("s3", endpoint, region, creds, signature_version="s3v4",
                         s3={"addressing_style": "path"})
    _last_canonical[0] = None
    url = client.generate_presigned_url(operation, Params=params, ExpiresIn=expires)
    record_presigned_vector(name, method, "s3", region, creds, url, list(headers), expires,
                            "single", _last_canonical[0])


def main():
    if botocore.__version__ != EXPECTED_BOTOCORE:
        sys.exit(f"need botocore {EXPECTED_BOTOCORE}, have {botocore.__version__}")

    t0 = datetime.datetime(2026, 11, 30, 10, 42, 27)
    leap = datetime.datetime(2024, 2, 29, 23, 59, 59)
    new_year = datetime.datetime(2025, 12, 31, 23, 59, 59)
    midnight = datetime.datetime(2027, 1, 1, 0, 0, 0)
    other = Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    token_creds = Credentials("ASIAEXAMPLE", "c2VjcmV0+with/slash==", "FQoGZXIvYXdzEXAMPLETOKEN/+=")

    # --- iot (signing name iot), as the CLI calls it ---
    via_client("iot create-thing", "iot", "iot",
               lambda c: c.create_thing(thingName="t1",
                                        attributePayload={"attributes": {"Owner": "abcde-12345"}}),
               when=t0)
    via_client("iot create-job", "iot", "iot",
               lambda c: c.create_job(
                   jobId="j1",
                   targets=["arn:aws:iot:eu-west-1:123456789012:thing/t1"],
                   document='{"operation":"download","url":"https://example.com/f"}\n',
                   targetSelection="SNAPSHOT",
                   presignedUrlConfig={"roleArn": "arn:aws:iam::123456789012:role/r",
                                       "expiresInSec": 300}))
    via_client("iot create-keys-and-certificate", "iot", "iot",
               lambda c: c.create_keys_and_certificate(setAsActive=True))
    via_client("iot attach-thing-principal (x-amzn-principal)", "iot", "iot",
               lambda c: c.attach_thing_principal(
                   thingName="t1", principal="arn:aws:iot:eu-west-1:123456789012:cert/abc"))
    via_client("iot list-attached-policies (ARN label)", "iot", "iot",
               lambda c: c.list_attached_policies(
                   target="arn:aws:iot:eu-west-1:123456789012:cert/abc"))
    via_client("iot describe-endpoint", "iot", "iot",
               lambda c: c.describe_endpoint(endpointType="iot:Data-ATS"), when=leap)
    via_client("iot list-certificates", "iot", "iot",
               lambda c: c.list_certificates(ascendingOrder=True, pageSize=5))
    via_client("iot list-things (four query params)", "iot", "iot",
               lambda c: c.list_things(maxResults=2, attributeName="Owner",
                                       attributeValue="x y/z", usePrefixAttributeValue=True))
    via_client("iot update-certificate", "iot", "iot",
               lambda c: c.update_certificate(certificateId="a" * 64, newStatus="INACTIVE"),
               creds=other, region="us-east-1", endpoint="https://iot.us-east-1.amazonaws.com")
    via_client("iot create-topic-rule (x-amz-tagging)", "iot", "iot",
               lambda c: c.create_topic_rule(
                   ruleName="r1",
                   topicRulePayload={"sql": "SELECT * FROM 'a/b'",
                                     "actions": [{"republish": {"roleArn": "arn:aws:iam::123456789012:role/r",
                                                                "topic": "c/d"}}]},
                   tags="k=v&k2=v 2"), when=new_year)
    via_client("iot test-authorization", "iot", "iot",
               lambda c: c.test_authorization(
                   clientId="c1", principal="arn:aws:iot:eu-west-1:123456789012:cert/abc",
                   authInfos=[{"actionType": "PUBLISH",
                               "resources": ["arn:aws:iot:eu-west-1:123456789012:topic/a"]}]))
    via_client("iot describe-thing with session token", "iot", "iot",
               lambda c: c.describe_thing(thingName="t-ü"), creds=token_creds)

    # --- iot-data (signing name iotdata) ---
    via_client("iot-data publish a/b", "iot-data", "iotdata",
               lambda c: c.publish(topic="a/b", payload=b'{"hello":"world"}', qos=1, retain=True),
               when=t0)
    via_client("iot-data publish binary to a/b c/+", "iot-data", "iotdata",
               lambda c: c.publish(topic="a/b c/+", payload=b"\x00\x01\xff"))
    via_client("iot-data publish mqtt5 headers", "iot-data", "iotdata",
               lambda c: c.publish(topic="a/b", payload=b"x", contentType="text/plain",
                                   responseTopic="r/t", messageExpiry=60,
                                   userProperties='[{"k":"v"}]',
                                   payloadFormatIndicator="UTF8_DATA",
                                   correlationData="YWJj"))
    via_client("iot-data publish unicode topic", "iot-data", "iotdata",
               lambda c: c.publish(topic="sensors/ünï/温度/$aws", payload="ok"),
               creds=other, region="ap-northeast-1", when=midnight)
    via_client("iot-data update-thing-shadow", "iot-data", "iotdata",
               lambda c: c.update_thing_shadow(thingName="t1", shadowName="s1",
                                               payload=b'{"state":{"desired":{"on":true}}}'))
    via_client("iot-data get-retained-message", "iot-data", "iotdata",
               lambda c: c.get_retained_message(topic="$aws/things/t1/shadow/get"),
               endpoint="https://data-ats.iot.eu-west-1.amazonaws.com")

    # --- iot-jobs-data (signing name iot-jobs-data) ---
    via_client("iot-jobs-data start-next-pending-job-execution ($next)", "iot-jobs-data",
               "iot-jobs-data",
               lambda c: c.start_next_pending_job_execution(thingName="t1"))
    via_client("iot-jobs-data update-job-execution", "iot-jobs-data", "iot-jobs-data",
               lambda c: c.update_job_execution(thingName="t1", jobId="j1", status="IN_PROGRESS",
                                                statusDetails={"a": "b"}, expectedVersion=1,
                                                includeJobDocument=True))
    via_client("iot-jobs-data describe-job-execution", "iot-jobs-data", "iot-jobs-data",
               lambda c: c.describe_job_execution(thingName="t1", jobId="$next",
                                                  includeJobDocument=False, executionNumber=7),
               when=leap)

    # --- hand-built edge cases ---
    via_request_dict("GET repeated and empty query values", "iot", "GET", "/things",
                     {"b": ["2", "1", ""], "a": "", "nextToken": "abc/def+=="}, {}, b"",
                     when=t0)
    via_request_dict("GET unicode and reserved query values", "iot", "GET", "/things",
                     {"attributeValue": "ünïcødé ☃ 🚀", "q": "a&b=c d;e:f,g/h?i#j%k",
                      "tilde~dash-under_dot.": "~-_."}, {}, b"")
    via_request_dict("GET keys that need encoding", "iotdata", "GET", "/retainedMessage",
                     [("z key", "1"), ("ä", "2"), ("A", "3"), ("a", "4"), ("_", "5")], {}, b"")
    via_request_dict("POST binary body all byte values", "iotdata", "POST",
                     "/topics/a%2Fb%20c%2F%2B", {"qos": "0"},
                     {"Content-Type": "application/octet-stream"}, bytes(range(256)))
    via_request_dict("PUT $next with JSON body", "iot-jobs-data", "PUT", "/things/t1/jobs/$next",
                     {}, {"Content-Type": "application/json"}, b"{}", when=new_year)
    via_request_dict("POST attached-policies ARN path", "iot", "POST",
                     "/attached-policies/arn%3Aaws%3Aiot%3Aeu-west-1%3A123456789012%3Acert%2Fabc",
                     {"recursive": "true", "pageSize": "25"}, {}, b"")
    via_request_dict("PUT header whitespace folding", "iot", "PUT", "/things/t1/principals", {},
                     {"x-amzn-principal": "  arn:aws:iot:eu-west-1:123456789012:cert/abc  ",
                      "X-Amz-Meta-Spaces": "a   b \t c",
                      "Content-Type": "application/json;   charset=utf-8"},
                     '{"k": "väl"}'.encode("utf-8"))
    via_request_dict("GET repeated header lines", "iot", "GET", "/things/t1", {}, {},
                     b"", extra_headers=[("X-Amz-Meta-Dup", "one"), ("X-Amz-Meta-Dup", " two  words ")])
    via_request_dict("DELETE job execution", "iot-jobs-data", "DELETE",
                     "/things/t1/jobs/j1/executionNumber/3", {"force": "true"}, {}, b"",
                     creds=other, region="us-west-2", when=midnight)
    via_request_dict("POST signed extra header (accept)", "iot", "POST", "/v2LoggingOptions", {},
                     {"Accept": "application/json", "Content-Type": "application/json"},
                     b'{"defaultLogLevel": "INFO", "disableAllLogs": false}')
    via_request_dict("GET root path https default port", "iot", "GET", "/", {}, {}, b"",
                     endpoint="https://IOT.eu-west-1.amazonaws.com:443")

    # --- presigned (query-string auth) ---
    presign_request_dict("GET presigned mqtt websocket", "iotdevicegateway", "GET", "/mqtt", {},
                         86400, endpoint="https://data-ats.iot.eu-west-1.amazonaws.com",
                         when=t0)
    presign_request_dict("GET presigned iot list-things", "iot", "GET", "/things",
                         {"maxResults": "10", "attributeValue": "a b/c"}, 300, when=leap)
    presign_s3("GET s3 get_object", "GET", "get_object",
               {"Bucket": "bucket", "Key": "photos/2026/a b+c ü $x~y.jpg"}, 3600, when=t0)
    presign_s3("GET s3 get_object response disposition", "GET", "get_object",
               {"Bucket": "bucket", "Key": "plain.txt",
                "ResponseContentDisposition": 'attachment; filename="a b.txt"'}, 604800,
               when=midnight)
    presign_s3("PUT s3 put_object with content-type", "PUT", "put_object",
               {"Bucket": "bucket", "Key": "dir/sub dir/file%name.bin",
                "ContentType": "application/octet-stream"}, 900,
               headers=[("content-type", "application/octet-stream")], when=new_year)
    presign_s3("GET s3 list_objects_v2", "GET", "list_objects_v2",
               {"Bucket": "bucket", "Prefix": "a/b c/", "Delimiter": "/"}, 60)

    doc = {
        "generator": f"botocore {botocore.__version__} via tests/gen_botocore_vectors.py",
        "vectors": VECTORS,
    }
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False, sort_keys=False)
        f.write("\n")
    print(f"wrote {len(VECTORS)} vectors to {OUT}")


if __name__ == "__main__":
    main()
