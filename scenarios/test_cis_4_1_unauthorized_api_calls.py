"""Make an API call the caller is not allowed to make; the CIS 4.1 alarm must fire and page security."""

from harness import faults
from harness.scenario import CIS_RECORD_CHAIN, Scenario

SCENARIO = Scenario(
    id="cis-4-1-unauthorized-api-calls",
    title="CIS 4.1 Unauthorized API calls",
    feature="CIS monitoring controls",
    mitre=["T1078"],
    severity="medium",
    detect_within=900,
    remediate_within=None,
    requires=CIS_RECORD_CHAIN,
)


def test_cis_4_1_unauthorized_api_calls(gameday, stack):
    alarm = stack.alarm_names["4.1"]
    with gameday.inject(faults.cis.unauthorized_api_call(alarm, log_group=stack.log_group_name)):
        gameday.expect_alarm(alarm)
