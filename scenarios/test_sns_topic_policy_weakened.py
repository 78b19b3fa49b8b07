"""Strip the security topic's policy of its Deny statements; the change must be reported and the protection put back."""

from harness import faults, probes
from harness.scenario import SNS_CHAIN, Scenario

SCENARIO = Scenario(
    id="sns-topic-policy-weakened",
    title="Security topic policy weakened",
    feature="Notification chain",
    mitre=["T1562.006", "T1222"],
    severity="high",
    detect_within=120,
    remediate_within=300,
    requires=SNS_CHAIN,
)


def test_sns_topic_policy_weakened(gameday, stack):
    role = stack.break_glass_role_arn
    with gameday.inject(faults.sns.weaken_topic_policy(stack.topic_arn, exempt=role, as_role=role)):
        gameday.expect_notification(matching={"detail.eventName": "SetTopicAttributes"})
        gameday.expect_restored(probes.sns.topic_protected(stack.topic_arn, role))
