"""Make the trail bucket expire logs after one day; the evidence trail must be noticed and kept."""

from harness import faults, probes
from harness.scenario import CLOUDTRAIL_CHAIN, Scenario

SCENARIO = Scenario(
    id="cloudtrail-bucket-lifecycle",
    title="CloudTrail logs set to expire after 1 day",
    feature="CloudTrail tampering",
    mitre=["T1070", "T1485"],
    severity="high",
    detect_within=60,
    remediate_within=120,
    requires=CLOUDTRAIL_CHAIN,
)


def test_cloudtrail_bucket_lifecycle(gameday, stack):
    with gameday.inject(faults.cloudtrail.expire_trail_logs(stack.bucket_name, days=1)):
        gameday.expect_notification(matching={"detail.eventName": "PutBucketLifecycle",
                                              "detail.requestParameters.bucketName": stack.bucket_name})
        gameday.expect_restored(probes.cloudtrail.bucket_retains_logs(stack.bucket_name, min_days=365))
