"""Toggle a VPC attribute; the CIS 4.14 alarm must fire and page security."""

from harness import faults
from harness.scenario import CIS_CHAIN, Scenario

SCENARIO = Scenario(
    id="cis-4-14-vpc-changes",
    title="CIS 4.14 VPC changes",
    feature="CIS monitoring controls",
    mitre=["T1562.007"],
    severity="medium",
    detect_within=900,
    remediate_within=None,
    requires=CIS_CHAIN,
)


def test_cis_4_14_vpc_changes(gameday, stack):
    alarm = stack.alarm_names["4.14"]
    with gameday.inject(faults.cis.vpc_change(alarm)):
        gameday.expect_alarm(alarm)
