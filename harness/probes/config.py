"""Probes of AWS Config: the recorder, the managed rules, their compliance and their remediations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from harness.probes import Probe

__all__ = ["recording", "rule_exists", "no_violations", "evaluates_tagged_groups", "remediated"]


def recording(recorder: str) -> Probe:
    """The configuration recorder exists and is recording."""

    def check(aws: Any) -> tuple[bool, str]:
        try:
            found = aws.client("config").describe_configuration_recorder_status(
                ConfigurationRecorderNames=[recorder])["ConfigurationRecordersStatus"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "NoSuchConfigurationRecorderException":
                return False, f"recorder {recorder} does not exist"
            raise
        on = bool(found and found[0].get("recording"))
        return on, f"recorder {recorder} recording={on}"

    return Probe(f"recorder {recorder} is recording", check, ("config:DescribeConfigurationRecorderStatus",))


def rule_exists(rule: str, source_identifier: str | None = None) -> Probe:
    """The Config rule exists, is active and (when given) evaluates the managed rule named."""

    def check(aws: Any) -> tuple[bool, str]:
        found = _rule(aws, rule)
        if found is None:
            return False, f"rule {rule} does not exist"
        state = found.get("ConfigRuleState", "ACTIVE")
        source = found.get("Source", {}).get("SourceIdentifier")
        if state != "ACTIVE":
            return False, f"rule {rule} is {state}"
        if source_identifier and source != source_identifier:
            return False, f"rule {rule} evaluates {source}, not {source_identifier}"
        return True, f"rule {rule} ({source}) is active"

    return Probe(f"Config rule {rule} exists", check, ("config:DescribeConfigRules",))


def no_violations(rule: str) -> Probe:
    """The rule reports no NON_COMPLIANT resource (compliant or not evaluated yet): a violation would be a change."""

    def check(aws: Any) -> tuple[bool, str]:
        bad = [r["EvaluationResultIdentifier"]["EvaluationResultQualifier"].get("ResourceId", "?")
               for r in _results(aws, rule, ["NON_COMPLIANT"])]
        if bad:
            return False, f"rule {rule} finds NON_COMPLIANT: {', '.join(bad[:5])}"
        return True, f"rule {rule} finds nothing NON_COMPLIANT"

    return Probe(f"Config rule {rule} finds no violation", check, ("config:GetComplianceDetailsByConfigRule",))


def evaluates_tagged_groups(rule: str, tag: tuple[str, str]) -> Probe:
    """The rule has a result for every security group carrying the tag (e.g. one made while it could not see)."""
    key, value = tag

    def check(aws: Any) -> tuple[bool, str]:
        groups = [g["GroupId"] for g in aws.client("ec2").describe_security_groups(
            Filters=[{"Name": f"tag:{key}", "Values": [value]}])["SecurityGroups"]]
        if not groups:
            return False, f"no security group is tagged {key}={value}"
        seen = {r["EvaluationResultIdentifier"]["EvaluationResultQualifier"].get("ResourceId")
                for r in _results(aws, rule, ["COMPLIANT", "NON_COMPLIANT"])}
        unseen = [g for g in groups if g not in seen]
        if unseen:
            return False, f"rule {rule} has no result for {', '.join(unseen)}"
        return True, f"rule {rule} has evaluated {', '.join(groups)}"

    return Probe(f"Config rule {rule} evaluates the security groups tagged {key}={value}", check,
                 ("ec2:DescribeSecurityGroups", "config:GetComplianceDetailsByConfigRule"))


def remediated(rule: str) -> Probe:
    """The rule's automatic remediation ran and succeeded on a resource it found NON_COMPLIANT."""

    def check(aws: Any) -> tuple[bool, str]:
        cfg = aws.client("config")
        try:
            configured = cfg.describe_remediation_configurations(ConfigRuleNames=[rule])["RemediationConfigurations"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "NoSuchConfigRuleException":
                return False, f"rule {rule} does not exist"
            raise
        if not configured:
            return False, f"rule {rule} has no remediation configuration"
        document = configured[0].get("TargetId")
        runs = cfg.describe_remediation_execution_status(ConfigRuleName=rule).get("RemediationExecutionStatuses", [])
        done = [r for r in runs if r.get("State") == "SUCCEEDED"]
        if not done:
            states = ", ".join(f"{r.get('ResourceKey', {}).get('resourceId', '?')} {r.get('State')}" for r in runs)
            return False, f"no remediation of rule {rule} by {document} succeeded ({states or 'none ran'})"
        latest = max(done, key=lambda r: _epoch(r.get("LastUpdatedTime") or r.get("InvocationTime")))
        return True, (f"{document} remediated {latest.get('ResourceKey', {}).get('resourceId', '?')} "
                      f"at {_iso(latest.get('LastUpdatedTime'))}")

    return Probe(f"Config rule {rule}'s remediation succeeded", check,
                 ("config:DescribeRemediationConfigurations", "config:DescribeRemediationExecutionStatus"))


def _rule(aws: Any, rule: str) -> dict | None:
    try:
        found = aws.client("config").describe_config_rules(ConfigRuleNames=[rule])["ConfigRules"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "NoSuchConfigRuleException":
            return None
        raise
    return found[0] if found else None


def _results(aws: Any, rule: str, types: list[str]) -> list[dict]:
    """Every evaluation result of the rule with one of the compliance types (all pages)."""
    cfg = aws.client("config")
    out: list[dict] = []
    kwargs: dict[str, Any] = {"ConfigRuleName": rule, "ComplianceTypes": types, "Limit": 100}
    while True:
        try:
            page = cfg.get_compliance_details_by_config_rule(**kwargs)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "NoSuchConfigRuleException":
                return out
            raise
        out += page.get("EvaluationResults", [])
        if not page.get("NextToken"):
            return out
        kwargs["NextToken"] = page["NextToken"]


def _iso(when: Any) -> str:
    return when.isoformat(timespec="seconds") if isinstance(when, datetime) else "never"


def _epoch(when: Any) -> float:
    return when.timestamp() if isinstance(when, datetime) else 0.0
