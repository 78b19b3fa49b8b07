"""Part 1 figures: game-day wall time, StopLogging-to-restored latency, and the bare boto3 floor.

Run: python bench/bench_cloudtrail_chain.py [--runs 50] [--pytest-runs 3]
Medians, not means: these machines are noisy; the floor runs in the same process for comparison.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import boto3
from moto.server import ThreadedMotoServer

from harness.config import Settings
from harness.poll import wait_for
from harness.session import start_session

from benchkit import pct, pytest_wall




def chain_latency(runs: int) -> list[float]:
    """StopLogging sent -> the harness sees IsLogging again, through recorder, EventBridge and the Lambda."""
    session = start_session(Settings())
    try:
        ct = session.backend.client("cloudtrail")
        trail = session.stack.trail_name
        samples = []
        for _ in range(runs + 1):
            t0 = time.perf_counter()
            ct.stop_logging(Name=trail)
            seen = wait_for(lambda: ct.get_trail_status(Name=trail)["IsLogging"] or None, timeout=10,
                            interval=0.002, describe="logging restored")
            assert seen, "remediation did not restore logging within 10 s"
            samples.append((time.perf_counter() - t0) * 1000)
            session.backend.plane.drain()
            session.backend.plane.runtime.join(10)
        return samples[1:]  # the first run pays one-time imports on the server side
    finally:
        session.close()


def bare_floor(runs: int) -> list[float]:
    """The same chain as a bare boto3 loop against plain moto: StopLogging, StartLogging, GetTrailStatus."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    kw = dict(endpoint_url=f"http://{host}:{port}", region_name="us-east-1",
              aws_access_key_id="bench", aws_secret_access_key="bench")
    try:
        boto3.client("s3", **kw).create_bucket(Bucket="bench-floor-bucket")
        ct = boto3.client("cloudtrail", **kw)
        ct.create_trail(Name="bench-floor", S3BucketName="bench-floor-bucket")
        samples = []
        for _ in range(runs + 1):
            t0 = time.perf_counter()
            ct.stop_logging(Name="bench-floor")
            ct.start_logging(Name="bench-floor")
            assert ct.get_trail_status(Name="bench-floor")["IsLogging"]
            samples.append((time.perf_counter() - t0) * 1000)
        return samples[1:]
    finally:
        server.stop()



def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--pytest-runs", type=int, default=3)
    args = parser.parse_args()
    floor = bare_floor(args.runs)
    chain = chain_latency(args.runs)
    wall = pytest_wall(["scenarios/"], args.pytest_runs)
    result = {
        "stoplogging_to_restored_ms": {"p50": round(statistics.median(chain), 1), "p95": round(pct(chain, 95), 1),
                                       "runs": len(chain), "target_p50": 100},
        "bare_boto3_floor_ms": {"p50": round(statistics.median(floor), 1), "p95": round(pct(floor, 95), 1),
                                "runs": len(floor)},
        "pytest_scenarios_wall_s": {"median": round(statistics.median(wall), 2), "runs": len(wall),
                                    "all": [round(w, 2) for w in wall], "target": 15},
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
