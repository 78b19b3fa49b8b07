"""A deleted security topic, repairs held: gameday trace must name topic.exists and only it."""

from harness import faults
from harness.scenario import FAILED_DELIVERIES, TRACE_CHAIN, Scenario

SCENARIO = Scenario(
    id="trace-topic-exists",
    title="Trace finds a deleted security topic",
    feature="gameday trace",
    mitre=["T1562.006"],
    severity="medium",
    detect_within=300,
    remediate_within=None,
    requires=TRACE_CHAIN,
    minds=(FAILED_DELIVERIES,),
)


def test_trace_topic_exists(gameday, stack):
    broken = faults.sns.delete_topic(stack.topic_arn, exempt=stack.break_glass_role_arn, key=stack.topic_key_arn,
                                     sink_queue_arn=stack.sink_queue_arn, as_role=stack.break_glass_role_arn)
    with gameday.inject(faults.trace.break_hop("topic.exists", broken, stack)):
        gameday.expect_trace("topic.exists")
