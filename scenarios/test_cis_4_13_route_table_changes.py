"""Create a route table; the CIS 4.13 alarm must fire and page security."""

from harness import faults
from harness.scenario import CIS_CHAIN, Scenario

SCENARIO = Scenario(
    id="cis-4-13-route-table-changes",
    title="CIS 4.13 Route table changes",
    feature="CIS monitoring controls",
    mitre=["T1562.007"],
    severity="medium",
    detect_within=900,
    remediate_within=None,
    requires=CIS_CHAIN,
)


def test_cis_4_13_route_table_changes(gameday, stack):
    alarm = stack.alarm_names["4.13"]
    with gameday.inject(faults.cis.route_table_change(alarm)):
        gameday.expect_alarm(alarm)
