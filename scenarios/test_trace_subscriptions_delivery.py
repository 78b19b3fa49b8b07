"""A subscriber whose deliveries fail, repairs held: gameday trace must name subscriptions.delivery and only it."""

from harness import faults
from harness.scenario import FAILED_DELIVERIES, TRACE_CHAIN, Scenario

SCENARIO = Scenario(
    id="trace-subscriptions-delivery",
    title="Trace finds a subscriber whose deliveries fail",
    feature="gameday trace",
    mitre=["T1562.006"],
    severity="medium",
    detect_within=300,
    remediate_within=None,
    requires=TRACE_CHAIN,
    aftermath=(FAILED_DELIVERIES,),
    minds=(FAILED_DELIVERIES,),
)


def test_trace_subscriptions_delivery(gameday, stack):
    broken = faults.sns.delete_subscriber_queue(stack.topic_arn, stack.tickets_queue_url.rsplit("/", 1)[-1])
    with gameday.inject(faults.trace.break_hop("subscriptions.delivery", broken, stack)):
        gameday.expect_trace("subscriptions.delivery")
