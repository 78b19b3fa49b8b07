"""Faults on CloudTrail: stop a trail, delete it, blind its selectors, expire its logs early."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from harness.faults import Fault
from harness.probes import Probe
from harness.probes import cloudtrail as probes

__all__ = ["stop_logging", "delete_trail", "exclude_management_events", "expire_trail_logs", "detach_log_group"]


@dataclass(frozen=True)
class StopLogging(Fault):
    """StopLogging on the trail."""

    trail: str
    name = "cloudtrail.stop_logging"
    iam_actions = ("cloudtrail:StopLogging", "cloudtrail:StartLogging", "cloudtrail:GetTrailStatus")

    def describe(self) -> str:
        return f"StopLogging on trail {self.trail}"

    def steady(self) -> Probe:
        return probes.is_logging(self.trail)

    def apply(self, aws: Any, snapshot: dict | None) -> None:
        aws.client("cloudtrail").stop_logging(Name=self.trail)

    def revert(self, aws: Any, snapshot: dict | None) -> None:
        ct = aws.client("cloudtrail")
        if not ct.get_trail_status(Name=self.trail).get("IsLogging"):
            ct.start_logging(Name=self.trail)


@dataclass(frozen=True)
class DeleteTrail(Fault):
    """DeleteTrail on the trail."""

    trail: str
    name = "cloudtrail.delete_trail"
    iam_actions = ("cloudtrail:DescribeTrails", "cloudtrail:GetEventSelectors", "cloudtrail:GetTrailStatus",
                   "cloudtrail:ListTags", "cloudtrail:DeleteTrail", "cloudtrail:CreateTrail",
                   "cloudtrail:PutEventSelectors", "cloudtrail:StartLogging", "iam:PassRole")
    idempotent = True

    def describe(self) -> str:
        return f"DeleteTrail on trail {self.trail}"

    def steady(self) -> Probe:
        return probes.is_logging(self.trail)

    def snapshot(self, aws: Any) -> dict | None:
        return trail_snapshot(aws, self.trail)

    def apply(self, aws: Any, snapshot: dict | None) -> None:
        aws.client("cloudtrail").delete_trail(Name=self.trail)

    def revert(self, aws: Any, snapshot: dict | None) -> None:
        assert snapshot is not None, "delete_trail needs its snapshot to revert"
        restore_trail(aws, snapshot)


@dataclass(frozen=True)
class ExcludeManagementEvents(Fault):
    """PutEventSelectors that stop the trail logging management events."""

    trail: str
    name = "cloudtrail.exclude_management_events"
    iam_actions = ("cloudtrail:GetEventSelectors", "cloudtrail:PutEventSelectors")

    def describe(self) -> str:
        return f"PutEventSelectors excluding management events on trail {self.trail}"

    def steady(self) -> Probe:
        return probes.logs_management_events(self.trail)

    def snapshot(self, aws: Any) -> dict | None:
        resp = aws.client("cloudtrail").get_event_selectors(TrailName=self.trail)
        return {"EventSelectors": resp.get("EventSelectors") or [],
                "AdvancedEventSelectors": resp.get("AdvancedEventSelectors") or []}

    def apply(self, aws: Any, snapshot: dict | None) -> None:
        aws.client("cloudtrail").put_event_selectors(TrailName=self.trail, EventSelectors=[
            {"ReadWriteType": "All", "IncludeManagementEvents": False, "DataResources": []}])

    def revert(self, aws: Any, snapshot: dict | None) -> None:
        assert snapshot is not None
        _put_selectors(aws.client("cloudtrail"), self.trail, snapshot)


@dataclass(frozen=True)
class ExpireTrailLogs(Fault):
    """A lifecycle rule on the trail bucket that expires trail logs after one day."""

    bucket: str
    days: int = 1
    min_retention_days: int = 365
    name = "cloudtrail.expire_trail_logs"
    iam_actions = ("s3:GetLifecycleConfiguration", "s3:PutLifecycleConfiguration")

    def describe(self) -> str:
        return f"PutBucketLifecycleConfiguration expiring trail logs after {self.days} day(s) on {self.bucket}"

    def steady(self) -> Probe:
        return probes.bucket_retains_logs(self.bucket, self.min_retention_days)

    def snapshot(self, aws: Any) -> dict | None:
        try:
            return {"Rules": aws.client("s3").get_bucket_lifecycle_configuration(Bucket=self.bucket)["Rules"]}
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "NoSuchLifecycleConfiguration":
                return {"Rules": []}
            raise

    def apply(self, aws: Any, snapshot: dict | None) -> None:
        rules = list((snapshot or {}).get("Rules", [])) + [{
            "ID": "gameday-expire-trail-logs", "Status": "Enabled",
            "Filter": {"Prefix": "AWSLogs/"}, "Expiration": {"Days": self.days}}]
        aws.client("s3").put_bucket_lifecycle_configuration(
            Bucket=self.bucket, LifecycleConfiguration={"Rules": rules})

    def revert(self, aws: Any, snapshot: dict | None) -> None:
        s3 = aws.client("s3")
        rules = (snapshot or {}).get("Rules", [])
        if rules:
            s3.put_bucket_lifecycle_configuration(Bucket=self.bucket, LifecycleConfiguration={"Rules": rules})
        else:
            s3.delete_bucket_lifecycle(Bucket=self.bucket)


@dataclass(frozen=True)
class DetachLogGroup(Fault):
    """UpdateTrail without CloudWatch Logs: the trail still logs to S3, but no record reaches the metric filters."""

    trail: str
    name = "cloudtrail.detach_log_group"
    iam_actions = ("cloudtrail:DescribeTrails", "cloudtrail:UpdateTrail", "iam:PassRole")

    def describe(self) -> str:
        return f"UpdateTrail removing CloudWatch Logs delivery from trail {self.trail}"

    def steady(self) -> Probe:
        return probes.delivers_to_logs(self.trail)

    def snapshot(self, aws: Any) -> dict | None:
        found = aws.client("cloudtrail").describe_trails(trailNameList=[self.trail])["trailList"]
        if not found or not found[0].get("CloudWatchLogsLogGroupArn"):
            raise LookupError(f"trail {self.trail} sends nothing to CloudWatch Logs: nothing to break")
        return {k: found[0][k] for k in ("CloudWatchLogsLogGroupArn", "CloudWatchLogsRoleArn")}

    def apply(self, aws: Any, snapshot: dict | None) -> None:
        aws.client("cloudtrail").update_trail(Name=self.trail, CloudWatchLogsLogGroupArn="", CloudWatchLogsRoleArn="")

    def revert(self, aws: Any, snapshot: dict | None) -> None:
        assert snapshot is not None
        if not self.steady()(aws)[0]:
            aws.client("cloudtrail").update_trail(Name=self.trail, **snapshot)


stop_logging = StopLogging
delete_trail = DeleteTrail
exclude_management_events = ExcludeManagementEvents
expire_trail_logs = ExpireTrailLogs
detach_log_group = DetachLogGroup


def trail_snapshot(aws: Any, trail: str) -> dict:
    """Everything needed to recreate a trail as it is now."""
    ct = aws.client("cloudtrail")
    described = ct.describe_trails(trailNameList=[trail])["trailList"][0]
    selectors = ct.get_event_selectors(TrailName=trail)
    return {
        "trail": described,
        "EventSelectors": selectors.get("EventSelectors") or [],
        "AdvancedEventSelectors": selectors.get("AdvancedEventSelectors") or [],
        "IsLogging": bool(ct.get_trail_status(Name=trail).get("IsLogging")),
        "Tags": ct.list_tags(ResourceIdList=[described["TrailARN"]])["ResourceTagList"][0].get("TagsList", []),
    }


def restore_trail(aws: Any, snapshot: dict) -> None:
    """Recreate the trail if missing, then put back its selectors and logging status."""
    ct = aws.client("cloudtrail")
    t = snapshot["trail"]
    if not ct.describe_trails(trailNameList=[t["Name"]]).get("trailList"):
        params = {"Name": t["Name"], "S3BucketName": t["S3BucketName"],
                  "IncludeGlobalServiceEvents": t.get("IncludeGlobalServiceEvents", True),
                  "IsMultiRegionTrail": t.get("IsMultiRegionTrail", False),
                  "EnableLogFileValidation": t.get("LogFileValidationEnabled", False)}
        for key in ("S3KeyPrefix", "CloudWatchLogsLogGroupArn", "CloudWatchLogsRoleArn", "KmsKeyId"):
            if t.get(key):
                params[key] = t[key]
        if t.get("SnsTopicARN"):
            params["SnsTopicName"] = t["SnsTopicARN"]
        if snapshot.get("Tags"):
            params["TagsList"] = snapshot["Tags"]
        ct.create_trail(**params)
    _put_selectors(ct, t["Name"], snapshot)
    logging = bool(ct.get_trail_status(Name=t["Name"]).get("IsLogging"))
    if snapshot.get("IsLogging") and not logging:
        ct.start_logging(Name=t["Name"])
    elif not snapshot.get("IsLogging") and logging:
        ct.stop_logging(Name=t["Name"])


def _put_selectors(ct: Any, trail: str, snapshot: dict) -> None:
    if snapshot.get("AdvancedEventSelectors"):
        ct.put_event_selectors(TrailName=trail, AdvancedEventSelectors=snapshot["AdvancedEventSelectors"])
    elif snapshot.get("EventSelectors"):
        ct.put_event_selectors(TrailName=trail, EventSelectors=snapshot["EventSelectors"])
