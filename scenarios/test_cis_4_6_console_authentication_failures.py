"""Fail a console sign-in; the CIS 4.6 alarm must fire and page security."""

from harness import faults
from harness.scenario import CIS_RECORD_CHAIN, Scenario

SCENARIO = Scenario(
    id="cis-4-6-console-authentication-failures",
    title="CIS 4.6 Console authentication failures",
    feature="CIS monitoring controls",
    mitre=["T1110"],
    severity="medium",
    detect_within=900,
    remediate_within=None,
    requires=CIS_RECORD_CHAIN,
)


def test_cis_4_6_console_authentication_failures(gameday, stack):
    alarm = stack.alarm_names["4.6"]
    with gameday.inject(faults.cis.console_login_failure(alarm, log_group=stack.log_group_name)):
        gameday.expect_alarm(alarm)
