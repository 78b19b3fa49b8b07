"""Create a security group; the CIS 4.10 alarm must fire and page security."""

from harness import faults
from harness.scenario import CIS_CHAIN, Scenario

SCENARIO = Scenario(
    id="cis-4-10-security-group-changes",
    title="CIS 4.10 Security group changes",
    feature="CIS monitoring controls",
    mitre=["T1562.007"],
    severity="high",
    detect_within=900,
    remediate_within=None,
    requires=CIS_CHAIN,
)


def test_cis_4_10_security_group_changes(gameday, stack):
    alarm = stack.alarm_names["4.10"]
    with gameday.inject(faults.cis.security_group_change(alarm)):
        gameday.expect_alarm(alarm)
