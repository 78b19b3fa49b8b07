"""Use the root user's credentials; the CIS 4.3 alarm must fire and page security."""

from harness import faults
from harness.scenario import CIS_RECORD_CHAIN, Scenario

SCENARIO = Scenario(
    id="cis-4-3-root-account-usage",
    title="CIS 4.3 Usage of the root account",
    feature="CIS monitoring controls",
    mitre=["T1078.004"],
    severity="critical",
    detect_within=900,
    remediate_within=None,
    requires=CIS_RECORD_CHAIN,
)


def test_cis_4_3_root_account_usage(gameday, stack):
    alarm = stack.alarm_names["4.3"]
    with gameday.inject(faults.cis.root_account_usage(alarm, log_group=stack.log_group_name)):
        gameday.expect_alarm(alarm)
