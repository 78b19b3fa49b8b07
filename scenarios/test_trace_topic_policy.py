"""A topic policy that no longer protects the topic, repairs held: gameday trace must name topic.policy and only it."""

from harness import faults
from harness.scenario import FAILED_DELIVERIES, TRACE_CHAIN, Scenario

SCENARIO = Scenario(
    id="trace-topic-policy",
    title="Trace finds a topic policy that no longer protects the topic",
    feature="gameday trace",
    mitre=["T1562.006"],
    severity="medium",
    detect_within=300,
    remediate_within=None,
    requires=TRACE_CHAIN,
    minds=(FAILED_DELIVERIES,),
)


def test_trace_topic_policy(gameday, stack):
    broken = faults.sns.weaken_topic_policy(stack.topic_arn, exempt=stack.break_glass_role_arn,
                                             as_role=stack.break_glass_role_arn)
    with gameday.inject(faults.trace.break_hop("topic.policy", broken, stack)):
        gameday.expect_trace("topic.policy")
