"""Inspector finds a critical vulnerability in a library on a workload instance; security must be told."""

from harness import faults
from harness.scenario import Capability, Scenario

SCENARIO = Scenario(
    id="ec2-vulnerable-library",
    title="Critical vulnerable library on an instance",
    feature="Vulnerability management",
    mitre=["T1190"],
    severity="high",
    detect_within=300,
    remediate_within=None,
    requires=frozenset({Capability.INSPECTOR_ON_DEMAND, Capability.EVENTBRIDGE_TARGETS, Capability.SNS_TO_SQS}),
)


def test_ec2_vulnerable_library(gameday, stack):
    vulnerable = faults.findings.vulnerable_library(stack.workload_group_name, capacity=stack.workload_capacity,
                                                    quarantine_group=stack.quarantine_group_name)
    with gameday.inject(vulnerable):
        gameday.expect_notification(matching={"detail-type": "Inspector2 Finding", "detail.severity": "CRITICAL",
                                              "detail.packageVulnerabilityDetails.vulnerabilityId": vulnerable.cve})
