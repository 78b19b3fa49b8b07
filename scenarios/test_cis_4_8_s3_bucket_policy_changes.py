"""Put a bucket policy; the CIS 4.8 alarm must fire and page security."""

from harness import faults
from harness.scenario import CIS_CHAIN, Scenario

SCENARIO = Scenario(
    id="cis-4-8-s3-bucket-policy-changes",
    title="CIS 4.8 S3 bucket policy changes",
    feature="CIS monitoring controls",
    mitre=["T1530"],
    severity="high",
    detect_within=900,
    remediate_within=None,
    requires=CIS_CHAIN,
)


def test_cis_4_8_s3_bucket_policy_changes(gameday, stack):
    alarm = stack.alarm_names["4.8"]
    with gameday.inject(faults.cis.bucket_policy_change(alarm)):
        gameday.expect_alarm(alarm)
