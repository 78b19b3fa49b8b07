"""Switch the CloudFront distribution's standard logging off; security must be told."""

from harness import faults
from harness.scenario import APPLOG_CHAIN, Capability, Scenario

SCENARIO = Scenario(
    id="applog-cloudfront-logging-disabled",
    title="CloudFront standard logging disabled",
    feature="Application logging",
    mitre=["T1562.008"],
    severity="high",
    detect_within=60,
    remediate_within=None,
    requires={*APPLOG_CHAIN, Capability.CLOUDFRONT},
)


def test_applog_cloudfront_logging_disabled(gameday, stack):
    with gameday.inject(faults.applogs.disable_distribution_logging(stack.distribution_id)):
        gameday.expect_notification(matching={
            "detail.eventName": "UpdateDistribution",
            "detail.requestParameters.id": stack.distribution_id,
            "detail.requestParameters.distributionConfig.logging.enabled": False,
        })
