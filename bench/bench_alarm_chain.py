"""Part 2 figures: put_metric_data breaching -> alarm notification in the sink, and what the new scenarios cost.

Run: python bench/bench_alarm_chain.py [--runs 50] [--pytest-runs 3]
Medians, not means: these machines are noisy. The scenario cost is the wall time of `pytest scenarios/`
minus that of the four part-1 scenarios alone, both from a fresh interpreter, in the same process.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid

from harness.config import Settings
from harness.poll import wait_for
from harness.session import start_session

from benchkit import ROOT, pct, pytest_wall

PART_1 = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "scenarios").glob("test_cloudtrail_*.py"))



def metric_to_sink(runs: int) -> list[float]:
    """A fresh alarm per run on the stack's security topic; PutMetricData breaching it; the sink sees ALARM."""
    session = start_session(Settings())
    try:
        aws, stack = session.backend, session.stack
        cw, sqs = aws.client("cloudwatch"), aws.client("sqs")
        samples = []
        for _ in range(runs + 1):
            name = f"bench-{uuid.uuid4().hex[:8]}"
            cw.put_metric_alarm(AlarmName=name, MetricName=name, Namespace="GamedayBench", Statistic="Sum",
                                Period=300, EvaluationPeriods=1, Threshold=1, TreatMissingData="notBreaching",
                                ComparisonOperator="GreaterThanOrEqualToThreshold", AlarmActions=[stack.topic_arn])
            session.backend.plane.drain()

            def arrived():
                for m in sqs.receive_message(QueueUrl=stack.sink_queue_url, MaxNumberOfMessages=10).get("Messages", []):
                    sqs.delete_message(QueueUrl=stack.sink_queue_url, ReceiptHandle=m["ReceiptHandle"])
                    if f'"AlarmName": "{name}"' in json.loads(m["Body"]).get("Message", ""):
                        return True
                return None

            t0 = time.perf_counter()
            cw.put_metric_data(Namespace="GamedayBench", MetricData=[{"MetricName": name, "Value": 5.0}])
            assert wait_for(arrived, timeout=10, interval=0.002, describe="alarm notification"), "no notification"
            samples.append((time.perf_counter() - t0) * 1000)
        return samples[1:]
    finally:
        session.close()



def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--pytest-runs", type=int, default=3)
    args = parser.parse_args()
    latency = metric_to_sink(args.runs)
    walls_all, walls_part1 = [], []
    for _ in range(args.pytest_runs):  # interleaved, so load drifts hit both alike
        walls_part1 += pytest_wall(PART_1, 1)
        walls_all += pytest_wall(["scenarios/"], 1)
    scenarios = len(list((ROOT / "scenarios").glob("test_*.py")))
    print(json.dumps({
        "put_metric_data_to_sink_ms": {"p50": round(statistics.median(latency), 1),
                                       "p95": round(pct(latency, 95), 1), "runs": len(latency), "target_p50": 100},
        "pytest_scenarios_wall_s": {"all": round(statistics.median(walls_all), 2), "scenarios": scenarios,
                                    "part_1_only": round(statistics.median(walls_part1), 2),
                                    "added_by_the_rest": round(statistics.median(walls_all)
                                                               - statistics.median(walls_part1), 2),
                                    "target_added": 20},
    }, indent=2))


if __name__ == "__main__":
    main()
