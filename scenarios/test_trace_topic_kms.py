"""A topic key CloudWatch may not use, repairs held: gameday trace must name topic.kms and only it."""

from harness import faults
from harness.scenario import FAILED_DELIVERIES, TRACE_CHAIN, Scenario

SCENARIO = Scenario(
    id="trace-topic-kms",
    title="Trace finds a topic key CloudWatch may not use",
    feature="gameday trace",
    mitre=["T1562.006"],
    severity="medium",
    detect_within=300,
    remediate_within=None,
    requires=TRACE_CHAIN,
    minds=(FAILED_DELIVERIES,),
)


def test_trace_topic_kms(gameday, stack):
    broken = faults.sns.remove_key_grant(stack.topic_key_arn)
    with gameday.inject(faults.trace.break_hop("topic.kms", broken, stack)):
        gameday.expect_trace("topic.kms")
