"""Create an internet gateway; the CIS 4.12 alarm must fire and page security."""

from harness import faults
from harness.scenario import CIS_CHAIN, Scenario

SCENARIO = Scenario(
    id="cis-4-12-network-gateway-changes",
    title="CIS 4.12 Network gateway changes",
    feature="CIS monitoring controls",
    mitre=["T1562.007"],
    severity="medium",
    detect_within=900,
    remediate_within=None,
    requires=CIS_CHAIN,
)


def test_cis_4_12_network_gateway_changes(gameday, stack):
    alarm = stack.alarm_names["4.12"]
    with gameday.inject(faults.cis.gateway_change(alarm)):
        gameday.expect_alarm(alarm)
