"""The IoT SQL case table (crates/roost-sql/tests/cases.json, also run
through the library by `cargo test`) run through `roost sql eval`: the CLI
users play with gives exactly the library's answers."""

import base64
import json
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT, roost_binary

CASES = json.loads((ROOT / "crates/roost-sql/tests/cases.json").read_text())


def payload_bytes(case):
    if "payload_text" in case:
        return case["payload_text"].encode()
    if "payload_base64" in case:
        return base64.b64decode(case["payload_base64"])
    return json.dumps(case.get("payload", {}), separators=(",", ":")).encode()


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_case_through_the_cli(case, tmp_path):
    payload = tmp_path / "payload"
    payload.write_bytes(payload_bytes(case))
    args = [roost_binary(), "sql", "eval", "--sql", case["sql"], "--topic", case["topic"], "--payload-file", str(payload)]
    if "sql_version" in case:
        args += ["--sql-version", case["sql_version"]]
    for key, flag in (("client_id", "--client-id"), ("principal", "--principal")):
        if key in case:
            args += [flag, case[key]]
    proc = subprocess.run(args, capture_output=True, timeout=30)
    stderr = proc.stderr.decode(errors="replace")
    if "topic_matches" in case:
        mismatch = "does not match FROM" in stderr
        assert mismatch != case["topic_matches"], stderr
    elif "error" in case:
        assert proc.returncode == 2, (proc.returncode, proc.stdout, stderr)
        assert case["error"].lower() in stderr.lower(), stderr
    elif case.get("filtered"):
        assert proc.returncode == 1 and "filtered out" in stderr, (proc.returncode, proc.stdout, stderr)
    elif "expected_base64" in case:
        assert proc.returncode == 0, stderr
        assert proc.stdout == base64.b64decode(case["expected_base64"])
    else:
        assert proc.returncode == 0, stderr
        assert json.loads(proc.stdout) == case["expected"]


def test_template_rendering_and_exit_codes(tmp_path):
    base = [roost_binary(), "sql", "eval", "--sql", "SELECT * FROM 'abcde-12345/+/audit'", "--topic", "abcde-12345/dev/audit",
            "--payload", '{"message": "x"}']
    out = subprocess.run(base + ["--template", "${topic()}/${topic(2)}"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "abcde-12345/dev/audit/dev"
    bad = subprocess.run(base[:4] + ["SELECT FROM", "--topic", "a", "--payload", "{}"], capture_output=True, text=True)
    assert bad.returncode == 2 and "column" in bad.stderr
    other = subprocess.run(base[:6] + ["other/topic", "--payload", "{}"], capture_output=True, text=True)
    assert other.returncode == 1 and "does not match FROM" in other.stderr


def test_account_sets_accountid():
    base = [roost_binary(), "sql", "eval", "--sql", "SELECT accountid() AS a FROM 'a/b'", "--topic", "a/b", "--payload", "{}"]
    out = subprocess.run(base + ["--account", "123456789012"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"a": "123456789012"}
    # Without it, the account `roost serve` plays by default.
    default = subprocess.run(base, capture_output=True, text=True, timeout=30)
    assert default.returncode == 0 and json.loads(default.stdout) == {"a": "000000000000"}, default.stderr
    bad = subprocess.run(base + ["--account", "1234"], capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "12 digits" in bad.stderr, (bad.returncode, bad.stderr)
