"""`roost rotate-certs` with the real roost-canary on the other end: a
group of three canaries all rotate, their old certificates end INACTIVE,
each keeps reporting incidents with its new pair (one sent after the
rotation arrives in the bucket), and running it again rotates them again,
the second time with the files sealed to each canary's key."""

import re
import subprocess

from canary_support import scenario_rule
from conftest import roost_binary
from test_canary_jobs import jobs_device, reports_an_incident, start_canary, uses


def status(iot, cert_id):
    return iot.describe_certificate(certificateId=cert_id)["certificateDescription"]["status"]


def test_a_group_of_three_canaries_rotates_and_keeps_reporting_twice(roost, tmp_path):
    scenario_rule(roost, unique_keys=True)
    iot = roost.boto()
    iot.create_thing_group(thingGroupName="canaries")
    devices = [jobs_device(roost, tmp_path, f"canary-{i}") for i in range(3)]
    for device in devices:
        iot.add_thing_to_thing_group(thingGroupName="canaries", thingName=device.thing)
    canaries = [start_canary(roost, tmp_path, d, name=d.thing) for d in devices]
    try:
        held = {d.thing: d.cert_id for d in devices}
        for canary, device in zip(canaries, devices):
            assert uses(canary, device.cert_id), canary.read_log()
        for run, extra in enumerate([[], ["--encrypt"]], start=1):
            cli = subprocess.run(
                [roost_binary(), "rotate-certs", "--group", "canaries", "--wait", *extra,
                 "--data-dir", str(roost.data_dir)],
                capture_output=True, text=True, timeout=180)
            logs = "\n".join(c.read_log()[-3000:] for c in canaries)
            assert cli.returncode == 0, (cli.stdout, cli.stderr, logs)
            assert "3 rotated, 0 failed, 0 in progress" in cli.stdout
            rotated = dict(re.findall(r"^(canary-\d): rotated to ([0-9a-f]{64});", cli.stderr, re.M))
            assert sorted(rotated) == sorted(held)
            for i, (canary, device) in enumerate(zip(canaries, devices)):
                old, new = held[device.thing], rotated[device.thing]
                assert old != new
                assert status(iot, old) == "INACTIVE" and status(iot, new) == "ACTIVE"
                assert uses(canary, new), canary.read_log()
                assert reports_an_incident(roost, canary, f"127.0.{run}.{i + 10}"), canary.read_log()
            held = rotated
        assert len(iot.list_jobs()["jobs"]) == 6
    finally:
        for canary in canaries:
            canary.stop()
