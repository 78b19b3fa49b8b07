"""CloudWatch metric-alarm evaluation as AWS documents it, and the payloads a state change produces."""

from __future__ import annotations

import json
import math
import operator
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Callable, Iterable, Sequence

__all__ = [
    "AlarmSpec", "Evaluation", "aggregate", "bucket", "lookback", "evaluate",
    "sns_notification", "sns_subject", "state_change_event", "history_item", "action_history_item",
    "region_long_name", "OK", "ALARM", "INSUFFICIENT_DATA", "STATES", "INITIAL_STATE", "INITIAL_REASON",
]

OK, ALARM, INSUFFICIENT_DATA = "OK", "ALARM", "INSUFFICIENT_DATA"
STATES = (OK, ALARM, INSUFFICIENT_DATA)
# Every new alarm starts here, with this reason (the previousState of an alarm's first transition).
INITIAL_STATE = INSUFFICIENT_DATA
INITIAL_REASON = "Unchecked: Initial alarm creation"

_COMPARISONS: dict[str, tuple[Callable[[float, float], bool], str]] = {
    "GreaterThanOrEqualToThreshold": (operator.ge, "greater than or equal to"),
    "GreaterThanThreshold": (operator.gt, "greater than"),
    "LessThanThreshold": (operator.lt, "less than"),
    "LessThanOrEqualToThreshold": (operator.le, "less than or equal to"),
}
_ANOMALY_BAND = {"LessThanLowerOrGreaterThanUpperThreshold", "LessThanLowerThreshold", "GreaterThanUpperThreshold"}
_TREATMENTS = ("missing", "notBreaching", "breaching", "ignore")
_STATISTICS = ("SampleCount", "Average", "Sum", "Minimum", "Maximum")
_PERCENTILE = re.compile(r"^[pP](\d{1,3}(?:\.\d+)?)$")
# Trimmed/winsorized means, percentile rank, trimmed count/sum and IQM: valid in CloudWatch, not emulated.
_OTHER_EXTENDED = re.compile(r"^(tm|wm|pr|tc|ts|iqm)", re.IGNORECASE)
# The docs' "premature transition": ALARM when data is treated as missing, the current state under ignore.
_PREMATURE = "PREMATURE"
_FILL_LABELS = {"breaching": "Breaching", "notBreaching": "NonBreaching"}
# The Trigger of an SNS alarm message spells statistics as Java enum constants.
_SNS_STATISTICS = {"SampleCount": "SAMPLE_COUNT", "Average": "AVERAGE", "Sum": "SUM",
                   "Minimum": "MINIMUM", "Maximum": "MAXIMUM"}
_SNS_SUBJECT_LIMIT = 99  # SNS rejects a Subject of 100 characters or more

# Region names as CloudWatch writes them in alarm messages ("EU (...)", not the console's "Europe (...)").
_REGION_NAMES = {
    "us-east-1": "US East (N. Virginia)", "us-east-2": "US East (Ohio)",
    "us-west-1": "US West (N. California)", "us-west-2": "US West (Oregon)",
    "af-south-1": "Africa (Cape Town)", "ap-east-1": "Asia Pacific (Hong Kong)",
    "ap-south-1": "Asia Pacific (Mumbai)", "ap-south-2": "Asia Pacific (Hyderabad)",
    "ap-northeast-1": "Asia Pacific (Tokyo)", "ap-northeast-2": "Asia Pacific (Seoul)",
    "ap-northeast-3": "Asia Pacific (Osaka)", "ap-southeast-1": "Asia Pacific (Singapore)",
    "ap-southeast-2": "Asia Pacific (Sydney)", "ap-southeast-3": "Asia Pacific (Jakarta)",
    "ap-southeast-4": "Asia Pacific (Melbourne)", "ap-southeast-5": "Asia Pacific (Malaysia)",
    "ap-southeast-7": "Asia Pacific (Thailand)", "ca-central-1": "Canada (Central)",
    "ca-west-1": "Canada West (Calgary)", "eu-central-1": "EU (Frankfurt)", "eu-central-2": "EU (Zurich)",
    "eu-west-1": "EU (Ireland)", "eu-west-2": "EU (London)", "eu-west-3": "EU (Paris)",
    "eu-north-1": "EU (Stockholm)", "eu-south-1": "EU (Milan)", "eu-south-2": "EU (Spain)",
    "il-central-1": "Israel (Tel Aviv)", "me-south-1": "Middle East (Bahrain)",
    "me-central-1": "Middle East (UAE)", "mx-central-1": "Mexico (Central)",
    "sa-east-1": "South America (Sao Paulo)", "us-gov-east-1": "AWS GovCloud (US-East)",
    "us-gov-west-1": "AWS GovCloud (US-West)", "cn-north-1": "China (Beijing)",
    "cn-northwest-1": "China (Ningxia)",
}


@dataclass(frozen=True)
class AlarmSpec:
    """A metric alarm's configuration, as PutMetricAlarm stores it (single metric, static threshold)."""

    name: str
    arn: str
    namespace: str
    metric_name: str
    dimensions: tuple[tuple[str, str], ...]
    period: int
    evaluation_periods: int
    datapoints_to_alarm: int | None
    threshold: float
    comparison: str
    statistic: str | None
    extended_statistic: str | None
    treat_missing_data: str = "missing"
    unit: str | None = None
    evaluate_low_sample_count_percentile: str | None = None


@dataclass(frozen=True)
class Evaluation:
    """The outcome of one evaluation: the state, AWS's StateReason and StateReasonData, and whether it changed."""

    state: str
    reason: str
    reason_data: dict
    changed: bool


@dataclass(frozen=True)
class _Point:
    start: float
    samples: int
    value: float | None  # the period's statistic; None when the period has no data
    breaches: bool = False


def aggregate(values: Sequence[float], statistic: str) -> float:
    """One period's statistic over its raw values (Sum, Average, Minimum, Maximum, SampleCount, pNN[.N])."""
    if not values:
        raise ValueError("no values: a period without data is a missing datapoint, not a statistic")
    if statistic == "SampleCount":
        return float(len(values))
    if statistic == "Sum":
        return float(math.fsum(values))
    if statistic == "Average":
        return float(math.fsum(values) / len(values))
    if statistic == "Minimum":
        return float(min(values))
    if statistic == "Maximum":
        return float(max(values))
    rank = Decimal(str(_percentile(statistic)))
    ordered = sorted(values)
    # Nearest rank (a real sample, no interpolation): CloudWatch defines pN as the value N% of the data lies below.
    return float(ordered[max(math.ceil(rank * len(ordered) / 100), 1) - 1])


def bucket(datapoints: Iterable[tuple[float, float]], *, period: int, now: float, count: int,
           align: int | None = None) -> list[list[float]]:
    """The last `count` complete periods before `now`, oldest first, each the raw values published in it.

    Periods end on a multiple of `align` (default: the period). AWS alarms end theirs on the
    last whole minute (align=60): a 300 s alarm queried at 17:04:40 reports startDate 16:59:00.
    """
    if period <= 0 or count < 0:
        raise ValueError(f"period must be positive and count non-negative (period={period}, count={count})")
    end = _window_end(now, period, align)
    start = end - count * period
    periods: list[list[float]] = [[] for _ in range(count)]
    for at, value in datapoints:
        if start <= at < end:
            periods[min(int((at - start) // period), count - 1)].append(float(value))
    return periods


def lookback(spec: AlarmSpec) -> int:
    """How many periods evaluate needs: the evaluation range (EvaluationPeriods plus the periods it looks back)."""
    # AWS documents only that a 3-period alarm retrieves 5; two extra periods is the smallest range that fits.
    return spec.evaluation_periods + 2


def evaluate(spec: AlarmSpec, periods: list[list[float]], previous_state: str, *,
             now: float | None = None, align: int | None = None) -> Evaluation:
    """Evaluate an alarm over its evaluation range (periods oldest first), as CloudWatch documents it.

    - With at least EvaluationPeriods real datapoints in the range, the most recent of
      them decide, whatever TreatMissingData says.
    - Otherwise `breaching`/`notBreaching` fill the most recent missing periods, as few
      as needed to make EvaluationPeriods datapoints.
    - `missing` goes to INSUFFICIENT_DATA when the range has no data; with some data it
      goes to ALARM on DatapointsToAlarm breaching datapoints, to OK if a real datapoint
      is not breaching, to ALARM when the oldest breaching datapoint is at least
      DatapointsToAlarm periods old with only breaching or missing ones after it (AWS's
      "premature transition" rule), else to INSUFFICIENT_DATA. `ignore` decides the same
      way but keeps the current state where `missing` would not have enough data.
    `now` (epoch seconds, the same value given to bucket) dates the datapoints in the reason.
    """
    compare, words = _comparison(spec)
    _statistic(spec)
    if previous_state not in STATES:
        raise ValueError(f"unknown alarm state {previous_state!r}; expected one of {STATES}")
    n, m = spec.evaluation_periods, _datapoints_to_alarm(spec)
    treatment = _treatment(spec)
    window = list(periods)[-lookback(spec):]
    window = [[] for _ in range(n - len(window))] + window
    end = _window_end(now, spec.period, align) if now is not None else float(len(window) * spec.period)
    stat = spec.statistic or spec.extended_statistic
    points = []
    for i, values in enumerate(window):
        value = aggregate(values, stat) if values else None
        points.append(_Point(end - (len(window) - i) * spec.period, len(values), value,
                             value is not None and compare(value, spec.threshold)))
    real = [p for p in points if p.value is not None]
    unknown = [p for p in points if p.value is None]

    fills = 0
    if len(real) >= n:
        evaluated = real[-n:]
        verdict = ALARM if sum(p.breaches for p in evaluated) >= m else OK
    elif treatment in _FILL_LABELS:
        fills = n - len(real)
        evaluated = sorted(real + unknown[-fills:], key=lambda p: p.start)
        counted = sum(p.breaches for p in real) + (fills if treatment == "breaching" else 0)
        verdict = ALARM if counted >= m else OK
    else:
        evaluated = sorted(real + unknown[-(n - len(real)):], key=lambda p: p.start)
        verdict = _without_fill(real, m, points)
        if verdict == _PREMATURE:
            verdict = ALARM if treatment == "missing" else None

    if verdict is None:
        state = INSUFFICIENT_DATA if treatment == "missing" else previous_state
    else:
        state = previous_state if _low_sample(spec, evaluated) else verdict
    reason = _reason(spec, verdict, evaluated, fills, treatment, words)
    return Evaluation(state, reason, _reason_data(spec, evaluated, now if now is not None else end),
                      state != previous_state)


def region_long_name(region: str) -> str:
    """The region's name as CloudWatch writes it in alarm notifications ("US East (N. Virginia)")."""
    return _REGION_NAMES.get(region, region)


def sns_subject(spec: AlarmSpec, *, state: str, region: str) -> str:
    """The Subject CloudWatch gives the SNS message, e.g. 'ALARM: "name" in US East (N. Virginia)'."""
    return f'{state}: "{spec.name}" in {region_long_name(region)}'[:_SNS_SUBJECT_LIMIT]


def sns_notification(spec: AlarmSpec, *, old_state: str, evaluation: Evaluation, account_id: str, region: str,
                     actions: dict[str, list[str]], description: str | None, updated_at: str,
                     state_change_time: str) -> dict:
    """The JSON body CloudWatch publishes to an SNS topic for a state change (`actions` keyed by state)."""
    trigger: dict = {"MetricName": spec.metric_name, "Namespace": spec.namespace}
    if spec.extended_statistic:
        trigger.update({"StatisticType": "ExtendedStatistic", "ExtendedStatistic": spec.extended_statistic})
    else:
        trigger.update({"StatisticType": "Statistic", "Statistic": _SNS_STATISTICS[spec.statistic]})
    trigger.update({
        "Unit": spec.unit,
        "Dimensions": [{"value": value, "name": name} for name, value in spec.dimensions],
        "Period": spec.period,
        "EvaluationPeriods": spec.evaluation_periods,
    })
    # Real messages carry DatapointsToAlarm only for alarms created with it.
    if spec.datapoints_to_alarm is not None:
        trigger["DatapointsToAlarm"] = spec.datapoints_to_alarm
    trigger.update({
        "ComparisonOperator": spec.comparison,
        "Threshold": float(spec.threshold),
        "TreatMissingData": spec.treat_missing_data,
        "EvaluateLowSampleCountPercentile": spec.evaluate_low_sample_count_percentile or "",
    })
    return {
        "AlarmName": spec.name,
        "AlarmDescription": description,
        "AWSAccountId": account_id,
        "AlarmConfigurationUpdatedTimestamp": updated_at,
        "NewStateValue": evaluation.state,
        "NewStateReason": evaluation.reason,
        "StateChangeTime": state_change_time,
        "Region": region_long_name(region),
        "AlarmArn": spec.arn,
        "OldStateValue": old_state,
        "OKActions": list(actions.get(OK, [])),
        "AlarmActions": list(actions.get(ALARM, [])),
        "InsufficientDataActions": list(actions.get(INSUFFICIENT_DATA, [])),
        "Trigger": trigger,
    }


def state_change_event(spec: AlarmSpec, *, old_state: str, old_evaluation: Evaluation | None,
                       evaluation: Evaluation, account_id: str, region: str, time: str,
                       previous_time: str | None = None, description: str | None = None,
                       event_id: str | None = None) -> dict:
    """The EventBridge "CloudWatch Alarm State Change" event; `time` is the state change time.

    `old_evaluation` None means the alarm leaves its initial state ("Unchecked: Initial alarm creation").
    """
    at = _parse_time(time)
    if previous_time is None:
        previous_time = (old_evaluation.reason_data.get("queryDate") if old_evaluation else None) or time
    previous = {"value": old_state,
                "reason": old_evaluation.reason if old_evaluation else INITIAL_REASON}
    if old_evaluation and old_evaluation.reason_data:
        previous["reasonData"] = _compact(old_evaluation.reason_data)
    previous["timestamp"] = _alarm_time(_parse_time(previous_time))
    metric_stat: dict = {
        "metric": {"namespace": spec.namespace, "name": spec.metric_name, "dimensions": dict(spec.dimensions)},
        "period": spec.period,
        "stat": spec.statistic or spec.extended_statistic,
    }
    if spec.unit:
        metric_stat["unit"] = spec.unit
    configuration: dict = {}
    if description is not None:
        configuration["description"] = description
    # The metric's id is a generated UUID in AWS; derived from the ARN here so it is stable per alarm.
    configuration["metrics"] = [{"id": str(uuid.uuid5(uuid.NAMESPACE_URL, spec.arn)),
                                 "metricStat": metric_stat, "returnData": True}]
    return {
        "version": "0",
        "id": event_id or str(uuid.uuid4()),
        "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch",
        "account": account_id,
        "time": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [spec.arn],
        "detail": {
            "alarmName": spec.name,
            "state": {"value": evaluation.state, "reason": evaluation.reason,
                      "reasonData": _compact(evaluation.reason_data), "timestamp": _alarm_time(at)},
            "previousState": previous,
            "configuration": configuration,
        },
    }


def history_item(spec: AlarmSpec, *, old_state: str, evaluation: Evaluation, timestamp: str,
                 old_evaluation: Evaluation | None = None) -> dict:
    """A DescribeAlarmHistory StateUpdate item for a state change."""
    old = {"stateValue": old_state, "stateReason": old_evaluation.reason if old_evaluation else INITIAL_REASON}
    if old_evaluation and old_evaluation.reason_data:
        old["stateReasonData"] = old_evaluation.reason_data
    data = {
        "version": "1.0",
        "oldState": old,
        "newState": {"stateValue": evaluation.state, "stateReason": evaluation.reason,
                     "stateReasonData": evaluation.reason_data},
    }
    return {
        "AlarmName": spec.name,
        "AlarmType": "MetricAlarm",
        "Timestamp": timestamp,
        "HistoryItemType": "StateUpdate",
        "HistorySummary": f"Alarm updated from {old_state} to {evaluation.state}",
        "HistoryData": _compact(data),
    }


def action_history_item(spec: AlarmSpec, *, action_arn: str, ok: bool, error: str | None, timestamp: str,
                        state_change_time: str | None = None, published_message: str | None = None) -> dict:
    """A DescribeAlarmHistory Action item: one alarm action run, succeeded or failed with the error it got."""
    if ok:
        summary = f"Successfully executed action {action_arn}"
    else:
        summary = f'Failed to execute action {action_arn}. Received error: "{error}"'
    changed_at = _parse_time(state_change_time or timestamp)
    data: dict = {
        "error": None if ok else error,
        "actionState": "Succeeded" if ok else "Failed",
        "notificationResource": action_arn,
        "stateUpdateTimestamp": int(round(changed_at.timestamp() * 1000)),
    }
    if published_message is not None:
        data["publishedMessage"] = json.dumps({"default": published_message}, separators=(",", ":"))
    return {
        "AlarmName": spec.name,
        "AlarmType": "MetricAlarm",
        "Timestamp": timestamp,
        "HistoryItemType": "Action",
        "HistorySummary": summary,
        "HistoryData": _compact(data),
    }


def _comparison(spec: AlarmSpec) -> tuple[Callable[[float, float], bool], str]:
    if spec.comparison in _ANOMALY_BAND:
        raise NotImplementedError(f"{spec.comparison}: anomaly-detection bands are not emulated")
    if spec.comparison not in _COMPARISONS:
        raise ValueError(f"unknown ComparisonOperator {spec.comparison!r}")
    return _COMPARISONS[spec.comparison]


def _statistic(spec: AlarmSpec) -> None:
    if (spec.statistic is None) == (spec.extended_statistic is None):
        raise ValueError("an alarm has exactly one of Statistic and ExtendedStatistic")
    if spec.statistic is not None and spec.statistic not in _STATISTICS:
        raise ValueError(f"unknown Statistic {spec.statistic!r}; expected one of {_STATISTICS}")
    if spec.extended_statistic is not None:
        _percentile(spec.extended_statistic)


def _percentile(statistic: str) -> float:
    match = _PERCENTILE.match(statistic)
    if match and 0 <= float(match.group(1)) <= 100:
        return float(match.group(1))
    if _OTHER_EXTENDED.match(statistic):
        raise NotImplementedError(f"{statistic}: only percentile extended statistics are emulated")
    raise ValueError(f"unknown statistic {statistic!r}")


def _datapoints_to_alarm(spec: AlarmSpec) -> int:
    n, m = spec.evaluation_periods, spec.datapoints_to_alarm or spec.evaluation_periods
    if n < 1 or not 1 <= m <= n:
        raise ValueError(f"need 1 <= DatapointsToAlarm <= EvaluationPeriods (got {m} of {n})")
    return m


def _treatment(spec: AlarmSpec) -> str:
    if spec.treat_missing_data not in _TREATMENTS:
        raise ValueError(f"unknown TreatMissingData {spec.treat_missing_data!r}; expected one of {_TREATMENTS}")
    # PutMetricAlarm's reference: alarms on AWS/DynamoDB metrics always ignore missing data.
    return "ignore" if spec.namespace == "AWS/DynamoDB" else spec.treat_missing_data


def _without_fill(real: list[_Point], m: int, points: list[_Point]) -> str | None:
    """missing/ignore with fewer real datapoints than EvaluationPeriods: ALARM, OK, _PREMATURE, or None."""
    if not real:
        return None
    if sum(p.breaches for p in real) >= m:
        return ALARM
    if not all(p.breaches for p in real):
        return OK
    # Every real datapoint breaches here; age counts periods back from now (the newest period is 1).
    oldest_age = len(points) - points.index(real[0])
    return _PREMATURE if oldest_age >= m else None


def _low_sample(spec: AlarmSpec, evaluated: list[_Point]) -> bool:
    """EvaluateLowSampleCountPercentile=ignore: too few samples for the percentile leave the state as it is."""
    if spec.evaluate_low_sample_count_percentile != "ignore" or not spec.extended_statistic:
        return False
    fraction = _percentile(spec.extended_statistic) / 100
    # The documented bound: 10/(1-p) samples for p in [0.5, 1), 10/p below 0.5.
    if fraction >= 1 or fraction <= 0:
        return True
    needed = 10 / (1 - fraction) if fraction >= 0.5 else 10 / fraction
    return any(p.value is not None and p.samples < needed for p in evaluated)


def _reason(spec: AlarmSpec, verdict: str | None, evaluated: list[_Point], fills: int, treatment: str,
            words: str) -> str:
    """AWS's StateReason: "Threshold Crossed: ..." for a decision, "Insufficient Data: ..." without one."""
    n, m = spec.evaluation_periods, _datapoints_to_alarm(spec)
    real = [p for p in evaluated if p.value is not None]
    if verdict is None:
        unknown = n - len(real)
        return f"Insufficient Data: {unknown} {_plural(unknown, 'datapoint')} {_was(unknown)} unknown."
    label = _FILL_LABELS.get(treatment)
    if not real:
        return (f"Threshold Crossed: no datapoints were received for {fills} {_plural(fills, 'period')} "
                f"and {fills} missing {_plural(fills, 'datapoint')} {_was(fills)} treated as [{label}].")
    # The datapoints that justify the new state are listed, newest first.
    supporting = [p for p in reversed(real) if p.breaches == (verdict == ALARM)]
    listed = ", ".join(f"{_java(p.value)} ({_reason_time(p.start)})" for p in supporting)
    count = len(supporting)
    # Alarms created without DatapointsToAlarm get the short wording (no "out of the last", no minimum).
    counted = f"{count} {_plural(count, 'datapoint')}" if spec.datapoints_to_alarm is None \
        else f"{count} out of the last {n} datapoints"
    negation = "" if verdict == ALARM else "not "
    text = (f"{counted} [{listed}] {_was(count)} {negation}{words} the threshold ({_java(spec.threshold)})"
            if supporting else "")
    if fills:
        clause = f"{fills} missing {_plural(fills, 'datapoint')} {_was(fills)} treated as [{label}]"
        text = f"{text} and {clause}" if text else clause
    if spec.datapoints_to_alarm is not None:
        needed = m if verdict == ALARM else n - m + 1
        direction = "OK -> ALARM" if verdict == ALARM else "ALARM -> OK"
        text += f" (minimum {needed} {_plural(needed, 'datapoint')} for {direction} transition)"
    return f"Threshold Crossed: {text}."


def _reason_data(spec: AlarmSpec, evaluated: list[_Point], query: float) -> dict:
    real = [p for p in evaluated if p.value is not None]
    data: dict = {"version": "1.0", "queryDate": _alarm_time(_utc(query))}
    if real:
        data["startDate"] = _alarm_time(_utc(real[0].start))
    data["statistic"] = spec.statistic or spec.extended_statistic
    if spec.unit:
        data["unit"] = spec.unit
    data["period"] = spec.period
    data["recentDatapoints"] = [p.value for p in real]
    data["threshold"] = float(spec.threshold)
    data["evaluatedDatapoints"] = [
        {"timestamp": _alarm_time(_utc(p.start)), "sampleCount": float(p.samples), "value": p.value}
        if p.value is not None else {"timestamp": _alarm_time(_utc(p.start))}
        for p in reversed(evaluated)
    ]
    return data


def _window_end(now: float, period: int, align: int | None) -> float:
    step = align or period
    return math.floor(now / step) * step


def _plural(count: int, word: str) -> str:
    return word if count == 1 else f"{word}s"


def _was(count: int) -> str:
    return "was" if count == 1 else "were"


def _java(value: float) -> str:
    """A number as CloudWatch (Java's Double.toString) prints it: 2.0, 0.5, 1.0E7, 1.5E-4."""
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0 or 1e-3 <= abs(value) < 1e7:
        text = repr(value)
        return text if "e" not in text else format(Decimal(text), "f")
    _, digits, exponent = Decimal(repr(abs(value))).normalize().as_tuple()
    mantissa = "".join(map(str, digits))
    power = len(mantissa) - 1 + exponent
    return f"{'-' if value < 0 else ''}{mantissa[0]}.{mantissa[1:] or '0'}E{power}"


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=timezone.utc)


def _alarm_time(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}+0000"


def _reason_time(epoch: float) -> str:
    return _utc(epoch).strftime("%d/%m/%y %H:%M:%S")


def _parse_time(text: str) -> datetime:
    """AWS alarm times ("2019-10-02T17:04:40.989+0000") and ISO 8601 ones ("...Z", "+00:00")."""
    text = text.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    elif re.search(r"[+-]\d{4}$", text):
        text = f"{text[:-2]}:{text[-2:]}"
    at = datetime.fromisoformat(text)
    return at.astimezone(timezone.utc) if at.tzinfo else at.replace(tzinfo=timezone.utc)


def _compact(data: dict) -> str:
    return json.dumps(data, separators=(",", ":"))
