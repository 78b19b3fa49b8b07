"""A trail blind to management events, repairs held: gameday trace must name trail.selectors and only it."""

from harness import faults
from harness.scenario import FAILED_DELIVERIES, TRACE_CHAIN, TRAIL_CHANGES, Scenario

SCENARIO = Scenario(
    id="trace-trail-selectors",
    title="Trace finds a trail that no longer selects management events",
    feature="gameday trace",
    mitre=["T1562.008"],
    severity="medium",
    detect_within=300,
    remediate_within=None,
    requires=TRACE_CHAIN,
    aftermath=(TRAIL_CHANGES,),
    minds=(FAILED_DELIVERIES,),
)


def test_trace_trail_selectors(gameday, stack):
    broken = faults.cloudtrail.exclude_management_events(stack.trail_name)
    with gameday.inject(faults.trace.break_hop("trail.selectors", broken, stack)):
        gameday.expect_trace("trail.selectors")
