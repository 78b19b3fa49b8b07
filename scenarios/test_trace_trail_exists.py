"""A deleted trail, repairs held: gameday trace must name trail.exists and only it."""

from harness import faults
from harness.scenario import FAILED_DELIVERIES, TRACE_CHAIN, TRAIL_CHANGES, Scenario

SCENARIO = Scenario(
    id="trace-trail-exists",
    title="Trace finds a deleted trail",
    feature="gameday trace",
    mitre=["T1562.008"],
    severity="medium",
    detect_within=300,
    remediate_within=None,
    requires=TRACE_CHAIN,
    aftermath=(TRAIL_CHANGES,),
    minds=(FAILED_DELIVERIES,),
)


def test_trace_trail_exists(gameday, stack):
    broken = faults.cloudtrail.delete_trail(stack.trail_name)
    with gameday.inject(faults.trace.break_hop("trail.exists", broken, stack)):
        gameday.expect_trace("trail.exists")
