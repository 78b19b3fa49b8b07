"""Delete the security topic: refused to an ordinary principal; with break-glass, reported and recreated."""

from harness import faults, probes
from harness.scenario import SNS_CHAIN, Scenario

SCENARIO = Scenario(
    id="sns-delete-topic",
    title="Security topic deleted",
    feature="Notification chain",
    mitre=["T1562.006", "T1485"],
    severity="critical",
    detect_within=120,
    remediate_within=300,
    requires=SNS_CHAIN,
    prevents=True,
)


def test_sns_delete_topic(gameday, stack):
    topic = dict(topic=stack.topic_arn, exempt=stack.break_glass_role_arn, key=stack.topic_key_arn,
                 sink_queue_arn=stack.sink_queue_arn)
    gameday.expect_denied(faults.sns.delete_topic(**topic))
    with gameday.inject(faults.sns.delete_topic(**topic, as_role=stack.break_glass_role_arn)):
        gameday.expect_notification(matching={"detail.eventName": "DeleteTopic"})
        gameday.expect_restored(probes.sns.topic_intact(stack.topic_arn, exempt=stack.break_glass_role_arn,
                                                        key=stack.topic_key_arn, sink_queue_arn=stack.sink_queue_arn))
