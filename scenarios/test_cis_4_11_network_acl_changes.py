"""Create a network ACL; the CIS 4.11 alarm must fire and page security."""

from harness import faults
from harness.scenario import CIS_CHAIN, Scenario

SCENARIO = Scenario(
    id="cis-4-11-network-acl-changes",
    title="CIS 4.11 Network ACL changes",
    feature="CIS monitoring controls",
    mitre=["T1562.007"],
    severity="medium",
    detect_within=900,
    remediate_within=None,
    requires=CIS_CHAIN,
)


def test_cis_4_11_network_acl_changes(gameday, stack):
    alarm = stack.alarm_names["4.11"]
    with gameday.inject(faults.cis.nacl_change(alarm)):
        gameday.expect_alarm(alarm)
