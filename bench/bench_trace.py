"""`gameday trace` figures: its own endpoint (start, deploy, trace), --canary, and attached to a running `gameday up`.

Run: python bench/bench_trace.py [--runs 5] [--inprocess-runs 20]
Medians, not means: these machines are noisy. Each CLI figure is the wall time of a fresh interpreter and comes with
a baseline measured in this process, interleaved run by run: the bare start + deploy for the own endpoint, and one
boto3 call to the endpoint for the attached trace. CPU seconds (user + system, children included) are less
sensitive to other load than wall seconds, so both are reported.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

from harness.config import Settings
from harness.session import start_session
from harness.trace import trace

from benchkit import ROOT

BARE_SESSION = "from harness.config import Settings; from harness.session import start_session; " \
               "start_session(Settings()).close()"
ONE_CALL = "import boto3, sys; boto3.client('sts', endpoint_url=sys.argv[1], region_name='us-east-1', " \
           "aws_access_key_id='x', aws_secret_access_key='x').get_caller_identity()"
# Controls nothing in a quiet stack trips: each attached canary fires a fresh alarm instead of waiting for the last.
CANARY_CONTROLS = ("4.9", "4.10", "4.11", "4.12", "4.13", "4.14", "4.15")


def timed(args: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of a fresh interpreter running ARGS; an unexpected exit code stops the benchmark."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} exited {proc.returncode}:\n{proc.stdout[-1500:]}{proc.stderr[-1500:]}")
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def medians(samples: list[tuple[float, float]]) -> dict:
    return {"wall_s": round(statistics.median(w for w, _ in samples), 2),
            "cpu_s": round(statistics.median(c for _, c in samples), 2), "runs": len(samples)}


def own_endpoint(runs: int) -> dict:
    """`gameday trace` starting its own endpoint, with and without --canary, against the bare start + deploy."""
    static, canary, bare = [], [], []
    for _ in range(runs):
        bare.append(timed(["-c", BARE_SESSION]))
        static.append(timed(["-m", "harness.cli", "trace"]))
        canary.append(timed(["-m", "harness.cli", "trace", "--canary"]))
    return {"trace": {**medians(static), "target_wall_s": 2.0},
            "trace_canary": {**medians(canary), "target_wall_s": 3.0},
            "baseline_start_deploy_close": medians(bare)}


def attached(runs: int) -> dict:
    """`gameday trace --endpoint` against a running `gameday up` (the 2 a.m. use), against one boto3 call to it."""
    up = subprocess.Popen([sys.executable, "-m", "harness.cli", "up"], cwd=ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True)
    try:
        info = json.loads(up.stdout.readline())
        url = info["endpoint"]
        static, canary, one_call = [], [], []
        for i in range(runs):
            one_call.append(timed(["-c", ONE_CALL, url]))
            static.append(timed(["-m", "harness.cli", "trace", "--endpoint", url]))
            canary.append(timed(["-m", "harness.cli", "trace", "--endpoint", url, "--canary",
                                 "--control", CANARY_CONTROLS[i % len(CANARY_CONTROLS)]]))
    finally:
        up.terminate()
        up.wait(timeout=30)
    return {"trace": medians(static), "trace_canary": medians(canary), "baseline_one_boto3_call": medians(one_call)}


def in_process(runs: int) -> dict:
    """The trace alone on a warm session: the static hops, and a canary from write to sink."""
    session = start_session(Settings())
    try:
        aws, stack = session.backend, session.stack
        trace(aws, stack)  # clients built, models loaded
        static = []
        for _ in range(runs):
            t0 = time.perf_counter()
            trace(aws, stack)
            static.append((time.perf_counter() - t0) * 1000)
        canaries = []
        for control in CANARY_CONTROLS:
            report = trace(aws, stack, control=control, canary=True)
            assert report.canary.arrived, report.canary.evidence
            canaries.append(report.canary.hops[-1].wall_ms)
        return {"static_trace_ms": round(statistics.median(static), 1), "runs": runs,
                "canary_write_to_sink_ms": round(statistics.median(canaries), 1), "canaries": len(canaries)}
    finally:
        session.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--inprocess-runs", type=int, default=20)
    args = parser.parse_args()
    print(json.dumps({"in_process": in_process(args.inprocess_runs), "own_endpoint": own_endpoint(args.runs),
                      "attached": attached(args.runs)}, indent=2))


if __name__ == "__main__":
    main()
