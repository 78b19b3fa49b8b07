"""Probes of application logging: ALB access logs, CloudFront standard logs, application log groups."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from harness.probes import Probe

__all__ = ["alb_access_logs_on", "distribution_logging_on", "log_group_exists", "log_group_retains"]


def alb_access_logs_on(alb_arn: str | None, bucket: str | None = None) -> Probe:
    """The ALB writes access logs (to `bucket`, if given)."""

    def check(aws: Any) -> tuple[bool, str]:
        if not alb_arn:
            return False, "the stack outputs name no ALB (alb_arn)"
        try:
            listed = aws.client("elbv2").describe_load_balancer_attributes(LoadBalancerArn=alb_arn)["Attributes"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "LoadBalancerNotFound":
                return False, f"load balancer {alb_arn} does not exist"
            raise
        attributes = {a["Key"]: a["Value"] for a in listed}
        enabled, target = attributes.get("access_logs.s3.enabled"), attributes.get("access_logs.s3.bucket")
        if enabled != "true":
            return False, f"access_logs.s3.enabled={enabled}"
        if bucket and target != bucket:
            return False, f"access logs go to bucket {target!r}, not {bucket}"
        return True, f"access logs on, to bucket {target}"

    return Probe(f"ALB {alb_name(alb_arn)} writes access logs", check,
                 ("elasticloadbalancing:DescribeLoadBalancerAttributes",))


def distribution_logging_on(distribution_id: str | None, bucket: str | None = None) -> Probe:
    """The CloudFront distribution writes standard logs (to `bucket`, if given)."""

    def check(aws: Any) -> tuple[bool, str]:
        if not distribution_id:
            return False, "the stack outputs name no CloudFront distribution (distribution_id)"
        try:
            config = aws.client("cloudfront").get_distribution_config(Id=distribution_id)["DistributionConfig"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "NoSuchDistribution":
                return False, f"distribution {distribution_id} does not exist"
            raise
        logging = config.get("Logging") or {}
        if not logging.get("Enabled"):
            return False, f"standard logging off ({logging})"
        # CloudFront names the bucket by its S3 domain (bucket.s3.amazonaws.com).
        if bucket and logging.get("Bucket", "").split(".s3.", 1)[0] != bucket:
            return False, f"standard logs go to {logging.get('Bucket')!r}, not {bucket}"
        return True, f"standard logging on, to {logging.get('Bucket')}"

    return Probe(f"distribution {distribution_id} writes standard logs", check, ("cloudfront:GetDistributionConfig",))


def log_group_exists(name: str) -> Probe:
    """The log group exists."""

    def check(aws: Any) -> tuple[bool, str]:
        found = log_group(aws, name)
        return (True, f"log group {name} exists") if found else (False, f"log group {name} does not exist")

    return Probe(f"log group {name} exists", check, ("logs:DescribeLogGroups",))


def log_group_retains(name: str, min_days: int) -> Probe:
    """The log group exists and keeps its events at least min_days (never expiring counts)."""

    def check(aws: Any) -> tuple[bool, str]:
        found = log_group(aws, name)
        if found is None:
            return False, f"log group {name} does not exist"
        days = found.get("retentionInDays")
        if days is None:
            return True, f"log group {name} never expires its events"
        if days < min_days:
            return False, f"log group {name} keeps events {days} days, under {min_days}"
        return True, f"log group {name} keeps events {days} days"

    return Probe(f"log group {name} keeps events {min_days} days", check, ("logs:DescribeLogGroups",))


def log_group(aws: Any, name: str) -> dict | None:
    """DescribeLogGroups' entry for exactly this name, None if there is none."""
    pages = aws.client("logs").get_paginator("describe_log_groups").paginate(logGroupNamePrefix=name)
    return next((g for page in pages for g in page.get("logGroups", []) if g["logGroupName"] == name), None)


def alb_name(arn: str | None) -> str:
    """The load balancer's name, from an ARN ending loadbalancer/app/<name>/<id>."""
    parts = (arn or "").split("/")
    return parts[-2] if len(parts) >= 3 else (arn or "(none)")
