"""Remediation Lambda: put the trail and its log bucket back as GAMEDAY_DESIRED says (zipped alone: boto3 only)."""

import json
import logging
import os

import boto3
from botocore.exceptions import ClientError

logger = logging.getLogger("gameday.remediate_cloudtrail")
logger.setLevel(logging.INFO)

# boto3 reads AWS_ENDPOINT_URL itself, so the same code runs on AWS, LocalStack and the embedded plane.
cloudtrail = boto3.client("cloudtrail", region_name=os.environ.get("AWS_REGION"))
s3 = boto3.client("s3", region_name=os.environ.get("AWS_REGION"))

# CreateTrail parameter -> the GetTrail field that reports it.
TRAIL_SETTINGS = {
    "S3BucketName": "S3BucketName",
    "IsMultiRegionTrail": "IsMultiRegionTrail",
    "IncludeGlobalServiceEvents": "IncludeGlobalServiceEvents",
    "EnableLogFileValidation": "LogFileValidationEnabled",
    "CloudWatchLogsLogGroupArn": "CloudWatchLogsLogGroupArn",
    "CloudWatchLogsRoleArn": "CloudWatchLogsRoleArn",
}


def handler(event, context):
    """Whatever tampering event arrived, put every trail control back (reconcile, not react: safe to retry)."""
    desired = json.loads(os.environ["GAMEDAY_DESIRED"])
    actions = []
    # The trail first: while it is stopped or missing, nothing is recorded at all.
    _reconcile_trail(desired, actions)
    _reconcile_lifecycle(desired, actions)
    _reconcile_bucket_policy(desired, actions)
    return {"actions": actions}


def _act(actions, line):
    logger.info("%s", line)
    actions.append(line)


def _error_code(exc):
    return exc.response.get("Error", {}).get("Code", "")


def _reconcile_trail(desired, actions):
    params = desired["trail"]
    name = params["Name"]
    try:
        logging_now = cloudtrail.get_trail_status(Name=name)["IsLogging"]
    except ClientError as exc:
        if _error_code(exc) != "TrailNotFoundException":
            raise
        # CreateTrail refuses a bucket whose policy does not let CloudTrail write.
        _reconcile_bucket_policy(desired, actions)
        cloudtrail.create_trail(**params)
        _act(actions, f"CreateTrail {name}")
        cloudtrail.put_event_selectors(TrailName=name, EventSelectors=desired["event_selectors"])
        _act(actions, f"PutEventSelectors {name}")
        cloudtrail.start_logging(Name=name)
        _act(actions, f"StartLogging {name}")
        return
    if not logging_now:
        cloudtrail.start_logging(Name=name)
        _act(actions, f"StartLogging {name}")
    trail = cloudtrail.get_trail(Name=name)["Trail"]
    drifted = [param for param, field in TRAIL_SETTINGS.items() if trail.get(field) != params[param]]
    if drifted:
        cloudtrail.update_trail(**params)
        _act(actions, f"UpdateTrail {name} ({', '.join(drifted)})")
    if not covers_management_events(cloudtrail.get_event_selectors(TrailName=name)):
        cloudtrail.put_event_selectors(TrailName=name, EventSelectors=desired["event_selectors"])
        _act(actions, f"PutEventSelectors {name}")


def covers_management_events(selectors):
    """True if a GetEventSelectors answer records every read and write management event."""
    basic = selectors.get("EventSelectors") or []
    # AWS answers with basic or advanced selectors, never both; moto can keep stale advanced ones.
    if basic:
        coverage = [_basic_coverage(s) for s in basic]
    else:
        coverage = [_advanced_coverage(s) for s in selectors.get("AdvancedEventSelectors") or []]
    reads = any("read" in c for c in coverage)
    writes = any("write" in c for c in coverage)
    return reads and writes


def _basic_coverage(selector):
    if not selector.get("IncludeManagementEvents", True) or selector.get("ExcludeManagementEventSources"):
        return set()
    return {"All": {"read", "write"}, "ReadOnly": {"read"}, "WriteOnly": {"write"}}.get(
        selector.get("ReadWriteType", "All"), set()
    )


def _advanced_coverage(selector):
    fields = {f["Field"]: f for f in selector.get("FieldSelectors", [])}
    category = fields.pop("eventCategory", {})
    if category.get("Equals") != ["Management"]:
        return set()
    read_only = fields.pop("readOnly", None)
    if fields:  # any other field (eventSource NotEquals, ...) excludes some management events
        return set()
    if read_only is None:
        return {"read", "write"}
    if read_only.get("Equals") == ["true"]:
        return {"read"}
    if read_only.get("Equals") == ["false"]:
        return {"write"}
    return set()


def _reconcile_lifecycle(desired, actions):
    bucket = desired["bucket"]
    try:
        current = s3.get_bucket_lifecycle_configuration(Bucket=bucket)
    except ClientError as exc:
        if _error_code(exc) != "NoSuchLifecycleConfiguration":
            raise
        return
    rules = current.get("Rules", [])
    short = [r for r in rules if shortens_retention(r, desired["min_log_retention_days"])]
    if not short:
        return
    removed = ", ".join(r.get("ID", "<no id>") for r in short)
    keep = [r for r in rules if r not in short]
    if keep:
        extra = {}
        if "TransitionDefaultMinimumObjectSize" in current:
            extra["TransitionDefaultMinimumObjectSize"] = current["TransitionDefaultMinimumObjectSize"]
        s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": keep}, **extra)
        _act(actions, f"PutBucketLifecycleConfiguration {bucket} (removed {removed})")
    else:
        s3.delete_bucket_lifecycle(Bucket=bucket)
        _act(actions, f"DeleteBucketLifecycle {bucket} (removed {removed})")


def shortens_retention(rule, min_days):
    """True if a lifecycle rule deletes log objects (current or noncurrent) younger than min_days."""
    expiration = rule.get("Expiration") or {}
    if expiration.get("Days") is not None and expiration["Days"] < min_days:
        return True
    if expiration.get("Date") is not None:  # on that date every matching object goes, however young
        return True
    noncurrent = rule.get("NoncurrentVersionExpiration") or {}
    return noncurrent.get("NoncurrentDays") is not None and noncurrent["NoncurrentDays"] < min_days


def _reconcile_bucket_policy(desired, actions):
    bucket = desired["bucket"]
    try:
        current = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    except ClientError as exc:
        if _error_code(exc) != "NoSuchBucketPolicy":
            raise
        current = None
    if current is None or not has_statements(current, desired["bucket_policy"]):
        s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(desired["bucket_policy"]))
        _act(actions, f"PutBucketPolicy {bucket}")


def has_statements(policy, wanted):
    """True if every statement of `wanted` is in `policy` (Sid and list order aside)."""
    present = {_canonical(s) for s in _statements(policy)}
    return all(_canonical(s) in present for s in _statements(wanted))


def _statements(policy):
    statements = policy.get("Statement", [])
    return [statements] if isinstance(statements, dict) else statements


def _canonical(statement):
    return json.dumps(_normalise({k: v for k, v in statement.items() if k != "Sid"}), sort_keys=True)


def _normalise(value, key=None):
    if isinstance(value, dict):
        return {k: _normalise(v, k) for k, v in value.items()}
    if isinstance(value, list):
        items = sorted((_normalise(v, key) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
        return items[0] if len(items) == 1 else items
    if key in ("Action", "NotAction") and isinstance(value, str):
        return value.lower()  # IAM actions are case-insensitive
    return value
