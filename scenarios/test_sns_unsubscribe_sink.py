"""Unsubscribe the security inbox; the independent path must report it and the subscription come back."""

from harness import faults, probes
from harness.scenario import SNS_CHAIN, Scenario

SCENARIO = Scenario(
    id="sns-unsubscribe-sink",
    title="Security inbox unsubscribed",
    feature="Notification chain",
    mitre=["T1562.006"],
    severity="high",
    detect_within=120,
    remediate_within=300,
    requires=SNS_CHAIN,
)


def test_sns_unsubscribe_sink(gameday, stack):
    with gameday.inject(faults.sns.unsubscribe(stack.topic_arn, "sqs", stack.sink_queue_arn)):
        gameday.expect_notification(matching={"detail.eventName": "Unsubscribe"})
        gameday.expect_restored(probes.sns.subscribed(stack.topic_arn, "sqs", stack.sink_queue_arn))
