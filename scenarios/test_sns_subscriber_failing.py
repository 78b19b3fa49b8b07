"""A subscriber of the security topic disappears; failed deliveries must page security through the independent path."""

from harness import faults
from harness.scenario import FAILED_DELIVERIES, SNS_CHAIN, Scenario

SCENARIO = Scenario(
    id="sns-subscriber-failing",
    title="Security topic deliveries failing",
    feature="Notification chain",
    mitre=["T1562.006"],
    severity="high",
    detect_within=900,
    remediate_within=None,
    requires=SNS_CHAIN,
    aftermath=(FAILED_DELIVERIES,),
    minds=(FAILED_DELIVERIES,),
)


def test_sns_subscriber_failing(gameday, stack):
    queue = stack.tickets_queue_url.rsplit("/", 1)[-1]
    with gameday.inject(faults.sns.delete_subscriber_queue(stack.topic_arn, queue,
                                                       alarm=stack.delivery_failures_alarm)):
        gameday.expect_alarm(stack.delivery_failures_alarm)
