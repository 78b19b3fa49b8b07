"""The aws latency profile: alarms wait for their period to close (its own module: one endpoint per process)."""

from __future__ import annotations

import json
import time

from harness.backends.embedded import EmbeddedBackend
from harness.config import Settings
from harness.poll import wait_for

CIS_4_5 = ("{ ($.eventName = CreateTrail) || ($.eventName = UpdateTrail) || ($.eventName = DeleteTrail) || "
           "($.eventName = StartLogging) || ($.eventName = StopLogging) }")


def state(aws, alarm: str) -> str:
    return aws.client("cloudwatch").describe_alarms(AlarmNames=[alarm])["MetricAlarms"][0]["StateValue"]


def test_aws_profile_waits_for_the_period_to_close():
    backend = EmbeddedBackend(Settings(time_scale=60, latency_profile="aws"))
    backend.start()
    try:
        logs, cw, clock = backend.client("logs"), backend.client("cloudwatch"), backend.plane.clock
        logs.create_log_group(logGroupName="/aws-profile")
        logs.create_log_stream(logGroupName="/aws-profile", logStreamName="s")
        logs.put_metric_filter(logGroupName="/aws-profile", filterName="f", filterPattern=CIS_4_5,
                               metricTransformations=[{"metricName": "m", "metricNamespace": "ns", "metricValue": "1"}])
        cw.put_metric_alarm(AlarmName="aws-profile", MetricName="m", Namespace="ns", Statistic="Sum", Period=300,
                            EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanOrEqualToThreshold",
                            TreatMissingData="notBreaching")
        put_wall = time.time()
        logs.put_log_events(logGroupName="/aws-profile", logStreamName="s", logEvents=[
            {"timestamp": int(put_wall * 1000), "message": json.dumps({"eventName": "StopLogging"})}])
        # AWS closes the window on the next whole minute of AWS time: 1 wall second at scale 60.
        closes_aws = (clock.aws(put_wall) // 60 + 1) * 60
        closes_wall = clock.origin + (closes_aws - clock.origin) / clock.time_scale
        seen = wait_for(lambda: time.time() if state(backend, "aws-profile") == "ALARM" else None, timeout=10,
                        interval=0.01, describe="ALARM after the period closes")
        assert seen, "the alarm never fired"
        assert seen >= closes_wall - 0.02, "the open period must not count in the aws profile"
        assert seen - closes_wall < 2.0, "the alarm fired long after its period closed"
    finally:
        backend.stop()
