"""Faults on AWS Config: stop the recorder, delete a rule, and run rules on demand after another fault."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from harness.faults import Fault, held, rebuild
from harness.faults.network import FAULT_TAG
from harness.probes import Probe, all_of
from harness.probes import config as probes

__all__ = ["stop_recorder", "delete_rule", "evaluated"]

# What DescribeConfigRules reports that PutConfigRule does not take back.
_RULE_OUTPUT_ONLY = ("ConfigRuleArn", "ConfigRuleId", "ConfigRuleState", "CreatedBy")
# What DescribeRemediationConfigurations reports that PutRemediationConfigurations does not take back.
_REMEDIATION_OUTPUT_ONLY = ("Arn", "CreatedByService")


@dataclass(frozen=True)
class StopRecorder(Fault):
    """StopConfigurationRecorder: Config records no change, so change-triggered rules see nothing.

    With `unseen_group_in` (a VPC), a security group is then created there: a change the stopped recorder misses,
    tagged so that a probe can tell whether the rules see it once the recorder runs again.
    """

    recorder: str
    unseen_group_in: str | None = None
    token: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    name = "config.stop_recorder"
    iam_actions = ("config:StopConfigurationRecorder", "config:StartConfigurationRecorder",
                   "config:DescribeConfigurationRecorderStatus", "ec2:CreateSecurityGroup", "ec2:CreateTags",
                   "ec2:DescribeSecurityGroups", "ec2:DeleteSecurityGroup")

    @property
    def tag(self) -> tuple[str, str]:
        """The tag on the security group created while the recorder was stopped."""
        return FAULT_TAG, self.token

    def describe(self) -> str:
        unseen = f", then a security group created in {self.unseen_group_in}" if self.unseen_group_in else ""
        return f"StopConfigurationRecorder on {self.recorder}{unseen}"

    def steady(self) -> Probe:
        return probes.recording(self.recorder)

    def apply(self, aws: Any, snapshot: dict | None) -> None:
        aws.client("config").stop_configuration_recorder(ConfigurationRecorderName=self.recorder)
        if self.unseen_group_in:
            tags = [{"ResourceType": "security-group", "Tags": [{"Key": FAULT_TAG, "Value": self.token}]}]
            aws.client("ec2").create_security_group(
                GroupName=f"gameday-unseen-{self.token}", VpcId=self.unseen_group_in, TagSpecifications=tags,
                Description="Gameday: created while the Config recorder was stopped")

    def revert(self, aws: Any, snapshot: dict | None) -> None:
        if not self.steady()(aws)[0]:
            aws.client("config").start_configuration_recorder(ConfigurationRecorderName=self.recorder)
        if self.unseen_group_in:
            ec2 = aws.client("ec2")
            for group in ec2.describe_security_groups(
                    Filters=[{"Name": f"tag:{FAULT_TAG}", "Values": [self.token]}])["SecurityGroups"]:
                ec2.delete_security_group(GroupId=group["GroupId"])


@dataclass(frozen=True)
class DeleteRule(Fault):
    """DeleteConfigRule (its remediation configuration first, as Config requires)."""

    rule: str
    name = "config.delete_rule"
    iam_actions = ("config:DescribeConfigRules", "config:ListTagsForResource", "config:DeleteConfigRule",
                   "config:PutConfigRule", "config:TagResource", "config:DescribeRemediationConfigurations",
                   "config:DeleteRemediationConfiguration", "config:PutRemediationConfigurations")

    def describe(self) -> str:
        return f"DeleteConfigRule on {self.rule}"

    def steady(self) -> Probe:
        return probes.rule_exists(self.rule)

    def snapshot(self, aws: Any) -> dict | None:
        cfg = aws.client("config")
        rule = cfg.describe_config_rules(ConfigRuleNames=[self.rule])["ConfigRules"][0]
        tags = cfg.list_tags_for_resource(ResourceArn=rule["ConfigRuleArn"]).get("Tags", [])
        remediations = cfg.describe_remediation_configurations(
            ConfigRuleNames=[self.rule]).get("RemediationConfigurations", [])
        return {"rule": {k: v for k, v in rule.items() if k not in _RULE_OUTPUT_ONLY}, "tags": tags,
                "remediations": [{k: v for k, v in r.items() if k not in _REMEDIATION_OUTPUT_ONLY}
                                 for r in remediations]}

    def apply(self, aws: Any, snapshot: dict | None) -> None:
        assert snapshot is not None
        cfg = aws.client("config")
        for remediation in snapshot["remediations"]:
            scope = {"ResourceType": remediation["ResourceType"]} if remediation.get("ResourceType") else {}
            cfg.delete_remediation_configuration(ConfigRuleName=self.rule, **scope)
        cfg.delete_config_rule(ConfigRuleName=self.rule)

    def revert(self, aws: Any, snapshot: dict | None) -> None:
        assert snapshot is not None, "delete_rule needs its snapshot to revert"
        cfg = aws.client("config")
        if not self.steady()(aws)[0]:
            params: dict[str, Any] = {"ConfigRule": snapshot["rule"]}
            if snapshot["tags"]:
                params["Tags"] = snapshot["tags"]
            cfg.put_config_rule(**params)
        present = cfg.describe_remediation_configurations(
            ConfigRuleNames=[self.rule]).get("RemediationConfigurations", [])
        if snapshot["remediations"] and not present:
            cfg.put_remediation_configurations(RemediationConfigurations=snapshot["remediations"])


@dataclass(frozen=True)
class Evaluated(Fault):
    """Another fault, then StartConfigRulesEvaluation: the on-demand run stands in for the rules' periodic one.

    AWS runs a periodic managed rule within its MaximumExecutionFrequency (One_Hour for the stack's CloudTrail
    rule, TwentyFour_Hours by default); asking for the run proves the same path without waiting for it.
    """

    inner: dict  # the breaking fault: {"name": ..., "params": ...}
    rules: tuple[str, ...]
    hold: tuple[str, ...] = ()  # functions held (reserved concurrency 0) so only Config's own remediation repairs
    compliant_before: bool = True  # account-wide rules must be compliant first, else a violation changes nothing
    name = "config.evaluated"
    settle_within = 5400.0  # AWS seconds for a result earlier activity left to clear at the next One_Hour run
    iam_actions = ("config:StartConfigRulesEvaluation", "config:DescribeConfigRules",
                   "config:GetComplianceDetailsByConfigRule", *held.IAM_ACTIONS)

    @property
    def fault(self) -> Fault:
        return rebuild(self.inner["name"], self.inner["params"])

    def describe(self) -> str:
        holding = f" ({', '.join(self.hold)} held)" if self.hold else ""
        return f"{self.fault.describe()}{holding}, then StartConfigRulesEvaluation on {', '.join(self.rules)}"

    def steady(self) -> Probe:
        return self.fault.steady()

    def precondition(self) -> Probe:
        rules = [probes.rule_exists(r) for r in self.rules]
        if self.compliant_before:
            rules += [probes.no_violations(r) for r in self.rules]
        return all_of(f"{self.fault.precondition().description}; rules {', '.join(self.rules)} healthy",
                      self.fault.precondition(), *rules)

    def snapshot(self, aws: Any) -> dict | None:
        return {"concurrency": held.concurrency(aws, self.hold), "inner": self.fault.snapshot(aws)}

    def apply(self, aws: Any, snapshot: dict | None) -> None:
        assert snapshot is not None
        held.hold(aws, snapshot["concurrency"])
        self.fault.apply(aws, snapshot["inner"])
        aws.client("config").start_config_rules_evaluation(ConfigRuleNames=list(self.rules))

    def revert(self, aws: Any, snapshot: dict | None) -> None:
        assert snapshot is not None
        try:
            self.fault.revert(aws, snapshot["inner"])
            _evaluate_again(aws, self.rules)
        finally:
            held.release(aws, snapshot["concurrency"])


stop_recorder = StopRecorder
delete_rule = DeleteRule


def _evaluate_again(aws: Any, rules: tuple[str, ...]) -> None:
    """Once reverted, the rules look again, so no stale NON_COMPLIANT result outlives the fault."""
    try:
        aws.client("config").start_config_rules_evaluation(ConfigRuleNames=list(rules))
    except ClientError as exc:
        # AWS allows one on-demand run a minute: the rules' next periodic run clears the result instead.
        if exc.response["Error"]["Code"] not in ("LimitExceededException", "NoSuchConfigRuleException"):
            raise


def evaluated(fault: Fault, rules: list[str] | tuple[str, ...], *, hold: tuple[str | None, ...] = (),
              compliant_before: bool = True) -> Evaluated:
    """`fault`, then the rules evaluated on demand; functions in `hold` cannot repair meanwhile."""
    return Evaluated(inner={"name": fault.name, "params": fault.params}, rules=tuple(rules),
                     hold=tuple(fn for fn in hold if fn), compliant_before=compliant_before)
