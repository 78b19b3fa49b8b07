"""Failed and broken are different verdicts, and neither is ever reported as passed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from botocore.exceptions import ClientError

from harness.errors import DetectionMissing, DetectionSlaBreached, HarnessBroken, UnwantedNotification, verdict_of
from harness.journal import Journal
from harness.runner import GameDay
from harness.scenario import Scenario
from harness.sink import Sink

ROOT = Path(__file__).resolve().parents[1]

HEADER = '''
"""A scenario written for this test."""
from harness import faults, probes
from harness.probes import Probe
from harness.scenario import Scenario

SCENARIO = Scenario(id="verdict-probe", title="verdicts", mitre=["T1562.008"], severity="low",
                    detect_within=60, remediate_within=60)
'''

BACKEND_DIES = HEADER + '''

def test_verdict_probe(gameday, stack, gameday_session):
    with gameday.inject(faults.cloudtrail.stop_logging(stack.trail_name)):
        gameday_session.backend.server.stop()  # the endpoint goes away mid-scenario
        gameday.expect_restored(probes.cloudtrail.is_logging(stack.trail_name))
'''

PROBE_CRASHES = HEADER + '''

def explode(aws):
    raise RuntimeError("probe bug")


def test_verdict_probe(gameday, stack):
    with gameday.inject(faults.cloudtrail.stop_logging(stack.trail_name)):
        gameday.expect_restored(Probe("a probe with a bug", explode))
'''

def run_scenario(tmp_path: Path, source: str) -> tuple[subprocess.CompletedProcess, dict]:
    (tmp_path / "test_verdict_probe.py").write_text(textwrap.dedent(source))
    env = {**os.environ, "GAMEDAY_JOURNAL": str(tmp_path / "journal.jsonl"),
           "GAMEDAY_REPORTS_DIR": str(tmp_path / "reports")}
    proc = subprocess.run([sys.executable, "-m", "pytest", str(tmp_path / "test_verdict_probe.py"), "-q",
                           "-p", "no:cacheprovider"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    summary = json.loads((tmp_path / "reports" / "summary.json").read_text())
    return proc, summary["results"][0]


def test_a_backend_that_dies_mid_scenario_is_broken_not_failed(tmp_path):
    proc, result = run_scenario(tmp_path, BACKEND_DIES)
    assert proc.returncode == 1
    assert result["verdict"] == "broken", result
    assert "BROKEN" in proc.stdout and "0 passed, 0 failed, 1 broken" in proc.stdout
    # The revert could not reach the endpoint either: the entry stays open for `gameday cleanup`.
    assert [e["state"] for e in Journal(tmp_path / "journal.jsonl").open_entries()] == ["revert_failed"]


def test_a_harness_bug_is_broken(tmp_path):
    proc, result = run_scenario(tmp_path, PROBE_CRASHES)
    assert proc.returncode == 1 and result["verdict"] == "broken"
    assert "probe bug" in result["reason"]
    assert Journal(tmp_path / "journal.jsonl").open_entries() == []


class FakeSqs:
    """A sink whose one message says it was sent `delay` seconds after injection."""

    def __init__(self, clock, delay: float | None):
        self.clock, self.delay = clock, delay

    def receive_message(self, **_):
        if self.delay is None or self.clock.injected_at is None:
            return {}
        delay, self.delay = self.delay, None
        event = {"detail": {"eventName": "StopLogging"}}
        body = json.dumps({"Type": "Notification", "Message": json.dumps(event)})
        sent_ms = int((self.clock.injected_at + delay) * 1000)
        return {"Messages": [{"MessageId": "m1", "ReceiptHandle": "r1", "Body": body,
                              "Attributes": {"SentTimestamp": str(sent_ms)}}]}

    def delete_message_batch(self, **_):
        return {}


class FakeBackend:
    time_scale = 600.0

    def __init__(self):
        self.sqs = None

    def client(self, service):
        return self.sqs

    def describe(self):
        return {"name": "fake"}


def gameday_with_sink(delay: float | None) -> GameDay:
    backend = FakeBackend()
    scenario = Scenario(id="verdict-unit", title="t", mitre=["T1562.008"], severity="low",
                        detect_within=60, remediate_within=60)
    run = GameDay(backend=backend, stack=SimpleNamespace(sink_queue_url="q"), scenario=scenario,
                  journal=None)  # type: ignore[arg-type]
    backend.sqs = FakeSqs(run.clock, delay)
    run.sink = Sink(backend.sqs, "q")
    run.clock.start()
    return run


def test_detection_after_the_sla_is_failed_as_late_measured_from_sent_timestamp():
    run = gameday_with_sink(delay=0.2)  # 0.2 s wall at scale 600 = 120 s of AWS time, SLA 60 s
    with pytest.raises(DetectionSlaBreached) as err:
        run.expect_notification(matching={"detail.eventName": "StopLogging"})
    assert err.value.elapsed_aws_s == pytest.approx(120, abs=1)
    assert verdict_of(err.value) == "failed"


def test_detection_within_the_sla_passes_with_ttd_from_sent_timestamp():
    run = gameday_with_sink(delay=0.05)  # 30 s of AWS time
    run.expect_notification(matching={"detail.eventName": "StopLogging"})
    assert run.clock.ttd_aws == pytest.approx(30, abs=1)


def test_no_notification_is_failed_as_missing():
    run = gameday_with_sink(delay=None)
    with pytest.raises(DetectionMissing):
        run.expect_notification(matching={"detail.eventName": "StopLogging"})


def test_a_notification_in_the_quiet_window_is_a_false_positive_and_fails():
    run = gameday_with_sink(delay=0.05)  # 30 s of AWS time after injection, inside a 60 s window
    with pytest.raises(UnwantedNotification) as err:
        run.expect_no_notification(matching={"detail.eventName": "StopLogging"}, within=60)
    assert err.value.elapsed_aws_s == pytest.approx(30, abs=1)
    assert verdict_of(err.value) == "failed"


def test_a_quiet_sink_passes_only_after_the_whole_window():
    run = gameday_with_sink(delay=None)
    started = time.monotonic()
    run.expect_no_notification(within=60)  # 0.1 s wall at scale 600
    assert time.monotonic() - started >= 0.1
    assert run.timeline[-1]["event"] == "no notification"


def test_a_late_delivery_sent_before_injection_is_not_a_false_positive():
    run = gameday_with_sink(delay=-0.5)
    run.expect_no_notification(matching={"detail.eventName": "StopLogging"}, within=60)
    assert run.timeline[-1]["event"] == "no notification"


class FlakyRevert:
    """A fault whose revert the backend refuses `refusals` times (a race with the stack's own repair)."""

    name = "test.flaky_revert"

    def __init__(self, refusals: int):
        self.refusals, self.calls = refusals, 0

    def describe(self) -> str:
        return "a fault whose revert races the stack"

    def revert(self, aws, snapshot) -> None:
        self.calls += 1
        if self.calls <= self.refusals:
            raise ClientError({"Error": {"Code": "InvalidRoute.NotFound", "Message": "no route"}}, "DeleteRoute")


def revert_with_journal(tmp_path: Path, fault: FlakyRevert, in_flight: BaseException | None = None):
    run = gameday_with_sink(delay=None)
    run.journal = Journal(tmp_path / "journal.jsonl")
    entry = run.journal.begin(run_id="r", fault=fault.name, params={}, snapshot=None, backend={"name": "fake"})
    run.journal.mark(entry, "applied")
    run._revert(fault, None, entry, in_flight)  # type: ignore[arg-type]
    return run


def test_a_revert_that_lost_a_race_with_the_stacks_repair_is_tried_again(tmp_path):
    fault = FlakyRevert(refusals=1)
    run = revert_with_journal(tmp_path, fault)
    assert fault.calls == 2
    assert run.journal.open_entries() == []
    events = [e for e in run.timeline if e["event"].startswith("revert") or e["event"] == "reverted"]
    assert [e["event"] for e in events] == ["revert retried", "reverted"]
    assert "InvalidRoute.NotFound" in events[0]["error"]


def test_a_revert_the_backend_keeps_refusing_is_left_open_for_cleanup(tmp_path):
    fault = FlakyRevert(refusals=99)
    with pytest.raises(HarnessBroken, match="run `gameday cleanup`"):
        revert_with_journal(tmp_path, fault)
    assert fault.calls == 3
    assert [e["state"] for e in Journal(tmp_path / "journal.jsonl").open_entries()] == ["revert_failed"]
