"""Remediation Lambda: put the CIS alarms and metric filters back as the zipped desired.json says (boto3 only)."""

import hashlib
import json
import logging
import os

import boto3

logger = logging.getLogger("gameday.remediate_alarms")
logger.setLevel(logging.INFO)

# boto3 reads AWS_ENDPOINT_URL itself, so the same code runs on AWS, LocalStack and the embedded plane.
cloudwatch = boto3.client("cloudwatch", region_name=os.environ.get("AWS_REGION"))
logs = boto3.client("logs", region_name=os.environ.get("AWS_REGION"))

# PutMetricAlarm parameter -> the value DescribeAlarms implies when it leaves the field out.
ALARM_DEFAULTS = {
    "AlarmDescription": "",
    "ActionsEnabled": True,
    "OKActions": [],
    "AlarmActions": [],
    "InsufficientDataActions": [],
    "MetricName": None,
    "Namespace": None,
    "Statistic": None,
    "ExtendedStatistic": None,
    "Dimensions": [],
    "Period": None,
    "Unit": None,
    "EvaluationPeriods": None,
    "DatapointsToAlarm": None,
    "Threshold": None,
    "ComparisonOperator": None,
    "TreatMissingData": "missing",
    "EvaluateLowSampleCountPercentile": None,
    "Metrics": [],
    "ThresholdMetricId": None,
}
# PutMetricFilter's metricTransformations fields -> the value DescribeMetricFilters implies when it leaves one out.
TRANSFORMATION_DEFAULTS = {
    "metricName": None,
    "metricNamespace": None,
    "metricValue": None,
    "defaultValue": None,
    "dimensions": {},
    "unit": "None",
}


def handler(event, context):
    """Whatever tampering event arrived, put every CIS alarm and filter back (reconcile, not react: safe to retry)."""
    desired = load_desired()
    actions = []
    # Alarms first: they also hold the notification path, and a missing log group must not stop them.
    _reconcile_alarms(desired["alarms"], actions)
    _reconcile_filters(desired["metric_filters"], actions)
    return {"actions": actions}


def load_desired():
    """The desired alarms and filters, from the file GAMEDAY_DESIRED names next to this module, checked by hash."""
    pointer = json.loads(os.environ["GAMEDAY_DESIRED"])
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), pointer["file"])
    with open(path, "rb") as bundled:
        data = bundled.read()
    # Code and configuration are updated by two calls: never enforce a desired state the deploy did not intend.
    if hashlib.sha256(data).hexdigest() != pointer["sha256"]:
        raise RuntimeError(f"{pointer['file']} does not match GAMEDAY_DESIRED's sha256: code and configuration differ")
    return json.loads(data)


def _act(actions, line):
    logger.info("%s", line)
    actions.append(line)


def _reconcile_alarms(wanted, actions):
    found = {}
    for page in cloudwatch.get_paginator("describe_alarms").paginate(AlarmNames=[a["AlarmName"] for a in wanted]):
        found.update({a["AlarmName"]: a for a in page.get("MetricAlarms", [])})
    disabled = []
    for alarm in wanted:
        name = alarm["AlarmName"]
        if name not in found:
            cloudwatch.put_metric_alarm(**alarm)
            _act(actions, f"PutMetricAlarm {name} (recreated)")
            continue
        drifted = alarm_drift(found[name], alarm)
        if drifted == ["ActionsEnabled"] and alarm.get("ActionsEnabled", True):
            disabled.append(name)
        elif drifted:
            cloudwatch.put_metric_alarm(**alarm)
            _act(actions, f"PutMetricAlarm {name} ({', '.join(drifted)})")
    if disabled:
        cloudwatch.enable_alarm_actions(AlarmNames=disabled)
        _act(actions, f"EnableAlarmActions {', '.join(disabled)}")


def alarm_drift(current, desired):
    """The PutMetricAlarm parameters whose stored value (a DescribeAlarms entry) differs from `desired`."""
    stored, wanted = _alarm_settings(current), _alarm_settings(desired)
    return [key for key in ALARM_DEFAULTS if stored[key] != wanted[key]]


def _alarm_settings(alarm):
    settings = {key: alarm.get(key, default) for key, default in ALARM_DEFAULTS.items()}
    for key in ("OKActions", "AlarmActions", "InsufficientDataActions"):
        settings[key] = sorted(settings[key] or [])
    settings["Dimensions"] = sorted((d["Name"], d["Value"]) for d in settings["Dimensions"] or [])
    settings["Metrics"] = settings["Metrics"] or []
    if settings["Threshold"] is not None:
        settings["Threshold"] = float(settings["Threshold"])
    if settings["DatapointsToAlarm"] == settings["EvaluationPeriods"]:  # the same as unset: "all of them"
        settings["DatapointsToAlarm"] = None
    return settings


def _reconcile_filters(wanted, actions):
    found = {}
    for group in sorted({f["logGroupName"] for f in wanted}):
        for page in logs.get_paginator("describe_metric_filters").paginate(logGroupName=group):
            for stored in page.get("metricFilters", []):
                found.setdefault((group, stored["filterName"]), []).append(stored)
    for metric_filter in wanted:
        name = metric_filter["filterName"]
        stored = found.get((metric_filter["logGroupName"], name), [])
        if not stored:
            logs.put_metric_filter(**metric_filter)
            _act(actions, f"PutMetricFilter {name} (recreated)")
            continue
        drifted = stored_filter_drift(stored, metric_filter)
        if drifted:
            _replace_filter(metric_filter)
            _act(actions, f"PutMetricFilter {name} ({', '.join(drifted)})")


def stored_filter_drift(stored, desired):
    """filter_drift over every filter stored under the desired name; several of them (an emulator's) is drift too."""
    drifted = {field for entry in stored for field in filter_drift(entry, desired)}
    fields = [field for field in ("filterPattern", "metricTransformations") if field in drifted]
    return fields or (["duplicated"] if len(stored) > 1 else [])


def _replace_filter(metric_filter):
    group, name = metric_filter["logGroupName"], metric_filter["filterName"]
    logs.put_metric_filter(**metric_filter)
    # moto 5.2 appends on PutMetricFilter instead of replacing: then leave exactly one filter of that name.
    pages = logs.get_paginator("describe_metric_filters").paginate(logGroupName=group, filterNamePrefix=name)
    same = [f for page in pages for f in page.get("metricFilters", []) if f["filterName"] == name]
    if len(same) > 1:
        for _ in same:
            logs.delete_metric_filter(logGroupName=group, filterName=name)
        logs.put_metric_filter(**metric_filter)


def filter_drift(current, desired):
    """The PutMetricFilter parameters whose stored value (a DescribeMetricFilters entry) differs from `desired`."""
    drifted = []
    if current.get("filterPattern", "") != desired["filterPattern"]:
        drifted.append("filterPattern")
    transformations = [_transformation(t) for t in current.get("metricTransformations", [])]
    if transformations != [_transformation(t) for t in desired["metricTransformations"]]:
        drifted.append("metricTransformations")
    return drifted


def _transformation(transformation):
    settings = {key: transformation.get(key, default) for key, default in TRANSFORMATION_DEFAULTS.items()}
    settings["dimensions"] = settings["dimensions"] or {}
    return settings
