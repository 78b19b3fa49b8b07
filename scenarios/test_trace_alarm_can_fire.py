"""An alarm whose threshold cannot be reached, repairs held: gameday trace must name alarm.can_fire and only it."""

from harness import faults
from harness.scenario import FAILED_DELIVERIES, TRACE_CHAIN, Scenario

SCENARIO = Scenario(
    id="trace-alarm-can-fire",
    title="Trace finds an alarm whose threshold cannot be reached",
    feature="gameday trace",
    mitre=["T1562.001"],
    severity="medium",
    detect_within=300,
    remediate_within=None,
    requires=TRACE_CHAIN,
    minds=(FAILED_DELIVERIES,),
)


def test_trace_alarm_can_fire(gameday, stack):
    broken = faults.cloudwatch.raise_alarm_threshold(stack.alarm_names["4.5"])
    with gameday.inject(faults.trace.break_hop("alarm.can_fire", broken, stack)):
        gameday.expect_trace("alarm.can_fire")
