"""The topic key loses its CloudWatch grant: the alarm fires into the void; noticed and the grant restored."""

from harness import faults, probes
from harness.scenario import SNS_CHAIN, Scenario

SCENARIO = Scenario(
    id="sns-topic-kms-grant-missing",
    title="Security topic key unusable by CloudWatch",
    feature="Notification chain",
    mitre=["T1562.006"],
    severity="critical",
    detect_within=300,
    remediate_within=600,
    requires=SNS_CHAIN,
)


def test_sns_topic_kms_grant_missing(gameday, stack):
    alarm = stack.alarm_names["4.3"]  # not 4.5, the alarm gameday trace follows: the failed action stays in history
    with gameday.inject(faults.sns.remove_key_grant(stack.topic_key_arn, alarm)):
        gameday.expect_notification(matching={"kind": "alarm-action-failed", "alarm": alarm})
        gameday.expect_restored(probes.sns.key_grants_publishers(stack.topic_key_arn))
