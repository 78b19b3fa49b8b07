"""A filter policy on the security inbox lets only OK messages through; it must be reported and removed."""

from harness import faults, probes
from harness.scenario import SNS_CHAIN, Scenario

SCENARIO = Scenario(
    id="sns-filter-policy-mutes-alerts",
    title="Filter policy mutes alarm notifications",
    feature="Notification chain",
    mitre=["T1562.006"],
    severity="high",
    detect_within=120,
    remediate_within=300,
    requires=SNS_CHAIN,
)


def test_sns_filter_policy_mutes_alerts(gameday, stack):
    with gameday.inject(faults.sns.mute_subscription(stack.topic_arn, "sqs", stack.sink_queue_arn)):
        gameday.expect_notification(matching={"detail.eventName": "SetSubscriptionAttributes"})
        gameday.expect_restored(probes.sns.unfiltered(stack.topic_arn, "sqs", stack.sink_queue_arn))
