"""An alert storm suspends the on-call e-mail; it must be reported and a fresh confirmation sent."""

from harness import faults, probes
from harness.scenario import FAILED_DELIVERIES, SNS_CHAIN, Capability, Scenario

SCENARIO = Scenario(
    id="sns-subscription-suspended-by-alert-storm",
    title="On-call e-mail suspended by an alert storm",
    feature="Notification chain",
    mitre=["T1562.006", "T1499"],
    severity="high",
    detect_within=600,
    remediate_within=900,
    requires=SNS_CHAIN | {Capability.MAILBOX},
    aftermath=(FAILED_DELIVERIES,),
)


def test_sns_subscription_suspended_by_alert_storm(gameday, stack):
    with gameday.inject(faults.sns.alert_storm(stack.topic_arn, stack.oncall_email)):
        gameday.expect_notification(matching={"kind": "subscription-pending", "endpoint": stack.oncall_email})
        gameday.answer_confirmation(stack.topic_arn, stack.oncall_email)
        gameday.expect_restored(probes.sns.subscribed(stack.topic_arn, "email", stack.oncall_email))
