"""An instance misses critical security updates (SSM patch compliance); the gap must be reported to security."""

from harness import faults
from harness.scenario import Capability, Scenario

SCENARIO = Scenario(
    id="os-patch-gap",
    title="Missing OS security updates",
    feature="Vulnerability management",
    mitre=["T1190", "T1068"],
    severity="medium",
    detect_within=300,
    remediate_within=None,
    requires=frozenset({Capability.PATCH_COMPLIANCE, Capability.EVENTBRIDGE_TARGETS, Capability.SNS_TO_SQS}),
)


def test_os_patch_gap(gameday, stack):
    with gameday.inject(faults.findings.missing_security_updates(
            stack.workload_group_name, capacity=stack.workload_capacity, quarantine_group=stack.quarantine_group_name)):
        gameday.expect_notification(matching={"source": "aws.ssm", "detail.compliance-type": "Patch",
                                              "detail.compliance-status": "non_compliant"})
