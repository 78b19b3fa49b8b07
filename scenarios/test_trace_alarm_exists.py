"""A deleted alarm, repairs held: gameday trace must name alarm.exists and only it."""

from harness import faults
from harness.scenario import FAILED_DELIVERIES, TRACE_CHAIN, Scenario

SCENARIO = Scenario(
    id="trace-alarm-exists",
    title="Trace finds a deleted alarm",
    feature="gameday trace",
    mitre=["T1562.001"],
    severity="medium",
    detect_within=300,
    remediate_within=None,
    requires=TRACE_CHAIN,
    minds=(FAILED_DELIVERIES,),
)


def test_trace_alarm_exists(gameday, stack):
    broken = faults.cloudwatch.delete_alarm(stack.alarm_names["4.5"])
    with gameday.inject(faults.trace.break_hop("alarm.exists", broken, stack)):
        gameday.expect_trace("alarm.exists")
