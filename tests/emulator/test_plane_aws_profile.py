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
    backend = EmbeddedBackend(Settings(time_scale=600, latency_profile="aws"))
    backend.start()
    try:
        logs, cw = backend.client("logs"), backend.client("cloudwatch")
        logs.create_log_group(logGroupName="/aws-profile")
        logs.create_log_stream(logGroupName="/aws-profile", logStreamName="s")
        logs.put_metric_filter(logGroupName="/aws-profile", filterName="f", filterPattern=CIS_4_5,
                               metricTransformations=[{"metricName": "m", "metricNamespace": "ns", "metricValue": "1"}])
        cw.put_metric_alarm(AlarmName="aws-profile", MetricName="m", Namespace="ns", Statistic="Sum", Period=300,
                            EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanOrEqualToThreshold",
                            TreatMissingData="notBreaching")
        started = time.monotonic()
        logs.put_log_events(logGroupName="/aws-profile", logStreamName="s", logEvents=[
            {"timestamp": int(time.time() * 1000), "message": json.dumps({"eventName": "StopLogging"})}])
        backend.plane.drain()
        assert state(backend, "aws-profile") != "ALARM", "the open period must not count in the aws profile"
        assert wait_for(lambda: state(backend, "aws-profile") == "ALARM" or None, timeout=5, interval=0.02,
                        describe="ALARM after the period closes")
        # A 300 s period at scale 600 closes within 0.5 wall seconds (plus the minute alignment: 0.1 s).
        assert time.monotonic() - started < 2.0
    finally:
        backend.stop()
