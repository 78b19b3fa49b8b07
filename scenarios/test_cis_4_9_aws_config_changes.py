"""Change the AWS Config recorder; the CIS 4.9 alarm must fire and page security."""

from harness import faults
from harness.scenario import CIS_CHAIN, Scenario

SCENARIO = Scenario(
    id="cis-4-9-aws-config-changes",
    title="CIS 4.9 AWS Config configuration changes",
    feature="CIS monitoring controls",
    mitre=["T1562"],
    severity="high",
    detect_within=900,
    remediate_within=None,
    requires=CIS_CHAIN,
)


def test_cis_4_9_aws_config_changes(gameday, stack):
    alarm = stack.alarm_names["4.9"]
    with gameday.inject(faults.cis.config_change(alarm)):
        gameday.expect_alarm(alarm)
