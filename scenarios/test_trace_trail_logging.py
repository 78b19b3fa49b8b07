"""A stopped trail, repairs held: gameday trace must name trail.logging and only it."""

from harness import faults
from harness.scenario import FAILED_DELIVERIES, TRACE_CHAIN, TRAIL_CHANGES, Scenario

SCENARIO = Scenario(
    id="trace-trail-logging",
    title="Trace finds a stopped trail",
    feature="gameday trace",
    mitre=["T1562.008"],
    severity="medium",
    detect_within=300,
    remediate_within=None,
    requires=TRACE_CHAIN,
    aftermath=(TRAIL_CHANGES,),
    minds=(FAILED_DELIVERIES,),
)


def test_trace_trail_logging(gameday, stack):
    broken = faults.cloudtrail.stop_logging(stack.trail_name)
    with gameday.inject(faults.trace.break_hop("trail.logging", broken, stack)):
        gameday.expect_trace("trail.logging")
