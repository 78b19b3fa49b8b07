"""Faults on application logging: ALB access logs off, CloudFront logging off, a log group deleted or shortened."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.faults import Fault
from harness.probes import Probe
from harness.probes import applogs as probes

__all__ = ["disable_alb_access_logs", "disable_distribution_logging", "delete_log_group", "cut_log_retention"]

ACCESS_LOGS = "access_logs.s3."  # the ALB attributes that say whether and where access logs go
# The metricTransformations fields PutMetricFilter takes back (DescribeMetricFilters may add others).
_TRANSFORMATION_FIELDS = ("metricName", "metricNamespace", "metricValue", "defaultValue", "dimensions", "unit")
_SUBSCRIPTION_FIELDS = ("filterName", "filterPattern", "destinationArn", "roleArn", "distribution")


@dataclass(frozen=True)
class DisableAlbAccessLogs(Fault):
    """ModifyLoadBalancerAttributes switching the ALB's access logs off."""

    alb_arn: str
    name = "applogs.disable_alb_access_logs"
    iam_actions = ("elasticloadbalancing:DescribeLoadBalancerAttributes",
                   "elasticloadbalancing:ModifyLoadBalancerAttributes")

    def describe(self) -> str:
        return f"ModifyLoadBalancerAttributes access_logs.s3.enabled=false on ALB {probes.alb_name(self.alb_arn)}"

    def steady(self) -> Probe:
        return probes.alb_access_logs_on(self.alb_arn)

    def snapshot(self, aws: Any) -> dict | None:
        return {"Attributes": _access_log_attributes(aws, self.alb_arn)}

    def apply(self, aws: Any, snapshot: dict | None) -> None:
        aws.client("elbv2").modify_load_balancer_attributes(
            LoadBalancerArn=self.alb_arn, Attributes=[{"Key": "access_logs.s3.enabled", "Value": "false"}])

    def revert(self, aws: Any, snapshot: dict | None) -> None:
        assert snapshot is not None, "disable_alb_access_logs needs its snapshot to revert"
        before = snapshot["Attributes"]
        if _access_log_attributes(aws, self.alb_arn) != before:
            # All of them at once: ELB checks the bucket when logging is switched on.
            aws.client("elbv2").modify_load_balancer_attributes(
                LoadBalancerArn=self.alb_arn, Attributes=[{"Key": k, "Value": v} for k, v in sorted(before.items())])


@dataclass(frozen=True)
class DisableDistributionLogging(Fault):
    """UpdateDistribution switching the CloudFront distribution's standard logging off."""

    distribution_id: str
    name = "applogs.disable_distribution_logging"
    iam_actions = ("cloudfront:GetDistributionConfig", "cloudfront:UpdateDistribution")

    def describe(self) -> str:
        return f"UpdateDistribution with standard logging off on distribution {self.distribution_id}"

    def steady(self) -> Probe:
        return probes.distribution_logging_on(self.distribution_id)

    def snapshot(self, aws: Any) -> dict | None:
        return {"Logging": aws.client("cloudfront").get_distribution_config(
            Id=self.distribution_id)["DistributionConfig"].get("Logging")}

    def apply(self, aws: Any, snapshot: dict | None) -> None:
        # AWS's documented way to switch it off: Enabled false with an empty Bucket and Prefix.
        _put_logging(aws, self.distribution_id, {"Enabled": False, "IncludeCookies": False, "Bucket": "", "Prefix": ""})

    def revert(self, aws: Any, snapshot: dict | None) -> None:
        assert snapshot is not None, "disable_distribution_logging needs its snapshot to revert"
        _put_logging(aws, self.distribution_id, snapshot["Logging"])


@dataclass(frozen=True)
class DeleteLogGroup(Fault):
    """DeleteLogGroup on an application log group: its events are gone for good, revert only recreates the group."""

    log_group: str
    name = "applogs.delete_log_group"
    iam_actions = ("logs:DescribeLogGroups", "logs:ListTagsForResource", "logs:DescribeMetricFilters",
                   "logs:DescribeSubscriptionFilters", "logs:DeleteLogGroup", "logs:CreateLogGroup",
                   "logs:PutRetentionPolicy", "logs:PutMetricFilter", "logs:PutSubscriptionFilter", "logs:TagResource",
                   "iam:PassRole")  # a subscription filter's role, when it has one

    def describe(self) -> str:
        return f"DeleteLogGroup {self.log_group}"

    def steady(self) -> Probe:
        return probes.log_group_exists(self.log_group)

    def snapshot(self, aws: Any) -> dict | None:
        logs = aws.client("logs")
        found = probes.log_group(aws, self.log_group)
        if found is None:
            raise LookupError(f"log group {self.log_group} does not exist: nothing to delete")
        arn = found.get("logGroupArn") or found["arn"].removesuffix(":*")
        filters = logs.describe_metric_filters(logGroupName=self.log_group).get("metricFilters", [])
        subscriptions = logs.describe_subscription_filters(logGroupName=self.log_group).get("subscriptionFilters", [])
        return {
            "retentionInDays": found.get("retentionInDays"),
            "kmsKeyId": found.get("kmsKeyId"),
            "logGroupClass": found.get("logGroupClass"),
            "tags": logs.list_tags_for_resource(resourceArn=arn).get("tags", {}),
            "metricFilters": [{"filterName": f["filterName"], "filterPattern": f.get("filterPattern", ""),
                               "metricTransformations": [{k: t[k] for k in _TRANSFORMATION_FIELDS if k in t}
                                                         for t in f.get("metricTransformations", [])]}
                              for f in filters],
            "subscriptionFilters": [{k: s[k] for k in _SUBSCRIPTION_FIELDS if s.get(k) is not None}
                                    for s in subscriptions],
        }

    def apply(self, aws: Any, snapshot: dict | None) -> None:
        aws.client("logs").delete_log_group(logGroupName=self.log_group)

    def revert(self, aws: Any, snapshot: dict | None) -> None:
        assert snapshot is not None, "delete_log_group needs its snapshot to revert"
        logs = aws.client("logs")
        found = probes.log_group(aws, self.log_group)
        if found is None:
            extra = {k: snapshot[k] for k in ("kmsKeyId", "logGroupClass") if snapshot.get(k)}
            if snapshot.get("tags"):
                extra["tags"] = snapshot["tags"]
            logs.create_log_group(logGroupName=self.log_group, **extra)
            found = {}
        _put_retention(logs, self.log_group, found.get("retentionInDays"), snapshot["retentionInDays"])
        stored = {f["filterName"] for f in logs.describe_metric_filters(logGroupName=self.log_group)["metricFilters"]}
        for f in snapshot["metricFilters"]:
            if f["filterName"] not in stored:
                logs.put_metric_filter(logGroupName=self.log_group, **f)
        stored = {s["filterName"] for s in
                  logs.describe_subscription_filters(logGroupName=self.log_group)["subscriptionFilters"]}
        for s in snapshot["subscriptionFilters"]:
            if s["filterName"] not in stored:
                logs.put_subscription_filter(logGroupName=self.log_group, **s)


@dataclass(frozen=True)
class CutLogRetention(Fault):
    """PutRetentionPolicy cutting an application log group's retention to a day."""

    log_group: str
    days: int = 1
    min_retention_days: int = 365
    name = "applogs.cut_log_retention"
    iam_actions = ("logs:DescribeLogGroups", "logs:PutRetentionPolicy", "logs:DeleteRetentionPolicy")

    def describe(self) -> str:
        return f"PutRetentionPolicy {self.days} day(s) on {self.log_group}"

    def steady(self) -> Probe:
        return probes.log_group_retains(self.log_group, self.min_retention_days)

    def snapshot(self, aws: Any) -> dict | None:
        found = probes.log_group(aws, self.log_group)
        if found is None:
            raise LookupError(f"log group {self.log_group} does not exist: no retention to cut")
        return {"retentionInDays": found.get("retentionInDays")}

    def apply(self, aws: Any, snapshot: dict | None) -> None:
        aws.client("logs").put_retention_policy(logGroupName=self.log_group, retentionInDays=self.days)

    def revert(self, aws: Any, snapshot: dict | None) -> None:
        assert snapshot is not None, "cut_log_retention needs its snapshot to revert"
        found = probes.log_group(aws, self.log_group)
        if found is None:
            raise LookupError(f"log group {self.log_group} no longer exists: its retention cannot be put back")
        _put_retention(aws.client("logs"), self.log_group, found.get("retentionInDays"), snapshot["retentionInDays"])


disable_alb_access_logs = DisableAlbAccessLogs
disable_distribution_logging = DisableDistributionLogging
delete_log_group = DeleteLogGroup
cut_log_retention = CutLogRetention


def _access_log_attributes(aws: Any, alb_arn: str) -> dict[str, str]:
    listed = aws.client("elbv2").describe_load_balancer_attributes(LoadBalancerArn=alb_arn)["Attributes"]
    return {a["Key"]: a["Value"] for a in listed if a["Key"].startswith(ACCESS_LOGS)}


def _put_logging(aws: Any, distribution_id: str, logging: dict) -> None:
    """UpdateDistribution with this Logging block, unless the distribution already has it."""
    cf = aws.client("cloudfront")
    answer = cf.get_distribution_config(Id=distribution_id)
    config = answer["DistributionConfig"]
    if config.get("Logging") != logging:
        cf.update_distribution(Id=distribution_id, IfMatch=answer["ETag"],
                               DistributionConfig={**config, "Logging": logging})


def _put_retention(logs: Any, group: str, current: int | None, wanted: int | None) -> None:
    if current == wanted:
        return
    if wanted is None:  # it never expired its events before
        logs.delete_retention_policy(logGroupName=group)
    else:
        logs.put_retention_policy(logGroupName=group, retentionInDays=wanted)
