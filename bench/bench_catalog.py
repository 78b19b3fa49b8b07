"""The whole scenario catalog on the embedded backend: wall time from a fresh interpreter, and where it goes.

Run: python bench/bench_catalog.py [--runs 3] [FILES...]
Medians, not means: these machines are noisy. Each run times `pytest scenarios/` from a fresh interpreter
(start-up, endpoint and deploy included) next to a baseline timed just before it, in the same process: a fresh
interpreter that only starts the endpoint, deploys the stack and closes it. The ratio of the two is what compares
across machines. The slowest scenarios are their call times (session start-up not included), from a JUnit XML.
FILES (default scenarios/) run in the plugin's order whatever order they are given in (harness.scenario.run_order).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from benchkit import ROOT

BARE_SESSION = "from harness.config import Settings; from harness.session import start_session; " \
               "start_session(Settings()).close()"
TARGET_WALL_S = 60.0  # the whole catalog, start-up included


def timed(args: list[str]) -> tuple[float, float, subprocess.CompletedProcess]:
    """Wall and CPU seconds (user + system, children included) of a fresh interpreter running ARGS."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, proc


def call_times(junit: Path) -> dict[str, float]:
    """Test id -> call seconds, from a JUnit XML written with junit_duration_report=call."""
    return {f"{case.get('classname')}::{case.get('name')}": float(case.get("time", 0))
            for case in ET.parse(junit).getroot().iter("testcase")}


def catalog(runs: int, files: list[str]) -> dict:
    walls, cpus, bare_walls, bare_cpus = [], [], [], []
    per_test: dict[str, list[float]] = {}
    count = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(runs):
            wall, cpu, proc = timed(["-c", BARE_SESSION])
            if proc.returncode != 0:
                raise SystemExit(f"the bare session failed:\n{proc.stderr[-2000:]}")
            bare_walls.append(wall)
            bare_cpus.append(cpu)
            junit = Path(tmp) / f"run{i}.xml"
            wall, cpu, proc = timed(["-m", "pytest", *files, "-q", "-p", "no:cacheprovider",
                                     f"--junitxml={junit}", "-o", "junit_duration_report=call"])
            if proc.returncode != 0:
                raise SystemExit(f"pytest {' '.join(files)} failed:\n{proc.stdout[-3000:]}")
            walls.append(wall)
            cpus.append(cpu)
            times = call_times(junit)
            count = len(times)
            for test, seconds in times.items():
                per_test.setdefault(test, []).append(seconds)
    slowest = sorted(((statistics.median(v), k) for k, v in per_test.items()), reverse=True)[:5]
    wall, bare = statistics.median(walls), statistics.median(bare_walls)
    return {
        "catalog": {"wall_s": round(wall, 2), "cpu_s": round(statistics.median(cpus), 2), "scenarios": count,
                    "runs": runs, "walls_s": [round(w, 2) for w in walls], "target_wall_s": TARGET_WALL_S},
        "baseline_start_deploy_close": {"wall_s": round(bare, 2), "cpu_s": round(statistics.median(bare_cpus), 2)},
        "catalog_over_baseline": round(wall / bare, 2),
        "slowest_calls_s": {test.rsplit("::", 1)[-1]: round(seconds, 2) for seconds, test in slowest},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("files", nargs="*", default=["scenarios/"], help="scenario files or folders")
    args = parser.parse_args()
    print(json.dumps(catalog(args.runs, args.files), indent=2))


if __name__ == "__main__":
    main()
