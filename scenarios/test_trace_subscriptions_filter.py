"""A filter policy that drops alarms, repairs held: gameday trace must name subscriptions.filter and only it."""

from harness import faults
from harness.scenario import FAILED_DELIVERIES, TRACE_CHAIN, Scenario

SCENARIO = Scenario(
    id="trace-subscriptions-filter",
    title="Trace finds a filter policy that drops alarms",
    feature="gameday trace",
    mitre=["T1562.006"],
    severity="medium",
    detect_within=300,
    remediate_within=None,
    requires=TRACE_CHAIN,
    minds=(FAILED_DELIVERIES,),
)


def test_trace_subscriptions_filter(gameday, stack):
    broken = faults.sns.mute_subscription(stack.topic_arn, "sqs", stack.sink_queue_arn)
    with gameday.inject(faults.trace.break_hop("subscriptions.filter", broken, stack)):
        gameday.expect_trace("subscriptions.filter")
