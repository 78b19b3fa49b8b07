"""A trail no longer delivering to Logs, repairs held: gameday trace must name trail.delivery and only it."""

from harness import faults
from harness.scenario import FAILED_DELIVERIES, TRACE_CHAIN, TRAIL_CHANGES, Scenario

SCENARIO = Scenario(
    id="trace-trail-delivery",
    title="Trace finds a trail that no longer delivers to CloudWatch Logs",
    feature="gameday trace",
    mitre=["T1562.008"],
    severity="medium",
    detect_within=300,
    remediate_within=None,
    requires=TRACE_CHAIN,
    aftermath=(TRAIL_CHANGES,),
    minds=(FAILED_DELIVERIES,),
)


def test_trace_trail_delivery(gameday, stack):
    broken = faults.cloudtrail.detach_log_group(stack.trail_name)
    with gameday.inject(faults.trace.break_hop("trail.delivery", broken, stack)):
        gameday.expect_trace("trail.delivery")
