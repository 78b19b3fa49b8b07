"""The canary: one tampering record written to the log group, watched hop by hop until it pages."""

from __future__ import annotations

import contextlib
import json
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from harness.errors import HarnessBroken
from harness.poll import interval_for, wait_for
from harness.stack.desired import StackOutputs
from harness.trace.facts import utc
from harness.trace.hops import FAILED_ACTION, permission_fix
from harness.trace.records import CANARY_STREAM, sample_record
from harness.trace.report import BROKEN, HOP_IDS, OK, SKIPPED, UNKNOWN, Canary, Hop, TraceReport

# A canary is sent only when everything it needs up to the alarm's action is healthy.
CANARY_NEEDS = HOP_IDS[:HOP_IDS.index("alarm.targets_topic") + 1]


def canary_deadline_aws(alarm: dict) -> float:
    """AWS seconds a canary may take: the alarm's evaluation range plus one period, plus a minute of delivery."""
    return float(alarm.get("Period", 300)) * (alarm.get("EvaluationPeriods", 1) + 1) + 60


def send_canary(aws: Any, stack: StackOutputs, report: TraceReport, *, timeout: float | None = None) -> Canary:
    """Write one tampering record to the log group and watch it become a metric, an alarm and a message in the sink."""
    blockers = [h for h in report.hops if h.id in CANARY_NEEDS and h.status != OK]
    if blockers:
        return Canary(SKIPPED if any(h.status == BROKEN for h in blockers) else UNKNOWN,
                      f"not sent: {blockers[0].id} is {blockers[0].status}; a canary cannot pass it")
    try:
        alarm = aws.client("cloudwatch").describe_alarms(AlarmNames=[report.alarm])["MetricAlarms"][0]
    except (ClientError, BotoCoreError, IndexError) as exc:
        return Canary(UNKNOWN, f"not sent: cannot read alarm {report.alarm}: {exc}")
    if alarm.get("StateValue") == "ALARM":
        return Canary(UNKNOWN, f"not sent: alarm already in ALARM since {alarm.get('StateUpdatedTimestamp')}: a canary "
                      "cannot show a transition; run it again once the alarm is back to OK")
    scale = float(getattr(aws, "time_scale", 1.0) or 1.0)
    deadline_aws = canary_deadline_aws(alarm)
    deadline = timeout if timeout is not None else deadline_aws / scale
    watch = _CanaryWatch(aws, stack, alarm, scale)
    try:
        watch.write(report.control)
        if watch.written:
            wait_for(watch.observe, timeout=deadline, interval=interval_for(deadline), describe="canary", ramp=True)
    except (ClientError, BotoCoreError, HarnessBroken) as exc:
        watch.error = exc
    finally:
        watch.release()
    return watch.result(deadline, deadline * scale)


class _CanaryWatch:
    """The canary's observations, relative to the moment its record was written."""

    STEPS = (
        ("canary.written", "the record is written to the log group"),
        ("canary.metric", "the metric filter emits a datapoint"),
        ("canary.alarm", "the alarm goes to ALARM"),
        ("canary.published", "the topic publishes the notification"),
        ("canary.received", "the sink receives it"),
    )

    def __init__(self, aws: Any, stack: StackOutputs, alarm: dict, scale: float):
        self.aws, self.stack, self.alarm, self.scale = aws, stack, alarm, scale
        self.seen: dict[str, tuple[float, str]] = {}  # step -> (wall seconds after the write, evidence)
        self.held: list[str] = []  # receipt handles of other messages, hidden while the canary looks
        self.error: BaseException | None = None
        self.failed_action: str | None = None  # the alarm history's words when publishing to the topic failed
        self.t0 = 0.0
        self.baseline = 0.0

    @property
    def written(self) -> bool:
        return "canary.written" in self.seen

    def write(self, control: str) -> None:
        logs = self.aws.client("logs")
        with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
            logs.create_log_stream(logGroupName=self.stack.log_group_name, logStreamName=CANARY_STREAM)
        self.baseline = self._datapoints()
        record = sample_record(control, account_id=self.aws.account_id, region=self.aws.region, canary=True)
        self.t0 = time.time()
        logs.put_log_events(logGroupName=self.stack.log_group_name, logStreamName=CANARY_STREAM,
                            logEvents=[{"timestamp": int(self.t0 * 1000), "message": json.dumps(record)}])
        self._saw("canary.written", time.time(), f"PutLogEvents to {self.stack.log_group_name}/{CANARY_STREAM} "
                  f"(eventID {record['eventID']})")

    def observe(self) -> bool:
        """One look at every step not seen yet; True once the sink has the notification."""
        if "canary.metric" not in self.seen and self._datapoints() > self.baseline:
            self._saw("canary.metric", time.time(), f"{self.alarm['Namespace']}/{self.alarm['MetricName']} has a new "
                      "datapoint (GetMetricStatistics)")
        if "canary.alarm" not in self.seen or "canary.published" not in self.seen:
            self._look_at_history()
        self._look_at_sink()
        return "canary.received" in self.seen or self.failed_action is not None

    def _saw(self, step: str, at: float, evidence: str) -> None:
        self.seen[step] = (max(at - self.t0, 0.0), evidence)

    def _datapoints(self) -> float:
        start = datetime.fromtimestamp(self.t0 or time.time(), timezone.utc).replace(second=0, microsecond=0)
        answer = self.aws.client("cloudwatch").get_metric_statistics(
            Namespace=self.alarm["Namespace"], MetricName=self.alarm["MetricName"],
            Dimensions=self.alarm.get("Dimensions", []), StartTime=start - timedelta(minutes=1),
            EndTime=start + timedelta(hours=1), Period=60, Statistics=["SampleCount"])
        return sum(p.get("SampleCount", 0.0) for p in answer.get("Datapoints", []))

    def _look_at_history(self) -> None:
        """The alarm's own record of going to ALARM and of publishing to the topic (its Action items)."""
        items = self.aws.client("cloudwatch").describe_alarm_history(
            AlarmName=self.alarm["AlarmName"], StartDate=datetime.fromtimestamp(self.t0, timezone.utc),
            ScanBy="TimestampAscending", MaxRecords=100).get("AlarmHistoryItems", [])
        for item in items:
            summary, at = item.get("HistorySummary", ""), utc(item["Timestamp"]).timestamp()
            if at < self.t0:  # StartDate went out in whole seconds
                continue
            if item.get("HistoryItemType") == "StateUpdate" and summary.endswith("to ALARM") \
                    and "canary.alarm" not in self.seen:
                self._saw("canary.alarm", at, f"\"{summary}\" at {item['Timestamp']} (DescribeAlarmHistory)")
            elif item.get("HistoryItemType") == "Action" and self.stack.topic_arn in summary \
                    and "canary.published" not in self.seen:
                if summary.startswith(FAILED_ACTION):
                    self.failed_action = f"\"{summary}\" at {item['Timestamp']}"
                else:
                    self._saw("canary.published", at, f"\"{summary}\" at {item['Timestamp']} (DescribeAlarmHistory)")

    def _look_at_sink(self) -> None:
        sqs = self.aws.client("sqs")
        answer = sqs.receive_message(QueueUrl=self.stack.sink_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                     AttributeNames=["SentTimestamp"])
        for message in answer.get("Messages", []):
            envelope, notification = _notification_of(message["Body"])
            if not self._is_ours(notification):
                self.held.append(message["ReceiptHandle"])
                continue
            sqs.delete_message(QueueUrl=self.stack.sink_queue_url, ReceiptHandle=message["ReceiptHandle"])
            if envelope.get("Timestamp"):  # SNS's own time for the message dates the publish best
                self._saw("canary.published", utc(envelope["Timestamp"]).timestamp(),
                          f"SNS message {envelope.get('MessageId')} published at {envelope['Timestamp']}")
            sent = int(message["Attributes"]["SentTimestamp"]) / 1000
            self._saw("canary.received", sent, f"in {self.stack.sink_queue_url} at SentTimestamp "
                      f"{datetime.fromtimestamp(sent, timezone.utc).isoformat(timespec='milliseconds')}, read "
                      f"{time.time() - self.t0:.3f} s after the write")
            return

    def _is_ours(self, notification: Any) -> bool:
        if not isinstance(notification, dict) or notification.get("AlarmName") != self.alarm["AlarmName"] \
                or notification.get("NewStateValue") != "ALARM":
            return False
        changed = utc(notification.get("StateChangeTime"))
        return changed is not None and changed.timestamp() >= self.t0 - 1.0  # 1 s of clock skew with AWS

    def release(self) -> None:
        """Make the other messages the canary looked past visible again, for whoever reads the sink."""
        sqs = self.aws.client("sqs")
        for handle in self.held:
            with contextlib.suppress(ClientError):
                sqs.change_message_visibility(QueueUrl=self.stack.sink_queue_url, ReceiptHandle=handle,
                                              VisibilityTimeout=0)
        self.held.clear()

    def result(self, deadline_wall: float, deadline_aws: float) -> Canary:
        metric, moved = self.seen.get("canary.metric"), self.seen.get("canary.alarm")
        if metric and moved and metric[0] > moved[0]:
            # The metric's time is when a poll saw it; the alarm it moved dates it more closely.
            self.seen["canary.metric"] = (moved[0], f"{metric[1]}, emitted by the time the alarm moved")
        hops = []
        last_seen = max((i for i, (step, _) in enumerate(self.STEPS) if step in self.seen), default=-1)
        first_missing = True
        for i, (step, title) in enumerate(self.STEPS):
            if step in self.seen:
                after, evidence = self.seen[step]
                hops.append(Hop(step, title, OK, evidence, wall_ms=round(after * 1000, 1),
                                aws_s=round(after * self.scale, 3)))
            elif i < last_seen:
                hops.append(Hop(step, title, UNKNOWN, "not observed, yet a later hop happened"))
            elif self.error is not None and first_missing:
                hops.append(Hop(step, title, UNKNOWN, f"{type(self.error).__name__}: {self.error}",
                                permission_fix(self.error)))
                first_missing = False
            elif first_missing:
                evidence = f"never happened within {deadline_wall:g} s wall ({deadline_aws:g} s AWS)"
                if step == "canary.published" and self.failed_action:
                    evidence = f"the alarm could not publish: {self.failed_action}"
                hops.append(Hop(step, title, BROKEN, evidence, _CANARY_FIXES[step]))
                first_missing = False
            else:
                hops.append(Hop(step, title, SKIPPED, "not reached"))
        statuses = {h.status for h in hops}
        status = OK if statuses == {OK} else BROKEN if BROKEN in statuses else UNKNOWN
        arrived = self.seen.get("canary.received")
        evidence = (f"arrived in {arrived[0] * 1000:.0f} ms wall ({arrived[0] * self.scale:.1f} s AWS)" if arrived
                    else f"did not arrive within {deadline_wall:g} s wall ({deadline_aws:g} s AWS)")
        return Canary(status, evidence, hops, round(deadline_wall, 3), round(deadline_aws, 3))


_CANARY_FIXES = {
    "canary.written": "check the log group exists and this caller may run logs:PutLogEvents",
    "canary.metric": "the filter did not turn the record into a metric: compare its pattern with the record "
                     "(aws logs test-metric-filter)",
    "canary.alarm": "the metric did not move the alarm: check its period, statistic and threshold "
                    "(aws cloudwatch describe-alarms)",
    "canary.published": "the alarm fired but nothing was published: check the alarm history's Action items, the "
                        "topic policy and the topic key",
    "canary.received": "the topic published but the sink got nothing: check the sink's subscription, its filter "
                       "policy and the queue policy",
}


def _notification_of(body: str) -> tuple[dict, Any]:
    """(SNS envelope, the alarm message) of an SQS body; raw delivery has no envelope."""
    try:
        outer = json.loads(body)
    except ValueError:
        return {}, None
    if isinstance(outer, dict) and outer.get("Type") == "Notification":
        try:
            return outer, json.loads(outer.get("Message", ""))
        except ValueError:
            return outer, None
    return {}, outer
