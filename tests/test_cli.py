"""Bad input gets one clear line and a non-zero exit with nothing changed; `gameday up`, `list`, `cleanup` work."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

import boto3
import pytest

from harness.cleanup import cleanup
from harness.config import Settings
from harness.faults import cloudtrail as faults
from harness.journal import Journal
from harness.poll import wait_for
from harness.scenario import load_catalog
from harness.session import start_session

ROOT = Path(__file__).resolve().parents[1]


def run(args: list[str], tmp_path: Path, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "GAMEDAY_JOURNAL": str(tmp_path / "journal.jsonl"),
                "GAMEDAY_REPORTS_DIR": str(tmp_path / "reports"), **(env or {})}
    return subprocess.run(args, cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=timeout)


def pytest_scenarios(tmp_path: Path, *options: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "pytest", "scenarios/", "-q", "-p", "no:cacheprovider", *options], tmp_path, env)


@pytest.mark.parametrize("option,message", [
    ("--gameday-backend=nope", "unknown backend 'nope'; choose one of: embedded, localstack, aws"),
    ("--gameday-sabotage=everything", "unknown sabotage 'everything'"),
    ("--gameday-time-scale=-3", "time scale"),
    ("--gameday-backend=localstack", "the localstack backend needs its URL"),
    ("--gameday-backend=aws", "the aws backend runs only against allowlisted accounts"),
])
def test_bad_options_get_one_line_and_change_nothing(tmp_path, option, message):
    proc = pytest_scenarios(tmp_path, option)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if message in line]
    assert len(lines) == 1, proc.stderr
    assert not (tmp_path / "journal.jsonl").exists()


def test_unreachable_localstack_gets_one_line(tmp_path):
    proc = pytest_scenarios(tmp_path, "--gameday-backend=localstack", "--gameday-endpoint=http://127.0.0.1:9")
    assert proc.returncode == 2
    assert "LocalStack at http://127.0.0.1:9 is unreachable" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not (tmp_path / "journal.jsonl").exists()


@pytest.fixture(scope="module")
def fake_aws():
    """A plain moto server in its own process standing in for AWS (moto's state is per process)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"

    def up():
        try:
            with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):
                return True
        except OSError:
            return None

    assert wait_for(up, timeout=30, interval=0.05, describe="moto server up")
    yield url
    server.terminate()
    server.wait(timeout=10)


def test_aws_backend_refuses_an_account_not_on_the_allowlist(tmp_path, fake_aws):
    env = {"AWS_ENDPOINT_URL": fake_aws, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1"}
    proc = pytest_scenarios(tmp_path, "--gameday-backend=aws", "--gameday-allowed-accounts=111111111111", env=env)
    assert proc.returncode == 2
    assert "account 123456789012" in proc.stdout and "is not allowlisted" in proc.stdout
    kw = dict(endpoint_url=fake_aws, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t")
    assert boto3.client("cloudtrail", **kw).list_trails()["Trails"] == [], "nothing may be deployed"
    assert boto3.client("s3", **kw).list_buckets()["Buckets"] == []


def test_gameday_list_markdown_names_every_scenario(tmp_path):
    proc = run([sys.executable, "-m", "harness.cli", "list", "--markdown"], tmp_path)
    assert proc.returncode == 0
    for scenario, _, _ in load_catalog(ROOT / "scenarios"):
        assert f"`{scenario.id}`" in proc.stdout


def test_gameday_cli_bad_input_is_one_line(tmp_path):
    proc = run([sys.executable, "-m", "harness.cli", "list", "--scenarios", str(tmp_path / "none")], tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "does not exist" in proc.stderr


def test_gameday_up_remediates_and_notifies_another_processes_stop_logging(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "up"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "GAMEDAY_JOURNAL": str(tmp_path / "j.jsonl")})
    try:
        line = proc.stdout.readline()
        info = json.loads(line)
        assert info["endpoint"].startswith("http://127.0.0.1:")
        stack = info["stack"]
        client_env = {**os.environ, "AWS_ENDPOINT_URL": info["endpoint"], "AWS_ACCESS_KEY_ID": "AKIAEXTERNAL0000001",
                      "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": info["region"]}
        # Another process, another client: the recorder sees it at the HTTP layer.
        subprocess.run([sys.executable, "-c",
                        f"import boto3; boto3.client('cloudtrail').stop_logging(Name='{stack['trail_name']}')"],
                       env=client_env, check=True, timeout=60)
        kw = dict(endpoint_url=info["endpoint"], region_name=info["region"], aws_access_key_id="t",
                  aws_secret_access_key="t")
        ct, sqs = boto3.client("cloudtrail", **kw), boto3.client("sqs", **kw)
        restored = wait_for(lambda: ct.get_trail_status(Name=stack["trail_name"])["IsLogging"] or None,
                            timeout=20, interval=0.05, describe="logging restored")
        assert restored
        def notified():
            for m in sqs.receive_message(QueueUrl=stack["sink_queue_url"], MaxNumberOfMessages=10).get("Messages", []):
                event = json.loads(json.loads(m["Body"])["Message"])
                # The sink also gets CIS alarm notifications (StopLogging trips 4.5): look for the event.
                if event.get("detail", {}).get("eventName") == "StopLogging":
                    return event
            return None
        event = wait_for(notified, timeout=20, interval=0.05, describe="notification")
        assert event and event["detail"]["userIdentity"]["accessKeyId"] == "AKIAEXTERNAL0000001"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    assert proc.returncode == 0


@pytest.fixture
def unremediated_session(tmp_path):
    """An embedded stack without remediation, so only the harness or cleanup can put things back."""
    session = start_session(Settings(sabotage="remediation", journal=str(tmp_path / "journal.jsonl")))
    yield session
    session.close()


def test_cleanup_reverts_a_fault_a_killed_run_left_applied(unremediated_session, tmp_path):
    s = unremediated_session
    fault = faults.stop_logging(s.stack.trail_name)
    journal = Journal(tmp_path / "journal.jsonl")
    entry = journal.begin(run_id="killed", fault=fault.name, params=fault.params, snapshot=None,
                          backend=s.backend.describe())
    fault.apply(s.backend, None)
    journal.mark(entry, "applied")  # ... and then the run died
    assert not s.backend.client("cloudtrail").get_trail_status(Name=s.stack.trail_name)["IsLogging"]
    result = cleanup(journal)
    assert (result.reverted, result.failed) == (1, 0), result.lines
    assert s.backend.client("cloudtrail").get_trail_status(Name=s.stack.trail_name)["IsLogging"]
    assert journal.open_entries() == []


def test_cleanup_abandons_entries_whose_embedded_endpoint_died(tmp_path):
    journal = Journal(tmp_path / "journal.jsonl")
    journal.begin(run_id="gone", fault="cloudtrail.stop_logging", params={"trail": "x-trail"}, snapshot=None,
                  backend={"name": "embedded", "endpoint": "http://127.0.0.1:9", "region": "us-east-1",
                           "account": "123456789012"})
    result = cleanup(journal)
    assert result.abandoned == 1 and result.failed == 0
    assert journal.open_entries() == []


INTERRUPTIBLE = '''
"""Injects, then waits far longer than the test will let it."""
from harness import faults
from harness.scenario import Scenario

SCENARIO = Scenario(id="interruptible", title="waits", mitre=["T1562.008"], severity="low",
                    detect_within=3600, remediate_within=3600)


def test_interruptible(gameday, stack):
    with gameday.inject(faults.cloudtrail.stop_logging(stack.trail_name)):
        gameday.expect_notification(matching={"never": "arrives"})
'''


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupt_reverts_the_fault(tmp_path, sig):
    (tmp_path / "test_interruptible.py").write_text(textwrap.dedent(INTERRUPTIBLE))
    journal_path = tmp_path / "journal.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "pytest", str(tmp_path / "test_interruptible.py"), "-q",
                             "-p", "no:cacheprovider", "--gameday-time-scale=1"], cwd=ROOT,
                            env={**os.environ, "GAMEDAY_JOURNAL": str(journal_path),
                                 "GAMEDAY_REPORTS_DIR": str(tmp_path / "reports")},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        def applied():
            return journal_path.exists() and '"applied"' in journal_path.read_text() or None
        assert wait_for(applied, timeout=60, interval=0.05, describe="fault applied"), "the fault was never applied"
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    states = [json.loads(line).get("state") for line in journal_path.read_text().splitlines()]
    assert states == ["applying", "applied", "reverted"], out[-2000:]
    assert Journal(journal_path).open_entries() == []


def test_a_stale_aws_profile_in_the_shell_does_not_break_the_embedded_backend(tmp_path):
    proc = pytest_scenarios(tmp_path, "-k", "stop_logging", env={"AWS_PROFILE": "no-such-profile"})
    assert proc.returncode == 0, proc.stdout[-2000:]
