"""Probes of CloudWatch alarms and the metric filters that feed them."""

from __future__ import annotations

from typing import Any

from harness.probes import Probe

__all__ = ["alarm_in_state", "not_in_alarm", "alarm_armed", "alarm_notifies", "metric_filter_exists"]


def _alarm(aws: Any, name: str) -> dict | None:
    found = aws.client("cloudwatch").describe_alarms(AlarmNames=[name]).get("MetricAlarms", [])
    return found[0] if found else None


def alarm_in_state(name: str, state: str = "ALARM") -> Probe:
    """The alarm is in the given state."""

    def check(aws: Any) -> tuple[bool, str]:
        alarm = _alarm(aws, name)
        if alarm is None:
            return False, f"alarm {name} does not exist"
        return alarm["StateValue"] == state, f"alarm {name} is {alarm['StateValue']}: {alarm.get('StateReason', '')}"

    return Probe(f"alarm {name} is {state}", check, ("cloudwatch:DescribeAlarms",))


def not_in_alarm(name: str) -> Probe:
    """The alarm exists and is not in ALARM, so a new breach shows as a transition."""

    def check(aws: Any) -> tuple[bool, str]:
        alarm = _alarm(aws, name)
        if alarm is None:
            return False, f"alarm {name} does not exist"
        return alarm["StateValue"] != "ALARM", f"alarm {name} is {alarm['StateValue']}"

    return Probe(f"alarm {name} exists and is not in ALARM", check, ("cloudwatch:DescribeAlarms",))


def alarm_armed(name: str, threshold: float | None = None) -> Probe:
    """The alarm exists, its actions are enabled and point somewhere, and (if given) its threshold is as desired."""

    def check(aws: Any) -> tuple[bool, str]:
        alarm = _alarm(aws, name)
        if alarm is None:
            return False, f"alarm {name} does not exist"
        if not alarm.get("ActionsEnabled"):
            return False, f"alarm {name} has its actions disabled"
        if not alarm.get("AlarmActions"):
            return False, f"alarm {name} has no alarm actions"
        if threshold is not None and alarm.get("Threshold") != threshold:
            return False, f"alarm {name} threshold is {alarm.get('Threshold')}, not {threshold}"
        return True, f"alarm {name} armed: actions {alarm['AlarmActions']}, threshold {alarm.get('Threshold')}"

    return Probe(f"alarm {name} is armed", check, ("cloudwatch:DescribeAlarms",))


def alarm_notifies(name: str, topic: str, *, present: bool = True) -> Probe:
    """The alarm's ALARM actions include `topic` (or, with present=False, do not)."""

    def check(aws: Any) -> tuple[bool, str]:
        alarm = _alarm(aws, name)
        if alarm is None:
            return False, f"alarm {name} does not exist"
        actions = alarm.get("AlarmActions", [])
        return (topic in actions) == present, f"alarm {name} notifies {actions}"

    verb = "notifies" if present else "does not notify"
    return Probe(f"alarm {name} {verb} {topic}", check, ("cloudwatch:DescribeAlarms",))


def metric_filter_exists(log_group: str, name: str, *, not_pattern: str | None = None) -> Probe:
    """The metric filter exists on the log group (and, if given, its pattern is not `not_pattern`)."""

    def check(aws: Any) -> tuple[bool, str]:
        found = aws.client("logs").describe_metric_filters(logGroupName=log_group, filterNamePrefix=name)
        same = [f for f in found.get("metricFilters", []) if f["filterName"] == name]
        if not same:
            return False, f"metric filter {name} is missing on {log_group}"
        if not_pattern is not None and same[0].get("filterPattern") == not_pattern:
            return False, f"metric filter {name} on {log_group} has the pattern {not_pattern}"
        return True, f"metric filter {name} exists on {log_group}"

    return Probe(f"metric filter {name} exists", check, ("logs:DescribeMetricFilters",))
