"""Create a customer-managed IAM policy; the CIS 4.4 alarm must fire and page security."""

from harness import faults
from harness.scenario import CIS_CHAIN, Scenario

SCENARIO = Scenario(
    id="cis-4-4-iam-policy-changes",
    title="CIS 4.4 IAM policy changes",
    feature="CIS monitoring controls",
    mitre=["T1098"],
    severity="high",
    detect_within=900,
    remediate_within=None,
    requires=CIS_CHAIN,
)


def test_cis_4_4_iam_policy_changes(gameday, stack):
    alarm = stack.alarm_names["4.4"]
    with gameday.inject(faults.cis.iam_policy_change(alarm)):
        gameday.expect_alarm(alarm)
