"""Create a second trail; the CIS 4.5 alarm must fire and page security."""

from harness import faults
from harness.scenario import CIS_CHAIN, TRAIL_CHANGES, Scenario

SCENARIO = Scenario(
    id="cis-4-5-cloudtrail-configuration-changes",
    title="CIS 4.5 CloudTrail configuration changes",
    feature="CIS monitoring controls",
    mitre=["T1562.008"],
    severity="critical",
    detect_within=900,
    remediate_within=None,
    requires=CIS_CHAIN,
    aftermath=(TRAIL_CHANGES,),
    minds=(TRAIL_CHANGES,),
)


def test_cis_4_5_cloudtrail_configuration_changes(gameday, stack):
    alarm = stack.alarm_names["4.5"]
    with gameday.inject(faults.cis.cloudtrail_config_change(alarm, bucket=stack.bucket_name)):
        gameday.expect_alarm(alarm)
