"""Probes of a trail and its log bucket."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from harness.probes import Probe, all_of

__all__ = ["exists", "is_logging", "logs_management_events", "delivers_to_logs", "bucket_retains_logs", "healthy"]


def exists(trail: str) -> Probe:
    """The trail exists."""

    def check(aws: Any) -> tuple[bool, str]:
        found = aws.client("cloudtrail").describe_trails(trailNameList=[trail]).get("trailList", [])
        return (True, f"trail {trail} exists") if found else (False, f"trail {trail} does not exist")

    return Probe(f"trail {trail} exists", check, ("cloudtrail:DescribeTrails",))


def is_logging(trail: str) -> Probe:
    """The trail exists and is logging."""

    def check(aws: Any) -> tuple[bool, str]:
        try:
            status = aws.client("cloudtrail").get_trail_status(Name=trail)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "TrailNotFoundException":
                return False, f"trail {trail} does not exist"
            raise
        logging = bool(status.get("IsLogging"))
        return logging, f"trail {trail} IsLogging={logging}"

    return Probe(f"trail {trail} is logging", check, ("cloudtrail:GetTrailStatus",))


def logs_management_events(trail: str) -> Probe:
    """The trail's event selectors include read and write management events."""

    def check(aws: Any) -> tuple[bool, str]:
        try:
            resp = aws.client("cloudtrail").get_event_selectors(TrailName=trail)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "TrailNotFoundException":
                return False, f"trail {trail} does not exist"
            raise
        advanced = resp.get("AdvancedEventSelectors") or []
        if advanced:
            ok = any(any(f["Field"] == "eventCategory" and "Management" in f.get("Equals", [])
                         for f in sel["FieldSelectors"])
                     and not any(f["Field"] == "readOnly" for f in sel["FieldSelectors"]) for sel in advanced)
            return ok, f"advanced selectors {'include' if ok else 'exclude'} all management events"
        basic = resp.get("EventSelectors") or []
        # No selectors at all means AWS's default: all management events.
        ok = not basic or any(s.get("IncludeManagementEvents", True) and s.get("ReadWriteType", "All") == "All"
                              for s in basic)
        return ok, f"event selectors {basic!r}"

    return Probe(f"trail {trail} logs all management events", check, ("cloudtrail:GetEventSelectors",))


def delivers_to_logs(trail: str) -> Probe:
    """The trail sends its records to a CloudWatch Logs group (where the metric filters read them)."""

    def check(aws: Any) -> tuple[bool, str]:
        found = aws.client("cloudtrail").describe_trails(trailNameList=[trail]).get("trailList", [])
        if not found:
            return False, f"trail {trail} does not exist"
        group = found[0].get("CloudWatchLogsLogGroupArn")
        if not group:
            return False, f"trail {trail} sends nothing to CloudWatch Logs"
        return True, f"trail {trail} delivers to {group}"

    return Probe(f"trail {trail} delivers to CloudWatch Logs", check, ("cloudtrail:DescribeTrails",))


def bucket_retains_logs(bucket: str, min_days: int) -> Probe:
    """No lifecycle rule on the trail bucket expires logs sooner than min_days."""

    def check(aws: Any) -> tuple[bool, str]:
        try:
            rules = aws.client("s3").get_bucket_lifecycle_configuration(Bucket=bucket).get("Rules", [])
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "NoSuchLifecycleConfiguration":
                return True, f"bucket {bucket} has no lifecycle rules"
            raise
        short = [r.get("ID", "?") for r in rules if r.get("Status") == "Enabled" and (
            r.get("Expiration", {}).get("Days", min_days) < min_days
            or r.get("NoncurrentVersionExpiration", {}).get("NoncurrentDays", min_days) < min_days)]
        if short:
            return False, f"bucket {bucket} rules {short} expire logs in under {min_days} days"
        return True, f"bucket {bucket} keeps logs at least {min_days} days"

    return Probe(f"bucket {bucket} keeps trail logs {min_days} days", check, ("s3:GetLifecycleConfiguration",))


def healthy(trail: str, bucket: str, min_days: int = 365) -> Probe:
    """The whole CloudTrail control: logging, all management events, logs retained."""
    return all_of(f"trail {trail} healthy", is_logging(trail), logs_management_events(trail),
                  bucket_retains_logs(bucket, min_days))
