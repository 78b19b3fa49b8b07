"""An unsubscribed security inbox, repairs held: gameday trace must name subscriptions.exist and only it."""

from harness import faults
from harness.scenario import FAILED_DELIVERIES, TRACE_CHAIN, Scenario

SCENARIO = Scenario(
    id="trace-subscriptions-exist",
    title="Trace finds an unsubscribed security inbox",
    feature="gameday trace",
    mitre=["T1562.006"],
    severity="medium",
    detect_within=300,
    remediate_within=None,
    requires=TRACE_CHAIN,
    minds=(FAILED_DELIVERIES,),
)


def test_trace_subscriptions_exist(gameday, stack):
    broken = faults.sns.unsubscribe(stack.topic_arn, "sqs", stack.sink_queue_arn)
    with gameday.inject(faults.trace.break_hop("subscriptions.exist", broken, stack)):
        gameday.expect_trace("subscriptions.exist")
