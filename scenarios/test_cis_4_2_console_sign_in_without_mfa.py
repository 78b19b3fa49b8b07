"""Sign in to the console without MFA; the CIS 4.2 alarm must fire and page security."""

from harness import faults
from harness.scenario import CIS_RECORD_CHAIN, Scenario

SCENARIO = Scenario(
    id="cis-4-2-console-sign-in-without-mfa",
    title="CIS 4.2 Management console sign-in without MFA",
    feature="CIS monitoring controls",
    mitre=["T1078.004"],
    severity="high",
    detect_within=900,
    remediate_within=None,
    requires=CIS_RECORD_CHAIN,
)


def test_cis_4_2_console_sign_in_without_mfa(gameday, stack):
    alarm = stack.alarm_names["4.2"]
    with gameday.inject(faults.cis.console_login_without_mfa(alarm, log_group=stack.log_group_name)):
        gameday.expect_alarm(alarm)
