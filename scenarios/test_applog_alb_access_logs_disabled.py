"""Switch the edge ALB's access logs off; security must be told."""

from harness import faults
from harness.scenario import APPLOG_CHAIN, Scenario

SCENARIO = Scenario(
    id="applog-alb-access-logs-disabled",
    title="ALB access logs disabled",
    feature="Application logging",
    mitre=["T1562.008"],
    severity="high",
    detect_within=60,
    remediate_within=None,
    requires=APPLOG_CHAIN,
)


def test_applog_alb_access_logs_disabled(gameday, stack):
    with gameday.inject(faults.applogs.disable_alb_access_logs(stack.alb_arn)):
        gameday.expect_notification(matching={
            "detail.eventName": "ModifyLoadBalancerAttributes",
            "detail.requestParameters.loadBalancerArn": stack.alb_arn,
            "detail.requestParameters.attributes": [{"key": "access_logs.s3.enabled", "value": "false"}],
        })
