"""Faults on the alarms themselves: delete one, mute its actions, raise its threshold, delete its metric filter."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from harness.faults import Fault
from harness.poll import interval_for, wait_for
from harness.probes import Probe
from harness.probes import cloudwatch as probes

__all__ = ["delete_alarm", "disable_alarm_actions", "raise_alarm_threshold", "delete_metric_filter",
           "blind_metric_filter", "redirect_alarm_actions", "fail_alarm_action"]

NEVER_MATCHES = '{ $.eventName = "GamedayNeverMatches" }'  # a valid pattern no CloudTrail record satisfies

# PutMetricAlarm takes these keys from a DescribeAlarms entry as they are.
_ALARM_KEYS = ("AlarmName", "AlarmDescription", "ActionsEnabled", "OKActions", "AlarmActions",
               "InsufficientDataActions", "MetricName", "Namespace", "Statistic", "ExtendedStatistic", "Dimensions",
               "Period", "Unit", "EvaluationPeriods", "DatapointsToAlarm", "Threshold", "ComparisonOperator",
               "TreatMissingData", "EvaluateLowSampleCountPercentile")


def alarm_snapshot(aws: Any, name: str) -> dict:
    found = aws.client("cloudwatch").describe_alarms(AlarmNames=[name])["MetricAlarms"]
    if not found:
        raise LookupError(f"alarm {name} does not exist: nothing to break")
    return {k: found[0][k] for k in _ALARM_KEYS if found[0].get(k) not in (None, "")}


def restore_alarm(aws: Any, snapshot: dict) -> None:
    cw = aws.client("cloudwatch")
    cw.put_metric_alarm(**snapshot)
    if snapshot.get("ActionsEnabled", True):
        cw.enable_alarm_actions(AlarmNames=[snapshot["AlarmName"]])


@dataclass(frozen=True)
class AlarmFault(Fault):
    alarm: str
    threshold: float = 1.0

    def steady(self) -> Probe:
        return probes.alarm_armed(self.alarm, self.threshold)

    def snapshot(self, aws: Any) -> dict | None:
        return alarm_snapshot(aws, self.alarm)

    def revert(self, aws: Any, snapshot: dict | None) -> None:
        assert snapshot is not None
        ok, _ = probes.alarm_armed(self.alarm, snapshot.get("Threshold"))(aws)
        if not ok:
            restore_alarm(aws, snapshot)


@dataclass(frozen=True)
class DeleteAlarm(AlarmFault):
    """DeleteAlarms on a monitoring alarm."""

    name = "cloudwatch.delete_alarm"
    iam_actions = ("cloudwatch:DescribeAlarms", "cloudwatch:DeleteAlarms", "cloudwatch:PutMetricAlarm",
                   "cloudwatch:EnableAlarmActions")

    def describe(self) -> str:
        return f"DeleteAlarms on {self.alarm}"

    def apply(self, aws: Any, snapshot: dict | None) -> None:
        aws.client("cloudwatch").delete_alarms(AlarmNames=[self.alarm])


@dataclass(frozen=True)
class DisableAlarmActions(AlarmFault):
    """DisableAlarmActions on a monitoring alarm: it still changes state, nobody is told."""

    name = "cloudwatch.disable_alarm_actions"
    iam_actions = ("cloudwatch:DescribeAlarms", "cloudwatch:DisableAlarmActions", "cloudwatch:EnableAlarmActions",
                   "cloudwatch:PutMetricAlarm")

    def describe(self) -> str:
        return f"DisableAlarmActions on {self.alarm}"

    def apply(self, aws: Any, snapshot: dict | None) -> None:
        aws.client("cloudwatch").disable_alarm_actions(AlarmNames=[self.alarm])


@dataclass(frozen=True)
class RaiseAlarmThreshold(AlarmFault):
    """PutMetricAlarm raising the threshold so high the alarm can never fire."""

    raised_to: float = 1e9
    name = "cloudwatch.raise_alarm_threshold"
    iam_actions = ("cloudwatch:DescribeAlarms", "cloudwatch:PutMetricAlarm", "cloudwatch:EnableAlarmActions")

    def describe(self) -> str:
        return f"PutMetricAlarm raising the threshold of {self.alarm} to {self.raised_to:g}"

    def apply(self, aws: Any, snapshot: dict | None) -> None:
        assert snapshot is not None
        aws.client("cloudwatch").put_metric_alarm(**{**snapshot, "Threshold": self.raised_to})


@dataclass(frozen=True)
class DeleteMetricFilter(Fault):
    """DeleteMetricFilter on the filter that feeds a monitoring alarm."""

    log_group: str
    filter: str
    name = "cloudwatch.delete_metric_filter"
    iam_actions = ("logs:DescribeMetricFilters", "logs:DeleteMetricFilter", "logs:PutMetricFilter")

    def describe(self) -> str:
        return f"DeleteMetricFilter {self.filter} on {self.log_group}"

    def steady(self) -> Probe:
        return probes.metric_filter_exists(self.log_group, self.filter)

    def snapshot(self, aws: Any) -> dict | None:
        found = aws.client("logs").describe_metric_filters(logGroupName=self.log_group, filterNamePrefix=self.filter)
        match = [f for f in found["metricFilters"] if f["filterName"] == self.filter]
        if not match:
            raise LookupError(f"metric filter {self.filter} does not exist: nothing to break")
        return {k: match[0][k] for k in ("filterName", "filterPattern", "logGroupName", "metricTransformations")}

    def apply(self, aws: Any, snapshot: dict | None) -> None:
        aws.client("logs").delete_metric_filter(logGroupName=self.log_group, filterName=self.filter)

    def revert(self, aws: Any, snapshot: dict | None) -> None:
        assert snapshot is not None
        if not probes.metric_filter_exists(self.log_group, self.filter)(aws)[0]:
            aws.client("logs").put_metric_filter(**snapshot)


@dataclass(frozen=True)
class BlindMetricFilter(DeleteMetricFilter):
    """PutMetricFilter keeping the filter's name and metric but with a pattern no tampering event matches."""

    name = "cloudwatch.blind_metric_filter"
    iam_actions = ("logs:DescribeMetricFilters", "logs:PutMetricFilter")

    def describe(self) -> str:
        return f"PutMetricFilter {self.filter} with a pattern that matches nothing"

    def steady(self) -> Probe:
        return probes.metric_filter_exists(self.log_group, self.filter, not_pattern=NEVER_MATCHES)

    def apply(self, aws: Any, snapshot: dict | None) -> None:
        assert snapshot is not None
        aws.client("logs").put_metric_filter(**{**snapshot, "filterPattern": NEVER_MATCHES})

    def revert(self, aws: Any, snapshot: dict | None) -> None:
        assert snapshot is not None
        if not self.steady()(aws)[0]:
            aws.client("logs").put_metric_filter(**snapshot)


@dataclass(frozen=True)
class RedirectAlarmActions(AlarmFault):
    """PutMetricAlarm sending the alarm's notifications to a topic that does not exist."""

    to: str = ""
    name = "cloudwatch.redirect_alarm_actions"
    iam_actions = ("cloudwatch:DescribeAlarms", "cloudwatch:PutMetricAlarm", "cloudwatch:EnableAlarmActions")

    def describe(self) -> str:
        return f"PutMetricAlarm pointing the actions of {self.alarm} at {self.to}"

    def steady(self) -> Probe:
        return probes.alarm_notifies(self.alarm, self.to, present=False)

    def apply(self, aws: Any, snapshot: dict | None) -> None:
        assert snapshot is not None
        aws.client("cloudwatch").put_metric_alarm(**{**snapshot, "AlarmActions": [self.to]})

    def revert(self, aws: Any, snapshot: dict | None) -> None:
        assert snapshot is not None
        if not self.steady()(aws)[0]:
            restore_alarm(aws, snapshot)


@dataclass(frozen=True)
class FailAlarmAction(AlarmFault):
    """An alarm action that failed and left its trace in the history: the key grant pulled, SetAlarmState, put back."""

    key: str = ""
    name = "cloudwatch.fail_alarm_action"
    iam_actions = ("cloudwatch:DescribeAlarms", "cloudwatch:SetAlarmState", "cloudwatch:DescribeAlarmHistory",
                   "cloudwatch:PutMetricAlarm", "kms:DescribeKey", "kms:GetKeyPolicy", "kms:PutKeyPolicy")
    settle_within = 1800.0  # the alarm must be quiet for SetAlarmState to be a transition

    def describe(self) -> str:
        return f"a failed action in the history of {self.alarm} (its topic's key briefly refused CloudWatch)"

    def precondition(self) -> Probe:
        return probes.not_in_alarm(self.alarm)

    def apply(self, aws: Any, snapshot: dict | None) -> None:
        from harness.faults.sns import RemoveKeyGrant

        grant = RemoveKeyGrant(self.key, self.alarm)
        key_state = grant.snapshot(aws)
        started = datetime.now(timezone.utc) - timedelta(seconds=1)
        grant.apply(aws, key_state)
        try:
            history = aws.client("cloudwatch")
            wait_for(lambda: _failed_action(history, self.alarm, started), timeout=ACTION_RESULT_WAIT_S,
                     interval=interval_for(ACTION_RESULT_WAIT_S),
                     describe=f"a failed action in the history of {self.alarm}", ramp=True)
        finally:
            grant.revert(aws, key_state)

    def revert(self, aws: Any, snapshot: dict | None) -> None:
        # Re-putting the alarm starts its history anew for a tracer that reads since the last configuration update.
        assert snapshot is not None
        restore_alarm(aws, snapshot)


ACTION_RESULT_WAIT_S = 30.0  # wall seconds for CloudWatch to record an action's result


def _failed_action(cw: Any, alarm: str, since: datetime) -> bool | None:
    items = cw.describe_alarm_history(AlarmName=alarm, HistoryItemType="Action", StartDate=since)["AlarmHistoryItems"]
    return any(i["HistorySummary"].startswith("Failed to execute action") for i in items) or None


delete_alarm = DeleteAlarm
disable_alarm_actions = DisableAlarmActions
raise_alarm_threshold = RaiseAlarmThreshold
delete_metric_filter = DeleteMetricFilter
blind_metric_filter = BlindMetricFilter
redirect_alarm_actions = RedirectAlarmActions
fail_alarm_action = FailAlarmAction
