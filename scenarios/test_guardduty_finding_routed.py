"""GuardDuty reports a high-severity finding (crypto-mining); it must reach security."""

from harness import faults
from harness.scenario import GUARDDUTY_CHAIN, Scenario

SCENARIO = Scenario(
    id="guardduty-finding-routed",
    title="GuardDuty finding routed to security",
    feature="GuardDuty findings",
    mitre=["T1496"],
    severity="high",
    detect_within=300,
    remediate_within=None,  # a finding is for people to investigate
    requires=GUARDDUTY_CHAIN,
)

FINDING = "CryptoCurrency:EC2/BitcoinTool.B!DNS"  # severity 8: High, above the rule's threshold of 7


def test_guardduty_finding_routed(gameday, stack):
    with gameday.inject(faults.guardduty.sample_finding(FINDING)):
        gameday.expect_notification(matching={"detail-type": "GuardDuty Finding", "detail.type": FINDING,
                                              "detail.service.additionalInfo.sample": True})
