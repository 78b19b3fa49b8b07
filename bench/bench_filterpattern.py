"""Filter-pattern throughput: real CloudTrail records through the 15 CIS metric-filter patterns vs a json.loads floor.

Run: python bench/bench_filterpattern.py [--records 20000] [--repeat 5]
Each pass decodes every record once (json.loads) and evaluates the 15 patterns on the decoded object, two ways:
one `Pattern.matches` call per pattern, and one `PatternSet.matching` call for all 15 (shared key look-ups).
The floor is json.loads alone on the same lines; the three passes are interleaved so they see the same machine
noise. Medians of the repetitions, not means.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

from harness.emulator import filterpattern

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "cloudtrail"
CONTROLS = Path("/work/shared/reference/cis-monitoring-controls.json")
TARGET = 50_000  # records/s on one core, JSON parsing included


def load_lines(count: int) -> list[str]:
    """Every fixture record as a JSON line, repeated until there are at least `count` of them."""
    records = [r for path in sorted(FIXTURES.glob("*.json")) for r in json.loads(path.read_text())]
    lines = [json.dumps(r) for r in records]
    return lines * -(-count // len(lines))


def floor_pass(lines: list[str]) -> float:
    loads = json.loads
    t0 = time.perf_counter()
    for line in lines:
        loads(line)
    return time.perf_counter() - t0


def each_pass(lines: list[str], patterns: list[filterpattern.Pattern]) -> tuple[float, int]:
    loads = json.loads
    matched = 0
    t0 = time.perf_counter()
    for line in lines:
        parsed = loads(line)
        for pattern in patterns:
            if pattern.matches(line, parsed):
                matched += 1
    return time.perf_counter() - t0, matched


def set_pass(lines: list[str], patterns: filterpattern.PatternSet) -> tuple[float, int]:
    loads, matching = json.loads, patterns.matching
    matched = 0
    t0 = time.perf_counter()
    for line in lines:
        matched += len(matching(line, loads(line)))
    return time.perf_counter() - t0, matched


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--controls", type=Path, default=CONTROLS)
    args = parser.parse_args()

    sources = [c["filterPattern"] for c in json.loads(args.controls.read_text())["controls"]]
    filterpattern.compile.cache_clear()
    t0 = time.perf_counter()
    patterns = [filterpattern.compile(s) for s in sources]
    pattern_set = filterpattern.PatternSet(patterns)
    compile_ms = (time.perf_counter() - t0) * 1000
    lines = load_lines(args.records)

    each_pass(lines[:1000], patterns)  # warm-up: let the interpreter specialise the bytecode before timing
    set_pass(lines[:1000], pattern_set)
    times: dict[str, list[float]] = {"floor": [], "each": [], "set": []}
    matched = set()
    for _ in range(args.repeat):
        times["floor"].append(floor_pass(lines))
        elapsed, hits = each_pass(lines, patterns)
        times["each"].append(elapsed)
        matched.add(hits)
        elapsed, hits = set_pass(lines, pattern_set)
        times["set"].append(elapsed)
        matched.add(hits)

    rps = {name: len(lines) / statistics.median(t) for name, t in times.items()}
    summary = {
        "records": len(lines),
        "patterns": len(patterns),
        "repetitions": args.repeat,
        "floor_json_loads_records_per_s": round(rps["floor"]),
        "cis15_pattern_matches_records_per_s": round(rps["each"]),
        "cis15_pattern_set_records_per_s": round(rps["set"]),
        "patterns_cost_us_per_record": {name: round((1 / rps[name] - 1 / rps["floor"]) * 1e6, 2)
                                        for name in ("each", "set")},
        "target_records_per_s": TARGET,
        "meets_target": {name: rps[name] >= TARGET for name in ("each", "set")},
        "matches_per_pass": sorted(matched),  # one number: both ways agree
        "compile_ms_all_15": round(compile_ms, 2),
        "python": platform.python_version(),
    }
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
