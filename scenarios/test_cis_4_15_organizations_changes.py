"""Change AWS Organizations; the CIS 4.15 alarm must fire and page security."""

from harness import faults
from harness.scenario import CIS_RECORD_CHAIN, Scenario

SCENARIO = Scenario(
    id="cis-4-15-organizations-changes",
    title="CIS 4.15 AWS Organizations changes",
    feature="CIS monitoring controls",
    mitre=["T1484"],
    severity="high",
    detect_within=900,
    remediate_within=None,
    requires=CIS_RECORD_CHAIN,
)


def test_cis_4_15_organizations_changes(gameday, stack):
    alarm = stack.alarm_names["4.15"]
    with gameday.inject(faults.cis.organizations_change(alarm, log_group=stack.log_group_name)):
        gameday.expect_alarm(alarm)
